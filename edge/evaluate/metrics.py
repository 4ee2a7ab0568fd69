"""Verification and identification metrics over similarity scores: pure numpy, no I/O.

Every decision rule is "accept when score >= threshold". Functions that cannot give an honest
figure (too few impostor scores for a FAR, no genuine pairs) return ``None`` instead of a number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FAR_POINTS = (1e-2, 1e-3, 1e-4)  # the operating points every report shows
N_FOLDS = 10  # the LFW protocol (Huang et al. 2007, "View 2")
_EPS = 1e-9  # slack for far * n in floating point


@dataclass(frozen=True, slots=True)
class Roc:
    """False and true accept rates at each distinct score, thresholds descending."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray  # thresholds[0] is +inf: nothing accepted


@dataclass(frozen=True, slots=True)
class KFold:
    """Cross-validated verification accuracy: each fold tested with the others' best threshold."""

    accuracies: tuple[float, ...]  # per fold, failed pairs excluded
    accuracies_with_failures: tuple[float, ...]  # per fold, failed pairs counted as wrong
    thresholds: tuple[float, ...]  # per fold, chosen on the other folds

    @property
    def mean(self) -> float:
        """Mean accuracy over the folds (failed pairs excluded)."""
        return float(np.mean(self.accuracies))

    @property
    def std(self) -> float:
        """Standard deviation over the folds (failed pairs excluded), as LFW reports it."""
        return float(np.std(self.accuracies))

    @property
    def mean_with_failures(self) -> float:
        """Mean accuracy over the folds with failed pairs counted as wrong."""
        return float(np.mean(self.accuracies_with_failures))

    @property
    def std_with_failures(self) -> float:
        """Standard deviation over the folds with failed pairs counted as wrong."""
        return float(np.std(self.accuracies_with_failures))

    @property
    def threshold(self) -> float:
        """Mean of the per-fold thresholds."""
        return float(np.mean(self.thresholds))


def _scores(values: np.ndarray | list[float]) -> np.ndarray:
    out = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(out)):
        raise ValueError("scores must be finite")
    return out


def distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (sort-based: faster than ``np.unique`` on millions of values)."""
    v = np.sort(np.asarray(values).ravel())
    return v[np.concatenate(([True], v[1:] != v[:-1]))] if len(v) else v


def _count_at_or_above(sorted_scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    return len(sorted_scores) - np.searchsorted(sorted_scores, thresholds, side="left")


def roc(genuine: np.ndarray, impostor: np.ndarray) -> Roc:
    """ROC with one point per distinct score (tied scores move together), from (0, 0) to (1, 1)."""
    g, i = np.sort(_scores(genuine)), np.sort(_scores(impostor))
    if len(g) == 0 or len(i) == 0:
        raise ValueError("a ROC needs at least one genuine and one impostor score")
    thresholds = np.concatenate(([np.inf], distinct(np.concatenate((g, i)))[::-1]))
    tpr = _count_at_or_above(g, thresholds) / len(g)
    fpr = _count_at_or_above(i, thresholds) / len(i)
    return Roc(fpr, tpr, thresholds)


def auc(curve: Roc) -> float:
    """Area under the ROC (ties count one half, as in the Mann-Whitney statistic)."""
    return float(np.sum(np.diff(curve.fpr) * (curve.tpr[1:] + curve.tpr[:-1]) / 2))


def thin(curve: Roc, points: int = 200) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(FAR, TAR) at ``points`` log-spaced FARs, the best TAR at each; zero-FAR points left out."""
    positive = curve.fpr[curve.fpr > 0]
    if len(positive) == 0:
        return (), ()
    grid = np.geomspace(positive[0], 1.0, points)
    idx = np.unique(np.searchsorted(curve.fpr, grid * (1 + 1e-12), side="right") - 1)
    return tuple(map(float, curve.fpr[idx])), tuple(map(float, curve.tpr[idx]))


def far_reachable(n_impostor: int, far: float) -> bool:
    """Whether ``n_impostor`` scores can measure ``far`` (at least 1/far of them are needed)."""
    return n_impostor * far >= 1.0 - _EPS


def threshold_at_far(impostor: np.ndarray, far: float) -> float | None:
    """The lowest threshold whose false accept rate is at most ``far``; None if not measurable."""
    i = np.sort(_scores(impostor))[::-1]
    if not 0.0 < far < 1.0:
        raise ValueError("far must be between 0 and 1")
    if not far_reachable(len(i), far):
        return None
    allowed = math.floor(far * len(i) + _EPS)  # false accepts allowed
    # Just above the (allowed+1)-th highest impostor: ties with it are rejected together.
    return float(np.nextafter(i[allowed], np.inf))


def tar_at_far(genuine: np.ndarray, impostor: np.ndarray, far: float) -> tuple[float, float] | None:
    """(true accept rate, threshold) at ``far``; None when too few impostors to measure it."""
    g = _scores(genuine)
    if len(g) == 0:
        return None
    threshold = threshold_at_far(impostor, far)
    if threshold is None:
        return None
    return float(np.mean(g >= threshold)), threshold


def rates_at(genuine: np.ndarray, impostor: np.ndarray, threshold: float) -> tuple[float, float]:
    """(false accept rate, true accept rate) at ``threshold``."""
    g, i = _scores(genuine), _scores(impostor)
    return float(np.mean(i >= threshold)), float(np.mean(g >= threshold))


