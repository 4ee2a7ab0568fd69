"""facegate-ir files: a graph and its meta round-trip exactly; a damaged file is one clean error."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from facegate.converters import ir_store
from facegate.converters.ir import Graph, Layer
from facegate.errors import BundleError


def small_graph() -> Graph:
    """conv -> prelu -> depthwise conv -> add (residual) -> flatten, with random weights."""
    rng = np.random.default_rng(3)

    def w(*shape: int) -> np.ndarray:
        return rng.normal(size=shape).astype(np.float32)

    layers = [
        Layer("conv", ["input"], "a", {"stride": 1, "padding": "same", "group": 1},
              {"kernel": w(4, 3, 3, 3), "bias": w(4)}),
        Layer("prelu", ["a"], "b", {}, {"slope": w(4)}),
        Layer("conv", ["b"], "c", {"stride": 1, "padding": "same", "group": 4},
              {"kernel": w(4, 1, 3, 3), "bias": w(4)}),
        Layer("add", ["c", "a"], "d"),
        Layer("flatten", ["d"], "embedding"),
    ]  # fmt: skip
    return Graph("tiny", "input", (None, 6, 6, 3), layers, ["embedding"])


def test_round_trip_is_exact(tmp_path: Path) -> None:
    graph = small_graph()
    meta = {"architecture": "tiny", "macs": 123, "nested": {"seed": 7}}
    path = ir_store.save(graph, tmp_path / "tiny.npz", meta)
    back, got_meta = ir_store.load(path)
    assert got_meta == meta
    assert (back.name, back.input_name, back.input_shape, back.outputs) == (
        graph.name, graph.input_name, graph.input_shape, graph.outputs
    )  # fmt: skip
    assert len(back.layers) == len(graph.layers)
    for a, b in zip(graph.layers, back.layers, strict=True):
        assert (a.op, a.inputs, a.output, a.attrs) == (b.op, b.inputs, b.output, b.attrs)
        assert a.weights.keys() == b.weights.keys()
        for key in a.weights:
            assert np.array_equal(a.weights[key], b.weights[key])
            assert b.weights[key].dtype == np.float32


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    path = ir_store.save(small_graph(), tmp_path / "tiny.npz", {})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match=r"tiny\.npz: not a readable facegate-ir file"):
        ir_store.load(path)


def _rewrite(src: Path, dst: Path, drop: str = "", extra: dict[str, bytes] | None = None) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            if item.filename != drop:
                zout.writestr(item, zin.read(item.filename))
        for name, payload in (extra or {}).items():
            zout.writestr(name, payload)


def test_missing_weight_is_refused(tmp_path: Path) -> None:
    path = ir_store.save(small_graph(), tmp_path / "tiny.npz", {})
    bad = tmp_path / "bad.npz"
    _rewrite(path, bad, drop="L1.slope.npy")
    with pytest.raises(BundleError, match=r"bad\.npz: malformed facegate-ir file"):
        ir_store.load(bad)


def test_pickled_entry_is_refused_without_running_it(tmp_path: Path) -> None:
    path = ir_store.save(small_graph(), tmp_path / "tiny.npz", {})
    bad = tmp_path / "pickled.npz"
    payload = tmp_path / "obj.npy"
    np.save(payload, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    _rewrite(path, bad, drop="L0.bias.npy", extra={"L0.bias.npy": payload.read_bytes()})
    with pytest.raises(BundleError, match="pickled"):
        ir_store.load(bad)


def test_non_finite_weight_is_refused(tmp_path: Path) -> None:
    graph = small_graph()
    graph.layers[0].weights["bias"][1] = np.nan
    path = ir_store.save(graph, tmp_path / "nan.npz", {})
    with pytest.raises(BundleError, match="not finite"):
        ir_store.load(path)


def test_a_layer_reading_an_unknown_tensor_is_refused(tmp_path: Path) -> None:
    graph = small_graph()
    graph.layers[3].inputs = ["c", "nowhere"]
    path = ir_store.save(graph, tmp_path / "dangling.npz", {})
    with pytest.raises(BundleError, match="no earlier layer"):
        ir_store.load(path)
