"""Hostile and odd photos: bombs in every accepted format, other formats, thin pictures,
motion photos, file names that are not UTF-8. Every refusal is one line and costs no memory."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from facegate.errors import ImageError
from facegate.vision.image import MAX_ASPECT, decode_image, display_path, header_size, load_image

# A child process that only imports and calls load_image peaks at ~60-90 MB here; decoding any
# of the bombs below would need 430 MB (12000x12000 RGB) to 1.2 GB (20000x20000 RGB).
MAX_RSS_MB = 250


def tiff_g4(side: int, order: str = "<", rows_per_strip: int = 1000) -> bytes:
    """A valid white ``side`` x ``side`` bilevel TIFF, CCITT group 4: about 1 bit per row."""
    strips = -(-side // rows_per_strip)
    strip = b"\xff" * (rows_per_strip // 8 + 1) + b"\x00\x10\x01"  # V0 per row, then EOFB
    entries = [(256, 4, 1, side), (257, 4, 1, side), (258, 3, 1, 1), (259, 3, 1, 4),
               (262, 3, 1, 0), (273, 4, strips, 0), (277, 3, 1, 1),
               (278, 4, 1, rows_per_strip), (279, 4, strips, 0)]  # fmt: skip
    arrays = 8 + 2 + 12 * len(entries) + 4
    first = arrays + 8 * strips
    values = {273: arrays, 279: arrays + 4 * strips}
    out = (b"II*\x00" if order == "<" else b"MM\x00*") + struct.pack(order + "IH", 8, len(entries))
    for tag, kind, count, value in entries:
        value = values.get(tag, value)
        packed = (
            struct.pack(order + "HH", value, 0) if kind == 3 else struct.pack(order + "I", value)
        )
        out += struct.pack(order + "HHI", tag, kind, count) + packed
    offsets = struct.pack(f"{order}{strips}I", *(first + k * len(strip) for k in range(strips)))
    counts = struct.pack(f"{order}{strips}I", *[len(strip)] * strips)
    return out + b"\0\0\0\0" + offsets + counts + strip * strips


def bmp_rle8(side: int) -> bytes:
    """A valid black ``side`` x ``side`` 8-bit RLE BMP whose pixel data is one end marker."""
    palette, pixels = b"\0" * 1024, b"\x00\x01"
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, side, side, 1, 8, 1, len(pixels), 2835, 2835, 256, 0)
    return (
        b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info + palette + pixels
    )


def png_zeros(side: int) -> bytes:
    """A valid black ``side`` x ``side`` greyscale PNG, compressed row by row."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    z, row = zlib.compressobj(9), b"\0" * (side + 1)
    parts = [z.compress(row) for _ in range(side)] + [z.flush()]
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", b"".join(parts))
        + chunk(b"IEND", b"")
    )


