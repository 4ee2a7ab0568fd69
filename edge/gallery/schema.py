"""The gallery's SQLite file: connections (read-write or read-only), schema, upgrades, meta."""

from __future__ import annotations

import errno
import logging
import sqlite3
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from facegate.errors import GalleryError
from facegate.gallery.rules import name_key, person_slug

log = logging.getLogger(__name__)

# 1: people (name), templates. 2: people gain ``key`` (case-folded name: one person per key)
# and ``slug`` (the ASCII id MQTT topics and Home Assistant use: look-alike names are refused).
# 3: unknown faces (clusters and their sightings), recent matches kept for corrections, and
# each person's negative examples (faces that are not them). They live in the gallery file so
# labelling a cluster is one transaction; export reads only people and templates.
SCHEMA_VERSION = 3
# A CLI writer and the daemon reader share the file; waiting 5 s beats failing on a brief lock.
UPGRADABLE = (1, 2)  # older schema versions ``prepare`` upgrades in place
BUSY_TIMEOUT_MS = 5000
FILE_MODE = 0o600

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value)",
    "CREATE TABLE IF NOT EXISTS people (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL,"
    " created REAL NOT NULL, key TEXT NOT NULL, slug TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS templates (id INTEGER PRIMARY KEY,"
    " person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,"
    " model_id TEXT NOT NULL, embedding BLOB NOT NULL, crop BLOB NOT NULL,"
    " source TEXT NOT NULL, created REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS templates_person ON templates(person_id)",
)
_UNKNOWNS_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS unknown_clusters (id INTEGER PRIMARY KEY,"
    " state TEXT NOT NULL DEFAULT 'open', label TEXT,"
    " person_id INTEGER REFERENCES people(id) ON DELETE SET NULL,"
    " model_id TEXT NOT NULL, total BLOB NOT NULL, created REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS unknown_sightings (id INTEGER PRIMARY KEY,"
    " cluster_id INTEGER NOT NULL REFERENCES unknown_clusters(id) ON DELETE CASCADE,"
    " time REAL NOT NULL, camera TEXT NOT NULL, track_id INTEGER NOT NULL, visit_id TEXT,"
    " quality REAL NOT NULL, model_id TEXT NOT NULL, embedding BLOB NOT NULL,"
    " crop BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS sightings_cluster ON unknown_sightings(cluster_id)",
    "CREATE INDEX IF NOT EXISTS sightings_time ON unknown_sightings(time)",
    "CREATE TABLE IF NOT EXISTS recent_matches (id INTEGER PRIMARY KEY,"
    " visit_id TEXT NOT NULL, person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,"
    " time REAL NOT NULL, camera TEXT NOT NULL, similarity REAL NOT NULL,"
    " model_id TEXT NOT NULL, embedding BLOB NOT NULL, crop BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS recent_visit ON recent_matches(visit_id)",
    "CREATE TABLE IF NOT EXISTS negatives (id INTEGER PRIMARY KEY,"
    " person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,"
    " model_id TEXT NOT NULL, embedding BLOB NOT NULL, crop BLOB NOT NULL,"
    " source TEXT NOT NULL, created REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS negatives_person ON negatives(person_id)",
)
_PEOPLE_INDEXES = (
    "CREATE UNIQUE INDEX IF NOT EXISTS people_key ON people(key)",
    "CREATE UNIQUE INDEX IF NOT EXISTS people_slug ON people(slug)",
)


def connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    """A connection to ``path``: read-write (WAL, secure_delete) or read-only (never writes)."""
    with sqlite_errors("open", path):
        if readonly:
            return _connect_readonly(path)
        conn = _open(str(path))
        try:
            conn.execute("PRAGMA secure_delete = ON")  # removed faces are overwritten, not freed
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode != "wal":
                    log.warning("gallery %s cannot use WAL (journal mode %s)", path, mode)
        except BaseException:
            conn.close()
            raise
    return conn


