"""Converters: the layer graphs, both emitters, CLE and the MAC count, on the real weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from facegate.backends.litert import LiteRTBackend
from facegate.converters.ir import Graph, Layer, count_macs
from facegate.converters.quantize import equalize
from facegate.converters.recipe import load
from facegate.converters.sources import read_member
from facegate.converters.to_onnx import to_onnx
from facegate.converters.to_tflite import convert


def _source(key: str) -> Path:
    from facegate.host.paths import cache_dir

    src = load("default").sources[key]
    path = cache_dir() / "sources" / src.sha256 / src.file
    if not path.exists():
        pytest.fail("sources are not cached: run `facegate models build` first")
    return path


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Graph]:
    from facegate.converters.mtcnn_weights import build, load_lz4
    from facegate.converters.tflite_reader import read

    tmp = tmp_path_factory.mktemp("raw")
    recipe = load("default")
    out = {}
    for role, m in recipe.models.items():
        if m.reader not in ("mtcnn-lz4", "tflite"):  # the liveness net: test_onnx_reader.py
            continue
        raw = tmp / Path(m.member).name
        raw.write_bytes(read_member(_source(m.source), m.member))
        out[role] = build(role, load_lz4(raw)) if m.reader == "mtcnn-lz4" else read(raw, role)
    return out


def _onnx(graph: Graph, x: np.ndarray) -> list[np.ndarray]:
    return ort.InferenceSession(to_onnx(graph).SerializeToString()).run(None, {"input": x})


def _input(role: str) -> np.ndarray:
    shape = {
        "pnet": (1, 67, 53, 3),
        "rnet": (3, 24, 24, 3),
        "onet": (2, 48, 48, 3),
        "embedder": (2, 112, 112, 3),
    }[role]
    return np.random.default_rng(1).uniform(-1, 1, shape).astype(np.float32)


def test_mac_count_of_a_conv_is_kw_kh_cin_cout_hout_wout() -> None:
    kernel = np.zeros((8, 3, 3, 3), np.float32)
    layer = Layer(
        "conv",
        ["input"],
        "y",
        {"stride": 1, "padding": "valid"},
        {"kernel": kernel, "bias": np.zeros(8, np.float32)},
    )
    graph = Graph("t", "input", (None, 10, 10, 3), [layer], ["y"])
    assert count_macs(graph, 10, 10) == 3 * 3 * 3 * 8 * 8 * 8


def test_mobilefacenet_prelu_is_fused_and_costs_are_known(graphs: dict[str, Graph]) -> None:
    g = graphs["embedder"]
    ops = [layer.op for layer in g.layers]
    assert ops.count("prelu") == 33 and ops.count("conv") == 52
    assert g.params() == 1_292_992
    assert 200e6 < count_macs(g, 112, 112) < 260e6


@pytest.mark.parametrize("role", ["pnet", "rnet", "onet", "embedder"])
def test_onnx_and_tflite_compute_the_same_function(
    graphs: dict[str, Graph], role: str, tmp_path: Path
) -> None:
    x = _input(role)
    path = tmp_path / f"{role}.tflite"
    path.write_bytes(convert(graphs[role], "fp32"))
    got = LiteRTBackend(path).run(x)
    for a, b in zip(_onnx(graphs[role], x), got, strict=True):
        assert a.shape == b.shape
        assert np.abs(a - b).max() < 1e-3 * max(1.0, np.abs(a).max())


def test_pnet_accepts_any_frame_size(graphs: dict[str, Graph]) -> None:
    for h, w in ((12, 12), (13, 31), (240, 320)):
        bbox, prob = _onnx(graphs["pnet"], np.zeros((1, h, w, 3), np.float32))
        assert bbox.shape == (1, -(-(h - 2) // 2) - 4, -(-(w - 2) // 2) - 4, 4)
        assert np.allclose(prob.sum(-1), 1, atol=1e-5)


def test_cross_layer_equalization_keeps_the_function(graphs: dict[str, Graph]) -> None:
    x = _input("embedder")
    a = _onnx(graphs["embedder"], x)[0]
    b = _onnx(equalize(graphs["embedder"]), x)[0]
    assert np.abs(a - b).max() < 1e-3


def test_mtcnn_matches_the_published_keras_nets(graphs: dict[str, Graph], tmp_path: Path) -> None:
    from facegate.backends.onnxruntime import OnnxRuntimeBackend
    from facegate.converters.verify import check_mtcnn_reference

    backends, inputs = {}, {}
    for role in ("pnet", "rnet", "onet"):
        path = tmp_path / f"{role}.onnx"
        path.write_bytes(to_onnx(graphs[role]).SerializeToString())
        backends[role] = OnnxRuntimeBackend(path)
        inputs[role] = _input(role)
    worst = check_mtcnn_reference(_source("mtcnn"), graphs, backends, inputs)
    assert max(worst.values()) < 1e-4


@pytest.mark.parametrize("slopes", [[0.25, -0.5, 1.0, 0.0], [0.25, -1.3, 1.01, 8.9]])
def test_onnx_prelu_is_elementwise_and_equal_to_the_bit(slopes: list[float]) -> None:
    """PReLU leaves onnxruntime's slow PRelu kernel for ops with exactly the same result."""
    slope = np.array(slopes, np.float32)
    layer = Layer("prelu", ["input"], "y", {}, {"slope": slope})
    graph = Graph("t", "input", (None, None, None, 4), [layer], ["y"])
    model = to_onnx(graph)
    assert "PRelu" not in {n.op_type for n in model.graph.node}
    x = np.random.default_rng(2).standard_normal((2, 9, 7, 4)).astype(np.float32)
    x[0, 0, 0] = 0.0
    x[0, 0, 1] = -0.0
    x[0, 0, 2] = np.float32(-1e-42)  # subnormal
    want = np.where(x > 0, x, x * slope)
    got = ort.InferenceSession(model.SerializeToString()).run(None, {"input": x})[0]
    np.testing.assert_array_equal(got, want)
