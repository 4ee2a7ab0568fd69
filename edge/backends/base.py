"""The backend interface: one float input in, the outputs in the manifest's order out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np


class Backend(ABC):
    """A loaded model that maps one NHWC float32 batch to its list of outputs."""

    name: str = "backend"
    # Largest batch worth sending in one run. LiteRT keeps one interpreter (and one XNNPACK
    # arena, ~18 MB for MobileFaceNet) per input shape, so it runs crops one at a time.
    max_batch: int = 32

    def __init__(self, path: Path, threads: int, output_names: list[str] | None) -> None:
        self.path = path
        self.threads = max(1, int(threads))
        self.output_names = output_names

    @property
    @abstractmethod
    def input_shape(self) -> tuple[int | None, ...]:
        """Declared input shape; ``None`` where the dimension is dynamic."""

    @abstractmethod
    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run one batch (float32, NHWC) and return the outputs in manifest order."""

    def close(self) -> None:  # noqa: B027 - optional hook, most runtimes free on GC
        """Release the runtime's resources."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
