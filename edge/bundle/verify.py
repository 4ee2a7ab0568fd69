"""``facegate models verify``: re-check a bundle on this machine, file by file, with parity.

Every file is compared with the reference FP32 set (ONNX where the bundle has it, as in the
build); the reference files are marked ``reference`` and carry no parity figures of their own.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from facegate.backends import Backend
from facegate.backends.onnxruntime import Providers
from facegate.bundle import Bundle, ModelEntry
from facegate.bundle.manifest import ROLES
from facegate.bundle.parity import (
    detector_ok,
    detector_parity,
    embed,
    embedder_ok,
    embedder_parity,
    liveness_ok,
    liveness_parity,
    liveness_scores,
)
from facegate.errors import FacegateError
from facegate.vision.align import align
from facegate.vision.detect.mtcnn import MTCNN
from facegate.vision.image import load_image
from facegate.vision.liveness import crop_face, spec_of

log = logging.getLogger(__name__)

PROBE_SIZE = {"pnet": (64, 48)}  # a dynamic-size net is run at this H×W for the smoke run


def _probe(entry: ModelEntry) -> np.ndarray:
    shape = [1 if d is None else int(d) for d in entry.input.shape]
    if entry.input.shape[1] is None:
        shape[1], shape[2] = PROBE_SIZE.get(entry.role, (64, 64))
    return np.zeros(shape, np.float32)


def _check_file(
    bundle: Bundle, entry: ModelEntry, providers: Providers | None = None
) -> tuple[dict, Backend | None]:
    check: dict = {
        "file": entry.file,
        "role": entry.role,
        "format": entry.format,
        "precision": entry.precision,
        "ok": False,
    }
    try:
        bundle.verify_file(entry)
        check["sha256_ok"] = True
        backend = bundle.open(entry, providers=providers)
        check["loads"] = True
        check["provider"] = str(getattr(backend, "provider", backend.name))
        outs = backend.run(_probe(entry))
        check["runs"] = len(outs) == len(entry.outputs) and all(np.isfinite(o).all() for o in outs)
    except FacegateError as err:
        check.setdefault("sha256_ok", False)
        check["error"] = str(err)
        return check, None
    return check, backend


def _sample_photos(bundle: Bundle) -> tuple[list[np.ndarray], str]:
    """The bundle's held-out sample photos where the manifest names them, else every sample."""
    folder: Path = bundle.root / "samples"
    held = bundle.manifest.get("held_out")
    if held:
        paths = [folder / row["file"] for row in held["check"]]
        return [load_image(p) for p in paths if p.is_file()], "held-out samples"
    return [load_image(p) for p in sorted(folder.glob("*.jpg"))], "all samples"


def _reference_format(backends: dict) -> str | None:
    """The format whose FP32 files every other file is compared with: ONNX first, as the build."""
    for fmt in ("onnx", "tflite"):
        if all((role, fmt, "fp32") in backends for role in ROLES):
            return fmt
    return None


def _normalised(entry: ModelEntry, crops: list[np.ndarray]) -> np.ndarray:
    return (np.stack(crops).astype(np.float32) - entry.input.mean) / entry.input.std


def _parity(bundle: Bundle, checks: list[dict], backends: dict, photos: list[np.ndarray]) -> None:
    """Compare every file with the reference FP32 set; the reference itself is not "compared"."""
    fmt = _reference_format(backends)
    if fmt is None:
        for c in checks:
            c.setdefault("error", "no complete FP32 set in the bundle to compare with")
        return
    entries = {(e.role, e.format, e.precision): e for e in bundle.entries}
    ref = {role: backends[(role, fmt, "fp32")] for role in ROLES}
    det = MTCNN(ref["pnet"], ref["rnet"], ref["onet"])
    crops = [align(img, f).crop for img in photos for f in det.detect(img)]
    for c in checks:
        key = (c["role"], c["format"], c["precision"])
        if key not in backends:
            continue
        if key[1:] == (fmt, "fp32"):
            c["reference"] = True
            continue
        c["parity_against"] = f"{fmt} fp32"
        if not crops:
            c["parity_ok"], c["error"] = False, "no faces in the sample photos to compare on"
        elif c["role"] == "liveness":
            c["parity"], c["parity_ok"] = _liveness(entries[key], backends, fmt, key, photos, det)
        elif c["role"] == "embedder":
            want = embed(ref["embedder"], _normalised(entries[("embedder", fmt, "fp32")], crops))
            got = embed(backends[key], _normalised(entries[key], crops))
            c["parity"] = embedder_parity(want, got)
            c["parity_ok"] = embedder_ok(c["parity"], c["precision"])
        else:
            nets = {**ref, c["role"]: backends[key]}
            c["parity"] = detector_parity(
                det, MTCNN(nets["pnet"], nets["rnet"], nets["onet"]), photos
            )
            c["parity_ok"] = detector_ok(c["parity"])


def _liveness(
    entry: ModelEntry, backends: dict, fmt: str, key: tuple, photos: list, det: MTCNN
) -> tuple[dict, bool]:
    """A liveness variant's attack scores against the same format's FP32, on context crops."""
    ref = backends.get(("liveness", fmt, "fp32"))
    if ref is None:
        return {}, False
    spec = spec_of(entry)
    crops = [
        crop_face(img, f.box, spec.crop_scale, spec.size) for img in photos for f in det.detect(img)
    ]
    batch = (np.stack(crops).astype(np.float32) - spec.mean) / spec.std
    got = liveness_scores(backends[key], batch)
    parity = liveness_parity(liveness_scores(ref, batch), got, spec.threshold)
    return parity, liveness_ok(parity, entry.precision)


def verify_bundle(bundle: Bundle, providers: Providers | None = None) -> dict:
    """Every check and figure as a JSON-ready dict; ``ok`` is False if anything failed."""
    checks, backends = [], {}
    for entry in bundle.entries:
        check, backend = _check_file(bundle, entry, providers)
        checks.append(check)
        if backend is not None:
            backends[(entry.role, entry.format, entry.precision)] = backend
    photos, which = _sample_photos(bundle)
    _parity(bundle, checks, backends, photos)
    for c in checks:
        compared = c.get("reference") or c.get("parity_ok")
        c["ok"] = bool(c.get("runs")) and bool(compared)
    return {
        "bundle": bundle.name,
        "version": bundle.version,
        "root": str(bundle.root),
        "sample_photos": len(photos),
        "parity_photos": which,
        "provider": next(
            (c["provider"] for c in checks if c["format"] == "onnx" and "provider" in c), None
        ),
        "ok": all(c["ok"] for c in checks),
        "models": checks,
    }
