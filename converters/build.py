"""Build a model bundle: fetch, convert, quantize, verify, measure, keep what pays."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facegate.backends import Backend, open_backend
from facegate.bundle import SCHEMA_VERSION
from facegate.bundle.parity import detector_ok, detector_parity, embed, embedder_ok, embedder_parity
from facegate.converters import CONVERTER_VERSION, calibration, quantize, report, to_onnx, to_tflite
from facegate.converters.ir import Graph, count_macs
from facegate.converters.recipe import ModelRecipe, Recipe
from facegate.converters.report import VariantReport
from facegate.converters.sources import extract_members, fetch, read_member, sha256_file
from facegate.converters.verify import ParityError, check_mtcnn_reference
from facegate.errors import BundleError
from facegate.vision.detect.mtcnn import MTCNN

log = logging.getLogger(__name__)

EXT = {"onnx": "onnx", "tflite": "tflite"}
TFLITE_PRECISION = {
    "fp32": "fp32",
    "fp16": "fp16",
    "int8": "int8-dynamic",
    "int8-full": "int8-full",
}
DETECTOR_ROLES = ("pnet", "rnet", "onet")


@dataclass
class BuildState:
    """What the build has produced so far."""

    recipe: Recipe
    staging: Path
    calib_dir: Path | None
    progress: object
    sources: dict[str, Path] = field(default_factory=dict)
    graphs: dict[str, Graph] = field(default_factory=dict)
    files: dict[tuple[str, str, str], Path] = field(default_factory=dict)
    reports: list[VariantReport] = field(default_factory=list)
    checks: dict[str, object] = field(default_factory=dict)


def _raw_path(state: BuildState, m: ModelRecipe) -> Path:
    """Where the published file of one model is kept during the build."""
    return state.staging / "raw" / Path(m.member or state.sources[m.source].name).name


def _read_graph(state: BuildState, m: ModelRecipe) -> Graph:
    data = read_member(state.sources[m.source], m.member)
    raw = _raw_path(state, m)
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_bytes(data)
    if m.reader == "mtcnn-lz4":
        from facegate.converters.mtcnn_weights import build, load_lz4

        return build(m.role, load_lz4(raw))
    if m.reader == "tflite":
        from facegate.converters.tflite_reader import read

        return read(raw, m.role)
    if m.reader == "facegate-ir":
        from facegate.converters import ir_store

        return ir_store.load(raw)[0]
    raise BundleError(f"unknown reader {m.reader!r} for {m.role}")


def _emit(
    state: BuildState,
    role: str,
    fmt: str,
    precision: str,
    graph: Graph,
    calib: list[np.ndarray] | None,
) -> Path:
    path = state.staging / f"{role}.{precision}.{EXT[fmt]}"
    if fmt == "onnx":
        if precision == "fp32":
            to_onnx.save(to_onnx.to_onnx(graph), path)
        elif precision == "fp16":
            to_onnx.save(quantize.to_fp16_weights(to_onnx.to_onnx(graph)), path)
        elif precision == "int8":
            keep = state.recipe.models[role].int8_float_convs
            quantize.to_int8(to_onnx.to_onnx(quantize.equalize(graph)), calib or [], path, keep)
        else:
            raise BundleError(f"ONNX has no {precision} variant")
    else:
        batches = calib or []

        def frames() -> object:
            for batch in batches:
                yield from batch

        data = to_tflite.convert(graph, TFLITE_PRECISION[precision], frames)
        to_tflite.save(data, path)
    return path


def _open(state: BuildState, role: str, fmt: str, precision: str) -> Backend:
    return open_backend(state.files[(role, fmt, precision)], fmt, 1, state.graphs[role].outputs)


def _detector(state: BuildState, fmt: str, override: dict[str, str] | None = None) -> MTCNN:
    prec = {role: (override or {}).get(role, "fp32") for role in DETECTOR_ROLES}
    nets = [_open(state, role, fmt, prec[role]) for role in DETECTOR_ROLES]
    return MTCNN(*nets)


def _calibration_sets(state: BuildState, samples: Path) -> tuple[dict, dict]:
    """Calibration batches per role and the held-out parity data, from real faces."""
    det = _detector(state, "onnx")
    photos = calibration.split(samples, state.calib_dir)
    cal = calibration.collect(photos.calibrate, det, calibration.CALIBRATION_AUGMENTS)
    par = calibration.collect(photos.check, det, calibration.PARITY_AUGMENTS)
    if len(cal.crops) < 8 or len(par.crops) < 4:
        raise BundleError(
            f"too few faces found for calibration ({len(cal.crops)}) or parity "
            f"({len(par.crops)}): give --calib DIR with photos of faces"
        )
    norm = state.recipe.models["embedder"].input
    mean, std = float(norm["mean"]), float(norm["std"])
    calib = {
        "embedder": [calibration.normalise(cal.crops, mean, std)],
        "rnet": [calibration.normalise(cal.rnet, mean, std)],
        "onet": [calibration.normalise(cal.onet, mean, std)],
        "pnet": [calibration.pnet_inputs(cal.photos, mean, std)],
    }
    parity = {
        "crops": calibration.normalise(par.crops, mean, std),
        "photos": par.photos,
        "rnet": calibration.normalise(par.rnet, mean, std),
        "onet": calibration.normalise(par.onet, mean, std),
        "pnet": calibration.pnet_inputs(par.photos[:4], mean, std),
    }
    state.checks["calibration_faces"] = len(cal.crops)
    state.checks["parity_faces"] = len(par.crops)
    state.checks["held_out"] = photos.record()
    return calib, parity


def _reference_checks(state: BuildState, parity: dict) -> None:
    """FP32 against the published nets: the wheel's Keras MTCNN and the original TFLite."""
    backends = {r: _open(state, r, "onnx", "fp32") for r in DETECTOR_ROLES}
    inputs = {r: parity[r] for r in DETECTOR_ROLES}
    state.checks["mtcnn_vs_published_max_abs"] = check_mtcnn_reference(
        state.sources["mtcnn"], state.graphs, backends, inputs
    )
    if state.recipe.models["embedder"].reader != "tflite":
        # Weights trained for facegate (facegate-ir): no published file to compare with; the
        # variants are checked against this net's own FP32 below.
        state.checks["embedder_vs_published"] = "none: trained for facegate"
        return
    original = state.staging / "raw" / "MobileFaceNet.tflite"
    ref = open_backend(original, "tflite", 1)
    crops = parity["crops"]
    batch = ref.input_shape[0] or 1  # the published graph has a fixed batch of 2
    usable = len(crops) - len(crops) % batch
    want = np.concatenate([ref.run(crops[i : i + batch])[0] for i in range(0, usable, batch)])
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    got = embed(_open(state, "embedder", "onnx", "fp32"), crops[:usable])
    figures = embedder_parity(want, got)
    state.checks["embedder_vs_published"] = figures
    if figures["min_cos"] < 0.9999:
        raise ParityError(f"FP32 MobileFaceNet differs from the published TFLite: {figures}")


