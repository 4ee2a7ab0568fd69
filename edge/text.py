"""Text that reaches a terminal or a log: every control character made visible, one line."""

from __future__ import annotations

import os
import unicodedata

# Characters a terminal acts on instead of showing: C0/C1 controls and DEL (category Cc: ESC
# starts the sequences that retitle a window or clear the screen), lone surrogates (Cs: left by
# undecodable file names, they cannot even be encoded), line and paragraph separators (Zl, Zp),
# and the bidirectional marks, embeddings, overrides and isolates that reorder what follows.
_CONTROL_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def is_control(char: str) -> bool:
    """True for a character a terminal would act on rather than show."""
    return char in BIDI_CONTROLS or unicodedata.category(char) in _CONTROL_CATEGORIES


def visible(value: object) -> str:
    """``str(value)`` with each control character written as an escape (``\\x1b``, ``\\u202e``)."""
    text = str(value)
    if not any(is_control(char) for char in text):
        return text
    return "".join(_escape(char) if is_control(char) else char for char in text)


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def display_path(path: os.PathLike | str | bytes) -> str:
    """A file name safe to print: undecodable bytes as ``\\xNN``, control characters escaped."""
    text = os.fsdecode(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return visible(text)
