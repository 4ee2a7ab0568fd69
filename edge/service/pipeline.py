"""Frame -> faces -> tracks -> (some) embeddings -> votes -> visits -> events, for one camera.

Embedding is the expensive step, so a track is embedded only while it is still undecided, only
when its face is large, sharp and frontal enough, and at most ``max_embeds_per_track`` times. A
track is named after ``votes`` agreeing frames and called unknown after ``unknown_after``
embedded frames without any match, so a face turned away, blurred or small never makes a
stranger alert. Who is present is kept as visits (:mod:`facegate.service.visits`): one
``recognized`` (or ``unknown``) opens a visit, one ``left`` closes it once no face of it has
been seen for ``leave_after_s`` seconds of frame time; every event carries its ``visit_id``.

Frames come from a source that already met the frame contract (:class:`facegate.types.Frame`):
nothing here converts or checks pixels.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from facegate.service.liveness import LivenessGate
from facegate.service.metrics import Metrics
from facegate.service.snapshots import SnapshotStore
from facegate.service.visits import LEAVE_AFTER_S, Presence, Visit
from facegate.sources import is_stills
from facegate.types import Event, Face, Frame
from facegate.vision.planner import DetectionPlanner, PlannerSettings
from facegate.vision.quality import MAX_PITCH_DEG, MAX_YAW_DEG, FaceQuality
from facegate.vision.recognizer import Recognizer
from facegate.vision.track import (
    STILLS_EVIDENCE,
    VIDEO_UNKNOWN_AFTER,
    VIDEO_VOTES,
    IoUTracker,
    Track,
)

if TYPE_CHECKING:
    from facegate.config.schema import Config
    from facegate.gallery.unknowns import Added
    from facegate.service.faces_kept import FaceKeeper

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    """Tuning of quality gates, tracking, voting and visits (see facegate.config.schema)."""

    camera: str = "camera"
    min_face_size: int = 60
    min_sharpness: float = 60.0
    max_yaw: float = MAX_YAW_DEG
    max_pitch: float = MAX_PITCH_DEG
    votes: int = VIDEO_VOTES
    max_embeds_per_track: int = 10
    unknown_after: int = VIDEO_UNKNOWN_AFTER
    detect_every: int = 1
    iou_threshold: float = 0.3
    max_missed: int = 15
    leave_after_s: float = LEAVE_AFTER_S
    stills: bool = False  # unrelated photos: no track carries over from one frame to the next
    # where to detect (never planned for stills)
    detection: PlannerSettings = field(default_factory=PlannerSettings)

    @classmethod
    def from_config(cls, config: Config) -> PipelineSettings:
        """The settings a config asks for; a folder source defaults to one vote a photo."""
        r, t, cam = config.recognition, config.tracker, config.camera
        stills = is_stills(cam.source)
        votes = STILLS_EVIDENCE if stills else VIDEO_VOTES
        unknown_after = STILLS_EVIDENCE if stills else VIDEO_UNKNOWN_AFTER
        return cls(
            camera=cam.name,
            min_face_size=r.min_face_size,
            min_sharpness=r.min_sharpness,
            max_yaw=r.max_yaw,
            max_pitch=r.max_pitch,
            votes=votes if r.votes is None else r.votes,
            max_embeds_per_track=r.max_embeds_per_track,
            unknown_after=unknown_after if r.unknown_after is None else r.unknown_after,
            detect_every=cam.detect_every,
            iou_threshold=t.iou_threshold,
            max_missed=t.max_missed,
            leave_after_s=t.leave_after_s,
            stills=stills,
            detection=planner_settings(config, stills),
        )

    def good_enough(self, quality: FaceQuality) -> bool:
        """Whether a face is large, sharp and frontal enough to embed (and to call unknown)."""
        return (
            quality.size >= self.min_face_size
            and quality.sharpness >= self.min_sharpness
            and quality.pose.within(self.max_yaw, self.max_pitch)
        )


def planner_settings(config: Config, stills: bool) -> PlannerSettings:
    """The [detection] table as planner settings; photos of a folder are never planned."""
    d = config.detection
    return PlannerSettings(
        enabled=d.enabled and not stills,
        motion_threshold=d.motion_threshold,
        motion_min_area=d.motion_min_area,
        full_scan_every=d.full_scan_every,
        region_margin=d.region_margin,
        refine=d.refine,
        min_face=config.camera.min_face if config.camera.min_face is not None else d.min_face,
    )


def _planner(settings: PipelineSettings, liveness: bool) -> DetectionPlanner | None:
    """The camera's detection planner (None: scan every frame).

    With liveness on, tracked faces are never refined by O-Net alone: the liveness model and
    its threshold were measured on the whole cascade's boxes, and O-Net's one-step refit moves
    a box by up to a tenth of the face — enough to turn a held-out NUAA subject's real frames
    into a ``spoof`` (tests/integration/test_liveness_attacks.py).
    """
    if settings.stills or not settings.detection.enabled:
        return None
    if liveness and settings.detection.refine:
        return DetectionPlanner(dataclasses.replace(settings.detection, refine=False))
    return DetectionPlanner(settings.detection)


class Pipeline:
    """Turns frames into events; holds the tracker and the open visits (``presence``).

    ``presence`` carries over a rebuild: ``Pipeline(rec, settings, presence=old.presence)``
    keeps every open visit and its id, so a reload emits no ``left`` and no second
    ``recognized`` for someone still in view.
    """

    def __init__(
        self,
        recognizer: Recognizer,
        settings: PipelineSettings,
        snapshots: SnapshotStore | None = None,
        metrics: Metrics | None = None,
        presence: Presence | None = None,
        liveness: LivenessGate | None = None,
        keeper: FaceKeeper | None = None,
    ) -> None:
        self.rec, self.s = recognizer, settings
        self.liveness = liveness  # None: every face is taken as live
        self.keeper = keeper  # unknown faces to the store (None: [unknowns] enabled = false)
        self.quiet: set[int] = set()  # tracks that joined an ignored cluster: no event
        self.clusters: dict[int, Added | None] = {}  # track id -> where its face went
        self.snapshots, self.metrics = snapshots, metrics or Metrics()
        if settings.stills:  # photos are unrelated scenes: never join boxes across them
            self.tracker = IoUTracker(math.inf, 0)
        else:
            self.tracker = IoUTracker(settings.iou_threshold, settings.max_missed)
        if presence is None:
            self.presence = Presence(settings.leave_after_s)
        else:
            self.presence = presence.handover(settings.leave_after_s)
        self.planner = _planner(settings, liveness is not None)

    def reconfigure(
        self, recognizer: Recognizer, settings: PipelineSettings, snapshots: SnapshotStore | None
    ) -> None:
        """Use these models and settings from the next frame on; tracks and presence stay."""
        self.rec, self.s, self.snapshots = recognizer, settings, snapshots
        self.tracker.iou_threshold = settings.iou_threshold
        self.tracker.max_missed = settings.max_missed
        self.presence.leave_after_s = settings.leave_after_s
        planner = _planner(settings, self.liveness is not None)
        if self.planner is None or planner is None or self.planner.settings != planner.settings:
            self.planner = planner

    def process(self, frame: Frame) -> list[Event]:
        """Run one frame through the stages; return the events it caused."""
        if frame.index % self.s.detect_every:
            return self.expire(frame.timestamp)
        faces = self._detect(frame)
        if faces is None:  # nothing moved: the tracks stand as they are
            self.metrics.frame_done()
            return self.expire(frame.timestamp)
        self.metrics.inc("faces", len(faces))
        matched, ended = self.tracker.update(faces, frame.timestamp)
        if self.liveness is not None:
            with self.metrics.stage("liveness"):
                scored = self.liveness.observe(frame, matched, self.s.min_face_size)
            self.metrics.inc("liveness_scored", scored)
            self.liveness.forget(ended)
        self._forget([t.id for t in ended])
        self._embed(frame, [(t, f) for t, f in matched if self._wants_embedding(t, f)])
        events = [event for track, _ in matched for event in self._decide(track, frame)]
        events += self.expire(frame.timestamp)
        self.metrics.frame_done()
        return events

    def expire(self, now: float) -> list[Event]:
        """A ``left`` for each visit with no face seen for ``leave_after_s`` before ``now``."""
        return [self._left(visit, now) for visit in self.presence.expire(now)]

    def finish(self, now: float) -> list[Event]:
        """End of stream or shutdown: every open visit ends with its ``left``."""
        self._forget([t.id for t in self.tracker.clear()])
        gone = self.presence.expire(now, force=True)
        # a file read faster than real time has frame times ahead of the clock: never leave
        # before the last sighting
        return [self._left(visit, max(now, visit.last_seen)) for visit in gone]

    def _detect(self, frame: Frame) -> list[Face] | None:
        """Faces of one frame where the planner (if any) says they can be; None: not looked."""
        if self.planner is None:
            with self.metrics.stage("detect"):
                return self.rec.detect(frame.image)
        with self.metrics.stage("motion"):
            plan = self.planner.plan(frame.image, [t.face.box for t in self.tracker.tracks])
        self.metrics.inc(f"detect_{plan.kind}")
        if plan.kind == "skip":
            return None
        with self.metrics.stage("detect"):
            return self.planner.detect(self.rec, frame.image, plan)

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
            aligned = self.rec.align(frame.image, [face for _, face in todo])
        quality = [self.rec.quality(a) for a in aligned]
        keep = [i for i, q in enumerate(quality) if self.s.good_enough(q)]
        if not keep:
            return
        with self.metrics.stage("embed"):
            vectors = self.rec.embed_aligned([aligned[i] for i in keep])
        self.metrics.inc("embeddings", len(keep))
        with self.metrics.stage("match"):
            matches = self.rec.match(vectors)
        for i, match in zip(keep, matches, strict=True):
            todo[i][0].vote(match)
        if self.keeper is not None:
            for i, vector in zip(keep, vectors, strict=True):
                self.keeper.note(todo[i][0].id, aligned[i], quality[i], vector)

    def _forget(self, track_ids: list[int]) -> None:
        self.quiet.difference_update(track_ids)
        for track_id in track_ids:
            self.clusters.pop(track_id, None)
        if self.keeper is not None:
            self.keeper.forget(track_ids)

    def _decide(self, track: Track, frame: Frame) -> list[Event]:
        """Name or call unknown what the votes allow; open a visit for a newly present face."""
        if self.liveness is not None and self.liveness.verdict(track.id) is not False:
            return self._spoof(track, frame)  # not judged yet, or an attack: never recognized
        if track.name is None:
            track.name = track.leader(self.s.votes)
            if track.name is not None:
                self.metrics.inc("recognitions")
            elif (
                not track.unknown_reported
                and not track.votes
                and track.misses >= self.s.unknown_after
            ):
                track.unknown_reported = True
                self._keep_unknown(track, frame)
        if track.name is None and (not track.unknown_reported or track.id in self.quiet):
            return []
        best = track.best.get(track.name) if track.name is not None else None
        visit, new = self.presence.see(track.name, track.id, track.face.box, frame.timestamp, best)
        if not new:
            return []
        if track.name is not None:
            log.debug("%s arrived on track %d (visit %s)", track.name, track.id, visit.id)
            if self.keeper is not None and best is not None:
                self.keeper.recognized(track.id, track.name, best, frame.timestamp, visit.id)
            return [self._event("recognized", visit, frame.timestamp)]
        return [self._unknown(track, frame, visit)]


    def _spoof(self, track: Track, frame: Frame) -> list[Event]:
        """One ``spoof`` for a track judged an attack (naming whom it resembles, if anyone)."""
        if self.liveness is None or not self.liveness.report_once(track.id):
            return []
        self.metrics.inc("spoofs")
        name = track.name or track.leader(1)
        log.info("presentation attack on track %d (camera %s)", track.id, self.s.camera)
        return [Event("spoof", self.s.camera, frame.timestamp, track.id, track.face.box, name)]

    def _keep_unknown(self, track: Track, frame: Frame) -> None:
        """Store the track's best face; a track that joined an ignored cluster goes quiet."""
        added = self.keeper.unknown(track.id, frame.timestamp) if self.keeper else None
        self.clusters[track.id] = added
        if added is not None and added.state == "ignored":
            self.quiet.add(track.id)
            log.debug("track %d is ignored unknown cluster %d", track.id, added.cluster_id)

    def _unknown(self, track: Track, frame: Frame, visit: Visit) -> Event:
        path = None
        if self.snapshots is not None:
            path = self.snapshots.save(
                frame.image, track.face, self.s.camera, track.id, frame.timestamp
            )
        added = self.clusters.pop(track.id, None)
        face_jpeg = None
        if added is not None and self.keeper is not None:
            self.keeper.visit(added.sighting_id, visit.id)
            face_jpeg = self.keeper.face_jpeg(track.id)
        return Event(
            "unknown",
            self.s.camera,
            frame.timestamp,
            track.id,
            track.face.box,
            snapshot=path,
            visit_id=visit.id,
            cluster_id=None if added is None else added.cluster_id,
            face_jpeg=face_jpeg,
        )

    def _left(self, visit: Visit, now: float) -> Event:
        return self._event("left", visit, now)

    def _event(self, kind: str, visit: Visit, now: float) -> Event:
        return Event(
            kind,
            self.s.camera,
            now,
            visit.track_id,
            visit.box,
            visit.person,
            visit.similarity,
            visit_id=visit.id,
        )
