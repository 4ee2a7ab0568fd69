"""The /health and /metrics endpoint over real HTTP: JSON, Prometheus text, bearer token."""

from __future__ import annotations

import json
import logging
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from facegate.errors import ConfigError, FacegateError
from facegate.service.health import HealthServer, render_metrics

TOKEN = "s3cret-token"


def get(server: HealthServer, path: str, token: str | None = None) -> tuple[int, str, str]:
    """(status, content type, body) of GET ``path``."""
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read().decode()


def health() -> dict[str, object]:
    return {"status": "ok", "source": "open", "last_frame_age": 0.04}


def metrics() -> dict[str, tuple[str, str, object]]:
    return {
        "facegate_frames_total": ("counter", "Frames read from the source", 1234),
        "facegate_fps": ("gauge", "Frames per second\nprocessed", 9.5),
        "facegate_sink_dropped_total": (
            "counter",
            "Events dropped per sink",
            {(("sink", "mqtt"),): 3, (("sink", 'we"ird\\'),): 0},
        ),
    }


@pytest.fixture()
def server() -> Iterator[HealthServer]:
    with HealthServer(health, metrics, port=0) as srv:
        yield srv


@pytest.fixture()
def secured() -> Iterator[HealthServer]:
    with HealthServer(health, metrics, port=0, token=TOKEN) as srv:
        yield srv


def test_health_is_json(server: HealthServer) -> None:
    status, kind, body = get(server, "/health")
    data = json.loads(body)
    assert status == 200 and kind == "application/json"
    assert data == health()  # the provider's document as it is: one uptime field, its own


@pytest.mark.parametrize("state", ["starting", "degraded"])
def test_health_not_ok_is_503(state: str) -> None:
    with HealthServer(lambda: {"status": state}, port=0) as srv:
        status, _, body = get(srv, "/health")
    assert status == 503 and json.loads(body)["status"] == state


def test_failing_provider_gives_an_answer_not_a_hang() -> None:
    def broken() -> dict[str, object]:
        raise RuntimeError("boom")

    with HealthServer(broken, broken, port=0) as srv:
        assert get(srv, "/health")[0] == 503
        assert get(srv, "/metrics")[0] == 500


def test_metrics_in_prometheus_text_format(server: HealthServer) -> None:
    status, kind, body = get(server, "/metrics")
    assert status == 200 and kind.startswith("text/plain; version=0.0.4")
    assert body.splitlines() == [
        "# HELP facegate_frames_total Frames read from the source",
        "# TYPE facegate_frames_total counter",
        "facegate_frames_total 1234",
        "# HELP facegate_fps Frames per second\\nprocessed",
        "# TYPE facegate_fps gauge",
        "facegate_fps 9.5",
        "# HELP facegate_sink_dropped_total Events dropped per sink",
        "# TYPE facegate_sink_dropped_total counter",
        'facegate_sink_dropped_total{sink="mqtt"} 3',
        'facegate_sink_dropped_total{sink="we\\"ird\\\\"} 0',
    ]


def test_render_special_values_and_bad_names() -> None:
    text = render_metrics({"x": ("gauge", "h", float("nan")), "y": ("gauge", "h", float("inf"))})
    assert "x NaN" in text and "y +Inf" in text
    with pytest.raises(ValueError):
        render_metrics({"bad name": ("gauge", "h", 1)})
    with pytest.raises(ValueError):
        render_metrics({"x": ("histogram", "h", 1)})


def test_unknown_path_is_404(server: HealthServer) -> None:
    assert get(server, "/nope")[0] == 404
    with HealthServer(health, port=0) as srv:  # no metrics provider
        assert get(srv, "/metrics")[0] == 404


def test_token_guards_everything_but_health(secured: HealthServer) -> None:
    assert get(secured, "/health")[0] == 200
    assert get(secured, "/metrics")[0] == 401
    assert get(secured, "/metrics", token="wrong")[0] == 401
    assert get(secured, "/nope")[0] == 401
    assert get(secured, "/metrics", token=TOKEN)[0] == 200
    request = urllib.request.Request(f"http://127.0.0.1:{secured.port}/metrics")
    request.add_header("Authorization", f"Basic {TOKEN}")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    assert info.value.code == 401 and info.value.headers["WWW-Authenticate"].startswith("Bearer")


