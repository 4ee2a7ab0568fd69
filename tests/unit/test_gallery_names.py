"""Person names and slugs, the schema-1 upgrade, real erasure, and bounded stored text."""

from __future__ import annotations

import logging
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from facegate.errors import GalleryError
from facegate.gallery import GalleryStore, Template
from facegate.gallery.rules import MAX_SOURCE_LENGTH, NameRefused, person_slug
from facegate.gallery.store import SCHEMA_VERSION

MODEL = "mobilefacenet-test"
DIM = 8
# Made by facegate's schema-1 store (the code before this schema), enrolling "Alice", "alice",
# "Zoe" + combining diaeresis (not NFC), "obama" (2 templates, one source holding terminal
# escapes) and a Cyrillic "оbama": every collision the upgrade must keep apart.
V1_GALLERY = Path(__file__).resolve().parents[1] / "data" / "gallery-v1.db"
ESCAPE_SOURCE = "\x1b]0;pwned\x07\x1b[2Jobama2.jpg"


def template(rng: np.random.Generator, source: str = "photo.jpg") -> Template:
    vector = rng.normal(size=DIM).astype(np.float32)
    crop = rng.integers(0, 256, size=(112, 112, 3), dtype=np.uint8)
    return Template(vector / np.linalg.norm(vector), crop, source)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[GalleryStore]:
    with GalleryStore.open(tmp_path / "gallery.db", MODEL, DIM) as opened:
        yield opened


def test_names_differing_in_case_are_one_person(
    store: GalleryStore, rng: np.random.Generator
) -> None:
    store.enroll("alice", [template(rng)])
    assert store.enroll("Alice", [template(rng)]) == 2
    assert [(p.name, p.template_count) for p in store.people()] == [("alice", 2)]
    assert store.person("ALICE").name == "alice"
    store.enroll("Bob", [template(rng)])
    with pytest.raises(GalleryError, match="already exists"):
        store.rename("bob", "ALICE")
    store.rename("alice", "Alice")  # a change of case is a rename of the same person
    assert [p.name for p in store.people()] == ["Alice", "Bob"]


def test_look_alike_names_are_refused(store: GalleryStore, rng: np.random.Generator) -> None:
    store.enroll("obama", [template(rng)])
    for fake in ("\u043ebama", "Obama!", "o\u200dbama", "o\u200bbama"):  # Cyrillic, invisible
        with pytest.raises(NameRefused, match=r"looks like 'obama'|control") as info:
            store.enroll(fake, [template(rng)])
        assert "\n" not in str(info.value)
    store.enroll("barack", [template(rng)])
    with pytest.raises(NameRefused, match="looks like"):
        store.rename("barack", "\u043ebama")
    assert store.enroll("\uff4fbama", [template(rng)]) == 2  # full-width letters: NFKC, same
    assert [p.name for p in store.people()] == ["barack", "obama"]


def test_names_are_stored_in_nfc(store: GalleryStore, rng: np.random.Generator) -> None:
    store.enroll("Zoe\u0308", [template(rng)])
    assert [p.name for p in store.people()] == ["Zo\u00eb"]
    assert store.person("Zoe\u0308").template_count == 1
    with pytest.raises(NameRefused, match="looks like"):
        store.enroll("Zoe", [template(rng)])  # same slug: would share MQTT topics


def test_one_slug_per_person_in_list_and_snapshot(
    store: GalleryStore, rng: np.random.Generator
) -> None:
    for name in ("Zo\u00eb \u00dcnal", "\u674e\u5c0f\u9f99", "\u2605\u2605", "x" * 100):
        store.enroll(name, [template(rng)])
    slugs = {p.name: p.slug for p in store.people()}
    assert slugs["Zo\u00eb \u00dcnal"] == "zoe_unal"
    assert slugs["\u674e\u5c0f\u9f99"] == "lixiaolong"
    assert slugs["\u2605\u2605"].startswith("person_")
    assert len(slugs["x" * 100]) <= 48
    assert all(s and s.replace("_", "").isalnum() and s.isascii() for s in slugs.values())
    snapshot = store.snapshot()
    assert dict(zip(snapshot.names, snapshot.slugs, strict=True)) == slugs
    assert snapshot.slug_of("Zo\u00eb \u00dcnal") == "zoe_unal"
    assert person_slug("Zo\u00eb \u00dcnal") == "zoe_unal"


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "empty"),
        (" alice", "spaces"),
        ("al\tice", "control"),
        ("al\nice", "control"),
        ("a\x1b[2Jb", "control"),
        ("a\u202eb", "control"),
        ("a\u2028b", "control"),
        ("x" * 101, "longer than 100"),
    ],
)
def test_invalid_names_are_refused_before_storing(
    store: GalleryStore, rng: np.random.Generator, name: str, problem: str
) -> None:
    with pytest.raises(NameRefused, match=f"invalid person name.*{problem}") as info:
        store.enroll(name, [template(rng)])
    assert "\n" not in str(info.value) and "\x1b" not in str(info.value)
    assert store.people() == []


