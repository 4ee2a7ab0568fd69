"""The CLI writing the gallery while the daemon reads it: no "database is locked", no errors.

A live RTSP camera keeps the daemon busy while ``facegate gallery enroll / rename / remove`` run
20 times each against the same SQLite file; the daemon polls it every 0.2 s and reloads it on
each change.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

from tests.conftest import run_cli
from tests.integration.daemon_helpers import DaemonProcess
from tests.integration.mosquitto import free_port
from tests.integration.rtsp_server import RtspServer
from tests.integration.test_daemon import HAMILTON, _config, _get

ROUNDS = 20
MIN_RELOADS = 5  # "gallery loaded" lines expected in the daemon log, at the very least
FAST_RELOAD = """
[gallery]
reload_interval = 0.2
"""
PROBLEM = re.compile(r"^(ERROR|CRITICAL) |Traceback|database is locked", re.MULTILINE)


def _gallery(state: Path, *args: str) -> str | None:
    """Run ``facegate gallery ARGS``; None when it worked, else what went wrong."""
    proc = run_cli("gallery", *args, env={"FACEGATE_HOME": str(state)}, timeout=120)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0 or "locked" in output:
        return f"gallery {' '.join(args[:2])}: exit {proc.returncode}: {output.strip()[-300:]}"
    return None


def _churn(state: Path, photo: Path, rounds: int) -> tuple[list[str], float]:
    """enroll, rename, remove ``rounds`` times; (failures, seconds)."""
    failures, start = [], time.monotonic()
    for i in range(rounds):
        for args in (
            ("enroll", f"visitor{i}", str(photo)),
            ("rename", f"visitor{i}", f"guest{i}"),
            ("remove", f"guest{i}", "--yes"),
        ):
            problem = _gallery(state, *args)
            if problem:
                failures.append(problem)
    return failures, time.monotonic() - start


def test_cli_writes_while_the_daemon_reads(state: Path, faces_dir: Path) -> None:
    photo = faces_dir / "face_recognition" / "obama" / "obama_small.jpg"
    port = free_port()
    with RtspServer(HAMILTON) as server:
        config = _config(state, server.url, port, FAST_RELOAD)
        with DaemonProcess(state, "--config", str(config)) as daemon:
            daemon.wait_for(
                lambda: _get(f"http://127.0.0.1:{port}/health")[0] == 200, 90, "healthy"
            )
            failures, took = _churn(state, photo, ROUNDS)
            daemon.wait_for(
                lambda: daemon.log().count("gallery loaded: 0 people") >= 2, 10, "the last reload"
            )
            assert daemon.proc.poll() is None, "the daemon exited while the CLI wrote"
            daemon.signal(signal.SIGTERM)
            assert daemon.wait(30) == 0
    log = daemon.log()
    reloads = log.count("gallery loaded")
    print(f"\n{3 * ROUNDS} CLI writes in {took:.1f} s; the daemon reloaded the gallery {reloads}x")
    assert failures == []
    assert reloads >= MIN_RELOADS
    assert not PROBLEM.search(log), PROBLEM.search(log)
