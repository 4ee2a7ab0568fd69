"""``facegate models verify``: re-check a bundle on this machine, file by file, with parity."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from facegate.backends import Backend
from facegate.backends.onnxruntime import Providers
from facegate.bundle import Bundle, ModelEntry
from facegate.bundle.parity import detector_ok, detector_parity, embed, embedder_ok, embedder_parity
from facegate.errors import FacegateError
from facegate.vision.align import align
from facegate.vision.detect.mtcnn import MTCNN
from facegate.vision.image import load_image

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


def _sample_photos(bundle: Bundle) -> list[np.ndarray]:
    folder: Path = bundle.root / "samples"
    return [load_image(p) for p in sorted(folder.glob("*.jpg"))]


def _parity(bundle: Bundle, checks: list[dict], backends: dict, photos: list[np.ndarray]) -> None:
    for fmt in {c["format"] for c in checks}:
        ref = {r: backends.get((r, fmt, "fp32")) for r in ("pnet", "rnet", "onet")}
        if None in ref.values() or backends.get(("embedder", fmt, "fp32")) is None:
            continue
        det = MTCNN(ref["pnet"], ref["rnet"], ref["onet"])
        crops = [align(img, f).crop for img in photos for f in det.detect(img)]
        spec = bundle.entry("embedder", fmt).input
        batch = (np.stack(crops).astype(np.float32) - spec.mean) / spec.std if crops else None
        for c in checks:
            key = (c["role"], fmt, c["precision"])
            if c["format"] != fmt or key not in backends:
                continue
            if c["role"] == "embedder" and batch is not None:
                want = embed(backends[("embedder", fmt, "fp32")], batch)
                c["parity"] = embedder_parity(want, embed(backends[key], batch))
                c["parity_ok"] = embedder_ok(c["parity"], c["precision"])
            elif c["role"] != "embedder":
                nets = {**ref, c["role"]: backends[key]}
                got = MTCNN(nets["pnet"], nets["rnet"], nets["onet"])
                c["parity"] = detector_parity(det, got, photos)
                c["parity_ok"] = detector_ok(c["parity"])


def verify_bundle(bundle: Bundle, providers: Providers | None = None) -> dict:
    """Every check and figure as a JSON-ready dict; ``ok`` is False if anything failed."""
    checks, backends = [], {}
    for entry in bundle.entries:
        check, backend = _check_file(bundle, entry, providers)
        checks.append(check)
        if backend is not None:
            backends[(entry.role, entry.format, entry.precision)] = backend
    photos = _sample_photos(bundle)
    _parity(bundle, checks, backends, photos)
    for c in checks:
        c["ok"] = bool(c.get("runs")) and c.get("parity_ok", True) is not False
    return {
        "bundle": bundle.name,
        "version": bundle.version,
        "root": str(bundle.root),
        "sample_photos": len(photos),
        "provider": next(
            (c["provider"] for c in checks if c["format"] == "onnx" and "provider" in c), None
        ),
        "ok": all(c["ok"] for c in checks),
        "models": checks,
    }
