"""The liveness model as a bundle stage: built, quantized and parity-gated like the others,
opened through the same backend choice, verified by ``models verify``, and required by the
daemon's start-up checks when ``[liveness]`` is on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from facegate.bundle import Bundle
from facegate.bundle.parity import LIVENESS_MAX_ABS
from facegate.bundle.verify import verify_bundle
from facegate.vision.image import load_image
from facegate.vision.liveness import DEFAULT_MODEL, LivenessModel, load_spec, weights_dir
from facegate.vision.recognizer import Recognizer, RecognizerConfig
from tests.conftest import run_cli
from tests.data import data


def _faces(recognizer: Recognizer) -> list[tuple[np.ndarray, list]]:
    images = [load_image(p) for p in sorted(data("faces").rglob("*.jpg"))[:6]]
    return [(img, recognizer.detect(img)) for img in images]


def test_bundle_has_the_liveness_stage_in_both_formats_with_parity(bundle: Bundle) -> None:
    fp32 = {e.format for e in bundle.entries if e.role == "liveness" and e.precision == "fp32"}
    assert fp32 == {"onnx", "tflite"}
    report = json.loads((bundle.root / "report.json").read_text())
    rows = [v for v in report["variants"] if v["role"] == "liveness"]
    built = {(v["format"], v["precision"]) for v in rows}
    assert {("onnx", "int8"), ("tflite", "int8"), ("onnx", "fp32"), ("tflite", "fp32")} <= built
    for v in rows:
        assert v["macs"] > 0 and v["params"] == 24098 and v["latency_ms"] > 0, v
        if v["kept"] and v["precision"] != "fp32":
            assert v["parity"]["max_abs"] <= LIVENESS_MAX_ABS and v["parity"]["flips"] == 0
    assert report["checks"]["liveness_vs_published_max_abs"] <= 1e-4
    entry = bundle.entry("liveness", "onnx")
    assert entry.model_id.startswith(DEFAULT_MODEL + "-")
    manifest = next(m for m in bundle.manifest["models"] if m["file"] == entry.file)
    assert (
        manifest["source"]["registry"] == "repository"
        and "research" in manifest["source"]["licence"]
    )


@pytest.mark.parametrize("backend", ["onnxruntime", "litert"])
def test_the_bundle_stage_scores_as_the_trained_model_on_real_faces(
    bundle: Bundle, recognizer: Recognizer, backend: str
) -> None:
    staged = LivenessModel.from_bundle(bundle, RecognizerConfig(backend=backend))
    assert staged.backend.name == backend
    spec, path = load_spec(str(weights_dir() / f"{DEFAULT_MODEL}.json"))
    trained = LivenessModel.open(path, spec)
    assert (staged.spec.size, staged.spec.crop_scale, staged.spec.threshold) == (
        spec.size,
        spec.crop_scale,
        spec.threshold,
    )
    faces = [(img, f) for img, f in _faces(recognizer) if f]
    assert faces
    for img, found in faces:
        assert np.abs(staged.score(img, found) - trained.score(img, found)).max() < 1e-4


def test_int8_is_chosen_by_precision_and_falls_back_to_fp32(bundle: Bundle) -> None:
    for fmt, backend in (("onnx", "onnxruntime"), ("tflite", "litert")):
        model = LivenessModel.from_bundle(
            bundle, RecognizerConfig(backend=backend, precision="int8")
        )
        has_int8 = any(
            e.role == "liveness" and e.format == fmt and e.precision == "int8"
            for e in bundle.entries
        )
        want = bundle.entry("liveness", fmt, "int8" if has_int8 else "fp32")
        assert model.backend.path.name == want.file


def test_models_verify_checks_the_liveness_files(bundle: Bundle) -> None:
    result = verify_bundle(bundle)
    checks = [c for c in result["models"] if c["role"] == "liveness"]
    assert len(checks) >= 2 and all(c["ok"] for c in checks), checks
    compared = [c for c in checks if not c.get("reference")]
    assert compared and all("max_abs" in c["parity"] for c in compared)


def _without_liveness(bundle_dir: Path, home: Path) -> Path:
    target = home / "models" / "default"
    shutil.copytree(bundle_dir, target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["models"] = [m for m in manifest["models"] if m["role"] != "liveness"]
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


def test_liveness_on_with_a_bundle_without_the_stage_is_refused_in_one_line(
    bundle_dir: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    _without_liveness(bundle_dir, home)
    clip = data("video/face_recognition_short_hamilton_clip.mp4")
    config = tmp_path / "c.toml"
    base = f'[camera]\nsource = "{clip}"\n[models]\nbackend = "onnxruntime"\n'
    config.write_text(base + "[liveness]\nenabled = true\n")
    env = {"FACEGATE_HOME": str(home)}
    for args in (("check-config", str(config)), ("run", "--config", str(config))):
        res = run_cli(*args, env=env)
        assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
        assert "no onnx liveness model" in res.stderr and "models build" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    config.write_text(base)  # liveness off: the same bundle is fine
    assert run_cli("check-config", str(config), env=env).returncode == 0
