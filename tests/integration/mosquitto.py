"""A private mosquitto broker for tests: own config, own port, started and stopped at will."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


def mosquitto_binary() -> str | None:
    """Path of the mosquitto executable (Debian puts it in /usr/sbin), or None."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class Mosquitto:
    """``with Mosquitto() as broker:`` a broker on 127.0.0.1:broker.port; restartable in place.

    ``users`` switches to a password file (made with mosquitto_passwd) and no anonymous access.
    ``persistence`` keeps sessions and retained messages across ``stop()``/``start()``.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        port: int | None = None,
        users: Mapping[str, str] | None = None,
        persistence: bool = False,
    ) -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise FileNotFoundError("mosquitto is not installed (apt-get install mosquitto)")
        self.binary = binary
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="facegate-mosquitto-"))
        self.log_path = self.dir / "mosquitto.log"
        self.conf_path = self.dir / "mosquitto.conf"
        self.conf_path.write_text(self._config(users, persistence))
        self._proc: subprocess.Popen[bytes] | None = None

    def _config(self, users: Mapping[str, str] | None, persistence: bool) -> str:
        lines = [
            f"listener {self.port} {self.host}",
            f"allow_anonymous {'false' if users else 'true'}",
            f"persistence {'true' if persistence else 'false'}",
            f"persistence_location {self.dir}/",
            f"log_dest file {self.log_path}",
            "log_type all",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # else mosquitto drops to a user that cannot read self.dir
        if users:
            lines.append(f"password_file {self._password_file(users)}")
        return "\n".join(lines) + "\n"

    def _password_file(self, users: Mapping[str, str]) -> Path:
        path = self.dir / "passwords"
        for i, (user, password) in enumerate(users.items()):
            create = ["-c"] if i == 0 else []
            cmd = ["mosquitto_passwd", *create, "-b", str(path), user, password]
            subprocess.run(cmd, check=True, capture_output=True, timeout=30)
        path.chmod(0o600)
        return path

    @property
    def running(self) -> bool:
        """True while the broker process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Mosquitto:
        """Start (or restart) the broker on the same port; return once it accepts connections."""
        if self.running:
            return self
        cmd = [self.binary, "-c", str(self.conf_path)]
        with (self.dir / "stderr.log").open("ab") as out:  # the child keeps its own copy
            self._proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not port_open(self.port, self.host):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"mosquitto did not start on port {self.port}:\n{self.log()}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """SIGTERM: a clean shutdown (clients are disconnected, persistence is saved)."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def kill(self) -> None:
        """SIGKILL: the broker vanishes without a word to its clients."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait()

    def log(self) -> str:
        """The broker's log so far (for assertion messages)."""
        paths = (self.dir / "stderr.log", self.log_path)
        return "".join(p.read_text(errors="replace") for p in paths if p.exists())

    def close(self) -> None:
        """Stop the broker and remove its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
