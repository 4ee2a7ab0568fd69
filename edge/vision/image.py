"""Decode photos safely: EXIF orientation, 16-bit, alpha, palette and grayscale to 8-bit RGB.

Refuses what should be refused with one-line :class:`ImageError` messages: missing or empty
files, data that is not an image, truncated JPEGs, and decompression bombs (the size is read
from the header before any pixels are decoded).
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import cv2
import numpy as np

from facegate.errors import ImageError

log = logging.getLogger(__name__)

MAX_PIXELS = 120_000_000  # a 108 MP phone photo decodes; a 1-gigapixel "bomb" is refused
MAX_BYTES = 200 * 1024 * 1024
REDUCE_ABOVE_PIXELS = 40_000_000  # decode huge JPEGs at 1/2..1/8 scale: faces stay large enough
REDUCED_TARGET_PIXELS = 12_000_000
_REDUCED = (
    (2, cv2.IMREAD_REDUCED_COLOR_2),
    (4, cv2.IMREAD_REDUCED_COLOR_4),
    (8, cv2.IMREAD_REDUCED_COLOR_8),
)


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header, or None for other formats."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    return None


def _read_bytes(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ImageError(f"{path}: {size / 1e6:.0f} MB is larger than {MAX_BYTES // 2**20} MiB")
        data = path.read_bytes()
    except FileNotFoundError as err:
        raise ImageError(f"{path}: no such file") from err
    except IsADirectoryError as err:
        raise ImageError(f"{path}: is a directory, not an image") from err
    except OSError as err:
        raise ImageError(f"{path}: cannot read ({err.strerror or err})") from err
    if not data:
        raise ImageError(f"{path}: empty file")
    return data


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Decode encoded bytes to an HxWx3 uint8 RGB array, upright per EXIF."""
    dims = header_size(data)
    flag = cv2.IMREAD_COLOR
    if dims is not None:
        width, height = dims
        if width == 0 or height == 0 or width * height > MAX_PIXELS:
            raise ImageError(
                f"{name}: {width}x{height} pixels is over the "
                f"{MAX_PIXELS // 1_000_000} MP limit (possible decompression bomb)"
            )
        if data[:2] == b"\xff\xd8":
            if b"\xff\xd9" not in data[-4096:]:
                raise ImageError(f"{name}: truncated JPEG (no end-of-image marker)")
            if width * height > REDUCE_ABOVE_PIXELS:
                flag = next(
                    (f for r, f in _REDUCED if width * height / r**2 <= REDUCED_TARGET_PIXELS),
                    _REDUCED[-1][1],
                )
    buf = np.frombuffer(data, np.uint8)
    try:
        bgr = cv2.imdecode(buf, flag)
    except cv2.error as err:
        raise ImageError(f"{name}: cannot decode ({str(err).strip().splitlines()[-1]})") from err
    if bgr is None or bgr.size == 0:
        raise ImageError(f"{name}: not an image, or an unsupported/corrupt format")
    if bgr.dtype != np.uint8:
        bgr = (bgr / 257).astype(np.uint8) if bgr.dtype == np.uint16 else bgr.astype(np.uint8)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def load_image(path: Path | str) -> np.ndarray:
    """Read and decode ``path`` to HxWx3 uint8 RGB; raise :class:`ImageError` on bad input."""
    path = Path(path)
    return decode_image(_read_bytes(path), str(path))


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
