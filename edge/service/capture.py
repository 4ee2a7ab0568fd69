"""Background capture: a thread reads a frame source into a small queue and reconnects it.

Live sources (cameras, streams) never block the reader: the queue keeps the newest frames and
drops the oldest, counting the drops. Finite sources (files, folders) hand over every frame,
waiting for the consumer, unless ``realtime=True`` paces them like a camera.

Frames arrive already converted by their source (the frame contract of
:class:`facegate.types.Frame`); a frame the source refuses as no picture (ImageError) is counted
as rejected here and the read goes on. Every frame read is counted once: captured (``frames``),
and of those, ``skipped`` to respect ``max_fps``; ``rejected`` frames are counted apart.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from facegate.errors import CameraError, ImageError
from facegate.sources.base import FrameSource
from facegate.types import Frame

log = logging.getLogger(__name__)

BACKOFF_INITIAL = 0.5  # seconds before the first reopen; doubles per failure
BACKOFF_MAX = 10.0  # cap: a camera that comes back is picked up within ~10 s
STALL_TIMEOUT = 10.0  # a live source with no frame for this long is reopened
MAX_FAILED_READS = 5  # consecutive empty reads (None from a live source) before reopening
FAILED_READ_PAUSE = 0.05  # seconds between empty reads, so a broken source does not spin
STOP_JOIN_TIMEOUT = 2.0
RATE_SLACK = 0.002  # seconds of timestamp jitter max_fps forgives (29.97 fps -> 10 fps stays 10)

STATES = ("idle", "connecting", "streaming", "backoff", "ended")


class LatestFrameQueue:
    """A bounded, thread-safe frame queue: the oldest frame gives way; ``close()`` ends it."""

    def __init__(self, maxsize: int = 2) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self.dropped = 0
        self._items: deque[Frame] = deque()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, frame: Frame, block: bool = False, timeout: float | None = None) -> bool:
        """Queue ``frame``; False when closed (or, blocking, still full after ``timeout``).

        Non-blocking (live sources): a full queue drops its oldest frame and counts it.
        Blocking (finite sources): wait until the consumer makes room.
        """
        with self._cond:
            if block:
                room = self._cond.wait_for(
                    lambda: self._closed or len(self._items) < self.maxsize, timeout
                )
                if not room:
                    return False
            if self._closed:
                return False
            if len(self._items) >= self.maxsize:
                self._items.popleft()
                self.dropped += 1
            self._items.append(frame)
            self._cond.notify_all()
            return True

    def get(self, timeout: float | None = None) -> Frame | None:
        """The oldest queued frame; None once closed and drained; queue.Empty on timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._items or self._closed, timeout):
                raise queue.Empty
            if not self._items:
                return None
            frame = self._items.popleft()
            self._cond.notify_all()
            return frame

    def close(self) -> None:
        """Mark the end: blocked ``put`` calls return False, ``get`` drains then gives None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._closed

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


@dataclass(frozen=True, slots=True)
class CaptureStats:
    """A snapshot of a capture's counters."""

    name: str
    state: str
    frames: int  # frames read from the source (all sessions)
    skipped: int  # frames left out to respect max_fps
    dropped: int  # frames the queue dropped because the consumer was slower
    reconnects: int  # times the source was re-created after a failure
    last_frame_time: float | None  # wall clock when the last frame arrived
    last_error: str | None
    rejected: int = 0  # frames refused as no picture (empty, tiny, odd shape or dtype)


class _RateLimit:
    """Admit at most ``max_fps`` frames per second of frame timestamps."""

    def __init__(self, max_fps: float | None) -> None:
        self.interval = 1.0 / max_fps if max_fps else 0.0
        self._due: float | None = None

    def admit(self, stamp: float) -> bool:
        if not self.interval:
            return True
        if self._due is not None and stamp < self._due - RATE_SLACK:
            return False
        late = self._due is None or stamp - self._due > self.interval
        self._due = (stamp if late else self._due) + self.interval
        return True


