"""Match probe embeddings against a gallery snapshot: cosine similarity, top-k, unknown."""

from __future__ import annotations

import logging
from typing import Literal, Protocol

import numpy as np

from facegate.errors import GalleryError
from facegate.gallery.store import GallerySnapshot
from facegate.types import Match

log = logging.getLogger(__name__)

Strategy = Literal["best", "mean"]
DEFAULT_TOP_K = 5
# Bound on the (probes x templates) similarity block computed at once: 16M floats = 64 MiB.
MAX_BLOCK_ELEMENTS = 1 << 24
_EPS = 1e-12
REJECTED = -1.0  # the score of a person whose negative example the probe resembles most


class Matcher(Protocol):
    """Anything that ranks gallery people for probe embeddings (exact or approximate)."""

    def search(self, probes: np.ndarray) -> list[list[Match]]:
        """Return the top-k people per probe (N, D), best first; [] per probe if empty."""
        ...


class ExactMatcher:
    """Brute-force cosine matcher: one matmul per probe block, per-person reduction."""

    def __init__(
        self, snapshot: GallerySnapshot, top_k: int = DEFAULT_TOP_K, strategy: Strategy = "best"
    ) -> None:
        """Index ``snapshot``; score a person by its best template or its mean template."""
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        if strategy not in ("best", "mean"):
            raise ValueError(f"strategy must be 'best' or 'mean', got {strategy!r}")
        self._top_k = top_k
        self._strategy = strategy
        self._dim = int(snapshot.embeddings.shape[1])
        self._model_id = snapshot.model_id
        order = np.argsort(snapshot.owners, kind="stable")
        owners = np.asarray(snapshot.owners)[order]
        templates = normalise(np.asarray(snapshot.embeddings, dtype=np.float32)[order])
        # Columns are grouped by owner; each group starts where the owner changes.
        self._starts = (
            np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]]) if owners.size else owners
        )
        self._names = [snapshot.names[i] for i in owners[self._starts]]
        if strategy == "mean" and owners.size:
            templates = normalise(np.add.reduceat(templates, self._starts, axis=0))
        self._matrix = np.ascontiguousarray(templates.T)  # (D, T) or (D, P) for "mean"
        self._negatives, self._negative_cols = _negatives(snapshot, owners[self._starts])

    @property
    def people(self) -> int:
        """How many people the matcher can name."""
        return len(self._names)

    def search(self, probes: np.ndarray) -> list[list[Match]]:
        """Return the top-k people per probe (N, D), most similar first."""
        probes = np.asarray(probes, dtype=np.float32)
        if probes.ndim != 2:
            raise ValueError(f"probes must be (N, D), got shape {probes.shape}")
        if not self._names:
            return [[] for _ in range(len(probes))]
        if probes.shape[1] != self._dim:
            raise GalleryError(
                f"probe embeddings are {probes.shape[1]}-d but the gallery holds {self._dim}-d"
                f" embeddings of model {self._model_id!r}"
            )
        step = max(1, MAX_BLOCK_ELEMENTS // self._matrix.shape[1])
        results: list[list[Match]] = []
        for begin in range(0, len(probes), step):
            scores = self._person_scores(normalise(probes[begin : begin + step]))
            results.extend(self._top(scores))
        return results

    def _person_scores(self, probes: np.ndarray) -> np.ndarray:
        sims = probes @ self._matrix  # (n, T) or (n, P)
        if self._strategy == "best" and len(self._starts) != sims.shape[1]:
            sims = np.maximum.reduceat(sims, self._starts, axis=1)  # several templates a person
        if self._negatives is not None:
            sims = self._reject(probes, sims)
        return sims  # (n, P)

    def _reject(self, probes: np.ndarray, sims: np.ndarray) -> np.ndarray:
        """A person scores REJECTED where the probe is at least as close to one of their
        negatives (a face corrected as "not this person") as to their templates."""
        neg = probes @ self._negatives  # (n, M)
        worst = np.full_like(sims, -np.inf)
        np.maximum.at(worst.T, self._negative_cols, neg.T)
        return np.where(worst >= sims, np.float32(REJECTED), sims)

    def _top(self, scores: np.ndarray) -> list[list[Match]]:
        k = min(self._top_k, scores.shape[1])
        if k < scores.shape[1]:
            idx = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        else:
            idx = np.broadcast_to(np.arange(k), (scores.shape[0], k))
        top = np.take_along_axis(scores, idx, axis=1)
        order = np.argsort(-top, axis=1, kind="stable")
        idx = np.take_along_axis(idx, order, axis=1)
        top = np.clip(np.take_along_axis(top, order, axis=1), -1.0, 1.0)  # rounding past +-1
        return [
            [Match(self._names[j], float(s)) for j, s in zip(row_idx, row_sim, strict=True)]
            for row_idx, row_sim in zip(idx.tolist(), top.tolist(), strict=True)
        ]


def _negatives(
    snapshot: GallerySnapshot, column_owners: np.ndarray
) -> tuple[np.ndarray | None, np.ndarray]:
    """The snapshot's negatives as a (D, M) matrix and, per negative, its person's column."""
    if snapshot.negatives is None or snapshot.negative_owners is None or not column_owners.size:
        return None, np.empty(0, np.int64)
    column = {int(owner): j for j, owner in enumerate(column_owners.tolist())}
    keep = [i for i, o in enumerate(snapshot.negative_owners.tolist()) if o in column]
    if not keep:
        return None, np.empty(0, np.int64)
    vectors = normalise(np.asarray(snapshot.negatives, dtype=np.float32)[keep])
    cols = np.array([column[int(snapshot.negative_owners[i])] for i in keep], dtype=np.int64)
    return np.ascontiguousarray(vectors.T), cols


def decide(candidates: list[Match], threshold: float) -> Match | None:
    """Return the top candidate if its similarity reaches ``threshold``, else None (unknown)."""
    if candidates and candidates[0].similarity >= threshold:
        return candidates[0]
    return None


def normalise(vectors: np.ndarray) -> np.ndarray:
    """L2-normalise rows (N, D) as float32; zero rows stay zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, _EPS)
