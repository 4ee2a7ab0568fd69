"""LiteRT backend (``ai-edge-litert``, falling back to ``tflite-runtime``), XNNPACK on the CPU.

P-Net runs at a different size per pyramid level and R-/O-Net at varying batch sizes. A model
whose input height and width are dynamic (P-Net) keeps one interpreter per input shape, up to
``SPATIAL_SHAPES``: a camera's frames give the same pyramid every time, and resizing one
interpreter per level re-plans XNNPACK on every call (measured, a 640x480 pyramid at min face 40:
9.5 ms resized level by level, 5.2 ms with one interpreter per level, which holds 16 MB more).
Batch-only models (R-Net, O-Net, the embedder) keep one interpreter, resized when the batch
changes: that costs 0.04-0.3 ms, while one interpreter per batch size held ~3 MB each.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

import numpy as np

from facegate.backends.base import Backend
from facegate.errors import ModelError

log = logging.getLogger(__name__)

SPATIAL_SHAPES = 16  # interpreters kept for a dynamic-size model: one frame size's pyramid (8-12
# levels at min face 40) plus the shorter one of the padded retry


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
    max_batch = 1

    def __init__(self, path: Path, threads: int = 1, output_names: list[str] | None = None) -> None:
        super().__init__(path, threads, output_names)
        self._cls = _interpreter_class()
        self._content = path.read_bytes()
        self._interps: OrderedDict[tuple[int, ...], object] = OrderedDict()  # by input shape
        try:
            probe = self._cls(model_content=self._content, num_threads=self.threads)
        except (ValueError, RuntimeError) as err:
            raise ModelError(f"{path.name}: LiteRT cannot load it ({err})") from err
        detail = probe.get_input_details()
        if len(detail) != 1:
            raise ModelError(f"{path.name}: expected one input, found {len(detail)}")
        sig = detail[0].get("shape_signature", detail[0]["shape"])
        self._shape = tuple(int(d) if d > 0 else None for d in sig)
        spatial = len(self._shape) == 4 and None in self._shape[1:3]
        self._capacity = SPATIAL_SHAPES if spatial else 1
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
        """The interpreter sized for ``shape``: cached, else the least recently used one resized."""
        interp = self._interps.get(shape)
        if interp is not None:
            self._interps.move_to_end(shape)
            return interp
        if len(self._interps) < self._capacity:
            interp = self._cls(model_content=self._content, num_threads=self.threads)
        else:
            interp = self._interps.popitem(last=False)[1]
        index = interp.get_input_details()[0]["index"]
        interp.resize_tensor_input(index, list(shape), strict=False)
        interp.allocate_tensors()
        self._interps[shape] = interp
        return interp

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run one batch and return the outputs in manifest order (TFLite keeps graph order)."""
        interp = self._interpreter(tuple(batch.shape))
        interp.set_tensor(interp.get_input_details()[0]["index"], np.ascontiguousarray(batch))
        interp.invoke()
        return [interp.get_tensor(d["index"]).copy() for d in interp.get_output_details()]

    def close(self) -> None:
        """Drop the interpreters."""
        self._interps.clear()