class Capture:
    """A background thread that owns a frame source, feeds a queue and reopens what fails."""

    def __init__(
        self,
        factory: Callable[[], FrameSource],
        *,
        maxsize: int = 2,
        max_fps: float | None = None,
        realtime: bool = False,
        stall_timeout: float = STALL_TIMEOUT,
        max_failed_reads: int = MAX_FAILED_READS,
        backoff_initial: float = BACKOFF_INITIAL,
        backoff_max: float = BACKOFF_MAX,
        name: str | None = None,
        on_frame: Callable[[], None] | None = None,
    ) -> None:
        self.factory = factory
        self.on_frame = on_frame  # called after each queued frame and at the end (a wake-up)
        self.queue = LatestFrameQueue(maxsize)
        self.max_fps, self.realtime = max_fps, realtime
        self.stall_timeout, self.max_failed_reads = stall_timeout, max_failed_reads
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self.name = name or "capture"  # without a name, the source's name once it exists
        self._named = name is not None
        self.state = "idle"
        self.frames = self.skipped = self.reconnects = self.rejected = 0
        self.last_frame_time: float | None = None
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._limit = _RateLimit(max_fps)
        self._backoff = backoff_initial
        self._outage_since: float | None = None
        self._pace: tuple[float, float] | None = None  # (first frame stamp, wall clock then)

    # ---- public API -----------------------------------------------------------------------

    def start(self) -> Capture:
        """Start the capture thread (once)."""
        if self._thread is not None:
            raise RuntimeError("capture already started")
        self._thread = threading.Thread(target=self._run, name=f"capture-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = STOP_JOIN_TIMEOUT) -> None:
        """Stop the thread, close the source and the queue; waits up to ``timeout`` s."""
        self._stop.set()
        self.queue.close()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                log.warning("%s: capture thread still inside a read; it will exit after", self.name)

    def get(self, timeout: float | None = None) -> Frame | None:
        """The next frame (see :meth:`LatestFrameQueue.get`)."""
        return self.queue.get(timeout)

    @property
    def dropped(self) -> int:
        """Frames the queue dropped because the consumer was slower than the source."""
        return self.queue.dropped

    @property
    def running(self) -> bool:
        """Whether the capture thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def stats(self) -> CaptureStats:
        """A snapshot of the counters."""
        return CaptureStats(
            self.name,
            self.state,
            self.frames,
            self.skipped,
            self.dropped,
            self.reconnects,
            self.last_frame_time,
            self.last_error,
            self.rejected,
        )

    def __enter__(self) -> Capture:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- the thread -----------------------------------------------------------------------

    def _run(self) -> None:
        """Open, stream, and on failure reopen with backoff, until stopped or the end."""
        try:
            while not self._stop.is_set():
                finite = False
                self._set_state("connecting")
                try:
                    source = self.factory()
                    finite = source.finite
                    if self._session(source):
                        break
                except CameraError as err:
                    self._failed(str(err))
                except Exception as err:  # the stage loop: log, then restart the source
                    log.exception("%s: unexpected error from the source", self.name)
                    self._failed(f"{type(err).__name__}: {err}")
                if finite:  # reopening a file would replay it from the start
                    break
                self._wait_backoff()
        finally:
            self._set_state("ended")
            self.queue.close()
            self._ring()

    def _session(self, source: FrameSource) -> bool:
        """Open ``source`` and stream it; True when finished (end of file or stop)."""
        if not self._named:
            self.name = source.name
        try:
            source.open()
            self._set_state("streaming")
            return self._stream(source)
        finally:
            source.close()

    def _stream(self, source: FrameSource) -> bool:
        """Read until the end (True), stop (True) or a failure (raises CameraError)."""
        failed, last = 0, time.monotonic()
        while not self._stop.is_set():
            frame = self._read(source)
            now = time.monotonic()
            if isinstance(frame, Frame):
                failed, last = 0, now
                self._deliver(frame, source.finite)
                continue
            if source.finite and frame is None:
                log.info("%s: end of source after %d frames", self.name, self.frames)
                return True
            if source.finite:
                continue  # one unusable frame of a file: read on
            failed += 1
            if failed >= self.max_failed_reads:
                raise CameraError(f"{self.name}: {failed} failed reads in a row")
            if now - last > self.stall_timeout:
                raise CameraError(f"{self.name}: no frame for {self.stall_timeout:g} s")
            self._stop.wait(FAILED_READ_PAUSE)
        return True

    def _read(self, source: FrameSource) -> Frame | ImageError | None:
        """The source's next frame, None at its end, or the ImageError of a refused frame."""
        try:
            return source.read()
        except ImageError as err:
            self.rejected += 1
            level = logging.WARNING if self.rejected == 1 else logging.DEBUG
            log.log(level, "%s: dropping a frame: %s (%d so far)", self.name, err, self.rejected)
            return err

    def _deliver(self, frame: Frame, finite: bool) -> None:
        """Count the frame, apply max_fps and pacing, and queue it."""
        self.frames += 1
        self.last_frame_time = time.time()
        if self._outage_since is not None:
            self._recovered()
        if not self._limit.admit(frame.timestamp):
            self.skipped += 1
            return
        if finite and self.realtime:
            self._wait_media_time(frame.timestamp)
        if self.queue.put(frame, block=finite and not self.realtime):
            self._ring()

    def _ring(self) -> None:
        if self.on_frame is not None:
            self.on_frame()

    def _wait_media_time(self, stamp: float) -> None:
        """Sleep until ``stamp`` is due, so a file plays at its own speed."""
        if self._pace is None:
            self._pace = (stamp, time.monotonic())
        first, started = self._pace
        delay = started + (stamp - first) - time.monotonic()
        if delay > 0:
            self._stop.wait(delay)

    def _failed(self, message: str) -> None:
        """Record a failure: WARNING for the first of an outage, DEBUG for repeats."""
        line = message.splitlines()[0] if message else "unknown error"
        self.last_error = line if line.startswith(self.name) else f"{self.name}: {line}"
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            log.warning("%s", self.last_error)
        else:
            log.debug("still failing: %s", self.last_error)

    def _recovered(self) -> None:
        """The first frame after an outage: log it and reset the backoff."""
        down = time.monotonic() - (self._outage_since or time.monotonic())
        log.info("%s: streaming again after %.1f s down", self.name, down)
        self._outage_since, self._backoff = None, self.backoff_initial

    def _wait_backoff(self) -> None:
        """Wait out the backoff (interruptible by stop), then count a reconnect."""
        if self._stop.is_set():
            return
        self._set_state("backoff")
        delay, self._backoff = self._backoff, min(self._backoff * 2, self.backoff_max)
        log.debug("%s: reopening in %.1f s", self.name, delay)
        if not self._stop.wait(delay):
            self.reconnects += 1

    def _set_state(self, state: str) -> None:
        if state == self.state:
            return
        quiet = self._outage_since is not None and state in ("connecting", "backoff")
        log.log(logging.DEBUG if quiet else logging.INFO, "%s: %s", self.name, state)
        self.state = state
