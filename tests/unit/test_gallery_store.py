"""GalleryStore on real SQLite files: enrolment, model checks, re-embedding, modes, atomicity."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from facegate.errors import GalleryError
from facegate.gallery import GalleryStore, Template
from facegate.gallery.store import decode_crop

MODEL = "mobilefacenet-test"
DIM = 8
SUBPROCESS_TIMEOUT_S = 60


def unit_vector(rng: np.random.Generator, dim: int = DIM) -> np.ndarray:
    """A random L2-normalised float32 vector."""
    vector = rng.normal(size=dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


def make_template(rng: np.random.Generator, source: str = "photo.jpg") -> Template:
    """A random template with a random RGB crop."""
    crop = rng.integers(0, 256, size=(112, 112, 3), dtype=np.uint8)
    return Template(unit_vector(rng), crop, source)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def gallery_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "gallery.db"


@pytest.fixture
def store(gallery_path: Path) -> Iterator[GalleryStore]:
    with GalleryStore.open(gallery_path, MODEL, DIM) as opened:
        yield opened


def test_enroll_list_show(store: GalleryStore, rng: np.random.Generator) -> None:
    assert store.enroll("alice", [make_template(rng, "a1.jpg"), make_template(rng, "a2.jpg")]) == 2
    assert store.enroll("alice", [make_template(rng, "a3.jpg")]) == 3
    assert store.enroll("bob", [make_template(rng, "b1.jpg")]) == 1
    people = store.people()
    assert [(p.name, p.template_count) for p in people] == [("alice", 3), ("bob", 1)]
    alice = store.person("alice")
    assert alice.template_count == 3
    assert [t.source for t in alice.templates] == ["a1.jpg", "a2.jpg", "a3.jpg"]
    assert {t.model_id for t in alice.templates} == {MODEL}
    assert all(t.created >= alice.created for t in alice.templates)


def test_crop_is_stored_as_rgb_png(store: GalleryStore, rng: np.random.Generator) -> None:
    template = make_template(rng)
    store.enroll("alice", [template])
    stored = store.dump().people[0].templates[0]
    assert stored.crop_png.startswith(b"\x89PNG")
    np.testing.assert_array_equal(decode_crop(stored.crop_png), template.crop)
    np.testing.assert_array_equal(stored.embedding, template.embedding)


def test_rename(store: GalleryStore, rng: np.random.Generator) -> None:
    store.enroll("alice", [make_template(rng)])
    store.enroll("bob", [make_template(rng)])
    store.rename("alice", "carol")
    assert [p.name for p in store.people()] == ["bob", "carol"]
    with pytest.raises(GalleryError, match="already exists"):
        store.rename("carol", "bob")
    with pytest.raises(GalleryError, match="no person named 'dave'"):
        store.rename("dave", "erin")


def test_remove_deletes_templates(store: GalleryStore, rng: np.random.Generator) -> None:
    store.enroll("alice", [make_template(rng), make_template(rng)])
    store.enroll("bob", [make_template(rng)])
    assert store.remove("alice") == 2
    snapshot = store.snapshot()
    assert snapshot.names == ("bob",)
    assert snapshot.embeddings.shape == (1, DIM)
    with pytest.raises(GalleryError, match="no person named 'alice'"):
        store.person("alice")
    with pytest.raises(GalleryError, match="no person named"):
        store.remove("alice")


@pytest.mark.parametrize(
    "embedding",
    [np.ones(DIM + 1, np.float32), np.full(DIM, np.nan, np.float32), np.zeros(DIM, np.float32)],
    ids=["wrong-dim", "nan", "zero"],
)
def test_enroll_rejects_bad_embeddings(
    store: GalleryStore, rng: np.random.Generator, embedding: np.ndarray
) -> None:
    with pytest.raises(GalleryError, match="embedding"):
        store.enroll(
            "alice", [make_template(rng), Template(embedding, make_template(rng).crop, "x")]
        )
    assert store.people() == []


def test_enroll_rejects_bad_crops_names_and_empty(
    store: GalleryStore, rng: np.random.Generator
) -> None:
    with pytest.raises(GalleryError, match="crop"):
        store.enroll("alice", [Template(unit_vector(rng), np.zeros((112, 112), np.uint8), "x")])
    for name in ["", " alice", "al\nice", "x" * 101]:
        with pytest.raises(GalleryError, match="invalid person name"):
            store.enroll(name, [make_template(rng)])
    with pytest.raises(GalleryError, match="no templates"):
        store.enroll("alice", [])
    assert store.people() == []


def test_snapshot_contents(store: GalleryStore, rng: np.random.Generator) -> None:
    bob = [make_template(rng) for _ in range(2)]
    alice = [make_template(rng)]
    store.enroll("bob", bob)
    store.enroll("alice", alice)
    snapshot = store.snapshot()
    assert snapshot.names == ("alice", "bob")
    assert snapshot.model_id == MODEL
    assert snapshot.embeddings.dtype == np.float32
    np.testing.assert_array_equal(snapshot.owners, [0, 1, 1])
    expected = np.stack([t.embedding for t in alice + bob])
    np.testing.assert_array_equal(snapshot.embeddings, expected)
    assert not snapshot.embeddings.flags.writeable
    assert snapshot.version == store.version()


def test_empty_snapshot(store: GalleryStore) -> None:
    snapshot = store.snapshot()
    assert snapshot.names == ()
    assert snapshot.embeddings.shape == (0, DIM)
    assert snapshot.owners.shape == (0,)


def test_model_mismatch_is_refused_with_reembed_hint(gallery_path: Path) -> None:
    GalleryStore.open(gallery_path, MODEL, DIM).close()
    with pytest.raises(GalleryError) as info:
        GalleryStore.open(gallery_path, "arcface-r50", DIM)
    message = str(info.value)
    assert MODEL in message
    assert "arcface-r50" in message
    assert "facegate gallery reembed" in message
    assert "\n" not in message


def test_same_model_other_size_is_refused(gallery_path: Path) -> None:
    GalleryStore.open(gallery_path, MODEL, DIM).close()
    with pytest.raises(GalleryError, match="8-d embeddings"):
        GalleryStore.open(gallery_path, MODEL, DIM * 2)


def _crop_embedder(dim: int):
    """A deterministic stand-in embedder: per-channel crop means, tiled to ``dim``."""

    def embed(crops: np.ndarray) -> np.ndarray:
        assert crops.dtype == np.uint8 and crops.shape[1:] == (112, 112, 3)
        means = crops.reshape(len(crops), -1, 3).mean(axis=1) + 1.0
        return np.tile(means, (1, dim // 3 + 1))[:, :dim].astype(np.float32)

    return embed


def test_reembed_changes_model_and_embeddings(gallery_path: Path, rng: np.random.Generator) -> None:
    with GalleryStore.open(gallery_path, MODEL, DIM) as store:
        templates = [make_template(rng) for _ in range(5)]
        store.enroll("alice", templates[:3])
        store.enroll("bob", templates[3:])
    new_dim = 4
    embed = _crop_embedder(new_dim)
    calls: list[tuple[int, int]] = []
    with GalleryStore.open(gallery_path, "arcface", new_dim, allow_model_mismatch=True) as store:
        assert store.model_id == MODEL
        with pytest.raises(GalleryError, match="reembed"):
            store.enroll("carol", [Template(unit_vector(rng, new_dim), templates[0].crop, "c")])
        count = store.reembed(embed, "arcface", batch=2, progress=lambda d, t: calls.append((d, t)))
        assert count == 5
        assert calls == [(2, 5), (4, 5), (5, 5)]
    with GalleryStore.open(gallery_path, "arcface", new_dim) as store:
        snapshot = store.snapshot()
        assert snapshot.model_id == "arcface"
        np.testing.assert_allclose(
            snapshot.embeddings, embed(np.stack([t.crop for t in templates]))
        )
        assert {t.model_id for t in store.person("alice").templates} == {"arcface"}
    with pytest.raises(GalleryError, match="reembed"):
        GalleryStore.open(gallery_path, MODEL, DIM)


def test_reembed_rejects_bad_output_and_changes_nothing(
    store: GalleryStore, rng: np.random.Generator
) -> None:
    store.enroll("alice", [make_template(rng), make_template(rng)])
    before = store.snapshot()
    with pytest.raises(GalleryError, match="shape"):
        store.reembed(lambda crops: np.ones((len(crops) + 1, DIM), np.float32), "other")
    with pytest.raises(GalleryError, match="NaN"):
        store.reembed(lambda crops: np.full((len(crops), DIM), np.nan, np.float32), "other")
    after = store.snapshot()
    assert after.model_id == MODEL
    assert after.version == before.version
    np.testing.assert_array_equal(after.embeddings, before.embeddings)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_file_and_dir_modes(gallery_path: Path, rng: np.random.Generator) -> None:
    old = os.umask(0o022)
    try:
        with GalleryStore.open(gallery_path, MODEL, DIM) as store:
            store.enroll("alice", [make_template(rng)])
            files = [gallery_path.with_name(gallery_path.name + s) for s in ("", "-wal", "-shm")]
            assert all(f.exists() for f in files)
            assert {_mode(f) for f in files} == {0o600}
    finally:
        os.umask(old)
    assert _mode(gallery_path.parent) == 0o700


def test_loose_mode_is_tightened_on_open(gallery_path: Path) -> None:
    GalleryStore.open(gallery_path, MODEL, DIM).close()
    gallery_path.chmod(0o644)
    GalleryStore.open(gallery_path, MODEL, DIM).close()
    assert _mode(gallery_path) == 0o600


def test_not_a_gallery_is_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(GalleryError, match="cannot open gallery"):
        GalleryStore.open(garbage, MODEL, DIM)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
    with pytest.raises(GalleryError, match="not a facegate gallery"):
        GalleryStore.open(other, MODEL, DIM)


def test_closed_store_raises(gallery_path: Path) -> None:
    store = GalleryStore.open(gallery_path, MODEL, DIM)
    store.close()
    store.close()
    with pytest.raises(GalleryError, match="closed"):
        store.people()


def test_version_changes_on_writes_from_any_connection(
    gallery_path: Path, rng: np.random.Generator
) -> None:
    with (
        GalleryStore.open(gallery_path, MODEL, DIM) as daemon,
        GalleryStore.open(gallery_path, MODEL, DIM) as cli,
    ):
        first = daemon.version()
        assert daemon.version() == first
        cli.enroll("alice", [make_template(rng)])
        second = daemon.version()
        assert second != first
        daemon.enroll("bob", [make_template(rng)])
        third = daemon.version()
        assert third not in (first, second)
        assert cli.version() == third
        cli.rename("bob", "carol")
        assert daemon.version() != third
        assert daemon.snapshot().version == daemon.version()


def test_other_process_reembed_is_noticed(gallery_path: Path, rng: np.random.Generator) -> None:
    with GalleryStore.open(gallery_path, MODEL, DIM) as daemon:
        daemon.enroll("alice", [make_template(rng)])
        with GalleryStore.open(gallery_path, "v2", DIM, allow_model_mismatch=True) as cli:
            cli.reembed(_crop_embedder(DIM), "v2")
        with pytest.raises(GalleryError, match="reembed"):
            daemon.snapshot()
        with pytest.raises(GalleryError, match="reembed"):
            daemon.enroll("bob", [make_template(rng)])


def _start(script: str, *args: object, stdin: bool = False) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
        stdin=subprocess.PIPE if stdin else None,
        stdout=subprocess.PIPE,
        text=True,
    )


def _kill_when_inside(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "inside"
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=SUBPROCESS_TIMEOUT_S) == -signal.SIGKILL


def _assert_consistent(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


RAW_WRITER = """
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    person = conn.execute(
        "INSERT INTO people (name, created, key, slug) VALUES ('mallory', 0, 'mallory', 'mallory')"
    ).lastrowid
    for _ in range(3):
        conn.execute(
            "INSERT INTO templates (person_id, model_id, embedding, crop, source, created)"
            " VALUES (?, 'm', zeroblob(32), zeroblob(64), 's', 0)", (person,))
    print("inside", flush=True)
    time.sleep(60)
