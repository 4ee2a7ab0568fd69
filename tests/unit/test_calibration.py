"""Calibration and parity data show faces of the sizes a camera sees, not only large portraits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facegate.bundle import Bundle
from facegate.converters import calibration
from facegate.vision.detect.mtcnn import MTCNN

SIZE_TOLERANCE = 0.15  # a re-detected box differs from the scaled box by a few pixels
SMALL_FACE_PX = 64  # near the detector's 40 px min_face_size


@pytest.fixture(scope="module")
def detector(bundle: Bundle) -> MTCNN:
    refs = {e.role: e for e in bundle.entries if (e.format, e.precision) == ("onnx", "fp32")}
    return MTCNN(*(bundle.open(refs[role]) for role in ("pnet", "rnet", "onet")))


def _largest_face_px(detector: MTCNN, img: np.ndarray) -> float:
    faces = detector.detect(img)
    return max(max(f.box[2] - f.box[0], f.box[3] - f.box[1]) for f in faces)


def test_each_photo_is_also_seen_with_camera_sized_faces(bundle_dir: Path, detector: MTCNN) -> None:
    photo = bundle_dir / "samples" / "obama.jpg"  # one large face (~190 px after shrinking)
    data = calibration.collect([photo], detector, (lambda img: img,))
    sizes = sorted(_largest_face_px(detector, img) for img in data.photos)
    assert len(data.crops) == len(data.photos) == 1 + len(calibration.FACE_SIDES_PX), sizes
    for target in calibration.FACE_SIDES_PX:
        assert any(abs(s - target) <= SIZE_TOLERANCE * target for s in sizes), (target, sizes)
    assert min(sizes) <= SMALL_FACE_PX and max(sizes) >= 150, sizes


def test_views_never_enlarge_a_photo(detector: MTCNN, bundle_dir: Path) -> None:
    photo = bundle_dir / "samples" / "obama3.jpg"  # its face is ~100 px: only smaller views
    data = calibration.collect([photo], detector, (lambda img: img,))
    base = data.photos[0]
    assert all(img.shape[0] < base.shape[0] for img in data.photos[1:])
    expected = 1 + sum(
        side < _largest_face_px(detector, base) for side in calibration.FACE_SIDES_PX
    )
    assert len(data.photos) == expected
