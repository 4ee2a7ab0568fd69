"""A small HTTP endpoint: ``/health`` (JSON, no auth) and ``/metrics`` (Prometheus text format).

Every other path goes to the web application when one is given (``facegate.web``: the page and
the REST API, with their own authentication). It is built by the first request for it, so the
web stack's imports (~16 MB, a fraction of a second) never delay start-up and cost nothing to a
daemon whose page nobody opens; a build that fails answers 503 and is logged once.

It listens on 127.0.0.1 unless told otherwise. With a token, every path but ``/health`` needs
``Authorization: Bearer <token>``. ``/health`` answers 200 when the provider's status is "ok" and
503 otherwise ("starting", "degraded"), so a plain HTTP check works. Request bodies are never
read or logged; only method, path and status are, at DEBUG.

The server is waitress (a pure-Python WSGI server: one event loop, a few worker threads), with
bounds against misbehaving clients: a malformed request gets 400, an oversized one 431, at most
``MAX_CLIENTS`` connections are held (the one waiting longest for its request gives way to a new
one), and a request that has not arrived in full within ``REQUEST_DEADLINE_S`` is dropped, so a
thousand slow clients cannot exhaust descriptors or keep ``/health`` from answering.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser, ParsingError
from waitress.server import TcpWSGIServer
from waitress.wasyncore import loop

from facegate.errors import FacegateError

log = logging.getLogger(__name__)

LabelSet = tuple[tuple[str, str], ...]  # (("sink", "mqtt"),) -> {sink="mqtt"}
MetricValue = float | Mapping[LabelSet, float]
Metric = tuple[str, str, MetricValue]  # (type: counter|gauge, help text, value)
HealthProvider = Callable[[], Mapping[str, Any]]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
MetricsProvider = Callable[[], Mapping[str, Metric]]

PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# A scraper or health check sends its whole request in one packet: 5 s is ample on a loaded Pi,
# and cuts a slow-header attacker (a line every 2 s) after two or three lines.
REQUEST_DEADLINE_S = 5.0
IDLE_TIMEOUT_S = 15.0  # keep-alive connections idle this long are closed (scrapes: every 15 s+)
# systemd's default soft limit is 1,024 descriptors; the daemon itself uses under 100 (models,
# gallery, sinks), so 200 clients leave room, and far more than a few scrapers ever need.
MAX_CLIENTS = 200
MAX_HEADER_BYTES = 8192  # request line + headers; a 64 KB URL gets 431
DRAIN_READS = 16  # reads of unread input before a close (16 x 8 KB): a bound, not a loop
MAX_BODY_BYTES = 65536  # without the web application no endpoint reads a body
# Once the headers are in, a request with a body gets this much more time per byte: a phone on
# weak Wi-Fi sends well over 1 MB/s, so 256 KB/s lets a 20 MB upload take 80 s while a client
# trickling a byte a second is still cut.
MIN_BODY_BYTES_PER_S = 256 * 1024
WORKER_THREADS = 2  # handlers only format numbers: two keep a slow one from blocking /health
LOOP_WAKE_S = 0.5  # the event loop checks for close() at least this often
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


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


StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class _App:
    """The WSGI application: GET/HEAD /health and /metrics; everything else 404 (401, 405)."""

    def __init__(
        self, health: HealthProvider, metrics: MetricsProvider | None, token: bytes | None
    ) -> None:
        self.health, self.metrics, self.token = health, metrics, token
        self.web_factory: Callable[[], WSGIApp] | None = None  # builds the page and the API
        self._web: WSGIApp | None = None
        self._web_failed = False
        self._web_lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        web = self._web_app() if path not in ("/health", "/metrics") else None
        if web is not None:
            return web(environ, start)
        code, kind, body, extra = self._answer(path, method, environ.get("HTTP_AUTHORIZATION"))
        if code in (404, 405) and self._web_failed:
            code, body, extra = 503, b'{"error": "the web page failed to start: see the log"}\n', []
        log.debug("%s %s %s", method, path, code)
        headers = [
            ("Content-Type", kind),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            *extra,
        ]
        start(f"{code} {_REASONS[code]}", headers)
        return [b"" if method == "HEAD" else body]

    def _answer(
        self, path: str, method: str, auth: str | None
    ) -> tuple[int, str, bytes, list[tuple[str, str]]]:
        if method not in ("GET", "HEAD"):
            return (
                405,
                "application/json",
                b'{"error": "method not allowed"}\n',
                [("Allow", "GET, HEAD")],
            )
        if path != "/health" and not self.authorized(auth):
            challenge = [("WWW-Authenticate", 'Bearer realm="facegate"')]
            return 401, "application/json", b'{"error": "unauthorized"}\n', challenge
        if path == "/health":
            return (*self._health(), [])
        if path == "/metrics" and self.metrics is not None:
            return (*self._metrics(), [])
        return 404, "application/json", b'{"error": "not found"}\n', []

    def _web_app(self) -> WSGIApp | None:
        """The web application, built on first use; None when there is none (or it failed)."""
        if self._web is not None or self.web_factory is None or self._web_failed:
            return self._web
        with self._web_lock:
            if self._web is None and not self._web_failed:
                try:
                    self._web = self.web_factory()
                except Exception:  # the stage loop: /health and /metrics serve on without it
                    log.exception("http: the web page could not start")
                    self._web_failed = True
        return self._web

    def authorized(self, header: str | None) -> bool:
        """Whether ``header`` carries the token (always true when none is set)."""
        if self.token is None:
            return True
        scheme, _, given = (header or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), self.token
        )

    def _health(self) -> tuple[int, str, bytes]:
        try:
            data = dict(self.health())
        except Exception:  # a provider bug must not take the endpoint down
            log.exception("health provider failed")
            data = {"status": "error"}
        body = json.dumps(data, default=str).encode() + b"\n"
        return (200 if data.get("status") == "ok" else 503), "application/json", body

    def _metrics(self) -> tuple[int, str, bytes]:
        try:
            body = render_metrics(self.metrics()).encode()
        except Exception:  # a provider bug must not take the endpoint down
            log.exception("metrics provider failed")
            return 500, "text/plain", b"metrics unavailable\n"
        return 200, PROMETHEUS_TYPE, body


_REASONS = {
    200: "OK",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class _Parser(HTTPRequestParser):
    """waitress's parser, refusing HTTP versions other than 1.0 and 1.1 (it would guess 1.0)."""

    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        if self.version not in ("1.0", "1.1"):
            raise ParsingError(f"HTTP/{self.version} is not supported")