def test_markup_is_just_text_in_a_name(store: GalleryStore, rng: np.random.Generator) -> None:
    store.enroll("[/x]", [template(rng)])
    store.enroll("biden", [template(rng)])
    store.rename("biden", "[red]obama[/red]")
    assert sorted(p.name for p in store.people()) == ["[/x]", "[red]obama[/red]"]


def test_sources_are_stored_without_control_characters_and_bounded(
    store: GalleryStore, rng: np.random.Generator
) -> None:
    store.enroll("alice", [template(rng, ESCAPE_SOURCE), template(rng, "bad\udcffname.jpg")])
    sources = [t.source for t in store.person("alice").templates]
    assert sources == ["\\x1b]0;pwned\\x07\\x1b[2Jobama2.jpg", "bad\\udcffname.jpg"]
    with pytest.raises(GalleryError, match="longer than 4096"):
        store.enroll("alice", [template(rng, "x" * (MAX_SOURCE_LENGTH + 1))])
    assert store.person("alice").template_count == 2


def test_a_schema_1_gallery_is_upgraded_in_place(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "gallery.db"
    shutil.copyfile(V1_GALLERY, path)
    with caplog.at_level(logging.WARNING), GalleryStore.open(path, MODEL, DIM) as store:
        people = {p.name: (p.slug, p.template_count) for p in store.people()}
        assert people == {
            "Alice": ("alice", 1),
            "alice": ("alice_2", 1),
            "Zo\u00eb": ("zoe", 1),
            "obama": ("obama", 2),
            "\u043ebama": ("obama_5", 1),
        }
        assert store.person("alice").name == "alice"  # an exact name still finds its person
        assert store.person("ALICE").name == "Alice"
        assert store.snapshot().embeddings.shape == (6, DIM)
        store.rename("alice", "alicia")  # the way out of a collision the upgrade kept
        assert {p.name: p.slug for p in store.people()}["alicia"] == "alicia"
        assert store.person("obama").templates[1].source == ESCAPE_SOURCE  # shown escaped
    assert "'Alice' and 'alice' are now one name" in caplog.text
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
            SCHEMA_VERSION,
        )
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_read_only_open_of_a_schema_1_gallery_upgrades_it_first(tmp_path: Path) -> None:
    path = tmp_path / "gallery.db"
    shutil.copyfile(V1_GALLERY, path)
    with GalleryStore.open(path, MODEL, DIM, readonly=True) as store:
        assert len(store.people()) == 5
        with pytest.raises(GalleryError, match="read-only"):
            store.remove("obama")


def _raw(path: Path) -> bytes:
    return b"".join(
        p.read_bytes()
        for p in (path, path.with_name(path.name + "-wal"))
        if p.exists()
    )


def test_removed_faces_leave_no_bytes_while_a_reader_holds_the_file(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    path = tmp_path / "gallery.db"
    with GalleryStore.open(path, MODEL, DIM) as daemon:  # the daemon's reader stays open
        daemon.snapshot()
        zed = template(rng, "zed.jpg")
        with GalleryStore.open(path, MODEL, DIM) as cli:
            cli.enroll("amy", [template(rng)])
            cli.enroll("zed", [zed])
        embedding = np.asarray(zed.embedding, "<f4").tobytes()
        crop = daemon.dump().people[1].templates[0].crop_png
        assert embedding in _raw(path) and crop[100:164] in _raw(path)
        daemon.snapshot()
        with GalleryStore.open(path, MODEL, DIM) as cli:
            cli.remove("zed")
        raw = _raw(path)
        assert embedding not in raw
        assert crop[100:164] not in raw and crop[-200:-136] not in raw
        assert daemon.snapshot().names == ("amy",)
