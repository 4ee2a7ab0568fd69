"""MTCNN on real photos (shared/faces) with real P/R/O-Net models on ONNX Runtime and LiteRT."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.bundle import Bundle
from edge.detect import MTCNN, MTCNNConfig, nms
from edge.errors import ConfigError, ImageError
from edge.types import Face

NETS = ("pnet", "rnet", "onet")
FACES = Path(__file__).resolve().parents[2].parent / "shared" / "faces"
SUFFIXES = {".jpg", ".jpeg", ".png"}
BOX_TOLERANCE_PX = 1.0  # ONNX Runtime vs LiteRT (measured: < 0.001 px on all of shared/faces)


def load_detector(bundle: Bundle, fmt: str) -> MTCNN:
    """Open the bundle's three FP32 nets in ``fmt``."""
    return MTCNN(*(bundle.open(bundle.entry(name, fmt)) for name in NETS))


@pytest.fixture(scope="module")
def onnx_detector(bundle: Bundle) -> MTCNN:
    return load_detector(bundle, "onnx")


@pytest.fixture(scope="module")
def tflite_detector(bundle: Bundle) -> MTCNN:
    return load_detector(bundle, "tflite")


def _images(folder: str, pattern: str = "*") -> list[Path]:
    root = FACES / folder
    return sorted(p for p in root.glob(pattern) if p.suffix.lower() in SUFFIXES)


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, path
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _plausible(face: Face) -> bool:
    (lex, ley), (rex, rey), (_, nose_y), (_, lmy), (_, rmy) = face.landmarks.tolist()
    return lex < rex and max(ley, rey) < nose_y < min(lmy, rmy)


# Empty lists (no shared/faces beside the clone) make pytest skip the parametrized tests.
OBAMA = _images("face_recognition/obama")
GROUPS = _images("face_recognition/_group_multiface")
BBT_CROPS = _images("bbt", "[!_]*/*")


@pytest.mark.parametrize("path", OBAMA, ids=lambda p: p.name)
def test_each_obama_photo_has_one_plausible_face(onnx_detector: MTCNN, path: Path) -> None:
    faces = onnx_detector.detect(_read(path))
    assert len(faces) == 1
    face = faces[0]
    assert face.score > 0.9
    assert face.landmarks.shape == (5, 2) and face.landmarks.dtype == np.float32
    assert _plausible(face), face.landmarks


@pytest.mark.parametrize("path", GROUPS, ids=lambda p: p.name)
def test_group_photos_have_several_faces(onnx_detector: MTCNN, path: Path) -> None:
    faces = onnx_detector.detect(_read(path))
    assert len(faces) >= 2
    scores = [f.score for f in faces]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("path", OBAMA + GROUPS, ids=lambda p: p.name)
def test_onnx_and_tflite_give_the_same_boxes(
    onnx_detector: MTCNN, tflite_detector: MTCNN, path: Path
) -> None:
    image = _read(path)
    a, b = onnx_detector.detect(image), tflite_detector.detect(image)
    assert len(a) == len(b)
    for fa, fb in zip(a, b, strict=True):
        np.testing.assert_allclose(fa.box, fb.box, atol=BOX_TOLERANCE_PX)
        np.testing.assert_allclose(fa.landmarks, fb.landmarks, atol=BOX_TOLERANCE_PX)


@pytest.mark.parametrize("mode", ["auto", "always", "never"])
def test_blank_image_has_no_face(onnx_detector: MTCNN, mode: str) -> None:
    nets = onnx_detector.pnet, onnx_detector.rnet, onnx_detector.onet
    detector = MTCNN(*nets, MTCNNConfig(pad_mode=mode))
    assert detector.detect(np.zeros((480, 640, 3), dtype=np.uint8)) == []
    assert detector.detect(np.full((150, 150, 3), 128, dtype=np.uint8)) == []


@pytest.mark.parametrize("path", BBT_CROPS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_tight_grayscale_crop_has_a_face(onnx_detector: MTCNN, path: Path) -> None:
    gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    faces = onnx_detector.detect(cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB))
    assert len(faces) == 1
    assert _plausible(faces[0]), faces[0].landmarks


def test_grayscale_arrays_are_accepted(onnx_detector: MTCNN) -> None:
    if not BBT_CROPS:
        pytest.skip(f"test photos not found at {FACES}")
    gray = cv2.imread(str(BBT_CROPS[0]), cv2.IMREAD_GRAYSCALE)
    assert len(onnx_detector.detect(gray)) == 1


def test_bad_images_are_rejected(onnx_detector: MTCNN) -> None:
    with pytest.raises(ImageError):
        onnx_detector.detect(np.zeros((48, 48, 3), dtype=np.float32))
    with pytest.raises(ImageError):
        onnx_detector.detect(np.zeros((0, 48, 3), dtype=np.uint8))


def test_nms_union_and_min() -> None:
    boxes = np.array(
        [[0, 0, 9, 9, 0.9], [1, 1, 10, 10, 0.8], [2, 2, 5, 5, 0.95], [50, 50, 60, 60, 0.5]],
        dtype=np.float32,
    )
    assert nms(boxes, 0.5).tolist() == [2, 0, 3]  # 0 and 1 overlap 0.68; 2 sits inside 0
    assert nms(boxes, 0.7, mode="min").tolist() == [2, 3]  # 0 covers all of 2


def test_bad_config_is_rejected() -> None:
    with pytest.raises(ConfigError):
        MTCNNConfig(pad_mode="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        MTCNNConfig(min_face_size=5)
