"""The Flask application: the page, the REST API, and who may use them.

Who may: with a token (``http.token_file``), a request carries it as ``Authorization: Bearer``
(scripts, the API) or holds a session cookie from the login form (a browser); the token is
compared in constant time. Without a token the server listens on loopback only (the config
refuses anything else), and the ``Host`` header must name loopback too, so a web site that
points its own name at 127.0.0.1 (DNS rebinding) is refused.

CSRF: every state-changing request (POST, PUT, PATCH, DELETE) that is not authenticated by a
bearer header must carry Flask-WTF's CSRF token (the page's forms hold it as ``csrf_token``,
its script sends it as ``X-CSRFToken``); the session cookie is also ``SameSite=Strict`` and
``HttpOnly``. A failed check answers 403.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from dataclasses import dataclass

from flask import Flask, Response, abort, g, jsonify, redirect, request, session, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from facegate.config.schema import is_loopback
from facegate.text import visible
from facegate.web.backend import Backend

log = logging.getLogger(__name__)

SESSION_COOKIE = "facegate_session"
MULTIPART_PARTS = 64  # form fields + files in one request: 20 photos and a few fields
# werkzeug's bound on a text field, also applied to its parser's read buffer (64 KB reads plus
# what is left of the last): 64 KB refused a 100 KB photo's upload; 1 MiB is ample for both.
FORM_MEMORY_BYTES = 1024 * 1024
OPEN_PATHS = ("/login", "/static/")  # reachable without logging in


@dataclass(frozen=True, slots=True)
class WebSettings:
    """What the application needs from ``[http]``."""

    token: str | None
    max_upload_bytes: int
    secure_cookie: bool = False


def create_app(backend: Backend, settings: WebSettings) -> Flask:
    """The page and the API over ``backend``."""
    app = Flask("facegate.web", static_folder="static", template_folder="templates")
    app.config.update(
        SECRET_KEY=os.urandom(32),  # sessions and CSRF tokens last as long as the process
        SESSION_COOKIE_NAME=SESSION_COOKIE,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=settings.secure_cookie,
        MAX_CONTENT_LENGTH=settings.max_upload_bytes,
        MAX_FORM_MEMORY_SIZE=FORM_MEMORY_BYTES,
        MAX_FORM_PARTS=MULTIPART_PARTS,
        WTF_CSRF_CHECK_DEFAULT=False,  # checked below, after authentication
        WTF_CSRF_TIME_LIMIT=None,  # valid as long as the session: a page may stay open
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["facegate"] = backend
    csrf = CSRFProtect(app)
    token = settings.token.encode() if settings.token else None
    digest = _digest(token) if token else None
    app.before_request(lambda: _guard(csrf, token, digest))
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(CSRFError, _csrf_error)
    app.config["FACEGATE_TOKEN_DIGEST"] = digest
    from facegate.web import api, pages  # the routes need the app's objects above

    app.register_blueprint(api.blueprint)
    app.register_blueprint(pages.blueprint)
    return app


def _digest(token: bytes) -> str:
    """What the session keeps of the token: its SHA-256, so the cookie never holds it."""
    return hashlib.sha256(b"facegate-session:" + token).hexdigest()


def check_token(given: str) -> bool:
    """Whether ``given`` is the token (constant time); False when none is set."""
    digest = _current_digest()
    return digest is not None and hmac.compare_digest(_digest(given.encode()), digest)


def _current_digest() -> str | None:
    from flask import current_app

    return current_app.config["FACEGATE_TOKEN_DIGEST"]


def _guard(csrf: CSRFProtect, token: bytes | None, digest: str | None) -> Response | None:
    """Authenticate, then check CSRF on state changes not made with a bearer header."""
    g.bearer = False
    if token is None:
        if not _loopback_host(request.host):
            abort(403, "this page answers on localhost only; set http.token_file for the LAN")
    elif _bearer_ok(token):
        g.bearer = True
    elif not _session_ok(digest) and not request.path.startswith(OPEN_PATHS):
        if request.path.startswith("/api/"):
            return _unauthorized()
        return redirect(url_for("pages.login"))
    if not g.bearer:
        csrf.protect()
    return None


def _bearer_ok(token: bytes) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token)


def _session_ok(digest: str | None) -> bool:
    held = session.get("auth")
    return isinstance(held, str) and digest is not None and hmac.compare_digest(held, digest)


def _loopback_host(host: str) -> bool:
    """Whether a Host header (with or without its port) names this machine's loopback."""
    name = host[1 : host.find("]")] if host.startswith("[") else host.split(":", 1)[0]
    return is_loopback(name)


def _unauthorized() -> Response:
    response = jsonify(error="unauthorized: send Authorization: Bearer TOKEN, or log in")
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Bearer realm="facegate"'
    return response


def wants_json() -> bool:
    """Whether the request is the API's (JSON errors) rather than the page's."""
    return request.path.startswith("/api/")


def error_response(code: int, message: str) -> Response:
    """``{"error": "..."}`` on one line, with ``code``."""
    response = jsonify(error=one_line(message))
    response.status_code = code
    return response


def one_line(message: object) -> str:
    """A message as one visible line (no control characters, no line breaks)."""
    return visible(" ".join(str(message).split()))


def _http_error(err: HTTPException) -> Response | HTTPException:
    if not wants_json():
        return err
    return error_response(err.code or 500, err.description or err.name)


def _csrf_error(err: CSRFError) -> Response:
    message = f"CSRF check failed: {err.description}"
    if wants_json():
        return error_response(403, message)
    return Response(message + "\n", status=403, mimetype="text/plain")
