"""`facegate run` as a process: clips, live RTSP, signals, gallery reload, HTTP, systemd."""

from __future__ import annotations

import importlib.util
import json
import signal
import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.data import DATA, SHARED, data, shared
from tests.integration.daemon_helpers import DaemonProcess
from tests.integration.mosquitto import free_port
from tests.unit.test_health import status_line

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
    """--json: events on stdout, logs apart; fp16 asked of an FP32-only bundle is said."""
    _enrol(state, faces_dir, *ENROLLED)
    stdout = state / "stdout.jsonl"
    daemon = DaemonProcess(
        state, "--source", str(_clip(HAMILTON)), "--json", "--precision", "fp16", stdout=stdout
    ).start()
    assert daemon.wait(240) == 0, daemon.log()[-2000:]
    events = daemon.events(stdout)  # every stdout line is one JSON event
    recognized = [e for e in events if e["event"] == "recognized"]
    assert [e["person"] for e in recognized] == ["lin_manuel_miranda"], events
    assert {"event", "camera", "time", "track_id", "box", "similarity"} <= set(recognized[0])
    assert any(e["event"] == "left" and e["person"] == "lin_manuel_miranda" for e in events)
    assert "first frame processed" in daemon.log()
    assert "models.precision = fp16" in daemon.log() and "run fp32" in daemon.log()


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
        with urllib.request.urlopen(request, timeout=10) as resp:
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


def _counter(port: int, name: str) -> float:
    """One sample of the daemon's /metrics (waits until it answers)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        metrics = _metrics(port)
        if name in metrics:
            return metrics[name]
    raise AssertionError(f"/metrics never had {name}")


def _reload(daemon: DaemonProcess, config: Path, text: str, outcome: str) -> None:
    """Write ``text`` to the config, SIGHUP, and wait until the daemon says ``outcome``."""
    seen = daemon.log().count(outcome)
    config.write_text(text)
    daemon.signal(signal.SIGHUP)
    daemon.wait_for(lambda: daemon.log().count(outcome) > seen, 120, outcome)


def test_sighup_changes_what_changed_in_place(state: Path, faces_dir: Path) -> None:
    """Rename, a sink-only change, a broken file and a missing bundle, on a live stream."""
    from tests.integration.rtsp_server import RtspServer

    _enrol(state, faces_dir, "lin_manuel_miranda")
    port, second = free_port(), state / "events2.jsonl"
    with RtspServer(_clip(HAMILTON)) as server:
        config = _config(state, server.url, port)
        with DaemonProcess(state, "--config", str(config)) as daemon:
            daemon.wait_for(
                lambda: any(e["event"] == "recognized" for e in daemon.events()), 120, "arrival"
            )
            frames = _counter(port, "facegate_frames_captured_total")
            # a new camera name while he is present: his visit goes on, and ends under the
            # new name (a rebuilt pipeline would say he left, then arrived again)
            renamed_at = len(daemon.events())
            text = config.read_text().replace('name = "hall"', 'name = "porch"')
            _reload(daemon, config, text, "configuration reloaded")
            assert _counter(port, "facegate_source_starts_total") == 1
            assert _counter(port, "facegate_frames_captured_total") >= frames
            # only the sink changes: the new file is opened, the source is not restarted
            _reload(daemon, config, text.replace("events.jsonl", "events2.jsonl"), "reloaded")
            daemon.wait_for(second.exists, 30, "the new sink's file")
            # a broken file, then a missing bundle: refused, the last good config runs on
            good = config.read_text()
            for broken in (
                good + "\n[camera.oops]\n",
                good.replace("[http]", '[models]\nbundle = "nosuch"\n\n[http]'),
            ):
                _reload(daemon, config, broken, "reload refused")
            assert _counter(port, "facegate_source_starts_total") == 1
            assert _counter(port, "facegate_frames_captured_total") >= frames
    assert "nosuch" in daemon.log() and "Traceback" not in daemon.log()
    # His visit went on through every reload (he stays in view on the looping clip) and ended
    # on SIGTERM under the new name, in the new sink's file: the rename and the sink change took
    # effect, the refused reloads changed nothing, and a rebuilt pipeline would have said he left
    # the hall and arrived on the porch.
    since = daemon.events()[renamed_at:] + daemon.events(second)
    his = [(e["event"], e["camera"]) for e in since if e.get("person")]
    assert his and his[0] == ("left", "porch"), since
    assert ("left", "porch") in [(e["event"], e["camera"]) for e in daemon.events(second)]


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

    from facegate.sinks.mqtt import default_instance
    from tests.integration.mosquitto import Mosquitto

    _enrol(state, faces_dir, "lin_manuel_miranda")
    host = default_instance()  # no config file: the instance is the host name
    with Mosquitto() as broker:
        got: list[tuple[str, bytes]] = []
        subscribed, offline = threading.Event(), threading.Event()

        def on_message(client: mqtt.Client, userdata: object, m: mqtt.MQTTMessage) -> None:
            got.append((m.topic, m.payload))
            if (m.topic, m.payload) == (f"facegate/{host}/available", b"offline"):
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
    events = [json.loads(p) for t, p in got if t == f"facegate/{host}/hall/event"]
    assert [e["person"] for e in events if e["event"] == "recognized"] == ["lin_manuel_miranda"]
    topics = {t for t, _ in got}
    assert f"facegate/{host}/available" in topics
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


SLOW_CLIENTS = 250  # past the server's 200-connection bound, far under the 20,000 fd limit here
SLOW_LINE_EVERY_S = 2.0  # the attack in the issue: one header line every 2 s


def _slow_clients(port: int, stop: threading.Event, closed: list[int]) -> None:
    """Open SLOW_CLIENTS connections that send a header line every 2 s; count server hang-ups."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(SLOW_CLIENTS)]
    for sock in socks:
        sock.sendall(b"GET /health HTTP/1.1\r\n")
    try:
        while not stop.wait(SLOW_LINE_EVERY_S):
            for sock in list(socks):
                try:
                    sock.sendall(b"X-Slow: 1\r\n")
                except OSError:  # the server dropped it: past the deadline, or made room
                    socks.remove(sock)
                    closed.append(1)
    finally:
        for sock in socks:
            sock.close()


