"""Writing the fleet's files safely: whole or not at all, private when they hold secrets."""

from __future__ import annotations

from pathlib import Path

from facegate.errors import FacegateError
from facegate.host.permissions import write_atomic

PRIVATE_MODE = 0o600  # a private key, or a bridge config holding a key path and credentials
PUBLIC_MODE = 0o644


def write_new(path: Path, data: bytes, mode: int, overwrite: bool = False) -> None:
    """Write ``data`` to ``path`` atomically with ``mode``; an existing file is kept unless
    ``overwrite`` (a key written over is a key lost)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FacegateError(f"{path} already exists; nothing written (--force replaces it)")
    try:
        write_atomic(path, data, mode)
    except OSError as err:
        raise FacegateError(f"cannot write {path}: {err.strerror or err}") from err
