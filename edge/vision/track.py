"""Follow faces across frames (greedy IoU tracker) and vote over frames before naming a track."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from facegate.types import Face, Match

log = logging.getLogger(__name__)

VIDEO_VOTES = 3  # agreeing frames that name a track in video (one frame can be a fluke)
VIDEO_UNKNOWN_AFTER = 5  # embedded frames without a match before a video track is unknown
STILLS_EVIDENCE = 1  # a photo is one frame: one vote names it, one miss makes it unknown


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    """One face followed over frames, with the evidence gathered about who it is."""

    id: int
    face: Face
    first_seen: float
    last_seen: float
    missed: int = 0
    frames: int = 1
    embeds: int = 0
    misses: int = 0  # embedded frames without any gallery match
    votes: Counter[str] = field(default_factory=Counter)
    best: dict[str, float] = field(default_factory=dict)
    name: str | None = None  # set once the vote names the track
    unknown_reported: bool = False

    def vote(self, match: Match | None) -> None:
        """Record one embedded frame's verdict."""
        self.embeds += 1
        if match is None:
            self.misses += 1
            return
        self.votes[match.name] += 1
        self.best[match.name] = max(self.best.get(match.name, -1.0), match.similarity)

    def leader(self, needed: int) -> str | None:
        """The name with at least ``needed`` votes and a strict plurality, if any."""
        if not self.votes:
            return None
        (top, n), *rest = self.votes.most_common(2)
        if n >= needed and (not rest or rest[0][1] < n):
            return top
        return None


class IoUTracker:
    """Greedy IoU association; a track ends after ``max_missed`` frames without its face."""

    def __init__(self, iou_threshold: float = 0.3, max_missed: int = 15) -> None:
        self.iou_threshold, self.max_missed = iou_threshold, max_missed
        self.tracks: list[Track] = []
        self._next_id = 1

    def update(self, faces: list[Face], now: float) -> tuple[list[tuple[Track, Face]], list[Track]]:
        """Associate ``faces`` with tracks; return (track, face) pairs and the tracks that ended."""
        pairs = sorted(
            (
                (iou(t.face.box, f.box), ti, fi)
                for ti, t in enumerate(self.tracks)
                for fi, f in enumerate(faces)
            ),
            reverse=True,
        )
        used_t, used_f, matched = set(), set(), []
        for overlap, ti, fi in pairs:
            if overlap < self.iou_threshold:
                break
            if ti in used_t or fi in used_f:
                continue
            used_t.add(ti)
            used_f.add(fi)
            track = self.tracks[ti]
            track.face, track.last_seen, track.missed = faces[fi], now, 0
            track.frames += 1
            matched.append((track, faces[fi]))
        for fi, face in enumerate(faces):
            if fi not in used_f:
                track = Track(self._next_id, face, now, now)
                self._next_id += 1
                self.tracks.append(track)
                matched.append((track, face))
        return matched, self._age({t.id for t, _ in matched})

    def _age(self, seen: set[int]) -> list[Track]:
        ended, alive = [], []
        for track in self.tracks:
            if track.id not in seen:
                track.missed += 1
            (ended if track.missed > self.max_missed else alive).append(track)
        self.tracks = alive
        return ended

    def clear(self) -> list[Track]:
        """End every track (end of stream, shutdown)."""
        ended, self.tracks = self.tracks, []
        return ended