"""


def test_kill_inside_raw_transaction_leaves_nothing(gallery_path: Path) -> None:
    GalleryStore.open(gallery_path, MODEL, DIM).close()
    _kill_when_inside(_start(RAW_WRITER, gallery_path))
    _assert_consistent(gallery_path)
    with GalleryStore.open(gallery_path, MODEL, DIM) as store:
        assert store.people() == []
        assert store.snapshot().embeddings.shape == (0, DIM)


PAUSED_ENROLL = """
    import sys, time
    import numpy as np
    from facegate.gallery import GalleryStore, Template
    path, name, model, dim = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    store = GalleryStore.open(path, model, dim)
    inserted = []
    def pause():
        inserted.append(1)
        if len(inserted) == 2:  # two of four templates written, inside enroll's transaction
            print("inside", flush=True)
            time.sleep(60)
    conn = store._conn  # test only: pause the real enroll() mid-transaction
    conn.create_function("pause", 0, pause)
    conn.execute("CREATE TEMP TRIGGER pause AFTER INSERT ON templates BEGIN SELECT pause(); END")
    rng = np.random.default_rng(0)
    crop = np.zeros((112, 112, 3), np.uint8)
    store.enroll(name, [Template(rng.normal(size=dim).astype(np.float32), crop, "s")] * 4)
    print("finished", flush=True)
