"""Build the daemon's stages from a validated :class:`facegate.config.Config`."""

from __future__ import annotations

import logging
from pathlib import Path

from facegate.bundle import Bundle
from facegate.config.schema import Config
from facegate.config.secrets import read_secret
from facegate.errors import ConfigError
from facegate.host.paths import models_dir, state_dir
from facegate.service.capture import Capture
from facegate.service.pipeline import PipelineSettings
from facegate.service.snapshots import SnapshotStore
from facegate.sinks import EventSink, build_sink
from facegate.sources import open_source
from facegate.vision.detect.mtcnn import MTCNNConfig
from facegate.vision.recognizer import Recognizer, RecognizerConfig

log = logging.getLogger(__name__)


def bundle_dir(name: str) -> Path:
    """A bundle folder given by name (in the state dir) or by path."""
    path = Path(name).expanduser()
    return path if (path / "manifest.json").exists() else models_dir() / name


def recognizer(config: Config) -> Recognizer:
    """Open the bundle's models as the config says."""
    m, d = config.models, config.detector
    detector = MTCNNConfig(
        min_face_size=d.min_face_size,
        thresholds=tuple(d.thresholds),
        scale_factor=d.scale_factor,
        crop=d.crop,
    )
    rc = RecognizerConfig(
        backend=m.backend,
        precision=m.precision,
        threads=m.threads,
        detector=detector,
        threshold=config.recognition.threshold,
        flip=m.flip,
    )
    return Recognizer.from_bundle(Bundle.load(bundle_dir(m.bundle)), rc)


def settings(config: Config) -> PipelineSettings:
    """Tracking and voting settings for the pipeline."""
    return PipelineSettings.from_config(config)


def gallery_path(config: Config) -> Path:
    """The gallery file (default: the state dir's gallery.db)."""
    return (
        Path(config.gallery.path).expanduser()
        if config.gallery.path
        else (state_dir() / "gallery.db")
    )


def snapshots(config: Config) -> SnapshotStore | None:
    """The snapshot store, or None when snapshots are off."""
    s = config.snapshots
    if not s.enabled:
        return None
    folder = Path(s.dir).expanduser() if s.dir else state_dir() / "snapshots"
    unlimited = 10**12
    return SnapshotStore(
        folder, s.max_files or unlimited, s.max_age_days or unlimited, s.max_mb or unlimited
    )


def capture(config: Config) -> Capture:
    """The capture thread for the camera's source (not started)."""
    spec = config.camera.source
    if not spec:
        raise ConfigError("no camera source: set camera.source or pass --source")
    probe = open_source(spec)  # validates the spec now, with a one-line error
    realtime = config.camera.realtime
    if realtime is None:
        realtime = not probe.finite
    return Capture(
        lambda: open_source(spec),
        max_fps=config.camera.max_fps,
        realtime=realtime,
        name=config.camera.name,
    )


def sinks(config: Config) -> list[EventSink]:
    """Every configured sink."""
    return [build_sink(cfg, config.camera.name) for cfg in config.sinks]


def http_token(config: Config) -> str | None:
    """The bearer token for /metrics: token_file, or the systemd credential ``http-token``."""
    return read_secret(config.http.token_file, "http-token")
