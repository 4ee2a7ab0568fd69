"""Counts and stage times inside one MTCNN detector, for the real-frame section.

A ``Probe`` wraps a detector's three backends and its cascade steps on that one instance (the
class is untouched): per frame it records the cascades run (a border retry is a second one),
interpreter calls and their batch sizes per net, the candidates left after P-Net, R-Net and
O-Net, and the milliseconds of each stage (crops and NMS included). These counts do not depend on
the machine's load, so they compare runs where wall-clock times cannot.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facegate.vision.detect import MTCNN

NETS = ("pnet", "rnet", "onet")
STAGE_METHODS = {"pnet": "_stage_p", "rnet": "_stage_r", "onet": "_stage_o"}


@dataclass(slots=True)
class FrameCounts:
    """What one ``detect`` call did."""

    cascades: int = 0
    retries: int = 0
    calls: dict[str, int] = field(default_factory=lambda: dict.fromkeys(NETS, 0))
    batches: dict[str, list[int]] = field(default_factory=lambda: {n: [] for n in NETS})
    candidates: dict[str, int] = field(default_factory=lambda: dict.fromkeys(NETS, 0))
    stage_ms: dict[str, float] = field(default_factory=lambda: dict.fromkeys(NETS, 0.0))

    @property
    def interpreter_calls(self) -> int:
        """Backend runs of all three nets."""
        return sum(self.calls.values())


class Probe:
    """Instrument ``detector`` in place; ``take()`` returns and resets the current counts."""

    def __init__(self, detector: MTCNN) -> None:
        self.counts = FrameCounts()
        for net in NETS:
            backend = getattr(detector, net)
            backend.run = self._counting(net, backend.run)
            method = STAGE_METHODS[net]
            setattr(detector, method, self._timing(net, getattr(detector, method)))
        detector._cascade = self._cascading(detector._cascade)  # type: ignore[method-assign]
        detector._padded = self._retrying(detector._padded)  # type: ignore[method-assign]

    def take(self) -> FrameCounts:
        """The counts since the last ``take``."""
        out, self.counts = self.counts, FrameCounts()
        return out

    def _counting(self, net: str, run: Callable[[np.ndarray], list]) -> Callable:
        def counted(batch: np.ndarray) -> list:
            self.counts.calls[net] += 1
            self.counts.batches[net].append(int(batch.shape[0]))
            return run(batch)

        return counted

    def _timing(self, net: str, stage: Callable[..., Any]) -> Callable:
        def timed_stage(*args: Any) -> Any:
            start = time.perf_counter()
            out = stage(*args)
            self.counts.stage_ms[net] += 1000.0 * (time.perf_counter() - start)
            boxes = out.boxes if hasattr(out, "boxes") else out
            self.counts.candidates[net] += len(boxes)
            return out

        return timed_stage

    def _cascading(self, cascade: Callable[..., Any]) -> Callable:
        def counted(*args: Any) -> Any:
            self.counts.cascades += 1
            return cascade(*args)

        return counted

    def _retrying(self, padded: Callable[..., Any]) -> Callable:
        def counted(*args: Any) -> Any:
            self.counts.retries += 1
            return padded(*args)

        return counted
