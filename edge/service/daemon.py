"""The facegate service loop: capture -> pipeline -> sinks, for one or more cameras, under systemd.

One thread per camera captures (newest frame wins for cameras); the main thread runs inference
for every camera in turns (:mod:`facegate.service.cameras`: one recognizer and one gallery
shared, a pipeline and sinks per camera) and pings the systemd watchdog from inside the loop, so
a hung pipeline gets restarted. A camera that fails reconnects on its own; the others go on.
SIGTERM and SIGINT drain and close every stage. SIGHUP re-reads the configuration and
rebuilds, in place, only the stages whose part of it changed (see
:func:`facegate.service.assemble.changed`), camera by camera: an unchanged source keeps
streaming and each pipeline keeps its tracks and who is present. Cameras are matched by name; a
reload that adds or removes one is refused (restart the service for that). A configuration that
fails to load, fails the preflight checks or fails to build changes nothing: the last good one
keeps running.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from facegate.config import Config, camera_views
from facegate.errors import ConfigError, FacegateError
from facegate.gallery.store import GallerySnapshot, GalleryStore
from facegate.gallery.watch import GalleryWatcher
from facegate.host import notify
from facegate.host.paths import state_dir
from facegate.host.permissions import private_paths, warn_private
from facegate.service import assemble, preflight
from facegate.service.cameras import CameraRunner, RoundRobin, total_stats
from facegate.service.cameras import health as camera_health
from facegate.service.capture import Capture
from facegate.service.health import HealthServer
from facegate.service.jobs import LoopJobs
from facegate.service.metrics import Metrics
from facegate.service.pipeline import Pipeline
from facegate.service.recent import RecentEvents
from facegate.sinks.base import EventSink
from facegate.types import Event, Frame
from facegate.vision.recognizer import Recognizer

if TYPE_CHECKING:
    from facegate.service.faces_kept import FaceKeeper

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
    """Runs the configuration until every source ends or a stop signal; reloads in place."""

    def __init__(
        self,
        config: Config,
        control: Control,
        metrics: Metrics | None = None,
        reload_config: Callable[[], Config] | None = None,
    ) -> None:
        self.config, self.control, self.reload_config = config, control, reload_config
        self.metrics = metrics or Metrics()  # totals; each camera's Metrics adds to them
        self.runners: list[CameraRunner] = []
        self.rota = RoundRobin(self.runners)
        self.rec: Recognizer | None = None
        self.store: GalleryStore | None = None
        self.watcher: GalleryWatcher | None = None
        self.http: HealthServer | None = None
        self.token: str | None = None
        self.snapshots = None
        self.started = time.monotonic()
        self.first_frame_at: float | None = None
        self.provider: str | None = None  # where the models run, for /health
        self.fleet: Any = None  # facegate.fleet.device.FleetDevice when [fleet] is enabled
        self.recent = RecentEvents(config.http.recent_events if config.http.web else 0)
        self.jobs: LoopJobs[Recognizer] = LoopJobs()  # the web page's detection, run here

    @property
    def capture(self) -> Capture | None:
        """The first camera's capture (the only one with a single [camera])."""
        return self.runners[0].capture if self.runners else None

    @property
    def pipe(self) -> Pipeline | None:
        """The first camera's pipeline (the only one with a single [camera])."""
        return self.runners[0].pipe if self.runners else None

    @property
    def keeper(self) -> FaceKeeper | None:
        """The unknown-face store's pipeline side ([unknowns]) of the first camera."""
        return self.runners[0].pipe.keeper if self.runners else None

    @property
    def sinks(self) -> list[EventSink]:
        """Every camera's sinks."""
        return [sink for runner in self.runners for sink in runner.sinks]

    def run(self) -> str:
        """Run until done; return "ended" or "stopped"."""
        try:
            self._start(self.config)
            notify.ready()
            for runner in self.runners:
                log.info("running: camera %s, source %s", runner.name, runner.capture.name)
            while (outcome := self._loop()) == "reload":
                self.control.reload.clear()
                self.reload()
            now = time.time()
            for runner in self.runners:
                runner.finish(now)
            notify.stopping()
            return outcome
        finally:
            self.jobs.close(self.rec)
            self._close()

    def _start(self, config: Config) -> None:
        for warning in preflight.require(config, preflight.DAEMON_CHECKS).warnings:
            log.warning("%s", warning)
        views = camera_views(config)
        captures = [self._capture(view, len(views)) for view in views]  # before models load
        self.rec = assemble.recognizer(config)
        self.provider = self.rec.provider
        self.snapshots = assemble.snapshots(config)
        self.store = self._open_store(config, self.rec, self.snapshots)
        for view, capture in zip(views, captures, strict=True):
            metrics = Metrics(parent=self.metrics)
            pipe = Pipeline(
                self.rec, assemble.settings(view), self.snapshots, metrics,
                liveness=assemble.liveness(view),
                keeper=assemble.face_keeper(view, self.rec, metrics),
            )
            self.runners.append(CameraRunner(view, capture, pipe, metrics))
            self.runners[-1].sinks = start_sinks(view)
            self.runners[-1].on_event = self._record
        self.watcher = self._watch(config, self.rec)
        self.watcher.poll(force=True)
        self.fleet = start_fleet(config, self.store, self.rec)
        self.token = assemble.http_token(config)
        self.http = self._http(config, self.token)
        for runner in self.runners:
            runner.start_capture(runner.capture, self.rota.ring)

    def _capture(self, view: Config, cameras: int) -> Capture:
        """A camera's capture; with several cameras, a file or device absent now is retried."""
        if cameras == 1:
            return assemble.capture(view)
        if view.camera.source and assemble.is_absent(view.camera.source):
            log.warning(
                "camera %s: %s is absent: retried until it appears",
                view.camera.name,
                view.camera.source,
            )
        return assemble.capture(view, retry_absent=True)

    def _close(self) -> None:
        """Stop the captures, then close the endpoint, the sinks and the gallery."""
        for runner in self.runners:
            runner.capture.stop()
        if self.http is not None:
            self.http.close()
        if self.fleet is not None:
            self.fleet.close()
        for runner in self.runners:
            close_sinks(runner.sinks)
        if self.store is not None:
            self.store.close()
        for runner in self.runners:
            close_keeper(runner.pipe.keeper)

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
            pairs = pair_cameras(self.runners, camera_views(new))
            per_camera = [assemble.changed(runner.config, view) for runner, view in pairs]
            changed = [s for s in assemble.stage_keys(new) if any(s in c for c in per_camera)]
            checks = [s for s in preflight.DAEMON_CHECKS if s in changed or s == "http"]
            warnings = preflight.require(new, checks).warnings
            token = assemble.http_token(new)
            if token != self.token and "http" not in changed:
                changed.append("http")
            built = self._build(new, changed, list(zip(pairs, per_camera, strict=True)))
        except FacegateError as err:
            log.error("reload refused, keeping the running configuration: %s", err)
            notify.ready()
            return
        for warning in warnings:
            log.warning("%s", warning)
        self._swap(new, changed, built, token, pairs)
        log.info("configuration reloaded: %s", describe_change(changed))
        notify.ready()

    def _build(
        self, new: Config, changed: list[str], cameras: list[tuple[Pairing, list[str]]]
    ) -> dict[str, Any]:
        """The new stages the change needs, built (sinks started) but not yet in use."""
        built: dict[str, Any] = {"cameras": {}}
        try:
            for (runner, view), mine in cameras:
                built["cameras"][runner] = own = {}
                if "source" in mine:
                    own["capture"] = self._capture(view, len(cameras))
                if "sinks" in mine:
                    own["sinks"] = start_sinks(view)
            if "models" in changed:
                built["rec"] = assemble.recognizer(new)
            if "snapshots" in changed:
                built["snapshots"] = assemble.snapshots(new)
            if {"models", "gallery", "snapshots"} & set(changed):
                rec, snaps = built.get("rec", self.rec), built.get("snapshots", self.snapshots)
                built["store"] = self._open_store(new, rec, snaps)
            if {"models", "gallery", "unknowns"} & set(changed):
                rec = built.get("rec", self.rec)
                built["keepers"] = {
                    runner: assemble.face_keeper(view, rec, runner.metrics)
                    for (runner, view), _ in cameras
                }
        except BaseException:
            for own in built["cameras"].values():
                close_sinks(own.get("sinks", []))
            if "store" in built:
                built["store"].close()
            for keeper in built.get("keepers", {}).values():
                close_keeper(keeper)
            raise
        return built

    def _swap(
        self,
        new: Config,
        changed: list[str],
        built: dict[str, Any],
        token: str | None,
        pairs: list[Pairing],
    ) -> None:
        """Put the built stages in place of the old ones and close those."""
        for runner, own in built["cameras"].items():
            if "capture" in own:
                runner.capture.stop()
            if "sinks" in own:
                close_sinks(runner.sinks)
                runner.sinks = own["sinks"]
        self.rec = built.get("rec", self.rec)
        self.provider = self.rec.provider
        self.rec.config = replace(self.rec.config, threshold=new.recognition.threshold)
        self.snapshots = built.get("snapshots", self.snapshots)
        if "store" in built:
            self.store.close()
            self.store = built["store"]
        for runner, view in pairs:
            old_liveness = runner.config.liveness
            runner.config = view
            runner.pipe.reconfigure(self.rec, assemble.settings(view), self.snapshots)
            if view.liveness != old_liveness:
                runner.pipe.liveness = assemble.liveness(view)
            if runner in built.get("keepers", {}):
                close_keeper(runner.pipe.keeper)
                runner.pipe.keeper = built["keepers"][runner]
        self.watcher = self._watch(new, self.rec)
        self.watcher.poll(force=True)  # the new recognizer or sinks learn who is enrolled
        if {"models", "gallery", "sinks"} & set(changed) or new.fleet != self.config.fleet:
            self._restart_fleet(new)
        if "http" in changed:
            new = self._restart_http(new, token)
        self.config = new
        for runner, own in built["cameras"].items():
            if "capture" in own:
                runner.ended = False
                runner.start_capture(own["capture"], self.rota.ring)

    def _restart_fleet(self, new: Config) -> None:
        """The fleet follower on the new settings; on failure it stays off (logged)."""
        if self.fleet is not None:
            self.fleet.close()
            self.fleet = None
        try:
            self.fleet = start_fleet(new, self.store, self.rec)
        except FacegateError as err:
            log.error("fleet: not following gallery updates: %s", err)

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
            self.watcher.poll(force=self.fleet is not None and self.fleet.reload_wanted())
            self.jobs.run(self.rec)
            if not self._turn():
                if self.rota.done:
                    return "ended"
                self.rota.wait(FRAME_WAIT_S)

    def _turn(self) -> bool:
        """One frame from each camera that has one; False when none had."""
        worked = False
        for runner, frame in self.rota.turn():
            worked = True
            if frame is None:
                log.info("camera %s: source %s ended", runner.name, runner.capture.name)
                runner.finish(time.time())
                continue
            runner.step(frame)
            if self.first_frame_at is None:
                self.first_frame_at = time.monotonic()
                self.metrics.inc("cold_start_seconds", process_age())
                log.info("first frame processed %.2f s after the process started", process_age())
        return worked

    def _record(self, event: Event, frame: Frame | None) -> None:
        """Keep an event, with its face, for the web page's recent events (memory only)."""
        self.recent.add(event, frame.image if frame is not None else None)

    def run_job(self, job: Callable[[Recognizer], T]) -> T:
        """Run ``job(recognizer)`` on the loop thread, between frames (from another thread)."""
        return self.jobs.call(job)

    def _on_gallery(self, rec: object, snapshot: GallerySnapshot) -> None:
        rec.set_gallery(snapshot)
        if self.fleet is not None:
            self.fleet.loaded(snapshot.version)
        for sink in self.sinks:
            set_people: Callable[[list[str]], None] | None = getattr(sink, "set_people", None)
            if set_people is not None:
                set_people(list(snapshot.names))

    def _status_line(self) -> str:
        if len(self.runners) > 1:
            up = sum(r.capture.stats().state == "streaming" for r in self.runners)
            return f"{self.metrics.fps():.1f} fps, {up}/{len(self.runners)} cameras streaming"
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
        """The /health document: the totals, and each camera under ``cameras``."""
        cameras = camera_health(self.runners)
        stats = total_stats([runner.capture.stats() for runner in self.runners])
        last = stats.last_frame_time if stats else None
        ok = bool(cameras) and all(cam["status"] == "ok" for cam in cameras.values())
        return {
            "status": "ok" if ok else ("starting" if stats is None else "degraded"),
            "uptime_s": round(time.monotonic() - self.started, 1),
            "source": stats.state if stats else "starting",
            "last_frame_age_s": None if last is None else round(time.time() - last, 3),
            "fps": round(self.metrics.fps(), 2),
            "provider": self.provider,
            "cameras": cameras,
        }

    def prometheus(self) -> dict[str, tuple[str, str, object]]:
        """Metric name -> (type, help, value or {labels: value}) for /metrics."""
        from facegate.service.prom import collect

        stats = total_stats([runner.capture.stats() for runner in self.runners])
        return collect(self.metrics, stats, self.sinks, self.runners)


