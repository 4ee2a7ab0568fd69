"""A layer graph (:mod:`facegate.converters.ir`) as a torch module, and trained weights back.

:func:`to_module` builds a module that computes exactly what the graph describes (NHWC float in,
the graph's outputs out, NCHW inside as in the ONNX emitter); every weight becomes a Parameter.
One function per op in :data:`OP_TABLE`, so more ops are one entry each. :func:`to_graph` copies
the graph with the module's (trained) weights, ready for ``to_onnx`` / ``to_tflite``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facegate.converters.ir import Graph, Layer

Tensor = torch.Tensor
OpFn = Callable[[Layer, list[Tensor], dict[str, Tensor]], Tensor]
# The NHWC input seen as NCHW is already channels-last in memory; oneDNN's convs run several
# times faster on it than on NCHW-contiguous tensors (MobileFaceNet forward + backward, one
# thread: 674 ms vs 1063 ms per crop on a busy core), so every op keeps that layout.
CHANNELS_LAST = torch.channels_last


def _same_pad(x: Tensor, kernel: int, stride: int) -> Tensor:
    """TensorFlow/ONNX SAME_UPPER padding: the odd extra pixel goes bottom/right."""
    pads = []
    for size in (x.shape[3], x.shape[2]):  # F.pad wants the last dim first
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


def _conv(layer: Layer, xs: list[Tensor], w: dict[str, Tensor]) -> Tensor:
    stride = int(layer.attrs.get("stride", 1))
    x, kernel, padding = xs[0], w["kernel"], 0
    if layer.attrs.get("padding") == "same":
        if stride == 1 and kernel.shape[2] % 2 and kernel.shape[3] % 2:
            padding = (kernel.shape[2] // 2, kernel.shape[3] // 2)  # symmetric: the conv pads
        else:  # F.pad returns NCHW-contiguous: back to channels-last for the next convs
            x = _same_pad(x, kernel.shape[2], stride).contiguous(memory_format=CHANNELS_LAST)
    group = int(layer.attrs.get("group", 1))
    return F.conv2d(x, kernel, w.get("bias"), stride=stride, padding=padding, groups=group)


def _prelu(layer: Layer, xs: list[Tensor], w: dict[str, Tensor]) -> Tensor:
    return F.prelu(xs[0], w["slope"])  # one pass over the tensor instead of four


def _maxpool(layer: Layer, xs: list[Tensor], w: dict[str, Tensor]) -> Tensor:
    k, s = int(layer.attrs["kernel"]), int(layer.attrs["stride"])
    ceil = layer.attrs.get("padding", "ceil") == "ceil"
    return F.max_pool2d(xs[0], k, s, ceil_mode=ceil)


def _flatten(perm: tuple[int, ...]) -> OpFn:
    def run(layer: Layer, xs: list[Tensor], w: dict[str, Tensor]) -> Tensor:
        return xs[0].permute(*perm).flatten(1)

    return run


OP_TABLE: dict[str, OpFn] = {
    "conv": _conv,
    "prelu": _prelu,
    "relu": lambda layer, xs, w: F.relu(xs[0]),
    "add": lambda layer, xs, w: xs[0] + xs[1],
    "dense": lambda layer, xs, w: xs[0] @ w["kernel"] + w["bias"],
    "flatten": _flatten((0, 2, 3, 1)),  # NHWC order, as the TFLite reshape
    "flatten_wh": _flatten((0, 3, 2, 1)),  # Caffe's W-major order
    "maxpool": _maxpool,
    "softmax": lambda layer, xs, w: torch.softmax(xs[0], dim=1),
    "concat": lambda layer, xs, w: torch.cat(xs, dim=1),
    "gather_channels": lambda layer, xs, w: xs[0][:, list(layer.attrs["indices"])],
}


def _param_key(index: int, name: str) -> str:
    return f"L{index}_{name}"


class GraphModule(nn.Module):
    """Runs a :class:`Graph` with its weights as Parameters; NHWC float in, graph outputs out."""

    def __init__(self, graph: Graph) -> None:
        super().__init__()
        missing = sorted({layer.op for layer in graph.layers} - set(OP_TABLE))
        if missing:
            raise ValueError(f"no torch op for {', '.join(missing)}")
        self.graph = graph
        self.weights = nn.ParameterDict(
            {
                _param_key(i, k): nn.Parameter(torch.from_numpy(np.array(v, np.float32)))
                for i, layer in enumerate(graph.layers)
                for k, v in layer.weights.items()
            }
        )
        self.taps: tuple[str, ...] = ()  # intermediate tensors to return too (feature losses)

    def layer_weights(self, index: int) -> dict[str, Tensor]:
        """The Parameters of layer ``index`` by their graph names."""
        layer = self.graph.layers[index]
        return {k: self.weights[_param_key(index, k)] for k in layer.weights}

    def run(self, x: Tensor) -> dict[str, Tensor]:
        """Every tensor of the graph (NCHW inside) for an NHWC batch."""
        env = {self.graph.input_name: x.permute(0, 3, 1, 2)}
        for i, layer in enumerate(self.graph.layers):
            xs = [env[name] for name in layer.inputs]
            env[layer.output] = OP_TABLE[layer.op](layer, xs, self.layer_weights(i))
        return env

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, ...]:
        """The graph's outputs (NHWC where 4-d); one tensor when there is one output."""
        env = self.run(x)
        outs = tuple(_nhwc(env[name]) for name in self.graph.outputs)
        if self.taps:
            outs += tuple(env[name] for name in self.taps)
        return outs[0] if len(outs) == 1 else outs


def _nhwc(t: Tensor) -> Tensor:
    return t.permute(0, 2, 3, 1) if t.dim() == 4 else t


def to_module(graph: Graph) -> GraphModule:
    """A torch module computing ``graph`` (its weights copied into Parameters)."""
    return GraphModule(graph)


def to_graph(module: GraphModule, graph: Graph | None = None) -> Graph:
    """A copy of ``graph`` (default: the module's own) holding the module's current weights."""
    out = copy.deepcopy(graph if graph is not None else module.graph)
    for i, layer in enumerate(out.layers):
        for key in layer.weights:
            value = module.weights[_param_key(i, key)].detach().cpu().numpy()
            if value.shape != layer.weights[key].shape:
                raise ValueError(
                    f"layer {i} {key}: module {value.shape}, graph {layer.weights[key].shape}"
                )
            layer.weights[key] = np.array(value, np.float32)
    return out
