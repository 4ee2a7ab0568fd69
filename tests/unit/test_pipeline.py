"""The pipeline's visits on the real models: when `recognized` and `left` come, by frame time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from facegate.gallery.enroll import template_from_file
from facegate.gallery.store import GalleryStore
from facegate.service.pipeline import Pipeline, PipelineSettings
from facegate.types import Event, Frame
from facegate.vision.image import load_image
from facegate.vision.recognizer import Recognizer

T0 = 1_700_000_000.0
LEAVE_S = 5.0


@pytest.fixture(scope="module")
def photos(faces_dir: Path) -> dict[str, np.ndarray]:
    """Half-size photos of obama (enrolled) and biden (a stranger here), and an empty scene."""
    out = {}
    for name in ("obama", "biden"):
        image = load_image(faces_dir / "face_recognition" / name / f"{name}.jpg")
        out[name] = cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    out["nobody"] = np.full((480, 640, 3), 128, np.uint8)
    return out


@pytest.fixture()
def obama_enrolled(recognizer: Recognizer, faces_dir: Path, tmp_path: Path) -> Iterator[Recognizer]:
    with GalleryStore.open(tmp_path / "g.db", recognizer.model_id, recognizer.embedder.size) as g:
        outcome = template_from_file(recognizer, faces_dir / "face_recognition/obama/obama.jpg")
        assert outcome.template is not None
        g.enroll("obama", [outcome.template])
        recognizer.set_gallery(g.snapshot())
    yield recognizer
    recognizer.set_gallery(None)


def play(pipe: Pipeline, scenes: list[tuple[float, np.ndarray]]) -> list[Event]:
    """Feed (seconds after T0, image) frames; every event, stamped with its frame time."""
    events: list[Event] = []
    for index, (at, image) in enumerate(scenes):
        events += pipe.process(Frame(image, T0 + at, index, "test"))
    return events


def seconds(events: list[Event], kind: str) -> list[float]:
    return [round(e.time - T0, 3) for e in events if e.kind == kind]


def test_a_named_person_leaves_after_leave_after_s_of_frame_time(
    obama_enrolled: Recognizer, photos: dict[str, np.ndarray]
) -> None:
    pipe = Pipeline(obama_enrolled, PipelineSettings(leave_after_s=LEAVE_S))
    seen = [(t, photos["obama"]) for t in (0.0, 0.2, 0.4)]  # three votes: named at 0.4
    empty = [(0.5 + 0.5 * i, photos["nobody"]) for i in range(12)]  # 0.5 .. 6.0
    events = play(pipe, seen + empty)
    assert seconds(events, "recognized") == [0.4]
    assert seconds(events, "left") == [5.5]  # first frame >= 0.4 + 5.0, not before
    recognized, left = events
    assert left.visit_id == recognized.visit_id and left.person == "obama"


def test_a_person_found_again_on_a_new_track_stays_one_visit(
    obama_enrolled: Recognizer, photos: dict[str, np.ndarray]
) -> None:
    pipe = Pipeline(obama_enrolled, PipelineSettings(leave_after_s=LEAVE_S, max_missed=2))
    first = [(t, photos["obama"]) for t in (0.0, 0.2, 0.4)]
    gap = [(1.0 + 0.5 * i, photos["nobody"]) for i in range(5)]  # track ends after 2 misses
    again = [(3.5 + 0.2 * i, photos["obama"]) for i in range(3)]  # a new track, named at 3.9
    after = [(4.0 + 1.0 * i, photos["nobody"]) for i in range(7)]  # 4.0 .. 10.0
    events = play(pipe, first + gap + again + after)
    assert [e.kind for e in events] == ["recognized", "left"]
    recognized, left = events
    assert left.track_id != recognized.track_id  # as the demo shows: another track leaves
    assert left.visit_id == recognized.visit_id
    assert seconds(events, "left") == [9.0]  # 3.9 (last seen) + 5.0


def test_an_unknown_face_leaves_by_the_same_rule(
    obama_enrolled: Recognizer, photos: dict[str, np.ndarray]
) -> None:
    settings = PipelineSettings(leave_after_s=LEAVE_S, unknown_after=2)
    pipe = Pipeline(obama_enrolled, settings)
    seen = [(t, photos["biden"]) for t in (0.0, 0.5, 1.0)]  # unknown after two misses: 0.5
    empty = [(1.5 + 0.5 * i, photos["nobody"]) for i in range(11)]  # 1.5 .. 6.5
    events = play(pipe, seen + empty)
    assert seconds(events, "unknown") == [0.5]
    assert seconds(events, "left") == [6.0]  # last seen 1.0, + 5.0
    assert events[0].visit_id == events[1].visit_id and events[1].person is None


def test_a_rebuilt_pipeline_takes_over_presence_without_left_or_second_recognized(
    obama_enrolled: Recognizer, photos: dict[str, np.ndarray]
) -> None:
    settings = PipelineSettings(leave_after_s=LEAVE_S)
    old = Pipeline(obama_enrolled, settings)
    events = play(old, [(t, photos["obama"]) for t in (0.0, 0.2, 0.4)])
    new = Pipeline(obama_enrolled, settings, presence=old.presence)
    scenes = [(1.0 + 0.2 * i, photos["obama"]) for i in range(3)]
    scenes += [(2.0 + i, photos["nobody"]) for i in range(6)]  # 2.0 .. 7.0
    events += play(new, scenes)
    assert [e.kind for e in events] == ["recognized", "left"]
    assert events[1].visit_id == events[0].visit_id
    assert seconds(events, "left") == [7.0]  # named again at 1.4: the first frame >= 6.4


def test_stills_name_each_photo_with_one_vote(
    obama_enrolled: Recognizer, photos: dict[str, np.ndarray]
) -> None:
    pipe = Pipeline(obama_enrolled, PipelineSettings(stills=True, votes=1, unknown_after=1))
    events = play(pipe, [(0.0, photos["obama"]), (0.1, photos["biden"])])
    assert [(e.kind, e.person) for e in events] == [("recognized", "obama"), ("unknown", None)]
