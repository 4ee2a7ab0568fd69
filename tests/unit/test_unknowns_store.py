"""UnknownStore on real SQLite files: clustering, label, ignore, retention, purge, corrections."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from facegate.errors import GalleryError
from facegate.gallery import GalleryStore
from facegate.gallery import clusters as cl
from facegate.gallery.match import REJECTED, ExactMatcher
from facegate.gallery.unknowns import Retention, UnknownFace, UnknownStore, quality_score

MODEL = "mobilefacenet-test"
DIM = 128  # random directions in 128-d are nearly orthogonal, like different people's faces
NOISE = 0.06  # per-dimension noise: a face and its person's centre score ~0.75, like real faces


def person(rng: np.random.Generator) -> np.ndarray:
    """A random identity centre."""
    v = rng.normal(size=DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def face_of(
    rng: np.random.Generator, centre: np.ndarray, when: float, quality: float = 0.5, track: int = 1
) -> UnknownFace:
    """One sighting of the person with centre ``centre``: noisy embedding, random crop."""
    v = centre + rng.normal(scale=NOISE, size=DIM).astype(np.float32)
    crop = rng.integers(0, 256, size=(112, 112, 3), dtype=np.uint8)
    return UnknownFace(v, crop, quality, when, "door", track)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "gallery.db"


@pytest.fixture
def store(path: Path) -> Iterator[UnknownStore]:
    with UnknownStore.open(path, MODEL, DIM) as opened:
        yield opened


def test_sightings_of_two_strangers_make_two_clusters(
    store: UnknownStore, rng: np.random.Generator
) -> None:
    a, b = person(rng), person(rng)
    now = 1_700_000_000.0
    added = [store.add(face_of(rng, c, now + i, track=i)) for i, c in enumerate([a, b] * 4)]
    ids = {x.cluster_id for x in added}
    assert len(ids) == 2
    assert {x.cluster_id for x in added[::2]} != {x.cluster_id for x in added[1::2]}
    summaries = store.clusters()
    assert sorted(c.size for c in summaries) == [4, 4]
    first = summaries[0]
    assert first.state == "open" and first.cameras == ("door",) and first.label is None
    sightings = store.sightings(first.id)
    assert [s.time for s in sightings] == sorted(s.time for s in sightings)
    assert not any(hasattr(s, "embedding") for s in sightings)
    assert store.crop(sightings[0].id).startswith(b"\xff\xd8\xff")
    assert store.best_crop(first.id) == store.crop(first.best_sighting or 0)


def test_files_are_private_and_export_carries_no_unknowns(
    store: UnknownStore, path: Path, rng: np.random.Generator
) -> None:
    store.add(face_of(rng, person(rng), 1.0e9))
    for suffix in ("", "-wal"):
        target = path.with_name(path.name + suffix)
        if target.exists():
            assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert store.gallery.dump().people == ()


def test_label_enrols_the_best_crops_as_a_person_in_one_step(
    store: UnknownStore, rng: np.random.Generator
) -> None:
    a = person(rng)
    for i in range(7):
        store.add(face_of(rng, a, 1.0e9 + i, quality=i / 10))
    cluster = store.clusters()[0]
    version = store.gallery.version()
    done = store.label(cluster.id, "Alice")
    assert (done.name, done.templates_added, done.total_templates) == ("Alice", 5, 5)
    assert store.gallery.version() != version  # the daemon reloads its matcher
    assert store.cluster(cluster.id).state == "labelled"
    assert store.cluster(cluster.id).label == "Alice"
    with pytest.raises(GalleryError, match="already enrolled as 'Alice'"):
        store.label(cluster.id, "Alice")  # no second copy of the same templates
    matcher = ExactMatcher(store.gallery.snapshot())
    ((top, *_),) = matcher.search(face_of(rng, a, 0).embedding[None, :])
    assert top.name == "Alice" and top.similarity > cl.CLUSTER_THRESHOLD
    # the same person again: labelling another cluster as "alice" adds to Alice
    b_cluster = store.add(face_of(rng, person(rng), 2.0e9)).cluster_id
    assert store.label(b_cluster, "alice").total_templates == 6


def test_a_refused_name_changes_nothing(store: UnknownStore, rng: np.random.Generator) -> None:
    store.gallery.enroll("obama", [_template(rng)])
    cluster = store.add(face_of(rng, person(rng), 1.0e9)).cluster_id
    with pytest.raises(GalleryError, match="looks like"):
        store.label(cluster, "\u043ebama")  # Cyrillic o: a look-alike of "obama"
    with pytest.raises(GalleryError):
        store.label(cluster, "bad\nname")
    assert store.cluster(cluster).state == "open"
    assert [p.name for p in store.gallery.people()] == ["obama"]
    with pytest.raises(GalleryError, match="no unknown cluster 999"):
        store.label(999, "x")


def test_ignored_cluster_swallows_later_sightings(
    store: UnknownStore, rng: np.random.Generator
) -> None:
    a, b = person(rng), person(rng)
    cluster = store.add(face_of(rng, a, 1.0e9)).cluster_id
    store.ignore(cluster)
    assert store.add(face_of(rng, a, 1.0e9 + 1)).state == "ignored"
    assert store.add(face_of(rng, b, 1.0e9 + 2)).state == "open"
    assert [c.id for c in store.clusters()] != [cluster]
    assert cluster in [c.id for c in store.clusters(include_ignored=True)]
    store.reopen(cluster)
    assert store.add(face_of(rng, a, 1.0e9 + 3)).state == "open"


def test_retention_by_count_and_age(path: Path, rng: np.random.Generator) -> None:
    retention = Retention(max_sightings=3, max_age_days=1)
    with UnknownStore.open(path, MODEL, DIM, retention=retention) as store:
        a = person(rng)
        for i in range(5):
            store.add(face_of(rng, a, 1.0e9 + i))
        assert [s.time for s in store.sightings(store.clusters()[0].id)] == [
            1.0e9 + 2,
            1.0e9 + 3,
            1.0e9 + 4,
        ]
        store.add(face_of(rng, person(rng), 1.0e9 + 2 * 86400))  # two days later
        assert [c.size for c in store.clusters()] == [1]  # the old cluster aged out entirely


def test_purge_really_deletes(store: UnknownStore, path: Path, rng: np.random.Generator) -> None:
    now = __import__("time").time()
    store.add(face_of(rng, person(rng), now - 10 * 86400))
    recent = store.add(face_of(rng, person(rng), now))
    crop = store.crop(recent.sighting_id)
    assert crop[200:264] in _raw(path)  # the check below can see a crop left behind
    assert store.purge(older_than_days=5) == 1
    assert [c.id for c in store.clusters()] == [recent.cluster_id]
    assert store.purge() == 1
    assert store.clusters(include_ignored=True) == []
    with pytest.raises(GalleryError):
        store.purge(older_than_days=-1)
    assert crop[200:264] not in _raw(path)  # secure_delete overwrote it, the WAL was truncated


def _raw(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.parent.iterdir() if p.name.startswith(path.name))


def test_not_this_person_is_not_repeated(store: UnknownStore, rng: np.random.Generator) -> None:
    alice, stranger = person(rng), person(rng)
    # a stranger close enough to Alice to be mistaken for her
    lookalike = alice * 0.7 + stranger * 0.7
    lookalike /= np.linalg.norm(lookalike)
    store.gallery.enroll("Alice", [_template(rng, alice)])
    before = ExactMatcher(store.gallery.snapshot()).search(lookalike[None, :])[0][0]
    assert before.name == "Alice" and before.similarity > 0.5
    face = face_of(rng, lookalike, 1.0e9)
    face = UnknownFace(lookalike, face.crop, 0.5, __import__("time").time(), "door", 3, "v1")
    store.remember_match(face, "Alice", before.similarity)
    assert [r[:2] for r in store.recent_matches()] == [("v1", "Alice")]
    assert store.correct("v1") == "Alice"
    with pytest.raises(GalleryError, match="no recent match"):
        store.correct("v1")
    matcher = ExactMatcher(store.gallery.snapshot())
    again = lookalike + rng.normal(scale=0.01, size=DIM).astype(np.float32)
    assert matcher.search(again[None, :])[0][0].similarity == REJECTED  # not Alice any more
    real = matcher.search(face_of(rng, alice, 0).embedding[None, :])[0][0]
    assert real.name == "Alice" and real.similarity > 0.5  # Alice herself still is


def test_removing_a_person_removes_their_negatives(
    store: UnknownStore, rng: np.random.Generator
) -> None:
    store.gallery.enroll("Bob", [_template(rng)])
    crop = rng.integers(0, 256, size=(112, 112, 3), dtype=np.uint8)
    assert store.add_negative("Bob", person(rng), crop, "photo.jpg") == 1
    assert store.gallery.snapshot().negatives is not None
    store.gallery.remove("Bob")
    store.gallery.enroll("Bob", [_template(rng)])
    assert store.gallery.snapshot().negatives is None


def test_split_and_merge_arithmetic(rng: np.random.Generator) -> None:
    a, b = person(rng), person(rng)
    members = np.stack([face_of(rng, c, 0).embedding for c in (a, a, a, b, b)])
    leaving = cl.split(members, cl.CLUSTER_THRESHOLD)
    assert leaving is not None and leaving.tolist() == [False, False, False, True, True]
    assert cl.split(members[:3], cl.CLUSTER_THRESHOLD) is None  # too few to split
    same = np.stack([face_of(rng, a, 0).embedding for _ in range(6)])
    assert cl.split(same, cl.CLUSTER_THRESHOLD) is None
    totals = np.stack([members[:2].sum(0), members[2:3].sum(0), members[3:].sum(0)])
    assert cl.merge_candidates(totals, 0, cl.CLUSTER_THRESHOLD) == [1]


def test_interleaved_strangers_end_in_pure_clusters(
    store: UnknownStore, rng: np.random.Generator
) -> None:
    centres = [person(rng) for _ in range(5)]
    truth: dict[int, int] = {}
    for i in range(60):
        who = int(rng.integers(0, 5))
        truth[store.add(face_of(rng, centres[who], 1.0e9 + i, track=i)).sighting_id] = who
    found = store.clusters()
    assert len(found) == 5
    for cluster in found:
        assert len({truth[s.id] for s in store.sightings(cluster.id)}) == 1


def test_quality_score_prefers_large_sharp_frontal_faces() -> None:
    assert quality_score(112, 800, 0, 0) == pytest.approx(1.0)
    assert quality_score(56, 800, 0, 0) == pytest.approx(0.5)
    assert quality_score(112, 800, 60, 0) == pytest.approx(0.5)
    assert quality_score(112, 303, 0, 0) == pytest.approx(0.5)


def test_open_without_a_model_reads_the_gallery(path: Path, rng: np.random.Generator) -> None:
    with pytest.raises(GalleryError, match="no gallery"):
        UnknownStore.open(path)
    GalleryStore.open(path, MODEL, DIM).close()
    with UnknownStore.open(path) as store:
        assert store.model_id == MODEL
        store.add(face_of(rng, person(rng), 1.0e9))


def _template(rng: np.random.Generator, centre: np.ndarray | None = None):
    from facegate.gallery import Template

    vector = person(rng) if centre is None else centre
    return Template(vector, rng.integers(0, 256, size=(112, 112, 3), dtype=np.uint8), "t.jpg")


def test_person_thumbnail_is_a_jpeg_of_their_first_template(
    store: UnknownStore, rng: np.random.Generator
) -> None:
    assert store.gallery.person_thumbnail("Bob") is None
    store.gallery.enroll("Bob", [_template(rng)])
    thumb = store.gallery.person_thumbnail("bob")
    assert thumb is not None and thumb.startswith(b"\xff\xd8\xff")
    store.gallery.remove("Bob")
    assert store.gallery.person_thumbnail("Bob") is None


def test_a_schema_2_gallery_is_upgraded_in_place(path: Path, rng: np.random.Generator) -> None:
    import sqlite3

    with GalleryStore.open(path, MODEL, DIM) as gallery:
        gallery.enroll("Ann", [_template(rng)])
    with sqlite3.connect(path) as conn:  # what facegate 2 wrote: no unknown-face tables
        for table in ("unknown_sightings", "unknown_clusters", "recent_matches", "negatives"):
            conn.execute(f"DROP TABLE {table}")
        conn.execute("UPDATE meta SET value = 2 WHERE key = 'schema_version'")
    with UnknownStore.open(path) as store:
        assert [p.name for p in store.gallery.people()] == ["Ann"]
        store.add(face_of(rng, person(rng), 1.0e9))
        assert len(store.clusters()) == 1
