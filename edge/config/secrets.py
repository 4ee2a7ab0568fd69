"""Secrets named by the config: a file only the facegate user can read, or a systemd credential."""

from __future__ import annotations

import os
from pathlib import Path

from facegate.errors import ConfigError


def read_secret(path: str | None, credential: str) -> str | None:
    """The secret in ``path``, else systemd's credential ``credential``, else None."""
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    candidates = [Path(path).expanduser()] if path else []
    if creds:
        candidates.append(Path(creds) / credential)
    for candidate in candidates:
        try:
            return candidate.read_text(encoding="utf-8").strip()
        except OSError as err:
            if path and candidate == Path(path).expanduser():
                raise ConfigError(f"cannot read {path}: {err.strerror or err}") from err
    return None
