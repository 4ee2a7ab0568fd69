"""systemd notifications (sd_notify) without dependencies: readiness, status, watchdog, stopping.

Every function is a no-op returning False when the daemon does not run under systemd
(``$NOTIFY_SOCKET`` unset), so the pipeline calls them unconditionally.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)


def _address(value: str) -> str | None:
    """The AF_UNIX address named by ``$NOTIFY_SOCKET`` ('@' is the abstract namespace)."""
    if value.startswith("@"):
        return "\0" + value[1:]
    return value if value.startswith("/") else None  # vsock: and others are not supported


def notify(state: str) -> bool:
    """Send ``state`` (e.g. "READY=1") to systemd; False when not under systemd or it fails."""
    value = os.environ.get("NOTIFY_SOCKET", "")
    address = _address(value) if value else None
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as err:
        log.debug("sd_notify to %s failed: %s", value, err)
        return False
    return True


def ready() -> bool:
    """Tell systemd start-up is complete (Type=notify)."""
    return notify("READY=1")


def status(text: str) -> bool:
    """Set the one-line status ``systemctl status`` shows."""
    return notify("STATUS=" + " ".join(text.split()))


def watchdog() -> bool:
    """Ping the watchdog; call from the pipeline loop so a hung pipeline gets restarted."""
    return notify("WATCHDOG=1")


def stopping() -> bool:
    """Tell systemd the daemon is shutting down."""
    return notify("STOPPING=1")


def reloading() -> bool:
    """Tell systemd the daemon is reloading its configuration (send ready() when done)."""
    return notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")


def watchdog_interval() -> float | None:
    """Seconds between watchdog pings: half of ``$WATCHDOG_USEC``; None when not requested."""
    pid = os.environ.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None  # meant for another process (e.g. our parent)
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2e6 if usec > 0 else None