def best_accuracy(genuine: np.ndarray, impostor: np.ndarray) -> tuple[float, float]:
    """(accuracy, threshold) maximising accuracy; the threshold is mid-gap between scores."""
    g, i = _scores(genuine), _scores(impostor)
    total = len(g) + len(i)
    if total == 0:
        raise ValueError("no scores")
    values = distinct(np.concatenate((g, i)))[::-1]
    # Candidates: above everything, then between each pair of neighbours, then below everything.
    cuts = np.concatenate(([values[0] + 1.0], (values[:-1] + values[1:]) / 2, [values[-1] - 1.0]))
    correct = _count_at_or_above(np.sort(g), cuts) + len(i) - _count_at_or_above(np.sort(i), cuts)
    best = int(np.argmax(correct))
    return float(correct[best] / total), float(cuts[best])


def _fold_accuracy(scores: np.ndarray, same: np.ndarray, threshold: float) -> int:
    return int(np.sum((scores >= threshold) == same))


def kfold_accuracy(
    scores: np.ndarray, same: np.ndarray, folds: np.ndarray, valid: np.ndarray | None = None
) -> KFold | None:
    """LFW protocol: threshold from the other folds' best accuracy, tested on the held-out fold.

    ``valid`` marks pairs whose two faces were found; the others are either excluded or counted
    as wrong. None when fewer than two folds hold valid pairs of both classes.
    """
    same, folds = np.asarray(same, bool), np.asarray(folds)
    valid = np.ones(len(same), bool) if valid is None else np.asarray(valid, bool)
    scores = np.where(valid, np.asarray(scores, np.float64), 0.0)
    ids = np.unique(folds)
    if len(ids) < 2:
        return None
    accs, with_fail, thresholds = [], [], []
    for f in ids:
        train, test = valid & (folds != f), valid & (folds == f)
        if not (np.any(train & same) and np.any(train & ~same)):
            return None
        _, t = best_accuracy(scores[train & same], scores[train & ~same])
        hits = _fold_accuracy(scores[test], same[test], t)
        if test.any():  # a fold whose every pair failed has no accuracy to exclude failures from
            accs.append(hits / int(test.sum()))
        with_fail.append(hits / int(np.sum(folds == f)))
        thresholds.append(t)
    return KFold(tuple(accs), tuple(with_fail), tuple(thresholds)) if accs else None


def mated_nonmated(
    sim: np.ndarray, probe_labels: np.ndarray, gallery_labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per probe: best score of its own identity, best score of any other (-inf when none)."""
    sim = np.asarray(sim, np.float64)
    own = np.asarray(probe_labels)[:, None] == np.asarray(gallery_labels)[None, :]
    if not np.all(own.any(axis=1)):
        raise ValueError("every probe's identity must be in the gallery")
    mated = np.where(own, sim, -np.inf).max(axis=1)
    nonmated = np.where(own, -np.inf, sim).max(axis=1, initial=-np.inf)
    return mated, nonmated


def split_gallery(labels: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(gallery, probes, failed probes, distractors): first usable image enrols, the rest probe.

    Identities with one image are gallery-only distractors; ``valid`` is False where an image
    gave no embedding (such images of identities with two or more images are failed probes).
    """
    labels, valid = np.asarray(labels), np.asarray(valid, bool)
    gallery, probes, failed, distractors = [], [], 0, 0
    for k in np.unique(labels):
        mine = np.flatnonzero(labels == k)
        usable = mine[valid[mine]]
        if len(usable):
            gallery.append(usable[0])
            probes.extend(usable[1:])
            distractors += len(usable) == 1
        failed += int((~valid[mine]).sum()) if len(mine) > 1 else 0
    return np.array(gallery, np.int64), np.array(probes, np.int64), failed, distractors


def searches(
    vectors: np.ndarray,
    labels: np.ndarray,
    gallery: np.ndarray,
    probes: np.ndarray,
    block: int = 5_000_000,
) -> tuple[np.ndarray, np.ndarray]:
    """Mated and non-mated scores of every probe against the gallery, ``block`` scores at a time."""
    labels = np.asarray(labels)
    step = max(1, block // max(1, len(gallery)))
    parts = [
        mated_nonmated(
            vectors[probes[s : s + step]] @ vectors[gallery].T,
            labels[probes[s : s + step]],
            labels[gallery],
        )
        for s in range(0, len(probes), step)
    ]
    if not parts:
        return np.zeros(0), np.zeros(0)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def rank1(mated: np.ndarray, nonmated: np.ndarray) -> float:
    """Closed-set rank-1 rate: the own identity scores strictly highest (a tie is a miss)."""
    mated, nonmated = np.asarray(mated), np.asarray(nonmated)
    if len(mated) == 0:
        raise ValueError("no probes")
    return float(np.mean(mated > nonmated))


def dir_at_far(mated: np.ndarray, nonmated: np.ndarray, far: float) -> tuple[float, float] | None:
    """Open-set (DIR, threshold) where a fraction ``far`` of non-mated searches alarm.

    Each probe searched against the gallery without its own identity is one non-mated search;
    it is identified when its own identity ranks first at or above the threshold.
    """
    mated, nonmated = np.asarray(mated, np.float64), np.asarray(nonmated, np.float64)
    threshold = threshold_at_far(nonmated, far) if np.all(np.isfinite(nonmated)) else None
    if threshold is None or len(mated) == 0:
        return None
    return open_set_at(mated, nonmated, threshold)[0], threshold


def open_set_at(mated: np.ndarray, nonmated: np.ndarray, threshold: float) -> tuple[float, float]:
    """(DIR, FPIR) at ``threshold``: identified-at-rank-1 rate and non-mated alarm rate."""
    mated, nonmated = np.asarray(mated), np.asarray(nonmated)
    identified = (mated > nonmated) & (mated >= threshold)
    return float(np.mean(identified)), float(np.mean(nonmated >= threshold))
