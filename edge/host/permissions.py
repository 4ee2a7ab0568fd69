"""Start-up check that the biometric state is private: it warns, and never changes a mode itself.

The gallery and the snapshots are faces. Folders should be 0700 and files 0600, owned by the user
facegate runs as; a looser mode (any group or other bit) or a foreign owner gets one WARNING line
per path and per process, with the command that fixes it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import stat
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
LOOSE_BITS = 0o077  # any permission for the group or for other users
GALLERY_SUFFIXES = ("", "-wal", "-shm")  # SQLite's write-ahead log and shared memory hold rows too
SNAPSHOT_SUFFIX = ".jpg"
# A snapshot folder can hold hundreds of files: past this many warnings, one summary line.
MAX_WARNINGS = 5

_warned: set[str] = set()
_warned_lock = threading.Lock()


def gallery_files(gallery: Path) -> list[Path]:
    """The gallery file and its SQLite companions (-wal, -shm)."""
    return [gallery.with_name(gallery.name + suffix) for suffix in GALLERY_SUFFIXES]


def snapshot_files(folder: Path) -> list[Path]:
    """The snapshot folder and every snapshot in it (just the folder when it cannot be listed)."""
    try:
        files = sorted(p for p in folder.iterdir() if p.suffix == SNAPSHOT_SUFFIX)
    except OSError:
        return [folder]
    return [folder, *files]


def private_paths(
    gallery: Path, snapshots: Path | None = None, state: Path | None = None
) -> list[Path]:
    """Every path that holds biometric data: state dir, gallery files, snapshot folder and files."""
    paths = [state] if state is not None else []
    paths += gallery_files(Path(gallery))
    if snapshots is not None:
        paths += snapshot_files(Path(snapshots))
    return paths


def check_private(paths: Iterable[Path]) -> list[str]:
    """Warnings for paths looser than 0700 (folders) / 0600 (files) or owned by another user."""
    warnings: list[str] = []
    for path in dict.fromkeys(Path(p) for p in paths):
        warnings.extend(_problems(path))
    if len(warnings) > MAX_WARNINGS:
        extra = len(warnings) - MAX_WARNINGS
        warnings = [
            *warnings[:MAX_WARNINGS],
            f"{extra} more file(s) or folder(s) are not private either: chmod 600 the files,"
            " chmod 700 the folders",
        ]
    return warnings


def warn_private(paths: Iterable[Path]) -> list[str]:
    """Log each warning of :func:`check_private` once per process; return the ones logged now."""
    fresh = []
    for warning in check_private(paths):
        with _warned_lock:
            if warning in _warned:
                continue
            _warned.add(warning)
        log.warning("%s", warning)
        fresh.append(warning)
    return fresh


def _problems(path: Path) -> list[str]:
    try:
        info = path.stat()
    except FileNotFoundError:
        return []
    except OSError as err:
        return [f"cannot check the permissions of {path}: {err.strerror or err}"]
    folder = stat.S_ISDIR(info.st_mode)
    mode = stat.S_IMODE(info.st_mode)
    want = PRIVATE_DIR_MODE if folder else PRIVATE_FILE_MODE
    problems = []
    if mode & LOOSE_BITS:
        problems.append(f"{path} is mode {mode:04o}, should be {want:04o}: chmod {want:o} {path}")
    me = os.geteuid()
    if info.st_uid != me:
        problems.append(
            f"{path} is owned by {_user(info.st_uid)}, not by {_user(me)} that runs facegate:"
            f" chown {_user_name(me)} {path}"
        )
    return problems


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _user(uid: int) -> str:
    name = _user_name(uid)
    return f"uid {uid}" if name == str(uid) else f"{name} (uid {uid})"


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` as a 0600 file; an existing file is truncated and tightened."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), PRIVATE_FILE_MODE)
        fh.write(data)


def write_atomic(path: Path, data: bytes, mode: int = PRIVATE_FILE_MODE) -> None:
    """Write ``data`` to ``path`` whole or not at all, with ``mode`` from the first byte.

    A temporary file beside ``path`` is written, synced and renamed over it, and the directory
    is synced, so a crash or a full disk leaves the old file or the new one, never half of one.
    OSError propagates; the temporary file is removed.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
