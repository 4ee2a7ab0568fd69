"""The web page: one screen of people, unknown faces, recent events and health, plus the login.

Plain HTML forms that post and come back (post/redirect/get), so the page works without its
script; the script only refreshes the events and asks before a removal. Every answer forbids
framing and foreign scripts, styles and pictures (Content-Security-Policy): nothing is loaded
from anywhere but the daemon.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.exceptions import RequestEntityTooLarge

from facegate.errors import FacegateError
from facegate.web import api
from facegate.web.app import check_token, one_line
from facegate.web.backend import Backend

log = logging.getLogger(__name__)
T = TypeVar("T")
blueprint = Blueprint("pages", __name__)
PAGE_EVENTS = 30  # recent events on the page
PAGE_CLUSTERS = 20  # unknown clusters on the page, latest first (the API lists them all)
CSP = (
    "default-src 'self'; img-src 'self'; script-src 'self'; style-src 'self';"
    " frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


@blueprint.after_app_request
def _headers(response: Response) -> Response:
    """Security headers on every answer; pages are never cached."""
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


@blueprint.get("/")
def index() -> str:
    """The page."""
    b = api.backend()
    try:
        people = b.people()
    except FacegateError as err:
        flash(one_line(err), "error")
        people = []
    return render_template(
        "index.html",
        health=b.health(),
        people=people,
        events=[api.event_json(e) for e in b.events(PAGE_EVENTS)],
        clusters=_clusters(b),
        logged_in="auth" in session,
        token_set=current_app.config["FACEGATE_TOKEN_DIGEST"] is not None,
    )


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> Response | str:
    """The token form; a right token sets the session cookie."""
    if request.method == "POST":
        if check_token(request.form.get("token", "")):
            session.clear()
            session["auth"] = current_app.config["FACEGATE_TOKEN_DIGEST"]
            log.info("web: logged in from %s", request.remote_addr)
            return redirect(url_for("pages.index"))
        log.warning("web: a wrong token from %s", request.remote_addr)
        flash("That is not the token.", "error")
    return render_template("login.html")


@blueprint.post("/logout")
def logout() -> Response:
    """End the session."""
    session.clear()
    return redirect(url_for("pages.login"))


@blueprint.post("/people")
def enrol() -> Response:
    """Enrol from the page's upload form."""
    report = _attempt(api.enrol_from_request)
    if report is not None:
        refused = "".join(f"; refused {o.source}: {o.reason}" for o in report.refused)
        flash(f"Enrolled {report.added} photo(s) of {report.name}{refused}", "ok")
    return _back()


@blueprint.post("/people/<slug>/rename")
def rename(slug: str) -> Response:
    """Rename from the page."""
    person = _attempt(lambda: api.backend().rename(slug, request.form.get("name", "")))
    if person is not None:
        flash(f"Renamed to {person.name}", "ok")
    return _back()


@blueprint.post("/people/<slug>/remove")
def remove(slug: str) -> Response:
    """Remove from the page."""
    count = _attempt(lambda: api.backend().remove(slug))
    if count is not None:
        flash(f"Removed, with {count} face(s)", "ok")
    return _back()


@blueprint.post("/clusters/<int:cluster_id>/label")
def label(cluster_id: int) -> Response:
    """Name an unknown cluster from the page."""
    done = _attempt(lambda: api.backend().label(cluster_id, request.form.get("name", "")))
    if done is not None:
        flash(f"Named {done.name}: {done.templates_added} face(s) enrolled", "ok")
    return _back()


@blueprint.post("/clusters/<int:cluster_id>/ignore")
def ignore(cluster_id: int) -> Response:
    """Ignore an unknown cluster from the page."""
    if _attempt(lambda: api.backend().ignore(cluster_id) or True):
        flash("Ignored: that face raises no more alerts", "ok")
    return _back()


def _clusters(b: Backend) -> list[dict[str, Any]]:
    """The open clusters with their face strips, for the template."""
    try:
        return [api.cluster_json(*b.cluster(c.id)) for c in b.clusters()[:PAGE_CLUSTERS]]
    except FacegateError as err:
        flash(one_line(err), "error")
        return []


def _attempt(action: Callable[[], T]) -> T | None:
    """``action()``, or None with its error flashed as one line."""
    try:
        return action()
    except FacegateError as err:
        flash(one_line(err), "error")
    except RequestEntityTooLarge:
        flash("The upload is too large.", "error")
    return None


def _back() -> Response:
    """Back to the page (303: the browser then GETs it)."""
    return redirect(url_for("pages.index"), code=303)