"""


@pytest.mark.parametrize("name", ["mallory", "alice"], ids=["new-person", "existing-person"])
def test_kill_inside_enroll_is_all_or_nothing(
    gallery_path: Path, rng: np.random.Generator, name: str
) -> None:
    with GalleryStore.open(gallery_path, MODEL, DIM) as store:
        store.enroll("alice", [make_template(rng)])
        before = store.version()
    _kill_when_inside(_start(PAUSED_ENROLL, gallery_path, name, MODEL, DIM))
    _assert_consistent(gallery_path)
    with GalleryStore.open(gallery_path, MODEL, DIM) as store:
        assert [(p.name, p.template_count) for p in store.people()] == [("alice", 1)]
        assert store.version() == before
        assert store.enroll("mallory", [make_template(rng)]) == 1  # the lock is gone


WRITER = """
    import sys
    import numpy as np
    from facegate.gallery import GalleryStore, Template
    path, model, dim, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    rng = np.random.default_rng(7)
    with GalleryStore.open(path, model, dim) as store:
        print("inside", flush=True)
        for i in range(count):
            crops = rng.integers(0, 256, size=(2, 112, 112, 3), dtype=np.uint8)
            vectors = rng.normal(size=(2, dim)).astype(np.float32)
            store.enroll(f"p{i:03d}", [Template(v, c, "w") for v, c in zip(vectors, crops)])
            if i == 0:  # the reader sees one version for sure; the other enrolments race it
                print("first", flush=True)
                sys.stdin.readline()
