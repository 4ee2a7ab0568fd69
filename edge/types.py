"""Typed values between stages: frame -> faces -> aligned crops -> embeddings -> matches."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facegate.errors import ImageError

MIN_FRAME_SIDE = 16  # a frame with a side under 16 px is an undecoded buffer, not a picture


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


def frame_contract_problem(image: object) -> str | None:
    """Why ``image`` breaks the frame contract (RGB uint8, H x W x 3, C-contiguous), or None."""
    if not isinstance(image, np.ndarray):
        return "frame is not an image array"
    if image.ndim != 3 or image.shape[2] != 3:
        return f"frame of shape {image.shape} is not H x W x 3"
    if min(image.shape[:2]) < MIN_FRAME_SIDE:
        return f"frame of shape {image.shape} is not a picture"
    if image.dtype != np.uint8:
        return f"frame of dtype {image.dtype} is not uint8"
    if not image.flags.c_contiguous:
        return "frame is not C-contiguous"
    return None


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured frame with where and when it was taken.

    The frame contract: ``image`` is RGB, uint8, H x W x 3 with both sides at least
    ``MIN_FRAME_SIDE``, C-contiguous. Sources convert what their device gives them once
    (``facegate.sources.base.frame_to_rgb``); a Frame refuses anything else with
    :class:`ImageError`, so no later stage converts or checks again.
    """

    image: np.ndarray  # (H, W, 3) uint8 RGB, C-contiguous
    timestamp: float  # epoch seconds: capture time (files: open time + position in the file)
    index: int  # frame number within the source since it was opened
    source: str  # the source's display name (never a URL with credentials)

    def __post_init__(self) -> None:
        problem = frame_contract_problem(self.image)
        if problem is not None:
            raise ImageError(problem)


EVENT_KINDS = ("recognized", "unknown", "left", "spoof")


@dataclass(frozen=True, slots=True)
class Event:
    """A state change worth telling the rest of the house about."""

    kind: str  # one of EVENT_KINDS
    camera: str
    time: float  # seconds since the epoch
    track_id: int
    box: tuple[float, float, float, float]
    person: str | None = None  # set for "recognized" (and the "left" of a named visit)
    similarity: float | None = None
    snapshot: str | None = None  # path of the saved crop for "unknown", if enabled
    visit_id: str | None = None  # the visit this event opens or closes (same on its "left")
    cluster_id: int | None = None  # "unknown": the unknown-face cluster it joined (if kept)
    # "unknown": the aligned face as JPEG, for sinks that show it (MQTT image entity); never
    # in as_dict(), in repr or in a log line
    face_jpeg: bytes | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form (no embeddings, no pixels: ``face_jpeg`` stays out)."""
        return {
            "event": self.kind,
            "camera": self.camera,
            "time": round(self.time, 3),
            "track_id": self.track_id,
            "box": [round(v, 1) for v in self.box],
            "person": self.person,
            "similarity": None if self.similarity is None else round(self.similarity, 4),
            "snapshot": self.snapshot,
            "visit_id": self.visit_id,
            "cluster_id": self.cluster_id,
        }
