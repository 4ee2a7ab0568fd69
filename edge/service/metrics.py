"""Counters and per-stage timings for /metrics and the systemd STATUS line."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

FPS_WINDOW_S = 5.0  # frames/s is averaged over this many seconds


class Metrics:
    """Thread-safe counters, stage latency sums and a windowed frame rate.

    A camera's Metrics has the daemon's as ``parent``: every count and timing also goes there,
    so the parent holds the totals over all cameras.
    """

    def __init__(self, parent: Metrics | None = None) -> None:
        self.parent = parent
        self._lock = threading.Lock()
        self.counters: dict[str, float] = defaultdict(float)
        self.stage_seconds: dict[str, float] = defaultdict(float)
        self.stage_count: dict[str, int] = defaultdict(int)
        self._frames: list[float] = []
        self.started = time.monotonic()

    def inc(self, name: str, value: float = 1.0) -> None:
        """Add to a counter."""
        with self._lock:
            self.counters[name] += value
        if self.parent is not None:
            self.parent.inc(name, value)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the enclosed block as one run of stage ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add_stage(name, time.perf_counter() - start)

    def add_stage(self, name: str, seconds: float) -> None:
        """Record one run of stage ``name`` that took ``seconds``."""
        with self._lock:
            self.stage_seconds[name] += seconds
            self.stage_count[name] += 1
        if self.parent is not None:
            self.parent.add_stage(name, seconds)

    def frame_done(self) -> None:
        """Count one processed frame for the frame rate."""
        now = time.monotonic()
        with self._lock:
            self.counters["frames_processed"] += 1
            self._frames.append(now)
            while self._frames and now - self._frames[0] > FPS_WINDOW_S:
                self._frames.pop(0)
        if self.parent is not None:
            self.parent.frame_done()

    def fps(self) -> float:
        """Frames per second over the last few seconds."""
        with self._lock:
            if len(self._frames) < 2:
                return 0.0
            span = self._frames[-1] - self._frames[0]
            return (len(self._frames) - 1) / span if span > 0 else 0.0

    def stage_ms(self) -> dict[str, float]:
        """Mean milliseconds per run of each stage."""
        with self._lock:
            return {
                k: 1000 * v / max(1, self.stage_count[k]) for k, v in self.stage_seconds.items()
            }

    def snapshot(self) -> dict[str, object]:
        """Everything, as plain numbers."""
        with self._lock:
            counters = dict(self.counters)
        return {
            "counters": counters,
            "fps": self.fps(),
            "stage_ms": self.stage_ms(),
            "uptime_s": time.monotonic() - self.started,
        }
