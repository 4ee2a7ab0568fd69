"""Gallery export/import: round trip, merge, and refusal of damaged or foreign files."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facegate.errors import GalleryError
from facegate.gallery import (
    GalleryStore,
    ImportSummary,
    Template,
    export_gallery,
    import_gallery,
)
from facegate.gallery.store import decode_crop

MODEL = "mobilefacenet-test"
DIM = 8
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def make_template(rng: np.random.Generator, source: str) -> Template:
    """A random unit embedding with a random RGB crop."""
    vector = rng.normal(size=DIM).astype(np.float32)
    crop = rng.integers(0, 256, size=(112, 112, 3), dtype=np.uint8)
    return Template(vector / np.linalg.norm(vector), crop, source)


def checksum(body: dict[str, Any]) -> str:
    """The format's integrity field, computed independently of the implementation."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def write_document(path: Path, body: dict[str, Any], *, reseal: bool = True) -> Path:
    """Write ``body`` as an export file, with a fresh checksum unless ``reseal`` is off."""
    body = {k: v for k, v in body.items() if k != "sha256"} if reseal else body
    if reseal:
        body["sha256"] = checksum(body)
    path.write_text(json.dumps(body), encoding="utf-8")
    return path


@pytest.fixture
def source(tmp_path: Path) -> Iterator[GalleryStore]:
    rng = np.random.default_rng(42)
    with GalleryStore.open(tmp_path / "source.db", MODEL, DIM) as store:
        store.enroll("alice", [make_template(rng, "a1.jpg"), make_template(rng, "a2.jpg")])
        store.enroll("bob", [make_template(rng, "b1.jpg")])
        yield store


@pytest.fixture
def target(tmp_path: Path) -> Iterator[GalleryStore]:
    with GalleryStore.open(tmp_path / "target.db", MODEL, DIM) as store:
        yield store


@pytest.fixture
def exported(source: GalleryStore, tmp_path: Path) -> Path:
    path = tmp_path / "gallery.json"
    export_gallery(source, path)
    return path


def assert_untouched(store: GalleryStore, version: int) -> None:
    assert store.version() == version
    assert store.people() == []


def test_round_trip(source: GalleryStore, target: GalleryStore, tmp_path: Path) -> None:
    path = tmp_path / "gallery.json"
    summary = export_gallery(source, path)
    assert (summary.people, summary.templates) == (2, 3)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert import_gallery(target, path) == ImportSummary(2, 0, 3)
    mine, theirs = source.dump(), target.dump()
    assert [p.name for p in theirs.people] == ["alice", "bob"]
    for a, b in zip(mine.people, theirs.people, strict=True):
        assert a.created == b.created
        for ta, tb in zip(a.templates, b.templates, strict=True):
            np.testing.assert_array_equal(ta.embedding, tb.embedding)
            np.testing.assert_array_equal(decode_crop(ta.crop_png), decode_crop(tb.crop_png))
            assert (ta.source, ta.created) == (tb.source, tb.created)


def test_document_layout(exported: Path) -> None:
    document = json.loads(exported.read_text(encoding="utf-8"))
    assert document["format"] == "facegate-gallery"
    assert document["version"] == 1
    assert document["model_id"] == MODEL
    assert document["embedding_size"] == DIM
    assert document["sha256"] == checksum({k: v for k, v in document.items() if k != "sha256"})
    template = document["people"][0]["templates"][0]
    assert len(base64.b64decode(template["embedding"])) == DIM * 4
    assert base64.b64decode(template["crop"]).startswith(b"\x89PNG")


def test_export_replaces_existing_file(source: GalleryStore, exported: Path) -> None:
    exported.chmod(0o644)
    export_gallery(source, exported)
    assert stat.S_IMODE(exported.stat().st_mode) == 0o600
    assert not [p for p in exported.parent.iterdir() if p.name.endswith(".tmp")]


def test_import_merges_existing_names_only_when_asked(
    target: GalleryStore, exported: Path
) -> None:
    target.enroll("Alice", [make_template(np.random.default_rng(0), "mine.jpg")])
    version = target.version()
    clash = r"\('alice' \(enrolled as 'Alice'\)\): add --merge"
    with pytest.raises(GalleryError, match=clash) as info:
        import_gallery(target, exported)
    assert "\n" not in str(info.value)
    assert target.version() == version
    assert import_gallery(target, exported, on_conflict="merge") == ImportSummary(1, 1, 3)
    assert [(p.name, p.template_count) for p in target.people()] == [("Alice", 3), ("bob", 1)]


