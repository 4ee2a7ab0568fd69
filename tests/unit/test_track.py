"""The IoU tracker and the vote that names a track."""

from __future__ import annotations

import numpy as np

from facegate.types import Face, Match
from facegate.vision.track import IoUTracker, Track, iou


def face(x: float, y: float, size: float = 50) -> Face:
    return Face((x, y, x + size, y + size), 0.99, np.zeros((5, 2), np.float32))


def test_iou() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert abs(iou((0, 0, 10, 10), (5, 0, 15, 10)) - 1 / 3) < 1e-9


def test_moving_faces_keep_their_tracks() -> None:
    tracker = IoUTracker(iou_threshold=0.3, max_missed=2)
    matched, _ = tracker.update([face(0, 0), face(200, 0)], 0.0)
    ids = {t.id for t, _ in matched}
    for step in range(1, 6):
        matched, ended = tracker.update([face(200 + 5 * step, 0), face(5 * step, 0)], step)
        assert {t.id for t, _ in matched} == ids and not ended


def test_a_track_ends_after_max_missed_frames() -> None:
    tracker = IoUTracker(max_missed=2)
    tracker.update([face(0, 0)], 0.0)
    assert tracker.update([], 1.0)[1] == []
    assert tracker.update([], 2.0)[1] == []
    ended = tracker.update([], 3.0)[1]
    assert len(ended) == 1 and tracker.tracks == []


def test_a_new_face_far_away_starts_a_new_track() -> None:
    tracker = IoUTracker()
    first = tracker.update([face(0, 0)], 0.0)[0][0][0]
    second = tracker.update([face(400, 400)], 1.0)[0][0][0]
    assert first.id != second.id


def test_vote_needs_enough_agreeing_frames_and_a_strict_plurality() -> None:
    track = Track(1, face(0, 0), 0.0, 0.0)
    track.vote(Match("ann", 0.6))
    track.vote(Match("ann", 0.7))
    assert track.leader(3) is None
    track.vote(Match("bob", 0.5))
    track.vote(Match("bob", 0.5))
    track.vote(Match("ann", 0.5))
    assert track.leader(3) == "ann" and track.best["ann"] == 0.7
    tie = Track(2, face(0, 0), 0.0, 0.0)
    for name in ("ann", "bob", "ann", "bob", "ann", "bob"):
        tie.vote(Match(name, 0.5))
    assert tie.leader(3) is None
    nobody = Track(3, face(0, 0), 0.0, 0.0)
    nobody.vote(None)
    assert nobody.misses == 1 and nobody.embeds == 1 and nobody.leader(1) is None
