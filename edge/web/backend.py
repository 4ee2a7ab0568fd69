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
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from facegate.errors import FacegateError
from facegate.gallery.enroll import EnrolOutcome, template_from_image
from facegate.gallery.rules import normalise_name
from facegate.gallery.store import GalleryStore, PersonInfo
from facegate.service.recent import RecentEvent, RecentEvents
from facegate.text import visible
from facegate.vision.image import decode_image
from facegate.vision.recognizer import Recognizer

log = logging.getLogger(__name__)

T = TypeVar("T")
JobRunner = Callable[[Callable[[Recognizer], T]], T]
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
    ) -> None:
        """``reader``: the daemon's open (read-only) store; ``writer`` opens a writable one."""
        self._reader, self._writer, self._run_job = reader, writer, run_job
        self._health, self.recent = health, recent
        self._thumbs: tuple[int, dict[str, bytes]] = (-1, {})
        self._lock = threading.Lock()

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
        """The PNG of the person's first face (112 x 112, aligned); NotFound when none."""
        store = self._reader()
        version = store.version()
        with self._lock:
            cached_version, thumbs = self._thumbs
        if version != cached_version:  # read once per gallery change, not once per picture
            slugs = {p.name: p.slug for p in store.people()}
            thumbs = {
                slugs[p.name]: p.templates[0].crop_png
                for p in store.dump().people
                if p.templates and p.name in slugs
            }
            with self._lock:
                self._thumbs = (version, thumbs)
        if slug not in thumbs:
            raise NotFound(f"no face for id {visible(slug)!r}")
        return thumbs[slug]

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
