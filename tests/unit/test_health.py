"""The /health and /metrics endpoint over real HTTP: JSON, Prometheus text, bearer token."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from facegate.errors import ConfigError, FacegateError
from facegate.service.health import HealthServer, read_token, render_metrics

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
    assert data["status"] == "ok" and data["source"] == "open" and data["uptime"] >= 0


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


def test_port_in_use_is_one_line(server: HealthServer) -> None:
    with pytest.raises(FacegateError, match=r"cannot listen on 127\.0\.0\.1"):
        HealthServer(health, port=server.port).start()


def test_read_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    assert read_token(None) is None
    file = tmp_path / "token"
    file.write_text(TOKEN + "\n")
    file.chmod(0o600)
    assert read_token(str(file)) == TOKEN
    creds = tmp_path / "creds"
    creds.mkdir()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert read_token(None) is None
    (creds / "http-token").write_text(TOKEN)
    assert read_token(None) == TOKEN
    assert read_token(str(file), credential="other") == TOKEN
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        read_token(str(empty))
    with pytest.raises(ConfigError, match="cannot read"):
        read_token(str(tmp_path / "missing"))
