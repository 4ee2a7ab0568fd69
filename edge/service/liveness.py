"""The daemon's liveness gate: score each undecided track's face until the track is judged.

A track is judged after ``frames`` scored frames (one for a folder of photos): an attack emits
one ``spoof`` event and is never ``recognized``; a live track goes on as usual. Until a track
is judged its ``recognized`` waits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from facegate.types import Face, Frame
from facegate.vision.liveness import LivenessModel, TrackLiveness
from facegate.vision.track import Track

log = logging.getLogger(__name__)

DECISION_FRAMES = 3  # scored frames a video track needs before it is judged (one is a fluke)


@dataclass(frozen=True, slots=True)
class LivenessSettings:
    """How a track is judged: frames, the attack-score threshold, the rigid-motion cue."""

    frames: int = DECISION_FRAMES
    threshold: float = 0.5
    rigid_below: float = 0.0  # median landmark residual under which motion is rigid (0: off)


@dataclass
class _State:
    evidence: TrackLiveness = field(default_factory=TrackLiveness)
    verdict: bool | None = None  # True: attack
    reported: bool = False


class LivenessGate:
    """Holds the liveness model and each track's evidence and verdict."""

    def __init__(self, model: LivenessModel, settings: LivenessSettings) -> None:
        self.model, self.settings = model, settings
        self._tracks: dict[int, _State] = {}

    def observe(self, frame: Frame, pairs: list[tuple[Track, Face]], min_size: float) -> int:
        """Score the faces of undecided tracks (at least ``min_size`` px); return how many."""
        todo = [(t, f) for t, f in pairs if f.size >= min_size and self.verdict(t.id) is None]
        if not todo:
            return 0
        scores = self.model.score(frame.image, [f for _, f in todo])
        s = self.settings
        for (track, face), score in zip(todo, scores, strict=True):
            state = self._tracks.setdefault(track.id, _State())
            state.evidence.add(float(score), face.landmarks)
            state.verdict = state.evidence.verdict(s.frames, s.threshold, s.rigid_below)
            if state.verdict is not None:
                log.debug(
                    "track %d judged %s (mean attack score %.3f)",
                    track.id,
                    "an attack" if state.verdict else "live",
                    float(np.mean(state.evidence.scores[-s.frames :])),
                )
        return len(todo)

    def verdict(self, track_id: int) -> bool | None:
        """True: an attack; False: live; None: not judged yet."""
        state = self._tracks.get(track_id)
        return None if state is None else state.verdict

    def report_once(self, track_id: int) -> bool:
        """Whether this attack track's ``spoof`` is still to be emitted (then it is marked)."""
        state = self._tracks.get(track_id)
        if state is None or not state.verdict or state.reported:
            return False
        state.reported = True
        return True

    def forget(self, ended: list[Track]) -> None:
        """Drop the evidence of tracks that ended."""
        for track in ended:
            self._tracks.pop(track.id, None)
