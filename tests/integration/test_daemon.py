"""`facegate run` as a process: clips, live RTSP, signals, gallery reload, HTTP, systemd."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
import urllib.request
from pathlib import Path

from tests.conftest import run_cli
from tests.data import DATA, SHARED, data, shared
from tests.integration.daemon_helpers import DaemonProcess
from tests.integration.mosquitto import free_port

HAMILTON = DATA / "video" / "face_recognition_short_hamilton_clip.mp4"
STREET = SHARED / "video" / "facenet_pytorch_video.mp4"  # 1080p, 2.4 MB: optional data


def _enrol(state: Path, faces_dir: Path, *people: str) -> None:
    for person in people:
        folder = faces_dir / "face_recognition" / person
        proc = run_cli(
            "gallery",
            "enroll",
            person,
            *map(str, sorted(folder.iterdir())),
            env={"FACEGATE_HOME": str(state)},
        )
        assert proc.returncode == 0, proc.stderr


def _clip(path: Path) -> Path:
    """A clip of tests/data (always there) or of ../shared (skip when absent)."""
    if path.is_relative_to(DATA):
        return data(str(path.relative_to(DATA)))
    return shared(str(path.relative_to(SHARED)))


DEADLINE_S = 60.0  # waits end as soon as their condition holds; this only catches a hang

ENROLLED = (
    "lin_manuel_miranda",
    "obama",
    "biden",
    "kit_harington",
    "rose_leslie",
    "alex_lacamoire",
)


def test_hamilton_clip_gives_one_recognized_and_exits_0(state: Path, faces_dir: Path) -> None:
    _enrol(state, faces_dir, *ENROLLED)
    daemon = DaemonProcess(
        state, "--source", str(_clip(HAMILTON)), "--sink", f"jsonl:{state / 'events.jsonl'}"
    ).start()
    assert daemon.wait(240) == 0, daemon.log()[-2000:]
    events = daemon.events()
    recognized = [e for e in events if e["event"] == "recognized"]
    assert [e["person"] for e in recognized] == ["lin_manuel_miranda"], events
    assert {"event", "camera", "time", "track_id", "box", "similarity"} <= set(recognized[0])
    assert any(e["event"] == "left" and e["person"] == "lin_manuel_miranda" for e in events)
    assert "first frame processed" in daemon.log()


def test_street_clip_names_none_of_the_enrolled(state: Path, faces_dir: Path) -> None:
    street = _clip(STREET)
    _enrol(state, faces_dir, *ENROLLED)
    daemon = DaemonProcess(
        state, "--source", str(street), "--sink", f"jsonl:{state / 'events.jsonl'}"
    ).start()
    assert daemon.wait(300) == 0, daemon.log()[-2000:]
    assert [e for e in daemon.events() if e["event"] == "recognized"] == []


def _config(state: Path, source: str, http_port: int, extra: str = "") -> Path:
    path = state / "config.toml"
    path.write_text(f"""
[camera]
name = "hall"
source = "{source}"

[http]
port = {http_port}
token_file = "{state / "token"}"

[[sinks]]
type = "jsonl"
path = "{state / "events.jsonl"}"
{extra}
""")
    (state / "token").write_text("s3cret\n")
    return path


def _metrics(port: int) -> dict[str, float]:
    """The daemon's /metrics as {sample: value}, or {} while it is not answering."""
    from benchmarks.soak import parse_metrics

    code, text = _get(f"http://127.0.0.1:{port}/metrics", "s3cret")
    return parse_metrics(text) if code == 200 else {}


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError:  # not listening yet
        return 0, ""


def test_live_stream_hot_gallery_http_and_sigterm(state: Path, faces_dir: Path) -> None:
    """A looping RTSP camera: enrol while running, read /health and /metrics, stop cleanly."""
    from tests.integration.rtsp_server import RtspServer

    port = free_port()
    with RtspServer(_clip(HAMILTON)) as server:
        config = _config(state, server.url, port)
        with DaemonProcess(state, "--config", str(config)) as daemon:
            daemon.wait_for(
                lambda: _get(f"http://127.0.0.1:{port}/health")[0] == 200, 90, "healthy"
            )
            daemon.wait_for(
                lambda: any(e["event"] == "unknown" for e in daemon.events()),
                90,
                "an unknown face before anyone is enrolled",
            )
            _enrol(state, faces_dir, "lin_manuel_miranda")  # while the daemon runs
            daemon.wait_for(
                lambda: any(e["event"] == "recognized" for e in daemon.events()),
                90,
                "recognized after the gallery changed",
            )
            assert _get(f"http://127.0.0.1:{port}/metrics")[0] == 401
            code, text = _get(f"http://127.0.0.1:{port}/metrics", "s3cret")
            assert code == 200 and "facegate_fps" in text and "facegate_stage_latency_ms" in text
            daemon.signal(signal.SIGTERM)
            assert daemon.wait(DEADLINE_S) == 0  # a deadline against a hang, not a speed test
    events = daemon.events()
    assert events[-1]["event"] == "left"  # drained: everyone present leaves on shutdown


