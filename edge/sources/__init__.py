"""Frame sources (cameras, streams, files, folders) and ``open_source``, which picks one."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from facegate.errors import CameraError
from facegate.sources.base import FrameSource, frame_to_rgb
from facegate.sources.folder import FolderSource
from facegate.sources.opencv import OpenCVSource, display_name, source_kind
from facegate.sources.picamera2 import INSTALL_HINT, Picamera2Source

__all__ = [
    "FolderSource",
    "FrameSource",
    "OpenCVSource",
    "Picamera2Source",
    "display_name",
    "frame_to_rgb",
    "is_stills",
    "open_source",
    "unavailable",
]

EXPECTED = (
    "expected a camera index (0), /dev/videoN, picamera2[:N], an rtsp://, rtsps://, http:// "
    "or https:// URL, a video file or a folder of images"
)


def open_source(spec: str) -> FrameSource:
    """Build (not yet open) the frame source that ``spec`` names; CameraError if none fits."""
    spec = spec.strip()
    if _is_picamera(spec):
        num = spec.partition(":")[2] or "0"
        if not num.isdigit():
            raise CameraError(f"{spec!r}: camera number must be a number, e.g. picamera2:1")
        return Picamera2Source(int(num))
    kind = source_kind(spec) if spec else "file"
    if kind in ("device", "stream"):
        return OpenCVSource(spec)
    path = Path(spec).expanduser()
    if spec and path.is_dir():
        return FolderSource(path)
    if spec and path.is_file():
        return OpenCVSource(str(path))
    if spec and not path.exists() and ("." in path.name or "/" in spec):
        raise CameraError(f"no such file: {display_name(spec)}")
    raise CameraError(f"unknown source {display_name(spec)!r}: {EXPECTED}")


def _is_picamera(spec: str) -> bool:
    return spec == "picamera2" or spec.startswith("picamera2:")


def unavailable(spec: str) -> str | None:
    """Why the source ``spec`` can never work on this host as it is now, else None.

    Checked once at start-up, so that systemd shows the reason: picamera2 not installed, or a
    V4L2 camera (index or /dev/videoN) whose device node does not exist. Stable udev names
    (/dev/v4l/by-id/...) may appear when the camera is plugged in, so they are not refused;
    a camera unplugged after start-up is reopened by the capture loop as before.
    """
    spec = spec.strip()
    if _is_picamera(spec):
        return None if importlib.util.find_spec("picamera2") else INSTALL_HINT
    if not sys.platform.startswith("linux") or source_kind(spec) != "device":
        return None
    path = Path(f"/dev/video{spec}" if spec.isdigit() else spec)
    if path.exists() or not path.name.startswith("video"):
        return None
    present = ", ".join(sorted(str(p) for p in Path("/dev").glob("video*"))) or "none"
    return f"no such camera: {path} does not exist (video devices here: {present})"
def is_stills(spec: str | None) -> bool:
    """Whether the source ``spec`` names gives unrelated photos (a folder), not a video."""
    if not spec:
        return False
    try:
        return open_source(spec).stills
    except CameraError:
        return False
