"""Where facegate keeps its state: models, gallery, snapshots (``$FACEGATE_HOME``)."""

from __future__ import annotations

import os
from pathlib import Path

STATE_DIR_MODE = 0o700


def state_dir() -> Path:
    """Return the state directory: ``$FACEGATE_HOME`` or the XDG data dir, created 0700."""
    env = os.environ.get("FACEGATE_HOME")
    if env:
        path = Path(env).expanduser()
    else:
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        path = Path(base) / "facegate"
    ensure_private_dir(path)
    return path


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) with mode 0700 from the start."""
    old = os.umask(0o077)
    try:
        path.mkdir(parents=True, exist_ok=True)
    finally:
        os.umask(old)
    return path


def models_dir() -> Path:
    """Return the folder holding built model bundles."""
    return ensure_private_dir(state_dir() / "models")


def cache_dir() -> Path:
    """Return the download/build cache (``$FACEGATE_CACHE`` or ``$XDG_CACHE_HOME/facegate``)."""
    env = os.environ.get("FACEGATE_CACHE")
    if env:
        return ensure_private_dir(Path(env).expanduser())
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return ensure_private_dir(Path(base) / "facegate")
