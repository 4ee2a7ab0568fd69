"""Pick up gallery changes made by the CLI while the daemon runs, without a restart."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from facegate.gallery.store import GallerySnapshot, GalleryStore

log = logging.getLogger(__name__)


class GalleryWatcher:
    """Polls the store's version and hands a fresh snapshot to ``on_change`` when it moves."""

    def __init__(
        self,
        store: GalleryStore,
        on_change: Callable[[GallerySnapshot], None],
        interval: float = 2.0,
    ) -> None:
        self.store, self.on_change, self.interval = store, on_change, interval
        self._version: int | None = None
        self._next = 0.0
        self.reloads = 0

    def poll(self, force: bool = False) -> bool:
        """Reload if the gallery changed (checked at most every ``interval`` s)."""
        now = time.monotonic()
        if not force and now < self._next:
            return False
        self._next = now + self.interval
        version = self.store.version()
        if not force and version == self._version:
            return False
        snapshot = self.store.snapshot()
        self._version = snapshot.version
        self.on_change(snapshot)
        self.reloads += 1
        log.info(
            "gallery loaded: %d people, %d templates", len(snapshot.names), len(snapshot.embeddings)
        )
        return True