class _Channel(HTTPChannel):
    """A connection that remembers when the request it is reading began."""

    parser_class = _Parser

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.request_began = time.monotonic()  # connected, or began its latest request
        super().__init__(*args, **kwargs)

    def received(self, data: bytes) -> bool:
        if self.request is None and data:
            self.request_began = time.monotonic()
        return super().received(data)

    def handle_close(self) -> None:
        """Read what the client still sent, then close: closing on unread data sends a reset,
        which makes the client drop the answer (the 431 for a 64 KB URL) unread."""
        try:
            for _ in range(DRAIN_READS if self.socket is not None else 0):
                if not self.socket.recv(MAX_HEADER_BYTES):
                    break
        except OSError:  # nothing more to read (non-blocking), or the client is gone
            pass
        super().handle_close()

    def partial_since(self) -> float | None:
        """When the request still arriving began (later for a long body); None if none."""
        if self.requests or self.will_close or self.request is None:
            return None
        if self.request.headers_finished and self.request.content_length:
            return self.request_began + self.request.content_length / MIN_BODY_BYTES_PER_S
        return self.request_began

    def unserved_since(self) -> float | None:
        """Since when it has held a slot without a request being served (None: serving)."""
        return None if self.requests or self.will_close else self.request_began


class _Server(TcpWSGIServer):
    """waitress's TCP server with a request deadline and room made for new clients."""

    channel_class = _Channel

    def maintenance(self, now: float) -> None:
        """Close idle connections (waitress) and requests past their deadline."""
        super().maintenance(now)
        cutoff = time.monotonic() - REQUEST_DEADLINE_S
        for channel in list(self.active_channels.values()):
            began = channel.partial_since()
            if began is not None and began < cutoff:
                channel.will_close = True

    def handle_accept(self) -> None:
        """Accept one client; past MAX_CLIENTS, drop the longest idle or slowest one."""
        super().handle_accept()
        if len(self.active_channels) <= MAX_CLIENTS:
            return
        waiting = [
            (began, channel)
            for channel in self.active_channels.values()
            if (began := channel.unserved_since()) is not None
        ]
        if waiting:
            min(waiting, key=lambda item: item[0])[1].handle_close()