def test_sighup_reloads_and_a_bad_reload_keeps_running(state: Path) -> None:
    from tests.integration.rtsp_server import RtspServer

    port = free_port()
    with RtspServer(_clip(HAMILTON)) as server:
        config = _config(state, server.url, port)
        with DaemonProcess(state, "--config", str(config)) as daemon:
            daemon.wait_for(
                lambda: _get(f"http://127.0.0.1:{port}/health")[0] == 200, 90, "healthy"
            )
            config.write_text(config.read_text().replace('name = "hall"', 'name = "porch"'))
            daemon.signal(signal.SIGHUP)
            daemon.wait_for(lambda: "configuration reloaded" in daemon.log(), 60, "reload")
            daemon.wait_for(
                lambda: _get(f"http://127.0.0.1:{port}/health")[0] == 200,
                90,
                "healthy after reload",
            )
            config.write_text(config.read_text() + "\n[camera.oops]\n")
            daemon.signal(signal.SIGHUP)
            daemon.wait_for(lambda: "reload refused" in daemon.log(), 60, "refused reload")
            daemon.wait_for(
                lambda: _get(f"http://127.0.0.1:{port}/health")[0] == 200, 90, "still healthy"
            )


def test_systemd_notify_ready_status_and_watchdog(state: Path, tmp_path: Path) -> None:
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(1.0)
    env = {"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "2000000"}
    messages: list[str] = []
    with DaemonProcess(
        state,
        "--source",
        str(_clip(HAMILTON)),
        "--realtime",
        "--sink",
        f"jsonl:{state / 'events.jsonl'}",
        env=env,
    ) as daemon:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and sum("WATCHDOG=1" in m for m in messages) < 3:
            try:
                messages.append(sock.recv(4096).decode())
            except TimeoutError:
                continue
        daemon.wait(120)
    sock.settimeout(0.2)
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except TimeoutError:
            break
    joined = "\n".join(messages)
    assert "READY=1" in joined and "STATUS=" in joined and "fps" in joined
    assert joined.count("WATCHDOG=1") >= 3
    assert "STOPPING=1" in joined


def test_mqtt_sink_end_to_end(state: Path, faces_dir: Path) -> None:
    import paho.mqtt.client as mqtt

    from tests.integration.mosquitto import Mosquitto

    _enrol(state, faces_dir, "lin_manuel_miranda")
    with Mosquitto() as broker:
        got: list[tuple[str, bytes]] = []
        subscribed, offline = threading.Event(), threading.Event()

        def on_message(client: mqtt.Client, userdata: object, m: mqtt.MQTTMessage) -> None:
            got.append((m.topic, m.payload))
            if (m.topic, m.payload) == ("facegate/available", b"offline"):
                offline.set()  # the sink's last word, after every event it had

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        client.on_message = on_message
        client.on_subscribe = lambda *args: subscribed.set()
        client.connect("127.0.0.1", broker.port)
        client.subscribe("#")
        client.loop_start()
        try:
            assert subscribed.wait(DEADLINE_S), "no SUBACK from the broker"
            daemon = DaemonProcess(
                state,
                "--source",
                str(_clip(HAMILTON)),
                "--camera",
                "hall",
                "--sink",
                f"mqtt://127.0.0.1:{broker.port}",
            ).start()
            assert daemon.wait(240) == 0, daemon.log()[-2000:]
            assert offline.wait(DEADLINE_S), "the sink never said offline"
        finally:
            client.loop_stop()
            client.disconnect()
    events = [json.loads(p) for t, p in got if t == "facegate/hall/event"]
    assert [e["person"] for e in events if e["event"] == "recognized"] == ["lin_manuel_miranda"]
    topics = {t for t, _ in got}
    assert "facegate/available" in topics
    assert any(t.startswith("homeassistant/binary_sensor/") for t in topics)


def test_bad_config_and_bad_source_exit_1_in_one_line(state: Path) -> None:
    bad = state / "bad.toml"
    bad.write_text('[camera]\nsource = "x"\nmax_fps = -2\n[detctor]\n')
    proc = run_cli("run", "--config", str(bad), env={"FACEGATE_HOME": str(state)})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "max_fps" in proc.stderr and "detctor" in proc.stderr
    proc = run_cli("run", "--source", "/nonexistent/cam.mp4", env={"FACEGATE_HOME": str(state)})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
