"""Fault injection at the sinks, with the daemon as a real process.

- The MQTT broker stopped for a while (and started again on the same port, with persistence
  so the test's subscriber session survives) under a live RTSP camera: the events emitted
  during the outage are queued and delivered after the reconnect, nothing is lost, and the
  daemon never exits.
- A webhook target that is down for a whole clip: the daemon still ends with exit 0, in about
  the time a jsonl-only run takes, with the failures counted and logged once.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from facegate.sinks.mqtt import default_instance
from tests.integration.daemon_helpers import DaemonProcess
from tests.integration.mosquitto import Mosquitto, free_port, mosquitto_binary
from tests.integration.rtsp_server import RtspServer
from tests.integration.test_daemon import HAMILTON, _clip, _config, _enrol, _metrics
from tests.integration.test_sinks import Subscriber

EVENTS = f"facegate/{default_instance()}/hall/event"  # config.toml: the host name
OUTAGE_MIN_S = 3.0  # the broker stays down at least this long ...
OUTAGE_EVENTS = 2  # ... and until the daemon has emitted this many events without it
SLOWDOWN_LIMIT = 2.0  # a dead webhook may not make a clip take twice as long
MQTT_SINK = """
[[sinks]]
type = "mqtt"
host = "127.0.0.1"
port = {port}
"""
# One retry (0.5 s): the clip plays at 60+ fps, so a failure must be counted well before it ends
# for /metrics (scraped while the daemon runs) to show it.
WEBHOOK_SINK = """
[[sinks]]
type = "webhook"
url = "http://127.0.0.1:{port}/events"
timeout = 2.0
retries = 1
"""


def _sink(metrics: dict[str, float], sink: str, counter: str) -> float:
    return metrics.get(f'facegate_sink{{sink="{sink}",counter="{counter}"}}', 0.0)


def _key(event: dict) -> tuple:
    return (event["event"], event["track_id"], event["time"], event["person"])


def _received(sub: Subscriber) -> set[tuple]:
    return {_key(json.loads(p)) for p in sub.payloads(EVENTS)}


def _all_delivered(daemon: DaemonProcess, sub: Subscriber) -> bool:
    return {_key(e) for e in daemon.events()} <= _received(sub)


def _outage(broker: Mosquitto, daemon: DaemonProcess, port: int) -> dict:
    """Stop the broker until events were emitted without it; start it; what happened."""
    before = len(daemon.events())
    broker.stop()
    stopped = time.monotonic()
    time.sleep(OUTAGE_MIN_S)
    daemon.wait_for(
        lambda: len(daemon.events()) >= before + OUTAGE_EVENTS, 120, "events during the outage"
    )
    during = _metrics(port)
    emitted = len(daemon.events()) - before
    broker.start()
    restarted = time.monotonic()
    return {
        "down_s": round(restarted - stopped, 1),
        "emitted_while_down": emitted,
        "queued_while_down": _sink(during, "mqtt", "queued"),
        "connected_while_down": _sink(during, "mqtt", "connected"),
        "restarted": restarted,
    }


GAP_S = 7.0  # black frames after each pass of the clip: longer than the 5 s that end a visit


def _with_gap(clip: Path, folder: Path) -> Path:
    """``clip`` followed by GAP_S of black: looped, every pass is a new visit (two events)."""
    out = folder / "clip-with-gap.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(clip),
            "-an",
            "-vf",
            f"tpad=stop_mode=add:stop_duration={GAP_S}:color=black",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            str(out),
        ],
        check=True,
        timeout=120,
    )
    return out


def _live_daemon_with_mqtt(state: Path, server: RtspServer, broker: Mosquitto, port: int):
    config = _config(state, server.url, port, MQTT_SINK.format(port=broker.port))
    return DaemonProcess(state, "--config", str(config))


def test_broker_restart_queues_and_delivers_every_event(
    state: Path, faces_dir: Path, tmp_path: Path
) -> None:
    if mosquitto_binary() is None:
        pytest.skip("mosquitto not installed")
    port = free_port()
    clip = _with_gap(_clip(HAMILTON), tmp_path)  # he leaves and comes back on every pass
    with RtspServer(clip) as server, Mosquitto(persistence=True) as broker:
        sub = Subscriber(broker, (EVENTS,), client_id="fg-fault-sub", clean_session=False)
        with _live_daemon_with_mqtt(state, server, broker, port) as daemon:
            daemon.wait_for(lambda: _received(sub), 120, "a first (unknown) event over MQTT")
            _enrol(state, faces_dir, "lin_manuel_miranda")  # while the daemon runs
            daemon.wait_for(
                lambda: any(e["event"] == "recognized" for e in daemon.events()), 90, "recognized"
            )
            outage = _outage(broker, daemon, port)
            daemon.wait_for(lambda: _all_delivered(daemon, sub), 90, "delivery after reconnect")
            outage["redelivered_s"] = round(time.monotonic() - outage.pop("restarted"), 2)
            after = _metrics(port)
            daemon.signal(signal.SIGTERM)
            assert daemon.wait(30) == 0, daemon.log()[-3000:]
            time.sleep(1.0)  # the "left" events of the shutdown drain
        sub.close()
    events = daemon.events()
    lost = {_key(e) for e in events} - _received(sub)
    outage.update(events=len(events), mqtt_delivered=_sink(after, "mqtt", "delivered"))
    outage.update(mqtt_dropped=_sink(after, "mqtt", "dropped"), lost=len(lost))
    print(f"\nbroker restart: {json.dumps(outage)}")
    assert outage["connected_while_down"] == 0 and outage["queued_while_down"] >= 1
    assert not lost, f"events never delivered over MQTT: {sorted(lost)}"
    assert _sink(after, "mqtt", "dropped") == 0 and _sink(after, "mqtt", "reconnects") >= 1
    assert ("recognized", "lin_manuel_miranda") in {(e["event"], e["person"]) for e in events}
    assert "lost MQTT broker" in daemon.log() and "Traceback" not in daemon.log()


def _timed_run(state: Path, name: str, http_port: int, extra: str = "") -> tuple[float, dict, str]:
    """Run the clip to its end; (seconds, last /metrics seen, log)."""
    config = _config(state, str(_clip(HAMILTON)), http_port, extra).rename(state / f"{name}.toml")
    daemon = DaemonProcess(state, "--config", str(config))
    daemon.log_path = state / f"{name}.log"
    start = time.monotonic()
    daemon.start()
    seen: dict[str, float] = {}
    while daemon.proc.poll() is None:
        seen = _metrics(http_port) or seen
        time.sleep(0.2)
        if time.monotonic() - start > 300:
            daemon.stop()
            raise AssertionError(f"{name}: the clip took over 300 s:\n{daemon.log()[-2000:]}")
    took = time.monotonic() - start
    assert daemon.proc.returncode == 0, daemon.log()[-3000:]
    return took, seen, daemon.log()


def test_webhook_down_for_a_whole_clip_is_bounded(state: Path) -> None:
    dead = free_port()  # nothing listens here: every POST is refused
    base_s, _, _ = _timed_run(state, "jsonl", free_port())
    hook_s, seen, log = _timed_run(state, "webhook", free_port(), WEBHOOK_SINK.format(port=dead))
    counters = {c: _sink(seen, "webhook", c) for c in ("delivered", "failed", "retries", "queued")}
    print(f"\nclip: jsonl only {base_s:.1f} s, with a dead webhook {hook_s:.1f} s; {counters}")
    assert hook_s < SLOWDOWN_LIMIT * base_s
    assert counters["delivered"] == 0 and counters["failed"] >= 1
    assert counters["retries"] <= counters["failed"] + 1  # retries = 1 per event at most
    assert log.count("is failing; events are dropped after retries") == 1
    assert "Traceback" not in log
