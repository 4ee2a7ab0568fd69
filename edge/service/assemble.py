"""Build the daemon's stages from a validated :class:`facegate.config.Config`."""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from facegate.backends.onnxruntime import Providers
from facegate.bundle import Bundle
from facegate.config.schema import Config, camera_views
from facegate.errors import ConfigError, FacegateError
from facegate.host.paths import models_dir, state_dir
from facegate.service.capture import Capture
from facegate.service.liveness import DECISION_FRAMES, LivenessGate, LivenessSettings
from facegate.service.metrics import Metrics
from facegate.service.pipeline import PipelineSettings
from facegate.service.snapshots import SnapshotStore
from facegate.sinks import EventSink, build_sink
from facegate.sources import is_stills, open_source, source_kind, unavailable
from facegate.vision.detect.mtcnn import MTCNNConfig
from facegate.vision.recognizer import Recognizer, RecognizerConfig

if TYPE_CHECKING:
    from facegate.service.faces_kept import FaceKeeper

log = logging.getLogger(__name__)

TOKEN_CREDENTIAL = "http-token"  # LoadCredential=http-token:... in the systemd unit


def bundle_dir(name: str) -> Path:
    """A bundle folder given by name (in the state dir) or by path."""
    path = Path(name).expanduser()
    return path if (path / "manifest.json").exists() else models_dir() / name


def recognizer(config: Config) -> Recognizer:
    """Open the bundle's models as the config says."""
    m = config.models
    return Recognizer.from_bundle(Bundle.load(bundle_dir(m.bundle)), recognizer_config(config))


def recognizer_config(config: Config) -> RecognizerConfig:
    """Runtime, precision, threads and detector settings as the config says."""
    m, d = config.models, config.detector
    detector = MTCNNConfig(
        min_face_size=d.min_face_size,
        thresholds=tuple(d.thresholds),
        scale_factor=d.scale_factor,
        crop=d.crop,
    )
    return RecognizerConfig(
        backend=m.backend,
        precision=m.precision,
        threads=m.threads,
        detector=detector,
        threshold=config.recognition.threshold,
        flip=m.flip,
        providers=providers(config),
    )


def providers(config: Config) -> Providers:
    """The onnxruntime execution providers the [runtime] table asks for."""
    r = config.runtime
    return Providers(names=r.providers, tensorrt_fp16=r.tensorrt_fp16)


def settings(config: Config) -> PipelineSettings:
    """Tracking and voting settings for the pipeline."""
    return PipelineSettings.from_config(config)


def liveness(config: Config) -> LivenessGate | None:
    """The liveness gate the [liveness] table asks for (None when it is off)."""
    cfg = config.liveness
    if not cfg.enabled:
        return None
    from facegate.vision.liveness import LivenessModel

    bundle = Bundle.load(bundle_dir(config.models.bundle))
    model = LivenessModel.configured(cfg.model, bundle, recognizer_config(config))
    spec = model.spec
    if cfg.crop_scale is not None:
        model.spec = spec = replace(spec, crop_scale=cfg.crop_scale)
    frames = 1 if is_stills(config.camera.source) else DECISION_FRAMES
    settings = LivenessSettings(
        frames=frames if cfg.frames is None else cfg.frames,
        threshold=spec.threshold if cfg.threshold is None else cfg.threshold,
        rigid_below=cfg.rigid_below,
    )
    log.info(
        "liveness: %s, judged over %d frames at %.3f",
        spec.name,
        settings.frames,
        settings.threshold,
    )
    return LivenessGate(model, settings)


def stage_keys(config: Config) -> dict[str, object]:
    """For each stage the daemon runs, the part of ``config`` that builds it."""
    cam = config.camera
    return {
        "source": (cam.source, cam.max_fps, cam.realtime),
        "models": (config.models, config.detector),
        "pipeline": (settings(config), config.recognition.threshold, config.liveness),
        "gallery": config.gallery,
        "snapshots": config.snapshots,
        "unknowns": (config.unknowns, cam.name),
        "sinks": (config.sinks, cam.name),  # sinks carry the camera name (MQTT topics)
        "http": config.http,
        "service": config.service,
    }


def changed(old: Config, new: Config) -> list[str]:
    """The stages whose part of the configuration differs between ``old`` and ``new``."""
    before, after = stage_keys(old), stage_keys(new)
    return [stage for stage in before if before[stage] != after[stage]]


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


