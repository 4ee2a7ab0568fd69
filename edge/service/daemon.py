"""The facegate service loop: capture -> pipeline -> sinks, under systemd.

One thread captures (newest frame wins for cameras), the main thread runs the pipeline and pings
the systemd watchdog from inside the loop, so a hung pipeline gets restarted. SIGTERM and SIGINT
drain and close every stage; SIGHUP re-reads the configuration and rebuilds the stages.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from facegate.config import Config
from facegate.gallery.store import GallerySnapshot, GalleryStore
from facegate.gallery.watch import GalleryWatcher
from facegate.host import notify
from facegate.host.paths import state_dir
from facegate.host.permissions import private_paths, warn_private
from facegate.service import assemble
from facegate.service.metrics import Metrics
from facegate.service.pipeline import Pipeline
from facegate.sinks.base import EventSink
from facegate.types import Event

log = logging.getLogger(__name__)

STATUS_EVERY_S = 5.0  # systemd STATUS= line refresh
FRAME_WAIT_S = 0.5  # the loop wakes at least this often to ping the watchdog and poll the gallery


@dataclass
class Control:
    """Flags the signal handlers set and the loop reads."""

    stop: threading.Event = field(default_factory=threading.Event)
    reload: threading.Event = field(default_factory=threading.Event)

    def install(self) -> None:
        """Route SIGTERM/SIGINT to stop and SIGHUP to reload (main thread only)."""
        signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop.set())
        signal.signal(signal.SIGHUP, lambda *_: self.reload.set())


class Daemon:
    """Runs one configuration until the source ends, a stop signal, or a reload."""

    def __init__(self, config: Config, control: Control, metrics: Metrics | None = None) -> None:
        self.config, self.control = config, control
        self.metrics = metrics or Metrics()
        self.capture = None
        self.sinks: list[EventSink] = []
        self.started = time.monotonic()
        self.first_frame_at: float | None = None
        self.provider: str | None = None  # where the models run, for /health

    def run(self) -> str:
        """Run until done; return "ended", "stopped" or "reload"."""
        with ExitStack() as stack:
            capture = assemble.capture(self.config)  # a bad source fails before models load
            rec = assemble.recognizer(self.config)
            self.provider = rec.provider
            gallery, snapshots = assemble.gallery_path(self.config), assemble.snapshots(self.config)
            folder = snapshots.folder if snapshots is not None else None
            # checked before GalleryStore.open, which quietly tightens the gallery files' modes
            warn_private(private_paths(gallery, folder, state_dir()))
            store = stack.enter_context(  # it only reads: starts on a full disk or read-only mount
                GalleryStore.open(gallery, rec.model_id, rec.embedder.size, readonly=True)
            )
            self.sinks = [stack.enter_context(s) for s in assemble.sinks(self.config)]
            watcher = GalleryWatcher(
                store, lambda snap: self._on_gallery(rec, snap), self.config.gallery.reload_interval
            )
            watcher.poll(force=True)
            pipe = Pipeline(rec, assemble.settings(self.config), snapshots, self.metrics)
            stack.enter_context(self._http())
            self.capture = capture.start()
            stack.callback(self.capture.stop)
            notify.ready()
            log.info("running: camera %s, source %s", self.config.camera.name, self.capture.name)
            outcome = self._loop(pipe, watcher)
            self._emit(pipe.finish(time.time()))
            notify.stopping()
            return outcome

    def _loop(self, pipe: Pipeline, watcher: GalleryWatcher) -> str:
        watchdog = notify.watchdog_interval() if self.config.service.watchdog else None
        next_ping = next_status = 0.0
        while True:
            if self.control.stop.is_set():
                return "stopped"
            if self.control.reload.is_set():
                return "reload"
            now = time.monotonic()
            if watchdog and now >= next_ping:
                notify.watchdog()
                next_ping = now + watchdog
            if now >= next_status:
                notify.status(self._status_line())
                next_status = now + STATUS_EVERY_S
            watcher.poll()
            try:
                frame = self.capture.get(timeout=FRAME_WAIT_S)
            except queue.Empty:
                continue
            if frame is None:
                log.info("source %s ended", self.capture.name)
                return "ended"
            self._emit(pipe.process(frame))
            if self.first_frame_at is None:
                self.first_frame_at = time.monotonic()
                self.metrics.inc("cold_start_seconds", process_age())
                log.info("first frame processed %.2f s after the process started", process_age())

    def _emit(self, events: list[Event]) -> None:
        for event in events:
            self.metrics.inc(f"events_{event.kind}")
            for sink in self.sinks:
                try:
                    sink.emit(event)
                except Exception:  # a sink must never stop recognition
                    log.exception("sink %s failed on an event", sink.name)

    def _on_gallery(self, rec: object, snapshot: GallerySnapshot) -> None:
        rec.set_gallery(snapshot)
        for sink in self.sinks:
            set_people: Callable[[list[str]], None] | None = getattr(sink, "set_people", None)
            if set_people is not None:
                set_people(list(snapshot.names))

    def _status_line(self) -> str:
        stats = self.capture.stats() if self.capture else None
        state = stats.state if stats else "starting"
        return f"{self.metrics.fps():.1f} fps, source {state}"

    def _http(self) -> object:
        from facegate.service.health import HealthServer

        http = self.config.http
        if not http.enabled:
            return ExitStack()
        return HealthServer(
            self.health,
            self.prometheus,
            host=http.host,
            port=http.port,
            token=assemble.http_token(self.config),
        )

    def health(self) -> dict[str, object]:
        """The /health document."""
        stats = self.capture.stats() if self.capture else None
        last = stats.last_frame_time if stats else None
        age = None if last is None else round(time.time() - last, 3)
        ok = stats is not None and stats.state == "streaming" and (age is None or age < 30)
        return {
            "status": "ok" if ok else ("starting" if stats is None else "degraded"),
            "uptime_s": round(time.monotonic() - self.started, 1),
            "source": stats.state if stats else "starting",
            "last_frame_age_s": age,
            "fps": round(self.metrics.fps(), 2),
            "provider": self.provider,
        }

    def prometheus(self) -> dict[str, tuple[str, str, object]]:
        """Metric name -> (type, help, value or {labels: value}) for /metrics."""
        from facegate.service.prom import collect

        return collect(self.metrics, self.capture.stats() if self.capture else None, self.sinks)


def process_age() -> float:
    """Seconds since this process started (from /proc; 0 where there is none)."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return 0.0
    return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))


def run(config: Config, reload_config: Callable[[], Config] | None = None) -> int:
    """Run the service until stopped; SIGHUP rebuilds it from ``reload_config()``."""
    control = Control()
    control.install()
    metrics = Metrics()
    while True:
        outcome = Daemon(config, control, metrics).run()
        if outcome != "reload":
            return 0
        control.reload.clear()
        notify.reloading()
        if reload_config is not None:
            config = reload_config()
        log.info("configuration reloaded")
