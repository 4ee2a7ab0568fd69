"""Unknown faces on real clips: kept and clustered, labelled then recognized, ignored then silent.

The Hamilton clip (tests/data: runs in a bare clone) shows one speaker; with an empty gallery he
is an unknown. The street clip (../shared) shows several strangers. Labelling is done with the
``facegate unknowns`` command, the way a user does it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from facegate.gallery.unknowns import UnknownStore
from facegate.service.faces_kept import FaceKeeper
from facegate.service.metrics import Metrics
from facegate.service.pipeline import Pipeline, PipelineSettings
from facegate.types import Event
from facegate.vision.recognizer import Recognizer
from tests.conftest import run_cli
from tests.data import data, shared
from tests.integration.clips import play_clip


def play(rec: Recognizer, clip: Path, db: Path) -> list[Event]:
    """Run the clip through a pipeline whose unknown faces go to the store at ``db``."""
    with UnknownStore.open(db, rec.model_id, rec.embedder.size) as store:
        rec.set_gallery(store.gallery.snapshot())
        keeper = FaceKeeper(store, "test", Metrics())
        pipe = Pipeline(rec, PipelineSettings(camera="test"), keeper=keeper)
        return play_clip(pipe, clip)


@pytest.fixture()
def rec(recognizer: Recognizer) -> Iterator[Recognizer]:
    yield recognizer
    recognizer.set_gallery(None)


def unknowns_cli(db: Path, *args: str) -> str:
    """Run ``facegate unknowns ARGS --gallery DB``; return its output (it must succeed)."""
    proc = run_cli("unknowns", *args, "--gallery", str(db))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_hamilton_stranger_is_clustered_labelled_then_recognized(
    rec: Recognizer, tmp_path: Path
) -> None:
    db = tmp_path / "gallery.db"
    clip = data("video/face_recognition_short_hamilton_clip.mp4")
    first = play(rec, clip, db)
    unknown = [e for e in first if e.kind == "unknown"]
    assert len(unknown) >= 1 and all(e.cluster_id is not None for e in unknown)
    with UnknownStore.open(db) as store:
        clusters = store.clusters()
        assert len(clusters) == 1  # one speaker: one cluster, however many tracks
        assert sum(c.size for c in clusters) == len(unknown)
        visits = {s.visit_id for s in store.sightings(clusters[0].id)}
        assert visits == {e.visit_id for e in unknown}
    assert "labelled" not in unknowns_cli(db, "list")
    unknowns_cli(db, "label", str(clusters[0].id), "Lin-Manuel")
    second = play(rec, clip, db)
    assert [e.person for e in second if e.kind == "recognized"] == ["Lin-Manuel"]
    assert [e for e in second if e.kind == "unknown"] == []


@pytest.fixture()
def street_clip() -> Path:
    """The 1080p street clip of strangers (optional data in ../shared)."""
    return shared("video/facenet_pytorch_video.mp4")


def test_street_clip_label_one_ignore_the_rest(
    rec: Recognizer, street_clip: Path, tmp_path: Path
) -> None:
    db = tmp_path / "gallery.db"
    first = play(rec, street_clip, db)
    unknown = [e for e in first if e.kind == "unknown"]
    with UnknownStore.open(db) as store:
        clusters = store.clusters()
    assert len(clusters) >= 2 and len(unknown) >= 2
    named, *others = clusters
    unknowns_cli(db, "label", str(named.id), "walker")
    for other in others:
        unknowns_cli(db, "ignore", str(other.id))
    listed = unknowns_cli(db, "list", "--all", "--json")
    assert '"state": "ignored"' in listed and '"label": "walker"' in listed
    second = play(rec, street_clip, db)
    assert "walker" in [e.person for e in second if e.kind == "recognized"]
    assert [e for e in second if e.kind == "unknown"] == []  # the ignored stay silent
    with UnknownStore.open(db) as store:
        ignored = [c for c in store.clusters(include_ignored=True) if c.state == "ignored"]
        # their new sightings were still kept (and joined the ignored clusters)
        assert sum(c.size for c in ignored) > sum(c.size for c in others)
