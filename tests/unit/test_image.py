"""Photo decoding: odd but valid images decode upright to RGB; bad ones give one-line errors."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from facegate.errors import ImageError
from facegate.vision.image import decode_image, header_size, load_image, to_rgb


def _jpeg(img_rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img_rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


def _with_orientation(jpeg: bytes, orientation: int) -> bytes:
    """Insert an EXIF APP1 segment with the given orientation tag after SOI."""
    ifd = struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)
    tiff = b"MM\x00*" + struct.pack(">I", 8) + ifd + struct.pack(">I", 0)
    payload = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def _marker_image() -> np.ndarray:
    """A 40x80 image, red in its top-left quarter, so rotations are visible."""
    img = np.zeros((40, 80, 3), np.uint8)
    img[:20, :40] = (255, 0, 0)
    return img


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    path.write_bytes(_with_orientation(_jpeg(_marker_image()), 6))  # rotate 90° clockwise
    img = load_image(path)
    assert img.shape == (80, 40, 3)
    assert img[:20, 20:, 0].mean() > 200 and img[:20, 20:, 2].mean() < 60  # red moved top-right


def test_sixteen_bit_png_becomes_eight_bit(tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), np.full((10, 12, 3), 65535, np.uint16))
    img = load_image(path)
    assert img.dtype == np.uint8 and img.shape == (10, 12, 3) and img.min() == 255


@pytest.mark.parametrize("mode", ["RGBA", "P", "L", "CMYK", "I;16"])
def test_other_pixel_modes_decode_to_rgb(tmp_path: Path, mode: str) -> None:
    ext = "jpg" if mode == "CMYK" else "png"
    path = tmp_path / f"img.{ext}"
    Image.new("RGB", (16, 8), (10, 200, 30)).convert(mode).save(path)
    img = load_image(path)
    assert img.shape == (8, 16, 3) and img.dtype == np.uint8


def test_rgb_order_is_rgb(tmp_path: Path) -> None:
    path = tmp_path / "red.png"
    Image.new("RGB", (4, 4), (255, 0, 0)).save(path)
    assert tuple(load_image(path)[0, 0]) == (255, 0, 0)


def test_zero_byte_file(tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageError, match="empty file"):
        load_image(tmp_path / "empty.jpg")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="directory"):
        load_image(tmp_path)


def test_truncated_jpeg(tmp_path: Path) -> None:
    data = _jpeg(np.random.default_rng(0).integers(0, 255, (200, 200, 3), np.uint8))
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated"):
        load_image(tmp_path / "cut.jpg")


def test_text_file_is_not_an_image(tmp_path: Path) -> None:
    (tmp_path / "notes.jpg").write_text("hello, I am not a photo\n")
    with pytest.raises(ImageError, match="not an image"):
        load_image(tmp_path / "notes.jpg")


def _png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
    )


def test_decompression_bomb_is_refused_before_decoding() -> None:
    with pytest.raises(ImageError, match="decompression bomb"):
        decode_image(_png_header(100_000, 100_000) + b"\0" * 100, "bomb.png")


def test_header_size_reads_jpeg_and_png() -> None:
    assert header_size(_png_header(640, 480)) == (640, 480)
    assert header_size(_jpeg(np.zeros((30, 50, 3), np.uint8))) == (50, 30)


def test_to_rgb_coerces_frames() -> None:
    assert to_rgb(np.zeros((4, 5), np.uint8)).shape == (4, 5, 3)
    assert to_rgb(np.zeros((4, 5, 4), np.uint8)).shape == (4, 5, 3)
    assert to_rgb(np.full((4, 5, 3), 65535, np.uint16)).max() == 255
    with pytest.raises(ImageError):
        to_rgb(np.zeros((4, 5, 7), np.uint8))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_never_crash_the_decoder(data: bytes) -> None:
    try:
        img = decode_image(data, "fuzz")
    except ImageError:
        return
    assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8