def test_http_answers_malformed_requests_and_survives_slow_clients(state: Path) -> None:
    """The real daemon's endpoint: 400s without tracebacks, /health through a slow-client flood."""
    from tests.integration.rtsp_server import RtspServer

    port = free_port()
    with RtspServer(_clip(HAMILTON)) as server:
        config = _config(state, server.url, port)
        with DaemonProcess(state, "--config", str(config)) as daemon:
            daemon.wait_for(lambda: _get(f"http://127.0.0.1:{port}/health")[0] == 200, 90, "up")
            health = json.loads(_get(f"http://127.0.0.1:{port}/health")[1])
            assert "uptime_s" in health and "uptime" not in health and health["source"]
            assert status_line(port, b"GARBAGE\r\n\r\n").split()[1] == b"400"
            assert status_line(port, b"GET / HTTP/9.9\r\n\r\n").split()[1] == b"400"
            long_url = b"GET /" + b"a" * 65536 + b" HTTP/1.1\r\n\r\n"
            assert status_line(port, long_url).split()[1] == b"431"
            stop, closed = threading.Event(), []
            flood = threading.Thread(target=_slow_clients, args=(port, stop, closed))
            flood.start()
            try:
                for _ in range(5):  # /health answers (10 s socket timeout) while they hold on
                    assert _get(f"http://127.0.0.1:{port}/health")[0] == 200
                daemon.wait_for(lambda: len(closed) == SLOW_CLIENTS, 60, "slow clients cut")
            finally:
                stop.set()
                flood.join()
            assert _get(f"http://127.0.0.1:{port}/health")[0] == 200
    assert "Traceback" not in daemon.log()


def _refused(state: Path, toml: str, env: dict[str, str] | None = None) -> tuple[str, str]:
    """check-config's and the daemon's stderr for ``toml``; both must refuse it in one line."""
    path = state / "refused.toml"
    path.write_text(toml)
    env = {"FACEGATE_HOME": str(state), **(env or {})}
    checked = run_cli("check-config", str(path), env=env)
    ran = run_cli("run", "--config", str(path), env=env)
    assert checked.returncode == 1 and ran.returncode == 1, (checked.stderr, ran.stderr)
    assert "Traceback" not in checked.stderr + ran.stderr
    assert len(ran.stderr.strip().splitlines()) == 1, ran.stderr
    return checked.stderr, ran.stderr


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('[models]\nbundle = "nosuch"', "nosuch"),
        ('[[sinks]]\ntype = "jsonl"\npath = "/nonexistent-dir/events.jsonl"', "does not exist"),
        ('[http]\ntoken_file = "{empty}"', "is empty"),
        ('[http]\ntoken_file = "{folder}"', "cannot read"),
    ],
    ids=["bundle", "jsonl", "empty-token", "unreadable-token"],
)
def test_check_config_refuses_what_the_daemon_refuses(
    state: Path, table: str, expected: str
) -> None:
    (state / "empty").write_text("\n")
    table = table.format(empty=state / "empty", folder=state)
    checked, ran = _refused(state, f'[camera]\nsource = "{_clip(HAMILTON)}"\n{table}\n')
    assert expected in checked and expected in ran


def test_an_empty_systemd_credential_is_refused_not_auth_off(state: Path) -> None:
    creds = state / "creds"
    creds.mkdir()
    (creds / "http-token").write_text("")
    toml = f'[camera]\nsource = "{_clip(HAMILTON)}"\n'
    checked, ran = _refused(state, toml, env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert "http-token" in ran and "empty" in ran and "empty" in checked


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("nosuch.mp4", "no such file: nosuch.mp4"),
        ("picamera2", "picamera2 is not installed"),
        ("/dev/video9", "no such camera: /dev/video9 does not exist"),
        ("9", "no such camera: /dev/video9 does not exist"),
    ],
)
def test_a_source_that_can_never_work_exits_1_in_one_line(
    state: Path, source: str, expected: str
) -> None:
    if source == "picamera2" and importlib.util.find_spec("picamera2") is not None:
        pytest.skip("picamera2 is installed here")
    if expected.startswith("no such camera") and Path("/dev/video9").exists():
        pytest.skip("/dev/video9 exists here")
    proc = run_cli("run", "--source", source, env={"FACEGATE_HOME": str(state)})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"facegate: error: {expected}"), lines
    _refused(state, f'[camera]\nsource = "{source}"\n')
