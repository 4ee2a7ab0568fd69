"""The local face gallery (SQLite), the matcher, and the portable export format."""

from facegate.gallery.exchange import ExportSummary, export_gallery, import_gallery
from facegate.gallery.match import ExactMatcher, Matcher, decide
from facegate.gallery.store import (
    GalleryDump,
    GallerySnapshot,
    GalleryStore,
    ImportSummary,
    PersonInfo,
    StoredPerson,
    StoredTemplate,
    Template,
    TemplateInfo,
    decode_crop,
    encode_crop,
)

__all__ = [
    "ExactMatcher",
    "ExportSummary",
    "GalleryDump",
    "GallerySnapshot",
    "GalleryStore",
    "ImportSummary",
    "Matcher",
    "PersonInfo",
    "StoredPerson",
    "StoredTemplate",
    "Template",
    "TemplateInfo",
    "decide",
    "decode_crop",
    "encode_crop",
    "export_gallery",
    "import_gallery",
]
