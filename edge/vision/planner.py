"""Where one camera's frame needs the detector: nowhere, around live tracks, or everywhere.

Per frame (one planner per camera, no shared state):

- no track is live and nothing moved (a small grey copy against a running background,
  :mod:`facegate.vision.motion`): skip detection; the frame costs only the motion test;
- tracks are live: detect only in regions around them (a square around each face, its longer
  side plus ``region_margin`` of it on every side, moved inside the frame; overlapping squares
  merged), on the sub-image, with the faces mapped back to frame pixels; a still face is still
  looked at, so it gathers its votes and its visit stays open as without the planner. With
  ``refine`` (the default) a region first gives its tracked boxes to O-Net alone, which
  re-fits each face it still sees (box, score, landmarks) at a tenth of the cascade's cost;
  the whole cascade runs on the region only when O-Net confirms none of them;
- a full-frame scan when something moved and no track is live, when motion shows outside the
  tracked people (someone may have come in), and every ``full_scan_every`` frames while tracks
  are live.

The detector's pyramid starts at ``min_face`` pixels, the smallest face the camera can show.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from facegate.types import Face
from facegate.vision.detect.mtcnn import MTCNN
from facegate.vision.motion import MOTION_MIN_AREA, MOTION_THRESHOLD, Box, MotionGate
from facegate.vision.recognizer import Recognizer

FULL_SCAN_EVERY = 10  # frames between full scans while tracks are live (0.4 s at 25 fps)
REGION_MARGIN = 0.3  # face sides added on each side: a region is a square 1.6x the face's
# longer side, room for a face that moves 0.3 of its size between two frames (9 face widths a
# second at 30 fps); on the Hamilton clip 0.3 took 10% off the CPU time per frame against 0.5
# (38.6 against 42.7 ms, LiteRT, same plans and events)
# In a region the pyramid starts at this share of the tracked face's longer side (~0.75 of its
# width, MTCNN boxes being taller than wide), not at the camera's min_face: a tracked face does
# not shrink by a third from one frame to the next, and one that does is found by the next full
# scan. A square region then always gives P-Net the same input sizes, whatever the face's size
# (12 / 0.55 x 1.6 = 34.9 px first level): a region costs the same for a near and a far face, and
# LiteRT, which keeps one interpreter per input shape, plans no new one frame after frame.
REGION_MIN_FACE = 0.55
# A tracked person's body, in face sides around the face box, where motion is expected and
# triggers no full scan: arms reach ~2 face widths aside, a standing body is ~7 heads tall.
BODY_SIDE, BODY_ABOVE, BODY_BELOW = 2.5, 1.0, 8.0

# Two tracks whose boxes overlap this much hold one face (a track that lost it lingers for
# max_missed frames beside the new one): O-Net is asked to confirm it once.
SAME_FACE_IOU = 0.3
# Each tracked box goes to O-Net as it was and grown by this factor, so a face that moved or
# grew since the last frame still falls inside one candidate.
REFINE_GROW = 1.25

PlanKind = Literal["skip", "regions", "full"]


@dataclass(frozen=True, slots=True)
class PlannerSettings:
    """How one camera's detection is planned (see facegate.config.schema's [detection])."""

    enabled: bool = True
    motion_threshold: float = MOTION_THRESHOLD
    motion_min_area: float = MOTION_MIN_AREA
    full_scan_every: int = FULL_SCAN_EVERY
    region_margin: float = REGION_MARGIN
    min_face: float | None = None  # None: the detector's own min_face_size
    refine: bool = True  # regions: O-Net alone re-finds tracked faces (the cascade if it fails)


@dataclass(frozen=True, slots=True)
class Region:
    """Whole pixels (x1, y1, x2, y2) of a frame to detect in, and the smallest face to look for."""

    x1: int
    y1: int
    x2: int
    y2: int
    min_face: float

    def overlaps(self, other: Region) -> bool:
        """Whether the two regions share pixels."""
        across = self.x1 < other.x2 and other.x1 < self.x2
        return across and self.y1 < other.y2 and other.y1 < self.y2

    def union(self, other: Region) -> Region:
        """The bounding region of both, looking for the smaller of their faces."""
        return Region(
            min(self.x1, other.x1),
            min(self.y1, other.y1),
            max(self.x2, other.x2),
            max(self.y2, other.y2),
            min(self.min_face, other.min_face),
        )


@dataclass(frozen=True, slots=True)
class Plan:
    """What the detector runs on for one frame: the whole frame, regions of it, or nothing."""

    kind: PlanKind
    regions: tuple[Region, ...] = ()
    tracked: tuple[Box, ...] = ()  # the live tracks' last boxes (regions plans)


def grow(box: Box, left: float, up: float, right: float, down: float) -> Box:
    """``box`` grown by multiples of its longer side on each side."""
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1)
    return (x1 - left * side, y1 - up * side, x2 + right * side, y2 + down * side)


def square(face: Box, margin: float, width: int, height: int) -> Region:
    """The square around ``face`` (``margin`` of its longer side added on each side), moved
    inside a ``width`` x ``height`` frame; it looks for faces from ``REGION_MIN_FACE`` of
    that side up."""
    x1, y1, x2, y2 = face
    longer = max(x2 - x1, y2 - y1)
    size = min(math.ceil(longer * (1 + 2 * margin)), width, height)
    left = min(max(0, round((x1 + x2 - size) / 2)), width - size)
    top = min(max(0, round((y1 + y2 - size) / 2)), height - size)
    min_face = REGION_MIN_FACE * size / (1 + 2 * margin)
    return Region(left, top, left + size, top + size, min_face)


def merge(regions: Sequence[Region]) -> list[Region]:
    """Regions with every overlapping pair replaced by their union, until none overlap."""
    out = list(regions)
    i = 0
    while i < len(out):
        j = next((j for j in range(i + 1, len(out)) if out[i].overlaps(out[j])), None)
        if j is None:
            i += 1
            continue
        out[i] = out[i].union(out.pop(j))
        i = 0  # the grown region may now overlap one already passed
    return sorted(out, key=lambda r: (r.y1, r.x1))


def shifted(face: Face, dx: float, dy: float) -> Face:
    """``face`` found in a sub-image whose top-left corner is (dx, dy) of the frame."""
    x1, y1, x2, y2 = face.box
    offset = np.array([dx, dy], np.float32)
    return Face((x1 + dx, y1 + dy, x2 + dx, y2 + dy), face.score, face.landmarks + offset)


def with_min_face(detector: MTCNN, min_face: float, **options: object) -> MTCNN:
    """``detector``'s networks with the pyramid starting at ``min_face`` pixels (and options)."""
    if min_face == detector.config.min_face_size and not options:
        return detector
    config = dataclasses.replace(detector.config, min_face_size=min_face, **options)
    return MTCNN(detector.pnet, detector.rnet, detector.onet, config=config)


