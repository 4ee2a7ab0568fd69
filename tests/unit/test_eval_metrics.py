"""Evaluation metrics against hand-computed examples and brute force."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from facegate.evaluate import metrics

scores = st.lists(st.integers(-10, 10).map(lambda v: v / 10), min_size=1, max_size=40)


def brute_rates(genuine, impostor, t):
    """(FAR, TAR) at threshold t, counted one score at a time."""
    far = sum(s >= t for s in impostor) / len(impostor)
    tar = sum(s >= t for s in genuine) / len(genuine)
    return far, tar


def brute_auc(genuine, impostor):
    """Mann-Whitney: P(genuine > impostor) + P(tie) / 2."""
    wins = sum((g > i) + 0.5 * (g == i) for g in genuine for i in impostor)
    return wins / (len(genuine) * len(impostor))


def brute_best_accuracy(genuine, impostor):
    """Best accuracy over every threshold that can change a decision."""
    values = sorted(set(genuine) | set(impostor))
    cuts = [values[0] - 1, *values, values[-1] + 1]
    n = len(genuine) + len(impostor)
    return max((sum(g >= t for g in genuine) + sum(i < t for i in impostor)) / n for t in cuts)


def test_roc_hand_example_with_a_tie() -> None:
    curve = metrics.roc([0.9, 0.8, 0.5], [0.7, 0.5, 0.1])
    assert curve.thresholds[0] == np.inf
    np.testing.assert_allclose(curve.thresholds[1:], [0.9, 0.8, 0.7, 0.5, 0.1])
    np.testing.assert_allclose(curve.tpr, [0, 1 / 3, 2 / 3, 2 / 3, 1, 1])
    np.testing.assert_allclose(curve.fpr, [0, 0, 0, 1 / 3, 2 / 3, 1])  # the 0.5 tie moves together
    assert metrics.auc(curve) == pytest.approx(7.5 / 9)


def test_roc_needs_both_classes() -> None:
    with pytest.raises(ValueError):
        metrics.roc([], [0.1])
    with pytest.raises(ValueError):
        metrics.roc([0.5, np.nan], [0.1])


@settings(max_examples=200, deadline=None)
@given(scores, scores)
def test_roc_is_monotone_and_bounded(genuine, impostor) -> None:
    curve = metrics.roc(genuine, impostor)
    for rate in (curve.fpr, curve.tpr):
        assert np.all((rate >= 0) & (rate <= 1))
        assert np.all(np.diff(rate) >= 0)
    assert (curve.fpr[0], curve.tpr[0], curve.fpr[-1], curve.tpr[-1]) == (0, 0, 1, 1)
    assert np.all(np.diff(curve.thresholds) < 0)
    for t, f, r in zip(curve.thresholds, curve.fpr, curve.tpr, strict=True):
        assert brute_rates(genuine, impostor, t) == pytest.approx((f, r))
    assert metrics.auc(curve) == pytest.approx(brute_auc(genuine, impostor))


@settings(max_examples=100, deadline=None)
@given(scores, scores)
def test_best_accuracy_matches_brute_force(genuine, impostor) -> None:
    acc, t = metrics.best_accuracy(genuine, impostor)
    assert acc == pytest.approx(brute_best_accuracy(genuine, impostor))
    n = len(genuine) + len(impostor)
    assert (sum(g >= t for g in genuine) + sum(i < t for i in impostor)) / n == pytest.approx(acc)


def test_best_accuracy_threshold_is_mid_gap_when_separable() -> None:
    assert metrics.best_accuracy([0.6, 0.8], [0.1, 0.2]) == (1.0, pytest.approx(0.4))


def test_tar_at_far_hand_example() -> None:
    impostor = np.linspace(0.0, 0.5, 1000)  # highest two: 0.5 and 0.4995
    genuine = [0.4996, 0.6, 0.3]
    tar, t = metrics.tar_at_far(genuine, impostor, 1e-3)  # one false accept allowed
    assert impostor[-2] < t <= 0.4996
    assert tar == pytest.approx(2 / 3)
    assert metrics.rates_at(genuine, impostor, t)[0] == pytest.approx(1e-3)


def test_tar_at_far_rejects_a_tie_together() -> None:
    impostor = [0.9, 0.9] + [0.1] * 998  # accepting 0.9 would make FAR 2e-3
    tar, t = metrics.tar_at_far([0.95, 0.9], impostor, 1e-3)
    assert t > 0.9
    assert tar == 0.5


def test_tar_at_far_not_reachable_with_too_few_impostors() -> None:
    assert metrics.tar_at_far([0.9], np.zeros(999), 1e-3) is None
    assert metrics.tar_at_far([0.9], np.zeros(1000), 1e-3) is not None
    assert metrics.tar_at_far([0.9], np.zeros(99), 1e-2) is None
    assert metrics.tar_at_far([0.9], np.zeros(9_999), 1e-4) is None
    assert metrics.tar_at_far([], np.zeros(1000), 1e-3) is None


@settings(max_examples=100, deadline=None)
@given(scores, st.lists(st.integers(-10, 10).map(lambda v: v / 10), min_size=100, max_size=300))
def test_tar_at_far_is_the_best_admissible_threshold(genuine, impostor) -> None:
    far = 1e-2
    tar, t = metrics.tar_at_far(genuine, impostor, far)
    far_t, tar_t = brute_rates(genuine, impostor, t)
    assert far_t <= far
    assert tar_t == pytest.approx(tar)
    candidates = [*genuine, *impostor, *(np.nextafter(s, np.inf) for s in impostor)]
    best = max(r for f, r in (brute_rates(genuine, impostor, c) for c in candidates) if f <= far)
    assert tar == pytest.approx(best)


def test_kfold_separable_is_perfect() -> None:
    rng = np.random.default_rng(1)
    same = np.repeat([True, False], 300)
    s = np.where(same, rng.uniform(0.5, 0.9, 600), rng.uniform(-0.2, 0.3, 600))
    folds = np.tile(np.arange(10).repeat(30), 2)
    k = metrics.kfold_accuracy(s, same, folds)
    assert (k.mean, k.std) == (1.0, 0.0)
    assert all(0.3 < t < 0.5 for t in k.thresholds)
    assert len(k.accuracies) == 10


def test_kfold_non_separable_uses_the_other_folds_threshold() -> None:
    rng = np.random.default_rng(2)
    same = np.repeat([True, False], 300)
    s = np.where(same, rng.normal(0.5, 0.15, 600), rng.normal(0.2, 0.15, 600)).round(2)
    folds = np.tile(np.arange(10).repeat(30), 2)
    k = metrics.kfold_accuracy(s, same, folds)
    for f, t, acc in zip(range(10), k.thresholds, k.accuracies, strict=True):
        train = folds != f
        g, i = list(s[train & same]), list(s[train & ~same])
        train_acc = (sum(x >= t for x in g) + sum(x < t for x in i)) / len(g + i)
        assert train_acc == pytest.approx(brute_best_accuracy(g, i))
        assert acc == pytest.approx(np.mean((s[~train] >= t) == same[~train]))
    assert 0.75 < k.mean < 0.95
    assert k.std == pytest.approx(np.std(k.accuracies))
    assert k.threshold == pytest.approx(np.mean(k.thresholds))


def test_kfold_reports_failed_pairs_both_ways() -> None:
    same = np.repeat([True, False], 20)
    s = np.where(same, 0.8, 0.1)
    folds = np.tile(np.arange(10).repeat(2), 2)
    valid = np.ones(40, bool)
    valid[0] = False  # fold 0 has 4 pairs, one failed
    s[0] = np.nan
    k = metrics.kfold_accuracy(s, same, folds, valid)
    assert k.mean == 1.0
    assert k.accuracies_with_failures[0] == 0.75
    assert k.mean_with_failures == pytest.approx(1 - 0.25 / 10)


def test_kfold_needs_two_folds() -> None:
    assert metrics.kfold_accuracy([0.9, 0.1], [True, False], [0, 0]) is None


def test_mated_nonmated_and_rank1_by_hand() -> None:
    sim = np.array(
        [
            [0.9, 0.2, 0.3],  # probe of id 0: hit
            [0.4, 0.5, 0.6],  # probe of id 1: id 2 scores higher, miss
            [0.7, 0.1, 0.7],
        ]
    )  # probe of id 2: tie with id 0 counts as a miss
    mated, nonmated = metrics.mated_nonmated(sim, np.array([0, 1, 2]), np.array([0, 1, 2]))
    np.testing.assert_allclose(mated, [0.9, 0.5, 0.7])
    np.testing.assert_allclose(nonmated, [0.3, 0.6, 0.7])
    assert metrics.rank1(mated, nonmated) == pytest.approx(1 / 3)


def test_mated_nonmated_matches_brute_force() -> None:
    rng = np.random.default_rng(3)
    gallery_labels = np.array([0, 1, 1, 2, 3])  # identity 1 has two gallery entries
    probe_labels = rng.integers(0, 4, 50)
    sim = rng.uniform(-1, 1, (50, 5))
    mated, nonmated = metrics.mated_nonmated(sim, probe_labels, gallery_labels)
    for p in range(50):
        own = [sim[p, g] for g in range(5) if gallery_labels[g] == probe_labels[p]]
        other = [sim[p, g] for g in range(5) if gallery_labels[g] != probe_labels[p]]
        assert (mated[p], nonmated[p]) == (max(own), max(other))
    with pytest.raises(ValueError):
        metrics.mated_nonmated(sim[:1], np.array([9]), gallery_labels)


def test_dir_at_far_by_hand() -> None:
    # ten probes; FAR 0.1 allows one alarming non-mated search, so the threshold sits just
    # above the second-highest non-mated score (0.6).
    nonmated = np.array([0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.2, 0.1, 0.1, 0.0])
    mated = np.array([0.9, 0.65, 0.61, 0.6, 0.35, 0.9, 0.1, 0.8, 0.05, 0.62])
    dir_rate, t = metrics.dir_at_far(mated, nonmated, 0.1)
    assert 0.6 < t < 0.61
    # identified: rank 1 (mated > nonmated) and mated >= t: probes 0, 1, 2, 5, 7, 9
    assert dir_rate == pytest.approx(0.6)
    assert metrics.open_set_at(mated, nonmated, t) == (pytest.approx(0.6), pytest.approx(0.1))
    assert metrics.dir_at_far(mated, nonmated, 0.01) is None  # needs 100 non-mated searches


def test_split_gallery_by_hand() -> None:
    labels = np.array([0, 0, 0, 1, 2, 2, 3, 3])
    valid = np.array([False, True, True, True, True, False, True, True])
    gallery, probes, failed, distractors = metrics.split_gallery(labels, valid)
    assert gallery.tolist() == [1, 3, 4, 6]  # the first usable image of each identity
    assert probes.tolist() == [2, 7]
    assert failed == 2  # image 0 (identity 0) and image 5 (identity 2)
    assert distractors == 2  # identities 1 and 2 have nothing left to probe with


def test_searches_in_blocks_match_one_block() -> None:
    rng = np.random.default_rng(4)
    v = rng.normal(size=(30, 8))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    labels = np.arange(30) % 6
    gallery, probes, *_ = metrics.split_gallery(labels, np.ones(30, bool))
    whole = metrics.searches(v, labels, gallery, probes)
    blocks = metrics.searches(v, labels, gallery, probes, block=7)
    np.testing.assert_allclose(whole, blocks)
    np.testing.assert_allclose(
        whole, metrics.mated_nonmated(v[probes] @ v[gallery].T, labels[probes], labels[gallery])
    )


def test_thin_keeps_the_curve_shape() -> None:
    rng = np.random.default_rng(5)
    curve = metrics.roc(rng.normal(1, 1, 500), rng.normal(0, 1, 5000))
    far, tar = metrics.thin(curve, 50)
    assert 0 < len(far) <= 50
    assert np.all(np.diff(far) > 0) and np.all(np.diff(tar) >= 0)
    assert far[-1] == 1.0 and tar[-1] == 1.0
    assert set(far) <= set(curve.fpr.tolist())
