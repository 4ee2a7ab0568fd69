"""The facegate service loop: capture -> pipeline -> sinks, under systemd.

One thread captures (newest frame wins for cameras), the main thread runs the pipeline and pings
the systemd watchdog from inside the loop, so a hung pipeline gets restarted. SIGTERM and SIGINT
drain and close every stage. SIGHUP re-reads the configuration and rebuilds, in place, only the
stages whose part of it changed (see :func:`facegate.service.assemble.changed`): an unchanged
source keeps streaming and the pipeline keeps its tracks and who is present. A configuration
that fails to load, fails the preflight checks or fails to build changes nothing: the last
good one keeps running.
"""

from __future__ import annotations

import importlib
import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from facegate.config import Config
from facegate.errors import FacegateError
from facegate.gallery.store import GallerySnapshot, GalleryStore
from facegate.gallery.watch import GalleryWatcher
from facegate.host import notify
from facegate.host.paths import state_dir
from facegate.host.permissions import private_paths, warn_private
from facegate.service import assemble, preflight
from facegate.service.capture import Capture
from facegate.service.health import HealthServer
from facegate.service.jobs import LoopJobs
from facegate.service.metrics import Metrics
from facegate.service.pipeline import Pipeline
from facegate.service.recent import RecentEvents
from facegate.sinks.base import EventSink
from facegate.types import Event, Frame
from facegate.vision.recognizer import Recognizer

log = logging.getLogger(__name__)

