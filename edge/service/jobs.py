"""Work other threads hand to the daemon's loop thread, run there between two frames.

The web page's enrolments detect and embed faces with the daemon's recognizer; the recognizer
(LiteRT's interpreter especially) must not run on two threads at once, so the HTTP thread queues
the work here and waits, and the loop runs it when it next wakes (at least every 0.5 s).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Generic, TypeVar

from facegate.errors import FacegateError

A = TypeVar("A")
T = TypeVar("T")
# A caller waits this long for the loop: a frame takes well under a second even on a Pi; the
# rest is margin for a loaded board and a 20-photo upload.
WAIT_S = 60.0


class LoopJobs(Generic[A]):
    """A queue of ``job(arg)`` calls that one thread runs for the others; thread-safe."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[[A], Any], Future]] = queue.SimpleQueue()
        self._closed = threading.Event()

    def call(self, job: Callable[[A], T], wait_s: float = WAIT_S) -> T:
        """Queue ``job`` and wait for the loop to run it; its result, or what it raised."""
        if self._closed.is_set():
            raise FacegateError("the service is stopping: try again when it runs")
        future: Future = Future()
        self._queue.put((job, future))
        try:
            return future.result(timeout=wait_s)
        except FutureTimeout as err:
            future.cancel()
            raise FacegateError("the service is too busy to detect faces now") from err

    def run(self, arg: A) -> int:
        """Run every queued job with ``arg`` (on the calling thread); how many ran."""
        done = 0
        while True:
            try:
                job, future = self._queue.get_nowait()
            except queue.Empty:
                return done
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(job(arg))
            except BaseException as err:  # handed to the waiting thread, raised there
                future.set_exception(err)
            done += 1

    def close(self, arg: A) -> None:
        """Refuse new jobs and run those already queued, so no caller waits in vain."""
        self._closed.set()
        self.run(arg)
