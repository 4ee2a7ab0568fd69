"""Read a plain torch-exported ONNX graph into the layer graph of :mod:`facegate.converters.ir`.

Understood: an NHWC float input turned NCHW by one ``Transpose``, ``Conv`` (any group that is 1
or depthwise, equal strides, no dilation), ``Relu``, ``ReduceMean`` over H and W, ``Gemm`` and
``Softmax`` over the last axis: the operators of the liveness net ``converters/liveness_train.py``
exports. Padding is mapped only where the IR computes exactly the same thing: none is 'valid',
stride-1 symmetric ``(k - 1) / 2`` is 'same', any other non-negative pads become a ``pad`` layer
before a 'valid' conv. Anything else is refused with one line naming the node.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from facegate.converters.ir import Graph, Layer

NCHW = [0, 3, 1, 2]


class OnnxGraphError(ValueError):
    """The ONNX file uses an operator or attribute this reader cannot represent exactly."""


def _attrs(node: onnx.NodeProto) -> dict[str, object]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class _Reader:
    def __init__(self, model: onnx.ModelProto, name: str) -> None:
        self.name = name
        self.inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        self.layers: list[Layer] = []
        self.alias: dict[str, str] = {}  # ONNX tensor -> IR tensor
        self.rank: dict[str, int] = {}

    def const(self, node: onnx.NodeProto, index: int) -> np.ndarray:
        name = node.input[index] if index < len(node.input) else ""
        if name not in self.inits:
            raise OnnxGraphError(f"{node.name or node.op_type}: input {index} is not a constant")
        return np.asarray(self.inits[name], np.float32)

    def src(self, node: onnx.NodeProto) -> str:
        if node.input[0] not in self.alias:
            raise OnnxGraphError(f"{node.name or node.op_type}: reads a tensor this reader lost")
        return self.alias[node.input[0]]

    def add(self, node: onnx.NodeProto, op: str, rank: int, **kw: object) -> None:
        out = f"{op}_{len(self.layers)}"
        self.layers.append(Layer(op, [self.src(node)], out, **kw))  # type: ignore[arg-type]
        self.alias[node.output[0]], self.rank[out] = out, rank

    def node(self, node: onnx.NodeProto) -> None:
        handler = getattr(self, "_" + node.op_type.lower(), None)
        if handler is None:
            raise OnnxGraphError(f"{node.name or node.op_type}: op {node.op_type} is not supported")
        handler(node, _attrs(node))

    def _conv(self, node: onnx.NodeProto, a: dict) -> None:
        kernel = self.const(node, 1)
        cout, cin_g, kh, kw = kernel.shape
        bias = self.const(node, 2) if len(node.input) > 2 else np.zeros(cout, np.float32)
        strides, group = list(a.get("strides", [1, 1])), int(a.get("group", 1))
        where = node.name or "Conv"
        if any(int(d) != 1 for d in a.get("dilations", [1, 1])):
            raise OnnxGraphError(f"{where}: dilated convolution is not supported")
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise OnnxGraphError(f"{where}: auto_pad is not supported (only explicit pads)")
        if strides[0] != strides[1]:
            raise OnnxGraphError(f"{where}: unequal strides {strides} are not supported")
        if group != 1 and (cin_g != 1 or group != cout):
            raise OnnxGraphError(f"{where}: grouped convolution (group {group}) is not supported")
        padding = self._padding(node, list(a.get("pads", [0, 0, 0, 0])), strides[0], kh, kw)
        attrs = {"stride": strides[0], "padding": padding, "group": group}
        self.add(node, "conv", 4, attrs=attrs, weights={"kernel": kernel, "bias": bias})

    def _padding(self, node: onnx.NodeProto, pads: list[int], stride: int, kh: int, kw: int) -> str:
        """'valid', 'same', or a ``pad`` layer added first (then 'valid'): exact in each case."""
        top, left, bottom, right = (int(p) for p in pads)
        if min(pads) < 0:
            raise OnnxGraphError(f"{node.name or 'Conv'}: negative pads {pads} are not supported")
        if not any(pads):
            return "valid"
        odd = kh % 2 == 1 and kw % 2 == 1
        if (
            stride == 1
            and odd
            and (top, bottom, left, right) == ((kh - 1) // 2,) * 2 + ((kw - 1) // 2,) * 2
        ):
            return "same"
        out = f"pad_{len(self.layers)}"
        self.layers.append(
            Layer("pad", [self.src(node)], out, attrs={"pads": (top, left, bottom, right)})
        )
        self.alias[node.input[0]], self.rank[out] = out, 4
        return "valid"

    def _relu(self, node: onnx.NodeProto, a: dict) -> None:
        self.add(node, "relu", self.rank[self.src(node)])

    def _reducemean(self, node: onnx.NodeProto, a: dict) -> None:
        axes = a.get("axes")
        if axes is None and len(node.input) > 1:  # opset 18 moved axes to an input
            axes = self.inits.get(node.input[1])
        axes = sorted(int(x) for x in (axes if axes is not None else []))
        if self.rank[self.src(node)] != 4 or axes != [2, 3] or int(a.get("keepdims", 1)) != 0:
            raise OnnxGraphError(
                f"{node.name or 'ReduceMean'}: only a mean over H and W without keepdims "
                f"is supported (axes {axes}, keepdims {a.get('keepdims', 1)})"
            )
        self.add(node, "global_avgpool", 2)

    def _gemm(self, node: onnx.NodeProto, a: dict) -> None:
        weight = self.const(node, 1)
        if int(a.get("transB", 0)):
            weight = weight.T
        exact = float(a.get("alpha", 1.0)) == 1.0 and float(a.get("beta", 1.0)) == 1.0
        if not exact or int(a.get("transA", 0)) or self.rank[self.src(node)] != 2:
            raise OnnxGraphError(f"{node.name or 'Gemm'}: only x @ W + b on a vector is supported")
        bias = self.const(node, 2) if len(node.input) > 2 else np.zeros(weight.shape[1], np.float32)
        if bias.shape != (weight.shape[1],):
            raise OnnxGraphError(
                f"{node.name or 'Gemm'}: bias of shape {bias.shape} is not per output"
            )
        weights = {"kernel": np.ascontiguousarray(weight), "bias": bias}
        self.add(node, "dense", 2, weights=weights)

    def _softmax(self, node: onnx.NodeProto, a: dict) -> None:
        rank = self.rank[self.src(node)]
        if rank != 2 or int(a.get("axis", -1)) not in (-1, 1):
            raise OnnxGraphError(
                f"{node.name or 'Softmax'}: only a softmax over a vector is supported"
            )
        self.add(node, "softmax", 2)


def _input(model: onnx.ModelProto) -> tuple[str, tuple[int | None, int | None, int | None, int]]:
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise OnnxGraphError(f"the graph has {len(inputs)} inputs; one image input is supported")
    dims = inputs[0].type.tensor_type.shape.dim
    shape = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    if len(shape) != 4 or shape[3] is None:
        raise OnnxGraphError(f"input {inputs[0].name} of shape {shape} is not NHWC")
    return inputs[0].name, (shape[0], shape[1], shape[2], int(shape[3]))


def read(path: Path, name: str) -> Graph:
    """The layer graph of the torch-exported ONNX file at ``path``; refuses what it cannot map."""
    try:
        model = onnx.load(str(path))
    except (OSError, onnx.onnx_cpp2py_export.checker.ValidationError, ValueError) as err:
        raise OnnxGraphError(f"{path.name}: not a readable ONNX file ({err})") from None
    input_name, shape = _input(model)
    nodes = list(model.graph.node)
    first = nodes[0] if nodes else None
    if first is None or first.op_type != "Transpose" or first.input[0] != input_name:
        raise OnnxGraphError("the graph must start by transposing its NHWC input to NCHW")
    if list(_attrs(first).get("perm", [])) != NCHW:
        raise OnnxGraphError(f"{first.name or 'Transpose'}: perm must be {NCHW} (NHWC to NCHW)")
    reader = _Reader(model, name)
    reader.alias[first.output[0]], reader.rank[input_name] = input_name, 4
    for node in nodes[1:]:
        reader.node(node)
    outputs = [o.name for o in model.graph.output]
    missing = [o for o in outputs if o not in reader.alias]
    if missing:
        raise OnnxGraphError(f"output {missing[0]} is not computed by a supported node")
    for out in outputs:  # the IR's outputs keep the ONNX names
        internal = reader.alias[out]
        for layer in reader.layers:
            layer.output = out if layer.output == internal else layer.output
            layer.inputs = [out if i == internal else i for i in layer.inputs]
    return Graph(name, input_name, shape, reader.layers, outputs)
