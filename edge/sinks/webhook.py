"""Webhook sink: POSTs each event as JSON from a background thread, with bounded retries."""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Mapping
from dataclasses import MISSING, dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from facegate import __version__
from facegate.config.fields import opt
from facegate.errors import ConfigError
from facegate.sinks.base import EventSink, SinkKind
from facegate.types import Event

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0
RETRYABLE_HTTP = frozenset({408, 425, 429})  # client errors worth retrying; all 5xx are too



@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookSinkConfig:
    """[[sinks]] type = "webhook": each event POSTed as JSON."""

    type: Literal["webhook"] = opt("webhook", "sink type")
    url: str = opt(MISSING, "URL to POST events to", "url")
    timeout: float = opt(5.0, "seconds per request", ">0")
    retries: int = opt(3, "retries of a failed request", ">=0")
    queue_size: int = opt(100, "events held while the target is away (oldest dropped)", ">=1")

    def check(self) -> list[tuple[str, str]]:
        """Problems between keys: (key, message)."""
        try:
            password = urlsplit(self.url).password
        except ValueError as err:
            return [("url", f"is not a valid URL: {err}")]
        if password is not None:
            return [("url", "must not contain user:password@: never put a secret in the config")]
        return []


def safe_url(url: str) -> str:
    """scheme://host[:port] only: paths and queries often carry tokens, user info passwords."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


class _Permanent(Exception):
    """The target answered with an error that retrying will not fix."""


class WebhookSink(EventSink):
    """POSTs events to ``url``; holds at most ``queue_size`` of them while the target is down."""

    name = "webhook"

    def __init__(
        self,
        url: str,
        timeout: float = 5.0,
        retries: int = 5,
        backoff: float = 0.5,
        queue_size: int = 1000,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"webhook URL must be http(s)://host/...: {safe_url(url)}")
        if queue_size < 1 or retries < 0 or timeout <= 0 or backoff < 0:
            raise ConfigError("webhook queue_size >= 1, retries >= 0, timeout > 0, backoff >= 0")
        self.url, self.timeout, self.retries, self.backoff = url, timeout, retries, backoff
        self.queue_size = queue_size
        self._target = safe_url(url)
        self._headers = {
            "Content-Type": "application/json",
            "User-Agent": f"facegate/{__version__}",
            **(headers or {}),
        }
        self._cond = threading.Condition()
        self._queue: deque[bytes] = deque()
        self._stop = threading.Event()
        self._deadline: float | None = None  # set by close(): deliver until then, then stop
        self._thread = threading.Thread(target=self._run, name="webhook", daemon=True)
        self._failing = self._dropping = False
        self._delivered = self._failed = self._dropped = self._retries = 0

    def start(self) -> None:
        """Start the delivery thread."""
        if not self._thread.is_alive() and not self._stop.is_set():
            self._thread.start()
            log.info("posting events to %s", self._target)

    def emit(self, event: Event) -> None:
        """Queue one event; beyond queue_size the oldest is dropped and counted."""
        body = json.dumps(event.as_dict(), ensure_ascii=False).encode("utf-8")
        with self._cond:
            if self._stop.is_set():
                self._dropped += 1
                return
            if len(self._queue) >= self.queue_size:
                self._queue.popleft()
                self._dropped += 1
                if not self._dropping:
                    log.warning(
                        "webhook queue full (%d events): dropping the oldest", self.queue_size
                    )
                self._dropping = True
            self._queue.append(body)
            self._cond.notify()

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what can be delivered within ``timeout`` (no more retries), then stop."""
        with self._cond:
            self._deadline = time.monotonic() + timeout
            self._stop.set()
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        with self._cond:
            left = len(self._queue)
            self._dropped += left
            self._queue.clear()
        if left:
            log.warning("webhook sink closed with %d events undelivered", left)

    def stats(self) -> dict[str, float]:
        """delivered, failed (after all retries), dropped (queue full, closed), queued, retries."""
        with self._cond:
            return {
                "delivered": self._delivered,
                "failed": self._failed,
                "dropped": self._dropped,
                "queued": len(self._queue),
                "retries": self._retries,
            }

    def _run(self) -> None:
        while (body := self._next()) is not None:
            ok = self._deliver(body)
            with self._cond:
                if ok:
                    self._delivered += 1
                    self._dropping = False
                else:
                    self._failed += 1
            self._note_outage(ok)

    def _next(self) -> bytes | None:
        with self._cond:
            self._cond.wait_for(lambda: self._queue or self._stop.is_set())
            if not self._queue or self._past_deadline():
                return None
            return self._queue.popleft()

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _deliver(self, body: bytes) -> bool:
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                self._post(body)
                return True
            except _Permanent as err:
                log.debug("webhook %s refused an event: %s", self._target, err)
                return False
            except (OSError, http.client.HTTPException) as err:  # 5xx, timeouts, refused, resets
                log.debug("webhook %s attempt %d failed: %s", self._target, attempt + 1, err)
            if attempt == self.retries or self._stop.wait(delay):  # closing: no more retries
                return False
            with self._cond:
                self._retries += 1
            delay = min(delay * 2, MAX_BACKOFF_S)
        return False

    def _post(self, body: bytes) -> None:
        timeout = self.timeout
        if self._deadline is not None:
            timeout = max(0.1, min(timeout, self._deadline - time.monotonic()))
        request = urllib.request.Request(self.url, body, self._headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read()
        except urllib.error.HTTPError as err:
            err.close()
            if err.code < 500 and err.code not in RETRYABLE_HTTP:
                raise _Permanent(f"HTTP {err.code}") from err
            raise

    def _note_outage(self, ok: bool) -> None:
        """Log once when the target starts failing and once when it recovers, not per event."""
        if ok == (not self._failing):
            return
        self._failing = not ok
        if ok:
            log.info("webhook %s is delivering again", self._target)
        else:
            log.warning("webhook %s is failing; events are dropped after retries", self._target)


def _from_spec(spec: str) -> dict[str, Any]:
    return {"type": "webhook", "url": spec}


def _build(cfg: WebhookSinkConfig, camera: str) -> WebhookSink:
    return WebhookSink(cfg.url, timeout=cfg.timeout, retries=cfg.retries, queue_size=cfg.queue_size)


KIND = SinkKind(
    "webhook", WebhookSinkConfig, ("http", "https"), "http(s)://URL", _from_spec, _build
)
