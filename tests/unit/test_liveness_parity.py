"""The liveness stage's parity gate and its manifest entry, on numbers and small manifests."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from facegate.bundle.manifest import _Invalid, validate
from facegate.bundle.parity import LIVENESS_MAX_ABS, liveness_ok, liveness_parity

ENTRY = {
    "role": "liveness",
    "file": "liveness.fp32.onnx",
    "format": "onnx",
    "precision": "fp32",
    "sha256": "0" * 64,
    "bytes": 1,
    "input": {
        "shape": [None, 64, 64, 3],
        "layout": "NHWC",
        "colour": "RGB",
        "mean": 0.0,
        "std": 255.0,
        "crop_scale": 1.2,
        "score": "attack-probability",
        "threshold": 0.2618,
    },
    "outputs": [{"name": "prob"}],
    "model_id": "liveness-nuaa-v1-0123456789ab",
    "params": 1,
    "macs": 1,
    "latency_ms": 0.1,
    "source": {"package": "p", "version": "1", "registry": "repository", "sha256": "0" * 64},
    "converter_version": "1",
}


def test_parity_counts_flips_at_the_threshold_and_the_largest_change() -> None:
    ref = np.array([0.01, 0.25, 0.27, 0.9])
    got = np.array([0.02, 0.27, 0.26, 0.9])  # 0.25 -> 0.27 crosses 0.2618; 0.27 -> 0.26 too
    p = liveness_parity(ref, got, 0.2618)
    assert p["flips"] == 2 and p["max_abs"] == pytest.approx(0.02) and p["n"] == 4
    assert not liveness_ok(p, "int8")  # a flipped decision fails, however small the change
    calm = liveness_parity(ref, ref + 0.01, 0.5)
    assert calm["flips"] == 0 and liveness_ok(calm, "int8") and not liveness_ok(calm, "fp32")
    far = liveness_parity(ref, ref + LIVENESS_MAX_ABS * 1.5, 0.99)
    assert far["flips"] == 0 and not liveness_ok(far, "int8")
    assert not liveness_ok(liveness_parity(np.zeros(0), np.zeros(0), 0.5), "int8")  # no faces


def test_a_liveness_entry_must_say_how_to_crop_and_score(tmp_path: Path) -> None:
    validate({"schema": 1, "bundle": "b", "version": "1", "models": [ENTRY]}, tmp_path)
    for key in ("crop_scale", "threshold"):
        entry = copy.deepcopy(ENTRY)
        del entry["input"][key]
        with pytest.raises(_Invalid, match=f"input.{key} is missing"):
            validate({"schema": 1, "bundle": "b", "version": "1", "models": [entry]}, tmp_path)
    entry = copy.deepcopy(ENTRY)
    entry["input"]["shape"] = [None, None, None, 3]
    with pytest.raises(_Invalid, match="fixed square size"):
        validate({"schema": 1, "bundle": "b", "version": "1", "models": [entry]}, tmp_path)
    entry["input"]["shape"], entry["input"]["crop_scale"] = [None, 64, 64, 3], 9.0
    with pytest.raises(_Invalid, match="crop_scale"):
        validate({"schema": 1, "bundle": "b", "version": "1", "models": [entry]}, tmp_path)
