"""The HTTP server with the web application behind it: built on first use, hardening unchanged.

Over real sockets: /health and /metrics never build (nor wait for) the page; malformed, oversized
and slow requests are answered by waitress exactly as without the page; an upload over the
limit is 413 before the application reads it.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from facegate.gallery.store import GalleryStore
from facegate.service.health import HealthServer
from facegate.service.recent import RecentEvents
from tests.unit.test_health import get, health, metrics, status_line

TOKEN = "s3cret-token"
UPLOAD_LIMIT = 100_000


def _web_factory(tmp_path: Path, token: str | None):
    """A factory for the real application over an empty gallery (no models needed to list)."""
    calls: list[int] = []

    def build():
        from facegate.web.app import WebSettings, create_app
        from facegate.web.backend import Backend

        calls.append(1)
        path = tmp_path / "gallery.db"
        store = GalleryStore.open(path, "test-model", 128)
        backend = Backend(
            lambda: store,
            lambda: GalleryStore.open(path, "test-model", 128),
            lambda job: pytest.fail("no detection in these tests"),
            health,
            RecentEvents(5),
        )
        return create_app(backend, WebSettings(token=token, max_upload_bytes=UPLOAD_LIMIT))

    return build, calls


@pytest.fixture()
def web_server(tmp_path: Path) -> Iterator[tuple[HealthServer, list[int]]]:
    build, calls = _web_factory(tmp_path, TOKEN)
    with HealthServer(
        health, metrics, port=0, token=TOKEN, web=build, max_body=UPLOAD_LIMIT + 1000
    ) as srv:
        yield srv, calls


def test_the_page_is_built_by_its_first_request_only(web_server) -> None:
    server, calls = web_server
    assert get(server, "/health")[0] == 200
    assert get(server, "/metrics", TOKEN)[0] == 200
    assert calls == []  # nothing of the web stack for the health check or the scraper
    code, _, body = get(server, "/api/people", TOKEN)
    assert code == 200 and json.loads(body) == {"people": []}
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(get(server, "/api/people", TOKEN)[0]))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [200] * 4 and calls == [1]
    assert get(server, "/api/people")[0] == 401  # the application's own authentication


def test_a_page_that_cannot_start_is_503_and_health_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken():
        raise RuntimeError("no templates")

    with HealthServer(health, metrics, port=0, web=broken) as server:
        code, _, body = get(server, "/")
        assert code == 503 and body.count("\n") == 1 and "log" in json.loads(body)["error"]
        assert get(server, "/health")[0] == 200
        assert get(server, "/")[0] == 503
    assert len([r for r in caplog.records if "could not start" in r.getMessage()]) == 1


@pytest.mark.parametrize(
    ("request_bytes", "code"),
    [
        (b"GARBAGE\r\n\r\n", b"400"),
        (b"GET / HTTP/9.9\r\n\r\n", b"400"),
        (b"GET /" + b"a" * 65536 + b" HTTP/1.1\r\n\r\n", b"431"),
        (b"POST /health HTTP/1.1\r\nContent-Length: 0\r\n\r\n", b"405"),
        (
            b"POST /api/people HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n",
            b"413",
        ),
        (b"POST /api/people HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", b"401"),
    ],
    ids=["garbage", "http-9.9", "64k-url", "post-health", "huge-upload", "no-token"],
)
def test_malformed_and_oversized_requests_with_the_page_on(
    web_server, request_bytes: bytes, code: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    server, _ = web_server
    with caplog.at_level(logging.DEBUG):
        assert status_line(server.port, request_bytes).split()[1] == code
        assert get(server, "/health")[0] == 200
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


def test_slow_clients_are_still_cut_with_the_page_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slow headers to the page's paths: the same bound and deadline as without it."""
    from facegate.service import health as module

    monkeypatch.setattr(module, "MAX_CLIENTS", 20)
    build, _ = _web_factory(tmp_path, TOKEN)
    with HealthServer(health, port=0, token=TOKEN, web=build) as srv:
        socks = [socket.create_connection(("127.0.0.1", srv.port), timeout=10) for _ in range(60)]
        try:
            for sock in socks:
                sock.sendall(b"POST /api/people HTTP/1.1\r\n")  # and never the end of the headers
            assert get(srv, "/health")[0] == 200
            for sock in socks:
                assert sock.recv(4096) == b""
        finally:
            for sock in socks:
                sock.close()