def test_import_replace_swaps_the_templates(target: GalleryStore, exported: Path) -> None:
    target.enroll("alice", [make_template(np.random.default_rng(0), "mine.jpg")])
    summary = import_gallery(target, exported, on_conflict="replace")
    assert summary == ImportSummary(1, 0, 3, 0, 1)
    sources = [t.source for t in target.person("alice").templates]
    assert sources == ["a1.jpg", "a2.jpg"]


def test_importing_twice_stores_each_template_once(
    target: GalleryStore, exported: Path
) -> None:
    assert import_gallery(target, exported) == ImportSummary(2, 0, 3)
    assert import_gallery(target, exported) == ImportSummary(0, 0, 0, 3)
    assert import_gallery(target, exported, on_conflict="merge") == ImportSummary(0, 0, 0, 3)
    assert [(p.name, p.template_count) for p in target.people()] == [("alice", 2), ("bob", 1)]


def test_a_look_alike_name_is_refused_even_with_merge(
    target: GalleryStore, exported: Path
) -> None:
    target.enroll("\u0430lice", [make_template(np.random.default_rng(0), "x.jpg")])  # Cyrillic
    for mode in ("refuse", "merge", "replace"):
        with pytest.raises(GalleryError, match="looks like"):
            import_gallery(target, exported, on_conflict=mode)
    assert [p.name for p in target.people()] == ["\u0430lice"]


def test_tampered_file_is_refused(target: GalleryStore, exported: Path) -> None:
    text = exported.read_text(encoding="utf-8")
    at = text.index('"embedding":"') + len('"embedding":"') + 5
    flipped = "A" if text[at] != "A" else "B"
    exported.write_text(text[:at] + flipped + text[at + 1 :], encoding="utf-8")
    version = target.version()
    with pytest.raises(GalleryError, match="sha256") as info:
        import_gallery(target, exported)
    assert "\n" not in str(info.value)
    assert_untouched(target, version)


def test_truncated_file_is_refused(target: GalleryStore, exported: Path) -> None:
    data = exported.read_bytes()
    exported.write_bytes(data[: len(data) // 2])
    version = target.version()
    with pytest.raises(GalleryError, match="not a valid gallery export"):
        import_gallery(target, exported)
    assert_untouched(target, version)


def test_other_model_is_refused(exported: Path, tmp_path: Path) -> None:
    with GalleryStore.open(tmp_path / "other.db", "arcface-r50", DIM) as other:
        version = other.version()
        with pytest.raises(GalleryError) as info:
            import_gallery(other, exported)
        message = str(info.value)
        assert MODEL in message and "arcface-r50" in message and "reembed" in message
        assert_untouched(other, version)


def test_bad_record_late_in_file_imports_nothing(target: GalleryStore, exported: Path) -> None:
    body = json.loads(exported.read_text(encoding="utf-8"))
    body["people"][-1]["templates"][0]["crop"] = base64.b64encode(b"not a png").decode()
    write_document(exported, body)
    version = target.version()
    with pytest.raises(GalleryError, match=r"person #1 \('bob'\) template #0 .*not a PNG"):
        import_gallery(target, exported)
    assert_untouched(target, version)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b.update(version=2), "format version 2"),
        (lambda b: b.update(version=True), "format version True"),
        (lambda b: b.update(format="zip"), "not a facegate-gallery export"),
        (lambda b: b.update(embedding_size=4), "embedding_size"),
        (lambda b: b["people"][0].update(name="bob"), "more than once"),
        (lambda b: b["people"][0].update(name="a\x1b[2J"), "invalid person name"),
        (lambda b: b["people"][0].update(name="a\nb"), "invalid person name"),
        (lambda b: b["people"][0].update(templates=[]), "no templates"),
        (lambda b: b["people"][0].update(created=10**400), "out of range"),
        (lambda b: b["people"][0].update(created=1e300), r"person #0 \('alice'\) created 1e\+300"),
        (lambda b: b["people"][0].update(created=-1e18), r"person #0 .*created -1e\+18 is out"),
        (lambda b: b["people"][1]["templates"][0].update(created=1e300), "template #0 created"),
        (lambda b: b["people"][1]["templates"][0].update(created=-1), "template #0 created -1"),
        (lambda b: b["people"][1]["templates"][0].update(source="x" * 5000), "longer than 4096"),
        (lambda b: b["people"][1].update(name="ALICE"), "same name"),
        (lambda b: b["people"][1].update(name="\u0430lice"), "look alike"),
        (lambda b: b["people"][0]["templates"][0].update(embedding="!!"), "base64"),
        (lambda b: b["people"][0]["templates"][0].update(source=3), "source"),
        (
            lambda b: b["people"][0]["templates"][0].update(
                embedding=base64.b64encode(np.full(DIM, np.nan, "<f4").tobytes()).decode()
            ),
            "NaN",
        ),
    ],
)
def test_invalid_content_is_refused(
    target: GalleryStore, exported: Path, change: Any, message: str
) -> None:
    body = json.loads(exported.read_text(encoding="utf-8"))
    change(body)
    write_document(exported, body)
    version = target.version()
    with pytest.raises(GalleryError, match=message):
        import_gallery(target, exported)
    assert_untouched(target, version)


