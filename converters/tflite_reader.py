"""Read a float TFLite graph (MobileFaceNet) into the layer graph of :mod:`facegate.converters.ir`.

Only the operators MobileFaceNet uses are understood. Its PReLU is stored decomposed as
``relu(x) + c * (x - |x|)``, which equals PReLU with slope ``2c``; it is fused back into one
``prelu`` layer so ONNX Runtime and XNNPACK run a single kernel. Anything else is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facegate.converters.ir import Graph, Layer

_PADDING = {0: "same", 1: "valid"}
_FUSED_NONE, _FUSED_RELU = 0, 1


@dataclass
class _Op:
    kind: str
    inputs: list[int]
    outputs: list[int]
    options: object


class TFLiteGraphError(ValueError):
    """The TFLite file uses an operator or pattern this reader does not understand."""


class _Reader:
    def __init__(self, data: bytes) -> None:
        import tflite
        from tflite.BuiltinOperator import BuiltinOperator

        names = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
        self.model = tflite.Model.GetRootAsModel(data, 0)
        self.sub = self.model.Subgraphs(0)
        self.ops: list[_Op] = []
        for i in range(self.sub.OperatorsLength()):
            op = self.sub.Operators(i)
            code = self.model.OperatorCodes(op.OpcodeIndex())
            kind = names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
            self.ops.append(
                _Op(
                    kind,
                    list(op.InputsAsNumpy()),
                    list(op.OutputsAsNumpy()),
                    self._options(op, kind),
                )
            )
        self.producer = {o: op for op in self.ops for o in op.outputs}

    @staticmethod
    def _options(op: object, kind: str) -> object:
        import tflite

        cls = {
            "CONV_2D": tflite.Conv2DOptions,
            "DEPTHWISE_CONV_2D": tflite.DepthwiseConv2DOptions,
        }.get(kind)
        if cls is None:
            return None
        table = op.BuiltinOptions()
        opts = cls()
        opts.Init(table.Bytes, table.Pos)
        return opts

    def const(self, index: int) -> np.ndarray | None:
        tensor = self.sub.Tensors(index)
        buf = self.model.Buffers(tensor.Buffer())
        if buf.DataLength() == 0:
            return None
        if tensor.Type() != 0:  # FLOAT32
            raise TFLiteGraphError("only float32 TFLite graphs can be read")
        shape = tuple(tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
        return np.frombuffer(buf.DataAsNumpy().tobytes(), np.float32).reshape(shape).copy()

    def name(self, index: int) -> str:
        return f"t{index}"


def _conv(reader: _Reader, op: _Op) -> list[Layer]:
    opts = op.options
    if opts.StrideH() != opts.StrideW() or opts.DilationHFactor() != 1:
        raise TFLiteGraphError("unsupported conv stride/dilation")
    kernel = reader.const(op.inputs[1])
    if op.kind == "CONV_2D":
        kernel, group = kernel.transpose(0, 3, 1, 2), 1  # OHWI -> OIHW
    else:
        if opts.DepthMultiplier() != 1:
            raise TFLiteGraphError("unsupported depth multiplier")
        kernel = kernel.transpose(3, 0, 1, 2)  # 1HWC -> C1HW
        group = kernel.shape[0]
    out = reader.name(op.outputs[0])
    act = opts.FusedActivationFunction()
    conv_out = out + "_pre" if act == _FUSED_RELU else out
    layers = [
        Layer(
            "conv",
            [reader.name(op.inputs[0])],
            conv_out,
            {"stride": int(opts.StrideH()), "padding": _PADDING[opts.Padding()], "group": group},
            {"kernel": kernel, "bias": reader.const(op.inputs[2])},
        )
    ]
    if act == _FUSED_RELU:
        layers.append(Layer("relu", [conv_out], out))
    elif act != _FUSED_NONE:
        raise TFLiteGraphError(f"unsupported fused activation {act}")
    return layers


def _prelu_slope(reader: _Reader, add: _Op) -> tuple[int, np.ndarray] | None:
    """Match ``relu(x) + c * (x - abs(x))`` at ``add``; return (x, slope) or None."""
    a, b = (reader.producer.get(i) for i in add.inputs)
    if a is None or b is None:
        return None
    relu, mul = (a, b) if a.kind == "RELU" else (b, a)
    if relu.kind != "RELU" or mul.kind != "MUL":
        return None
    consts = [reader.const(i) for i in mul.inputs]
    c = next((v for v in consts if v is not None), None)
    sub = next(
        (reader.producer.get(i) for i, v in zip(mul.inputs, consts, strict=True) if v is None), None
    )
    if c is None or sub is None or sub.kind != "SUB":
        return None
    x = relu.inputs[0]
    absop = reader.producer.get(sub.inputs[1])
    if sub.inputs[0] != x or absop is None or absop.kind != "ABS" or absop.inputs[0] != x:
        return None
    return x, 2.0 * c.reshape(-1)


def read(path: Path, name: str = "mobilefacenet") -> Graph:
    """Parse ``path`` into a :class:`Graph` with fused PReLU and a dynamic batch."""
    reader = _Reader(path.read_bytes())
    layers: list[Layer] = []
    for op in reader.ops:
        out = reader.name(op.outputs[0])
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            layers.extend(_conv(reader, op))
        elif op.kind in ("RELU", "ABS", "SUB", "MUL"):
            continue  # consumed by the PReLU pattern; checked below
        elif op.kind == "ADD":
            match = _prelu_slope(reader, op)
            if match:
                layers.append(
                    Layer(
                        "prelu",
                        [reader.name(match[0])],
                        out,
                        {},
                        {"slope": match[1].astype(np.float32)},
                    )
                )
            else:
                layers.append(Layer("add", [reader.name(i) for i in op.inputs], out))
        elif op.kind == "RESHAPE":
            layers.append(Layer("flatten", [reader.name(op.inputs[0])], out))
        else:
            raise TFLiteGraphError(f"unsupported TFLite operator {op.kind}")
    _check_consumed(reader, layers)
    sub = reader.sub
    inp = sub.Tensors(sub.Inputs(0)).ShapeAsNumpy()
    outputs = [reader.name(sub.Outputs(i)) for i in range(sub.OutputsLength())]
    graph = Graph(
        name,
        reader.name(sub.Inputs(0)),
        (None, int(inp[1]), int(inp[2]), int(inp[3])),
        layers,
        outputs,
    )
    return _rename(graph, {outputs[0]: "embedding", graph.input_name: "input"})


def _check_consumed(reader: _Reader, layers: list[Layer]) -> None:
    """Every tensor a layer reads must be produced by a layer or be the graph input."""
    known = {reader.name(reader.sub.Inputs(0))} | {layer.output for layer in layers}
    for layer in layers:
        missing = [i for i in layer.inputs if i not in known]
        if missing:
            raise TFLiteGraphError(f"unsupported pattern feeding {layer.op} ({missing[0]})")


def _rename(graph: Graph, mapping: dict[str, str]) -> Graph:
    for layer in graph.layers:
        layer.inputs = [mapping.get(i, i) for i in layer.inputs]
        layer.output = mapping.get(layer.output, layer.output)
    graph.outputs = [mapping.get(o, o) for o in graph.outputs]
    graph.input_name = mapping.get(graph.input_name, graph.input_name)
    return graph
