"""The local face gallery: people and their templates in one SQLite file (WAL, mode 0600)."""

from __future__ import annotations

import dataclasses
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
from facegate.gallery import roster
from facegate.gallery.roster import ImportSummary as ImportSummary
from facegate.gallery.rules import (
    check_embedding,
    check_time,
    clean_source,
    name_key,
    normalise_name,
    person_slug,
)
from facegate.gallery.schema import FILE_MODE as FILE_MODE
from facegate.gallery.schema import SCHEMA_VERSION as SCHEMA_VERSION
from facegate.gallery.schema import (
    UPGRADABLE,
    check_meta,
    checkpoint,
    connect,
    prepare,
    protect_files,
    read_counter,
    read_meta,
    read_model,
    set_meta,
    sqlite_errors,
    transaction,
)
from facegate.host.paths import ensure_private_dir
from facegate.text import visible

log = logging.getLogger(__name__)

CROP_SHAPE = (112, 112, 3)
JPEG_QUALITY = 90  # a 112x112 face: ~4-5 kB, no visible artefacts
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_REEMBED_HINT = "run `facegate gallery reembed`"
OnConflict = Literal["refuse", "merge", "replace"]

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
    slug: str = ""  # the person's ASCII id in MQTT topics and Home Assistant unique_ids


@dataclass(frozen=True, slots=True)
class GallerySnapshot:
    """An immutable copy of every embedding, for the matcher."""

    names: tuple[str, ...]  # one per person with at least one template
    embeddings: np.ndarray  # (T, D) float32, read-only
    owners: np.ndarray  # (T,) int64 index into names, read-only
    model_id: str
    version: int
    slugs: tuple[str, ...] = ()  # parallel to names: each person's slug
    # faces that are not the person ("not this person" corrections): (M, D) and (M,) into names
    negatives: np.ndarray | None = None
    negative_owners: np.ndarray | None = None

    def slug_of(self, name: str) -> str:
        """The slug stored for ``name`` (the name made into a slug if the snapshot has none)."""
        if name in self.names and len(self.slugs) == len(self.names):
            return self.slugs[self.names.index(name)]
        return person_slug(name)


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
class ReembedFailure:
    """A template whose crop could not be re-embedded: it keeps its old model and is unused."""

    person: str
    number: int  # 1-based, in the order `facegate gallery show` lists the person's templates
    source: str
    reason: str

    def describe(self) -> str:
        """One line naming the template and why it failed."""
        return f"{self.person!r} template #{self.number} ({self.source}): {self.reason}"