def detect_in(detector: MTCNN, image: np.ndarray, regions: Sequence[Region]) -> list[Face]:
    """Faces found in each region of ``image``, in frame pixels (none under the detector's size)."""
    faces = []
    for r in regions:
        min_face = max(r.min_face, detector.config.min_face_size)
        # no padded retry: a region holds its face with a margin, never cut by the crop's edge
        view = with_min_face(detector, min_face, pad_mode="never")
        found = view.detect(image[r.y1 : r.y2, r.x1 : r.x2])
        faces += [shifted(f, r.x1, r.y1) for f in found]
    return faces


def distinct(boxes: Sequence[Box], overlap: float = SAME_FACE_IOU) -> list[Box]:
    """``boxes`` less those overlapping an earlier one by ``overlap`` IoU or more (one face
    held by two tracks, a new one and the one that lost it, counts once)."""
    kept: list[Box] = []
    for b in boxes:
        if all(_iou(b, k) < overlap for k in kept):
            kept.append(b)
    return kept


def _iou(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union


def _candidates(boxes: Sequence[Box], dx: float, dy: float) -> list[Box]:
    """Each box in region pixels, as it was and grown by ``REFINE_GROW`` about its centre."""
    out = []
    for x1, y1, x2, y2 in boxes:
        cx, cy, half = (x1 + x2) / 2 - dx, (y1 + y2) / 2 - dy, (x2 - x1) / 2
        halfh = (y2 - y1) / 2
        out.append((cx - half, cy - halfh, cx + half, cy + halfh))
        g = REFINE_GROW
        out.append((cx - g * half, cy - g * halfh, cx + g * half, cy + g * halfh))
    return out


def refine_in(
    detector: MTCNN, image: np.ndarray, regions: Sequence[Region], tracked: Sequence[Box]
) -> list[Face]:
    """Each region's tracked faces re-found by O-Net alone (:meth:`MTCNN.refine`).

    A region where O-Net confirms none of them gets the whole cascade instead. One that it
    confirms only in part is left at that: on the Hamilton clip the cascade found the missing
    face in about half of those regions, at ten times the cost, and a face O-Net lost is found
    again by the next full scan while its track waits ``max_missed`` frames (same events,
    21.7 against 28.9 ms a frame with the cascade on every partial region, 37.6 ms with no
    refinement; loaded CPU, LiteRT).
    """
    faces = []
    for r in regions:
        inside = distinct([b for b in tracked if _centre_in(b, r)])
        found = detector.refine(image[r.y1 : r.y2, r.x1 : r.x2], _candidates(inside, r.x1, r.y1))
        if not found:
            faces += detect_in(detector, image, [r])
            continue
        faces += [shifted(f, r.x1, r.y1) for f in found]
    return faces


def _centre_in(box: Box, r: Region) -> bool:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return r.x1 <= cx < r.x2 and r.y1 <= cy < r.y2


class DetectionPlanner:
    """Decides, frame by frame, where one camera needs the detector, and runs it there."""

    def __init__(self, settings: PlannerSettings) -> None:
        self.settings = settings
        self.gate = MotionGate(settings.motion_threshold, settings.motion_min_area)
        self._since_full = 0
        self._views: tuple[MTCNN, MTCNN] | None = None  # (the recognizer's detector, ours)

    def plan(self, image: np.ndarray, tracked: Sequence[Box]) -> Plan:
        """The plan for one RGB frame, given the boxes of the live tracks."""
        motion = self.gate.update(image)
        self._since_full += 1
        if not tracked:  # nobody in view: look only when something moved
            return self._full() if motion.moved else Plan("skip")
        if self._since_full >= self.settings.full_scan_every:
            return self._full()
        bodies = [grow(b, BODY_SIDE, BODY_ABOVE, BODY_SIDE, BODY_BELOW) for b in tracked]
        if motion.moved_outside(bodies):
            return self._full()
        h, w = image.shape[:2]
        m = self.settings.region_margin
        regions = tuple(merge([square(b, m, w, h) for b in tracked]))
        return Plan("regions", regions, tuple(tracked))

    def _full(self) -> Plan:
        self._since_full = 0
        return Plan("full")

    def detector(self, base: MTCNN) -> MTCNN:
        """``base`` with its pyramid starting at this camera's ``min_face`` (same networks)."""
        min_face = self.settings.min_face
        if min_face is None or min_face == base.config.min_face_size:
            return base
        if self._views is None or self._views[0] is not base:  # first call, or a reload
            self._views = (base, with_min_face(base, min_face))
        return self._views[1]

    def detect(self, rec: Recognizer, image: np.ndarray, plan: Plan) -> list[Face]:
        """Run ``rec``'s detector where ``plan`` says; faces in frame pixels."""
        detector = self.detector(rec.detector)
        if plan.kind == "full":
            return rec.detect(image, detector)
        if self.settings.refine:
            return refine_in(detector, image, plan.regions, plan.tracked)
        return detect_in(detector, image, plan.regions)
