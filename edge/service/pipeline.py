"""Frame -> faces -> tracks -> (some) embeddings -> votes -> events, for one camera.

Embedding is the expensive step, so a track is embedded only while it is still undecided, only
when its face is large and sharp enough, and at most ``max_embeds_per_track`` times. A person is
named after ``votes`` agreeing frames; one ``recognized`` event per visit, ``left`` when the person
has been out of sight for ``leave_after_s``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np

from facegate.errors import ImageError
from facegate.gallery.enroll import sharpness
from facegate.gallery.match import decide
from facegate.service.metrics import Metrics
from facegate.service.snapshots import SnapshotStore
from facegate.sources.opencv import frame_to_rgb
from facegate.types import Event, Face, Frame
from facegate.vision.recognizer import Recognizer
from facegate.vision.track import IoUTracker, Track

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    """Tuning of tracking and voting (see facegate.config for each default's reason)."""

    camera: str = "camera"
    min_face_size: int = 60
    min_sharpness: float = 60.0
    votes: int = 3
    max_embeds_per_track: int = 10
    unknown_after: int = 5
    detect_every: int = 1
    iou_threshold: float = 0.3
    max_missed: int = 15
    leave_after_s: float = 5.0


class Pipeline:
    """Turns frames into events; holds the tracker and who is present."""

    def __init__(
        self,
        recognizer: Recognizer,
        settings: PipelineSettings,
        snapshots: SnapshotStore | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.rec, self.s = recognizer, settings
        self.snapshots, self.metrics = snapshots, metrics or Metrics()
        self.tracker = IoUTracker(settings.iou_threshold, settings.max_missed)
        self.present: dict[str, set[int]] = {}  # person -> ids of the tracks showing them
        self.leaving: dict[str, tuple[float, Track]] = {}  # person -> (time last seen, track)
        self.rejected = 0  # frames that were no picture (empty, tiny, odd shape or dtype)

    def reconfigure(
        self, recognizer: Recognizer, settings: PipelineSettings, snapshots: SnapshotStore | None
    ) -> None:
        """Use these models and settings from the next frame on; tracks and presence stay."""
        self.rec, self.s, self.snapshots = recognizer, settings, snapshots
        self.tracker.iou_threshold = settings.iou_threshold
        self.tracker.max_missed = settings.max_missed

    def process(self, frame: Frame) -> list[Event]:
        """Run one frame through the stages; return the events it caused."""
        if frame.index % self.s.detect_every:
            return self._expire(frame.timestamp)
        checked = self._checked(frame)
        if checked is None:
            return self._expire(frame.timestamp)
        frame = checked
        with self.metrics.stage("detect"):
            faces = self.rec.detect(frame.image)
        self.metrics.inc("faces", len(faces))
        matched, ended = self.tracker.update(faces, frame.timestamp)
        self._embed(frame, [(t, f) for t, f in matched if self._wants_embedding(t, f)])
        events: list[Event] = []
        for track, _ in matched:
            events.extend(self._decide(track, frame))
        for track in ended:
            events.extend(self._ended(track, frame.timestamp))
        events.extend(self._expire(frame.timestamp))
        self.metrics.frame_done()
        return events

    def _checked(self, frame: Frame) -> Frame | None:
        """``frame`` with an HxWx3 uint8 RGB image, or None (counted) when it is no picture."""
        try:
            image = frame_to_rgb(frame.image)
        except ImageError as err:
            self.metrics.inc("frames_rejected")
            self.rejected += 1
            level = logging.WARNING if self.rejected == 1 else logging.DEBUG
            log.log(level, "%s: skipping frame %d: %s", frame.source, frame.index, err)
            return None
        return frame if image is frame.image else replace(frame, image=image)

    def finish(self, now: float) -> list[Event]:
        """End of stream or shutdown: everyone still here leaves."""
        events = []
        for track in self.tracker.clear():
            events.extend(self._ended(track, now))
        return events + self._expire(now, force=True)

    def _wants_embedding(self, track: Track, face: Face) -> bool:
        return (
            track.name is None
            and track.embeds < self.s.max_embeds_per_track
            and face.size >= self.s.min_face_size
        )

    def _embed(self, frame: Frame, todo: list[tuple[Track, Face]]) -> None:
        if not todo:
            return
        with self.metrics.stage("align"):
            aligned = [self.rec.align_face(frame.image, f) for _, f in todo]
        keep = [i for i, a in enumerate(aligned) if sharpness(a.crop) >= self.s.min_sharpness]
        if not keep:
            return
        with self.metrics.stage("embed"):
            vectors = self.rec.embedder.embed(np.stack([aligned[i].crop for i in keep]))
        self.metrics.inc("embeddings", len(keep))
        with self.metrics.stage("match"):
            results = self.rec.matcher.search(vectors) if self.rec.matcher else [[] for _ in keep]
        for i, candidates in zip(keep, results, strict=True):
            todo[i][0].vote(decide(candidates, self.rec.config.threshold))

    def _decide(self, track: Track, frame: Frame) -> list[Event]:
        if track.name is None:
            leader = track.leader(self.s.votes)
            if leader is not None:
                track.name = leader
                return self._arrive(track, frame.timestamp)
            if (
                not track.unknown_reported
                and not track.votes
                and track.misses >= self.s.unknown_after
            ):
                track.unknown_reported = True
                return [self._unknown(track, frame)]
        return []

    def _arrive(self, track: Track, now: float) -> list[Event]:
        name = track.name or ""
        self.metrics.inc("recognitions")
        returning = name in self.present or name in self.leaving
        self.present.setdefault(name, set()).add(track.id)
        self.leaving.pop(name, None)
        if returning:
            log.debug("%s seen again on track %d (same visit)", name, track.id)
            return []
        return [
            Event(
                "recognized",
                self.s.camera,
                now,
                track.id,
                track.face.box,
                name,
                track.best.get(name),
            )
        ]

    def _unknown(self, track: Track, frame: Frame) -> Event:
        path = None
        if self.snapshots is not None:
            path = self.snapshots.save(
                frame.image, track.face, self.s.camera, track.id, frame.timestamp
            )
        return Event(
            "unknown", self.s.camera, frame.timestamp, track.id, track.face.box, snapshot=path
        )

    def _ended(self, track: Track, now: float) -> list[Event]:
        if track.name is not None:
            ids = self.present.get(track.name, set())
            ids.discard(track.id)
            if not ids:
                self.present.pop(track.name, None)
                self.leaving[track.name] = (track.last_seen, track)
            return []
        if track.unknown_reported:
            return [Event("left", self.s.camera, now, track.id, track.face.box)]
        return []

    def _expire(self, now: float, force: bool = False) -> list[Event]:
        events = []
        for name, (seen, track) in list(self.leaving.items()):
            if force or now - seen >= self.s.leave_after_s:
                del self.leaving[name]
                events.append(
                    Event(
                        "left",
                        self.s.camera,
                        now,
                        track.id,
                        track.face.box,
                        name,
                        track.best.get(name),
                    )
                )
        return events
