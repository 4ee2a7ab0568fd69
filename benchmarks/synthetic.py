"""Synthetic galleries: seeded random unit templates, one per person (the matcher's worst case)."""

from __future__ import annotations

import numpy as np

from facegate.gallery.store import GallerySnapshot

DIM = 192  # MobileFaceNet's embedding size (the bundle manifest's embedding_size)
SEED = 0
NOISE = 1.0  # probe = template + NOISE * N(0, I/DIM): cosine to its source ~ 1/sqrt(2) ~ 0.71,
# inside the same-person range of the real embedder (README: genuine pairs mostly >= 0.45)


def unit_rows(n: int, dim: int = DIM, seed: int = SEED) -> np.ndarray:
    """``n`` seeded random unit vectors (float32), generated in blocks to bound memory."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        block = rng.standard_normal((min(100_000, n - start), dim), dtype=np.float32)
        out[start : start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def snapshot(n: int, dim: int = DIM, seed: int = SEED) -> GallerySnapshot:
    """A gallery snapshot of ``n`` people with one random unit template each."""
    emb = unit_rows(n, dim, seed)
    emb.flags.writeable = False
    owners = np.arange(n, dtype=np.int64)
    owners.flags.writeable = False
    names = tuple(f"p{i:07d}" for i in range(n))
    return GallerySnapshot(names, emb, owners, "synthetic-192", 1)


def probes(gallery: np.ndarray, n: int, seed: int = SEED + 1) -> tuple[np.ndarray, np.ndarray]:
    """``n`` probes: half noisy copies of gallery rows, half random; and each copy's source (-1)."""
    rng = np.random.default_rng(seed)
    half = n // 2
    source = rng.choice(len(gallery), half, replace=len(gallery) < half)
    noisy = gallery[source] + NOISE * rng.standard_normal((half, gallery.shape[1]), np.float32) / (
        np.sqrt(gallery.shape[1])
    )
    rand = rng.standard_normal((n - half, gallery.shape[1]), dtype=np.float32)
    out = np.concatenate([noisy, rand]).astype(np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out, np.concatenate([source, -np.ones(n - half, np.int64)])
