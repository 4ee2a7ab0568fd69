"""The local face gallery: people and their templates in one SQLite file (WAL, mode 0600)."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from facegate.errors import GalleryError
from facegate.host.paths import ensure_private_dir

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
# A CLI writer and the daemon reader share the file; waiting 5 s beats failing on a brief lock.
BUSY_TIMEOUT_MS = 5000
FILE_MODE = 0o600
CROP_SHAPE = (112, 112, 3)
MAX_NAME_LENGTH = 100
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_REEMBED_HINT = "run `facegate gallery reembed`"

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value)",
    "CREATE TABLE IF NOT EXISTS people (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL,"
    " created REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS templates (id INTEGER PRIMARY KEY,"
    " person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,"
    " model_id TEXT NOT NULL, embedding BLOB NOT NULL, crop BLOB NOT NULL,"
    " source TEXT NOT NULL, created REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS templates_person ON templates(person_id)",
)

_Row = tuple[bytes, bytes, str, float]  # embedding blob, crop PNG, source, created


@dataclass(frozen=True, slots=True)
class Template:
    """One face to enrol: its embedding, the aligned crop it came from, and where that was."""

    embedding: np.ndarray  # (D,) float32
    crop: np.ndarray  # (112, 112, 3) uint8 RGB
    source: str


@dataclass(frozen=True, slots=True)
class TemplateInfo:
    """What the gallery tells about one stored template (never its embedding or crop)."""

    source: str
    created: float
    model_id: str


@dataclass(frozen=True, slots=True)
class PersonInfo:
    """One enrolled person; ``templates`` is filled by ``GalleryStore.person`` only."""

    name: str
    created: float
    template_count: int
    templates: tuple[TemplateInfo, ...] = ()


@dataclass(frozen=True, slots=True)
class GallerySnapshot:
    """An immutable copy of every embedding, for the matcher."""

    names: tuple[str, ...]  # one per person with at least one template
    embeddings: np.ndarray  # (T, D) float32, read-only
    owners: np.ndarray  # (T,) int64 index into names, read-only
    model_id: str
    version: int


@dataclass(frozen=True, slots=True)
class StoredTemplate:
    """A template as exported/imported: embedding plus the crop as PNG bytes."""

    embedding: np.ndarray  # (D,) float32
    crop_png: bytes
    source: str
    created: float


@dataclass(frozen=True, slots=True)
class StoredPerson:
    """A person with all their templates, as exported/imported."""

    name: str
    created: float
    templates: tuple[StoredTemplate, ...]


@dataclass(frozen=True, slots=True)
class GalleryDump:
    """Everything in the gallery, for export."""

    model_id: str
    embedding_size: int
    people: tuple[StoredPerson, ...]


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """What an import (merge) changed."""

    people_added: int
    people_merged: int
    templates_added: int


class GalleryStore:
    """A context manager over one gallery file; safe to share between threads."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        configured: tuple[str, int],
        stored: tuple[str, int],
        allow_model_mismatch: bool = False,
    ) -> None:
        """Wrap an opened, checked connection; use ``GalleryStore.open`` instead."""
        self._conn: sqlite3.Connection | None = conn
        self._path = path
        self._configured = configured  # (model id, embedding size) this process embeds with
        self._stored = stored  # (model id, embedding size) the file holds
        self._allow_mismatch = allow_model_mismatch
        self._lock = threading.RLock()
        self._counter = 0
        self._data_version: int | None = None

    @classmethod
    def open(
        cls, path: Path, model_id: str, embedding_size: int, *, allow_model_mismatch: bool = False
    ) -> GalleryStore:
        """Open or create the gallery at ``path`` for embeddings made by ``model_id``."""
        path = Path(path)
        ensure_private_dir(path.parent)
        old_umask = os.umask(0o077)
        try:
            conn = _connect(path)
            try:
                meta = _load_meta(conn, path, model_id, embedding_size)
                stored = _check_meta(meta, path, model_id, embedding_size)
                if not allow_model_mismatch and stored[0] != model_id:
                    raise GalleryError(_mismatch_message(path, stored[0], model_id))
            except BaseException:
                conn.close()
                raise
        finally:
            os.umask(old_umask)
        _protect_files(path)
        log.info("opened gallery %s (model %s)", path, stored[0])
        return cls(conn, path, (model_id, embedding_size), stored, allow_model_mismatch)

    @property
    def path(self) -> Path:
        """The gallery file."""
        return self._path

    @property
    def model_id(self) -> str:
        """The model whose embeddings the gallery holds."""
        return self._stored[0]

    @property
    def embedding_size(self) -> int:
        """The length of every stored embedding."""
        return self._stored[1]

    def __enter__(self) -> GalleryStore:
        """Return the open store."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the store."""
        self.close()

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def enroll(self, name: str, templates: Sequence[Template]) -> int:
        """Add templates to ``name`` (created if new) atomically; return their total count."""
        _check_name(name)
        if not templates:
            raise GalleryError(f"nothing to enrol for {name!r}: no templates")
        now = time.time()
        rows = [self._template_row(t, now) for t in templates]
        with self._write("enrol into") as conn:
            self._check_model(conn)
            person_id, _ = _upsert_person(conn, name, now)
            _insert_templates(conn, person_id, self._configured[0], rows)
            total = _count_templates(conn, person_id)
        log.info("enrolled %d template(s) for %r", len(rows), name)
        return total

    def people(self) -> list[PersonInfo]:
        """List every person with their template count, sorted by name."""
        with self._read("list") as conn:
            rows = conn.execute(
                "SELECT p.name, p.created, COUNT(t.id) FROM people p"
                " LEFT JOIN templates t ON t.person_id = p.id GROUP BY p.id ORDER BY p.name"
            ).fetchall()
        return [PersonInfo(name, created, count) for name, created, count in rows]

    def person(self, name: str) -> PersonInfo:
        """Describe one person and each of their templates."""
        with self._read("read") as conn:
            person_id, created = self._find(conn, name)
            rows = conn.execute(
                "SELECT source, created, model_id FROM templates WHERE person_id = ? ORDER BY id",
                (person_id,),
            ).fetchall()
        infos = tuple(TemplateInfo(*row) for row in rows)
        return PersonInfo(name, created, len(infos), infos)

    def rename(self, old: str, new: str) -> None:
        """Rename a person; the new name must not be taken."""
        _check_name(new)
        with self._write("rename in") as conn:
            person_id, _ = self._find(conn, old)
            taken = conn.execute("SELECT id FROM people WHERE name = ?", (new,)).fetchone()
            if taken is not None and taken[0] != person_id:
                raise GalleryError(f"cannot rename {old!r}: a person named {new!r} already exists")
            conn.execute("UPDATE people SET name = ? WHERE id = ?", (new, person_id))
        log.info("renamed %r to %r", old, new)

    def remove(self, name: str) -> int:
        """Delete a person and all their templates; return how many templates went."""
        with self._write("remove from") as conn:
            person_id, _ = self._find(conn, name)
            count = _count_templates(conn, person_id)
            conn.execute("DELETE FROM people WHERE id = ?", (person_id,))
        log.info("removed %r (%d template(s))", name, count)
        return count

    def version(self) -> int:
        """Return a number that changes whenever any connection commits a gallery write."""
        with self._lock, _sqlite_errors("read the version of", self._path):
            conn = self._live()
            data_version = conn.execute("PRAGMA data_version").fetchone()[0]
            if data_version != self._data_version:
                self._counter = _read_counter(conn)
                self._data_version = data_version
            return self._counter

    def snapshot(self) -> GallerySnapshot:
        """Copy every embedding and its owner out of the gallery, consistently."""
        with self._read("snapshot") as conn:
            model_id, size = _read_model(conn)
            self._stored = (model_id, size)
            if model_id != self._configured[0] and not self._allow_mismatch:
                raise GalleryError(_mismatch_message(self._path, model_id, self._configured[0]))
            counter = _read_counter(conn)
            rows = conn.execute(
                "SELECT p.name, t.embedding FROM templates t JOIN people p ON p.id = t.person_id"
                " WHERE t.model_id = ? ORDER BY p.name, t.id",
                (model_id,),
            ).fetchall()
        return _build_snapshot(rows, self._path, model_id, size, counter)

    def dump(self) -> GalleryDump:
        """Read every person and template (with crops), for export."""
        with self._read("export") as conn:
            model_id, size = _read_model(conn)
            people = conn.execute("SELECT id, name, created FROM people ORDER BY name").fetchall()
            rows = conn.execute(
                "SELECT person_id, embedding, crop, source, created FROM templates"
                " WHERE model_id = ? ORDER BY id",
                (model_id,),
            ).fetchall()
        by_person: dict[int, list[StoredTemplate]] = {pid: [] for pid, _, _ in people}
        for pid, blob, crop, source, created in rows:
            vector = _vector(blob, size, self._path)
            by_person[pid].append(StoredTemplate(vector, crop, source, created))
        stored = tuple(StoredPerson(n, c, tuple(by_person[pid])) for pid, n, c in people)
        return GalleryDump(model_id, size, stored)

    def merge(self, people: Sequence[StoredPerson]) -> ImportSummary:
        """Add people (or templates to existing names) in one transaction; crops are trusted."""
        prepared = [(p, [self._stored_row(t) for t in p.templates]) for p in people]
        for person, _ in prepared:
            _check_name(person.name)
        added = merged = count = 0
        with self._write("import into") as conn:
            self._check_model(conn)
            for person, rows in prepared:
                person_id, new = _upsert_person(conn, person.name, person.created)
                _insert_templates(conn, person_id, self._configured[0], rows)
                added, merged, count = added + new, merged + (not new), count + len(rows)
        log.info("imported %d template(s): %d new, %d merged people", count, added, merged)
        return ImportSummary(added, merged, count)

    def reembed(
        self,
        embed: Callable[[np.ndarray], np.ndarray],
        model_id: str,
        batch: int = 64,
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Recompute every embedding from its stored crop with ``embed``; return the count."""
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        with self._lock:
            ids, vectors, counter = self._embed_all(embed, batch, progress)
            size = int(vectors.shape[1]) if ids else self._configured[1]
            with self._write("re-embed") as conn:
                if _read_counter(conn) != counter:
                    raise GalleryError(f"gallery {self._path} changed while re-embedding; rerun it")
                conn.executemany(
                    "UPDATE templates SET embedding = ?, model_id = ? WHERE id = ?",
                    ((_blob(v), model_id, i) for i, v in zip(ids, vectors, strict=True)),
                )
                _set_meta(conn, model_id=model_id, embedding_size=size)
            self._configured = self._stored = (model_id, size)
        log.info("re-embedded %d template(s) with model %s", len(ids), model_id)
        return len(ids)

    def _embed_all(
        self,
        embed: Callable[[np.ndarray], np.ndarray],
        batch: int,
        progress: Callable[[int, int], None] | None,
    ) -> tuple[list[int], np.ndarray, int]:
        ids: list[int] = []
        chunks: list[np.ndarray] = []
        with self._read("re-embed") as conn:
            counter = _read_counter(conn)
            total = conn.execute("SELECT COUNT(*) FROM templates").fetchone()[0]
            cursor = conn.execute("SELECT id, crop FROM templates ORDER BY id")
            while rows := cursor.fetchmany(batch):
                crops = np.stack([decode_crop(crop) for _, crop in rows])
                dim = chunks[0].shape[1] if chunks else None
                chunks.append(_check_batch(embed(crops), len(rows), dim))
                ids.extend(template_id for template_id, _ in rows)
                if progress is not None:
                    progress(len(ids), total)
        if not chunks:
            return ids, np.empty((0, self._configured[1]), np.float32), counter
        return ids, np.concatenate(chunks), counter

    def _template_row(self, template: Template, created: float) -> _Row:
        if not isinstance(template.source, str):
            raise GalleryError("a template source must be a string")
        blob = _blob(_check_vector(template.embedding, self._configured[1]))
        return blob, encode_crop(template.crop), template.source, created

    def _stored_row(self, template: StoredTemplate) -> _Row:
        blob = _blob(_check_vector(template.embedding, self._configured[1]))
        return blob, bytes(template.crop_png), str(template.source), float(template.created)

    def _check_model(self, conn: sqlite3.Connection) -> None:
        model_id, size = _read_model(conn)
        self._stored = (model_id, size)
        if (model_id, size) != self._configured:
            raise GalleryError(_mismatch_message(self._path, model_id, self._configured[0]))

    def _find(self, conn: sqlite3.Connection, name: str) -> tuple[int, float]:
        row = conn.execute("SELECT id, created FROM people WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise GalleryError(f"no person named {name!r} in gallery {self._path}")
        return row[0], row[1]

    def _live(self) -> sqlite3.Connection:
        if self._conn is None:
            raise GalleryError(f"gallery {self._path} is closed")
        return self._conn

    @contextmanager
    def _read(self, action: str) -> Iterator[sqlite3.Connection]:
        with self._lock, _sqlite_errors(action, self._path):
            conn = self._live()
            with _transaction(conn, "DEFERRED"):
                yield conn

    @contextmanager
    def _write(self, action: str) -> Iterator[sqlite3.Connection]:
        with self._lock, _sqlite_errors(action, self._path):
            conn = self._live()
            with _transaction(conn, "IMMEDIATE"):
                yield conn
                counter = _read_counter(conn) + 1
                _set_meta(conn, counter=counter)
            self._counter = counter


def encode_crop(crop: np.ndarray) -> bytes:
    """Encode a 112x112 RGB uint8 crop as PNG bytes."""
    arr = np.asarray(crop)
    if arr.shape != CROP_SHAPE or arr.dtype != np.uint8:
        raise GalleryError(
            f"a template crop must be 112x112x3 uint8 RGB, got {arr.shape} {arr.dtype}"
        )
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(arr[..., ::-1]))
    if not ok:
        raise GalleryError("cannot encode a template crop as PNG")
    return buf.tobytes()


def decode_crop(data: bytes) -> np.ndarray:
    """Decode PNG bytes into a 112x112 RGB uint8 crop, or raise GalleryError."""
    if not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise GalleryError("a template crop is not a PNG image")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if (height, width) != CROP_SHAPE[:2]:  # checked before decoding: no decompression bombs
        raise GalleryError(f"a template crop is {width}x{height}, not 112x112")
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as err:
        raise GalleryError("a template crop PNG cannot be decoded") from err
    if img is None or img.shape != CROP_SHAPE or img.dtype != np.uint8:
        raise GalleryError("a template crop is not a 112x112 RGB 8-bit PNG")
    return np.ascontiguousarray(img[..., ::-1])


def _connect(path: Path) -> sqlite3.Connection:
    with _sqlite_errors("open", path):
        conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA secure_delete = ON")  # removed faces are overwritten, not freed
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode != "wal":
                    log.warning("gallery %s cannot use WAL (journal mode %s)", path, mode)
        except BaseException:
            conn.close()
            raise
    return conn


def _load_meta(conn: sqlite3.Connection, path: Path, model_id: str, size: int) -> dict[str, object]:
    with _sqlite_errors("open", path):
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        if "meta" not in tables:
            if tables:
                raise GalleryError(f"{path} is an SQLite file but not a facegate gallery")
            with _transaction(conn, "IMMEDIATE"):
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.executemany(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
                    [
                        ("schema_version", SCHEMA_VERSION),
                        ("model_id", model_id),
                        ("embedding_size", size),
                        ("counter", 0),
                    ],
                )
            log.info("created gallery %s for model %s", path, model_id)
        return dict(conn.execute("SELECT key, value FROM meta").fetchall())


def _check_meta(meta: dict[str, object], path: Path, model_id: str, size: int) -> tuple[str, int]:
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise GalleryError(
            f"gallery {path} has schema version {version!r}; this facegate reads {SCHEMA_VERSION}"
        )
    stored_model, stored_size = meta.get("model_id"), meta.get("embedding_size")
    if (
        not isinstance(stored_model, str)
        or not isinstance(stored_size, int)
        or stored_size < 1
        or not isinstance(meta.get("counter"), int)
    ):
        raise GalleryError(f"gallery {path} is damaged: its meta table is incomplete")
    if stored_model == model_id and stored_size != size:
        raise GalleryError(
            f"gallery {path} holds {stored_size}-d embeddings but model {model_id!r}"
            f" makes {size}-d ones; {_REEMBED_HINT}"
        )
    return stored_model, stored_size


def _protect_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        target = path.with_name(path.name + suffix)
        try:
            if target.exists() and target.stat().st_mode & 0o077:
                target.chmod(FILE_MODE)
        except OSError as err:
            log.warning("cannot make %s private (mode 0600): %s", target, err)


def _mismatch_message(path: Path, stored: str, configured: str) -> str:
    return (
        f"gallery {path} was made by model {stored!r} but the configured model is"
        f" {configured!r}; {_REEMBED_HINT} to re-embed it with {configured!r}"
    )


@contextmanager
def _sqlite_errors(action: str, path: Path) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as err:
        raise GalleryError(f"cannot {action} gallery {path}: {err}") from err


@contextmanager
def _transaction(
    conn: sqlite3.Connection, mode: Literal["DEFERRED", "IMMEDIATE"]
) -> Iterator[None]:
    conn.execute(f"BEGIN {mode}")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _read_model(conn: sqlite3.Connection) -> tuple[str, int]:
    rows = dict(
        conn.execute("SELECT key, value FROM meta WHERE key IN ('model_id', 'embedding_size')")
    )
    return rows["model_id"], rows["embedding_size"]


def _read_counter(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT value FROM meta WHERE key = 'counter'").fetchone()[0]


def _set_meta(conn: sqlite3.Connection, **values: object) -> None:
    conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", list(values.items()))


def _upsert_person(conn: sqlite3.Connection, name: str, created: float) -> tuple[int, bool]:
    row = conn.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
    if row is not None:
        return row[0], False
    cursor = conn.execute("INSERT INTO people (name, created) VALUES (?, ?)", (name, created))
    return int(cursor.lastrowid or 0), True


def _insert_templates(
    conn: sqlite3.Connection, person_id: int, model_id: str, rows: list[_Row]
) -> None:
    conn.executemany(
        "INSERT INTO templates (person_id, model_id, embedding, crop, source, created)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [(person_id, model_id, *row) for row in rows],
    )


def _count_templates(conn: sqlite3.Connection, person_id: int) -> int:
    query = "SELECT COUNT(*) FROM templates WHERE person_id = ?"
    return conn.execute(query, (person_id,)).fetchone()[0]


def _check_name(name: str) -> None:
    if (
        not isinstance(name, str)
        or not name
        or name != name.strip()
        or not name.isprintable()
        or len(name) > MAX_NAME_LENGTH
    ):
        raise GalleryError(
            f"invalid person name {repr(name)[:60]}: use 1-{MAX_NAME_LENGTH} printable"
            " characters without leading or trailing spaces"
        )


def _check_vector(vector: np.ndarray, size: int) -> np.ndarray:
    try:
        arr = np.asarray(vector, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise GalleryError("a template embedding is not numeric") from err
    if arr.shape != (size,):
        raise GalleryError(f"a template embedding has shape {arr.shape}, expected ({size},)")
    if not np.isfinite(arr).all() or not arr.any():
        raise GalleryError("a template embedding holds NaN, infinite or only zero values")
    return arr


def _check_batch(out: np.ndarray, count: int, dim: int | None) -> np.ndarray:
    arr = np.asarray(out, dtype=np.float32)
    if (
        arr.ndim != 2
        or arr.shape[0] != count
        or arr.shape[1] < 1
        or dim not in (None, arr.shape[1])
    ):
        raise GalleryError(f"the embedder returned shape {arr.shape} for {count} crops")
    if not np.isfinite(arr).all():
        raise GalleryError("the embedder returned NaN or infinite values")
    return arr


def _blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def _vector(blob: bytes, size: int, path: Path) -> np.ndarray:
    if len(blob) != size * 4:
        raise GalleryError(f"gallery {path} is damaged: an embedding has {len(blob)} bytes")
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)


def _build_snapshot(
    rows: list[tuple[str, bytes]], path: Path, model_id: str, size: int, counter: int
) -> GallerySnapshot:
    names: list[str] = []
    owners = np.empty(len(rows), dtype=np.int64)
    for i, (name, blob) in enumerate(rows):
        if not names or names[-1] != name:
            names.append(name)
        owners[i] = len(names) - 1
        if len(blob) != size * 4:
            raise GalleryError(f"gallery {path} is damaged: an embedding has {len(blob)} bytes")
    joined = b"".join(blob for _, blob in rows)
    embeddings = np.frombuffer(joined, dtype="<f4").astype(np.float32).reshape(len(rows), size)
    embeddings.setflags(write=False)
    owners.setflags(write=False)
    return GallerySnapshot(tuple(names), embeddings, owners, model_id, counter)
