"""A Mosquitto bridge snippet: the device's (or site's) broker forwards to the central broker.

Events and states go out (``<prefix>/#``), gallery updates come in (the ``[fleet]`` topic). The
bridge keeps its session at the central broker (``cleansession false``) and queues QoS 1
messages while the link is down, so nothing is lost to an outage the queue can hold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from facegate.errors import ConfigError

QOS = 1  # at least once across the bridge, like the sink's own publishes
# QoS 1 messages the broker holds per client while it is away, the bridge included. Mosquitto's
# default is 1000 (mosquitto.conf(5)); a site bridge carries every device's events and states, a
# few a minute each, so 1000 lasts hours of a central outage; 10 000 (~10 MB at the ~1 kB an event
# takes) lasts days. The option is global: it applies to every client of this broker.
BRIDGE_QUEUE = 10_000
KEEPALIVE_S = 60
_NAME = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class BridgeSettings:
    """Where the bridge connects and what it carries."""

    central: str  # HOST:PORT
    instance: str
    prefix: str = "facegate"
    fleet_topic: str = "facegate/fleet/gallery"
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    username: str | None = None
    password_file: str | None = None

    def holds_credentials(self) -> bool:
        """Whether the snippet names a private key or a password (so it is written 0600)."""
        return bool(self.key or self.password_file)


def split_host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``[v6]:PORT``) as (host, port); ConfigError when it is not one."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError(f"--central {text!r}: expected HOST:PORT, e.g. central.example:8883")
    if any(c.isspace() for c in host):
        raise ConfigError(f"--central {text!r}: the host has spaces")
    return host, int(port)


def render(settings: BridgeSettings) -> str:
    """The mosquitto.conf lines of the bridge (for /etc/mosquitto/conf.d/)."""
    host, port = split_host_port(settings.central)
    if not _NAME.fullmatch(settings.instance):
        raise ConfigError(f"--instance {settings.instance!r}: use letters, digits, '_' or '-'")
    if bool(settings.cert) != bool(settings.key):
        raise ConfigError("--cert and --key go together (the client certificate and its key)")
    lines = [
        f"# facegate bridge: {settings.instance} -> {host}:{port}",
        "# written by `facegate fleet bridge-config`; include it from mosquitto.conf",
        "# global: QoS 1 messages held per client (this bridge too) while it is away",
        f"max_queued_messages {BRIDGE_QUEUE}",
        f"connection facegate-{settings.instance}",
        f"address {host}:{port}",
        f"remote_clientid facegate-bridge-{settings.instance}",
        "cleansession false",
        f"keepalive_interval {KEEPALIVE_S}",
        "restart_timeout 2 30",
        "try_private true",
        "notifications true",
        f"notification_topic {settings.prefix}/{settings.instance}/bridge",
        "# events, presence, availability and gallery versions go to the central broker",
        f"topic {settings.prefix}/# out {QOS}",
        "# Home Assistant discovery, so a central Home Assistant sees every device",
        f"topic homeassistant/# out {QOS}",
        "# signed gallery updates come from it (retained: a device that was away catches up)",
        f"topic {settings.fleet_topic} in {QOS}",
        f"topic {settings.fleet_topic}/part/+ in {QOS}",
    ]
    return "\n".join(lines + _security(settings)) + "\n"


def _security(settings: BridgeSettings) -> list[str]:
    lines = []
    if settings.ca:
        lines += [f"bridge_cafile {settings.ca}", "bridge_insecure false"]
    if settings.cert and settings.key:
        lines += [f"bridge_certfile {settings.cert}", f"bridge_keyfile {settings.key}"]
    if settings.username:
        lines.append(f"remote_username {settings.username}")
    if settings.password_file:
        lines.append(f"remote_password {_password(settings.password_file)}")
    return lines


def _password(path: str) -> str:
    from facegate.config.secrets import read_secret

    secret = read_secret(path, "bridge-password")
    if not secret or any(c.isspace() for c in secret):
        raise ConfigError(f"{path}: the bridge password is empty or has spaces")
    return secret
