"""The detection planner: still frames are skipped, regions follow tracks, crops map back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from facegate.vision.detect.mtcnn import MTCNN
from facegate.vision.image import load_image
from facegate.vision.motion import MotionGate
from facegate.vision.planner import (
    DetectionPlanner,
    PlannerSettings,
    Region,
    detect_in,
    merge,
    refine_in,
    with_min_face,
)
from facegate.vision.recognizer import Recognizer

SIZE = (480, 640)
NOISE_SIGMA = 3.0  # grey levels: more than a real sensor's noise on the blurred 160 px copy


def scene(seed: int, square_at: tuple[int, int] | None = None) -> np.ndarray:
    """A 640x480 textured still with sensor noise, and a bright 60 px square at (x, y)."""
    rng = np.random.default_rng(seed)
    base = np.random.default_rng(0).integers(40, 90, (*SIZE, 3)).astype(np.float32)
    base = cv2.GaussianBlur(base, (0, 0), 8)  # a smooth backdrop, the same in every frame
    image = base + rng.normal(0, NOISE_SIGMA, base.shape)
    if square_at is not None:
        x, y = square_at
        image[y : y + 60, x : x + 60] = 230
    return np.clip(image, 0, 255).astype(np.uint8)


def test_static_frames_show_no_motion_after_the_first() -> None:
    gate = MotionGate()
    assert gate.update(scene(1)).moved  # no background yet: everything counts as changed
    assert [gate.update(scene(seed)).moved for seed in range(2, 30)] == [False] * 28


def test_a_moving_square_is_motion_where_it_moves_and_nowhere_else() -> None:
    gate = MotionGate()
    for seed in range(10):
        gate.update(scene(seed))
    motion = gate.update(scene(10, square_at=(400, 200)))
    assert motion.moved
    assert not motion.moved_outside([(380, 180, 480, 280)])  # the square's box holds it all
    assert motion.moved_outside([(0, 0, 200, 200)])


def test_a_planner_skips_still_frames_and_scans_the_whole_frame_on_motion() -> None:
    planner = DetectionPlanner(PlannerSettings())
    kinds = [planner.plan(scene(seed), []).kind for seed in range(12)]
    assert kinds == ["full"] + ["skip"] * 11
    assert planner.plan(scene(12, square_at=(100, 100)), []).kind == "full"


def test_regions_grow_around_tracked_faces_with_periodic_and_outside_full_scans() -> None:
    every = 5
    planner = DetectionPlanner(PlannerSettings(full_scan_every=every, region_margin=0.5))
    face = (300.0, 200.0, 360.0, 260.0)  # a 60 px face
    assert planner.plan(scene(0), [face]).kind == "full"  # the first frame
    plans = [planner.plan(scene(seed, square_at=(300, 200 + seed)), [face]) for seed in (1, 2)]
    assert [p.kind for p in plans] == ["regions", "regions"]
    # a 120 px square (30 px each side), looking for faces from 0.55 x 60 px up
    assert plans[0].regions == (Region(270, 170, 390, 290, 0.55 * 120 / 2),)
    kinds = [planner.plan(scene(seed), [face]).kind for seed in range(3, 8)]
    assert kinds == ["regions", "regions", "full", "regions", "regions"]  # every 5th frame
    assert planner.plan(scene(8, square_at=(20, 20)), [face]).kind == "full"  # someone came in


def test_regions_are_moved_inside_the_frame_and_overlapping_ones_merged() -> None:
    planner = DetectionPlanner(PlannerSettings(region_margin=0.5))
    planner.plan(scene(0), [])
    faces = [(0.0, 0.0, 40.0, 40.0), (30.0, 10.0, 90.0, 70.0), (600.0, 440.0, 640.0, 480.0)]
    plan = planner.plan(scene(1, square_at=(10, 10)), faces)
    assert plan.kind == "regions"
    small = 0.55 * 80 / 2
    # (0, 0, 80, 80) and (0, 0, 120, 120) overlap: one region, looking for the smaller face
    assert plan.regions == (Region(0, 0, 120, 120, small), Region(560, 400, 640, 480, small))
    disjoint = [Region(0, 0, 10, 10, 20), Region(10, 0, 20, 10, 30)]  # they touch, no overlap
    assert merge(disjoint) == disjoint


@pytest.fixture(scope="module")
def portrait(faces_dir: Path) -> np.ndarray:
    """A half-size photo of one face."""
    image = load_image(faces_dir / "face_recognition" / "obama" / "obama.jpg")
    return cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)


def test_faces_found_in_a_region_map_back_to_frame_pixels_exactly(
    recognizer: Recognizer, portrait: np.ndarray
) -> None:
    h, w = portrait.shape[:2]
    dx, dy = 137, 61
    frame = np.zeros((h + 150, w + 250, 3), np.uint8)
    frame[dy : dy + h, dx : dx + w] = portrait
    region = Region(dx, dy, dx + w, dy + h, 40.0)
    alone = with_min_face(recognizer.detector, 40.0, pad_mode="never").detect(portrait)
    found = detect_in(recognizer.detector, frame, [region])
    assert len(alone) == len(found) == 1
    np.testing.assert_array_equal(
        np.asarray(found[0].box), np.asarray(alone[0].box) + [dx, dy, dx, dy]
    )
    offset = np.array([dx, dy], np.float32)  # landmarks are float32 pixels
    np.testing.assert_array_equal(found[0].landmarks, alone[0].landmarks + offset)
    assert found[0].score == alone[0].score


class Recording:
    """A real backend that notes the shape of every input it runs."""

    def __init__(self, backend: Any) -> None:
        self.backend, self.shapes = backend, []

    def run(self, x: np.ndarray) -> Any:
        """Run the real network, noting the input's shape."""
        self.shapes.append(x.shape)
        return self.backend.run(x)


