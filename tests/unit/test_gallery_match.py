"""ExactMatcher against a brute-force reference; decide() and the unknown threshold."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from facegate.errors import GalleryError
from facegate.gallery import ExactMatcher, GallerySnapshot, GalleryStore, Template, decide
from facegate.gallery import match as match_module
from facegate.types import Match

DIM = 16
# A 100k-template search must stay interactive on a laptop; the vectorised path needs ~0.1 s.
LARGE_GALLERY_BUDGET_S = 5.0


def unit_rows(rng: np.random.Generator, count: int, dim: int = DIM) -> np.ndarray:
    """Random L2-normalised float32 rows."""
    rows = rng.normal(size=(count, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def make_snapshot(embeddings: np.ndarray, owners: np.ndarray, people: int) -> GallerySnapshot:
    """A snapshot with names p000.. and the given owner of each template."""
    names = tuple(f"p{i:03d}" for i in range(people))
    return GallerySnapshot(names, embeddings, np.asarray(owners, np.int64), "test-model", 1)


def random_snapshot(rng: np.random.Generator, people: int, templates: int) -> GallerySnapshot:
    """Every person gets at least one template; owners are shuffled (not grouped)."""
    owners = np.concatenate([np.arange(people), rng.integers(0, people, templates - people)])
    rng.shuffle(owners)
    return make_snapshot(unit_rows(rng, templates), owners, people)


def brute_force(snapshot: GallerySnapshot, probe: np.ndarray, k: int, strategy: str) -> list:
    """The reference: a Python loop over people."""
    probe = probe / np.linalg.norm(probe)
    scores = []
    for index, name in enumerate(snapshot.names):
        rows = snapshot.embeddings[snapshot.owners == index].astype(np.float64)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        if strategy == "best":
            score = float(np.max(rows @ probe))
        else:
            mean = rows.mean(axis=0)
            score = float(mean @ probe / np.linalg.norm(mean))
        scores.append((score, name))
    scores.sort(key=lambda item: -item[0])
    return scores[:k]


@pytest.mark.parametrize("strategy", ["best", "mean"])
@pytest.mark.parametrize("top_k", [1, 5, 50])
def test_top_k_matches_brute_force(strategy: str, top_k: int) -> None:
    rng = np.random.default_rng(top_k)
    snapshot = random_snapshot(rng, people=30, templates=120)
    probes = unit_rows(rng, 7)
    results = ExactMatcher(snapshot, top_k=top_k, strategy=strategy).search(probes)
    assert len(results) == len(probes)
    for probe, got in zip(probes, results, strict=True):
        expected = brute_force(snapshot, probe, top_k, strategy)
        assert [m.name for m in got] == [name for _, name in expected]
        np.testing.assert_allclose([m.similarity for m in got], [s for s, _ in expected], atol=1e-5)
        assert all(isinstance(m, Match) for m in got)


def test_results_sorted_and_unnormalised_input_is_normalised() -> None:
    rng = np.random.default_rng(3)
    snapshot = random_snapshot(rng, people=10, templates=40)
    scaled = make_snapshot(snapshot.embeddings * 7.5, snapshot.owners, 10)
    probes = unit_rows(rng, 4)
    plain = ExactMatcher(snapshot, top_k=10).search(probes)
    again = ExactMatcher(scaled, top_k=10).search(probes * 0.1)
    for a, b in zip(plain, again, strict=True):
        assert [m.name for m in a] == [m.name for m in b]
        np.testing.assert_allclose([m.similarity for m in a], [m.similarity for m in b], atol=1e-5)
        sims = [m.similarity for m in a]
        assert sims == sorted(sims, reverse=True)


def test_best_and_mean_differ() -> None:
    e = np.eye(DIM, dtype=np.float32)
    near = 0.9 * e[0] + np.sqrt(1 - 0.81) * e[2]
    snapshot = make_snapshot(np.stack([e[0], e[1], near]), np.array([0, 0, 1]), 2)
    probe = e[:1]
    best = ExactMatcher(snapshot, strategy="best").search(probe)[0]
    mean = ExactMatcher(snapshot, strategy="mean").search(probe)[0]
    assert [m.name for m in best] == ["p000", "p001"]
    assert best[0].similarity == pytest.approx(1.0)
    assert [m.name for m in mean] == ["p001", "p000"]
    assert mean[0].similarity == pytest.approx(0.9)
    assert mean[1].similarity == pytest.approx(np.sqrt(0.5))


def test_decide_threshold() -> None:
    candidates = [Match("alice", 0.6), Match("bob", 0.3)]
    assert decide(candidates, 0.5) == Match("alice", 0.6)
    assert decide(candidates, 0.6) == Match("alice", 0.6)
    assert decide(candidates, 0.61) is None
    assert decide([], 0.0) is None


def test_empty_gallery_gives_empty_candidates() -> None:
    empty = make_snapshot(np.empty((0, DIM), np.float32), np.empty(0, np.int64), 0)
    matcher = ExactMatcher(empty)
    assert matcher.people == 0
    assert matcher.search(unit_rows(np.random.default_rng(0), 3)) == [[], [], []]
    assert decide(matcher.search(unit_rows(np.random.default_rng(0), 1))[0], 0.0) is None


def test_probe_dimension_mismatch_is_a_gallery_error() -> None:
    rng = np.random.default_rng(0)
    matcher = ExactMatcher(random_snapshot(rng, 3, 5))
    with pytest.raises(GalleryError, match="test-model"):
        matcher.search(unit_rows(rng, 1, DIM + 1))
    with pytest.raises(ValueError):
        matcher.search(unit_rows(rng, 1)[0])


def test_bad_arguments() -> None:
    snapshot = random_snapshot(np.random.default_rng(0), 3, 5)
    with pytest.raises(ValueError):
        ExactMatcher(snapshot, top_k=0)
    with pytest.raises(ValueError):
        ExactMatcher(snapshot, strategy="median")  # type: ignore[arg-type]


def test_probe_blocks_give_the_same_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    snapshot = random_snapshot(rng, people=20, templates=60)
    probes = unit_rows(rng, 25)
    whole = ExactMatcher(snapshot).search(probes)
    monkeypatch.setattr(match_module, "MAX_BLOCK_ELEMENTS", 100)  # 1 probe per block
    blocked = ExactMatcher(snapshot).search(probes)
    # One probe is a matrix-vector product, 25 a matrix product: BLAS sums them in another
    # order, so float32 similarities may differ in the last bit (measured: 3e-8); names may not.
    assert [[m.name for m in row] for row in blocked] == [[m.name for m in row] for row in whole]
    for got, want in zip(blocked, whole, strict=True):
        np.testing.assert_allclose(
            [m.similarity for m in got], [m.similarity for m in want], rtol=0, atol=1e-6
        )


def test_large_gallery_is_fast() -> None:
    rng = np.random.default_rng(11)
    snapshot = random_snapshot(rng, people=25_000, templates=100_000)
    probes = snapshot.embeddings[:16]
    start = time.perf_counter()
    results = ExactMatcher(snapshot, top_k=5).search(probes)
    elapsed = time.perf_counter() - start
    assert elapsed < LARGE_GALLERY_BUDGET_S
    for owner, candidates in zip(snapshot.owners[:16], results, strict=True):
        assert candidates[0].name == snapshot.names[owner]
        assert candidates[0].similarity == pytest.approx(1.0, abs=1e-5)


def test_matcher_over_a_real_store(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    vectors = unit_rows(rng, 3)
    crop = np.zeros((112, 112, 3), np.uint8)
    with GalleryStore.open(tmp_path / "gallery.db", "test-model", DIM) as store:
        store.enroll("alice", [Template(vectors[0], crop, "a"), Template(vectors[1], crop, "b")])
        store.enroll("bob", [Template(vectors[2], crop, "c")])
        matcher = ExactMatcher(store.snapshot(), top_k=2)
    [alice_hits, bob_hits] = matcher.search(vectors[[1, 2]])
    assert decide(alice_hits, 0.99) == Match("alice", pytest.approx(1.0, abs=1e-5))
    assert bob_hits[0].name == "bob"
    assert decide(matcher.search(unit_rows(rng, 1))[0], 0.999) is None
