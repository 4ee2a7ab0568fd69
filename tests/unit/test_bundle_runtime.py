"""The runtime trusts only a manifest it understands and files that match their sha256."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from facegate.bundle import Bundle
from facegate.errors import BundleError, ModelError
from tests.conftest import run_cli


@pytest.fixture()
def copy(bundle_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the built bundle that a test may damage."""
    dest = tmp_path / "bundle"
    shutil.copytree(bundle_dir, dest)
    return dest


def _embedder_file(root: Path) -> Path:
    manifest = json.loads((root / "manifest.json").read_text())
    entry = next(
        m
        for m in manifest["models"]
        if m["role"] == "embedder" and m["format"] == "onnx" and m["precision"] == "fp32"
    )
    return root / entry["file"]


def test_manifest_describes_every_model(bundle: Bundle) -> None:
    roles = {(e.role, e.format) for e in bundle.entries if e.precision == "fp32"}
    assert roles == {
        (r, f) for r in ("pnet", "rnet", "onet", "embedder", "liveness") for f in ("onnx", "tflite")
    }
    for raw in bundle.manifest["models"]:
        for key in ("sha256", "input", "outputs", "source", "converter_version", "params", "macs"):
            assert key in raw, key
        if raw["role"] == "liveness":  # trained for facegate: its own licence and input
            assert raw["input"]["mean"] == 0.0 and raw["input"]["std"] == 255.0
            continue
        assert raw["source"]["licence"] == "MIT" and len(raw["source"]["sha256"]) == 64
        assert raw["input"]["mean"] == 127.5 and raw["input"]["std"] == 128.0
    emb = bundle.entry("embedder", "onnx")
    assert emb.embedding_size == 192 and emb.input.shape == (None, 112, 112, 3)


def test_tampered_model_is_refused(copy: Path) -> None:
    path = _embedder_file(copy)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    bundle = Bundle.load(copy)
    with pytest.raises(ModelError, match="sha256 mismatch"):
        bundle.open(bundle.entry("embedder", "onnx"))


def test_truncated_model_is_refused_by_the_cli(copy: Path, tmp_path: Path) -> None:
    path = _embedder_file(copy)
    path.write_bytes(path.read_bytes()[:1000])
    img = copy / "samples" / "obama.jpg"
    proc = run_cli(
        "identify",
        str(img),
        "--bundle",
        str(copy),
        "--backend",
        "onnxruntime",
        env={"FACEGATE_HOME": str(tmp_path / "home")},
    )
    assert proc.returncode == 1
    assert "sha256 mismatch" in proc.stderr and "Traceback" not in proc.stderr


def test_unknown_schema_is_refused(copy: Path) -> None:
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["schema"] = 99
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="schema 99"):
        Bundle.load(copy)


def test_malformed_manifest_is_refused(copy: Path) -> None:
    (copy / "manifest.json").write_text('{"schema": 1, "bundle": "x"')
    with pytest.raises(BundleError, match="unreadable manifest"):
        Bundle.load(copy)


def test_wrong_input_signature_is_refused(copy: Path) -> None:
    """A file swapped for another valid model (and re-hashed) still fails the signature check."""
    manifest = json.loads((copy / "manifest.json").read_text())
    emb = next(m for m in manifest["models"] if m["role"] == "embedder" and m["format"] == "onnx")
    onet = next(m for m in manifest["models"] if m["role"] == "onet" and m["format"] == "onnx")
    emb["file"], emb["sha256"] = onet["file"], onet["sha256"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    bundle = Bundle.load(copy)
    with pytest.raises(ModelError, match=r"input shape|outputs"):
        bundle.open(bundle.entry("embedder", "onnx"))


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_every_kept_model_runs_in_its_runtime(bundle: Bundle, fmt: str) -> None:
    for entry in [e for e in bundle.entries if e.format == fmt]:
        backend = bundle.open(entry)
        shape = [1 if d is None else d for d in entry.input.shape]
        if entry.input.shape[1] is None:
            shape[1:3] = [60, 48]
        outs = backend.run(np.zeros(shape, np.float32))
        assert len(outs) == len(entry.outputs)
        assert all(np.isfinite(o).all() for o in outs)


def test_litert_keeps_one_interpreter_per_shape_and_stays_correct(bundle: Bundle) -> None:
    """Each input shape keeps a sized interpreter (bounded per model); answers never go stale."""
    from facegate.backends import litert

    rng = np.random.default_rng(3)
    shapes = [(1, 20 + 3 * i, 30 + 2 * i, 3) for i in range(litert.SPATIAL_SHAPES + 4)]
    inputs = [rng.uniform(-1, 1, s).astype(np.float32) for s in shapes]
    pnet = bundle.open(bundle.entry("pnet", "tflite"))
    first = [pnet.run(inputs[0])]
    oldest = pnet._interps[shapes[0]][0]
    first += [pnet.run(x) for x in inputs[1:]]
    assert len(pnet._interps) == litert.SPATIAL_SHAPES  # the oldest were dropped, not kept
    # an evicted interpreter is dropped, not resized for the next shape: a resized arena keeps
    # its largest size, and a long run would grow every cached one to it
    assert all(entry[0] is not oldest for entry in pnet._interps.values())
    again = [pnet.run(x) for x in reversed(inputs)][::-1]  # evicted shapes come back resized
    for a, b, x in zip(first, again, inputs, strict=True):
        fresh = bundle.open(bundle.entry("pnet", "tflite")).run(x)
        for u, v, w in zip(a, b, fresh, strict=True):
            np.testing.assert_array_equal(u, w)
            np.testing.assert_array_equal(v, w)
    rnet = bundle.open(bundle.entry("rnet", "tflite"))
    batches = [rng.uniform(-1, 1, (n, 24, 24, 3)).astype(np.float32) for n in (1, 4, 2, 8, 16)]
    first = [rnet.run(x) for x in batches]
    assert len(rnet._interps) == len(batches)  # one planned interpreter per batch size
    for n in (32, 64, 3):
        rnet.run(np.zeros((n, 24, 24, 3), np.float32))
    assert len(rnet._interps) == litert.BATCH_SHAPES  # bounded: the oldest were dropped
    for a, x in zip(first, batches, strict=True):
        for u, v in zip(a, rnet.run(x), strict=True):
            np.testing.assert_array_equal(u, v)
