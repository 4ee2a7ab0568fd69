"""Decode photos safely: EXIF orientation, 16-bit, alpha, palette and grayscale to 8-bit RGB.

Accepts JPEG, PNG, WebP, BMP and TIFF, recognised by their content (not their file name), and
refuses everything else before decoding: OpenCV would otherwise decode any format it knows
(PBM, Sun raster, HDR, ...) with no size check. The size of every accepted format is read from
its header before any pixel is decoded, so a decompression bomb (a few KB on disk, gigabytes
in memory) is refused. Other refusals, each a one-line :class:`ImageError`: missing or empty
files, data that is not an image, truncated JPEGs, and pictures too narrow to show a face.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from facegate.errors import ImageError
from facegate.text import display_path
from facegate.vision.image_headers import ACCEPTED, jpeg_end, sniff

log = logging.getLogger(__name__)

MAX_PIXELS = 120_000_000  # a 108 MP phone photo decodes; a 1-gigapixel "bomb" is refused
MAX_BYTES = 200 * 1024 * 1024
REDUCE_ABOVE_PIXELS = 40_000_000  # decode huge JPEGs at 1/2..1/8 scale: faces stay large enough
REDUCED_TARGET_PIXELS = 12_000_000
# Detection runs on a copy whose long side is at most 1920 px (recognizer.MAX_DETECT_SIDE), and
# MTCNN's smallest window is 12 px: a picture more than 1920 / 12 = 160 times longer than wide
# cannot show a face it finds. Beyond about 3840:1 the copy's short side rounds to 0 px.
MAX_ASPECT = 160
_REDUCED = (
    (2, cv2.IMREAD_REDUCED_COLOR_2),
    (4, cv2.IMREAD_REDUCED_COLOR_4),
    (8, cv2.IMREAD_REDUCED_COLOR_8),
)


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header of an accepted format, or None."""
    return sniff(data)[1]


def _read_bytes(path: Path) -> bytes:
    name = display_path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ImageError(f"{name}: {size / 1e6:.0f} MB is larger than {MAX_BYTES // 2**20} MiB")
        data = path.read_bytes()
    except FileNotFoundError as err:
        raise ImageError(f"{name}: no such file") from err
    except IsADirectoryError as err:
        raise ImageError(f"{name}: is a directory, not an image") from err
    except OSError as err:
        raise ImageError(f"{name}: cannot read ({err.strerror or err})") from err
    if not data:
        raise ImageError(f"{name}: empty file")
    return data


def check_size(width: int, height: int, name: str) -> None:
    """Refuse a picture with no pixels, over :data:`MAX_PIXELS`, or too narrow for a face."""
    if width <= 0 or height <= 0 or width * height > MAX_PIXELS:
        raise ImageError(
            f"{name}: {width}x{height} pixels is over the "
            f"{MAX_PIXELS // 1_000_000} MP limit (possible decompression bomb)"
        )
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise ImageError(
            f"{name}: {width}x{height} pixels is too narrow to show a face "
            f"(more than {MAX_ASPECT}:1)"
        )


def _jpeg_flag(width: int, height: int) -> int:
    if width * height <= REDUCE_ABOVE_PIXELS:
        return cv2.IMREAD_COLOR
    return next(
        (f for r, f in _REDUCED if width * height / r**2 <= REDUCED_TARGET_PIXELS),
        _REDUCED[-1][1],
    )


def _checked(data: bytes, name: str) -> tuple[memoryview, int]:
    """The bytes to decode and the OpenCV flag, after the format and size checks."""
    kind, size = sniff(data)
    if kind is None:
        raise ImageError(f"{name}: not an image, or not a format facegate reads ({ACCEPTED})")
    if size is None:
        raise ImageError(f"{name}: damaged {kind} header (no picture size)")
    width, height = size
    check_size(width, height, name)
    if kind != "JPEG":
        return memoryview(data), cv2.IMREAD_COLOR
    end = jpeg_end(data)  # a motion photo appends its video after the JPEG: decode the JPEG
    if end is None:
        raise ImageError(f"{name}: truncated JPEG (no end-of-image marker)")
    return memoryview(data)[:end], _jpeg_flag(width, height)


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Decode encoded bytes to an HxWx3 uint8 RGB array, upright per EXIF."""
    encoded, flag = _checked(data, name)
    try:
        bgr = cv2.imdecode(np.frombuffer(encoded, np.uint8), flag)
    except cv2.error as err:
        raise ImageError(f"{name}: cannot decode ({str(err).strip().splitlines()[-1]})") from err
    if bgr is None or bgr.size == 0:
        raise ImageError(f"{name}: not an image, or an unsupported/corrupt format")
    check_size(bgr.shape[1], bgr.shape[0], name)
    if bgr.dtype != np.uint8:
        bgr = (bgr / 257).astype(np.uint8) if bgr.dtype == np.uint16 else bgr.astype(np.uint8)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def load_image(path: Path | str) -> np.ndarray:
    """Read and decode ``path`` to HxWx3 uint8 RGB; raise :class:`ImageError` on bad input."""
    path = Path(path)
    return decode_image(_read_bytes(path), display_path(path))


def to_rgb(frame: np.ndarray) -> np.ndarray:
    """Coerce a frame of any common dtype/channel count to HxWx3 uint8 RGB (frames are RGB)."""
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] not in (1, 3, 4)):
        raise ImageError(f"frame of shape {frame.shape} is not an image")
    if frame.dtype == np.uint16:
        frame = (frame / 257).astype(np.uint8)
    elif frame.dtype != np.uint8:
        frame = np.clip(np.nan_to_num(frame.astype(np.float32)), 0, 255).astype(np.uint8)
    if frame.ndim == 2 or frame.shape[2] == 1:
        frame = cv2.cvtColor(frame.reshape(frame.shape[:2]), cv2.COLOR_GRAY2RGB)
    elif frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_RGBA2RGB)
    return np.ascontiguousarray(frame)


def video_frames(path: Path | str, every: int = 1) -> Iterator[np.ndarray]:
    """RGB images of every ``every``-th frame of a video file, until it ends or stops decoding."""
    cap = cv2.VideoCapture(str(path))
    index = 0
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            if index % every == 0:
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            index += 1
    finally:
        cap.release()
