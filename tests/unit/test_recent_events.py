"""The recent-events ring the page shows: bounded, newest first, faces kept only in memory."""

from __future__ import annotations

import numpy as np

from facegate.service.recent import THUMB_SIDE, RecentEvents, face_jpeg
from facegate.types import Event


def _event(kind: str, n: int, visit: str | None = None) -> Event:
    return Event(kind, "door", 1000.0 + n, n, (10.0, 10.0, 60.0, 70.0), visit_id=visit)


def test_the_ring_keeps_the_newest_and_drops_the_oldest() -> None:
    ring = RecentEvents(3)
    image = np.full((100, 100, 3), 120, np.uint8)
    for n in range(5):
        ring.add(_event("unknown", n), image)
    kept = ring.latest()
    assert [r.event.track_id for r in kept] == [4, 3, 2]
    assert ring.jpeg(kept[-1].id) is not None and ring.jpeg(1) is None  # the first is gone
    assert [r.event.track_id for r in ring.latest(1)] == [4]


def test_a_ring_of_size_zero_keeps_nothing() -> None:
    ring = RecentEvents(0)
    ring.add(_event("unknown", 1), np.zeros((50, 50, 3), np.uint8))
    assert ring.latest() == []


def test_left_shows_the_face_of_its_visit() -> None:
    ring = RecentEvents(5)
    ring.add(_event("recognized", 1, "v1"), np.full((100, 100, 3), 200, np.uint8))
    ring.add(_event("left", 1, "v1"), None)
    ring.add(_event("left", 2, "v2"), None)  # its visit's event is not in the ring
    left_v2, left_v1, arrived = ring.latest()
    assert left_v1.jpeg == arrived.jpeg and arrived.jpeg is not None
    assert left_v2.jpeg is None


def test_faces_are_small_jpegs_and_a_box_off_the_image_gives_none() -> None:
    image = np.zeros((1080, 1920, 3), np.uint8)
    jpeg = face_jpeg(image, (100.0, 100.0, 700.0, 800.0))
    import cv2

    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert max(decoded.shape[:2]) == THUMB_SIDE
    assert face_jpeg(image, (5000.0, 5000.0, 5100.0, 5100.0)) is None
