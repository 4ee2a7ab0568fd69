"""The pipeline on real clips: one `recognized` per visit, no false names, no false strangers.

The Hamilton clip shows Lin-Manuel Miranda in profile (frames 20-45) before he turns to the
camera: with him enrolled, that profile must not raise an `unknown` (a stranger alert for the
household). The street clip shows only strangers: they must still be reported as `unknown`.
Both run with the detection planner on (the default); with it off, the events are the same.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from facegate.gallery.enroll import template_from_file
from facegate.gallery.store import GalleryStore
from facegate.service.liveness import LivenessGate, LivenessSettings
from facegate.service.pipeline import Pipeline, PipelineSettings
from facegate.types import Event
from facegate.vision.liveness import LivenessModel
from facegate.vision.recognizer import Recognizer
from tests.data import data, shared
from tests.integration.clips import play_clip


def _enrol_all(rec: Recognizer, faces_dir: Path, db: Path) -> list[str]:
    names = []
    with GalleryStore.open(db, rec.model_id, rec.embedder.size) as store:
        for folder in sorted((faces_dir / "face_recognition").iterdir()):
            if not folder.is_dir() or folder.name.startswith("_") or "variants" in folder.name:
                continue
            templates = [
                o.template
                for p in sorted(folder.iterdir())
                if (o := template_from_file(rec, p)).template is not None
            ]
            store.enroll(folder.name, templates)
            names.append(folder.name)
        rec.set_gallery(store.snapshot())
    return names


def _run(rec: Recognizer, clip: Path, liveness: LivenessGate | None = None) -> list[Event]:
    return play_clip(Pipeline(rec, PipelineSettings(camera="test"), liveness=liveness), clip)


@pytest.fixture()
def enrolled(recognizer: Recognizer, faces_dir: Path, tmp_path: Path) -> Recognizer:
    names = _enrol_all(recognizer, faces_dir, tmp_path / "gallery.db")
    assert "lin_manuel_miranda" in names
    yield recognizer
    recognizer.set_gallery(None)


def test_hamilton_clip_names_lin_manuel_miranda_once_and_raises_no_stranger_alert(
    enrolled: Recognizer,
) -> None:
    events = _run(enrolled, data("video/face_recognition_short_hamilton_clip.mp4"))
    recognized = [e for e in events if e.kind == "recognized"]
    assert [e.person for e in recognized] == ["lin_manuel_miranda"]
    assert [e for e in events if e.kind == "unknown"] == []  # his profile is no stranger
    left = [e for e in events if e.kind == "left" and e.person == "lin_manuel_miranda"]
    assert len(left) == 1 and left[0].time >= recognized[0].time
    assert left[0].visit_id == recognized[0].visit_id is not None


def test_hamilton_clip_with_liveness_on_still_names_him_once_and_raises_no_spoof(
    enrolled: Recognizer, liveness_model: LivenessModel
) -> None:
    spec = liveness_model.spec
    gate = LivenessGate(liveness_model, LivenessSettings(threshold=spec.threshold))
    events = _run(enrolled, data("video/face_recognition_short_hamilton_clip.mp4"), gate)
    assert [e.person for e in events if e.kind == "recognized"] == ["lin_manuel_miranda"]
    assert [e for e in events if e.kind in ("spoof", "unknown")] == []


@pytest.fixture()
def street_clip() -> Path:
    """The 1080p street clip of strangers (2.4 MB, optional data in ../shared)."""
    return shared("video/facenet_pytorch_video.mp4")


def test_street_clip_of_strangers_names_nobody_and_reports_strangers(
    street_clip: Path, enrolled: Recognizer
) -> None:
    events = _run(enrolled, street_clip)
    assert [e for e in events if e.kind == "recognized"] == []
    unknown = [e for e in events if e.kind == "unknown"]
    assert unknown, "the strangers facing the camera must be reported"
    left = {e.visit_id for e in events if e.kind == "left"}
    assert {e.visit_id for e in unknown} <= left  # every stranger's visit ends


def _planned_and_not(rec: Recognizer, clip: Path) -> tuple[list[Event], list[Event]]:
    """Every event of ``clip`` with the detection planner on (the default), then off."""
    events = []
    for planned in (True, False):
        settings = PipelineSettings(camera="test")
        settings = replace(settings, detection=replace(settings.detection, enabled=planned))
        events.append(play_clip(Pipeline(rec, settings), clip))
    return events[0], events[1]


@pytest.mark.parametrize("clip", ["hamilton", "street"])
def test_the_detection_planner_keeps_the_events_of_both_clips(
    clip: str, enrolled: Recognizer, request: pytest.FixtureRequest
) -> None:
    hamilton = data("video/face_recognition_short_hamilton_clip.mp4")
    path = request.getfixturevalue("street_clip") if clip == "street" else hamilton
    planned, scanned = _planned_and_not(enrolled, path)
    assert [(e.kind, e.person) for e in planned] == [(e.kind, e.person) for e in scanned]
    assert [e.kind for e in planned].count("recognized") == (clip == "hamilton")
