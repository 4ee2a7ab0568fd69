"""Who is here now: visits, each opened by one event and closed by one ``left``.

A named person's visit starts at the first frame a track is named as them and spans every track
that shows them, however often the tracker loses and finds their face; an unknown face's visit is
its one track (a stranger has no name to join tracks by). A visit ends, with one ``left``, when no
face of it has been seen for ``leave_after_s`` seconds of frame time.

The state lives in one :class:`Presence`, which a rebuilt pipeline can take over (a reload keeps
who is present, their visit ids, and emits no ``left`` for them).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

log = logging.getLogger(__name__)

LEAVE_AFTER_S = 5.0  # out of sight this long: gone (a glance away or a missed detection is not)

Box = tuple[float, float, float, float]


@dataclass
class Visit:
    """One stay in front of the camera: a person's (all their tracks) or one unknown track's."""

    id: str
    person: str | None  # None: an unknown face
    started: float
    last_seen: float
    track_id: int  # the newest track that showed them
    box: Box
    similarity: float | None = None  # the best similarity that named them


def new_visit_id() -> str:
    """A short random id, unique across cameras and restarts."""
    return uuid.uuid4().hex[:12]


class Presence:
    """Open visits: one per named person, one per unknown track; closes them by frame time."""

    def __init__(self, leave_after_s: float = LEAVE_AFTER_S) -> None:
        self.leave_after_s = leave_after_s
        self.named: dict[str, Visit] = {}
        self.unknown: dict[int, Visit] = {}  # track id -> visit
        self.orphans: list[Visit] = []  # unknown visits of a previous pipeline's tracks

    def see(
        self,
        person: str | None,
        track_id: int,
        box: Box,
        now: float,
        similarity: float | None = None,
    ) -> tuple[Visit, bool]:
        """Note a face of ``person`` (None: unknown track) seen now; (its visit, whether new)."""
        visit = self.named.get(person) if person is not None else self.unknown.get(track_id)
        if visit is None:
            visit = Visit(new_visit_id(), person, now, now, track_id, box, similarity)
            if person is not None:
                self.named[person] = visit
            else:
                self.unknown[track_id] = visit
            return visit, True
        visit.last_seen, visit.track_id, visit.box = max(visit.last_seen, now), track_id, box
        if similarity is not None:
            visit.similarity = max(visit.similarity or -1.0, similarity)
        return visit, False

    def expire(self, now: float, force: bool = False) -> list[Visit]:
        """Close and return the visits unseen for ``leave_after_s`` (every visit when ``force``)."""
        gone = [v for v in self.visits() if force or now - v.last_seen >= self.leave_after_s]
        for visit in gone:
            if visit.person is not None:
                del self.named[visit.person]
            elif visit in self.orphans:
                self.orphans.remove(visit)
            else:
                del self.unknown[visit.track_id]
        return gone

    def visits(self) -> list[Visit]:
        """Every open visit, oldest first."""
        found = [*self.named.values(), *self.unknown.values(), *self.orphans]
        return sorted(found, key=lambda v: v.started)

    def handover(self, leave_after_s: float) -> Presence:
        """This presence, ready for a new pipeline (a new tracker, whose ids start again)."""
        self.leave_after_s = leave_after_s
        self.orphans.extend(self.unknown.values())  # they can only expire now
        self.unknown = {}
        log.debug("presence handed over: %d visits open", len(self.visits()))
        return self
