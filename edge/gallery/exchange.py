"""Export and import a gallery as one portable, checksummed JSON file (facegate-gallery v1)."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import GalleryError
from edge.gallery.store import (
    FILE_MODE,
    GalleryStore,
    ImportSummary,
    StoredPerson,
    StoredTemplate,
    decode_crop,
)

log = logging.getLogger(__name__)

FORMAT_NAME = "facegate-gallery"
FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What an export wrote."""

    path: Path
    people: int
    templates: int


def export_gallery(store: GalleryStore, path: Path) -> ExportSummary:
    """Write every person and template of ``store`` to ``path`` atomically (mode 0600)."""
    path = Path(path)
    dump = store.dump()
    body: dict[str, Any] = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "model_id": dump.model_id,
        "embedding_size": dump.embedding_size,
        "people": [_person_document(person) for person in dump.people],
    }
    body["sha256"] = _checksum(body)
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"
    try:
        _write_atomic(path, data)
    except OSError as err:
        raise GalleryError(f"cannot write gallery export {path}: {err}") from err
    count = sum(len(person.templates) for person in dump.people)
    log.info("exported %d people (%d templates) to %s", len(dump.people), count, path)
    return ExportSummary(path, len(dump.people), count)


def import_gallery(store: GalleryStore, path: Path) -> ImportSummary:
    """Check all of ``path`` first, then add its people to ``store`` in one transaction."""
    path = Path(path)
    document = _load_document(path)
    _check_header(document, path, store)
    people = _parse_people(document.get("people"), store.embedding_size, path)
    return store.merge(people)


def _person_document(person: StoredPerson) -> dict[str, Any]:
    return {
        "name": person.name,
        "created": person.created,
        "templates": [
            {
                "embedding": _b64encode(np.asarray(t.embedding, dtype="<f4").tobytes()),
                "crop": _b64encode(t.crop_png),
                "source": t.source,
                "created": t.created,
            }
            for t in person.templates
        ],
    }


def _checksum(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), FILE_MODE)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _load_document(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise GalleryError(f"cannot read gallery export {path}: {err.strerror or err}") from err
    try:
        document = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError) as err:
        raise _invalid(path, "file", f"not valid UTF-8 JSON ({err})") from err
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
        raise GalleryError(f"{path} is not a {FORMAT_NAME} export")
    return document


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed")


def _check_header(document: dict[str, Any], path: Path, store: GalleryStore) -> None:
    version = document.get("version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise GalleryError(
            f"{path} has {FORMAT_NAME} format version {version!r}; this facegate reads"
            f" version {FORMAT_VERSION}"
        )
    body = {key: value for key, value in document.items() if key != "sha256"}
    try:
        expected = _checksum(body)
    except (ValueError, RecursionError) as err:
        raise _invalid(path, "file", "cannot be checksummed") from err
    if document.get("sha256") != expected:
        raise GalleryError(f"{path} failed its sha256 integrity check: damaged or edited")
    model_id = document.get("model_id")
    if not isinstance(model_id, str):
        raise _invalid(path, "header", "model_id is missing")
    if model_id != store.model_id:
        raise GalleryError(
            f"{path} holds embeddings made by model {model_id!r} but this gallery uses"
            f" {store.model_id!r}; import it into a gallery of the {model_id!r} bundle, or"
            f" re-embed the source gallery with {store.model_id!r}"
            " (`facegate gallery reembed`) and export it again"
        )
    size = document.get("embedding_size")
    if type(size) is not int or size != store.embedding_size:
        raise _invalid(path, "header", f"embedding_size {size!r} is not {store.embedding_size}")


def _parse_people(items: object, size: int, path: Path) -> list[StoredPerson]:
    if not isinstance(items, list):
        raise _invalid(path, "header", "'people' is not a list")
    people = [_parse_person(item, size, path, f"person #{i}") for i, item in enumerate(items)]
    names = [person.name for person in people]
    if len(set(names)) != len(names):
        raise _invalid(path, "people", "a name appears more than once")
    return people


def _parse_person(item: object, size: int, path: Path, where: str) -> StoredPerson:
    if not isinstance(item, dict):
        raise _invalid(path, where, "is not an object")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise _invalid(path, where, "has no name")
    templates = item.get("templates")
    if not isinstance(templates, list) or not templates:
        raise _invalid(path, where, "has no templates")
    parsed = tuple(
        _parse_template(t, size, path, f"{where} template #{j}") for j, t in enumerate(templates)
    )
    return StoredPerson(name, _timestamp(item.get("created"), path, where), parsed)


def _parse_template(item: object, size: int, path: Path, where: str) -> StoredTemplate:
    if not isinstance(item, dict):
        raise _invalid(path, where, "is not an object")
    raw = _b64decode(item.get("embedding"), path, f"{where} embedding")
    if len(raw) != size * 4:
        raise _invalid(path, where, f"embedding has {len(raw)} bytes, expected {size * 4}")
    vector = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if not np.isfinite(vector).all() or not vector.any():
        raise _invalid(path, where, "embedding holds NaN, infinite or only zero values")
    crop = _b64decode(item.get("crop"), path, f"{where} crop")
    try:
        decode_crop(crop)
    except GalleryError as err:
        raise _invalid(path, where, str(err)) from err
    source = item.get("source")
    if not isinstance(source, str):
        raise _invalid(path, where, "source is not a string")
    return StoredTemplate(vector, crop, source, _timestamp(item.get("created"), path, where))


def _timestamp(value: object, path: Path, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(path, where, "created is not a number")
    try:
        seconds = float(value)
    except OverflowError as err:
        raise _invalid(path, where, "created is out of range") from err
    if not math.isfinite(seconds):
        raise _invalid(path, where, "created is not finite")
    return seconds


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(value: object, path: Path, where: str) -> bytes:
    if not isinstance(value, str):
        raise _invalid(path, where, "is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as err:
        raise _invalid(path, where, "is not valid base64") from err


def _invalid(path: Path, where: str, problem: str) -> GalleryError:
    return GalleryError(
        f"{path} is not a valid gallery export: {where} {problem}; nothing imported"
    )
