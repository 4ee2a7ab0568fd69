"""Frame sources (cameras, streams, files, folders) and ``open_source``, which picks one."""

from __future__ import annotations

from pathlib import Path

from facegate.errors import CameraError
from facegate.sources.base import FrameSource, frame_to_rgb
from facegate.sources.folder import FolderSource
from facegate.sources.opencv import OpenCVSource, display_name, source_kind
from facegate.sources.picamera2 import Picamera2Source

__all__ = [
    "FolderSource",
    "FrameSource",
    "OpenCVSource",
    "Picamera2Source",
    "display_name",
    "frame_to_rgb",
    "is_stills",
    "open_source",
]

EXPECTED = (
    "expected a camera index (0), /dev/videoN, picamera2[:N], an rtsp://, rtsps://, http:// "
    "or https:// URL, a video file or a folder of images"
)


def open_source(spec: str) -> FrameSource:
    """Build (not yet open) the frame source that ``spec`` names; CameraError if none fits."""
    spec = spec.strip()
    if spec == "picamera2" or spec.startswith("picamera2:"):
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
    raise CameraError(f"unknown source {display_name(spec)!r}: {EXPECTED}")


def is_stills(spec: str | None) -> bool:
    """Whether the source ``spec`` names gives unrelated photos (a folder), not a video."""
    if not spec:
        return False
    try:
        return open_source(spec).stills
    except CameraError:
        return False