Pairing = tuple[CameraRunner, Config]


def pair_cameras(runners: list[CameraRunner], views: tuple[Config, ...]) -> list[Pairing]:
    """Each running camera with its new configuration, by name; ConfigError if the set changed.

    A single camera pairs with a single camera whatever its name (a rename is a change of it).
    """
    if len(runners) == 1 and len(views) == 1:
        return [(runners[0], views[0])]
    new = {view.camera.name: view for view in views}
    old = [runner.name for runner in runners]
    added, removed = sorted(set(new) - set(old)), sorted(set(old) - set(new))
    if added or removed:
        what = "; ".join(
            f"{word} {', '.join(names)}"
            for word, names in (("added", added), ("removed", removed))
            if names
        )
        raise ConfigError(
            f"cameras cannot be added or removed by a reload ({what}): restart the service"
        )
    return [(runner, new[runner.name]) for runner in runners]


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


def start_fleet(config: Config, store: GalleryStore, rec: Recognizer) -> Any:
    """The started fleet follower when ``[fleet]`` is enabled (its modules load only then)."""
    if not config.fleet.enabled:
        return None
    from facegate.fleet.device import FleetDevice

    fleet = FleetDevice(config, store.path, rec.model_id, rec.embedder.size)
    fleet.start()
    return fleet


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


def close_keeper(keeper: FaceKeeper | None) -> None:
    """Close a camera's unknown-face store connection, if it has one."""
    if keeper is not None:
        keeper.store.close()
