"""The REST API under ``/api``: JSON in and out, described in ``openapi.json`` beside this file.

People are addressed by their slug (the ASCII id MQTT and Home Assistant use), never by their
name in a URL. Every error is one line of JSON, ``{"error": "..."}``.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from facegate.errors import FacegateError, GalleryError, ImageError
from facegate.gallery.rules import NameRefused
from facegate.gallery.store import PersonInfo
from facegate.gallery.unknowns import ClusterSummary, Sighting
from facegate.service.recent import RecentEvent
from facegate.web.app import error_response
from facegate.web.backend import Backend, EnrolReport, NotFound, Refused

blueprint = Blueprint("api", __name__, url_prefix="/api")
DEFAULT_EVENTS = 50  # events in one answer unless ?limit= says otherwise
PICTURE_CACHE_S = 60  # faces change only when someone is re-enrolled or renamed


def backend() -> Backend:
    """The application's backend."""
    return current_app.extensions["facegate"]


@blueprint.errorhandler(FacegateError)
def _facegate_error(err: FacegateError) -> Response:
    """Translate the gallery's and the images' errors to HTTP, one line each."""
    if isinstance(err, NotFound):
        return error_response(404, str(err))
    if isinstance(err, ImageError | NameRefused | Refused):
        return error_response(400, str(err))
    if isinstance(err, GalleryError):
        return error_response(409, str(err))
    return error_response(500, str(err))


@blueprint.get("/health")
def health() -> Response:
    """The service's health (the same document as /health, always 200 here)."""
    return jsonify(backend().health())


@blueprint.get("/people")
def people() -> Response:
    """Every enrolled person."""
    return jsonify(people=[person_json(p) for p in backend().people()])


@blueprint.post("/people")
def enrol() -> tuple[Response, int]:
    """Enrol (or add photos to) the person named in ``name`` from the uploaded ``photo`` files."""
    report = enrol_from_request()
    return jsonify(enrol_json(report)), 201


@blueprint.get("/people/<slug>")
def person(slug: str) -> Response:
    """One person."""
    return jsonify(person_json(backend().person(slug)))


@blueprint.patch("/people/<slug>")
def rename(slug: str) -> Response:
    """Rename a person: ``{"name": "New Name"}``."""
    return jsonify(person_json(backend().rename(slug, _name_from_body())))


@blueprint.delete("/people/<slug>")
def remove(slug: str) -> Response:
    """Delete a person and every one of their faces."""
    return jsonify(removed=backend().remove(slug))


@blueprint.get("/people/<slug>/face")
def person_face(slug: str) -> Response:
    """The person's first enrolled face, 112 x 112 JPEG."""
    return picture(backend().thumbnail(slug), "image/jpeg")


@blueprint.get("/events")
def events() -> Response:
    """The newest recent events, newest first (``?limit=N``)."""
    limit = request.args.get("limit", DEFAULT_EVENTS, type=int)
    return jsonify(events=[event_json(r) for r in backend().events(limit)])


@blueprint.get("/events/<int:event_id>/face")
def event_face(event_id: int) -> Response:
    """The face of one recent event, a small JPEG."""
    return picture(backend().event_face(event_id), "image/jpeg")


@blueprint.get("/clusters")
def clusters() -> Response:
    """The unknown faces still to name or ignore, by cluster, latest first."""
    return jsonify(clusters=[cluster_json(c) for c in backend().clusters()])


@blueprint.get("/clusters/<int:cluster_id>")
def cluster(cluster_id: int) -> Response:
    """One cluster, with the faces of its best sightings."""
    summary, sightings = backend().cluster(cluster_id)
    return jsonify(cluster_json(summary, sightings))


@blueprint.get("/clusters/<int:cluster_id>/face")
def cluster_face(cluster_id: int) -> Response:
    """The cluster's best face, 112 x 112 JPEG."""
    summary, sightings = backend().cluster(cluster_id)
    best = summary.best_sighting if summary.best_sighting is not None else sightings[0].id
    return picture(backend().sighting_face(best), "image/jpeg")


