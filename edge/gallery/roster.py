"""The people table: finding a person by name, adding one, and planning an import's changes.

A person is found by their exact name, or else by their key (the name case-folded): "Alice"
finds "alice". A new name whose slug another person has (it only looks the same, as a Cyrillic
"оbama" beside "obama") is refused, because both would share MQTT topics and unique_ids.
"""

from __future__ import annotations

import sqlite3
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from facegate.gallery.rules import NameRefused, name_key, person_slug
from facegate.text import visible

_Row = tuple[bytes, bytes, str, float]  # embedding blob, crop PNG, source, created

# Every template with its owner and its 1-based number within the person (the order
# `facegate gallery show` lists them in), so a failure can name it.
NUMBERED_TEMPLATES = (
    "SELECT t.id, t.crop, p.name, t.source,"
    " ROW_NUMBER() OVER (PARTITION BY t.person_id ORDER BY t.id)"
    " FROM templates t JOIN people p ON p.id = t.person_id ORDER BY t.id"
)


@dataclass(frozen=True, slots=True)
class Plan:
    """What importing one person does: add them, or add to (or replace) a stored person."""

    person_id: int | None  # None: a new person
    stored_name: str
    rows: tuple[_Row, ...]  # the imported templates, each once
    new_rows: tuple[_Row, ...]  # those not already stored for this person

    @property
    def conflicts(self) -> bool:
        """A stored person to whom the import would add templates."""
        return self.person_id is not None and bool(self.new_rows)


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """What an import changed; templates already in the gallery are skipped, not doubled."""

    people_added: int = 0
    people_merged: int = 0
    templates_added: int = 0
    templates_skipped: int = 0
    people_replaced: int = 0


def find(conn: sqlite3.Connection, name: str) -> tuple[int, str, float] | None:
    """(id, stored name, created) of the person called ``name`` (exactly, else by key)."""
    if not isinstance(name, str) or any(unicodedata.category(c) == "Cs" for c in name):
        return None  # an undecodable command-line argument names nobody
    nfc = unicodedata.normalize("NFC", name)
    row = conn.execute(
        "SELECT id, name, created FROM people WHERE name IN (?, ?) ORDER BY name = ? DESC",
        (name, nfc, name),
    ).fetchone()
    if row is None:
        row = conn.execute(
            "SELECT id, name, created FROM people WHERE key = ?", (name_key(nfc),)
        ).fetchone()
    return None if row is None else (row[0], row[1], row[2])


def check_free(conn: sqlite3.Connection, name: str, person_id: int | None) -> None:
    """Refuse ``name`` when another person has its key (same name) or its slug (look-alike)."""
    row = conn.execute(
        "SELECT name FROM people WHERE key = ? AND id IS NOT ?", (name_key(name), person_id)
    ).fetchone()
    if row is not None:
        raise NameRefused(
            f"cannot use the name {visible(name)!r}: a person named {visible(row[0])!r}"
            " already exists (a name is one person whatever its case)"
        )
    slug = person_slug(name)
    row = conn.execute(
        "SELECT name FROM people WHERE slug = ? AND id IS NOT ?", (slug, person_id)
    ).fetchone()
    if row is not None:
        raise NameRefused(
            f"cannot use the name {visible(name)!r}: it looks like {visible(row[0])!r} (both"
            f" would be {slug!r} in MQTT topics and Home Assistant); choose a clearly"
            " different name"
        )


def find_or_add(conn: sqlite3.Connection, name: str, created: float) -> tuple[int, str]:
    """(id, stored name) of ``name``'s person, added when new (look-alikes refused)."""
    found = find(conn, name)
    if found is not None:
        return found[0], found[1]
    return add(conn, name, created), name


def add(conn: sqlite3.Connection, name: str, created: float) -> int:
    """Insert a new person with their key and slug; return the id."""
    check_free(conn, name, None)
    cursor = conn.execute(
        "INSERT INTO people (name, created, key, slug) VALUES (?, ?, ?, ?)",
        (name, created, name_key(name), person_slug(name)),
    )
    return int(cursor.lastrowid or 0)


def plan(conn: sqlite3.Connection, name: str, rows: Sequence[_Row], model_id: str) -> Plan:
    """What importing ``rows`` for ``name`` changes; a look-alike name is refused here."""
    seen: set[bytes] = set()
    unique = tuple(row for row in rows if not (row[0] in seen or seen.add(row[0])))
    found = find(conn, name)
    if found is None:
        check_free(conn, name, None)
        return Plan(None, name, unique, unique)
    stored = {
        blob
        for (blob,) in conn.execute(
            "SELECT embedding FROM templates WHERE person_id = ? AND model_id = ?",
            (found[0], model_id),
        )
    }
    return Plan(found[0], found[1], unique, tuple(r for r in unique if r[0] not in stored))


def apply(
    conn: sqlite3.Connection,
    plans: Sequence[Plan],
    created: Sequence[float],
    model_id: str,
    replace: bool,
) -> ImportSummary:
    """Carry out import plans; with ``replace`` a conflicting person's templates are swapped."""
    added = merged = replaced = count = skipped = 0
    for item, when in zip(plans, created, strict=True):
        if item.person_id is None:
            rows, added = item.rows, added + 1
            insert_templates(conn, add(conn, item.stored_name, when), model_id, rows)
        elif item.conflicts and replace:
            rows, replaced = item.rows, replaced + 1
            conn.execute("DELETE FROM templates WHERE person_id = ?", (item.person_id,))
            insert_templates(conn, item.person_id, model_id, rows)
        else:
            rows, merged = item.new_rows, merged + bool(item.new_rows)
            insert_templates(conn, item.person_id, model_id, rows)
        count, skipped = count + len(rows), skipped + len(item.rows) - len(rows)
    return ImportSummary(added, merged, count, skipped, replaced)


def insert_templates(
    conn: sqlite3.Connection, person_id: int, model_id: str, rows: Sequence[_Row]
) -> None:
    """Insert template rows for one person."""
    conn.executemany(
        "INSERT INTO templates (person_id, model_id, embedding, crop, source, created)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [(person_id, model_id, *row) for row in rows],
    )


def count_templates(conn: sqlite3.Connection, person_id: int) -> int:
    """How many templates one person has."""
    query = "SELECT COUNT(*) FROM templates WHERE person_id = ?"
    return conn.execute(query, (person_id,)).fetchone()[0]
