"""Fault injection at the source: the daemon keeps running and picks the camera up again.

- An RTSP camera (ffmpeg + relay, see rtsp_server.py) SIGKILLed and restarted 10 times while
  ``facegate run`` watches it: after each restart /metrics shows the source up and frames
  counting again, and it is still the same process.
- A local camera that vanishes (no V4L2 device here): in-process, a fake source whose open()
  and read() raise CameraError while "unplugged"; the daemon loop keeps pinging the systemd
  watchdog all along and streams again once the camera is back.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import socket
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from facegate.config import load
from facegate.errors import CameraError
from facegate.service import assemble, daemon
from facegate.service.capture import BACKOFF_MAX, Capture
from facegate.sources.base import FrameSource
from facegate.types import Frame
from tests.integration.daemon_helpers import DaemonProcess
from tests.integration.mosquitto import free_port
from tests.integration.rtsp_server import RtspServer
from tests.integration.test_daemon import HAMILTON, _clip, _config, _metrics

RESTARTS = 10
FAILED_REOPENS = 2  # the camera stays off until the daemon has failed to reopen it this often
# Deadlines only catch a hang (a wait ends as soon as its condition holds); no speed is judged.
NOTICE_LIMIT_S = 60.0  # kill -> source_up 0 (OpenCVSource's 5 s read timeout)
RECONNECT_LIMIT_S = BACKOFF_MAX + 60.0  # restart -> streaming: one backoff step, then open


def _streaming_past(port: int, frames: float) -> bool:
    m = _metrics(port)
    return m.get("facegate_source_up") == 1 and m.get("facegate_frames_captured_total", 0) > frames


def _one_restart(server: RtspServer, daemon: DaemonProcess, port: int) -> float:
    """Kill the camera, wait until reopening it failed, restart it; seconds to streaming again."""
    server.kill()
    daemon.wait_for(lambda: _metrics(port).get("facegate_source_up") == 0, NOTICE_LIMIT_S, "down")
    since = _metrics(port)["facegate_source_reconnects_total"]
    daemon.wait_for(
        lambda: _metrics(port).get("facegate_source_reconnects_total", 0) >= since + FAILED_REOPENS,
        NOTICE_LIMIT_S,
        "failed reopens",
    )
    frames = _metrics(port)["facegate_frames_captured_total"]
    server.start()
    restarted = time.monotonic()
    daemon.wait_for(lambda: _streaming_past(port, frames), RECONNECT_LIMIT_S, "streaming again")
    return time.monotonic() - restarted


def test_rtsp_camera_killed_and_restarted_10_times(state: Path, tmp_path: Path) -> None:
    port = free_port()
    with RtspServer(_clip(HAMILTON)) as server:
        config = _config(state, server.url, port)
        with DaemonProcess(state, "--config", str(config)) as proc:
            pid = proc.proc.pid
            proc.wait_for(lambda: _streaming_past(port, 0), 120, "first frames")
            times, uptime = [], 0.0
            for _ in range(RESTARTS):
                times.append(round(_one_restart(server, proc, port), 2))
                m = _metrics(port)
                assert proc.proc.pid == pid and proc.proc.poll() is None
                assert m["facegate_uptime_seconds"] > uptime  # same daemon, never restarted
                uptime = m["facegate_uptime_seconds"]
            final = _metrics(port)
        log = proc.log()
    report = {"reconnect_s": times, "max_s": max(times), "mean_s": round(sum(times) / RESTARTS, 2)}
    report["source_reconnects_total"] = final["facegate_source_reconnects_total"]
    (tmp_path / "reconnects.json").write_text(json.dumps(report, indent=1))
    print(f"\nRTSP restart -> streaming again (s): {times}; {json.dumps(report)}")
    assert proc.proc.returncode == 0
    assert final["facegate_source_reconnects_total"] >= RESTARTS
    assert log.count("streaming again after") == RESTARTS
    assert log.count("first frame processed") == 1
    assert not re.search(r"^(ERROR|CRITICAL) |Traceback", log, re.MULTILINE)


# ---- a local camera that vanishes, in process -----------------------------------------------


class _Camera:
    """A camera that can be unplugged: frames from the clip while present, CameraError if not."""

    def __init__(self, frames: list[np.ndarray], fps: float = 15.0) -> None:
        self.frames, self.period = frames, 1.0 / fps
        self.present = threading.Event()
        self.opens = self.failed_opens = 0

    def source(self) -> FrameSource:
        return _FakeSource(self)


class _FakeSource(FrameSource):
    name = "fakecam"
    finite = False

    def __init__(self, camera: _Camera) -> None:
        self.camera, self.index = camera, 0

    def open(self) -> None:
        self.camera.opens += 1
        if not self.camera.present.is_set():
            self.camera.failed_opens += 1
            raise CameraError("fakecam: no such device (unplugged)")

    def read(self) -> Frame | None:
        time.sleep(self.camera.period)
        if not self.camera.present.is_set():
            raise CameraError("fakecam: read failed (device gone)")
        image = self.camera.frames[self.index % len(self.camera.frames)]
        self.index += 1
        return Frame(image, time.time(), self.index, self.name)

    def close(self) -> None:
        pass


def _clip_frames(count: int = 60) -> list[np.ndarray]:
    video = cv2.VideoCapture(str(_clip(HAMILTON)))
    frames = []
    while len(frames) < count:
        ok, bgr = video.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    video.release()
    assert frames, "could not decode the clip"
    return frames


def _pings(sock: socket.socket, out: list[float], stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            message = sock.recv(4096).decode()
        except TimeoutError:
            continue
        if "WATCHDOG=1" in message:
            out.append(time.monotonic())


def _in_process_daemon(state: Path, camera: _Camera, monkeypatch: pytest.MonkeyPatch):
    config_path = state / "config.toml"
    config_path.write_text(
        '[camera]\nname = "hall"\nsource = "fakecam"\n[http]\nenabled = false\n'
        '[snapshots]\nenabled = false\n[[sinks]]\ntype = "jsonl"\n'
        f'path = "{state / "events.jsonl"}"\n'
    )
    # backoff_max shortened so the test takes seconds; the default is covered over RTSP above
    capture = Capture(camera.source, realtime=True, name="hall", backoff_max=2.0)
    monkeypatch.setattr(assemble, "capture", lambda config: capture)
    return daemon.Daemon(load(config_path), daemon.Control())


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _max_gap(times: list[float], start: float, end: float) -> float:
    inside = [start, *[t for t in times if start <= t <= end], end]
    return max(b - a for a, b in itertools.pairwise(inside))


def _unplug_and_replug(runner: daemon.Daemon, camera: _Camera, pings: list[float]) -> dict:
    """Start without the camera, plug it in, unplug it while streaming, plug it back."""
    _wait(lambda: camera.failed_opens >= 2, 60, "the daemon to try the absent camera")
    early = runner.metrics.counters["frames_processed"]
    camera.present.set()  # plugged in late: the daemon started without it
    _wait(lambda: runner.metrics.counters["frames_processed"] >= 10, 60, "first frames")
    camera.present.clear()  # unplugged while streaming
    gone = time.monotonic()
    _wait(lambda: runner.capture.state in ("backoff", "connecting"), 60, "the outage")
    failed = camera.failed_opens
    _wait(lambda: camera.failed_opens >= failed + 2, 60, "two failed reopens while unplugged")
    outage_ping = len(pings)  # the loop must go on pinging the watchdog without frames
    _wait(lambda: len(pings) > outage_ping, 60, "a watchdog ping while the camera is gone")
    assert not camera.present.is_set()
    during, done = runner.health(), runner.metrics.counters["frames_processed"]
    camera.present.set()
    back = time.monotonic()
    _wait(lambda: runner.metrics.counters["frames_processed"] > done + 5, 30, "frames again")
    return {"early": early, "gone": gone, "back": back, "during": during}


def test_a_vanishing_camera_keeps_the_loop_alive(
    state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(0.2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # ping every 0.2 s, as often as the loop wakes
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    camera = _Camera(_clip_frames())
    runner = _in_process_daemon(state, camera, monkeypatch)
    pings, stop, outcome = [], threading.Event(), []
    pinger = threading.Thread(target=_pings, args=(sock, pings, stop), daemon=True)
    pinger.start()
    loop = threading.Thread(target=lambda: outcome.append(runner.run()), daemon=True)
    loop.start()
    try:
        seen = _unplug_and_replug(runner, camera, pings)
        assert loop.is_alive()
    finally:
        runner.control.stop.set()
        loop.join(20)
        stop.set()
        pinger.join(5)
        sock.close()
    gap = _max_gap(pings, seen["gone"], seen["back"])
    down = seen["back"] - seen["gone"]
    print(f"\ncamera gone {down:.1f} s: {len(pings)} watchdog pings, longest gap {gap:.2f} s")
    assert outcome == ["stopped"] and seen["early"] == 0
    assert seen["during"]["status"] == "degraded"
    assert seen["during"]["source"] in ("backoff", "connecting")
    assert runner.capture.reconnects >= 2 and camera.failed_opens >= 3
    assert "streaming again after" in caplog.text