def pbm(side: int) -> bytes:
    """A valid white ``side`` x ``side`` binary PBM."""
    return f"P4\n{side} {side}\n".encode() + b"\0" * (side * -(-side // 8))


HOSTILE = {
    "group4.tif": lambda: tiff_g4(20_000),
    "rle8.bmp": lambda: bmp_rle8(20_000),
    "zeros.png": lambda: png_zeros(12_000),
    "white.pbm": lambda: pbm(12_000),
}
_CHILD = """
import json, sys
from facegate.errors import ImageError
from facegate.vision.image import load_image
try:
    shape, error = list(load_image(sys.argv[1]).shape), None
except ImageError as err:
    shape, error = None, str(err)
# VmHWM is this process's own peak: ru_maxrss would carry over the parent's peak across exec.
status = open("/proc/self/status").read()
rss = int(status.split("VmHWM:")[1].split()[0]) / 1024
print(json.dumps({"shape": shape, "error": error, "rss_mb": rss}))
"""


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_bombs_are_refused_from_the_header_in_little_memory(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(HOSTILE[name]())
    assert path.stat().st_size < 20_000_000  # small on disk (the PBM is 1 bit per pixel)
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["shape"] is None and out["error"], out
    assert "\n" not in out["error"] and out["error"].startswith(str(path))
    assert out["rss_mb"] < MAX_RSS_MB, out


def test_the_hostile_files_are_real_pictures(tmp_path: Path) -> None:
    """The same generators at a small size decode with OpenCV: the bombs above are genuine."""
    for data, want in ((tiff_g4(64, rows_per_strip=16), 255), (bmp_rle8(64), 0),
                       (png_zeros(64), 0), (pbm(64), 255)):  # fmt: skip
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
        assert image is not None and image.shape == (64, 64) and image.max() == want


def _encoded(ext: str, image: np.ndarray, params: list[int] | None = None) -> bytes:
    ok, buf = cv2.imencode(ext, image, params or [])
    assert ok
    return buf.tobytes()


def test_header_size_reads_every_accepted_format(tmp_path: Path) -> None:
    image = np.random.default_rng(0).integers(0, 255, (37, 53, 3), np.uint8)
    samples = {
        "bmp": _encoded(".bmp", image),
        "webp lossy": _encoded(".webp", image, [cv2.IMWRITE_WEBP_QUALITY, 80]),
        "webp lossless": _encoded(".webp", image, [cv2.IMWRITE_WEBP_QUALITY, 101]),
        "tiff": _encoded(".tiff", image),
        "png": _encoded(".png", image),
        "jpeg": _encoded(".jpg", image),
    }
    Image.fromarray(image).convert("RGBA").save(tmp_path / "x.webp", lossless=False)
    samples["webp extended"] = (tmp_path / "x.webp").read_bytes()
    for name, data in samples.items():
        assert header_size(data) == (53, 37), name
        assert decode_image(data, name).shape == (37, 53, 3), name
    assert header_size(tiff_g4(300, ">", 100)) == (300, 300)
    assert decode_image(tiff_g4(300, ">", 100)).shape == (300, 300, 3)


@pytest.mark.parametrize("flavour", ["lossy", "lossless"])
def test_a_webp_claiming_a_huge_canvas_is_refused_before_decoding(flavour: str) -> None:
    quality = 80 if flavour == "lossy" else 101
    data = bytearray(
        _encoded(".webp", np.zeros((20, 20, 3), np.uint8), [cv2.IMWRITE_WEBP_QUALITY, quality])
    )
    if flavour == "lossy":
        data[26:30] = struct.pack("<HH", 16383, 16383)
    else:
        data[21:25] = struct.pack("<I", 16382 | 16382 << 14)
    assert header_size(bytes(data)) == (16383, 16383)
    with pytest.raises(ImageError, match="decompression bomb"):
        decode_image(bytes(data), "big.webp")


@pytest.mark.parametrize(
    "ext, maker",
    [
        (".pbm", lambda: pbm(64)),
        (".gif", None),
        (".ppm", lambda: _encoded(".ppm", np.zeros((64, 64, 3), np.uint8))),
        (".hdr", lambda: _encoded(".hdr", np.zeros((64, 64, 3), np.float32))),
    ],
)
def test_formats_facegate_does_not_read_are_refused(tmp_path: Path, ext: str, maker) -> None:
    path = tmp_path / f"picture{ext}"
    if maker is None:
        Image.new("RGB", (64, 64)).save(path)
    else:
        path.write_bytes(maker())
    with pytest.raises(ImageError, match=r"not a format facegate reads \(JPEG, PNG, WebP, BMP"):
        load_image(path)


@pytest.mark.parametrize("shape", [(8000, 2), (70000, 16), (2, 8000)])
def test_pictures_too_narrow_for_a_face_are_refused_in_one_line(
    tmp_path: Path, shape: tuple[int, int]
) -> None:
    path = tmp_path / "thin.png"
    cv2.imwrite(str(path), np.zeros((*shape, 3), np.uint8))
    with pytest.raises(ImageError, match="too narrow to show a face") as err:
        load_image(path)
    assert "\n" not in str(err.value)


def test_the_narrowest_accepted_picture_decodes(tmp_path: Path) -> None:
    path = tmp_path / "panorama.png"
    cv2.imwrite(str(path), np.zeros((20, 20 * MAX_ASPECT, 3), np.uint8))
    assert load_image(path).shape == (20, 20 * MAX_ASPECT, 3)


def _photo() -> bytes:
    rng = np.random.default_rng(1)
    return _encoded(".jpg", rng.integers(0, 255, (240, 320, 3), np.uint8))


@pytest.mark.parametrize("progressive", [False, True])
def test_a_motion_photo_decodes_its_picture(tmp_path: Path, progressive: bool) -> None:
    params = [cv2.IMWRITE_JPEG_PROGRESSIVE, 1] if progressive else []
    rng = np.random.default_rng(1)
    jpeg = _encoded(".jpg", rng.integers(0, 255, (240, 320, 3), np.uint8), params)
    video = b"\x00\x00\x00\x18ftypmp42" + rng.integers(0, 256, 300_000, np.uint8).tobytes()
    (tmp_path / "motion.jpg").write_bytes(jpeg + video)
    image = load_image(tmp_path / "motion.jpg")
    assert image.shape == (240, 320, 3)
    assert np.array_equal(image, decode_image(jpeg))


def test_a_cut_jpeg_with_data_after_it_is_still_truncated(tmp_path: Path) -> None:
    jpeg = _photo()
    (tmp_path / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2] + b"\0" * 10_000)
    with pytest.raises(ImageError, match="truncated JPEG"):
        load_image(tmp_path / "cut.jpg")


def test_file_names_that_are_not_utf8_print_as_escapes(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/caf\xe9\x1b[2J.jpg"
    assert display_path(raw).endswith("/caf\\xe9\\x1b[2J.jpg")
    assert display_path(os.fsdecode(raw)) == display_path(raw)
    assert display_path(tmp_path / "ok é.jpg").endswith("/ok é.jpg")
    with pytest.raises(ImageError) as err:
        load_image(os.fsdecode(raw))
    str(err.value).encode("utf-8")  # printable on a strict UTF-8 terminal
    assert "caf\\xe9" in str(err.value)
