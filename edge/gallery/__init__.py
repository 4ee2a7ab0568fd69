"""The local face gallery (SQLite), the matcher, and the portable export format.

Names are re-exported lazily: the store and the matcher load without the export format's
cryptography (``facegate identify`` and the daemon's frame path never encrypt anything).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "exchange": ("ExportSummary", "export_gallery", "import_gallery"),
    "match": ("ExactMatcher", "Matcher", "decide"),
    "store": (
        "GalleryDump",
        "GallerySnapshot",
        "GalleryStore",
        "ImportSummary",
        "PersonInfo",
        "StoredPerson",
        "StoredTemplate",
        "Template",
        "TemplateInfo",
        "decode_crop",
        "encode_crop",
    ),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"facegate.gallery.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'facegate.gallery' has no attribute {name!r}")
