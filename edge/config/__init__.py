"""The daemon's configuration: one validated TOML schema; the only package that reads config files.

``fields`` is the validation framework, ``schema`` the tables, ``reading`` reads text, files and
command-line overrides, ``describe`` explains every key, ``secrets`` reads secret files. Names are
re-exported here lazily, so a sink module can use ``facegate.config.fields`` without a cycle.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "fields": ("ConfigProblems", "Problem", "Spec", "opt"),
    "schema": (
        "CameraConfig",
        "Config",
        "DetectionPlanConfig",
        "DetectorConfig",
        "GalleryConfig",
        "HttpConfig",
        "ModelsConfig",
        "RecognitionConfig",
        "RuntimeConfig",
        "FleetConfig",
        "ServiceConfig",
        "SinkConfig",
        "SnapshotsConfig",
        "TrackerConfig",
        "camera_list",
        "camera_views",
        "is_loopback",
    ),
    "reading": ("apply_overrides", "default", "load", "parse", "parse_sink", "resolve_paths"),
    "describe": ("explain",),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
_SINK_CONFIGS = {
    "JsonlSinkConfig": "facegate.sinks.jsonl",
    "MqttSinkConfig": "facegate.sinks.mqtt",
    "WebhookSinkConfig": "facegate.sinks.webhook",
}

__all__ = sorted([*_WHERE, *_SINK_CONFIGS])


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"facegate.config.{_WHERE[name]}"), name)
    if name in _SINK_CONFIGS:
        return getattr(importlib.import_module(_SINK_CONFIGS[name]), name)
    raise AttributeError(f"module 'facegate.config' has no attribute {name!r}")
