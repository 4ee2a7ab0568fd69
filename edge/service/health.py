"""A tiny HTTP endpoint: ``/health`` (JSON, no auth) and ``/metrics`` (Prometheus text format).

It listens on 127.0.0.1 unless told otherwise. With a token, every path but ``/health`` needs
``Authorization: Bearer <token>``. ``/health`` answers 200 when the provider's status is "ok" and
503 otherwise ("starting", "degraded"), so a plain HTTP check works. Request bodies are never
read or logged; only method, path and status are, at DEBUG.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from facegate.errors import ConfigError, FacegateError

log = logging.getLogger(__name__)

LabelSet = tuple[tuple[str, str], ...]  # (("sink", "mqtt"),) -> {sink="mqtt"}
MetricValue = float | Mapping[LabelSet, float]
Metric = tuple[str, str, MetricValue]  # (type: counter|gauge, help text, value)
HealthProvider = Callable[[], Mapping[str, Any]]
MetricsProvider = Callable[[], Mapping[str, Metric]]

PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REQUEST_TIMEOUT = 5.0  # seconds a client may take to send its request line and headers
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def read_token(token_file: str | None, credential: str = "http-token") -> str | None:
    """The bearer token from ``token_file``, else from systemd's credential; None when neither."""
    if token_file:
        path = Path(token_file)
    else:
        creds = os.environ.get("CREDENTIALS_DIRECTORY")
        path = Path(creds) / credential if creds else None
        if path is None or not path.is_file():
            return None
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read the HTTP token from {path}: {err}") from err
    if not token:
        raise ConfigError(f"the HTTP token file {path} is empty")
    if token_file and path.stat().st_mode & 0o077:
        log.warning("%s is readable by other users: chmod 600 it", path)
    return token


def _number(value: float) -> str:
    """A sample value in Prometheus text format."""
    if isinstance(value, bool | int):
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _labels(labels: LabelSet) -> str:
    """``{name="value",...}`` with values escaped."""
    parts = []
    for name, value in labels:
        if not _LABEL.fullmatch(name):
            raise ValueError(f"bad label name {name!r}")
        escaped = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        parts.append(f'{name}="{escaped}"')
    return "{" + ",".join(parts) + "}" if parts else ""


def render_metrics(metrics: Mapping[str, Metric]) -> str:
    """Metrics as Prometheus text exposition format 0.0.4."""
    lines = []
    for name, (kind, text, value) in metrics.items():
        if not _NAME.fullmatch(name) or kind not in ("counter", "gauge", "untyped"):
            raise ValueError(f"bad metric {name!r} of type {kind!r}")
        lines.append(f"# HELP {name} " + text.replace("\\", "\\\\").replace("\n", "\\n"))
        lines.append(f"# TYPE {name} {kind}")
        samples = value.items() if isinstance(value, Mapping) else [((), value)]
        lines.extend(f"{name}{_labels(labels)} {_number(v)}" for labels, v in samples)
    return "\n".join(lines) + "\n"


class _Handler(BaseHTTPRequestHandler):
    """GET /health and /metrics; everything else 404 (or 401 without the token)."""

    server: _Server
    server_version = "facegate"
    sys_version = ""
    timeout = REQUEST_TIMEOUT

    def do_GET(self) -> None:
        """Answer one GET request."""
        path = urlsplit(self.path).path
        if path != "/health" and not self.server.authorized(self.headers.get("Authorization")):
            self._send(401, "application/json", b'{"error": "unauthorized"}\n', auth=True)
        elif path == "/health":
            self._health()
        elif path == "/metrics" and self.server.metrics is not None:
            self._metrics()
        else:
            self._send(404, "application/json", b'{"error": "not found"}\n')

    def _health(self) -> None:
        try:
            data = dict(self.server.health())
        except Exception:  # a provider bug must not take the endpoint down
            log.exception("health provider failed")
            data = {"status": "error"}
        data.setdefault("uptime", round(time.monotonic() - self.server.started, 1))
        body = json.dumps(data, default=str).encode() + b"\n"
        self._send(200 if data.get("status") == "ok" else 503, "application/json", body)

    def _metrics(self) -> None:
        try:
            body = render_metrics(self.server.metrics()).encode()
        except Exception:  # a provider bug must not take the endpoint down
            log.exception("metrics provider failed")
            self._send(500, "text/plain", b"metrics unavailable\n")
            return
        self._send(200, PROMETHEUS_TYPE, body)

    def _send(self, code: int, kind: str, body: bytes, auth: bool = False) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if auth:
            self.send_header("WWW-Authenticate", 'Bearer realm="facegate"')
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_GET

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Log method, path (no query string) and status at DEBUG."""
        log.debug("%s %s %s", self.command, urlsplit(self.path).path, code)

    def log_message(self, format: str, *args: Any) -> None:
        """Route http.server's own messages (errors) to our logger at DEBUG."""
        log.debug("http: " + format, *args)


class _Server(ThreadingHTTPServer):
    """The HTTP server with the providers and the token the handler needs."""

    daemon_threads = True
    health: HealthProvider
    metrics: MetricsProvider | None
    token: bytes | None
    started: float

    def authorized(self, header: str | None) -> bool:
        """Whether ``header`` carries the token (always true when none is set)."""
        if self.token is None:
            return True
        scheme, _, given = (header or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), self.token
        )


class _Server6(_Server):
    address_family = socket.AF_INET6


class HealthServer:
    """The /health + /metrics endpoint in a daemon thread; a context manager.

    The providers run on the server's request threads: keep them cheap and thread-safe.
    """

    def __init__(
        self,
        health: HealthProvider,
        metrics: MetricsProvider | None = None,
        host: str = "127.0.0.1",
        port: int = 8765,
        token: str | None = None,
    ) -> None:
        self.host, self._port, self._health, self._metrics = host, port, health, metrics
        self._token = token.encode() if token else None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port listened on (the ephemeral one when 0 was asked for)."""
        return self._server.server_address[1] if self._server else self._port

    def start(self) -> None:
        """Bind and serve in a background thread."""
        cls = _Server6 if ":" in self.host else _Server
        try:
            server = cls((self.host, self._port), _Handler)
        except OSError as err:
            raise FacegateError(f"http: cannot listen on {self.host}:{self._port}: {err}") from err
        server.health, server.metrics, server.token = self._health, self._metrics, self._token
        server.started = time.monotonic()
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
        self._thread.start()
        log.info("http: listening on %s:%d%s", self.host, self.port, " (token)" * bool(self._token))

    def close(self) -> None:
        """Stop serving and release the port; safe to call twice."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> HealthServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
