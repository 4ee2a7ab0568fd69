"""The daemon's web page and REST API (Flask), served by its waitress server on the same port.

Nothing on the frame path, nor ``facegate identify``, imports this package: the daemon builds
the application on the HTTP server's background thread, after start-up (see
``facegate.service.health``).
"""

from __future__ import annotations

from typing import Any

from facegate.service.health import WSGIApp


def build(daemon: Any, token: str | None) -> WSGIApp:
    """The application over a running :class:`facegate.service.daemon.Daemon`."""
    from facegate.gallery.store import GalleryStore
    from facegate.service import assemble
    from facegate.web.app import WebSettings, create_app
    from facegate.web.backend import Backend

    http = daemon.config.http

    def writer() -> GalleryStore:
        path = assemble.gallery_path(daemon.config)
        return GalleryStore.open(path, daemon.rec.model_id, daemon.rec.embedder.size)

    def unknowns() -> object:
        keeper = daemon.keeper
        return keeper.store if keeper is not None else None

    backend = Backend(
        lambda: daemon.store, writer, daemon.run_job, daemon.health, daemon.recent, unknowns
    )
    settings = WebSettings(
        token=token,
        max_upload_bytes=int(http.max_upload_mb * 1_000_000),
        secure_cookie=http.secure_cookie,
    )
    return create_app(backend, settings)
