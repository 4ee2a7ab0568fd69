"""Training views of aligned crops: flip, small similarity jitter, border fill, colour, blur,
JPEG, down-up.

Everything is numpy/OpenCV and driven by one seeded ``numpy.random.Generator``, so a run is
reproducible. :class:`Augment` holds the probabilities and ranges (the defaults are mild: the
crops are already aligned, the jitter only covers landmark noise).

Border fill: tight training chips leave black corners after alignment (about a third of the
pixels), where a crop of a natural photo has hair, shoulders and background. With ``fill`` > 0 the
black region that touches the crop's edge is replaced by a random patch of a background image or
of another crop of the batch (hair, skin, clothes), so the net learns what the teacher does with
real surroundings (the targets must then come from the teacher run on the filled view).
"""

from __future__ import annotations

from collections.abc import Sequence
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
    fill: float = 0.0  # black border -> a patch of a background image (needs backgrounds)


BLACK = 8  # a pixel with every channel below this counts as alignment border
MIN_PATCH = 48  # background patches: 48 px up to half the image's short side, resized to the crop


def _jitter(crop: np.ndarray, rng: np.random.Generator, aug: Augment) -> np.ndarray:
    angle = rng.uniform(-aug.max_rotate_deg, aug.max_rotate_deg)
    scale = 1.0 + rng.uniform(-aug.max_scale, aug.max_scale)
    m = cv2.getRotationMatrix2D((SIDE / 2, SIDE / 2), angle, scale)
    m[:, 2] += rng.uniform(-aug.max_shift, aug.max_shift, 2) * SIDE
    return cv2.warpAffine(crop, m, (SIDE, SIDE), borderMode=cv2.BORDER_CONSTANT)


def border_mask(crop: np.ndarray) -> np.ndarray:
    """(112, 112) bool: the near-black pixels connected to the crop's edge (dark hair or pupils
    inside the face are not border)."""
    dark = (crop.max(axis=2) < BLACK).astype(np.uint8)
    if not dark.any():
        return dark.astype(bool)
    _, labels = cv2.connectedComponents(dark, connectivity=4)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return np.isin(labels, edge[edge > 0])


def fill_border(
    crop: np.ndarray, rng: np.random.Generator, backgrounds: Sequence[np.ndarray]
) -> np.ndarray:
    """``crop`` with its edge-connected black region replaced by a random background patch."""
    mask = border_mask(crop)
    if not mask.any():
        return crop
    bg = backgrounds[int(rng.integers(len(backgrounds)))]
    h, w = bg.shape[:2]
    short = min(h, w)
    side = int(rng.integers(min(MIN_PATCH, short), max(short // 2, min(MIN_PATCH, short)) + 1))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    patch = cv2.resize(bg[y : y + side, x : x + side], (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    out = crop.copy()
    out[mask] = patch[mask]
    return out


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


def view(
    crop: np.ndarray,
    rng: np.random.Generator,
    aug: Augment,
    backgrounds: Sequence[np.ndarray] = (),
) -> tuple[np.ndarray, bool]:
    """One augmented view of a (112, 112, 3) uint8 crop, and whether it was mirrored."""
    flipped = bool(rng.random() < aug.flip)
    out = crop[:, ::-1] if flipped else crop
    if rng.random() < aug.jitter:
        out = _jitter(np.ascontiguousarray(out), rng, aug)
    if aug.fill > 0 and rng.random() < aug.fill:
        if not backgrounds:
            raise ValueError("border fill needs background images")
        out = fill_border(np.ascontiguousarray(out), rng, backgrounds)
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
    crops: np.ndarray,
    rng: np.random.Generator,
    aug: Augment | None,
    backgrounds: Sequence[np.ndarray] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """Augmented copies of ``crops`` (N, 112, 112, 3) and a mirrored flag per crop."""
    if aug is None:
        return crops, np.zeros(len(crops), bool)
    sources = (*backgrounds, *crops) if aug.fill > 0 else ()
    views = [view(c, rng, aug, sources) for c in crops]
    return np.stack([v for v, _ in views]), np.array([f for _, f in views])