class GalleryStore:
    """A context manager over one gallery file; safe to share between threads."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        configured: tuple[str, int],
        stored: tuple[str, int],
        allow_model_mismatch: bool = False,
        readonly: bool = False,
    ) -> None:
        """Wrap an opened, checked connection; use ``GalleryStore.open`` instead."""
        self._conn: sqlite3.Connection | None = conn
        self._path = path
        self._configured = configured  # (model id, embedding size) this process embeds with
        self._stored = stored  # (model id, embedding size) the file holds
        self._allow_mismatch = allow_model_mismatch
        self._readonly = readonly
        self._lock = threading.RLock()
        self._counter = 0
        self._data_version: int | None = None
        self.reembed_failures: list[ReembedFailure] = []

    @classmethod
    def open(
        cls,
        path: Path,
        model_id: str,
        embedding_size: int,
        *,
        allow_model_mismatch: bool = False,
        readonly: bool = False,
    ) -> GalleryStore:
        """Open or create the gallery at ``path`` for embeddings made by ``model_id``.

        ``readonly`` never writes to an existing, current gallery (it works on a read-only
        mount or a full disk); a missing or older gallery is created or upgraded first.
        """
        path = Path(path)
        if readonly and _needs_writer(path):
            cls.open(path, model_id, embedding_size, allow_model_mismatch=True).close()
        ensure_private_dir(path.parent)
        old_umask = os.umask(0o077)
        try:
            conn = connect(path, readonly)
            try:
                if readonly:
                    meta = read_meta(conn, path)
                else:
                    meta = prepare(conn, path, model_id, embedding_size)
                stored = check_meta(meta or {}, path, model_id, embedding_size)
                if not allow_model_mismatch and stored[0] != model_id:
                    raise GalleryError(_mismatch_message(path, stored[0], model_id))
            except BaseException:
                conn.close()
                raise
        finally:
            os.umask(old_umask)
        protect_files(path)
        log.info("opened gallery %s (model %s%s)", path, stored[0], ", read-only" * readonly)
        configured = (model_id, embedding_size)
        return cls(conn, path, configured, stored, allow_model_mismatch, readonly)

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
        """Add templates to ``name`` (created if new) atomically; return their total count.

        A name that differs from an enrolled one only in case is that person; one that merely
        looks like it (same slug, say a Cyrillic "о" for a Latin "o") is refused.
        """
        name = normalise_name(name)
        if not templates:
            raise GalleryError(f"nothing to enrol for {name!r}: no templates")
        now = time.time()
        rows = [self._template_row(t, now) for t in templates]
        with self._write("enrol into") as conn:
            self._check_model(conn)
            person_id, stored_name = roster.find_or_add(conn, name, now)
            roster.insert_templates(conn, person_id, self._configured[0], rows)
            total = roster.count_templates(conn, person_id)
        log.info("enrolled %d template(s) for %r", len(rows), stored_name)
        return total

    def people(self) -> list[PersonInfo]:
        """List every person with their template count and slug, sorted by name."""
        with self._read("list") as conn:
            rows = conn.execute(
                "SELECT p.name, p.created, COUNT(t.id), p.slug FROM people p"
                " LEFT JOIN templates t ON t.person_id = p.id GROUP BY p.id ORDER BY p.name"
            ).fetchall()
        return [PersonInfo(name, created, n, (), slug) for name, created, n, slug in rows]

    def person(self, name: str) -> PersonInfo:
        """Describe one person (found by name, or by name ignoring case) and their templates."""
        with self._read("read") as conn:
            person_id, stored_name, created = self._find(conn, name)
            slug = conn.execute("SELECT slug FROM people WHERE id = ?", (person_id,)).fetchone()
            rows = conn.execute(
                "SELECT source, created, model_id FROM templates WHERE person_id = ? ORDER BY id",
                (person_id,),
            ).fetchall()
        infos = tuple(TemplateInfo(*row) for row in rows)
        return PersonInfo(stored_name, created, len(infos), infos, slug[0])

    def person_thumbnail(self, name: str) -> bytes | None:
        """A JPEG of the person's face (their first template's aligned 112x112 crop), or None.

        Made from the crop every template already keeps, so nothing new is stored: it goes with
        the person on ``remove`` and travels in ``gallery export`` as the template crops do.
        """
        with self._read("read") as conn:
            found = roster.find(conn, name)
            if found is None:
                return None
            row = conn.execute(
                "SELECT crop FROM templates WHERE person_id = ? ORDER BY id LIMIT 1", (found[0],)
            ).fetchone()
        return None if row is None else jpeg_crop(decode_crop(row[0]))

    def rename(self, old: str, new: str) -> str:
        """Rename a person; the new name must not be another person's; return the old name."""
        new = normalise_name(new)
        with self._write("rename in") as conn:
            person_id, stored_name, _ = self._find(conn, old)
            roster.check_free(conn, new, person_id)
            conn.execute(
                "UPDATE people SET name = ?, key = ?, slug = ? WHERE id = ?",
                (new, name_key(new), person_slug(new), person_id),
            )
        log.info("renamed %r to %r", stored_name, new)
        return stored_name

    def remove(self, name: str) -> int:
        """Delete a person and all their templates, leaving no copy in the file or its WAL."""
        with self._write("remove from", erase=True) as conn:
            person_id, stored_name, _ = self._find(conn, name)
            count = roster.count_templates(conn, person_id)
            conn.execute("DELETE FROM people WHERE id = ?", (person_id,))
        log.info("removed %r (%d template(s))", stored_name, count)
        return count

    def version(self) -> int:
        """Return a number that changes whenever any connection commits a gallery write."""
        with self._lock, sqlite_errors("read the version of", self._path):
            conn = self._live()
            data_version = conn.execute("PRAGMA data_version").fetchone()[0]
            if data_version != self._data_version:
                self._counter = read_counter(conn)
                self._data_version = data_version
            return self._counter

    def snapshot(self) -> GallerySnapshot:
        """Copy every embedding and its owner out of the gallery, consistently."""
        with self._read("snapshot") as conn:
            model_id, size = read_model(conn)
            self._stored = (model_id, size)
            if model_id != self._configured[0] and not self._allow_mismatch:
                raise GalleryError(_mismatch_message(self._path, model_id, self._configured[0]))
            counter = read_counter(conn)
            rows = conn.execute(
                "SELECT p.name, p.slug, t.embedding FROM templates t"
                " JOIN people p ON p.id = t.person_id WHERE t.model_id = ? ORDER BY p.name, t.id",
                (model_id,),
            ).fetchall()
            negatives = conn.execute(
                "SELECT p.name, n.embedding FROM negatives n JOIN people p ON p.id = n.person_id"
                " WHERE n.model_id = ? ORDER BY n.id",
                (model_id,),
            ).fetchall()
        snap = _build_snapshot(rows, self._path, model_id, size, counter)
        return _with_negatives(snap, negatives, self._path)

    def dump(self) -> GalleryDump:
        """Read every person and template (with crops), for export."""
        with self._read("export") as conn:
            model_id, size = read_model(conn)
            found = conn.execute("SELECT id, name, created FROM people ORDER BY name").fetchall()
            rows = conn.execute(
                "SELECT person_id, embedding, crop, source, created FROM templates"
                " WHERE model_id = ? ORDER BY id",
                (model_id,),
            ).fetchall()
        by_person: dict[int, list[StoredTemplate]] = {pid: [] for pid, _, _ in found}
        for pid, blob, crop, source, created in rows:
            vector = _vector(blob, size, self._path)
            by_person[pid].append(StoredTemplate(vector, crop, source, created))
        stored = tuple(StoredPerson(n, c, tuple(by_person[pid])) for pid, n, c in found)
        return GalleryDump(model_id, size, stored)

    def merge(
        self, incoming: Sequence[StoredPerson], on_conflict: OnConflict = "refuse"
    ) -> ImportSummary:
        """Add people in one transaction; templates already stored are skipped.

        A person already in the gallery who brings new templates is a conflict: ``refuse``
        (the default) changes nothing and names them, ``merge`` adds the new templates,
        ``replace`` swaps the stored templates for the imported ones.
        """
        names = [normalise_name(p.name) for p in incoming]
        created = [check_time(p.created) for p in incoming]
        rows = [[self._stored_row(t) for t in p.templates] for p in incoming]
        model_id = self._configured[0]
        with self._write("import into", erase=on_conflict == "replace") as conn:
            self._check_model(conn)
            plans = [roster.plan(conn, n, r, model_id) for n, r in zip(names, rows, strict=True)]
            clashes = [
                (name, plan.stored_name)
                for name, plan in zip(names, plans, strict=True)
                if plan.conflicts
            ]
            if clashes and on_conflict == "refuse":
                raise GalleryError(_clash_message(clashes))
            replace = on_conflict == "replace"
            summary = roster.apply(conn, plans, created, model_id, replace)
        log.info(
            "imported %d template(s): %d new, %d merged, %d replaced people; %d already stored",
            summary.templates_added,
            summary.people_added,
            summary.people_merged,
            summary.people_replaced,
            summary.templates_skipped,
        )
        return summary

    def mirror(self, incoming: Sequence[StoredPerson], **meta: int | str) -> ImportSummary:
        """Make the gallery hold exactly ``incoming`` and record ``meta``, in one transaction.

        Everyone not in ``incoming`` is removed (securely deleted); readers see either the old
        gallery or the new one, never a mix.
        """
        names = [normalise_name(p.name) for p in incoming]
        created = [check_time(p.created) for p in incoming]
        rows = [[self._stored_row(t) for t in p.templates] for p in incoming]
        model_id = self._configured[0]
        with self._write("replace the people of", erase=True) as conn:
            self._check_model(conn)
            conn.execute("DELETE FROM people")  # templates go with them (ON DELETE CASCADE)
            plans = [roster.plan(conn, n, r, model_id) for n, r in zip(names, rows, strict=True)]
            summary = roster.apply(conn, plans, created, model_id, replace=True)
            set_meta(conn, **meta)
        log.info(
            "gallery now holds exactly %d people (%d templates)",
            len(names),
            summary.templates_added,
        )
        return summary

    def meta(self, key: str) -> object | None:
        """One value of the gallery's meta table (None when unset)."""
        with self._read("read the meta table of") as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def reembed(
        self,
        embed: Callable[[np.ndarray], np.ndarray],
        model_id: str,
        batch: int = 64,
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Recompute every embedding from its stored crop with ``embed``; return the count.

        A template whose crop cannot be decoded is skipped, keeps its old model (so matching
        ignores it) and is listed in ``reembed_failures``; the others are re-embedded.
        """
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        with self._lock:
            ids, vectors, counter, failures = self._embed_all(embed, batch, progress)
            size = int(vectors.shape[1]) if ids else self._configured[1]
            with self._write("re-embed", erase=True) as conn:
                if read_counter(conn) != counter:
                    raise GalleryError(f"gallery {self._path} changed while re-embedding; rerun it")
                conn.executemany(
                    "UPDATE templates SET embedding = ?, model_id = ? WHERE id = ?",
                    ((_blob(v), model_id, i) for i, v in zip(ids, vectors, strict=True)),
                )
                set_meta(conn, model_id=model_id, embedding_size=size)
            self._configured = self._stored = (model_id, size)
            self.reembed_failures = failures
        for failure in failures:
            log.warning("cannot re-embed %s", failure.describe())
        log.info("re-embedded %d template(s) with model %s", len(ids), model_id)
        return len(ids)

    def _embed_all(
        self,
        embed: Callable[[np.ndarray], np.ndarray],
        batch: int,
        progress: Callable[[int, int], None] | None,
    ) -> tuple[list[int], np.ndarray, int, list[ReembedFailure]]:
        ids: list[int] = []
        chunks: list[np.ndarray] = []
        failures: list[ReembedFailure] = []
        with self._read("re-embed") as conn:
            counter = read_counter(conn)
            total = conn.execute("SELECT COUNT(*) FROM templates").fetchone()[0]
            cursor = conn.execute(roster.NUMBERED_TEMPLATES)
            done = 0
            while rows := cursor.fetchmany(batch):
                done += len(rows)
                good = _decode_rows(rows, failures)
                if good:
                    dim = chunks[0].shape[1] if chunks else None
                    crops = np.stack([crop for _, crop in good])
                    chunks.append(_check_batch(embed(crops), len(good), dim))
                    ids.extend(template_id for template_id, _ in good)
                if progress is not None:
                    progress(done, total)
        if not chunks:
            return ids, np.empty((0, self._configured[1]), np.float32), counter, failures
        return ids, np.concatenate(chunks), counter, failures

    def _template_row(self, template: Template, created: float) -> _Row:
        blob = _blob(_check_vector(template.embedding, self._configured[1]))
        return blob, encode_crop(template.crop), clean_source(template.source), created

    def _stored_row(self, template: StoredTemplate) -> _Row:
        blob = _blob(_check_vector(template.embedding, self._configured[1]))
        crop = bytes(template.crop_png)
        decode_crop(crop)
        return blob, crop, clean_source(template.source), check_time(template.created)

    def _check_model(self, conn: sqlite3.Connection) -> None:
        model_id, size = read_model(conn)
        self._stored = (model_id, size)
        if (model_id, size) != self._configured:
            raise GalleryError(_mismatch_message(self._path, model_id, self._configured[0]))

    def _find(self, conn: sqlite3.Connection, name: str) -> tuple[int, str, float]:
        found = roster.find(conn, name)
        if found is None:
            raise GalleryError(f"no person named {visible(name)!r} in gallery {self._path}")
        return found

    def _live(self) -> sqlite3.Connection:
        if self._conn is None:
            raise GalleryError(f"gallery {self._path} is closed")
        return self._conn

    @contextmanager
    def _read(self, action: str) -> Iterator[sqlite3.Connection]:
        with self._lock, sqlite_errors(action, self._path):
            conn = self._live()
            with transaction(conn, "DEFERRED"):
                yield conn

    @contextmanager
    def _write(
        self, action: str, erase: bool = False, bump: bool = True
    ) -> Iterator[sqlite3.Connection]:
        """A write transaction; ``bump`` counts it as a change the matcher must reload for."""
        if self._readonly:
            raise GalleryError(f"cannot {action} gallery {self._path}: it was opened read-only")
        with self._lock, sqlite_errors(action, self._path):
            conn = self._live()
            with transaction(conn, "IMMEDIATE"):
                yield conn
                counter = read_counter(conn) + bump
                if bump:
                    set_meta(conn, counter=counter)
            self._counter = counter
            checkpoint(conn, self._path, erase)


def _needs_writer(path: Path) -> bool:
    """True when a read-only open must first create or upgrade the gallery at ``path``."""
    if not path.exists():
        return True
    conn = connect(path, readonly=True)
    try:
        meta = read_meta(conn, path)
    finally:
        conn.close()
    return meta is None or meta.get("schema_version") in UPGRADABLE


def _decode_rows(
    rows: list[tuple[int, bytes, str, str, int]], failures: list[ReembedFailure]
) -> list[tuple[int, np.ndarray]]:
    good = []
    for template_id, crop, name, source, number in rows:
        try:
            good.append((template_id, decode_crop(crop)))
        except GalleryError as err:
            failures.append(ReembedFailure(name, number, visible(source), str(err)))
    return good


def _clash_message(names: list[tuple[str, str]]) -> str:
    shown = ", ".join(
        repr(visible(given)) + ("" if given == stored else f" (enrolled as {visible(stored)!r})")
        for given, stored in names[:10]
    )
    more = f" and {len(names) - 10} more" if len(names) > 10 else ""
    return (
        f"{len(names)} people in the import are already in the gallery ({shown}{more}): add"
        " --merge to add their new templates or --replace to replace theirs; nothing imported"
    )


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


def jpeg_crop(crop: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """Encode a 112x112 RGB uint8 crop as JPEG bytes (thumbnails, unknown sightings)."""
    arr = np.asarray(crop)
    if arr.shape != CROP_SHAPE or arr.dtype != np.uint8:
        raise GalleryError(f"a face crop must be 112x112x3 uint8 RGB, got {arr.shape} {arr.dtype}")
    params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(arr[..., ::-1]), params)
    if not ok:
        raise GalleryError("cannot encode a face crop as JPEG")
    return buf.tobytes()


def decode_jpeg_crop(data: bytes) -> np.ndarray:
    """Decode JPEG bytes this store wrote into a 112x112 RGB uint8 crop, or raise GalleryError."""
    if not data.startswith(b"\xff\xd8\xff"):
        raise GalleryError("a stored face crop is not a JPEG image")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None or img.shape != CROP_SHAPE:
        raise GalleryError("a stored face crop is not a 112x112 JPEG")
    return np.ascontiguousarray(img[..., ::-1])


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


def _mismatch_message(path: Path, stored: str, configured: str) -> str:
    return (
        f"gallery {path} was made by model {stored!r} but the configured model is"
        f" {configured!r}; {_REEMBED_HINT} to re-embed it with {configured!r}"
    )


def _check_vector(vector: np.ndarray, size: int) -> np.ndarray:
    try:
        return check_embedding(vector, size)
    except GalleryError as err:
        raise GalleryError(f"a template {err}") from err


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


def _with_negatives(
    snap: GallerySnapshot, rows: list[tuple[str, bytes]], path: Path
) -> GallerySnapshot:
    """``snap`` with the negatives of people it names (others' are of no use to the matcher)."""
    index = {name: i for i, name in enumerate(snap.names)}
    kept = [(index[name], blob) for name, blob in rows if name in index]
    if not kept:
        return snap
    size = snap.embeddings.shape[1]
    vectors = np.stack([_vector(blob, size, path) for _, blob in kept])
    owners = np.array([i for i, _ in kept], dtype=np.int64)
    vectors.setflags(write=False)
    owners.setflags(write=False)
    return dataclasses.replace(snap, negatives=vectors, negative_owners=owners)


def _build_snapshot(
    rows: list[tuple[str, str, bytes]], path: Path, model_id: str, size: int, counter: int
) -> GallerySnapshot:
    names: list[str] = []
    slugs: list[str] = []
    owners = np.empty(len(rows), dtype=np.int64)
    for i, (name, slug, blob) in enumerate(rows):
        if not names or names[-1] != name:
            names.append(name)
            slugs.append(slug)
        owners[i] = len(names) - 1
        if len(blob) != size * 4:
            raise GalleryError(f"gallery {path} is damaged: an embedding has {len(blob)} bytes")
    joined = b"".join(blob for _, _, blob in rows)
    embeddings = np.frombuffer(joined, dtype="<f4").astype(np.float32).reshape(len(rows), size)
    embeddings.setflags(write=False)
    owners.setflags(write=False)
    return GallerySnapshot(tuple(names), embeddings, owners, model_id, counter, tuple(slugs))
