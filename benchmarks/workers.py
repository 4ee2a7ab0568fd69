"""A JSON-lines subprocess worker running a script of benchmarks/ with another venv's python."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import TracebackType

HERE = Path(__file__).resolve().parent


class WorkerError(RuntimeError):
    """The worker died or answered with an error."""


class Worker:
    """Start ``python script`` and exchange one JSON line per request; a context manager."""

    def __init__(self, python: Path, script: str, log: Path) -> None:
        self._log = log.open("a")
        self.proc = subprocess.Popen(
            [str(python), str(HERE / script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            bufsize=1,
        )

    def request(self, op: str, **fields: object) -> dict:
        """Send one request, return the reply (raise WorkerError if it failed)."""
        if self.proc.stdin is None or self.proc.stdout is None:
            raise WorkerError("worker has no pipes")
        self.proc.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise WorkerError(f"worker exited ({self.proc.poll()}); see {self._log.name}")
        reply = json.loads(line)
        if not reply.pop("ok", False):
            raise WorkerError(reply.get("error", "unknown error"))
        return reply

    def close(self) -> None:
        """Ask the worker to quit and wait for it."""
        if self.proc.poll() is None and self.proc.stdin is not None:
            try:
                self.proc.stdin.write('{"op": "quit"}\n')
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
        self._log.close()

    def __enter__(self) -> Worker:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