def test_binds_loopback_by_default_and_releases_the_port(server: HealthServer) -> None:
    assert server.host == "127.0.0.1" and server.port > 0
    port = server.port
    server.close()
    server.close()
    with HealthServer(health, port=port) as again:
        assert get(again, "/health")[0] == 200


def test_close_after_the_loop_has_closed_its_trigger_writes_nothing() -> None:
    """close() wakes the event loop by writing to its trigger; when the loop has already seen
    the stop flag and closed every descriptor, that write must not happen: on a closed one it
    raised EBADF at teardown, and a reused descriptor number could be someone else's file."""
    srv = HealthServer(health, metrics, port=0)
    srv.start()
    assert get(srv, "/health")[0] == 200
    srv._stop.set()  # the loop ends on its own within LOOP_WAKE_S and closes its descriptors
    assert srv._thread is not None
    srv._thread.join(timeout=5)
    assert not srv._thread.is_alive()
    srv.close()  # must neither raise nor write anywhere
    srv.close()  # still safe twice


def test_port_in_use_is_one_line(server: HealthServer) -> None:
    with pytest.raises(FacegateError, match=r"cannot listen on 127\.0\.0\.1"):
        HealthServer(health, port=server.port).start()


def _config(tmp_path: Path, token_file: str | None) -> object:
    from facegate.config import parse

    line = f'token_file = "{token_file}"' if token_file else ""
    return parse(f"[http]\n{line}\n")


def test_daemon_token_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """assemble.http_token, the daemon's own path: a token, none, or a start-up error."""
    from facegate.service.assemble import http_token

    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    assert http_token(_config(tmp_path, None)) is None
    file = tmp_path / "token"
    file.write_text(TOKEN + "\n")
    file.chmod(0o600)
    assert http_token(_config(tmp_path, str(file))) == TOKEN
    creds = tmp_path / "creds"
    creds.mkdir()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert http_token(_config(tmp_path, None)) is None  # no credential given: no token
    (creds / "http-token").write_text(TOKEN)
    assert http_token(_config(tmp_path, None)) == TOKEN
    (creds / "http-token").write_text(" \n")
    with pytest.raises(ConfigError, match="empty"):
        http_token(_config(tmp_path, None))
    empty = tmp_path / "empty"
    empty.write_text("\n")
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe")
    for bad, why in (
        (empty, "empty"),
        (tmp_path / "missing", "cannot read"),
        (tmp_path, "cannot read"),
        (binary, "UTF-8"),
    ):
        with pytest.raises(ConfigError, match=why):
            http_token(_config(tmp_path, str(bad)))


def status_line(port: int, request: bytes) -> bytes:
    """The status line the server answers a raw ``request`` with."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.split(b"\r\n")[0]


@pytest.mark.parametrize(
    ("request_bytes", "code"),
    [
        (b"GARBAGE\r\n\r\n", b"400"),
        (b"GET / HTTP/9.9\r\n\r\n", b"400"),
        (b"GET /" + b"a" * 65536 + b" HTTP/1.1\r\n\r\n", b"431"),
        (b"POST /health HTTP/1.1\r\nContent-Length: 0\r\n\r\n", b"405"),
    ],
    ids=["garbage", "http-9.9", "64k-url", "post"],
)
def test_malformed_requests_get_4xx_without_traceback(
    server: HealthServer, request_bytes: bytes, code: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        assert status_line(server.port, request_bytes).split()[1] == code
        assert get(server, "/health")[0] == 200
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


def test_slow_clients_are_bounded_and_health_still_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """More slow clients than the bound: the oldest give way, /health answers, all are cut."""
    from facegate.service import health as module

    monkeypatch.setattr(module, "MAX_CLIENTS", 20)  # a smaller bound, the same rules
    with HealthServer(health, port=0) as srv:
        socks = [socket.create_connection(("127.0.0.1", srv.port), timeout=10) for _ in range(60)]
        try:
            for sock in socks:
                sock.sendall(b"GET /health HTTP/1.1\r\n")  # and never the end of the headers
            assert get(srv, "/health")[0] == 200  # within urllib's 5 s timeout
            for sock in socks:  # each one is closed by the server: made room, or past deadline
                assert sock.recv(4096) == b""
        finally:
            for sock in socks:
                sock.close()
