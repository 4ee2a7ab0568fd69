"""JSON-lines sink: one event per line to stdout ("-") or to an append-only file (mode 0600)."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from dataclasses import dataclass
from typing import Any, Literal

from facegate.config.fields import opt
from facegate.errors import ConfigError
from facegate.sinks.base import EventSink, SinkKind
from facegate.types import Event

log = logging.getLogger(__name__)

FILE_MODE = 0o600
STDOUT = "-"


@dataclass(frozen=True, slots=True, kw_only=True)
class JsonlSinkConfig:
    """[[sinks]] type = "jsonl": one JSON event per line."""

    type: Literal["jsonl"] = opt("jsonl", "sink type")
    path: str = opt("-", "file to append to, or - for stdout", "text")


class JsonlSink(EventSink):
    """Writes each event as one JSON object per line, flushed at once; never raises on write."""

    name = "jsonl"

    def __init__(self, path: str) -> None:
        if not path:
            raise ConfigError("jsonl sink needs a path, or '-' for stdout")
        self.path = path
        self._fd: int | None = None
        self._lock = threading.Lock()
        self._failing = False
        self._written = 0
        self._errors = 0

    def start(self) -> None:
        """Open the file for appending (created 0600); stdout needs nothing."""
        with self._lock:
            try:
                self._open()
            except OSError as err:
                raise ConfigError(f"cannot open event log {self.path}: {err.strerror}") from err

    def _open(self) -> None:
        if self.path == STDOUT or self._fd is not None:
            return
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        self._fd = os.open(self.path, flags, FILE_MODE)
        log.info("writing events to %s", self.path)

    def emit(self, event: Event) -> None:
        """Append one line; a failed write is counted and logged once per outage."""
        line = json.dumps(event.as_dict(), ensure_ascii=False, separators=(",", ":")) + "\n"
        with self._lock:
            try:
                self._open()  # not started yet, or opening failed before: try again
                self._write(line)
            except (OSError, ValueError) as err:  # ValueError: unencodable text, closed stdout
                self._errors += 1
                if not self._failing:
                    reason = getattr(err, "strerror", None) or err
                    log.warning("cannot write events to %s: %s", self.path, reason)
                self._failing = True
                return
            self._written += 1
            if self._failing:
                log.info("writing events to %s again", self.path)
                self._failing = False

    def _write(self, line: str) -> None:
        if self._fd is None:
            sys.stdout.write(line)
            sys.stdout.flush()
            return
        data = line.encode("utf-8")
        while data:  # a short write (signal, nearly full disk) leaves the rest to write
            data = data[os.write(self._fd, data) :]

    def close(self, timeout: float = 5.0) -> None:
        """Close the file (stdout stays open)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def stats(self) -> dict[str, float]:
        """Lines written and write errors."""
        return {"delivered": self._written, "errors": self._errors}


def _from_spec(spec: str) -> dict[str, Any]:
    _, sep, rest = spec.partition(":")
    return {"type": "jsonl", "path": rest if sep else STDOUT}


def _build(cfg: JsonlSinkConfig, camera: str) -> JsonlSink:
    return JsonlSink(cfg.path)


KIND = SinkKind("jsonl", JsonlSinkConfig, ("jsonl",), "jsonl:PATH, jsonl:-", _from_spec, _build)