def _open(target: str, uri: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(
        target,
        uri=uri,
        timeout=BUSY_TIMEOUT_MS / 1000,
        isolation_level=None,
        check_same_thread=False,
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """``mode=ro``; where even that fails (a read-only mount or a full disk leaves no room for
    the ``-shm`` index a WAL reader needs) and no WAL holds unmerged writes, ``immutable=1``."""
    uri = path.resolve().as_uri()
    conn = _open(f"{uri}?mode=ro", uri=True)
    try:
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError as err:
        conn.close()
        wal = path.with_name(path.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise GalleryError(
                f"cannot read gallery {path}: {err}; its write-ahead log holds changes that"
                " need write access (free disk space or mount it read-write once)"
            ) from err
        log.warning(
            "gallery %s opened immutable (%s: read-only or full file system): changes made"
            " to it later are seen only after a restart",
            path,
            err,
        )
    conn = _open(f"{uri}?mode=ro&immutable=1", uri=True)
    conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    return conn


def read_meta(conn: sqlite3.Connection, path: Path) -> dict[str, object] | None:
    """The meta table as a dict; None for an empty file; GalleryError for a foreign one."""
    with sqlite_errors("open", path):
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        if "meta" not in tables:
            if tables:
                raise GalleryError(f"{path} is an SQLite file but not a facegate gallery")
            return None
        return dict(conn.execute("SELECT key, value FROM meta").fetchall())


def prepare(conn: sqlite3.Connection, path: Path, model_id: str, size: int) -> dict[str, object]:
    """Create the schema in an empty file or upgrade an older one; return the meta table."""
    meta = read_meta(conn, path)
    with sqlite_errors("open", path):
        if meta is None:
            _create(conn, path, model_id, size)
        elif meta.get("schema_version") in UPGRADABLE:
            old = meta["schema_version"]
            with transaction(conn, "IMMEDIATE"):
                if old == 1:
                    _upgrade_1_to_2(conn, path)
                for statement in _UNKNOWNS_SCHEMA:  # 2 -> 3: new tables only
                    conn.execute(statement)
                set_meta(conn, schema_version=SCHEMA_VERSION)
            log.info("upgraded gallery %s from schema %s to %d", path, old, SCHEMA_VERSION)
    meta = read_meta(conn, path)
    assert meta is not None  # just created
    return meta


def _create(conn: sqlite3.Connection, path: Path, model_id: str, size: int) -> None:
    with transaction(conn, "IMMEDIATE"):
        for statement in (*_SCHEMA, *_PEOPLE_INDEXES, *_UNKNOWNS_SCHEMA):
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


def _upgrade_1_to_2(conn: sqlite3.Connection, path: Path) -> None:
    """Add each person's key and slug. Names that now collide are kept apart, with a warning."""
    conn.execute("ALTER TABLE people ADD COLUMN key TEXT")
    conn.execute("ALTER TABLE people ADD COLUMN slug TEXT")
    rows = conn.execute("SELECT id, name FROM people ORDER BY id").fetchall()
    names = {name for _, name in rows}
    keys: dict[str, str] = {}
    slugs: dict[str, str] = {}
    for person_id, name in rows:
        nfc = unicodedata.normalize("NFC", name)
        if nfc != name and nfc not in names:
            names.add(nfc)
            name = nfc
        key, slug = name_key(name), person_slug(name)
        other = keys.get(key) or slugs.get(slug)
        if other is not None:
            log.warning(
                "gallery %s: %r and %r are now one name (same letters ignoring case, or look"
                " alike); both are kept: rename one with `facegate gallery rename`",
                path,
                other,
                name,
            )
            key, slug = f"{key}#{person_id}", f"{slug}_{person_id}"
        keys[key], slugs[slug] = name, name
        conn.execute(
            "UPDATE people SET name = ?, key = ?, slug = ? WHERE id = ?",
            (name, key, slug, person_id),
        )
    for statement in _PEOPLE_INDEXES:
        conn.execute(statement)


def check_meta(meta: dict[str, object], path: Path, model_id: str, size: int) -> tuple[str, int]:
    """The (model id, embedding size) the gallery holds, after checking schema and meta."""
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise GalleryError(
            f"gallery {path} has schema version {version!r}; this facegate reads"
            f" {SCHEMA_VERSION} (and upgrades 1 and 2)"
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
            f" makes {size}-d ones; run `facegate gallery reembed`"
        )
    return stored_model, stored_size


def protect_files(path: Path) -> None:
    """Make the gallery file and its WAL companions mode 0600 where they are not."""
    for suffix in ("", "-wal", "-shm"):
        target = path.with_name(path.name + suffix)
        try:
            if target.exists() and target.stat().st_mode & 0o077:
                target.chmod(FILE_MODE)
        except OSError as err:
            level = logging.DEBUG if err.errno == errno.EROFS else logging.WARNING
            log.log(level, "cannot make %s private (mode 0600): %s", target, err)


def checkpoint(conn: sqlite3.Connection, path: Path, erased: bool) -> None:
    """Merge the WAL into the file and truncate it, so deleted rows leave no copy behind."""
    busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    if busy and erased:
        log.warning(
            "gallery %s: a reader kept the write-ahead log busy; removed templates stay in"
            " %s-wal until the next write or until every reader closes",
            path,
            path.name,
        )


@contextmanager
def sqlite_errors(action: str, path: Path) -> Iterator[None]:
    """Turn sqlite3 errors into one-line GalleryErrors saying what failed on which file."""
    try:
        yield
    except sqlite3.Error as err:
        raise GalleryError(f"cannot {action} gallery {path}: {err}") from err


@contextmanager
def transaction(conn: sqlite3.Connection, mode: Literal["DEFERRED", "IMMEDIATE"]) -> Iterator[None]:
    """BEGIN ``mode`` ... COMMIT, rolled back on any exception."""
    conn.execute(f"BEGIN {mode}")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def read_model(conn: sqlite3.Connection) -> tuple[str, int]:
    """The (model id, embedding size) the meta table records."""
    rows = dict(
        conn.execute("SELECT key, value FROM meta WHERE key IN ('model_id', 'embedding_size')")
    )
    return rows["model_id"], rows["embedding_size"]


def read_counter(conn: sqlite3.Connection) -> int:
    """The write counter: one more after every committed gallery write."""
    return conn.execute("SELECT value FROM meta WHERE key = 'counter'").fetchone()[0]


def set_meta(conn: sqlite3.Connection, **values: object) -> None:
    """Write meta keys."""
    conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", list(values.items()))