@blueprint.get("/sightings/<int:sighting_id>/face")
def sighting_face(sighting_id: int) -> Response:
    """One sighting's face, 112 x 112 JPEG."""
    return picture(backend().sighting_face(sighting_id), "image/jpeg")


@blueprint.post("/clusters/<int:cluster_id>/label")
def label(cluster_id: int) -> Response:
    """Name the cluster: ``{"name": "..."}``; its best faces are enrolled as that person."""
    done = backend().label(cluster_id, _name_from_body())
    return jsonify(
        cluster=done.cluster_id,
        name=done.name,
        added=done.templates_added,
        templates=done.total_templates,
    )


@blueprint.post("/clusters/<int:cluster_id>/ignore")
def ignore(cluster_id: int) -> Response:
    """Keep the cluster as a known stranger: its face raises no more ``unknown`` events."""
    backend().ignore(cluster_id)
    return jsonify(cluster=cluster_id, state="ignored")


@blueprint.get("/openapi.json")
def openapi() -> Response:
    """This API's description (OpenAPI 3.1)."""
    text = resources.files("facegate.web").joinpath("openapi.json").read_text("utf-8")
    return Response(text, mimetype="application/json")


def _name_from_body() -> str:
    """``name`` from a JSON body or a form."""
    body = request.get_json(silent=True)
    name = body.get("name") if isinstance(body, dict) else request.form.get("name")
    if not isinstance(name, str):
        raise Refused('send {"name": "..."} as JSON')
    return name


def enrol_from_request() -> EnrolReport:
    """Read ``name``, ``photo`` files and ``largest`` from a multipart form and enrol."""
    files = request.files.getlist("photo")
    photos = [(f.filename or "photo", f.read()) for f in files if f.filename or f.content_length]
    largest = request.form.get("largest", "") in ("1", "true", "on")
    return backend().enrol(request.form.get("name", ""), photos, largest)


def picture(data: bytes, kind: str) -> Response:
    """An image answer, private to the browser (faces are never cached by proxies)."""
    response = Response(data, mimetype=kind)
    response.headers["Cache-Control"] = f"private, max-age={PICTURE_CACHE_S}"
    return response


def person_json(p: PersonInfo) -> dict[str, Any]:
    """A person as the API shows it."""
    return {
        "id": p.slug,
        "name": p.name,
        "created": round(p.created, 3),
        "templates": p.template_count,
        "face": f"/api/people/{p.slug}/face",
    }


def enrol_json(report: EnrolReport) -> dict[str, Any]:
    """What an enrolment did."""
    return {
        "id": report.slug,
        "name": report.name,
        "added": report.added,
        "templates": report.total,
        "refused": [{"photo": o.source, "reason": o.reason} for o in report.refused],
    }


def cluster_json(c: ClusterSummary, sightings: list[Sighting] | None = None) -> dict[str, Any]:
    """An unknown cluster as the API shows it (with its best faces when given)."""
    data: dict[str, Any] = {
        "id": c.id,
        "size": c.size,
        "first_seen": round(c.first_seen, 3),
        "last_seen": round(c.last_seen, 3),
        "cameras": list(c.cameras),
        "state": c.state,
        "label": c.label,
        "face": f"/api/clusters/{c.id}/face",
    }
    if sightings is not None:
        data["faces"] = [f"/api/sightings/{s.id}/face" for s in sightings]
    return data


def event_json(item: RecentEvent) -> dict[str, Any]:
    """A recent event: the event's own fields, its id and its face's address."""
    data = item.event.as_dict()
    data.pop("snapshot", None)  # a path on the device: of no use to a browser
    data["id"] = item.id
    data["face"] = f"/api/events/{item.id}/face" if item.jpeg else None
    return data