"""


def test_concurrent_reader_never_fails(gallery_path: Path) -> None:
    people = 40
    GalleryStore.open(gallery_path, MODEL, DIM).close()
    with GalleryStore.open(gallery_path, MODEL, DIM) as reader:
        writer = _start(WRITER, gallery_path, MODEL, DIM, people, stdin=True)
        assert writer.stdout is not None and writer.stdin is not None
        assert writer.stdout.readline().strip() == "inside"
        assert writer.stdout.readline().strip() == "first"
        versions = {reader.version()}
        writer.stdin.write("go\n")
        writer.stdin.close()
        while writer.poll() is None:
            snapshot = reader.snapshot()
            versions.add(reader.version())
            # every enrolment is visible whole: two templates per person, never one
            assert snapshot.embeddings.shape == (2 * len(snapshot.names), DIM)
            assert len(reader.people()) >= len(snapshot.names)
        assert writer.wait(timeout=SUBPROCESS_TIMEOUT_S) == 0
        assert len(reader.snapshot().names) == people
        versions.add(reader.version())
        assert len(versions) > 1  # after the first enrolment, and after the last


def test_reembed_names_a_broken_crop_and_goes_on(
    gallery_path: Path, rng: np.random.Generator
) -> None:
    with GalleryStore.open(gallery_path, MODEL, DIM) as store:
        store.enroll("alice", [make_template(rng, "a1.jpg"), make_template(rng, "a2.jpg")])
        store.enroll("bob", [make_template(rng, "b1.jpg")])
    with sqlite3.connect(gallery_path) as conn:
        conn.execute("UPDATE templates SET crop = x'00' WHERE source = 'a2.jpg'")
    conn.close()
    with GalleryStore.open(gallery_path, "v2", DIM, allow_model_mismatch=True) as store:
        assert store.reembed(_crop_embedder(DIM), "v2", batch=2) == 2
        [failure] = store.reembed_failures
        assert failure.describe() == (
            "'alice' template #2 (a2.jpg): a template crop is not a PNG image"
        )
        snapshot = store.snapshot()
        assert snapshot.model_id == "v2" and snapshot.embeddings.shape == (2, DIM)
        assert [t.model_id for t in store.person("alice").templates] == ["v2", MODEL]
