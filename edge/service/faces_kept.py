"""The pipeline's side of the unknown-face store: remember each track's best face, keep it.

While a track is undecided the pipeline hands every embedded face to :meth:`FaceKeeper.note`,
which keeps the best one per track (quality, see :func:`facegate.gallery.unknowns.quality_score`)
in memory. When the track is called unknown that face becomes a sighting in the store, and the
store says which cluster it joined and whether that cluster is ignored (then the pipeline raises no
event). When a track is named, its face is kept for a while as a recent match, so that a wrong
match can be corrected ("not this person"). A store that fails (full disk) never stops
recognition: the failure is logged once and counted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from facegate.errors import GalleryError
from facegate.gallery.store import jpeg_crop
from facegate.gallery.unknowns import Added, UnknownFace, UnknownStore, quality_score
from facegate.service.metrics import Metrics
from facegate.types import AlignedFace
from facegate.vision.quality import FaceQuality

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Probe:
    """One embedded face of a track: its crop, embedding and quality score."""

    crop: np.ndarray
    embedding: np.ndarray
    quality: float


class FaceKeeper:
    """Best face per live track; unknown ones go to the store, named ones to recent matches."""

    def __init__(self, store: UnknownStore, camera: str, metrics: Metrics) -> None:
        self.store, self.camera, self.metrics = store, camera, metrics
        self.probes: dict[int, Probe] = {}
        self.failing = False

    def note(
        self, track_id: int, aligned: AlignedFace, quality: FaceQuality, embedding: np.ndarray
    ) -> None:
        """Keep this face if it is the track's best so far."""
        pose = quality.pose
        score = quality_score(quality.size, quality.sharpness, pose.yaw, pose.pitch)
        kept = self.probes.get(track_id)
        if kept is None or score > kept.quality:
            self.probes[track_id] = Probe(aligned.crop, np.array(embedding, np.float32), score)

    def forget(self, track_ids: list[int]) -> None:
        """Drop the faces of tracks that ended."""
        for track_id in track_ids:
            self.probes.pop(track_id, None)

    def unknown(self, track_id: int, when: float) -> Added | None:
        """Store the track's best face as a sighting; None without one or when the store fails."""
        probe = self.probes.get(track_id)
        if probe is None:
            return None
        face = UnknownFace(probe.embedding, probe.crop, probe.quality, when, self.camera, track_id)
        try:
            added = self.store.add(face)
        except GalleryError as err:
            self._failed(err)
            return None
        self._worked()
        self.metrics.inc("unknowns_kept")
        return added

    def face_jpeg(self, track_id: int) -> bytes | None:
        """The track's best face as JPEG (for the MQTT image entity), or None."""
        probe = self.probes.get(track_id)
        return None if probe is None else jpeg_crop(probe.crop)

    def visit(self, sighting_id: int, visit_id: str) -> None:
        """Note the visit a stored sighting opened."""
        try:
            self.store.set_visit(sighting_id, visit_id)
        except GalleryError as err:
            self._failed(err)

    def recognized(
        self, track_id: int, person: str, similarity: float, when: float, visit_id: str
    ) -> None:
        """Keep the named track's best face as a recent match (for corrections)."""
        probe = self.probes.get(track_id)
        if probe is None:
            return
        face = UnknownFace(
            probe.embedding, probe.crop, probe.quality, when, self.camera, track_id, visit_id
        )
        try:
            self.store.remember_match(face, person, similarity)
        except GalleryError as err:
            self._failed(err)

    def _failed(self, err: GalleryError) -> None:
        self.metrics.inc("unknowns_errors")
        if not self.failing:
            log.warning("cannot keep unknown faces (%s); recognition goes on", err)
        self.failing = True

    def _worked(self) -> None:
        if self.failing:
            log.info("unknown faces are kept again")
        self.failing = False