def _variant_report(
    state: BuildState, role: str, fmt: str, precision: str, parity: dict
) -> VariantReport:
    path = state.files[(role, fmt, precision)]
    graph, m = state.graphs[role], state.recipe.models[role]
    shape = m.latency_shape
    r = VariantReport(
        role,
        fmt,
        precision,
        path.name,
        path.stat().st_size,
        graph.params(),
        count_macs(graph, shape[1], shape[2]) * shape[0],
    )
    r.latency_ms = report.median_latency_ms(path, fmt, shape)
    reference = state.files.get((role, fmt, "fp32"))
    if precision != "fp32" and reference is not None:
        r.speedup = report.paired_speedup(reference, path, fmt, shape)
    if role == "embedder":
        ref = embed(_open(state, role, "onnx", "fp32"), parity["crops"])
        r.parity = embedder_parity(ref, embed(_open(state, role, fmt, precision), parity["crops"]))
        r.parity_ok = embedder_ok(r.parity, precision)
    else:
        ref_det = _detector(state, "onnx")
        got_det = _detector(state, fmt, {role: precision})
        r.parity = detector_parity(ref_det, got_det, parity["photos"])
        r.parity_ok = detector_ok(r.parity)
    return r


def _build_variants(state: BuildState, calib: dict, parity: dict) -> None:
    todo = [(role, v.format, v.precision) for v in state.recipe.variants for role in v.models]
    task = state.progress.add_task("convert + verify", total=len(todo))
    for role, fmt, precision in todo:
        state.progress.update(task, description=f"{role} {fmt} {precision}")
        try:
            if (role, fmt, precision) not in state.files:
                state.files[(role, fmt, precision)] = _emit(
                    state, role, fmt, precision, state.graphs[role], calib.get(role)
                )
            state.reports.append(_variant_report(state, role, fmt, precision, parity))
        except (ValueError, RuntimeError, OSError) as err:
            if precision == "fp32":
                raise
            graph, path = state.graphs[role], state.staging / f"{role}.{precision}.{EXT[fmt]}"
            size = path.stat().st_size if path.exists() else 0
            state.reports.append(
                VariantReport(
                    role, fmt, precision, path.name, size, graph.params(), 0, error=str(err)[:160]
                )
            )
        state.progress.advance(task)


