"""What the page and the API do, on the daemon's gallery, recognizer and recent events.

No web framework here: the routes (``facegate.web.api``, ``facegate.web.pages``) translate these
calls and their errors into HTTP. Every change goes through the gallery's own code (the store's
enrol/rename/remove, enrolment's face checks) on a connection of its own, like the CLI's; the
daemon's gallery watcher then loads the change, as it does for the CLI.

Uploaded photos are decoded by :func:`facegate.vision.image.decode_image`, with the same format,
size and bomb checks as files given to the CLI, one photo at a time so memory holds at most one
decoded picture per request. Detection and embedding run on the daemon's loop thread
(``run_job``), between frames, so the recognizer is never used by two threads at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from facegate.errors import FacegateError, GalleryError
from facegate.gallery.enroll import EnrolOutcome, template_from_image
from facegate.gallery.rules import normalise_name
from facegate.gallery.store import GalleryStore, PersonInfo
from facegate.gallery.unknowns import ClusterSummary, Labelled, Sighting, UnknownStore
from facegate.service.recent import RecentEvent, RecentEvents
from facegate.text import visible
from facegate.vision.image import decode_image
from facegate.vision.recognizer import Recognizer

log = logging.getLogger(__name__)

T = TypeVar("T")
JobRunner = Callable[[Callable[[Recognizer], T]], T]
STRIP_FACES = 8  # faces of one unknown cluster on the page: its best, by quality
MAX_PHOTOS = 20  # photos in one enrolment upload; the CLI's guidance is 3-10 per person
SOURCE_PREFIX = "upload:"  # a template's source: where its photo came from


class NotFound(FacegateError):
    """The person, cluster or picture asked for does not exist (HTTP 404)."""


class Refused(FacegateError):
    """The request is understood but cannot be done as asked (HTTP 400)."""


@dataclass(frozen=True, slots=True)
class EnrolReport:
    """What an upload enrolled: the person, their template count, and the photos refused."""

    name: str
    slug: str
    added: int
    total: int
    refused: tuple[EnrolOutcome, ...]


class Backend:
    """The daemon's gallery and events as the web sees them; safe to share between threads."""

    def __init__(
        self,
        reader: Callable[[], GalleryStore],
        writer: Callable[[], GalleryStore],
        run_job: JobRunner,
        health: Callable[[], Mapping[str, Any]],
        recent: RecentEvents,
        unknowns: Callable[[], UnknownStore | None] = lambda: None,
    ) -> None:
        """``reader``: the daemon's open (read-only) store; ``writer`` opens a writable one;
        ``unknowns``: the daemon's unknown-face store (None while it keeps none)."""
        self._reader, self._writer, self._run_job = reader, writer, run_job
        self._health, self.recent = health, recent
        self._unknowns = unknowns

    # ---- reading -----------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """The daemon's /health document."""
        return dict(self._health())

    def people(self) -> list[PersonInfo]:
        """Every enrolled person, sorted by name."""
        return self._reader().people()

    def person(self, slug: str) -> PersonInfo:
        """The person whose slug is ``slug``; NotFound when none is."""
        found = next((p for p in self.people() if p.slug == slug), None)
        if found is None:
            raise NotFound(f"no person with id {visible(slug)!r}")
        return found

    def thumbnail(self, slug: str) -> bytes:
        """The JPEG of the person's first face (112 x 112, aligned); NotFound when none."""
        jpeg = self._reader().person_thumbnail(self.person(slug).name)
        if jpeg is None:
            raise NotFound(f"no face for id {visible(slug)!r}")
        return jpeg

    def events(self, limit: int | None = None) -> list[RecentEvent]:
        """The newest events, newest first."""
        return self.recent.latest(limit)

    def event_face(self, event_id: int) -> bytes:
        """The JPEG of an event's face; NotFound when it has none or is gone."""
        jpeg = self.recent.jpeg(event_id)
        if jpeg is None:
            raise NotFound(f"no face for event {event_id}")
        return jpeg

    # ---- changing ----------------------------------------------------------------------

    def enrol(
        self, name: str, photos: list[tuple[str, bytes]], largest: bool = False
    ) -> EnrolReport:
        """Enrol ``name`` from uploaded photos: all of them usable or refused, none half-read.

        A photo that is not a readable image (or is a bomb) refuses the whole upload with
        ImageError; a photo without one good face is listed in ``refused``; when none is
        usable, nothing is enrolled and Refused says why.
        """
        name = normalise_name(name)
        if not photos:
            raise Refused("no photo uploaded")
        if len(photos) > MAX_PHOTOS:
            raise Refused(f"{len(photos)} photos: at most {MAX_PHOTOS} at a time")
        outcomes = [self._template(source, data, largest) for source, data in photos]
        templates = [o.template for o in outcomes if o.template is not None]
        refused = tuple(o for o in outcomes if o.template is None)
        if not templates:
            raise Refused("; ".join(f"{o.source}: {o.reason}" for o in refused))
        with self._store() as store:
            total = store.enroll(name, templates)
            info = store.person(name)
        log.info("web: enrolled %d photo(s) for %r", len(templates), info.name)
        return EnrolReport(info.name, info.slug, len(templates), total, refused)

    def _template(self, source: str, data: bytes, largest: bool) -> EnrolOutcome:
        source = SOURCE_PREFIX + visible(source)[:200]
        image = decode_image(data, source)  # ImageError: not an image, damaged, a bomb
        return self._run_job(lambda rec: template_from_image(rec, image, source, largest))

    def rename(self, slug: str, new: str) -> PersonInfo:
        """Rename the person ``slug`` to ``new``; the name rules apply as in the CLI."""
        old = self.person(slug).name
        with self._store() as store:
            store.rename(old, new)
            return store.person(normalise_name(new))

    def remove(self, slug: str) -> int:
        """Delete the person ``slug`` and every template (erased from the file); the count."""
        name = self.person(slug).name
        with self._store() as store:
            return store.remove(name)

    @contextmanager
    def _store(self) -> Iterator[GalleryStore]:
        """A writable connection of its own to the daemon's gallery, closed after the change."""
        with self._writer() as store:
            yield store

    # ---- unknown faces -----------------------------------------------------------------

    def clusters(self) -> list[ClusterSummary]:
        """The unknown clusters still to name or ignore, latest first ([] when none are kept)."""
        store = self._unknowns()
        if store is None:
            return []
        return [c for c in store.clusters() if c.state == "open"]

    def cluster(self, cluster_id: int) -> tuple[ClusterSummary, list[Sighting]]:
        """One cluster and its best sightings (by quality); NotFound when there is none."""
        store = self._unknown_store()
        try:
            summary, sightings = store.cluster(cluster_id), store.sightings(cluster_id)
        except GalleryError as err:
            raise NotFound(str(err)) from err
        best = sorted(sightings, key=lambda s: (-s.quality, s.id))[:STRIP_FACES]
        return summary, best

    def sighting_face(self, sighting_id: int) -> bytes:
        """The JPEG of one unknown sighting (aligned 112 x 112); NotFound when gone."""
        try:
            return self._unknown_store().crop(sighting_id)
        except GalleryError as err:
            raise NotFound(str(err)) from err

    def label(self, cluster_id: int, name: str) -> Labelled:
        """Enrol the cluster's best faces as ``name`` (new or existing person)."""
        name = normalise_name(name)  # a hostile name is refused (400) before anything else
        self.cluster(cluster_id)
        return self._unknown_store().label(cluster_id, name)

    def ignore(self, cluster_id: int) -> None:
        """Keep the cluster as a known stranger: no more ``unknown`` events for that face."""
        self.cluster(cluster_id)
        self._unknown_store().ignore(cluster_id)

    def _unknown_store(self) -> UnknownStore:
        store = self._unknowns()
        if store is None:
            raise NotFound("unknown faces are not kept (unknowns.enabled = false)")
        return store