STATUS_EVERY_S = 5.0  # systemd STATUS= line refresh
UPLOAD_OVERHEAD_BYTES = 64 * 1024  # multipart boundaries and form fields around the photos
T = TypeVar("T")
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
    """Runs the configuration until the source ends or a stop signal; reloads in place."""

    def __init__(
        self,
        config: Config,
        control: Control,
        metrics: Metrics | None = None,
        reload_config: Callable[[], Config] | None = None,
    ) -> None:
        self.config, self.control, self.reload_config = config, control, reload_config
        self.metrics = metrics or Metrics()
        self.capture: Capture | None = None
        self.sinks: list[EventSink] = []
        self.rec: Recognizer | None = None
        self.store: GalleryStore | None = None
        self.watcher: GalleryWatcher | None = None
        self.pipe: Pipeline | None = None
        self.http: HealthServer | None = None
        self.token: str | None = None
        self.snapshots = None
        self.keeper = None  # the unknown-face store's pipeline side ([unknowns])
        self.started = time.monotonic()
        self.first_frame_at: float | None = None
        self.provider: str | None = None  # where the models run, for /health
        self.recent = RecentEvents(config.http.recent_events if config.http.web else 0)
        self.jobs: LoopJobs[Recognizer] = LoopJobs()  # the web page's detection, run here

    def run(self) -> str:
        """Run until done; return "ended" or "stopped"."""
        try:
            self._start(self.config)
            notify.ready()
            log.info("running: camera %s, source %s", self.config.camera.name, self.capture.name)
            while (outcome := self._loop()) == "reload":
                self.control.reload.clear()
                self.reload()
            self._emit(self.pipe.finish(time.time()))
            notify.stopping()
            return outcome
        finally:
            self.jobs.close(self.rec)
            self._close()

    def _start(self, config: Config) -> None:
        for warning in preflight.require(config, preflight.DAEMON_CHECKS).warnings:
            log.warning("%s", warning)
        capture = assemble.capture(config)  # a bad source fails before models load
        self.rec = assemble.recognizer(config)
        self.provider = self.rec.provider
        self.snapshots = assemble.snapshots(config)
        self.store = self._open_store(config, self.rec, self.snapshots)
        self.sinks = start_sinks(config)
        self.watcher = self._watch(config, self.rec)
        self.keeper = assemble.face_keeper(config, self.rec, self.metrics)
        self.pipe = Pipeline(
            self.rec, assemble.settings(config), self.snapshots, self.metrics, keeper=self.keeper
        )
        self.watcher.poll(force=True)
        self.token = assemble.http_token(config)
        self.http = self._http(config, self.token)
        self._start_capture(capture)

    def _start_capture(self, capture: Capture) -> None:
        self.capture = capture.start()
        self.metrics.inc("source_starts")

    def _close(self) -> None:
        """Stop the capture, then close the endpoint, the sinks and the gallery."""
        if self.capture is not None:
            self.capture.stop()
        if self.http is not None:
            self.http.close()
        close_sinks(self.sinks)
        if self.store is not None:
            self.store.close()
        if self.keeper is not None:
            self.keeper.store.close()

    def _open_store(self, config: Config, rec: Recognizer, snapshots: object) -> GalleryStore:
        gallery = assemble.gallery_path(config)
        folder = getattr(snapshots, "folder", None)
        # checked before GalleryStore.open, which quietly tightens the gallery files' modes
        warn_private(private_paths(gallery, folder, state_dir()))
        # it only reads: starts on a full disk or a read-only mount
        return GalleryStore.open(gallery, rec.model_id, rec.embedder.size, readonly=True)

    def _watch(self, config: Config, rec: Recognizer) -> GalleryWatcher:
        on_change = lambda snap: self._on_gallery(rec, snap)  # noqa: E731
        return GalleryWatcher(self.store, on_change, config.gallery.reload_interval)

    # ---- reload ---------------------------------------------------------------------------

    def reload(self) -> None:
        """Re-read the configuration and rebuild what changed; a failure changes nothing."""
        notify.reloading()
        try:
            new = self.reload_config() if self.reload_config else self.config
            changed = assemble.changed(self.config, new)
            checks = [s for s in preflight.DAEMON_CHECKS if s in changed or s == "http"]
            warnings = preflight.require(new, checks).warnings
            token = assemble.http_token(new)
            if token != self.token and "http" not in changed:
                changed.append("http")
            built = self._build(new, changed)
        except FacegateError as err:
            log.error("reload refused, keeping the running configuration: %s", err)
            notify.ready()
            return
        for warning in warnings:
            log.warning("%s", warning)
        self._swap(new, changed, built, token)
        log.info("configuration reloaded: %s", describe_change(changed))
        notify.ready()

    def _build(self, new: Config, changed: list[str]) -> dict[str, Any]:
        """The new stages the change needs, built (sinks started) but not yet in use."""
        built: dict[str, Any] = {}
        try:
            if "source" in changed:
                built["capture"] = assemble.capture(new)
            if "models" in changed:
                built["rec"] = assemble.recognizer(new)
            if "snapshots" in changed:
                built["snapshots"] = assemble.snapshots(new)
            if {"models", "gallery", "snapshots"} & set(changed):
                rec, snaps = built.get("rec", self.rec), built.get("snapshots", self.snapshots)
                built["store"] = self._open_store(new, rec, snaps)
            if "sinks" in changed:
                built["sinks"] = start_sinks(new)
            if {"models", "gallery", "unknowns"} & set(changed):
                rec = built.get("rec", self.rec)
                built["keeper"] = assemble.face_keeper(new, rec, self.metrics)
        except BaseException:
            close_sinks(built.get("sinks", []))
            if "store" in built:
                built["store"].close()
            if built.get("keeper") is not None:
                built["keeper"].store.close()
            raise
        return built

    def _swap(
        self, new: Config, changed: list[str], built: dict[str, Any], token: str | None
    ) -> None:
        """Put the built stages in place of the old ones and close those."""
        if "capture" in built:
            self.capture.stop()
        if "sinks" in built:
            close_sinks(self.sinks)
            self.sinks = built["sinks"]
        self.rec = built.get("rec", self.rec)
        self.provider = self.rec.provider
        self.rec.config = replace(self.rec.config, threshold=new.recognition.threshold)
        self.snapshots = built.get("snapshots", self.snapshots)
        if "store" in built:
            self.store.close()
            self.store = built["store"]
        self.pipe.reconfigure(self.rec, assemble.settings(new), self.snapshots)
        if "keeper" in built:
            if self.keeper is not None:
                self.keeper.store.close()
            self.keeper = self.pipe.keeper = built["keeper"]
        self.watcher = self._watch(new, self.rec)
        self.watcher.poll(force=True)  # the new recognizer or sinks learn who is enrolled
        if "http" in changed:
            new = self._restart_http(new, token)
        self.config = new
        if "capture" in built:
            self._start_capture(built["capture"])

    def _restart_http(self, new: Config, token: str | None) -> Config:
        """The endpoint on its new settings; on failure the old ones again (and in ``new``)."""
        if self.http is not None:
            self.http.close()
        size = new.http.recent_events if new.http.web else 0
        if size != self.recent.size:
            self.recent = RecentEvents(size)
        try:
            self.http, self.token = self._http(new, token), token
        except FacegateError as err:
            log.error("http: keeping the previous settings: %s", err)
            self.http = self._http(self.config, self.token)
            return replace(new, http=self.config.http)
        return new

    # ---- the loop -------------------------------------------------------------------------

    def _loop(self) -> str:
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
            self.watcher.poll()
            self.jobs.run(self.rec)
            try:
                frame = self.capture.get(timeout=FRAME_WAIT_S)
            except queue.Empty:
                continue
            if frame is None:
                log.info("source %s ended", self.capture.name)
                return "ended"
            self._emit(self.pipe.process(frame), frame)
            if self.first_frame_at is None:
                self.first_frame_at = time.monotonic()
                self.metrics.inc("cold_start_seconds", process_age())
                log.info("first frame processed %.2f s after the process started", process_age())

    def _emit(self, events: list[Event], frame: Frame | None = None) -> None:
        for event in events:
            self.metrics.inc(f"events_{event.kind}")
            self.recent.add(event, frame.image if frame is not None else None)
            for sink in self.sinks:
                try:
                    sink.emit(event)
                except Exception:  # a sink must never stop recognition
                    log.exception("sink %s failed on an event", sink.name)

    def run_job(self, job: Callable[[Recognizer], T]) -> T:
        """Run ``job(recognizer)`` on the loop thread, between frames (from another thread)."""
        return self.jobs.call(job)

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

    def _http(self, config: Config, token: str | None) -> HealthServer | None:
        """The started /health + /metrics endpoint, or None when it is off."""
        http = config.http
        if not http.enabled:
            return None
        web, body = None, None
        if http.web:  # built by the first request for the page: never on the start-up path
            web = lambda: importlib.import_module("facegate.web").build(self, token)  # noqa: E731
            body = int(http.max_upload_mb * 1_000_000) + UPLOAD_OVERHEAD_BYTES
        server = HealthServer(self.health, self.prometheus, http.host, http.port, token, web, body)
        server.start()
        return server

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


def describe_change(changed: list[str]) -> str:
    """'sinks, http changed' or 'nothing changed'."""
    return (", ".join(changed) or "nothing") + " changed"


def start_sinks(config: Config) -> list[EventSink]:
    """Every configured sink, started; if one cannot start, those started are closed again."""
    started: list[EventSink] = []
    try:
        for sink in assemble.sinks(config):
            sink.start()
            started.append(sink)
    except BaseException:
        close_sinks(started)
        raise
    return started


def close_sinks(sinks: list[EventSink]) -> None:
    """Close sinks, last first (each drains what it holds)."""
    for sink in reversed(sinks):
        sink.close()


def process_age() -> float:
    """Seconds since this process started (from /proc; 0 where there is none)."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return 0.0
    return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))


def run(config: Config, reload_config: Callable[[], Config] | None = None) -> int:
    """Run the service until stopped; SIGHUP applies ``reload_config()``'s changes in place."""
    control = Control()
    control.install()
    Daemon(config, control, Metrics(), reload_config).run()
    return 0
