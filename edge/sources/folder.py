"""A folder of images as a finite frame source, in natural sorted order (img2 before img10)."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import numpy as np

from facegate.errors import CameraError, ImageError
from facegate.sources.base import FrameSource, frame_to_rgb
from facegate.types import Frame
from facegate.vision.image import load_image

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


def natural_key(path: Path) -> tuple[object, ...]:
    """Sort key that orders embedded numbers by value: frame2.jpg before frame10.jpg."""
    parts = re.split(r"(\d+)", path.name.lower())
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


def _load(path: Path) -> np.ndarray | None:
    """The image at ``path`` as an RGB frame, or None (logged) when it is none or too small."""
    try:
        image = load_image(path)
    except ImageError as err:
        log.warning("skipping %s", err)
        return None
    try:
        return frame_to_rgb(image)
    except ImageError as err:
        log.warning("skipping %s: %s", path, err)
        return None


class FolderSource(FrameSource):
    """Every image file directly inside ``path``; unreadable files are logged and skipped."""

    finite = True
    stills = True  # every image is its own scene: nothing carries over from one to the next

    def __init__(self, path: Path | str, fps: float | None = None, name: str | None = None) -> None:
        self.path = Path(path)
        self.fps = fps  # when set, frames are stamped 1/fps apart (as if filmed at that rate)
        self.name = name or str(self.path)
        self._files: list[Path] | None = None
        self._next = 0
        self._index = 0
        self._t0 = 0.0

    def open(self) -> None:
        """List the images (raises CameraError for a missing or image-less folder)."""
        if not self.path.is_dir():
            raise CameraError(f"{self.name}: not a folder")
        try:
            files = [p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
        except OSError as err:
            raise CameraError(f"{self.name}: cannot list ({err.strerror or err})") from err
        files = sorted((p for p in files if p.is_file()), key=natural_key)
        if not files:
            suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
            raise CameraError(f"{self.name}: no images ({suffixes}) in this folder")
        self._files, self._next, self._index, self._t0 = files, 0, 0, time.time()
        log.info("%s: %d images", self.name, len(files))

    def read(self) -> Frame | None:
        """The next decodable image as a frame, or None after the last one."""
        if self._files is None:
            raise CameraError(f"{self.name}: read before open")
        while self._next < len(self._files):
            path = self._files[self._next]
            self._next += 1
            image = _load(path)
            if image is None:
                continue
            stamp = self._t0 + self._index / self.fps if self.fps else time.time()
            frame = Frame(image, stamp, self._index, self.name)
            self._index += 1
            return frame
        return None

    def close(self) -> None:
        """Forget the file list; safe to call twice."""
        self._files = None
