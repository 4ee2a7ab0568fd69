"""MTCNN P-Net, R-Net and O-Net as layer graphs, from the lz4/joblib weights in the ``mtcnn`` wheel.

The weights are joblib pickles: unpickling runs code, so they are decoded here, on the workstation,
and never on the device. Layer layout follows the published Caffe nets (and facenet-pytorch):
PReLU after every conv, max-pool in Caffe ceil mode, and a (W, H, C) flatten before the dense
layers because the original nets were trained on transposed images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facegate.converters.ir import Graph, Layer

# (kind, channels/units, kernel) for each trunk layer; pools are (kernel, stride).
_TRUNKS: dict[str, list[tuple]] = {
    "pnet": [("conv", 3), ("pool", 2, 2), ("conv", 3), ("conv", 3)],
    "rnet": [("conv", 3), ("pool", 3, 2), ("conv", 3), ("pool", 3, 2), ("conv", 2), ("fc",)],
    "onet": [
        ("conv", 3),
        ("pool", 3, 2),
        ("conv", 3),
        ("pool", 3, 2),
        ("conv", 3),
        ("pool", 2, 2),
        ("conv", 2),
        ("fc",),
    ],
}
_HEADS: dict[str, list[str]] = {
    "pnet": ["bbox", "prob"],
    "rnet": ["bbox", "prob"],
    "onet": ["bbox", "landmarks", "prob"],
}
_INPUT: dict[str, tuple[int | None, int | None, int | None, int]] = {
    "pnet": (None, None, None, 3),
    "rnet": (None, 24, 24, 3),
    "onet": (None, 48, 48, 3),
}


def load_lz4(path: Path) -> list[np.ndarray]:
    """Decode one ``*.lz4`` joblib file of the mtcnn wheel into its weight list (converter only)."""
    import joblib  # heavy, pickle-based: converter-side only

    weights = joblib.load(path)
    return [np.asarray(w, dtype=np.float32) for w in weights]


def build(name: str, weights: list[np.ndarray]) -> Graph:
    """Build the ``pnet``/``rnet``/``onet`` graph from the Keras-ordered weight list."""
    it = iter(weights)
    layers: list[Layer] = []
    x = "input"
    for i, spec in enumerate(_TRUNKS[name]):
        out = f"t{i}"
        if spec[0] == "pool":
            attrs = {"kernel": spec[1], "stride": spec[2], "padding": "ceil"}
            layers.append(Layer("maxpool", [x], out, attrs))
            x = out
            continue
        if spec[0] == "conv":
            kernel = next(it).transpose(3, 2, 0, 1)  # (kh, kw, cin, cout) -> OIHW
            layers.append(
                Layer(
                    "conv",
                    [x],
                    out + "c",
                    {"stride": 1, "padding": "valid"},
                    {"kernel": kernel, "bias": next(it)},
                )
            )
        else:
            layers.append(Layer("flatten_wh", [x], out + "f"))
            layers.append(
                Layer("dense", [out + "f"], out + "c", {}, {"kernel": next(it), "bias": next(it)})
            )
        slope = next(it).reshape(-1)
        layers.append(Layer("prelu", [out + "c"], out, {}, {"slope": slope}))
        x = out
    outputs = []
    for head in _HEADS[name]:
        kernel, bias = next(it), next(it)
        pre = head if head != "prob" else "logits"
        if name == "pnet":
            conv = kernel.transpose(3, 2, 0, 1)
            layers.append(
                Layer(
                    "conv",
                    [x],
                    pre,
                    {"stride": 1, "padding": "valid"},
                    {"kernel": conv, "bias": bias},
                )
            )
        else:
            layers.append(Layer("dense", [x], pre, {}, {"kernel": kernel, "bias": bias}))
        if head == "prob":
            layers.append(Layer("softmax", [pre], "prob"))
        outputs.append(head)
    if next(it, None) is not None:
        raise ValueError(f"{name}: more weights than layers")
    return Graph(name, "input", _INPUT[name], layers, outputs)
