"""Snapshots of unknown faces: JPEG crops in the state dir, mode 0600, with retention limits.

The folder is facegate's own: a new or empty folder is marked with ``.facegate-snapshots``; a
folder holding anything facegate did not write (the owner's photos, say) is refused at start-up,
and pruning counts and deletes only regular files named the way facegate names snapshots.

A full disk must never stop recognition: a failed write is logged once, counted, and retried
with the next snapshot; the log says when writing works again.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import time
from pathlib import Path

import cv2
import numpy as np

from facegate.errors import ConfigError
from facegate.host.paths import ensure_private_dir
from facegate.types import Face

log = logging.getLogger(__name__)

SNAPSHOT_MARGIN = 0.3  # crop the box plus 30% on each side: enough context to recognise a face
MARKER = ".facegate-snapshots"  # this folder is facegate's: it deletes old snapshots here
MARKER_TEXT = "facegate writes face snapshots here and deletes old ones (snapshots.dir).\n"
SNAPSHOT_NAME = re.compile(r"\d{8}-\d{6}-.+-t\d+\.jpg")  # what save() writes, and all prune touches
SHOW_FOREIGN = 3  # names of foreign files quoted in the refusal


class SnapshotStore:
    """Writes crops and keeps the folder within file-count, age and size limits."""

    def __init__(
        self, folder: Path, max_files: int = 500, max_age_days: float = 30, max_mb: float = 200
    ) -> None:
        self.folder = claim_folder(folder)
        self.max_files, self.max_age_s = max_files, max_age_days * 86400
        self.max_bytes = int(max_mb * 1024 * 1024)
        self.failing = False
        self.errors = 0
        self.written = 0

    def save(
        self, image: np.ndarray, face: Face, camera: str, track_id: int, when: float
    ) -> str | None:
        """Write the face crop; return its path, or None if the disk refused it."""
        crop = _crop(image, face)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when))
        path = self.folder / f"{stamp}-{camera}-t{track_id}.jpg"
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(buf.tobytes() if ok else b"")
        except OSError as err:
            path.unlink(missing_ok=True)
            self.errors += 1
            if not self.failing:
                log.warning(
                    "cannot write snapshots to %s (%s); recognition goes on",
                    self.folder,
                    err.strerror or err,
                )
            self.failing = True
            return None
        if self.failing:
            log.info("snapshots are written again to %s", self.folder)
        self.failing = False
        self.written += 1
        self.prune()
        return str(path)

    def prune(self) -> int:
        """Delete the oldest snapshots beyond the limits; return how many went."""
        files = sorted(_snapshot_stats(self.folder), key=lambda f: f[1].st_mtime)
        now, total = time.time(), sum(st.st_size for _, st in files)
        removed = 0
        for path, st in files:
            too_many = len(files) - removed > self.max_files
            too_old = now - st.st_mtime > self.max_age_s
            if not (too_many or too_old or total > self.max_bytes):
                break
            total -= st.st_size
            path.unlink(missing_ok=True)
            removed += 1
        return removed


def _snapshot_stats(folder: Path) -> list[tuple[Path, os.stat_result]]:
    """(path, stat) of each of facegate's snapshots: regular files with its naming, links not
    followed; one deleted meanwhile (by a user, say) is left out."""
    found = []
    for path in folder.glob("*.jpg"):
        if not SNAPSHOT_NAME.fullmatch(path.name):
            continue
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode):
            found.append((path, st))
    return found


def claim_folder(folder: Path) -> Path:
    """Create or adopt the snapshot folder; refuse one holding files facegate did not write."""
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"snapshots.dir {folder} is not a folder")
    try:
        ensure_private_dir(folder)
        if (folder / MARKER).is_file():
            return folder
        foreign = sorted(p.name for p in folder.iterdir() if not _is_snapshot(p))
    except OSError as err:
        raise ConfigError(f"snapshots.dir {folder}: {err.strerror or err}") from err
    if foreign:
        shown = ", ".join(repr(name) for name in foreign[:SHOW_FOREIGN])
        more = f" and {len(foreign) - SHOW_FOREIGN} more" if len(foreign) > SHOW_FOREIGN else ""
        raise ConfigError(
            f"snapshots.dir {folder} holds files facegate did not write ({shown}{more}); "
            "facegate deletes old snapshots in its folder: give it a new or empty one"
        )
    _mark(folder)
    return folder


def _is_snapshot(path: Path) -> bool:
    return bool(SNAPSHOT_NAME.fullmatch(path.name)) and stat.S_ISREG(path.lstat().st_mode)


def _mark(folder: Path) -> None:
    """Write the marker; on a full disk go on (a folder of snapshots alone is adopted later)."""
    try:
        fd = os.open(folder / MARKER, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(MARKER_TEXT)
    except OSError as err:
        log.warning("cannot mark %s as facegate's snapshot folder (%s)", folder, err.strerror)
        return
    log.info("snapshot folder %s is facegate's now (%s)", folder, MARKER)


def _crop(image: np.ndarray, face: Face) -> np.ndarray:
    x1, y1, x2, y2 = face.box
    mx, my = (x2 - x1) * SNAPSHOT_MARGIN, (y2 - y1) * SNAPSHOT_MARGIN
    h, w = image.shape[:2]
    a, b = max(0, int(x1 - mx)), max(0, int(y1 - my))
    c, d = min(w, int(x2 + mx)), min(h, int(y2 + my))
    return image[b:d, a:c] if c > a and d > b else image
