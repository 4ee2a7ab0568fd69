"""The values the unknown-face store hands out and takes in (no embeddings handed out)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

State = Literal["open", "ignored", "labelled"]
MAX_LABEL_CROPS = 5  # labelling enrols at most this many crops, best quality first
# Quality of a sighting, 0..1: size x sharpness x frontality. A face of 112 px or more fills the
# aligned crop; 606 is the 5th percentile of the sharpness of real photos (facegate.gallery.enroll).
FULL_SIZE_PX = 112.0
FULL_SHARPNESS = 606.0
DAY_S = 86400.0


@dataclass(frozen=True, slots=True)
class Retention:
    """How many sightings and how old they may be (0: no limit); recent matches for corrections."""

    max_sightings: int = 2000
    max_age_days: float = 30.0
    keep_matches_hours: float = 24.0


@dataclass(frozen=True, slots=True)
class UnknownFace:
    """What the daemon hands over for one unknown (or recognized) face."""

    embedding: np.ndarray  # (D,) float32
    crop: np.ndarray  # (112, 112, 3) uint8 RGB, aligned
    quality: float  # 0..1, see quality_score
    time: float
    camera: str
    track_id: int
    visit_id: str | None = None


@dataclass(frozen=True, slots=True)
class Sighting:
    """One stored unknown face (never its embedding)."""

    id: int
    cluster_id: int
    time: float
    camera: str
    quality: float
    track_id: int
    visit_id: str | None


@dataclass(frozen=True, slots=True)
class ClusterSummary:
    """One cluster of sightings: who the web page and ``unknowns list`` show."""

    id: int
    size: int
    first_seen: float
    last_seen: float
    cameras: tuple[str, ...]
    state: State
    label: str | None
    best_sighting: int | None  # the highest-quality sighting (its crop is the thumbnail)


@dataclass(frozen=True, slots=True)
class Added:
    """Where a new sighting went: its id, its cluster and that cluster's state."""

    sighting_id: int
    cluster_id: int
    state: State


@dataclass(frozen=True, slots=True)
class Labelled:
    """What labelling a cluster did."""

    cluster_id: int
    name: str  # the person's stored name
    templates_added: int
    total_templates: int


def quality_score(size: float, sharpness: float, yaw: float, pitch: float) -> float:
    """0..1: a large, sharp, frontal face scores near 1."""
    frontal = math.cos(math.radians(min(abs(yaw), 90))) * math.cos(
        math.radians(min(abs(pitch), 90))
    )
    return min(1.0, size / FULL_SIZE_PX) * min(1.0, sharpness / FULL_SHARPNESS) * max(0.0, frontal)
