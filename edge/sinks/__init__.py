"""Event sinks, and the one table of sink kinds: each declares its config table and builder."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from facegate.config.fields import show
from facegate.errors import ConfigError
from facegate.sinks import jsonl, mqtt, webhook
from facegate.sinks.base import EventSink, SinkKind
from facegate.sinks.jsonl import JsonlSink
from facegate.sinks.mqtt import MqttSink
from facegate.sinks.webhook import WebhookSink
from facegate.types import Event

__all__ = [
    "SINK_KINDS",
    "EventSink",
    "JsonlSink",
    "MqttSink",
    "MultiSink",
    "SinkKind",
    "WebhookSink",
    "build_sink",
    "kind_for_spec",
]

log = logging.getLogger(__name__)

# Every kind of sink: ``[[sinks]] type = NAME`` in the config, ``--sink SPEC`` on the command line.
SINK_KINDS: dict[str, SinkKind] = {k.name: k for k in (jsonl.KIND, mqtt.KIND, webhook.KIND)}


def kind_for_spec(spec: str) -> SinkKind:
    """The sink kind a ``--sink`` spec names by its scheme; ConfigError if none does."""
    scheme = spec.partition(":")[0].lower()
    for kind in SINK_KINDS.values():
        if scheme in kind.schemes:
            return kind
    forms = ", ".join(k.spec_form for k in SINK_KINDS.values())
    raise ConfigError(f"--sink {show(spec)}: expected {forms}")


def build_sink(cfg: object, camera: str) -> EventSink:
    """The sink a validated ``[[sinks]]`` table describes."""
    for kind in SINK_KINDS.values():
        if isinstance(cfg, kind.config):
            return kind.build(cfg, camera)
    raise ConfigError(f"unknown sink {cfg!r}")


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
