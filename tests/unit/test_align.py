"""5-point similarity alignment: Umeyama estimate, template round trip, agreement with OpenCV."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facegate.types import AlignedFace, Face
from facegate.vision.align import (
    ARCFACE_TEMPLATE,
    align,
    align_many,
    estimate_transform,
    template,
    umeyama,
)


def _similarity(angle: float, scale: float, tx: float, ty: float) -> np.ndarray:
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    return np.array([[c, -s, tx], [s, c, ty]])


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def _invert(matrix: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(matrix)


def _face(landmarks: np.ndarray) -> Face:
    return Face(box=(0.0, 0.0, 10.0, 10.0), score=1.0, landmarks=landmarks.astype(np.float32))


@pytest.mark.parametrize("seed", range(5))
def test_umeyama_recovers_a_known_similarity(seed: int) -> None:
    rng = np.random.default_rng(seed)
    angle, scale = rng.uniform(-np.pi, np.pi), rng.uniform(0.2, 5.0)
    truth = _similarity(angle, scale, *rng.uniform(-200, 200, 2))
    src = rng.uniform(0, 500, (5, 2))
    np.testing.assert_allclose(umeyama(src, _apply(truth, src)), truth, atol=1e-9)


def test_umeyama_never_returns_a_reflection() -> None:
    src = ARCFACE_TEMPLATE
    mirrored = src * [-1.0, 1.0]
    matrix = umeyama(src, mirrored)
    assert np.linalg.det(matrix[:, :2]) > 0


def test_template_landmarks_map_onto_themselves() -> None:
    np.testing.assert_allclose(estimate_transform(template()), [[1, 0, 0], [0, 1, 0]], atol=1e-9)


def test_landmarks_of_a_moved_face_land_on_the_template() -> None:
    to_image = _similarity(0.4, 2.5, 300.0, 120.0)
    landmarks = _apply(to_image, template())
    matrix = estimate_transform(landmarks)
    np.testing.assert_allclose(matrix, _invert(to_image), atol=1e-9)
    np.testing.assert_allclose(_apply(matrix, landmarks), template(), atol=1e-9)


def test_align_warps_the_face_onto_the_template() -> None:
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
    to_image = _similarity(0.0, 2.0, 50.0, 30.0)  # axis-aligned 2x: the warp back is exact
    image = cv2.warpAffine(crop, to_image, (400, 300), flags=cv2.INTER_NEAREST)
    aligned = align(image, _face(_apply(to_image, template())))
    assert isinstance(aligned, AlignedFace)
    assert aligned.crop.shape == (112, 112, 3) and aligned.crop.dtype == np.uint8
    np.testing.assert_array_equal(aligned.crop[2:-2, 2:-2], crop[2:-2, 2:-2])


def test_align_fills_outside_the_image_with_black() -> None:
    image = np.full((50, 50, 3), 200, dtype=np.uint8)
    aligned = align(image, _face(template() * 0.3 + 40))  # the crop's far corner is off the image
    assert aligned.crop[0, 0].tolist() == [200, 200, 200]
    assert aligned.crop[-1, -1].tolist() == [0, 0, 0]


def test_align_many_keeps_order() -> None:
    image = np.zeros((200, 200, 3), dtype=np.uint8)
    faces = [_face(template()), _face(template() + 40)]
    out = align_many(image, faces)
    assert [a.face for a in out] == faces


@pytest.mark.parametrize("noise", [0.0, 0.5, 2.0])
def test_opencv_lmeds_agrees_with_umeyama(noise: float) -> None:
    rng = np.random.default_rng(1)
    landmarks = _apply(_similarity(-0.3, 1.7, 80.0, 40.0), template())
    landmarks = landmarks + rng.normal(0.0, noise, landmarks.shape)
    lmeds, inliers = cv2.estimateAffinePartial2D(landmarks, template(), method=cv2.LMEDS)
    assert inliers.all()
    np.testing.assert_allclose(estimate_transform(landmarks), lmeds, atol=1e-4)


def test_template_scales_like_norm_crop() -> None:
    np.testing.assert_allclose(template(224), ARCFACE_TEMPLATE * 2)
    np.testing.assert_allclose(template(128), ARCFACE_TEMPLATE + np.array([8.0, 0.0]))
    with pytest.raises(ValueError, match="multiple"):
        template(100)


def test_degenerate_landmarks_are_rejected() -> None:
    with pytest.raises(ValueError, match="degenerate"):
        estimate_transform(np.ones((5, 2)))
