"""This device's name among many: the instance in MQTT topics, Home Assistant ids and bridges."""

from __future__ import annotations

import re
import socket
from pathlib import Path

# Config files that name no instance: the single-unit default (deploy/facegate.service) and the
# name people give it by hand; any other NAME.toml (facegate@NAME) adds NAME to the instance.
PLAIN_CONFIG_NAMES = ("config", "facegate")


def default_instance(config_path: str | Path | None = None) -> str:
    """The host name as a slug, plus ``-NAME`` when the config file is ``NAME.toml``."""
    instance = _instance_slug(socket.gethostname()) or "facegate"
    stem = _instance_slug(Path(config_path).stem) if config_path else ""
    return f"{instance}-{stem}" if stem and stem not in PLAIN_CONFIG_NAMES else instance


def _instance_slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "_", text.lower()).strip("_-")
