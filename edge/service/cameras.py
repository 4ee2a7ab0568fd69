"""Several cameras in one daemon: a :class:`CameraRunner` per camera, fed to one worker in turns.

Each camera owns its capture thread (grabbing, and for live sources dropping stale frames in a
queue of two), its :class:`~facegate.service.pipeline.Pipeline` (tracks, visits, events under its
name), its sinks and its :class:`~facegate.service.metrics.Metrics` (whose parent holds the
daemon's totals). The models and the gallery are shared, so inference runs on one worker: the
daemon loop takes turns (:class:`RoundRobin`), one fresh frame from each camera that has one per
turn, starting one camera later each turn. A camera with costly frames or a fast frame rate
cannot starve the others, and no queue grows: a live camera's queue keeps its newest frames.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from facegate.config.schema import Config
from facegate.service.capture import Capture, CaptureStats
from facegate.service.metrics import Metrics
from facegate.service.pipeline import Pipeline
from facegate.sinks.base import EventSink
from facegate.types import Event, Frame

log = logging.getLogger(__name__)

STALE_FRAME_S = 30.0  # a streaming camera with no frame for this long counts as down in /health


@dataclass(eq=False)
class CameraRunner:
    """One camera: its capture, its pipeline, its sinks and its metrics."""

    config: Config  # this camera's view of the configuration (its table as [camera])
    capture: Capture
    pipe: Pipeline
    metrics: Metrics
    sinks: list[EventSink] = field(default_factory=list)
    ended: bool = False
    on_event: Callable[[Event, Frame | None], None] | None = None  # e.g. the web page's ring

    @property
    def name(self) -> str:
        """The camera's name (events, metrics labels, /health, MQTT topics)."""
        return self.config.camera.name

    def start_capture(self, capture: Capture, on_frame: object = None) -> None:
        """Start ``capture`` as this camera's source (``on_frame``: the worker's wake-up)."""
        capture.on_frame = on_frame
        self.capture = capture.start()
        self.metrics.inc("source_starts")

    def next_frame(self) -> Frame | None:
        """The next queued frame, None once the source ended; queue.Empty when none is waiting."""
        return self.capture.get(timeout=0)

    def step(self, frame: Frame) -> None:
        """Run one frame through the pipeline and hand its events to the sinks."""
        self.emit(self.pipe.process(frame), frame)

    def finish(self, now: float) -> None:
        """The source ended, or the daemon stops: close every open visit with its ``left``."""
        if not self.ended:
            self.ended = True
            self.emit(self.pipe.finish(now))

    def emit(self, events: list[Event], frame: Frame | None = None) -> None:
        """Count and deliver events; a failing sink never stops recognition."""
        for event in events:
            self.metrics.inc(f"events_{event.kind}")
            if self.on_event is not None:
                self.on_event(event, frame)
            for sink in self.sinks:
                try:
                    sink.emit(event)
                except Exception:  # a sink must never stop recognition
                    log.exception("%s: sink %s failed on an event", self.name, sink.name)

    def ok(self, now: float) -> bool:
        """Whether the camera streams and its last frame is recent."""
        stats = self.capture.stats()
        last = stats.last_frame_time
        return stats.state == "streaming" and (last is None or now - last < STALE_FRAME_S)

    def health(self, now: float) -> dict[str, object]:
        """This camera's part of /health."""
        stats = self.capture.stats()
        last = stats.last_frame_time
        return {
            "status": "ok" if self.ok(now) else "down",
            "source": stats.state,
            "fps": round(self.metrics.fps(), 2),
            "last_frame_age_s": None if last is None else round(now - last, 3),
            "frames": self.metrics.counters.get("frames_processed", 0),
            "reconnects": stats.reconnects,
            "last_error": stats.last_error,
        }


def health(runners: list[CameraRunner]) -> dict[str, dict[str, object]]:
    """/health's ``cameras`` object: each camera's state, fps and last frame age."""
    now = time.time()
    return {runner.name: runner.health(now) for runner in runners}


def total_stats(stats: list[CaptureStats]) -> CaptureStats | None:
    """The captures' counters summed (state: streaming only when all stream)."""
    if not stats:
        return None
    if len(stats) == 1:
        return stats[0]
    states = {s.state for s in stats}
    times = [s.last_frame_time for s in stats if s.last_frame_time is not None]
    return CaptureStats(
        name="all",
        state=states.pop() if len(states) == 1 else "degraded",
        frames=sum(s.frames for s in stats),
        skipped=sum(s.skipped for s in stats),
        dropped=sum(s.dropped for s in stats),
        reconnects=sum(s.reconnects for s in stats),
        last_frame_time=max(times) if times else None,
        last_error=next((s.last_error for s in stats if s.last_error), None),
        rejected=sum(s.rejected for s in stats),
    )


class RoundRobin:
    """Serialises inference over cameras: per turn, one frame from each camera that has one."""

    def __init__(self, runners: list[CameraRunner]) -> None:
        self.runners = runners
        self.bell = threading.Event()  # rung by the captures when a frame (or an end) is queued
        self._first = 0

    def ring(self) -> None:
        """Wake the worker: a frame is waiting somewhere."""
        self.bell.set()

    def wait(self, timeout: float) -> None:
        """Sleep until a capture rings or ``timeout`` seconds pass."""
        self.bell.wait(timeout)

    def turn(self) -> Iterator[tuple[CameraRunner, Frame | None]]:
        """(camera, frame or None at its end), each taken just before it is processed."""
        self.bell.clear()  # before looking: a frame queued after its queue was checked rings
        live = [r for r in self.runners if not r.ended]
        if not live:
            return
        start = self._first % len(live)
        self._first = start + 1
        for runner in live[start:] + live[:start]:
            try:
                frame = runner.next_frame()
            except queue.Empty:
                continue
            yield runner, frame

    @property
    def done(self) -> bool:
        """Whether every camera's source has ended."""
        return all(r.ended for r in self.runners)
