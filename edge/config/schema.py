"""The daemon's configuration schema: one frozen dataclass per TOML table, every key described.

Every key has a type, a default, the values it accepts and a description, kept beside it so
``facegate check-config --explain`` prints them. Sinks declare their own tables
(``facegate.sinks``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace

from facegate.backends.onnxruntime import DEFAULT_PROVIDERS, PROVIDERS
from facegate.config.fields import opt
from facegate.gallery.clusters import CLUSTER_THRESHOLD
from facegate.sinks.jsonl import JsonlSinkConfig
from facegate.sinks.mqtt import MqttSinkConfig
from facegate.sinks.webhook import WebhookSinkConfig
from facegate.vision.motion import MOTION_MIN_AREA, MOTION_THRESHOLD
from facegate.vision.planner import FULL_SCAN_EVERY, REGION_MARGIN
from facegate.vision.quality import MAX_PITCH_DEG, MAX_YAW_DEG
from facegate.vision.recognizer import DEFAULT_THRESHOLD
from facegate.vision.track import VIDEO_UNKNOWN_AFTER, VIDEO_VOTES

SOURCE_DOC = (
    "camera index, /dev/videoN, picamera2[:N], rtsp:// or http(s):// URL, video file or image "
    "folder; required here or as --source"
)
SinkConfig = JsonlSinkConfig | MqttSinkConfig | WebhookSinkConfig


@dataclass(frozen=True, slots=True, kw_only=True)
class CameraConfig:
    """[camera] (or each [[cameras]] table): where frames come from and how many are processed."""

    name: str = opt("camera", "name used in events and MQTT topics", "slug")
    source: str | None = opt(None, SOURCE_DOC, "text", from_int=True)
    max_fps: float | None = opt(
        None,
        "frames per second to process at most (unset: all); the rest count as frames_skipped",
        ">0",
    )
    detect_every: int = opt(1, "run the detector on every Nth frame; tracks bridge the rest", ">=1")
    realtime: bool | None = opt(None, "drop frames to keep up (unset: for cameras and streams)")
    min_face: float | None = opt(
        None,
        "smallest face this camera can show, in pixels: the detector's pyramid starts there "
        "(unset: [detection] min_face)",
        "12..2000",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelsConfig:
    """[models]: which bundle runs on which runtime."""

    bundle: str = opt("default", "bundle name in $FACEGATE_HOME/models, or its folder", "text")
    backend: str = opt("auto", "runtime (auto: LiteRT when installed)", "auto|onnxruntime|litert")
    precision: str = opt("fp32", "model precision (fp32 where not bundled)", "fp32|fp16|int8")
    threads: int = opt(1, "inference threads", "1..16")
    flip: bool = opt(False, "also embed the mirrored face: ~2x embed time, a little accuracy")


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeConfig:
    """[runtime]: where onnxruntime runs the models (the CPU, or a GPU through CUDA/TensorRT)."""

    providers: tuple[str, ...] = opt(
        DEFAULT_PROVIDERS,
        "onnxruntime execution providers in order of preference (a missing one is an error)",
        "|".join(PROVIDERS),
    )
    tensorrt_fp16: bool = opt(
        True, "TensorRT builds FP16 engines (cached in $FACEGATE_HOME/tensorrt)"
    )

    def check(self) -> list[tuple[str, str]]:
        """Problems between keys: (key, message)."""
        if not self.providers:
            return [("providers", 'must name at least one provider, e.g. ["cpu"]')]
        if len(set(self.providers)) != len(self.providers):
            return [("providers", "names a provider twice")]
        return []


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectorConfig:
    """[detector]: the MTCNN cascade (defaults: the reference implementations)."""

    min_face_size: int = opt(
        40, "smallest face searched for, pixels (smaller costs more)", "12..2000"
    )
    thresholds: tuple[float, float, float] = opt(
        (0.6, 0.7, 0.7), "P-Net, R-Net and O-Net face-probability thresholds", "(0,1)"
    )
    scale_factor: float = opt(0.709, "image-pyramid step (~1/sqrt(2))", "0.5..0.95")
    crop: str = opt(
        "zero",
        "faces at the image edge: black outside it (zero) or the inside stretched (clip)",
        "zero|clip",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectionPlanConfig:
    """[detection]: where each frame is searched for faces (motion, live tracks, full scans)."""

    enabled: bool = opt(
        True,
        "skip frames where nothing moved and search only around tracked faces between full "
        "scans (off: the detector scans every whole frame; never used on a folder of photos)",
    )
    # MOTION_THRESHOLD / MOTION_MIN_AREA / FULL_SCAN_EVERY / REGION_MARGIN: facegate.vision.motion
    # and facegate.vision.planner say how they were chosen.
    motion_threshold: float = opt(
        MOTION_THRESHOLD, "grey levels a pixel of the small frame copy must change by", "1..255"
    )
    motion_min_area: float = opt(
        MOTION_MIN_AREA, "share of the small frame copy that must change to be motion", "(0,1)"
    )
    full_scan_every: int = opt(
        FULL_SCAN_EVERY, "frames between whole-frame scans while faces are tracked", ">=1"
    )
    region_margin: float = opt(
        REGION_MARGIN, "face sides added on each side of a tracked face to search in", "0..10"
    )
    refine: bool = opt(
        True,
        "between full scans, re-find a tracked face with the detector's last stage alone "
        "(O-Net on its last box), the whole detector only where that finds none",
    )
    min_face: float | None = opt(
        None,
        "smallest face (pixels) this camera can show: the detector's pyramid starts there "
        "(unset: [detector] min_face_size)",
        "12..2000",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RecognitionConfig:
    """[recognition]: when a tracked face gets embedded, named, or called unknown."""

    threshold: float = opt(DEFAULT_THRESHOLD, "cosine similarity at which a face matches", "-1..1")
    min_face_size: int = opt(60, "narrower faces (pixels) are tracked but not embedded", ">=0")
    min_sharpness: float = opt(60.0, "Laplacian variance under which a crop is too blurred", ">=0")
    # MAX_YAW_DEG / MAX_PITCH_DEG: measured on ../shared/faces and the Hamilton clip
    # (facegate.vision.quality): faces turned further are not embedded, so never named or unknown.
    max_yaw: float = opt(MAX_YAW_DEG, "head turn (degrees) beyond which a face is unused", "0..90")
    max_pitch: float = opt(
        MAX_PITCH_DEG, "head nod (degrees) beyond which a face is unused", "0..90"
    )
    votes: int | None = opt(
        None, "agreeing frames before a track is named (unset: 3; 1 for a folder of photos)", ">=1"
    )
    max_embeds_per_track: int = opt(10, "embeddings computed per track at most", ">=1")
    unknown_after: int | None = opt(
        None,
        "embedded frames without a match before 'unknown' (unset: 5; 1 for a folder of photos)",
        ">=1",
    )

    def check(self) -> list[tuple[str, str]]:
        """Problems between keys: (key, message)."""
        cap = self.max_embeds_per_track
        votes = VIDEO_VOTES if self.votes is None else self.votes
        unknown_after = VIDEO_UNKNOWN_AFTER if self.unknown_after is None else self.unknown_after
        return [
            (key, f"must be <= max_embeds_per_track ({cap}), got {value}")
            for key, value in (("votes", votes), ("unknown_after", unknown_after))
            if value > cap
        ]


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackerConfig:
    """[tracker]: the IoU tracker that follows faces between frames."""

    iou_threshold: float = opt(0.3, "overlap (IoU) at which a detection continues a track", "0..1")
    max_missed: int = opt(15, "processed frames a track may miss its face and go on", ">=1")
    leave_after_s: float = opt(
        5.0, "seconds (frame time) no face of a visit is seen before its 'left' event", ">0"
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class LivenessConfig:
    """[liveness]: presentation-attack detection (a printed photo must not open the gate)."""

    enabled: bool = opt(False, "judge each track live or an attack before it is recognized")
    model: str = opt(
        "liveness-nuaa-v1", "the bundle's liveness model (by name), or a .json spec file", "text"
    )
    threshold: float | None = opt(
        None, "attack score at which a track is an attack (unset: the model's measured)", "0..1"
    )
    frames: int | None = opt(
        None, "scored frames before a track is judged (unset: 3; 1 for a folder of photos)", ">=1"
    )
    crop_scale: float | None = opt(
        None, "face crop side / detector box side (unset: the model's)", "0.5..4"
    )
    rigid_below: float = opt(
        0.0, "landmark motion residual under which a track moves like a photo (0: off)", "0..1"
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class GalleryConfig:
    """[gallery]: the enrolled people."""

    path: str = opt("", "gallery database (empty: $FACEGATE_HOME/gallery.db)")
    reload_interval: float = opt(2.0, "seconds between checks for gallery changes", ">0")


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotsConfig:
    """[snapshots]: face crops saved with events, and their cleanup."""

    enabled: bool = opt(True, "save a crop of each unknown face (recognized faces are not kept)")
    dir: str = opt(
        "", "snapshot folder, facegate's own: new or empty (empty: $FACEGATE_HOME/snapshots)"
    )
    max_files: int = opt(500, "keep at most this many files (0: no limit)", ">=0")
    max_age_days: float = opt(30.0, "delete files older than this (0: no limit)", ">=0")
    max_mb: float = opt(200.0, "keep the folder under this size (0: no limit)", ">=0")


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownsConfig:
    """[unknowns]: unknown faces kept in the gallery file, clustered, to label or ignore."""

    enabled: bool = opt(
        True, "keep each unknown face (aligned crop, embedding) to review: `facegate unknowns`"
    )
    max_sightings: int = opt(2000, "keep at most this many unknown faces (0: no limit)", ">=0")
    max_age_days: float = opt(30.0, "delete unknown faces older than this (0: no limit)", ">=0")
    # CLUSTER_THRESHOLD: measured in docs/unknowns.md (benchmarks: --sections clustering)
    cluster_threshold: float = opt(
        CLUSTER_THRESHOLD,
        "cosine similarity to a cluster's centre at which a face joins it",
        "-1..1",
    )
    keep_matches_hours: float = opt(
        24.0,
        "keep recognized faces this long so `facegate unknowns correct VISIT` can say"
        " 'not this person' (0: keep none)",
        ">=0",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpConfig:
    """[http]: the /health and /metrics endpoint."""

    enabled: bool = opt(True, "serve /health and /metrics")
    host: str = opt("127.0.0.1", "address to listen on (not loopback: needs token_file)", "text")
    port: int = opt(8765, "TCP port", "1..65535")
    token_file: str | None = opt(None, "file holding the bearer token for all but /health")
    web: bool = opt(True, "serve the web page (/) and the REST API (/api) on the same port")
    max_upload_mb: float = opt(
        20.0, "largest upload the web page and API accept, in MB (413 above)", "(0,200)"
    )
    recent_events: int = opt(
        50, "recent events (with a small face picture) kept in memory for the page", "0..1000"
    )
    secure_cookie: bool = opt(
        False, "mark the login cookie Secure (only when a TLS proxy serves the page)"
    )

    def check(self) -> list[tuple[str, str]]:
        """Problems between keys: (key, message)."""
        if not self.enabled or self.token_file or is_loopback(self.host):
            return []
        return [("token_file", f"required when host is not loopback ({self.host!r})")]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceConfig:
    """[service]: how the daemon behaves under systemd."""

    watchdog: bool = opt(True, "ping the systemd watchdog from the pipeline loop")
    log_level: str = opt("info", "log level", "debug|info|warning|error")


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetConfig:
    """[fleet]: signed gallery updates from a central broker (`facegate fleet publish`)."""

    enabled: bool = opt(
        False, "follow the fleet's gallery (over the first mqtt sink's broker, as its instance)"
    )
    topic: str = opt("facegate/fleet/gallery", "topic the updates are published on", "topic")
    public_key: str | None = opt(
        None, "the publisher's ed25519 public key, base64 (`facegate fleet keygen` prints it)"
    )
    public_key_file: str | None = opt(None, "file holding that public key instead")
    passphrase_file: str | None = opt(
        None, "file holding the export passphrase (unset: systemd credential fleet-passphrase)"
    )
    # 384 MiB: about 12,000 people at the 33 kB a person with one template takes (measured
    # with benchmarks/fleet_message.py, docs/fleet.md). The parts stream to disk, but the
    # import holds about five times the update (measured peak: 160 MiB for 32 MiB), ~1.9 GiB
    # at this limit: a 4 GB Pi 4 or 5. On a 2 GB board use 160 (about 5,000 people).
    max_mb: float = opt(384.0, "larger updates are refused (the whole update, all parts)", ">0")

    def check(self) -> list[tuple[str, str]]:
        """Problems between keys: (key, message)."""
        if self.enabled and not (self.public_key or self.public_key_file):
            return [("public_key", "required when enabled (or public_key_file)")]
        if self.public_key and self.public_key_file:
            return [("public_key_file", "give public_key or public_key_file, not both")]
        return []


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The whole daemon configuration."""

    camera: CameraConfig = field(default_factory=CameraConfig)
    cameras: tuple[CameraConfig, ...] = opt(
        (), "[[cameras]]: several cameras in one daemon, each a [camera] table (not with [camera])"
    )
    models: ModelsConfig = field(default_factory=ModelsConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    detection: DetectionPlanConfig = field(default_factory=DetectionPlanConfig)
    recognition: RecognitionConfig = field(default_factory=RecognitionConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    liveness: LivenessConfig = field(default_factory=LivenessConfig)
    gallery: GalleryConfig = field(default_factory=GalleryConfig)
    snapshots: SnapshotsConfig = field(default_factory=SnapshotsConfig)
    unknowns: UnknownsConfig = field(default_factory=UnknownsConfig)
    sinks: tuple[SinkConfig, ...] = opt((JsonlSinkConfig(),), "[[sinks]] (none: stdout)")
    http: HttpConfig = field(default_factory=HttpConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)
    fleet: FleetConfig = field(default_factory=FleetConfig)


def camera_list(config: Config) -> tuple[CameraConfig, ...]:
    """Every camera the config runs: its [[cameras]], else its one [camera]."""
    return config.cameras or (config.camera,)


def camera_views(config: Config) -> tuple[Config, ...]:
    """One single-camera config per camera: the shared tables with that camera as [camera]."""
    if not config.cameras:
        return (config,)
    return tuple(replace(config, camera=cam, cameras=()) for cam in config.cameras)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is localhost or a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
