"""Writing the fleet's files safely: whole or not at all, private when they hold secrets."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from facegate.errors import FacegateError

PRIVATE_MODE = 0o600  # a private key, or a bridge config holding a key path and credentials
PUBLIC_MODE = 0o644


def write_new(path: Path, data: bytes, mode: int, overwrite: bool = False) -> None:
    """Write ``data`` to ``path`` atomically with ``mode``; an existing file is kept unless
    ``overwrite`` (a key written over is a key lost)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FacegateError(f"{path} already exists; nothing written (--force replaces it)")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise FacegateError(f"cannot write {path}: {err.strerror or err}") from err
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise FacegateError(f"cannot write {path}: {err.strerror or err}") from err
