"""ShuffleNet V2: the channel ops (concat, gather_channels) in every emitter; the student graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from facegate.backends.litert import LiteRTBackend
from facegate.converters.ir import Graph, Layer, count_macs
from facegate.converters.quantize import _cle_pairs, equalize, to_int8
from facegate.converters.to_onnx import to_onnx
from facegate.converters.to_tflite import convert
from facegate.converters.train.shufflenet import build, shuffle_order

FP32_TOLERANCE = 1e-5  # ONNX Runtime vs LiteRT on the same FP32 graph (the bar)
INT8_MIN_COSINE = 0.95  # an INT8 copy of a random small net stays this close to its own FP32


def _conv(
    src: str, out: str, cin: int, cout: int, rng: np.random.Generator, group: int = 1
) -> Layer:
    kernel = rng.standard_normal((cout, cin // group, 3, 3)).astype(np.float32) * 0.3
    weights = {"kernel": kernel, "bias": rng.standard_normal(cout).astype(np.float32) * 0.1}
    return Layer("conv", [src], out, {"stride": 1, "padding": "same", "group": group}, weights)


def _channel_graph() -> Graph:
    """conv 8 -> split in two gathers -> a conv on one half -> concat -> shuffled gather -> conv."""
    rng = np.random.default_rng(3)
    layers = [
        _conv("input", "a", 3, 8, rng),
        Layer("relu", ["a"], "a_act"),
        Layer("gather_channels", ["a_act"], "keep", {"indices": [6, 0, 2, 4]}),
        Layer("gather_channels", ["a_act"], "split", {"indices": [1, 3, 5, 7]}),
        _conv("split", "b", 4, 4, rng, group=4),
        Layer("concat", ["keep", "b", "input"], "cat"),
        Layer("gather_channels", ["cat"], "shuffled", {"indices": shuffle_order(10)[::-1]}),
        _conv("shuffled", "c", 10, 5, rng),
    ]
    return Graph("channels", "input", (None, 12, 12, 3), layers, ["c", "cat"])


def _onnx(graph: Graph, x: np.ndarray) -> list[np.ndarray]:
    return ort.InferenceSession(to_onnx(graph).SerializeToString()).run(None, {"input": x})


def _numpy_channels(x: np.ndarray, graph: Graph) -> np.ndarray:
    """The ``cat`` output computed by hand from the ONNX ``a``/``b`` convs' semantics."""
    a = np.maximum(_onnx(Graph("a", "input", graph.input_shape, graph.layers[:1], ["a"]), x)[0], 0)
    sub = Graph("b", "split", (None, 12, 12, 4), graph.layers[4:5], ["b"])
    b = ort.InferenceSession(to_onnx(sub).SerializeToString()).run(None, {"split": a[..., 1::2]})[0]
    return np.concatenate([a[..., [6, 0, 2, 4]], b, x], axis=-1)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    num = (a * b).sum(1)
    return float((num / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min())


def test_channel_ops_take_the_channels_they_name() -> None:
    graph = _channel_graph()
    x = np.random.default_rng(4).uniform(-1, 1, (2, 12, 12, 3)).astype(np.float32)
    c, cat = _onnx(graph, x)
    assert cat.shape == (2, 12, 12, 11) and c.shape == (2, 12, 12, 5)
    np.testing.assert_allclose(cat, _numpy_channels(x, graph), atol=1e-5)


def test_shuffle_order_is_reshape_transpose() -> None:
    channels = np.arange(12)
    want = channels.reshape(2, 6).T.reshape(-1)
    assert shuffle_order(12) == list(want)


def test_channel_ops_cost_no_macs_and_carry_shapes() -> None:
    graph = _channel_graph()
    # a: 3·3·3·8·144, b (depthwise 4): 3·3·1·4·144, c: 3·3·10·5·144 - the concat is 4+4+3 wide
    # but the shuffled gather feeds c 10 of its 11 channels (shuffle_order(10) indices).
    assert count_macs(graph, 12, 12) == 144 * (3 * 3 * 3 * 8 + 3 * 3 * 4 + 3 * 3 * 10 * 5)


def test_onnx_runtime_and_litert_agree_on_channel_ops(tmp_path: Path) -> None:
    graph = _channel_graph()
    x = np.random.default_rng(5).uniform(-1, 1, (2, 12, 12, 3)).astype(np.float32)
    path = tmp_path / "channels.tflite"
    path.write_bytes(convert(graph, "fp32"))
    got = LiteRTBackend(path).run(x)
    for a, b in zip(_onnx(graph, x), got, strict=True):
        assert a.shape == b.shape
        assert np.abs(a - b).max() <= FP32_TOLERANCE * max(1.0, float(np.abs(a).max()))


def _calibration(shape: tuple[int, ...], count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(6)
    return [rng.uniform(-1, 1, (1, *shape)).astype(np.float32) for _ in range(count)]


def test_channel_ops_pass_through_int8(tmp_path: Path) -> None:
    graph = _channel_graph()
    calib = _calibration((12, 12, 3), 16)
    x = np.concatenate(_calibration((12, 12, 3), 4))
    want = _onnx(graph, x)[0]
    onnx_path = to_int8(to_onnx(equalize(graph)), calib, tmp_path / "c.int8.onnx")
    got = ort.InferenceSession(str(onnx_path)).run(None, {"input": x})[0]
    assert _cosine(got, want) > INT8_MIN_COSINE
    tfl = tmp_path / "c.int8.tflite"
    tfl.write_bytes(convert(graph, "int8-full", lambda: iter(np.concatenate(calib))))
    assert _cosine(LiteRTBackend(tfl).run(x)[0], want) > INT8_MIN_COSINE


@pytest.fixture(scope="module")
def student() -> Graph:
    return build(0.5, seed=7)


def test_student_is_seeded_and_its_costs_are_known(student: Graph) -> None:
    again, other = build(0.5, seed=7), build(0.5, seed=8)
    same = all(
        np.array_equal(a.weights[k], b.weights[k])
        for a, b in zip(student.layers, again.layers, strict=True)
        for k in a.weights
    )
    assert same and not np.array_equal(
        student.layers[0].weights["kernel"], other.layers[0].weights["kernel"]
    )
    assert student.params() == 632_368
    assert count_macs(student, 112, 112) == 38_163_360
    wide = build(1.0)
    assert wide.params() == 1_406_208 and count_macs(wide, 112, 112) == 141_102_168
    with pytest.raises(ValueError, match="no ShuffleNet V2 width"):
        build(0.75)


def test_student_converts_to_every_format(student: Graph, tmp_path: Path) -> None:
    x = np.concatenate(_calibration((112, 112, 3), 2))
    want = _onnx(student, x)[0]
    assert want.shape == (2, 192)
    fp32 = tmp_path / "s.tflite"
    fp32.write_bytes(convert(student, "fp32"))
    got = LiteRTBackend(fp32).run(x)[0]
    assert np.abs(got - want).max() <= FP32_TOLERANCE * max(1.0, float(np.abs(want).max()))
    # Cross-layer equalisation finds the pw1 -> dw -> pw2 chains and keeps the function.
    assert len(_cle_pairs(student)) >= 2 * 13
    np.testing.assert_allclose(_onnx(equalize(student), x)[0], want, rtol=1e-3, atol=1e-3)
    calib = _calibration((112, 112, 3), 8)
    got8 = ort.InferenceSession(
        str(to_int8(to_onnx(equalize(student)), calib, tmp_path / "s.onnx"))
    ).run(None, {"input": x})[0]
    assert got8.shape == want.shape and np.isfinite(got8).all()
    int8 = tmp_path / "s.int8.tflite"
    int8.write_bytes(convert(student, "int8-full", lambda: iter(np.concatenate(calib))))
    assert LiteRTBackend(int8).run(x)[0].shape == (2, 192)
