"""Start `facegate run` as a real process and read what it emits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class DaemonProcess:
    """`python -m facegate.cli run ARGS`, its events in a JSON-lines file and its log captured."""

    def __init__(
        self,
        home: Path,
        *args: str,
        env: dict[str, str] | None = None,
        stdout: Path | None = None,
    ) -> None:
        self.events_path = home / "events.jsonl"
        self.log_path = home / "daemon.log"
        self.stdout_path = stdout  # stdout apart from the log (stderr), e.g. for --json
        self.args = ["run", *args]
        self.env = {**os.environ, "FACEGATE_HOME": str(home), **(env or {})}
        self.proc: subprocess.Popen | None = None

    def start(self) -> DaemonProcess:
        log = self.log_path.open("ab")
        out = self.stdout_path.open("ab") if self.stdout_path else log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "facegate.cli", "-v", *self.args],
            cwd=REPO,
            env=self.env,
            stdout=out,
            stderr=log,
        )
        return self

    def events(self, path: Path | None = None) -> list[dict]:
        path = path or self.events_path
        if not path.exists():
            return []
        lines = path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for(self, predicate, timeout: float = 60.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"daemon exited ({self.proc.returncode}) waiting for {what}:"
                    f"\n{self.log()[-3000:]}"
                )
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}:\n{self.log()[-3000:]}")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> DaemonProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
