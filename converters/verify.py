"""Converter-side checks: FP32 conversions against the published nets they came from."""

from __future__ import annotations

import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from facegate.backends import Backend
from facegate.bundle.parity import FP32_ABS
from facegate.converters.ir import Graph


class ParityError(RuntimeError):
    """A converted model disagrees with its reference beyond the stated tolerance."""


def check_mtcnn_reference(
    wheel: Path,
    graphs: dict[str, Graph],
    backends: dict[str, Backend],
    inputs: dict[str, np.ndarray],
) -> dict[str, float]:
    """Compare our FP32 nets with the wheel's own Keras nets on the same inputs."""
    from facegate.converters.mtcnn_weights import load_lz4

    worst: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(tmp)
        sys.path.insert(0, tmp)
        try:
            from mtcnn.network.onet import ONet
            from mtcnn.network.pnet import PNet
            from mtcnn.network.rnet import RNet

            for role, cls in (("pnet", PNet), ("rnet", RNet), ("onet", ONet)):
                net = cls()
                net.build((None, *graphs[role].input_shape[1:]))
                net.set_weights(load_lz4(Path(tmp) / f"mtcnn/assets/weights/{role}.lz4"))
                ref = [np.asarray(r) for r in net(inputs[role])]
                got = backends[role].run(inputs[role])
                worst[role] = max(float(np.abs(r - g).max()) for r, g in zip(ref, got, strict=True))
        finally:
            sys.path.remove(tmp)
            for name in [m for m in sys.modules if m == "mtcnn" or m.startswith("mtcnn.")]:
                del sys.modules[name]
    bad = {k: v for k, v in worst.items() if v > FP32_ABS}
    if bad:
        raise ParityError(f"FP32 MTCNN differs from the published nets: {bad}")
    return worst
