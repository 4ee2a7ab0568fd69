"""LiteRT backend (``ai-edge-litert``, falling back to ``tflite-runtime``), XNNPACK on the CPU.

TFLite interpreters have a fixed input shape once allocated; P-Net runs at a different size per
pyramid level, so one interpreter is kept per input shape (a small, bounded cache).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

import numpy as np

from edge.backends.base import Backend
from edge.errors import ModelError

log = logging.getLogger(__name__)

MAX_SHAPES = 24  # pyramid levels of a few frame sizes; each interpreter holds its own buffers


def _interpreter_class() -> type:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError as err:
            raise ModelError("LiteRT is not installed: pip install 'facegate[litert]'") from err
    return Interpreter


class LiteRTBackend(Backend):
    """Runs a ``.tflite`` model with LiteRT."""

    name = "litert"

    def __init__(self, path: Path, threads: int = 1, output_names: list[str] | None = None) -> None:
        super().__init__(path, threads, output_names)
        self._cls = _interpreter_class()
        self._content = path.read_bytes()
        self._cache: OrderedDict[tuple[int, ...], object] = OrderedDict()
        try:
            probe = self._cls(model_content=self._content, num_threads=self.threads)
        except (ValueError, RuntimeError) as err:
            raise ModelError(f"{path.name}: LiteRT cannot load it ({err})") from err
        detail = probe.get_input_details()
        if len(detail) != 1:
            raise ModelError(f"{path.name}: expected one input, found {len(detail)}")
        sig = detail[0].get("shape_signature", detail[0]["shape"])
        self._shape = tuple(int(d) if d > 0 else None for d in sig)
        n_out = len(probe.get_output_details())
        if output_names is not None and n_out != len(output_names):
            raise ModelError(
                f"{path.name}: {n_out} outputs, the manifest lists {len(output_names)}"
            )

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        """Declared input shape; ``None`` where dynamic."""
        return self._shape

    def _interpreter(self, shape: tuple[int, ...]) -> object:
        interp = self._cache.get(shape)
        if interp is not None:
            self._cache.move_to_end(shape)
            return interp
        interp = self._cls(model_content=self._content, num_threads=self.threads)
        index = interp.get_input_details()[0]["index"]
        interp.resize_tensor_input(index, list(shape), strict=False)
        interp.allocate_tensors()
        self._cache[shape] = interp
        if len(self._cache) > MAX_SHAPES:
            self._cache.popitem(last=False)
        return interp

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run one batch and return the outputs in manifest order (TFLite keeps graph order)."""
        interp = self._interpreter(tuple(batch.shape))
        interp.set_tensor(interp.get_input_details()[0]["index"], np.ascontiguousarray(batch))
        interp.invoke()
        return [interp.get_tensor(d["index"]).copy() for d in interp.get_output_details()]

    def close(self) -> None:
        """Drop every cached interpreter."""
        self._cache.clear()
