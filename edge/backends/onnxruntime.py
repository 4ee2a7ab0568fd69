"""ONNX Runtime backend (CPU by default; thread spinning off, as spinning slows small boards)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from facegate.backends.base import Backend
from facegate.errors import ModelError

log = logging.getLogger(__name__)


class OnnxRuntimeBackend(Backend):
    """Runs an ONNX model with onnxruntime's CPU execution provider."""

    name = "onnxruntime"

    def __init__(
        self,
        path: Path,
        threads: int = 1,
        output_names: list[str] | None = None,
        providers: list[str] | None = None,
    ) -> None:
        super().__init__(path, threads, output_names)
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        opts.log_severity_level = 3
        # P-Net sees a new input size per pyramid level: memory patterns and the growing arena
        # only pay for fixed shapes (measured: daemon RSS 200 MB with them, 174 MB without).
        opts.enable_mem_pattern = False
        opts.enable_cpu_mem_arena = False
        try:
            self.session = ort.InferenceSession(
                str(path), opts, providers=providers or ["CPUExecutionProvider"]
            )
        except Exception as err:  # onnxruntime raises several private exception types
            raise ModelError(
                f"{path.name}: onnxruntime cannot load it ({_first_line(err)})"
            ) from err
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ModelError(f"{path.name}: expected one input, found {len(inputs)}")
        self.input_name = inputs[0].name
        self._shape = tuple(d if isinstance(d, int) else None for d in inputs[0].shape)
        names = [o.name for o in self.session.get_outputs()]
        if output_names is not None and sorted(names) != sorted(output_names):
            raise ModelError(
                f"{path.name}: outputs {names} differ from the manifest's {output_names}"
            )
        self._outputs = output_names or names

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        """Declared input shape; ``None`` where dynamic."""
        return self._shape

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run one batch and return the outputs in manifest order."""
        return self.session.run(self._outputs, {self.input_name: batch})

    def close(self) -> None:
        """Drop the session."""
        self.session = None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__
