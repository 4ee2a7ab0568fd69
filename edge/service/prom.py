"""The daemon's numbers in the shape /metrics serves (Prometheus text, via service.health)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from facegate.service.capture import CaptureStats
from facegate.service.metrics import Metrics
from facegate.sinks.base import EventSink
from facegate.types import EVENT_KINDS

if TYPE_CHECKING:
    from facegate.service.cameras import CameraRunner

Metric = tuple[str, str, object]

_COUNTERS = {
    "frames_processed": "frames run through the pipeline",
    "faces": "faces detected",
    "embeddings": "faces embedded",
    "recognitions": "tracks named by the vote",
    "source_starts": "times the source was started (at start-up, and by reloads that change it)",
}


# the per-camera families: facegate_camera_<key>_total{camera="..."}
_CAMERA_COUNTERS = {
    "frames_processed": "frames run through the pipeline, by camera",
    "faces": "faces detected, by camera",
    "embeddings": "faces embedded, by camera",
    "recognitions": "tracks named by the vote, by camera",
}


def collect(
    metrics: Metrics,
    capture: CaptureStats | None,
    sinks: list[EventSink],
    cameras: Sequence[CameraRunner] = (),
) -> dict[str, Metric]:
    """fps, per-stage latency, drops, faces, recognitions, events, reconnects, sink counters.

    The unlabelled families are totals over every camera; ``cameras`` adds the same numbers
    per camera as ``facegate_camera_*{camera="name"}``.
    """
    snap = metrics.snapshot()
    counters = snap["counters"]
    out: dict[str, Metric] = {
        "facegate_fps": ("gauge", "frames processed per second (last 5 s)", snap["fps"]),
        "facegate_uptime_seconds": ("gauge", "seconds since start", snap["uptime_s"]),
        "facegate_stage_latency_ms": (
            "gauge",
            "mean milliseconds per run of each stage",
            {(("stage", k),): v for k, v in snap["stage_ms"].items()},
        ),
        "facegate_events_total": (
            "counter",
            "events emitted by kind",
            {(("kind", k),): counters.get(f"events_{k}", 0.0) for k in EVENT_KINDS},
        ),
    }
    out["facegate_cold_start_seconds"] = (
        "gauge",
        "process start to first frame processed",
        counters.get("cold_start_seconds", 0.0),
    )
    for key, text in _COUNTERS.items():
        out[f"facegate_{key}_total"] = ("counter", text, counters.get(key, 0.0))
    if capture is not None:
        out["facegate_frames_captured_total"] = (
            "counter",
            "frames read from the source",
            capture.frames,
        )
        out["facegate_frames_skipped_total"] = (
            "counter",
            "frames left out to respect camera.max_fps",
            capture.skipped,
        )
        out["facegate_frames_dropped_total"] = (
            "counter",
            "frames dropped to keep up",
            capture.dropped,
        )
        out["facegate_frames_rejected_by_capture_total"] = (
            "counter",
            "frames from the source that were not images",
            capture.rejected,
        )
        out["facegate_source_reconnects_total"] = (
            "counter",
            "source reopen attempts",
            capture.reconnects,
        )
        out["facegate_source_up"] = (
            "gauge",
            "1 while the source streams",
            1.0 if capture.state == "streaming" else 0.0,
        )
    sink_values: dict[tuple, float] = {}
    for sink in sinks:
        for key, value in sink.stats().items():
            labels = (("sink", sink.name), ("counter", key))  # summed over the cameras' sinks
            sink_values[labels] = sink_values.get(labels, 0.0) + float(value)
    if sink_values:
        out["facegate_sink"] = ("gauge", "event sink counters", sink_values)
    if cameras:
        out.update(camera_families(cameras))
    return out


def camera_families(cameras: Sequence[CameraRunner]) -> dict[str, Metric]:
    """Frames, faces, events, fps, stage times and the source's state with a ``camera`` label."""
    snaps = {c.name: c.metrics.snapshot() for c in cameras}
    stats = {c.name: c.capture.stats() for c in cameras}

    def per_camera(value: object) -> dict[tuple, float]:
        return {(("camera", name),): float(value(name)) for name in snaps}

    out: dict[str, Metric] = {
        "facegate_camera_fps": (
            "gauge",
            "frames processed per second (last 5 s), by camera",
            per_camera(lambda n: snaps[n]["fps"]),
        ),
        "facegate_camera_stage_latency_ms": (
            "gauge",
            "mean milliseconds per run of each stage, by camera",
            {
                (("camera", n), ("stage", stage)): ms
                for n, snap in snaps.items()
                for stage, ms in snap["stage_ms"].items()
            },
        ),
        "facegate_camera_events_total": (
            "counter",
            "events emitted by camera and kind",
            {
                (("camera", n), ("kind", k)): snap["counters"].get(f"events_{k}", 0.0)
                for n, snap in snaps.items()
                for k in EVENT_KINDS
            },
        ),
    }
    for key, text in _CAMERA_COUNTERS.items():
        out[f"facegate_camera_{key}_total"] = (
            "counter",
            text,
            per_camera(lambda n, key=key: snaps[n]["counters"].get(key, 0.0)),
        )
    out.update(_camera_sources(stats))
    return out


def _camera_sources(stats: dict[str, CaptureStats]) -> dict[str, Metric]:
    """Each camera's capture counters and whether it streams."""
    fields = {
        "frames_captured_total": ("counter", "frames read from the source", "frames"),
        "frames_dropped_total": ("counter", "frames dropped to keep up", "dropped"),
        "frames_skipped_total": ("counter", "frames left out for max_fps", "skipped"),
        "source_reconnects_total": ("counter", "source reopen attempts", "reconnects"),
    }
    out: dict[str, Metric] = {
        f"facegate_camera_{name}": (
            kind,
            f"{text}, by camera",
            {(("camera", n),): float(getattr(s, attr)) for n, s in stats.items()},
        )
        for name, (kind, text, attr) in fields.items()
    }
    out["facegate_camera_up"] = (
        "gauge",
        "1 while the camera's source streams",
        {(("camera", n),): float(s.state == "streaming") for n, s in stats.items()},
    )
    return out
