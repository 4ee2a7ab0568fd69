"""The built bundle keeps its promises: parity figures in the report, and `models verify`."""

from __future__ import annotations

import json
from pathlib import Path

from facegate.bundle.parity import BOX_IOU, EMBED_MEAN_COS, EMBED_MIN_COS, FP32_ABS, LANDMARK_PX
from tests.conftest import run_cli


def _report(bundle_dir: Path) -> dict:
    return json.loads((bundle_dir / "report.json").read_text())


def test_fp32_matches_the_published_networks(bundle_dir: Path) -> None:
    checks = _report(bundle_dir)["checks"]
    assert max(checks["mtcnn_vs_published_max_abs"].values()) <= FP32_ABS
    assert checks["embedder_vs_published"]["min_cos"] >= 0.9999
    assert checks["calibration_faces"] >= 8 and checks["parity_faces"] >= 4


def test_every_kept_variant_meets_the_parity_thresholds(bundle_dir: Path) -> None:
    kept = [v for v in _report(bundle_dir)["variants"] if v["kept"]]
    assert {v["precision"] for v in kept} >= {"fp32"}
    for v in kept:
        p = v["parity"]
        if v["role"] == "embedder":
            assert p["mean_cos"] >= EMBED_MEAN_COS and p["min_cos"] >= EMBED_MIN_COS, v
        else:
            assert p["min_iou"] >= BOX_IOU and p["max_landmark_px"] <= LANDMARK_PX, v
            assert p["faces"] == p["faces_variant"] and p["faces"] > 0


def test_every_variant_built_is_reported_with_a_reason(bundle_dir: Path) -> None:
    variants = _report(bundle_dir)["variants"]
    built = {(v["role"], v["format"], v["precision"]) for v in variants}
    for role in ("pnet", "rnet", "onet", "embedder"):
        for fmt in ("onnx", "tflite"):
            assert {(role, fmt, p) for p in ("fp32", "fp16", "int8")} <= built
    assert all(v["why"] for v in variants)
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    kept = {(m["role"], m["format"], m["precision"]) for m in manifest["models"]}
    assert kept == {(v["role"], v["format"], v["precision"]) for v in variants if v["kept"]}


def test_models_verify_recomputes_parity_on_this_machine(bundle_dir: Path, home: Path) -> None:
    proc = run_cli("models", "verify", "--bundle", str(bundle_dir), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["ok"] and result["sample_photos"] >= 5
    for m in result["models"]:
        assert m["sha256_ok"] and m["loads"] and m["runs"], m
        if m["precision"] != "fp32" or m["format"] == "tflite":
            assert m.get("parity_ok") is not False, m


def test_models_info_and_list(bundle_dir: Path, home: Path) -> None:
    info = run_cli("models", "info", "--bundle", str(bundle_dir), "--json")
    assert info.returncode == 0 and json.loads(info.stdout)["schema"] == 1
    listing = run_cli("models", "list", "--json")
    assert listing.returncode == 0 and "default" in json.loads(listing.stdout)["recipes"]


def test_cached_build_is_idempotent_and_json_is_clean(home: Path) -> None:
    """A second build comes from the cache; --json output on stdout is pure JSON."""
    proc = run_cli("models", "build", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["state"] == "cached"
    assert (home / "models" / "default" / "manifest.json").exists()