class HealthServer:
    """The /health + /metrics endpoint in a daemon thread; a context manager.

    The providers run on the server's worker threads: keep them cheap and thread-safe.
    """

    def __init__(
        self,
        health: HealthProvider,
        metrics: MetricsProvider | None = None,
        host: str = "127.0.0.1",
        port: int = 8765,
        token: str | None = None,
        web: Callable[[], WSGIApp] | None = None,
        max_body: int | None = None,
    ) -> None:
        """``web`` builds the application for every path but /health and /metrics."""
        self.host, self._port = host, port
        self._max_body = MAX_BODY_BYTES if max_body is None else max_body
        self._app = _App(health, metrics, token.encode() if token else None)
        self._app.web_factory = web
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        # close() pulls the loop's trigger (writes to its fd) while _serve may be closing it: the
        # lock keeps the two apart, so the write never meets a closed (or reused) descriptor
        self._closing = threading.Lock()
        self._trigger_open = False

    @property
    def port(self) -> int:
        """The port listened on (the ephemeral one when 0 was asked for)."""
        return int(self._server.effective_port) if self._server else self._port

    def start(self) -> None:
        """Bind and serve in a background thread."""
        try:
            server = _Server(
                self._app,
                map={},
                host=self.host.strip("[]"),
                port=self._port,
                ident="facegate",
                threads=WORKER_THREADS,
                connection_limit=MAX_CLIENTS + 8,  # hard cap; eviction keeps it from biting
                channel_timeout=IDLE_TIMEOUT_S,
                cleanup_interval=1,
                max_request_header_size=MAX_HEADER_BYTES,
                max_request_body_size=self._max_body,
                asyncore_use_poll=True,  # select() stops at descriptor 1024
                log_socket_errors=False,  # a client that hangs up is not worth a traceback
                expose_tracebacks=False,
            )
        except (OSError, ValueError) as err:
            raise FacegateError(f"http: cannot listen on {self.host}:{self._port}: {err}") from err
        self._server = server
        self._stop.clear()
        self._trigger_open = True
        self._thread = threading.Thread(target=self._serve, args=(server,), name="http")
        self._thread.daemon = True
        self._thread.start()
        log.info(
            "http: listening on %s:%d%s%s",
            self.host,
            self.port,
            " (token)" * bool(self._app.token),
            ", web page at /" * bool(self._app.web_factory),
        )

    def _serve(self, server: _Server) -> None:
        """The event loop, until close(); then every connection is closed here, in its thread."""
        sockets = server._map  # the map passed in: the listener, its trigger, the clients
        while not self._stop.is_set() and sockets:
            try:
                loop(timeout=LOOP_WAKE_S, map=sockets, use_poll=True, count=1)
            except Exception:  # the stage loop: one bad connection must not end the endpoint
                log.exception("http: unexpected error in the server loop")
        with self._closing:
            self._trigger_open = False
            for channel in list(sockets.values()):
                channel.close()
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=1)

    def close(self) -> None:
        """Stop serving and release the port; safe to call twice."""
        if self._server is None:
            return
        with self._closing:
            self._stop.set()
            if self._trigger_open:  # else the loop has already closed it and is ending
                self._server.pull_trigger()
        if self._thread:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> HealthServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
