"""LiteRT backend (``ai-edge-litert``, falling back to ``tflite-runtime``), XNNPACK on the CPU.

P-Net runs at a different size per pyramid level and R-/O-Net at varying batch sizes. A model
whose input height and width are dynamic (P-Net) keeps one interpreter per input shape, up to
``SPATIAL_SHAPES``: a camera's frames give the same pyramid every time, and resizing one
interpreter per level re-plans XNNPACK on every call (measured, a 640x480 pyramid at min face 40:
9.5 ms resized level by level, 5.2 ms with one interpreter per level, which holds 16 MB more).
Batch-only models (R-Net, O-Net, the embedder) keep one interpreter per batch size too, up to
``BATCH_SHAPES``: the detector sends a few fixed sizes (powers of two), and resizing one
interpreter costs 0.05-0.3 ms a call (a re-plan); R-Net's five and O-Net's three interpreters at
their small batches hold less than one at the 64 crops the detector used to send.

TFLite's C++ logger writes "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." straight to
file descriptor 2 the first time a process allocates an interpreter, and LiteRT offers no switch
for it (``TF_CPP_MIN_LOG_LEVEL`` does not reach it). Until that first allocation is done, fd 2 is
captured around it: its ``INFO:`` lines go to this module's DEBUG log, anything else is passed on
to stderr unchanged.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from facegate.backends.base import Backend
from facegate.errors import ModelError

log = logging.getLogger(__name__)

SPATIAL_SHAPES = 16  # interpreters kept for a dynamic-size model: one frame size's pyramid (8-12
# levels at min face 40) plus the shorter one of the padded retry
BATCH_SHAPES = 6  # interpreters kept for a batch-only model: the detector's 16, 8, 4, 2, 1 crops
TFLITE_INFO = "INFO: "  # the prefix of TFLite's informational lines on stderr

_quiet_lock = threading.Lock()
_quiet_done = False  # set once an allocation has run under the capture: the notice is printed once


@contextmanager
def _tflite_notices_to_log() -> Iterator[None]:
    """Capture fd 2 (first allocation only): INFO lines to the DEBUG log, the rest to stderr."""
    global _quiet_done
    if _quiet_done:
        yield
        return
    with _quiet_lock, tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield
            _quiet_done = True
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            _pass_on(sink.read().decode("utf-8", "replace"))


def _pass_on(captured: str) -> None:
    for line in captured.splitlines(keepends=True):
        if line.startswith(TFLITE_INFO):
            log.debug("LiteRT: %s", line[len(TFLITE_INFO) :].rstrip())
        else:
            sys.stderr.write(line)
    sys.stderr.flush()


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
        # by input shape: the interpreter, its input index and its output indices
        self._interps: OrderedDict[tuple[int, ...], tuple[object, int, list[int]]] = OrderedDict()
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
        self._capacity = SPATIAL_SHAPES if spatial else BATCH_SHAPES
        n_out = len(probe.get_output_details())
        if output_names is not None and n_out != len(output_names):
            raise ModelError(
                f"{path.name}: {n_out} outputs, the manifest lists {len(output_names)}"
            )

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        """Declared input shape; ``None`` where dynamic."""
        return self._shape

    def _interpreter(self, shape: tuple[int, ...]) -> tuple[object, int, list[int]]:
        """The interpreter sized for ``shape`` (cached, else the least recently used one resized),
        with its input and output tensor indices (looking them up costs ~0.03 ms a call)."""
        known = self._interps.get(shape)
        if known is not None:
            self._interps.move_to_end(shape)
            return known
        if len(self._interps) >= self._capacity:
            # a fresh interpreter, not the evicted one resized: a resized arena keeps the largest
            # size it ever had, and over a long run every cached interpreter would grow to it
            self._interps.popitem(last=False)
        interp = self._cls(model_content=self._content, num_threads=self.threads)
        index = interp.get_input_details()[0]["index"]
        interp.resize_tensor_input(index, list(shape), strict=False)
        with _tflite_notices_to_log():
            interp.allocate_tensors()
        outputs = [d["index"] for d in interp.get_output_details()]
        self._interps[shape] = (interp, index, outputs)
        return self._interps[shape]

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run one batch and return the outputs in manifest order (TFLite keeps graph order)."""
        interp, index, outputs = self._interpreter(tuple(batch.shape))
        interp.set_tensor(index, np.ascontiguousarray(batch))
        interp.invoke()
        return [interp.get_tensor(i).copy() for i in outputs]

    def close(self) -> None:
        """Drop the interpreters."""
        self._interps.clear()
