"""A tiny layer graph shared by every converter: one description, emitted to ONNX and to TFLite.

Weights are stored in one canonical layout so the emitters never guess:
conv kernels OIHW (depthwise: (C, 1, kH, kW) with ``group == C``), dense weights (in, out),
PReLU slopes (C,). Activations are NHWC in the graph's input spec; the ONNX emitter works in
NCHW and the TensorFlow emitter in NHWC.

Channel ops (ShuffleNet V2): ``concat`` joins its inputs along the channel axis, in input order;
``gather_channels`` picks the channels listed in ``attrs["indices"]`` (in that order), so a channel
split and a channel shuffle are both one constant gather (and a shuffle folds into the next split).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

OPS = ("conv", "prelu", "relu", "maxpool", "dense", "flatten_wh", "softmax", "add", "flatten")
# Zero padding of H and W by explicit amounts, attrs ``pads`` = (top, left, bottom, right): a
# torch conv's symmetric padding at stride 2 is neither 'same' nor 'valid', so it becomes pad +
# valid conv. Mean over H and W to a (N, C) vector (a torch ``mean(dim=(2, 3))``).
OPS += ("pad", "global_avgpool")
# The logistic function, elementwise (a Keras ``Dense(1, activation="sigmoid")`` head).
OPS += ("sigmoid",)


@dataclass
class Layer:
    """One operation: ``op`` on ``inputs`` producing ``output``."""

    op: str
    inputs: list[str]
    output: str
    attrs: dict[str, object] = field(default_factory=dict)
    weights: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"unknown op {self.op!r}")


@dataclass
class Graph:
    """A network: NHWC float input, layers in topological order, named outputs."""

    name: str
    input_name: str
    input_shape: tuple[int | None, int | None, int | None, int]  # N, H, W, C; None = dynamic
    layers: list[Layer]
    outputs: list[str]

    def params(self) -> int:
        """Number of weights and biases."""
        return int(sum(w.size for layer in self.layers for w in layer.weights.values()))


CHANNEL_OPS = ("concat", "gather_channels")  # ShuffleNet V2's split, concat and shuffle
OPS = OPS + CHANNEL_OPS  # every op the graph knows (readers such as ir_store check against it)


def gather_indices(layer: Layer) -> np.ndarray:
    """The channel indices of a ``gather_channels`` layer as int64."""
    return np.asarray(layer.attrs["indices"], dtype=np.int64).reshape(-1)


def conv_out(size: int, kernel: int, stride: int, padding: str) -> int:
    """Spatial output size of a conv/pool ('valid', 'same' or 'ceil' = Caffe ceil mode)."""
    if padding == "same":
        return -(-size // stride)
    if padding == "ceil":
        return -(-(size - kernel) // stride) + 1
    return (size - kernel) // stride + 1


def count_macs(graph: Graph, height: int, width: int) -> int:
    """Multiply-accumulates for one image of the given size (conv: kW·kH·Cin/g·Cout·Hout·Wout)."""
    shapes: dict[str, tuple[int, ...]] = {graph.input_name: (height, width, graph.input_shape[3])}
    macs = 0
    for layer in graph.layers:
        src = shapes[layer.inputs[0]]
        if layer.op == "conv":
            kernel = layer.weights["kernel"]
            cout, cin_g, kh, kw = kernel.shape
            stride = int(layer.attrs.get("stride", 1))
            pad = str(layer.attrs.get("padding", "valid"))
            h, w = conv_out(src[0], kh, stride, pad), conv_out(src[1], kw, stride, pad)
            macs += kh * kw * cin_g * cout * h * w
            shapes[layer.output] = (h, w, cout)
        elif layer.op == "concat":
            channels = sum(shapes[name][-1] for name in layer.inputs)
            shapes[layer.output] = (*src[:-1], channels)
        elif layer.op == "gather_channels":
            shapes[layer.output] = (*src[:-1], len(gather_indices(layer)))
        elif layer.op == "maxpool":
            k, s = int(layer.attrs["kernel"]), int(layer.attrs["stride"])
            pad = str(layer.attrs.get("padding", "ceil"))
            shapes[layer.output] = (
                conv_out(src[0], k, s, pad),
                conv_out(src[1], k, s, pad),
                src[2],
            )
        elif layer.op == "dense":
            din, dout = layer.weights["kernel"].shape
            macs += din * dout
            shapes[layer.output] = (dout,)
        elif layer.op in ("flatten_wh", "flatten"):
            shapes[layer.output] = (int(np.prod(src)),)
        elif layer.op == "pad":
            top, left, bottom, right = (int(p) for p in layer.attrs["pads"])  # type: ignore[union-attr]
            shapes[layer.output] = (src[0] + top + bottom, src[1] + left + right, src[2])
        elif layer.op == "global_avgpool":
            shapes[layer.output] = (src[2],)
        else:
            shapes[layer.output] = src
    return int(macs)