def test_a_camera_min_face_starts_the_pyramid_there(
    recognizer: Recognizer, portrait: np.ndarray
) -> None:
    pnet = Recording(recognizer.detector.pnet)
    d = recognizer.detector
    base = MTCNN(pnet, d.rnet, d.onet, config=d.config)  # type: ignore[arg-type]
    planner = DetectionPlanner(PlannerSettings(min_face=90.0))
    view = planner.detector(base)
    assert planner.detector(base) is view  # built once per detector
    assert view.config.min_face_size == 90.0 and view.pnet is pnet
    frame = np.full((480, 640, 3), 128, np.uint8)
    frame[:, :455] = portrait[:480, :455]
    assert len(view.detect(frame)) == 1
    first_view, pnet.shapes = pnet.shapes[0], []
    assert len(base.detect(frame)) == 1
    # P-Net's first level is 640 px x 12 / min_face wide (+1, the reference's rounding)
    assert (first_view[2], pnet.shapes[0][2]) == (int(640 * 12 / 90 + 1), int(640 * 12 / 40 + 1))


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0) * max(h, 0)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_onet_alone_refits_a_tracked_face_and_drops_a_box_on_the_background(
    recognizer: Recognizer, portrait: np.ndarray
) -> None:
    face = recognizer.detector.detect(portrait)[0]
    x1, y1, x2, y2 = face.box
    moved = (x1 + 6, y1 - 4, x2 + 6, y2 - 4)  # where the face was a frame ago
    refit = recognizer.detector.refine(portrait, [moved])
    assert len(refit) == 1 and _iou(refit[0].box, face.box) > 0.8
    assert np.abs(refit[0].landmarks - face.landmarks).max() < 0.1 * (x2 - x1)
    background = np.full_like(portrait, 128)
    assert recognizer.detector.refine(background, [face.box]) == []
    assert recognizer.detector.refine(portrait, []) == []


def test_a_region_runs_the_cascade_only_when_onet_confirms_no_tracked_face(
    recognizer: Recognizer, portrait: np.ndarray
) -> None:
    pnet = Recording(recognizer.detector.pnet)
    d = recognizer.detector
    detector = MTCNN(pnet, d.rnet, d.onet, config=d.config)  # type: ignore[arg-type]
    h, w = portrait.shape[:2]
    face = d.detect(portrait)[0]
    region = Region(0, 0, w, h, 40.0)
    found = refine_in(detector, portrait, [region], [face.box])
    assert len(found) == 1 and pnet.shapes == []  # O-Net alone: no pyramid
    wrong = (0.0, 0.0, 30.0, 30.0)  # a stale box on the corner: O-Net sees no face there
    found = refine_in(detector, portrait, [region], [wrong])
    assert len(found) == 1 and pnet.shapes  # the whole cascade found the face
    assert _iou(found[0].box, face.box) > 0.8
