"""Read a TF.js graph model (``model.json`` + weight shards) into the converters' layer graph.

A TF.js graph model is a frozen TensorFlow GraphDef written as JSON (``modelTopology.node``)
plus one flat buffer of weights described, in order, by ``weightsManifest`` (float32, int32,
or quantized to float16 / uint8 / uint16 with a scale and minimum). Understood: one NHWC float
``Placeholder``, ``Conv2D`` / ``_FusedConv2D`` (bias, optional ReLU; equal strides, no
dilation, 'VALID' or 'SAME'), ``MaxPool`` (square, 'VALID', or 'SAME' with kernel = stride),
``Relu``, ``Reshape`` to ``[-1, H*W*C]`` (a Keras ``Flatten``), ``MatMul`` / ``_FusedMatMul``
(bias, optional ReLU), ``Sigmoid``, ``Softmax``, ``Identity``, and ``Mul`` / ``Add`` /
``AddV2`` by a per-channel constant (a batch norm after its activation, which TF cannot fold
into the conv): the operators of a small Keras ``Sequential`` CNN. A per-channel ``x * s + b``
becomes a 1x1 depthwise conv (on a vector: a diagonal dense), the multiply and the add in one
layer. Anything else is refused with one line naming the node.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np

from facegate.converters.ir import Graph, Layer

# Bytes per element of each stored dtype (after quantization, when the manifest quantizes).
_STORED = {
    "float32": np.float32,
    "int32": np.int32,
    "float16": np.float16,
    "uint8": np.uint8,
    "uint16": np.uint16,
}


class TfjsGraphError(ValueError):
    """The TF.js model uses an operator, attribute or weight encoding this reader cannot map."""


def read_weights(manifest: list[dict], folder: Path) -> dict[str, np.ndarray]:
    """Every weight of ``weightsManifest``, dequantized to float32 (int32 kept as is)."""
    out: dict[str, np.ndarray] = {}
    for group in manifest:
        try:
            buffer = b"".join((folder / p).read_bytes() for p in group["paths"])
        except OSError as err:
            raise TfjsGraphError(f"cannot read a weight shard ({err})") from None
        offset = 0
        for spec in group["weights"]:
            array, offset = _weight(spec, buffer, offset)
            out[spec["name"]] = array
        if offset != len(buffer):
            raise TfjsGraphError(f"weight shards hold {len(buffer)} bytes, manifest {offset}")
    return out


def _weight(spec: dict, buffer: bytes, offset: int) -> tuple[np.ndarray, int]:
    shape = [int(d) for d in spec["shape"]]
    quant = spec.get("quantization") or {}
    stored = quant.get("dtype", spec["dtype"])
    if stored not in _STORED or spec["dtype"] not in ("float32", "int32"):
        raise TfjsGraphError(f"weight {spec['name']}: dtype {stored} is not supported")
    count = int(np.prod(shape))
    raw = np.frombuffer(buffer, _STORED[stored], count, offset)
    offset += raw.nbytes
    if stored in ("uint8", "uint16"):  # affine quantization: q * scale + min
        value = raw.astype(np.float32) * float(quant["scale"]) + float(quant["min"])
    else:
        value = raw.astype(np.float32 if spec["dtype"] == "float32" else np.int32)
    return value.reshape(shape), offset


def _attr(node: dict, key: str) -> object:
    """A node attribute in plain Python: strings decoded, int lists as ints."""
    value = node.get("attr", {}).get(key)
    if value is None:
        return None
    if "s" in value:
        return base64.b64decode(value["s"]).decode()
    if "list" in value:
        items = value["list"]
        if "s" in items:
            return [base64.b64decode(s).decode() for s in items["s"]]
        return [int(i) for i in items.get("i", [])]
    if "i" in value:
        return int(value["i"])
    if "b" in value:
        return bool(value["b"])
    return value


class _Reader:
    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.weights = weights
        self.layers: list[Layer] = []
        self.alias: dict[str, str] = {}  # TF node -> IR tensor
        self.shape: dict[str, tuple[int, ...]] = {}  # IR tensor -> per-image shape
        self.affine: set[str] = set()  # layers made for a per-channel Mul: an Add folds in
        self.readers: dict[str, int] = {}  # TF node -> how many nodes read it

    def const(self, node: dict, index: int) -> np.ndarray:
        name = node["input"][index].split(":")[0]
        if name not in self.weights:
            raise TfjsGraphError(f"{node['name']}: input {index} is not a constant")
        return self.weights[name]

    def src(self, node: dict) -> str:
        name = node["input"][0].split(":")[0]
        if name not in self.alias:
            raise TfjsGraphError(f"{node['name']}: reads a tensor this reader lost")
        return self.alias[name]

    def add(self, node: dict, op: str, shape: tuple[int, ...], **kw: object) -> None:
        src = self.src(node)
        self.layers.append(Layer(op, [src], node["name"], **kw))  # type: ignore[arg-type]
        self.alias[node["name"]], self.shape[node["name"]] = node["name"], shape

    def node(self, node: dict) -> None:
        op = node["op"]
        if op in ("Const", "Placeholder"):
            return
        handler = getattr(self, "_" + op.lower().lstrip("_"), None)
        if handler is None:
            raise TfjsGraphError(f"{node['name']}: op {op} is not supported")
        handler(node)

    def _fused(self, node: dict, allowed: tuple[str, ...]) -> bool:
        """Whether a fused op ends in ReLU; refuses fusions other than BiasAdd [+ Relu]."""
        fused = list(_attr(node, "fused_ops") or [])  # type: ignore[arg-type]
        if fused not in (["BiasAdd"], ["BiasAdd", "Relu"]) or node["op"] not in allowed:
            raise TfjsGraphError(f"{node['name']}: fused ops {fused} are not supported")
        return fused[-1] == "Relu"

    def _relu_after(self, node: dict) -> None:
        layer = self.layers[-1]
        out = node["name"] + "/relu"
        self.layers.append(Layer("relu", [layer.output], out))
        self.alias[node["name"]], self.shape[out] = out, self.shape[layer.output]

    def _fusedconv2d(self, node: dict) -> None:
        relu = self._fused(node, ("_FusedConv2D",))
        self._conv2d(node, self.const(node, 2))
        if relu:
            self._relu_after(node)

    def _conv2d(self, node: dict, bias: np.ndarray | None = None) -> None:
        kernel = self.const(node, 1)  # HWIO
        strides, dil = _attr(node, "strides") or [1] * 4, _attr(node, "dilations") or [1] * 4
        pad = _attr(node, "padding")
        fmt = _attr(node, "data_format") or "NHWC"
        ok = fmt == "NHWC" and strides[1] == strides[2] and set(dil) == {1}  # type: ignore[index]
        if not ok or pad not in ("VALID", "SAME"):
            raise TfjsGraphError(f"{node['name']}: {fmt} {pad} conv {strides}/{dil} unsupported")
        kh, kw, _, cout = kernel.shape
        stride = int(strides[1])  # type: ignore[index]
        h, w, _ = self.shape[self.src(node)]
        if pad == "VALID":
            h, w = (h - kh) // stride + 1, (w - kw) // stride + 1
        else:
            h, w = -(-h // stride), -(-w // stride)
        weights = {
            "kernel": np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)),
            "bias": bias if bias is not None else np.zeros(cout, np.float32),
        }
        attrs = {"stride": stride, "padding": pad.lower(), "group": 1}  # type: ignore[union-attr]
        self.add(node, "conv", (h, w, cout), attrs=attrs, weights=weights)

    def _maxpool(self, node: dict) -> None:
        k, s, pad = _attr(node, "ksize"), _attr(node, "strides"), _attr(node, "padding")
        square = k[1] == k[2] and s[1] == s[2] and k[0] == k[3] == 1  # type: ignore[index]
        if not square or pad not in ("VALID", "SAME") or (pad == "SAME" and k[1] != s[1]):  # type: ignore[index]
            raise TfjsGraphError(f"{node['name']}: {pad} pooling {k}/{s} is not supported")
        k, s = int(k[1]), int(s[1])  # type: ignore[index]
        h, w, c = self.shape[self.src(node)]
        if pad == "VALID":  # floor mode
            shape, mode = ((h - k) // s + 1, (w - k) // s + 1, c), "valid"
        else:  # SAME with kernel = stride pads only the end: Caffe's ceil mode
            shape, mode = (-(-h // s), -(-w // s), c), "ceil"
        self.add(node, "maxpool", shape, attrs={"kernel": k, "stride": s, "padding": mode})

    def _relu(self, node: dict) -> None:
        self.add(node, "relu", self.shape[self.src(node)])

    def _reshape(self, node: dict) -> None:
        src_shape = self.shape[self.src(node)]
        target = [int(v) for v in self.const(node, 1).ravel()]
        size = int(np.prod(src_shape))
        if len(src_shape) != 3 or target != [-1, size]:
            raise TfjsGraphError(f"{node['name']}: only a flatten to [-1, H*W*C] is supported")
        self.add(node, "flatten", (size,))

    def _fusedmatmul(self, node: dict) -> None:
        relu = self._fused(node, ("_FusedMatMul",))
        self._matmul(node, self.const(node, 2))
        if relu:
            self._relu_after(node)

    def _matmul(self, node: dict, bias: np.ndarray | None = None) -> None:
        weight = self.const(node, 1)
        if _attr(node, "transpose_b"):
            weight = weight.T
        if _attr(node, "transpose_a") or len(self.shape[self.src(node)]) != 1:
            raise TfjsGraphError(f"{node['name']}: only x @ W (+ b) on a vector is supported")
        dout = weight.shape[1]
        bias = bias if bias is not None else np.zeros(dout, np.float32)
        weights = {"kernel": np.ascontiguousarray(weight), "bias": bias}
        self.add(node, "dense", (dout,), weights=weights)

    def _sigmoid(self, node: dict) -> None:
        self.add(node, "sigmoid", self.shape[self.src(node)])

    def _softmax(self, node: dict) -> None:
        if len(self.shape[self.src(node)]) != 1:
            raise TfjsGraphError(f"{node['name']}: only a softmax over a vector is supported")
        self.add(node, "softmax", self.shape[self.src(node)])

    def _mul(self, node: dict) -> None:
        self._affine(node, self.const(node, 1), None)

    def _add(self, node: dict) -> None:
        src, shift = self.src(node), self.const(node, 1)
        last = self.layers[-1] if self.layers else None
        alone = self.readers.get(src, 0) == 1  # nothing else reads x * s
        if last is not None and last.output == src and src in self.affine and alone:
            self._channelwise(node, shift)
            last.weights["bias"] = last.weights["bias"] + shift.astype(np.float32)
            self.alias[node["name"]] = src
            self.affine.discard(src)
            return
        self._affine(node, None, shift)

    _addv2 = _add

    def _channelwise(self, node: dict, value: np.ndarray) -> int:
        """The channel count, refusing a constant that is not one value per channel."""
        channels = self.shape[self.src(node)][-1]
        if value.shape != (channels,):
            raise TfjsGraphError(f"{node['name']}: {value.shape} is not one value per channel")
        return channels

    def _affine(self, node: dict, scale: np.ndarray | None, shift: np.ndarray | None) -> None:
        """``x * scale + shift`` per channel as a 1x1 depthwise conv, or a diagonal dense."""
        c = self._channelwise(node, scale if scale is not None else shift)  # type: ignore[arg-type]
        s = np.ones(c, np.float32) if scale is None else scale.astype(np.float32)
        b = np.zeros(c, np.float32) if shift is None else shift.astype(np.float32)
        shape = self.shape[self.src(node)]
        if len(shape) == 3:
            weights = {"kernel": s.reshape(c, 1, 1, 1).copy(), "bias": b}
            attrs = {"stride": 1, "padding": "valid", "group": c}
            self.add(node, "conv", shape, attrs=attrs, weights=weights)
        else:
            self.add(node, "dense", shape, weights={"kernel": np.diag(s), "bias": b})
        self.affine.add(node["name"])

    def _identity(self, node: dict) -> None:
        self.alias[node["name"]] = self.src(node)


def load_model_json(path: Path) -> dict:
    """The parsed ``model.json`` of a TF.js graph model; refuses other formats."""
    try:
        model = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise TfjsGraphError(f"{path.name}: not a readable TF.js model.json ({err})") from None
    if model.get("format") != "graph-model" or "modelTopology" not in model:
        raise TfjsGraphError(f"{path.name}: not a TF.js graph model (format {model.get('format')})")
    return model


def _input(model: dict) -> tuple[str, tuple[int | None, int, int, int]]:
    inputs = [n for n in model["modelTopology"]["node"] if n["op"] == "Placeholder"]
    if len(inputs) != 1:
        raise TfjsGraphError(f"the graph has {len(inputs)} inputs; one image input is supported")
    dims = [int(d.get("size", -1)) for d in inputs[0]["attr"]["shape"]["shape"]["dim"]]
    if len(dims) != 4 or min(dims[1:]) < 1:
        raise TfjsGraphError(f"input {inputs[0]['name']} of shape {dims} is not a fixed NHWC")
    return inputs[0]["name"], (None, dims[1], dims[2], dims[3])


def read(path: Path, name: str) -> Graph:
    """The layer graph of the TF.js graph model at ``path`` (its ``.json``); refuses the rest."""
    model = load_model_json(path)
    reader = _Reader(read_weights(model.get("weightsManifest", []), path.parent))
    input_name, shape = _input(model)
    reader.alias[input_name] = input_name
    reader.shape[input_name] = (shape[1], shape[2], shape[3])
    for node in model["modelTopology"]["node"]:
        for name in node.get("input", []):
            key = name.split(":")[0]
            reader.readers[key] = reader.readers.get(key, 0) + 1
    for node in model["modelTopology"]["node"]:
        reader.node(node)
    outputs = model.get("signature", {}).get("outputs") or {}
    if not outputs:
        raise TfjsGraphError(f"{path.name}: the model's signature names no output")
    names = []
    for key, spec in outputs.items():  # the IR's outputs take the signature's names
        tensor = reader.alias.get(spec["name"].split(":")[0])
        if tensor is None:
            raise TfjsGraphError(f"output {key} is not computed by a supported node")
        for layer in reader.layers:
            layer.output = key if layer.output == tensor else layer.output
            layer.inputs = [key if i == tensor else i for i in layer.inputs]
        names.append(key)
    return Graph(name, input_name, shape, reader.layers, names)
