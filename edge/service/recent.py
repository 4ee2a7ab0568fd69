"""The recent events the web page shows: a bounded ring in memory, each with a small face JPEG.

Nothing here is written to disk or logged: the pictures live only in this process's memory and
the oldest goes when the ring is full. A ``left`` event has no face of its own in view; it shows
the picture of the event that opened its visit, while that is still in the ring.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from facegate.types import Event

THUMB_SIDE = 96  # px, the long side of a stored face: sharp on a phone's 2x screen at 48 px
THUMB_MARGIN = 0.25  # the box plus 25% on each side, so the face is seen in its context
JPEG_QUALITY = 80  # ~3-4 KB per 96 px face: 50 events hold ~200 KB


@dataclass(frozen=True, slots=True)
class RecentEvent:
    """One event as the page shows it; ``jpeg`` is the face, or None."""

    id: int
    event: Event
    jpeg: bytes | None


def face_jpeg(image: np.ndarray, box: tuple[float, float, float, float]) -> bytes | None:
    """A small JPEG of the face in ``box`` (x1, y1, x2, y2) of an RGB ``image``, or None."""
    x1, y1, x2, y2 = box
    mx, my = (x2 - x1) * THUMB_MARGIN, (y2 - y1) * THUMB_MARGIN
    h, w = image.shape[:2]
    left, top = max(0, int(x1 - mx)), max(0, int(y1 - my))
    right, bottom = min(w, int(x2 + mx)), min(h, int(y2 + my))
    if right - left < 2 or bottom - top < 2:
        return None
    crop = image[top:bottom, left:right]
    scale = THUMB_SIDE / max(crop.shape[:2])
    if scale < 1:
        size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    )
    return buf.tobytes() if ok else None


class RecentEvents:
    """The last ``size`` events, newest first on reading; safe to share between threads."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._ring: deque[RecentEvent] = deque(maxlen=max(size, 0))
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def add(self, event: Event, image: np.ndarray | None) -> None:
        """Keep ``event`` with its face cut from ``image`` (the visit's face for a ``left``)."""
        if self.size <= 0:
            return
        jpeg = face_jpeg(image, event.box) if image is not None and event.kind != "left" else None
        with self._lock:
            if jpeg is None and event.visit_id is not None:
                jpeg = next(
                    (r.jpeg for r in self._ring if r.event.visit_id == event.visit_id), None
                )
            self._ring.append(RecentEvent(next(self._ids), event, jpeg))

    def latest(self, limit: int | None = None) -> list[RecentEvent]:
        """The newest ``limit`` events (all when None), newest first."""
        with self._lock:
            items = list(self._ring)
        items.reverse()
        return items if limit is None else items[: max(limit, 0)]

    def jpeg(self, event_id: int) -> bytes | None:
        """The face of event ``event_id``, or None when it has none or has left the ring."""
        with self._lock:
            return next((r.jpeg for r in self._ring if r.id == event_id), None)
