"""Face quality: sharpness, and head pose from the five landmarks (formula and real faces)."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from facegate.sources import OpenCVSource
from facegate.vision.align import ARCFACE_TEMPLATE
from facegate.vision.image import load_image
from facegate.vision.quality import (
    EYE_HALF_OVER_NOSE_DEPTH,
    EYE_MOUTH_OVER_NOSE_DEPTH,
    FRONTAL_NOSE_HEIGHT,
    MAX_PITCH_DEG,
    MAX_YAW_DEG,
    head_pose,
    sharpness,
)
from facegate.vision.recognizer import Recognizer
from tests.data import data

HAMILTON_CLIP = data("video/face_recognition_short_hamilton_clip.mp4")
PROFILE_FRAMES = range(20, 46)  # Lin-Manuel Miranda in profile, filling the frame


def frontal_landmarks(scale: float = 1.0) -> np.ndarray:
    """Five points of a frontal face as the model sees it (nose at the measured height)."""
    pts = ARCFACE_TEMPLATE.copy() * scale
    eyes_y, mouth_y = pts[:2, 1].mean(), pts[3:, 1].mean()
    pts[2] = [pts[[0, 1, 3, 4], 0].mean(), eyes_y + FRONTAL_NOSE_HEIGHT * (mouth_y - eyes_y)]
    return pts


def turned(yaw_deg: float) -> np.ndarray:
    """The frontal points with the head turned by ``yaw_deg`` under the module's model."""
    pts = frontal_landmarks()
    mid_x = pts[[0, 1, 3, 4], 0].mean()
    half_eye = (pts[1, 0] - pts[0, 0]) / 2
    depth = half_eye / EYE_HALF_OVER_NOSE_DEPTH
    theta = math.radians(yaw_deg)
    out = pts.copy()
    out[[0, 1, 3, 4], 0] = mid_x + (pts[[0, 1, 3, 4], 0] - mid_x) * math.cos(theta)
    out[2, 0] = mid_x + depth * math.sin(theta)
    return out


def test_a_frontal_face_is_at_zero() -> None:
    pose = head_pose(frontal_landmarks())
    assert abs(pose.yaw) < 0.5 and abs(pose.pitch) < 0.5


@pytest.mark.parametrize("yaw", [-70.0, -30.0, 10.0, 45.0])
def test_yaw_of_the_model_head_is_recovered(yaw: float) -> None:
    assert head_pose(turned(yaw)).yaw == pytest.approx(yaw, abs=0.5)


def test_pitch_follows_the_nose_height() -> None:
    pts = frontal_landmarks()
    eyes_y, mouth_y = pts[:2, 1].mean(), pts[3:, 1].mean()
    pts[2, 1] = eyes_y + (FRONTAL_NOSE_HEIGHT - 0.1) * (mouth_y - eyes_y)  # nose higher: chin up
    expected = math.degrees(math.atan(0.1 * EYE_MOUTH_OVER_NOSE_DEPTH))
    assert head_pose(pts).pitch == pytest.approx(expected, abs=0.5)


def test_pose_ignores_roll_scale_and_position_and_mirrors_sign() -> None:
    pts = turned(25.0)
    centre = pts.mean(axis=0)
    rot = cv2.getRotationMatrix2D(tuple(centre), 30.0, 2.5)  # roll 30 deg, 2.5x larger
    moved = np.c_[pts, np.ones(5)] @ rot.T + [300.0, -40.0]
    pose, again = head_pose(pts), head_pose(moved)
    assert again.yaw == pytest.approx(pose.yaw, abs=1e-6)
    assert again.pitch == pytest.approx(pose.pitch, abs=1e-6)
    mirrored = pts.copy()
    mirrored[:, 0] = -mirrored[:, 0]
    mirrored = mirrored[[1, 0, 2, 4, 3]]  # the left eye is still listed first
    assert head_pose(mirrored).yaw == pytest.approx(-pose.yaw, abs=1e-6)


def test_collapsed_landmarks_count_as_turned_away() -> None:
    pose = head_pose(np.zeros((5, 2), np.float32))
    assert not pose.within(MAX_YAW_DEG, MAX_PITCH_DEG)


def test_sharpness_drops_with_blur(faces_dir: Path) -> None:
    image = load_image(faces_dir / "face_recognition" / "obama" / "obama.jpg")
    crop = cv2.resize(image, (112, 112), interpolation=cv2.INTER_AREA)
    assert sharpness(cv2.GaussianBlur(crop, (0, 0), 3)) < sharpness(crop) / 3


def test_frontal_photos_are_near_zero(recognizer: Recognizer, faces_dir: Path) -> None:
    folder = faces_dir / "face_recognition"
    photos = [folder / "obama" / "obama.jpg", folder / "biden" / "biden.jpg"]
    photos += sorted((folder / "lin_manuel_miranda").iterdir())
    poses = []
    for photo in photos:
        faces = recognizer.detect(load_image(photo))
        poses.append(head_pose(max(faces, key=lambda f: f.size).landmarks))
    assert all(p.within(MAX_YAW_DEG, MAX_PITCH_DEG) for p in poses), poses
    assert np.median([abs(p.yaw) for p in poses]) < 15
    assert np.median([abs(p.pitch) for p in poses]) < 20


def test_hamilton_profile_frames_are_turned(recognizer: Recognizer) -> None:
    yaws = []
    with OpenCVSource(str(HAMILTON_CLIP)) as source:
        while (frame := source.read()) is not None and frame.index <= PROFILE_FRAMES[-1]:
            faces = recognizer.detect(frame.image) if frame.index in PROFILE_FRAMES else []
            if faces:  # a few profile frames have no face MTCNN finds
                yaws.append(head_pose(max(faces, key=lambda f: f.size).landmarks).yaw)
    assert len(yaws) >= 20
    assert min(abs(y) for y in yaws) > MAX_YAW_DEG  # every one of them too turned to judge
    assert np.median(np.abs(yaws)) > 60
