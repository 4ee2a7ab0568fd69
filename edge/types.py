"""Typed values between stages: frame -> faces -> aligned crops -> embeddings -> matches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Face:
    """One detected face in image pixel coordinates."""

    box: tuple[float, float, float, float]  # x1, y1, x2, y2
    score: float
    landmarks: np.ndarray  # (5, 2) float32: left eye, right eye, nose, left mouth, right mouth

    @property
    def width(self) -> float:
        """Box width in pixels."""
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        """Box height in pixels."""
        return self.box[3] - self.box[1]

    @property
    def size(self) -> float:
        """The shorter side of the box, in pixels."""
        return min(self.width, self.height)


@dataclass(frozen=True, slots=True)
class AlignedFace:
    """A face warped to the 112x112 ArcFace template (RGB uint8)."""

    face: Face
    crop: np.ndarray  # (112, 112, 3) uint8 RGB


@dataclass(frozen=True, slots=True)
class Match:
    """One gallery candidate for a probe embedding."""

    name: str
    similarity: float


@dataclass(frozen=True, slots=True)
class FaceResult:
    """Everything facegate knows about one face in an image."""

    face: Face
    embedding: np.ndarray  # (D,) float32, L2-normalised
    match: Match | None  # None: unknown (best similarity below the threshold or empty gallery)
    candidates: tuple[Match, ...] = ()

    @property
    def name(self) -> str | None:
        """The matched person's name, or None for an unknown face."""
        return self.match.name if self.match else None
