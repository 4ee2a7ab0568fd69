"""What a stored person or template may hold: names, slugs, bounded text, times, embeddings.

One set of rules for every way in (enrol, rename, import) and for export, so that whatever an
export writes, an import accepts. Each check raises ``GalleryError`` naming the field.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata

import numpy as np
from anyascii import anyascii

from facegate.errors import GalleryError
from facegate.text import BIDI_CONTROLS, visible

MAX_NAME_LENGTH = 100  # characters; a display name, not a biography
# A template's source is the photo's path: Linux's PATH_MAX is 4096 bytes, so no real path is
# longer. The bound keeps a hostile import from storing megabytes per template.
MAX_SOURCE_LENGTH = 4096
# Slugs go into MQTT topics and Home Assistant unique_ids: lower-case ASCII letters, digits, "_".
MAX_SLUG_LENGTH = 48
SLUG_HASH_CHARS = 8  # hex digits of sha256(name key) that keep shortened or empty slugs apart
# Times are seconds since 1970. A board without a real-time clock may start at 0 before NTP
# sets it, so 0 is allowed; the upper bound is the last second Python's datetime can show
# (9999-12-31 23:59:59 UTC), so every stored time can be printed.
EARLIEST_TIME = 0.0
LATEST_TIME = 253402300799.0
# Joiners that some scripts and emoji sequences need; every other format character is refused.
_ALLOWED_FORMAT = frozenset("\u200c\u200d")
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Co", "Cn", "Zl", "Zp"})
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


class NameRefused(GalleryError):
    """A person's name breaks the name rules, or is taken by (or looks like) another's."""


def normalise_name(name: object) -> str:
    """``name`` in NFC, or GalleryError when it breaks the name rules (one line says which)."""
    if not isinstance(name, str):
        raise NameRefused("invalid person name: it is not text")
    text = unicodedata.normalize("NFC", name)
    shown = _short(text)
    if not text or text.isspace():
        raise NameRefused("invalid person name: it is empty")
    if len(text) > MAX_NAME_LENGTH:
        raise NameRefused(f"invalid person name {shown}: longer than {MAX_NAME_LENGTH} characters")
    if any(_refused_in_name(char) for char in text):
        raise NameRefused(f"invalid person name {shown}: control or invisible characters")
    if text != text.strip() or any(char.isspace() and char != " " for char in text):
        raise NameRefused(
            f"invalid person name {shown}: spaces at its ends, or white space other than"
            " plain spaces"
        )
    return text


def name_key(name: str) -> str:
    """The form two names share when they are the same person: NFKC, then case-folded."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return unicodedata.normalize("NFKC", folded)


def person_slug(name: str) -> str:
    """One ASCII slug for MQTT topics and unique_ids; look-alike names get the same slug."""
    base = _NOT_SLUG.sub("_", anyascii(unicodedata.normalize("NFKC", name)).lower()).strip("_")
    if base and len(base) <= MAX_SLUG_LENGTH:
        return base
    digest = hashlib.sha256(name_key(name).encode("utf-8")).hexdigest()[:SLUG_HASH_CHARS]
    if not base:  # nothing transliterates (symbols only): the hash names the person
        return f"person_{digest}"
    return f"{base[: MAX_SLUG_LENGTH - SLUG_HASH_CHARS - 1].rstrip('_')}_{digest}"


def clean_source(source: object) -> str:
    """A template source as stored: control characters written as escapes, length bounded."""
    if not isinstance(source, str):
        raise GalleryError("a template source must be text")
    text = visible(source)
    if len(text) > MAX_SOURCE_LENGTH:
        raise GalleryError(f"a template source is longer than {MAX_SOURCE_LENGTH} characters")
    return text


def check_time(value: object, field: str = "created") -> float:
    """A time in seconds since 1970 within the stored range, or GalleryError naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise GalleryError(f"{field} is not a number")
    try:
        seconds = float(value)
    except OverflowError as err:
        raise GalleryError(f"{field} is out of range") from err
    if not math.isfinite(seconds):
        raise GalleryError(f"{field} is not finite")
    if not EARLIEST_TIME <= seconds <= LATEST_TIME:
        raise GalleryError(
            f"{field} {seconds:g} is out of range (seconds since 1970, up to the year 9999)"
        )
    return seconds


def check_embedding(vector: object, size: int) -> np.ndarray:
    """``vector`` as a finite, non-zero float32 array of length ``size``, or GalleryError."""
    try:
        arr = np.asarray(vector, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise GalleryError("embedding is not numeric") from err
    if arr.shape != (size,):
        raise GalleryError(f"embedding has shape {arr.shape}, expected ({size},)")
    if not np.isfinite(arr).all() or not arr.any():
        raise GalleryError("embedding holds NaN, infinite or only zero values")
    return arr


def _refused_in_name(char: str) -> bool:
    if char in BIDI_CONTROLS:
        return True
    category = unicodedata.category(char)
    return category in _REFUSED_CATEGORIES or (category == "Cf" and char not in _ALLOWED_FORMAT)


def _short(text: str) -> str:
    """A name quoted for an error message: control characters escaped, at most 60 characters."""
    shown = visible(text)
    return f"'{shown}'" if len(shown) <= 60 else f"'{shown[:57]}...'"
