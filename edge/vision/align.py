"""5-point similarity alignment to the ArcFace 112x112 template (InsightFace ``norm_crop``)."""

from __future__ import annotations

import logging

import cv2
import numpy as np

from facegate.types import AlignedFace, Face

log = logging.getLogger(__name__)

# InsightFace face_align.arcface_dst: left eye, right eye, nose, left mouth, right mouth at 112 px.
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)
TEMPLATE_SIZE = 112  # the side ARCFACE_TEMPLATE is drawn for
WIDE_SIZE = 128  # norm_crop: sides that are multiples of 128 get the template shifted 8 px right
WIDE_SHIFT = 8.0


def template(size: int = TEMPLATE_SIZE) -> np.ndarray:
    """The five template points for a ``size`` x ``size`` crop (InsightFace ``estimate_norm``)."""
    if size % TEMPLATE_SIZE == 0:
        return ARCFACE_TEMPLATE * (size / TEMPLATE_SIZE)
    if size % WIDE_SIZE == 0:
        ratio = size / WIDE_SIZE
        return ARCFACE_TEMPLATE * ratio + np.array([WIDE_SHIFT * ratio, 0.0])
    raise ValueError(f"crop size must be a multiple of {TEMPLATE_SIZE} or {WIDE_SIZE}, got {size}")


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, shift) mapping src onto dst, as (2, 3)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    variance = (src_c**2).sum() / len(src)
    if not np.isfinite(variance) or variance <= np.finfo(np.float64).eps:
        raise ValueError("landmarks are degenerate: all points coincide or are not finite")
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0  # keep a rotation, never a reflection
    rotation = u @ np.diag(d) @ vt
    scale = (s * d).sum() / variance
    matrix = np.empty((2, 3), dtype=np.float64)
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def estimate_transform(landmarks: np.ndarray, size: int = TEMPLATE_SIZE) -> np.ndarray:
    """The (2, 3) float64 similarity that maps five landmarks onto the template (Umeyama)."""
    points = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    return umeyama(points, template(size))


def align(image: np.ndarray, face: Face, size: int = TEMPLATE_SIZE) -> AlignedFace:
    """Warp ``face`` out of an RGB uint8 image onto the template (bilinear, black outside)."""
    matrix = estimate_transform(face.landmarks, size)
    crop = cv2.warpAffine(
        image,
        matrix,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )
    return AlignedFace(face=face, crop=crop)


def align_many(
    image: np.ndarray, faces: list[Face], size: int = TEMPLATE_SIZE
) -> list[AlignedFace]:
    """Align every face of one image, in order."""
    return [align(image, face, size) for face in faces]
