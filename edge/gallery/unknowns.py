"""Unknown faces the daemon saw, kept in the gallery file: sightings grouped into clusters.

Open a store with ``UnknownStore.open(gallery_path)`` (the model is the gallery's own) or
``UnknownStore.from_config(config)``; it is a context manager and safe to share between threads.
Every face the daemon calls ``unknown`` becomes a :class:`Sighting` (aligned 112x112 crop as JPEG,
embedding, quality, time, camera, track and visit) that joins a cluster
(:mod:`facegate.gallery.clusters`). A cluster is ``open``, ``ignored`` (a known stranger: no more
alerts) or ``labelled`` (its best crops were enrolled as a person). Nothing here ever returns an
embedding, and nothing is logged but ids and counts.

The tables live in the gallery file (schema 3) so that labelling a cluster (templates added,
cluster marked) is one transaction; ``gallery export`` reads only people and templates, so it never
carries unknowns. Deleted rows are overwritten (``secure_delete``) and the WAL is truncated.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facegate.errors import GalleryError
from facegate.gallery import clusters as cl
from facegate.gallery import roster
from facegate.gallery import unknown_clustering as uc
from facegate.gallery.rules import clean_source, normalise_name
from facegate.gallery.schema import connect, read_meta
from facegate.gallery.store import (
    GalleryStore,
    Template,
    decode_jpeg_crop,
    jpeg_crop,
)
from facegate.gallery.unknown_types import (
    DAY_S,
    MAX_LABEL_CROPS,
    Added,
    ClusterSummary,
    Labelled,
    Retention,
    Sighting,
    State,
    UnknownFace,
    quality_score,
)
from facegate.text import visible

if TYPE_CHECKING:
    from facegate.config.schema import Config

log = logging.getLogger(__name__)


class UnknownStore:
    """Sightings and clusters of unknown faces in one gallery file (see the module doc)."""

    def __init__(
        self,
        gallery: GalleryStore,
        threshold: float = cl.CLUSTER_THRESHOLD,
        retention: Retention | None = None,
    ) -> None:
        """Wrap an open, writable gallery; use ``UnknownStore.open`` instead."""
        self.gallery = gallery
        self.threshold = threshold
        self.retention = retention or Retention()

    @classmethod
    def open(
        cls,
        path: Path,
        model_id: str | None = None,
        embedding_size: int | None = None,
        *,
        threshold: float = cl.CLUSTER_THRESHOLD,
        retention: Retention | None = None,
    ) -> UnknownStore:
        """Open the gallery at ``path`` read-write; without a model, the one it holds."""
        path = Path(path)
        if model_id is None or embedding_size is None:
            model_id, embedding_size = _stored_model(path)
        gallery = GalleryStore.open(path, model_id, embedding_size)
        return cls(gallery, threshold, retention)

    @classmethod
    def from_config(
        cls, config: Config, model_id: str | None = None, embedding_size: int | None = None
    ) -> UnknownStore:
        """Open the configured gallery with the ``[unknowns]`` table's settings."""
        from facegate.service.assemble import gallery_path

        u = config.unknowns
        retention = Retention(u.max_sightings, u.max_age_days, u.keep_matches_hours)
        return cls.open(
            gallery_path(config),
            model_id,
            embedding_size,
            threshold=u.cluster_threshold,
            retention=retention,
        )

    def __enter__(self) -> UnknownStore:
        """Return the open store."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the store."""
        self.close()

    def close(self) -> None:
        """Close the gallery connection; safe to call twice."""
        self.gallery.close()

    @property
    def model_id(self) -> str:
        """The embedding model of the gallery (and of the sightings used)."""
        return self.gallery.model_id

    # ---- the daemon's side ----------------------------------------------------------------

    def add(self, face: UnknownFace) -> Added:
        """Store one unknown face and cluster it (join, merge, split); apply retention."""
        vector = _unit(face.embedding, self.gallery.embedding_size)
        crop = jpeg_crop(face.crop)
        with self.gallery._write("store an unknown face in", bump=False) as conn:
            cluster_id = uc.place(conn, self.model_id, vector, self.threshold, face.time)
            cursor = conn.execute(
                "INSERT INTO unknown_sightings (cluster_id, time, camera, track_id, visit_id,"
                " quality, model_id, embedding, crop) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    cluster_id,
                    face.time,
                    clean_source(face.camera),
                    face.track_id,
                    face.visit_id,
                    float(face.quality),
                    self.model_id,
                    _blob(vector),
                    crop,
                ),
            )
            sighting_id = int(cursor.lastrowid or 0)
            cluster_id = uc.tidy(conn, self.model_id, cluster_id, sighting_id, self.threshold)
            state = conn.execute(
                "SELECT state FROM unknown_clusters WHERE id = ?", (cluster_id,)
            ).fetchone()[0]
            uc.expire(conn, self.retention, face.time)
        log.debug("unknown sighting %d joined cluster %d (%s)", sighting_id, cluster_id, state)
        return Added(sighting_id, cluster_id, state)

    def set_visit(self, sighting_id: int, visit_id: str) -> None:
        """Record the visit a sighting opened (the daemon knows it once the event is made)."""
        with self.gallery._write("store an unknown face in", bump=False) as conn:
            conn.execute(
                "UPDATE unknown_sightings SET visit_id = ? WHERE id = ?", (visit_id, sighting_id)
            )

    def remember_match(self, face: UnknownFace, person: str, similarity: float) -> None:
        """Keep a recognized face for ``keep_matches_hours``, so a wrong match can be corrected."""
        if self.retention.keep_matches_hours <= 0 or face.visit_id is None:
            return
        vector = _unit(face.embedding, self.gallery.embedding_size)
        with self.gallery._write("keep a recent match in", bump=False) as conn:
            found = roster.find(conn, person)
            if found is None:
                return
            conn.execute(
                "INSERT INTO recent_matches (visit_id, person_id, time, camera, similarity,"
                " model_id, embedding, crop) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    face.visit_id,
                    found[0],
                    face.time,
                    clean_source(face.camera),
                    float(similarity),
                    self.model_id,
                    _blob(vector),
                    jpeg_crop(face.crop),
                ),
            )
            uc.expire(conn, self.retention, face.time)

    # ---- reading ----------------------------------------------------------------------------

    def clusters(self, include_ignored: bool = False) -> list[ClusterSummary]:
        """Every cluster with at least one sighting, latest first (ignored ones on request)."""
        with self.gallery._read("list unknowns in") as conn:
            found = uc.summaries(conn, None)
        return [c for c in found if include_ignored or c.state != "ignored"]

    def cluster(self, cluster_id: int) -> ClusterSummary:
        """One cluster, or GalleryError naming the id."""
        with self.gallery._read("read unknowns in") as conn:
            found = uc.summaries(conn, int(cluster_id))
        if not found:
            raise GalleryError(f"no unknown cluster {cluster_id} (see `facegate unknowns list`)")
        return found[0]

    def sightings(self, cluster_id: int) -> list[Sighting]:
        """The cluster's sightings, oldest first (no embeddings)."""
        self.cluster(cluster_id)
        with self.gallery._read("read unknowns in") as conn:
            rows = conn.execute(
                "SELECT id, cluster_id, time, camera, quality, track_id, visit_id"
                " FROM unknown_sightings WHERE cluster_id = ? ORDER BY time, id",
                (int(cluster_id),),
            ).fetchall()
        return [Sighting(*row) for row in rows]

    def crop(self, sighting_id: int) -> bytes:
        """The sighting's aligned 112x112 face as JPEG bytes."""
        with self.gallery._read("read unknowns in") as conn:
            row = conn.execute(
                "SELECT crop FROM unknown_sightings WHERE id = ?", (int(sighting_id),)
            ).fetchone()
        if row is None:
            raise GalleryError(f"no unknown sighting {sighting_id}")
        return bytes(row[0])

    def best_crop(self, cluster_id: int) -> bytes:
        """The JPEG of the cluster's highest-quality sighting (its thumbnail)."""
        best = self.cluster(cluster_id).best_sighting
        if best is None:
            raise GalleryError(f"unknown cluster {cluster_id} holds no sightings")
        return self.crop(best)

    def latest(self) -> tuple[Sighting, bytes] | None:
        """The most recent sighting of a cluster not ignored, with its JPEG; None if none."""
        with self.gallery._read("read unknowns in") as conn:
            row = conn.execute(
                "SELECT s.id, s.cluster_id, s.time, s.camera, s.quality, s.track_id, s.visit_id,"
                " s.crop FROM unknown_sightings s JOIN unknown_clusters c ON c.id = s.cluster_id"
                " WHERE c.state != 'ignored' ORDER BY s.time DESC, s.id DESC LIMIT 1"
            ).fetchone()
        return None if row is None else (Sighting(*row[:7]), bytes(row[7]))

    # ---- the user's side -------------------------------------------------------------------

    def label(self, cluster_id: int, name: str, max_crops: int = MAX_LABEL_CROPS) -> Labelled:
        """Enrol the cluster's best crops as ``name`` (new or existing) and mark it labelled.

        One transaction: either the person gains the templates and the cluster is labelled, or
        nothing changed. The daemon recognizes the person from its next gallery reload.
        """
        name = normalise_name(name)
        if max_crops < 1:
            raise GalleryError(f"max_crops must be at least 1, got {max_crops}")
        now = time.time()
        with self.gallery._write("label unknowns in") as conn:
            self.gallery._check_model(conn)
            done = conn.execute(
                "SELECT label FROM unknown_clusters WHERE id = ? AND state = 'labelled'",
                (int(cluster_id),),
            ).fetchone()
            if done is not None:
                raise GalleryError(
                    f"unknown cluster {cluster_id} is already enrolled as {visible(done[0])!r}"
                )
            rows = uc.best_rows(conn, int(cluster_id), self.model_id, max_crops)
            if not rows:
                raise GalleryError(
                    f"no unknown cluster {cluster_id} with faces of model {self.model_id!r}"
                )
            templates = [
                Template(_vector(blob), decode_jpeg_crop(crop), f"unknown cluster {cluster_id}")
                for blob, crop in rows
            ]
            person_id, stored = roster.find_or_add(conn, name, now)
            stored_rows = [self.gallery._template_row(t, now) for t in templates]
            roster.insert_templates(conn, person_id, self.model_id, stored_rows)
            total = roster.count_templates(conn, person_id)
            conn.execute(
                "UPDATE unknown_clusters SET state = 'labelled', label = ?, person_id = ?"
                " WHERE id = ?",
                (stored, person_id, int(cluster_id)),
            )
        log.info("labelled unknown cluster %d as %r (%d crops)", cluster_id, stored, len(rows))
        return Labelled(int(cluster_id), stored, len(rows), total)

    def ignore(self, cluster_id: int) -> None:
        """Keep the cluster as a known stranger: faces that join it raise no ``unknown`` event."""
        self._set_state(cluster_id, "ignored")

    def reopen(self, cluster_id: int) -> None:
        """Undo ``ignore``: the cluster's faces raise ``unknown`` events again."""
        self._set_state(cluster_id, "open")

    def _set_state(self, cluster_id: int, state: State) -> None:
        self.cluster(cluster_id)
        with self.gallery._write("change unknowns in", bump=False) as conn:
            conn.execute(
                "UPDATE unknown_clusters SET state = ?, label = NULL, person_id = NULL"
                " WHERE id = ?",
                (state, int(cluster_id)),
            )
        log.info("unknown cluster %d is %s", cluster_id, state)

    def purge(self, older_than_days: float | None = None) -> int:
        """Delete sightings older than ``older_than_days`` (None: all of them, and every
        cluster); return how many sightings went. Deleted faces are overwritten."""
        if older_than_days is not None and not older_than_days >= 0:
            raise GalleryError(f"--older-than must be a number of days >= 0, got {older_than_days}")
        with self.gallery._write("purge unknowns from", erase=True, bump=False) as conn:
            if older_than_days is None:
                count = conn.execute("DELETE FROM unknown_sightings").rowcount
                conn.execute("DELETE FROM unknown_clusters")
                conn.execute("DELETE FROM recent_matches")
            else:
                cutoff = time.time() - older_than_days * DAY_S
                count = uc.delete_sightings(conn, "time < ?", (cutoff,))
        log.info("purged %d unknown sighting(s)", count)
        return count

    def correct(self, visit_id: str) -> str:
        """ "Not this person": the faces of a recognized visit become negatives of the person
        they matched, so the matcher no longer names that face so; return the person's name."""
        with self.gallery._write("correct a match in", erase=True) as conn:
            rows = conn.execute(
                "SELECT r.person_id, p.name, r.model_id, r.embedding, r.crop, r.time"
                " FROM recent_matches r JOIN people p ON p.id = r.person_id"
                " WHERE r.visit_id = ?",
                (visit_id,),
            ).fetchall()
            if not rows:
                raise GalleryError(
                    f"no recent match with visit id {visible(visit_id)!r} (matches are kept"
                    " for [unknowns] keep_matches_hours)"
                )
            source = clean_source(f"visit {visit_id}")
            conn.executemany(
                "INSERT INTO negatives (person_id, model_id, embedding, crop, source, created)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (pid, model, blob, crop, source, when)
                    for pid, _, model, blob, crop, when in rows
                ],
            )
            conn.execute("DELETE FROM recent_matches WHERE visit_id = ?", (visit_id,))
        log.info("visit %s is not %r: %d negative example(s) kept", visit_id, rows[0][1], len(rows))
        return str(rows[0][1])

    def add_negative(self, name: str, embedding: np.ndarray, crop: np.ndarray, source: str) -> int:
        """Keep a face (say from a photo) as one that is not ``name``; return their negatives."""
        vector = _unit(embedding, self.gallery.embedding_size)
        with self.gallery._write("correct a match in") as conn:
            found = roster.find(conn, name)
            if found is None:
                raise GalleryError(f"no person named {visible(name)!r} in the gallery")
            conn.execute(
                "INSERT INTO negatives (person_id, model_id, embedding, crop, source, created)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    found[0],
                    self.model_id,
                    _blob(vector),
                    jpeg_crop(crop),
                    clean_source(source),
                    time.time(),
                ),
            )
            return conn.execute(
                "SELECT COUNT(*) FROM negatives WHERE person_id = ?", (found[0],)
            ).fetchone()[0]

    def recent_matches(self) -> list[tuple[str, str, float, str, float]]:
        """(visit id, person, time, camera, similarity) of the matches kept for corrections."""
        with self.gallery._read("read recent matches in") as conn:
            return conn.execute(
                "SELECT r.visit_id, p.name, MAX(r.time), r.camera, MAX(r.similarity)"
                " FROM recent_matches r JOIN people p ON p.id = r.person_id"
                " GROUP BY r.visit_id ORDER BY MAX(r.time) DESC"
            ).fetchall()


def _stored_model(path: Path) -> tuple[str, int]:
    """(model id, embedding size) a gallery records, without loading any model."""
    if not path.exists():
        raise GalleryError(f"no gallery at {path}: no unknown faces have been kept yet")
    conn = connect(path, readonly=True)
    try:
        meta = read_meta(conn, path) or {}
    finally:
        conn.close()
    model_id, size = meta.get("model_id"), meta.get("embedding_size")
    if not isinstance(model_id, str) or not isinstance(size, int):
        raise GalleryError(f"gallery {path} is empty or damaged: it names no model")
    return model_id, size


def _unit(vector: np.ndarray, size: int) -> np.ndarray:
    arr = np.asarray(vector, dtype=np.float32).reshape(-1)
    if arr.shape != (size,) or not np.isfinite(arr).all() or not np.linalg.norm(arr) > 0:
        raise GalleryError(f"an unknown face's embedding must be {size} finite, non-zero values")
    return arr / np.linalg.norm(arr)


def _blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def _vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)


__all__: Sequence[str] = (
    "Added",
    "ClusterSummary",
    "Labelled",
    "Retention",
    "Sighting",
    "UnknownFace",
    "UnknownStore",
    "quality_score",
)