def test_non_finite_json_constants_are_refused(target: GalleryStore, exported: Path) -> None:
    body = json.loads(exported.read_text(encoding="utf-8"))
    body["people"][0]["created"] = float("nan")
    exported.write_text(json.dumps(body), encoding="utf-8")  # writes the bare constant NaN
    with pytest.raises(GalleryError, match="NaN is not allowed"):
        import_gallery(target, exported)
    assert target.people() == []


def test_unreadable_file_is_a_gallery_error(target: GalleryStore, tmp_path: Path) -> None:
    with pytest.raises(GalleryError, match="cannot read"):
        import_gallery(target, tmp_path / "missing.json")
    with pytest.raises(GalleryError, match="cannot write"):
        export_gallery(target, tmp_path / "no-such-dir" / "out.json")


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def import_or_gallery_error(store: GalleryStore, path: Path) -> None:
    """Import must succeed or raise GalleryError; on error nothing may change."""
    version = store.version()
    try:
        import_gallery(store, path)
    except GalleryError as err:
        assert "\n" not in str(err)
        assert store.version() == version


@FUZZ
@given(data=st.binary(max_size=2048))
def test_random_bytes_only_raise_gallery_error(
    target: GalleryStore, tmp_path: Path, data: bytes
) -> None:
    path = tmp_path / "fuzz.json"
    path.write_bytes(data)
    with pytest.raises(GalleryError):
        import_gallery(target, path)
    assert target.people() == []


@FUZZ
@given(value=JSON)
def test_random_json_only_raises_gallery_error(
    target: GalleryStore, tmp_path: Path, value: object
) -> None:
    path = tmp_path / "fuzz.json"
    path.write_text(json.dumps(value), encoding="utf-8")
    with pytest.raises(GalleryError):
        import_gallery(target, path)
    header = {"format": "facegate-gallery", "version": 1, "model_id": MODEL}
    write_document(path, {**header, "embedding_size": DIM, "people": value})
    import_or_gallery_error(target, path)


TOP_KEYS = ["format", "version", "model_id", "embedding_size", "people"]
PERSON_KEYS = ["name", "created", "templates"]
TEMPLATE_KEYS = ["embedding", "crop", "source", "created"]


@FUZZ
@given(data=st.data())
def test_sealed_mutations_only_raise_gallery_error(
    target: GalleryStore, exported: Path, data: st.DataObject
) -> None:
    original = json.loads(exported.read_text(encoding="utf-8"))
    body = copy.deepcopy(original)
    level = data.draw(st.sampled_from(["top", "person", "template"]))
    holder = body
    if level != "top":
        holder = body["people"][data.draw(st.integers(0, 1))]
    if level == "template":
        holder = holder["templates"][0]
    keys = {"top": TOP_KEYS, "person": PERSON_KEYS, "template": TEMPLATE_KEYS}[level]
    key = data.draw(st.sampled_from(keys))
    if data.draw(st.booleans()):
        holder.pop(key)
    else:
        holder[key] = data.draw(JSON)
    path = write_document(exported.with_name("mutated.json"), body)
    import_or_gallery_error(target, path)


def _break(store: GalleryStore, sql: str, *params: object) -> None:
    """Damage the gallery behind the store's back, as a bad disk or an old import would."""
    with sqlite3.connect(store.path) as conn:
        conn.execute(sql, params)
    conn.close()


def test_export_leaves_out_what_import_would_refuse_and_says_so(
    source: GalleryStore, target: GalleryStore, tmp_path: Path
) -> None:
    _break(source, "UPDATE templates SET crop = ? WHERE source = 'a2.jpg'", b"\x89PNG broken")
    _break(source, "UPDATE people SET created = 1e300 WHERE name = 'bob'")
    path = tmp_path / "backup.json"
    summary = export_gallery(source, path)
    assert (summary.people, summary.templates) == (1, 1)
    assert len(summary.skipped) == 2
    assert summary.skipped[0].startswith("'alice' template #2 (a2.jpg): ")
    assert "PNG" in summary.skipped[0]
    assert summary.skipped[1].startswith("'bob' and 1 template(s): created 1e+300 is out")
    assert import_gallery(target, path) == ImportSummary(1, 0, 1)  # the backup restores