def _entry(state: BuildState, r: VariantReport) -> dict:
    m, graph = state.recipe.models[r.role], state.graphs[r.role]
    src = state.recipe.sources[m.source]
    path = state.files[(r.role, r.format, r.precision)]
    entry = {
        "role": r.role,
        "file": path.name,
        "format": r.format,
        "precision": r.precision,
        "sha256": sha256_file(path),
        "bytes": r.bytes,
        "input": {"shape": list(graph.input_shape), "dtype": "float32", **m.input},
        "outputs": [{"name": name} for name in graph.outputs],
        "model_id": state.checks["model_ids"][r.role],
        "params": r.params,
        "macs": r.macs,
        "macs_shape": list(m.latency_shape),
        "latency_ms": r.latency_ms,
        "parity": r.parity,
        "source": {
            "package": src.package,
            "version": src.version,
            "registry": src.registry,
            "sha256": src.sha256,
            "licence": src.licence,
            "member": m.member or src.file,  # a repository source is the file itself
        },
        "converter_version": CONVERTER_VERSION,
    }
    if r.role == "embedder":
        entry["embedding_size"] = int(
            embed(
                _open(state, "embedder", "onnx", "fp32"), np.zeros((1, 112, 112, 3), np.float32)
            ).shape[1]
        )
    return entry


def _model_ids(state: BuildState) -> dict[str, str]:
    """The embedding space is named by the weights, not by format or precision.

    A gallery refuses embeddings of another model id (``facegate gallery reembed`` moves it), so
    the id must change whenever the weights do: it ends in the weights file's sha256. A graph
    read from facegate's own weights (``facegate-ir``) carries its architecture name, so a pruned
    or distilled net is never taken for the published MobileFaceNet.
    """
    ids = {}
    for role, m in state.recipe.models.items():
        digest = sha256_file(_raw_path(state, m))[:12]
        if m.reader == "facegate-ir":
            name = state.graphs[role].name
        else:
            name = "mobilefacenet" if role == "embedder" else "mtcnn-" + role
        ids[role] = f"{name}-{digest}"
    return ids


def _write(state: BuildState, samples_count: int) -> None:
    kept = [r for r in state.reports if r.kept]
    manifest = {
        "schema": SCHEMA_VERSION,
        "bundle": state.recipe.name,
        "version": state.recipe.version,
        "description": state.recipe.description,
        "build_key": state.recipe.build_key(),
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "converter_version": CONVERTER_VERSION,
        "samples": samples_count,
        "held_out": state.checks["held_out"],
        "models": [_entry(state, r) for r in kept],
    }
    for r in state.reports:
        path = state.files.get((r.role, r.format, r.precision))
        if not r.kept and path is not None and path.exists():
            path.unlink()
    shutil.rmtree(state.staging / "raw", ignore_errors=True)
    (state.staging / "manifest.json").write_text(json.dumps(manifest, indent=2))
    full = {
        "bundle": state.recipe.name,
        "build_key": state.recipe.build_key(),
        "checks": state.checks,
        "variants": [r.as_dict() for r in state.reports],
    }
    (state.staging / "report.json").write_text(json.dumps(full, indent=2, default=float))


def build(
    recipe: Recipe, out_dir: Path, source_dir: Path | None, calib_dir: Path | None, progress: object
) -> list[VariantReport]:
    """Build ``recipe`` into ``out_dir`` (replaced atomically when everything passed)."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".build-", dir=out_dir.parent))
    state = BuildState(recipe, staging, calib_dir, progress)
    try:
        task = progress.add_task("fetch sources", total=len(recipe.sources))
        for key, src in recipe.sources.items():
            state.sources[key] = fetch(src, _cache_root(), source_dir)
            progress.advance(task)
        state.graphs = {role: _read_graph(state, m) for role, m in recipe.models.items()}
        state.checks["model_ids"] = _model_ids(state)
        samples = extract_members(
            state.sources[recipe.samples["source"]],
            recipe.samples["prefix"],
            staging / "samples",
            tuple(recipe.samples["suffixes"]),
        )
        for role in recipe.models:
            for fmt in ("onnx", "tflite"):
                state.files[(role, fmt, "fp32")] = _emit(
                    state, role, fmt, "fp32", state.graphs[role], None
                )
        calib, parity = _calibration_sets(state, staging / "samples")
        _reference_checks(state, parity)
        _build_variants(state, calib, parity)
        report.decide(state.reports)
        bad = [r for r in state.reports if r.precision == "fp32" and not r.parity_ok]
        if bad:
            raise ParityError(f"FP32 {bad[0].role} ({bad[0].format}) fails parity: {bad[0].parity}")
        _write(state, len(samples))
        _replace(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return state.reports


def _replace(staging: Path, out_dir: Path) -> None:
    old = out_dir.with_name(out_dir.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out_dir.exists():
        out_dir.rename(old)
    staging.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)


def _cache_root() -> Path:
    from facegate.host.paths import cache_dir

    return cache_dir()