def face_keeper(config: Config, rec: Recognizer, metrics: Metrics) -> FaceKeeper | None:
    """The unknown-face store the pipeline keeps faces in; None when off or when the gallery
    cannot be written (read-only mount, other model): recognition runs without it."""
    if not config.unknowns.enabled:
        return None
    from facegate.gallery.unknowns import UnknownStore
    from facegate.service.faces_kept import FaceKeeper

    try:
        store = UnknownStore.from_config(config, rec.model_id, rec.embedder.size)
    except FacegateError as err:
        log.warning("unknown faces are not kept: %s", err)
        return None
    return FaceKeeper(store, config.camera.name, metrics)


def check_source(config: Config) -> tuple[list[str], list[str]]:
    """(problems, warnings): each camera's source names something that can work here.

    With several cameras, a file or device that is absent right now is a warning: that camera
    is retried until it appears, and the others run meanwhile.
    """
    views = camera_views(config)
    if len(views) == 1:
        return _source_problems(config.camera.source), []
    problems, warnings = [], []
    for cam in (view.camera for view in views):
        found = _source_problems(cam.source) if cam.source else ["no source: set its source key"]
        if found and cam.source and is_absent(cam.source):
            warnings.append(f"camera {cam.name}: {found[0]}; retried until it appears")
        else:
            problems += [f"camera {cam.name}: {line}" for line in found]
    return problems, warnings


def _source_problems(spec: str | None) -> list[str]:
    """Why the source ``spec`` cannot work here (unset: no check)."""
    if not spec:
        return []
    try:
        open_source(spec)
    except FacegateError as err:
        return [str(err)]
    reason = unavailable(spec)
    return [reason] if reason else []


def is_absent(spec: str) -> bool:
    """Whether ``spec`` names a file or V4L2 device that could appear later but is missing now."""
    spec = spec.strip()
    if spec.startswith("picamera2"):
        return False
    kind = source_kind(spec)
    if kind == "device":
        return unavailable(spec) is not None
    path = Path(spec).expanduser()
    looks_like_file = "." in path.name or "/" in spec  # open_source's test for "no such file"
    return kind == "file" and looks_like_file and not path.exists()


def capture(config: Config, *, retry_absent: bool = False) -> Capture:
    """The capture thread for the camera's source (not started); ConfigError if it cannot work.

    ``retry_absent``: a file or device missing now is no error; the capture retries it.
    """
    spec, cam = config.camera.source, config.camera
    if not spec:
        raise ConfigError("no camera source: set camera.source or pass --source")
    absent = retry_absent and is_absent(spec)
    problems = [] if absent else _source_problems(spec)  # what check-config says, one line each
    if problems:
        raise ConfigError("\n".join(problems))
    realtime = cam.realtime
    if realtime is None:  # files are read in full unless asked; live sources drop to keep up
        realtime = source_kind(spec) != "file" if absent else not open_source(spec).finite
    return Capture(lambda: open_source(spec), max_fps=cam.max_fps, realtime=realtime, name=cam.name)


def sinks(config: Config) -> list[EventSink]:
    """Every configured sink."""
    return [build_sink(cfg, config.camera.name) for cfg in config.sinks]


def token_path(config: Config) -> Path | None:
    """Where the HTTP token lives: http.token_file, else systemd's credential, else None."""
    if config.http.token_file:
        return Path(config.http.token_file).expanduser()
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    path = Path(creds) / TOKEN_CREDENTIAL if creds else None
    return path if path is not None and os.path.lexists(path) else None


def http_token(config: Config) -> str | None:
    """The bearer token for every path but /health; None when no token is set.

    An unreadable or empty token is a ConfigError, never "no authentication": an empty file
    would otherwise serve /metrics (and all that comes after it) to anyone.
    """
    path = token_path(config)
    if path is None:
        return None
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as err:
        raise ConfigError(f"http token {path}: cannot read: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"http token {path}: not UTF-8 text") from err
    if not token:
        raise ConfigError(f"http token {path}: the file is empty: write the token into it")
    if config.http.token_file and path.stat().st_mode & 0o077:
        log.warning("%s is readable by other users: chmod 600 it", path)
    return token
