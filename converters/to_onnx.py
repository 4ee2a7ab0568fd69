"""Emit a layer graph as ONNX: NHWC float I/O (as the TFLite files), NCHW inside."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from facegate.converters.ir import CHANNEL_OPS, Graph, Layer, gather_indices

OPSET = 17


def _dim(value: int | None, name: str) -> int | str:
    return value if value is not None else name


class _Emitter:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.rank: dict[str, int] = {"x_nchw": 4}

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs: object) -> None:
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))

    def prelu(self, src: str, out: str, slope: np.ndarray) -> None:
        """PReLU as elementwise ops with the same result to the bit, several times faster.

        onnxruntime's own PRelu kernel is slow on CPU (1.4 ms for 10x143x191 floats, a Mul 34 us):
        it was the costliest node of every net here. ``max(x, s*x)`` equals PReLU where every
        slope is <= 1 (x > 0: s*x <= x; x < 0: s*x >= x); otherwise ``relu(x) + s*min(x, 0)``
        (one of the two terms is an exact zero). Both round once, as PReLU does.
        """
        s = self.const(out + "_s", slope)
        if float(slope.max()) <= 1.0:
            self.node("Mul", [src, s], out + "_sx")
            self.node("Max", [src, out + "_sx"], out)
            return
        self.node("Relu", [src], out + "_pos")
        self.node("Min", [src, self.const(out + "_zero", np.zeros((), np.float32))], out + "_neg")
        self.node("Mul", [out + "_neg", s], out + "_sneg")
        self.node("Add", [out + "_pos", out + "_sneg"], out)

    def channel_op(self, layer: Layer, src: str) -> None:
        """``concat`` (Concat on axis 1) or ``gather_channels`` (Gather on axis 1), NCHW or NC."""
        out = layer.output
        if layer.op == "concat":
            self.node("Concat", [self._src(name) for name in layer.inputs], out, axis=1)
        else:
            self.node("Gather", [src, self.const(out + "_idx", gather_indices(layer))], out, axis=1)
        self.rank[out] = self.rank[src]

    def emit(self, layer: Layer, src: str) -> None:
        if layer.op in CHANNEL_OPS:
            self.channel_op(layer, src)
            return
        out, rank = layer.output, self.rank[src]
        w = layer.weights
        if layer.op == "conv":
            kernel = w["kernel"]
            attrs: dict[str, object] = {
                "strides": [int(layer.attrs.get("stride", 1))] * 2,
                "group": int(layer.attrs.get("group", 1)),
                "kernel_shape": list(kernel.shape[2:]),
            }
            if layer.attrs.get("padding") == "same":
                attrs["auto_pad"] = "SAME_UPPER"
            ins = [src, self.const(out + "_w", kernel)]
            if "bias" in w:
                ins.append(self.const(out + "_b", w["bias"]))
            self.node("Conv", ins, out, **attrs)
        elif layer.op == "prelu":
            self.prelu(src, out, w["slope"].reshape((-1, 1, 1) if rank == 4 else (-1,)))
        elif layer.op == "relu":
            self.node("Relu", [src], out)
        elif layer.op == "maxpool":
            k, s = int(layer.attrs["kernel"]), int(layer.attrs["stride"])
            ceil = 1 if layer.attrs.get("padding", "ceil") == "ceil" else 0
            self.node("MaxPool", [src], out, kernel_shape=[k, k], strides=[s, s], ceil_mode=ceil)
        elif layer.op in ("flatten_wh", "flatten"):
            perm = [0, 3, 2, 1] if layer.op == "flatten_wh" else [0, 2, 3, 1]
            self.node("Transpose", [src], out + "_t", perm=perm)
            self.node("Flatten", [out + "_t"], out, axis=1)
            rank = 2
        elif layer.op == "dense":
            ins = [src, self.const(out + "_w", w["kernel"]), self.const(out + "_b", w["bias"])]
            self.node("Gemm", ins, out)
        elif layer.op == "sigmoid":
            self.node("Sigmoid", [src], out)
        elif layer.op == "softmax":
            self.node("Softmax", [src], out, axis=1 if rank == 4 else -1)
        elif layer.op == "add":
            self.node("Add", [src, self._src(layer.inputs[1])], out)
        elif layer.op == "pad":
            top, left, bottom, right = (int(p) for p in layer.attrs["pads"])  # type: ignore[union-attr]
            pads = np.array([0, 0, top, left, 0, 0, bottom, right], np.int64)
            self.node("Pad", [src, self.const(out + "_pads", pads)], out)
        elif layer.op == "global_avgpool":
            self.node("ReduceMean", [src], out, axes=[2, 3], keepdims=0)
            rank = 2
        self.rank[out] = rank

    def _src(self, name: str) -> str:
        return "x_nchw" if name == self.graph.input_name else name

    def model(self) -> onnx.ModelProto:
        g = self.graph
        n, h, w, c = g.input_shape
        shape = [_dim(n, "batch"), _dim(h, "height"), _dim(w, "width"), c]
        self.node("Transpose", [g.input_name], "x_nchw", perm=[0, 3, 1, 2])
        for layer in g.layers:
            self.emit(layer, self._src(layer.inputs[0]))
        outputs = []
        for name in g.outputs:  # internal tensors are renamed so outputs keep the graph's names
            internal = "_" + name
            self._rename(name, internal)
            if self.rank[name] == 4:
                self.node("Transpose", [internal], name, perm=[0, 2, 3, 1])
            else:
                self.node("Identity", [internal], name)
            rank = self.rank[name]
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [None] * rank))
        inp = helper.make_tensor_value_info(g.input_name, TensorProto.FLOAT, shape)
        graph = helper.make_graph(self.nodes, g.name, [inp], outputs, self.inits)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="facegate-converters",
        )
        model.ir_version = 8
        return model

    def _rename(self, old: str, new: str) -> None:
        for node in self.nodes:
            node.output[:] = [new if o == old else o for o in node.output]
            node.input[:] = [new if i == old else i for i in node.input]
            if node.name == old:
                node.name = new


def to_onnx(graph: Graph) -> onnx.ModelProto:
    """Convert ``graph`` to a checked ONNX model (dynamic batch; dynamic H×W where possible)."""
    model = _Emitter(graph).model()
    onnx.checker.check_model(model, full_check=True)
    return model


def save(model: onnx.ModelProto, path: Path, metadata: dict[str, str] | None = None) -> Path:
    """Write ``model`` with optional metadata properties that travel inside the file."""
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
