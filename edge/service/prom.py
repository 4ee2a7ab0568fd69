"""The daemon's numbers in the shape /metrics serves (Prometheus text, via service.health)."""

from __future__ import annotations

from facegate.service.capture import CaptureStats
from facegate.service.metrics import Metrics
from facegate.sinks.base import EventSink

Metric = tuple[str, str, object]

_COUNTERS = {
    "frames_processed": "frames run through the pipeline",
    "faces": "faces detected",
    "embeddings": "faces embedded",
    "recognitions": "tracks named by the vote",
    "source_starts": "times the source was started (at start-up, and by reloads that change it)",
}


def collect(
    metrics: Metrics, capture: CaptureStats | None, sinks: list[EventSink]
) -> dict[str, Metric]:
    """fps, per-stage latency, drops, faces, recognitions, events, reconnects, sink counters."""
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
            {
                (("kind", k),): counters.get(f"events_{k}", 0.0)
                for k in ("recognized", "unknown", "left", "spoof")
            },
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
            sink_values[(("sink", sink.name), ("counter", key))] = float(value)
    if sink_values:
        out["facegate_sink"] = ("gauge", "event sink counters", sink_values)
    return out
