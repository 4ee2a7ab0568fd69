"""The ONNX reader: the liveness net becomes the same function in the IR, on both runtimes,
and what the IR cannot represent exactly is refused with one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from facegate.backends.litert import LiteRTBackend
from facegate.converters.ir import Graph, Layer, count_macs
from facegate.converters.onnx_reader import OnnxGraphError, read
from facegate.converters.to_onnx import to_onnx
from facegate.converters.to_tflite import convert
from facegate.vision.liveness import weights_dir

LIVENESS = weights_dir() / "liveness-nuaa-v1.onnx"


def _ort(model: onnx.ModelProto | Path, x: np.ndarray) -> np.ndarray:
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _litert(graph: Graph, x: np.ndarray, tmp_path: Path) -> np.ndarray:
    path = tmp_path / "g.tflite"
    path.write_bytes(convert(graph, "fp32"))
    return LiteRTBackend(path).run(x)[0]


def test_liveness_net_reads_into_the_same_function_on_both_runtimes(tmp_path: Path) -> None:
    graph = read(LIVENESS, "liveness")
    ops = [layer.op for layer in graph.layers]
    assert ops.count("conv") == 9 and ops.count("pad") == 4  # the four stride-2 convs
    assert ops[-3:] == ["global_avgpool", "dense", "softmax"]
    assert graph.outputs == ["prob"] and graph.input_shape == (None, 64, 64, 3)
    assert graph.params() == 24098  # conv + dense weights and biases (BN folded by the export)
    x = np.random.default_rng(3).uniform(0, 1, (4, 64, 64, 3)).astype(np.float32)
    want = _ort(LIVENESS, x)
    assert np.abs(_ort(to_onnx(graph), x) - want).max() < 1e-5
    got = np.concatenate([_litert(graph, x[i : i + 1], tmp_path) for i in range(len(x))])
    assert np.abs(got - want).max() < 1e-5


def test_pad_and_global_avgpool_cost_and_shape() -> None:
    kernel = np.ones((8, 3, 3, 3), np.float32)
    graph = Graph(
        "g",
        "x",
        (1, 10, 10, 3),
        [
            Layer("pad", ["x"], "p", attrs={"pads": (1, 1, 1, 1)}),
            Layer(
                "conv",
                ["p"],
                "c",
                {"stride": 2},
                {"kernel": kernel, "bias": np.zeros(8, np.float32)},
            ),
            Layer("global_avgpool", ["c"], "g"),
        ],
        ["g"],
    )
    assert count_macs(graph, 10, 10) == 3 * 3 * 3 * 8 * 5 * 5  # 12x12 padded, 5x5 out
    x = np.random.default_rng(0).normal(size=(1, 10, 10, 3)).astype(np.float32)
    out = _ort(to_onnx(graph), x)
    assert out.shape == (1, 8)


def _conv_model(pads: list[int], stride: int = 2, **extra: object) -> onnx.ModelProto:
    """image (NHWC 1x8x8x3) -> Transpose -> Conv 3x3 -> output."""
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    nodes = [
        helper.make_node("Transpose", ["image"], ["t"], perm=[0, 3, 1, 2]),
        helper.make_node(
            "Conv", ["t", "w"], ["y"], kernel_shape=[3, 3], pads=pads, strides=[stride] * 2, **extra
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 8, 8, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [w],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _read(model: onnx.ModelProto, tmp_path: Path) -> Graph:
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    return read(path, "m")


def test_symmetric_stride_two_padding_is_kept_exactly_not_called_same(tmp_path: Path) -> None:
    """At stride 2 on an even size torch pads 1 on both sides; TF 'same' pads 0 before, 1 after."""
    graph = _read(_conv_model([1, 1, 1, 1]), tmp_path)
    assert [layer.op for layer in graph.layers] == ["pad", "conv"]
    assert graph.layers[1].attrs["padding"] == "valid"
    assert _read(_conv_model([1, 1, 1, 1], stride=1), tmp_path).layers[0].attrs["padding"] == "same"


@pytest.mark.parametrize(
    ("model", "why"),
    [
        (_conv_model([1, 1, 1, 1], dilations=[2, 2]), "dilated"),
        (_conv_model([-1, 0, 0, 0]), "negative pads"),
        (_conv_model([0, 0, 0, 0], stride=1, auto_pad="SAME_LOWER"), "auto_pad"),
    ],
)
def test_what_the_ir_cannot_represent_is_refused_in_one_line(
    model: onnx.ModelProto, why: str, tmp_path: Path
) -> None:
    if why == "auto_pad":
        del model.graph.node[1].attribute[:]
        model.graph.node[1].attribute.extend(
            [
                helper.make_attribute("kernel_shape", [3, 3]),
                helper.make_attribute("auto_pad", "SAME_LOWER"),
            ]
        )
    with pytest.raises(OnnxGraphError, match=why) as err:
        _read(model, tmp_path)
    assert "\n" not in str(err.value)


def test_unknown_ops_and_a_missing_layout_transpose_are_refused(tmp_path: Path) -> None:
    model = _conv_model([0, 0, 0, 0])
    model.graph.node.append(helper.make_node("Sigmoid", ["y"], ["z"], name="sig"))
    model.graph.output[0].name = "z"
    with pytest.raises(OnnxGraphError, match="op Sigmoid is not supported"):
        _read(model, tmp_path)
    nchw = _conv_model([0, 0, 0, 0])
    del nchw.graph.node[0]
    nchw.graph.node[0].input[0] = "image"
    with pytest.raises(OnnxGraphError, match="NHWC input to NCHW"):
        _read(nchw, tmp_path)
