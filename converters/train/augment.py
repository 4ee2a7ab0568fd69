"""Training views of aligned crops: flip, small similarity jitter, colour, blur, JPEG, down-up.

Everything is numpy/OpenCV and driven by one seeded ``numpy.random.Generator``, so a run is
reproducible. :class:`Augment` holds the probabilities and ranges (the defaults are mild: the
crops are already aligned, the jitter only covers landmark noise).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SIDE = 112


@dataclass(frozen=True)
class Augment:
    """How strongly to perturb each crop (probabilities in [0, 1])."""

    flip: float = 0.5
    jitter: float = 0.5
    max_shift: float = 0.04  # of the side: a few pixels, about MTCNN's landmark noise
    max_scale: float = 0.05
    max_rotate_deg: float = 6.0
    colour: float = 0.5
    blur: float = 0.2
    jpeg: float = 0.3
    down_up: float = 0.2  # small faces: down to 24-64 px, back up to 112


def _jitter(crop: np.ndarray, rng: np.random.Generator, aug: Augment) -> np.ndarray:
    angle = rng.uniform(-aug.max_rotate_deg, aug.max_rotate_deg)
    scale = 1.0 + rng.uniform(-aug.max_scale, aug.max_scale)
    m = cv2.getRotationMatrix2D((SIDE / 2, SIDE / 2), angle, scale)
    m[:, 2] += rng.uniform(-aug.max_shift, aug.max_shift, 2) * SIDE
    return cv2.warpAffine(crop, m, (SIDE, SIDE), borderMode=cv2.BORDER_CONSTANT)


def _colour(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = crop.astype(np.float32)
    grey = out.mean(axis=2, keepdims=True)
    out = grey + (out - grey) * rng.uniform(0.7, 1.3)  # saturation
    out = (out - 128) * rng.uniform(0.8, 1.2) + 128 + rng.uniform(-20, 20)  # contrast, brightness
    return np.clip(out, 0, 255).astype(np.uint8)


def _jpeg(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    quality = int(rng.integers(35, 95))
    ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if ok else crop


def _down_up(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    side = int(rng.integers(24, 65))
    small = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (SIDE, SIDE), interpolation=cv2.INTER_LINEAR)


def view(crop: np.ndarray, rng: np.random.Generator, aug: Augment) -> tuple[np.ndarray, bool]:
    """One augmented view of a (112, 112, 3) uint8 crop, and whether it was mirrored."""
    flipped = bool(rng.random() < aug.flip)
    out = crop[:, ::-1] if flipped else crop
    if rng.random() < aug.jitter:
        out = _jitter(np.ascontiguousarray(out), rng, aug)
    if rng.random() < aug.colour:
        out = _colour(out, rng)
    if rng.random() < aug.blur:
        out = cv2.GaussianBlur(np.ascontiguousarray(out), (0, 0), rng.uniform(0.3, 1.2))
    if rng.random() < aug.down_up:
        out = _down_up(np.ascontiguousarray(out), rng)
    if rng.random() < aug.jpeg:
        out = _jpeg(np.ascontiguousarray(out), rng)
    return np.ascontiguousarray(out, dtype=np.uint8), flipped


def batch(
    crops: np.ndarray, rng: np.random.Generator, aug: Augment | None
) -> tuple[np.ndarray, np.ndarray]:
    """Augmented copies of ``crops`` (N, 112, 112, 3) and a mirrored flag per crop."""
    if aug is None:
        return crops, np.zeros(len(crops), bool)
    views = [view(c, rng, aug) for c in crops]
    return np.stack([v for v, _ in views]), np.array([f for _, f in views])
