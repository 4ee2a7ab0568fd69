"""Event sinks, and the one place that turns a sink spec ("jsonl:-", "mqtt://...") into a sink."""

from __future__ import annotations

import inspect
import logging
import re
import threading
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

from edge.errors import ConfigError
from edge.sinks.base import EventSink
from edge.sinks.jsonl import JsonlSink
from edge.sinks.mqtt import MqttSink
from edge.sinks.webhook import WebhookSink
from edge.types import Event

__all__ = ["EventSink", "JsonlSink", "MqttSink", "MultiSink", "WebhookSink", "open_sink"]

log = logging.getLogger(__name__)

SPEC_FORMS = (
    "jsonl:-, jsonl:/path/file.jsonl, mqtt://[user:pass@]host[:port], "
    "mqtts://[user:pass@]host[:port], http(s)://host/path"
)
MQTT_PORT, MQTTS_PORT = 1883, 8883


def redact(spec: str) -> str:
    """The spec with any user:password@ part masked, safe to log or print."""
    return re.sub(r"//[^/@]*@", "//***@", spec)


def open_sink(spec: str, camera: str, **options: Any) -> EventSink:
    """Make the sink a spec names; ``options`` go to its constructor (ConfigError if unknown)."""
    scheme = spec.split(":", 1)[0].lower() if ":" in spec else ""
    if scheme == "jsonl":
        return _construct(JsonlSink, {"path": spec[len("jsonl:") :], **options})
    if scheme in ("mqtt", "mqtts"):
        return _construct(MqttSink, {**_mqtt_args(spec), "camera": camera, **options})
    if scheme in ("http", "https"):
        return _construct(WebhookSink, {"url": spec, **options})
    raise ConfigError(f"unknown event sink {redact(spec)!r}: use {SPEC_FORMS}")


def _construct(cls: type[EventSink], kwargs: dict[str, Any]) -> EventSink:
    accepted = inspect.signature(cls).parameters
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ConfigError(f"unknown option(s) for the {cls.name} sink: {', '.join(unknown)}")
    return cls(**kwargs)


def _mqtt_args(spec: str) -> dict[str, Any]:
    parts = urlsplit(spec)
    try:
        port = parts.port
    except ValueError as err:
        raise ConfigError(f"bad port in MQTT sink {redact(spec)!r}") from err
    if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"MQTT sink must be mqtt(s)://[user:pass@]host[:port]: {redact(spec)!r}")
    tls = parts.scheme.lower() == "mqtts"
    return {
        "host": parts.hostname,
        "port": port or (MQTTS_PORT if tls else MQTT_PORT),
        "tls": tls,
        **_credentials(parts),
    }


def _credentials(parts: SplitResult) -> dict[str, str]:
    if parts.username is None:
        return {}
    return {"username": unquote(parts.username), "password": unquote(parts.password or "")}


class MultiSink(EventSink):
    """Fans each event out to several sinks; one failing sink never stops the others."""

    name = "multi"

    def __init__(self, sinks: Sequence[EventSink]) -> None:
        self.sinks = list(sinks)
        self.names: list[str] = []  # "webhook", "webhook_2", ... when a kind appears twice
        seen: dict[str, int] = {}
        for sink in self.sinks:
            seen[sink.name] = seen.get(sink.name, 0) + 1
            self.names.append(
                sink.name if seen[sink.name] == 1 else f"{sink.name}_{seen[sink.name]}"
            )
        self._errors = dict.fromkeys(self.names, 0)

    def start(self) -> None:
        """Start every sink; if one cannot start, close those already started and re-raise."""
        started: list[EventSink] = []
        try:
            for sink in self.sinks:
                sink.start()
                started.append(sink)
        except BaseException:
            for sink in started:
                sink.close(timeout=1.0)
            raise

    def emit(self, event: Event) -> None:
        """Hand the event to every sink."""
        for name, sink in zip(self.names, self.sinks, strict=True):
            try:
                sink.emit(event)
            except Exception:  # a buggy sink must not take the pipeline or its siblings down
                if not self._errors[name]:
                    log.exception("event sink %s failed; counting further failures", name)
                self._errors[name] += 1

    def close(self, timeout: float = 5.0) -> None:
        """Close all sinks in parallel, all within ``timeout``."""
        deadline = time.monotonic() + timeout
        threads = [
            threading.Thread(target=s.close, args=(timeout,), name=f"close-{n}", daemon=True)
            for n, s in zip(self.names, self.sinks, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def stats(self) -> dict[str, float]:
        """Every sink's counters as ``<sink name>.<counter>``."""
        out: dict[str, float] = {}
        for name, sink in zip(self.names, self.sinks, strict=True):
            out.update({f"{name}.{key}": value for key, value in sink.stats().items()})
            if self._errors[name]:
                out[f"{name}.errors"] = out.get(f"{name}.errors", 0) + self._errors[name]
        return out
