"""Emit a layer graph as TFLite via TensorFlow: FP32, FP16 weights, dynamic and full INT8."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from facegate.converters.ir import CHANNEL_OPS, Graph, Layer, conv_out, gather_indices

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8-dynamic", "int8-full")


def _maxpool(tf: object, x: object, layer: Layer) -> object:
    """Caffe ceil-mode pooling: pad the end with -inf where TF's SAME would differ."""
    k, s = int(layer.attrs["kernel"]), int(layer.attrs["stride"])
    h, w = x.shape[1], x.shape[2]
    if layer.attrs.get("padding", "ceil") == "valid":  # floor mode: TF's VALID exactly
        return tf.nn.max_pool2d(x, k, s, "VALID")
    if k == s or h is None:
        return tf.nn.max_pool2d(x, k, s, "SAME")
    pad_h = max((conv_out(h, k, s, "ceil") - 1) * s + k - h, 0)
    pad_w = max((conv_out(w, k, s, "ceil") - 1) * s + k - w, 0)
    x = tf.pad(x, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]], constant_values=-3.0e38)
    return tf.nn.max_pool2d(x, k, s, "VALID")


def _channel_op(tf: object, layer: Layer, x: object, env: dict[str, object]) -> object:
    """``concat`` / ``gather_channels`` on the NHWC channel axis."""
    if layer.op == "concat":
        return tf.concat([env[name] for name in layer.inputs], axis=-1)
    return tf.gather(x, gather_indices(layer).astype(np.int32), axis=-1)


def _apply(tf: object, layer: Layer, x: object, env: dict[str, object]) -> object:
    w = layer.weights
    if layer.op in CHANNEL_OPS:
        return _channel_op(tf, layer, x, env)
    if layer.op == "conv":
        kernel, pad = w["kernel"], str(layer.attrs.get("padding", "valid")).upper()
        stride = int(layer.attrs.get("stride", 1))
        if int(layer.attrs.get("group", 1)) > 1:
            y = tf.nn.depthwise_conv2d(x, kernel.transpose(2, 3, 0, 1), [1, stride, stride, 1], pad)
        else:
            y = tf.nn.conv2d(x, kernel.transpose(2, 3, 1, 0), stride, pad)
        return tf.nn.bias_add(y, w["bias"])
    if layer.op == "prelu":
        return env["_prelu_" + layer.output](x)
    if layer.op == "relu":
        return tf.nn.relu(x)
    if layer.op == "maxpool":
        return _maxpool(tf, x, layer)
    if layer.op in ("flatten_wh", "flatten"):
        if layer.op == "flatten_wh":
            x = tf.transpose(x, [0, 2, 1, 3])
        return tf.reshape(x, [-1, int(np.prod(x.shape[1:]))])
    if layer.op == "dense":
        return tf.matmul(x, w["kernel"]) + w["bias"]
    if layer.op == "softmax":
        return tf.nn.softmax(x, axis=-1)
    if layer.op == "sigmoid":
        return tf.sigmoid(x)
    if layer.op == "add":
        return x + env[layer.inputs[1]]
    if layer.op == "pad":
        top, left, bottom, right = (int(p) for p in layer.attrs["pads"])  # type: ignore[union-attr]
        return tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]])
    if layer.op == "global_avgpool":
        return tf.reduce_mean(x, axis=[1, 2])
    raise ValueError(f"op {layer.op} has no TensorFlow form")


def _prelu_layers(graph: Graph) -> dict[str, object]:
    """Keras PReLU layers: with the slope as a variable the converter emits one PRELU op,
    where a constant slope leaves five elementwise ops (measured on TF 2.21)."""
    import keras

    ranks = _ranks(graph)
    out = {}
    for layer in graph.layers:
        if layer.op != "prelu":
            continue
        slope = layer.weights["slope"]
        rank = ranks[layer.inputs[0]]
        prelu = keras.layers.PReLU(shared_axes=[1, 2] if rank == 4 else None)
        prelu.build((None, 1, 1, slope.size) if rank == 4 else (None, slope.size))
        prelu.set_weights([slope.reshape((1, 1, -1) if rank == 4 else (-1,))])
        out["_prelu_" + layer.output] = prelu
    return out


def _ranks(graph: Graph) -> dict[str, int]:
    ranks = {graph.input_name: 4}
    for layer in graph.layers:
        flat = layer.op in ("flatten_wh", "flatten", "dense", "global_avgpool")
        ranks[layer.output] = 2 if flat else ranks[layer.inputs[0]]
    return ranks


def tf_function(graph: Graph, batch: int | None = None) -> object:
    """A ``tf.function`` of ``graph`` on NHWC float input; outputs in ``graph.outputs`` order."""
    import tensorflow as tf

    _, h, w, c = graph.input_shape
    spec = tf.TensorSpec([batch, h, w, c], tf.float32, name=graph.input_name)
    layers = _prelu_layers(graph)

    @tf.function(input_signature=[spec])
    def run(x: object) -> tuple[object, ...]:
        env: dict[str, object] = {graph.input_name: x, **layers}
        for layer in graph.layers:
            env[layer.output] = _apply(tf, layer, env[layer.inputs[0]], env)
        return tuple(env[name] for name in graph.outputs)  # TFLite keeps this order

    return run


def convert(
    graph: Graph, precision: str, calibration: Callable[[], Iterator[np.ndarray]] | None = None
) -> bytes:
    """Convert ``graph`` to a TFLite flatbuffer at ``precision`` (INT8-full needs calibration)."""
    import tensorflow as tf

    if precision not in PRECISIONS:
        raise ValueError(f"unknown TFLite precision {precision}")
    fn = tf_function(graph)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    if precision != "fp32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if precision == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    if precision == "int8-full":
        if calibration is None:
            raise ValueError("full INT8 needs a calibration set")
        converter.representative_dataset = lambda: ([x[None]] for x in calibration())
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
            tf.lite.OpsSet.TFLITE_BUILTINS,
        ]
    return converter.convert()


def save(data: bytes, path: Path) -> Path:
    """Write the flatbuffer and check it is non-empty."""
    if not data:
        raise ValueError(f"TFLite conversion produced an empty file for {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
