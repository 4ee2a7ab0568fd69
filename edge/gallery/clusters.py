"""Incremental clustering of unknown faces: join, merge and split by centroid cosine similarity.

A cluster is the sum of its members' unit embeddings; its centroid is that sum normalised. A new
face joins the cluster whose centroid is most similar if that similarity reaches the threshold,
else it starts a cluster. After a join, the grown cluster absorbs any other cluster whose
centroid now reaches the threshold (merge), and a cluster whose members form two groups with
centroids below it is cut in two (split). Pure numpy: no state, the caller stores the clusters.
"""

from __future__ import annotations

import numpy as np

from facegate.gallery.match import normalise

# Centroid cosine similarity at which a face joins (and two clusters merge). Measured with
# `python -m benchmarks.run --sections clustering` (docs/unknowns.md): the 119 labelled photos of
# ../shared/faces (27 people) added as unknowns in 5 shuffled orders give at 0.44 (the matcher's
# threshold) 26 clusters with one mixed (deepface id11 + id12, two look-alike actors), the same at
# 0.50, and at 0.55 27 clusters, none mixed, no person split. On video 0.55 still keeps all 118
# embeddable faces of the Hamilton clip's speaker in one cluster and the street clip's 39 faces in
# one cluster per track. (The matcher's own best-accuracy threshold on these photos is 0.538.)
CLUSTER_THRESHOLD = 0.55
SPLIT_MIN_MEMBERS = 4  # fewer members are too little evidence for two groups
SPLIT_MIN_GROUP = 2  # each side of a split holds at least this many faces
SPLIT_ROUNDS = 10  # 2-means iterations (converges in 2-3 on faces)


def centroids(totals: np.ndarray) -> np.ndarray:
    """Unit centroids (K, D) of cluster sums (K, D)."""
    return normalise(totals)


def nearest(totals: np.ndarray, vector: np.ndarray) -> tuple[int, float]:
    """(index, similarity) of the centroid closest to ``vector``; (-1, -2) if none."""
    if len(totals) == 0:
        return -1, -2.0
    sims = centroids(totals) @ normalise(vector[None, :])[0]
    best = int(np.argmax(sims))
    return best, float(sims[best])


def merge_candidates(totals: np.ndarray, index: int, threshold: float) -> list[int]:
    """Indexes of the clusters whose centroid reaches ``threshold`` with cluster ``index``'s."""
    if len(totals) < 2:
        return []
    unit = centroids(totals)
    sims = unit @ unit[index]
    return [int(i) for i in np.flatnonzero(sims >= threshold) if i != index]


def split(members: np.ndarray, threshold: float) -> np.ndarray | None:
    """A boolean mask of the members that leave, if they form a second group, else None.

    2-means seeded with the least similar pair; the split stands when both groups hold at least
    ``SPLIT_MIN_GROUP`` faces and their centroids are less similar than ``threshold``. The
    smaller group leaves (ties: the group without the first member).
    """
    if len(members) < SPLIT_MIN_MEMBERS:
        return None
    unit = normalise(members)
    a, b = np.unravel_index(int(np.argmin(unit @ unit.T)), (len(unit), len(unit)))
    seeds = unit[[a, b]]
    side: np.ndarray | None = None
    for _ in range(SPLIT_ROUNDS):
        new_side = (unit @ seeds[1]) > (unit @ seeds[0])
        if new_side.all() or not new_side.any():
            return None
        if side is not None and np.array_equal(new_side, side):
            break
        side = new_side
        seeds = normalise(np.stack([unit[~side].sum(0), unit[side].sum(0)]))
    assert side is not None
    small = int(min(side.sum(), (~side).sum()))
    if small < SPLIT_MIN_GROUP or float(seeds[0] @ seeds[1]) >= threshold:
        return None
    if side.sum() * 2 == len(side):
        return side if not side[0] else ~side
    return side if side.sum() < (~side).sum() else ~side
