"""A layer graph (:mod:`facegate.converters.ir`) as one ``.npz``: weights trained for facegate.

The file holds one JSON string entry (``__graph__``: the graph's name, input, outputs, layer list
and a free ``meta`` dict) and every weight as a named float32 array (``L<index>.<key>``). It is
read with ``allow_pickle=False``, so loading it runs no code; anything malformed is refused with
one line.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from facegate.converters.ir import OPS, Graph, Layer
from facegate.errors import BundleError

FORMAT = "facegate-ir"
FORMAT_VERSION = 1
HEADER = "__graph__"


def _weight_key(index: int, name: str) -> str:
    return f"L{index}.{name}"


def save(graph: Graph, path: Path, meta: dict) -> Path:
    """Write ``graph`` and ``meta`` (JSON-serialisable) to ``path`` (an ``.npz``)."""
    layers, arrays = [], {}
    for i, layer in enumerate(graph.layers):
        layers.append(
            {
                "op": layer.op,
                "inputs": list(layer.inputs),
                "output": layer.output,
                "attrs": layer.attrs,
                "weights": sorted(layer.weights),
            }
        )
        for key, value in layer.weights.items():
            arrays[_weight_key(i, key)] = np.ascontiguousarray(value, np.float32)
    header = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "name": graph.name,
        "input_name": graph.input_name,
        "input_shape": list(graph.input_shape),
        "outputs": list(graph.outputs),
        "layers": layers,
        "meta": meta,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:  # a file object: np.savez would append ".npz" to a bare name
        np.savez_compressed(fh, **{HEADER: np.array(json.dumps(header)), **arrays})
    return path


def load(path: Path) -> tuple[Graph, dict]:
    """Read a graph written by :func:`save`: (graph, meta); refuse anything malformed."""
    try:
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(str(z[HEADER][()]))
            arrays = {k: z[k] for k in z.files if k != HEADER}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise BundleError(f"{path.name}: not a readable facegate-ir file ({err})") from err
    try:
        return _graph(header, arrays), dict(header["meta"])
    except (KeyError, TypeError, ValueError, IndexError) as err:
        raise BundleError(f"{path.name}: malformed facegate-ir file ({err})") from err


def _graph(header: dict, arrays: dict[str, np.ndarray]) -> Graph:
    if header.get("format") != FORMAT or header.get("version") != FORMAT_VERSION:
        raise ValueError(f"format {header.get('format')!r} v{header.get('version')!r}")
    layers = []
    known = {str(header["input_name"])}
    for i, raw in enumerate(header["layers"]):
        if raw["op"] not in OPS:
            raise ValueError(f"layer {i} has unknown op {raw['op']!r}")
        weights = {k: _array(arrays, _weight_key(i, k)) for k in raw["weights"]}
        inputs = [str(x) for x in raw["inputs"]]
        if not inputs or any(x not in known for x in inputs):
            raise ValueError(f"layer {i} reads a tensor no earlier layer makes")
        layers.append(Layer(raw["op"], inputs, str(raw["output"]), dict(raw["attrs"]), weights))
        known.add(str(raw["output"]))
    expected = {_weight_key(i, k) for i, raw in enumerate(header["layers"]) for k in raw["weights"]}
    if set(arrays) != expected:
        raise ValueError("weight arrays do not match the layer list")
    outputs = [str(o) for o in header["outputs"]]
    if not outputs or any(o not in known for o in outputs):
        raise ValueError("an output is made by no layer")
    n, h, w, c = header["input_shape"]
    return Graph(str(header["name"]), str(header["input_name"]), (n, h, w, int(c)), layers, outputs)


def _array(arrays: dict[str, np.ndarray], key: str) -> np.ndarray:
    value = arrays[key]
    if value.dtype != np.float32 or not np.all(np.isfinite(value)):
        raise ValueError(f"{key} is not finite float32")
    return value
