"""The event-sink interface: where recognition events go (JSON lines, MQTT, webhooks)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from facegate.types import Event


class EventSink(ABC):
    """Receives events from the pipeline; must never block it for long or raise on delivery."""

    name: str = "sink"

    def start(self) -> None:  # noqa: B027 - optional hook
        """Connect or start background delivery."""

    @abstractmethod
    def emit(self, event: Event) -> None:
        """Queue or write one event (non-blocking for network sinks)."""

    def close(self, timeout: float = 5.0) -> None:  # noqa: B027 - optional hook
        """Flush what can be flushed within ``timeout`` seconds and release resources."""

    def stats(self) -> dict[str, float]:
        """Counters for /metrics (delivered, dropped, queued, retries...)."""
        return {}

    def __enter__(self) -> EventSink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class SinkKind:
    """One kind of sink as the config sees it: its ``[[sinks]]`` table, ``--sink`` form, builder."""

    name: str  # the table's ``type``
    config: type  # the frozen dataclass that validates the table
    schemes: tuple[str, ...]  # ``--sink`` specs it takes: "jsonl" for jsonl:PATH, "mqtt", ...
    spec_form: str  # the ``--sink`` form in words, for messages
    from_spec: Callable[[str], dict[str, Any]]  # a ``--sink`` spec as the table it stands for
    build: Callable[[Any, str], EventSink]  # (validated config, camera name) -> the sink
