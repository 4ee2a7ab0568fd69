"""Picture sizes from the headers of the formats facegate reads, before any pixel is decoded.

One table (:data:`FORMATS`) names each accepted format, the bytes it starts with and the parser
of its header; anything else is not decoded at all. :func:`jpeg_end` finds where a JPEG's first
image ends, so data appended after it (a phone's motion-photo video) is not mistaken for
truncation.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable

Size = tuple[int, int]

_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # DHT, JPG, DAC are not frames
_JPEG_STANDALONE = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})  # TEM, SOI, RSTn: no length
_JPEG_EOI, _JPEG_SOS = 0xD9, 0xDA
# In entropy-coded data 0xFF is followed by 0x00 (a stuffed byte), RSTn or more 0xFF (fill);
# anything else is the next marker.
_ENTROPY_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_TAIL = 4096  # the old rule, kept for JPEGs whose segments cannot be walked: EOI near the end
_TIFF_MAX_ENTRIES = 4096  # a first directory longer than this is not a photo's
_TIFF_WIDTH, _TIFF_LENGTH = 256, 257
_TIFF_TYPES = {3: "H", 4: "I", 16: "Q"}  # SHORT, LONG, LONG8 (BigTIFF)


def _u(fmt: str, data: bytes, offset: int) -> int:
    return struct.unpack_from(fmt, data, offset)[0]


def _png(data: bytes) -> Size | None:
    if data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack_from(">II", data, 16)
    return width, height


def _jpeg(data: bytes) -> Size | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in _JPEG_STANDALONE or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        if marker in _JPEG_SOF:
            height, width = struct.unpack_from(">HH", data, i + 5)
            return width, height
        i += 2 + _u(">H", data, i + 2)
    return None


def _webp(data: bytes) -> Size | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        return _u("<H", data, 26) & 0x3FFF, _u("<H", data, 28) & 0x3FFF
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = _u("<I", data, 21)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return (
            int.from_bytes(data[24:27], "little") + 1,
            int.from_bytes(data[27:30], "little") + 1,
        )
    return None


def _bmp(data: bytes) -> Size | None:
    header = _u("<I", data, 14)
    if header == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sides
        return _u("<H", data, 18), _u("<H", data, 20)
    if header >= 40:  # a negative height means top-down rows
        return _u("<i", data, 18), abs(_u("<i", data, 22))
    return None


def _tiff(data: bytes) -> Size | None:
    order = "<" if data[:2] == b"II" else ">"
    big = _u(order + "H", data, 2) == 43  # BigTIFF: 64-bit offsets and counts
    count_fmt, value_size = ("Q", 8) if big else ("H", 4)
    offset = _u(order + "Q", data, 8) if big else _u(order + "I", data, 4)
    entries = _u(order + count_fmt, data, offset)
    first = offset + struct.calcsize(count_fmt)
    step = 4 + struct.calcsize(count_fmt if big else "I") + value_size
    found: dict[int, int] = {}
    for k in range(min(entries, _TIFF_MAX_ENTRIES)):
        tag, kind = struct.unpack_from(order + "HH", data, first + k * step)
        if tag in (_TIFF_WIDTH, _TIFF_LENGTH) and kind in _TIFF_TYPES:
            found[tag] = _u(order + _TIFF_TYPES[kind], data, first + k * step + step - value_size)
    if len(found) < 2:
        return None
    return found[_TIFF_WIDTH], found[_TIFF_LENGTH]


# (format, how its data starts, header parser): the formats facegate decodes, nothing else.
FORMATS: tuple[tuple[str, re.Pattern[bytes], Callable[[bytes], Size | None]], ...] = tuple(
    (kind, re.compile(start, re.DOTALL), parse)
    for kind, start, parse in (
        ("JPEG", rb"\xff\xd8", _jpeg),
        ("PNG", rb"\x89PNG\r\n\x1a\n", _png),
        ("WebP", rb"RIFF....WEBP", _webp),
        ("BMP", rb"BM", _bmp),
        ("TIFF", rb"II\*\x00|MM\x00\*|II\+\x00|MM\x00\+", _tiff),  # classic and BigTIFF
    )
)
ACCEPTED = ", ".join(kind for kind, _, _ in FORMATS)


def sniff(data: bytes) -> tuple[str | None, Size | None]:
    """The format of ``data`` (None: not accepted) and its (width, height) (None: unreadable)."""
    for kind, start, parse in FORMATS:
        if start.match(data):
            try:
                return kind, parse(data)
            except (struct.error, IndexError):
                return kind, None
    return None, None


def jpeg_end(data: bytes) -> int | None:
    """Offset just past the first JPEG image's end marker; None when the data stops before it."""
    i, n = 2, len(data)
    while i + 1 < n:
        if data[i] != 0xFF:  # no marker where one belongs: judge by the end, as decoders do
            return n if b"\xff\xd9" in data[-_TAIL:] else None
        marker = data[i + 1]
        if marker == _JPEG_EOI:
            return i + 2
        if marker == 0xFF or marker in _JPEG_STANDALONE:
            i += 1 if marker == 0xFF else 2
            continue
        if i + 4 > n:
            return None
        i += 2 + _u(">H", data, i + 2)
        if marker == _JPEG_SOS:
            found = _ENTROPY_MARKER.search(data, i)
            if found is None:
                return None
            i = found.start()
    return None
