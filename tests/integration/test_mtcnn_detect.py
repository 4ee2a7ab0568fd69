"""MTCNN on real photos (tests/data/faces) with real P/R/O-Net models on ONNX Runtime and LiteRT."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facegate.bundle import Bundle
from facegate.errors import ConfigError, ImageError
from facegate.types import Face
from facegate.vision.detect import MTCNN, MTCNNConfig, nms
from facegate.vision.detect.mtcnn import _AreaSampler
from tests.data import DATA

NETS = ("pnet", "rnet", "onet")
FACES = DATA / "faces"
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
    """The photos of tests/data/faces/FOLDER; an empty list is a broken checkout, not a skip."""
    root = FACES / folder
    found = sorted(p for p in root.glob(pattern) if p.suffix.lower() in SUFFIXES)
    if not found:
        raise FileNotFoundError(f"no photos match {root / pattern}: tests/data is incomplete")
    return found


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, path
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _plausible(face: Face) -> bool:
    (lex, ley), (rex, rey), (_, nose_y), (_, lmy), (_, rmy) = face.landmarks.tolist()
    return lex < rex and max(ley, rey) < nose_y < min(lmy, rmy)


# The lists are never empty (an empty parametrize list would skip its tests without a word).
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
    assert nms(boxes, 0.5).tolist() == [2, 0, 3]  # 0 and 1: IoU 64/98 = 0.65; 2 sits inside 0
    assert nms(boxes, 0.66).tolist() == [2, 0, 1, 3]
    assert nms(boxes, 0.7, mode="min").tolist() == [2, 3]  # 0 covers all of 2


def test_bad_config_is_rejected() -> None:
    with pytest.raises(ConfigError):
        MTCNNConfig(pad_mode="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        MTCNNConfig(min_face_size=5)


def _window_mean(image: np.ndarray, rows: int, cols: int, top: int, left: int, size: int):
    """torch's area resize of image[top:top+rows, left:left+cols] (black outside), loop by loop."""
    out = np.zeros((size, size, 3), np.float32)
    for i in range(size):
        r0, r1 = top + (i * rows) // size, top + -(-(i + 1) * rows // size)
        for j in range(size):
            c0, c1 = left + (j * cols) // size, left + -(-(j + 1) * cols // size)
            total = np.zeros(3, np.float64)
            for r in range(r0, r1):
                for c in range(c0, c1):
                    if 0 <= r < image.shape[0] and 0 <= c < image.shape[1]:
                        total += image[r, c]
            kh, kw = np.float32(r1 - r0), np.float32(c1 - c0)
            out[i, j] = total.astype(np.float32) / kh / kw
    return out


def test_area_sampler_is_the_window_mean_torch_takes() -> None:
    image = np.random.default_rng(7).integers(0, 256, (53, 71, 3), dtype=np.uint8)
    sampler = _AreaSampler(image)
    level = sampler.level(16, 16)
    assert level.dtype == np.float32
    np.testing.assert_array_equal(level, _window_mean(image, 53, 71, 0, 0, 16))
    # 1-based inclusive boxes: inside, crossing the top-left corner, crossing the right edge
    boxes = np.array([[5, 9, 40, 44, 1], [-9, -4, 30, 35, 1], [40, 20, 85, 65, 1]], np.float32)
    zero = sampler.crops(boxes, 12, clip=False)
    clip = sampler.crops(boxes, 12, clip=True)
    for k, (x1, y1, x2, y2, _) in enumerate(boxes.astype(int)):
        want = _window_mean(image, y2 - y1 + 1, x2 - x1 + 1, y1 - 1, x1 - 1, 12)
        np.testing.assert_array_equal(zero[k], want)
        cx1, cy1, cx2, cy2 = max(x1, 1), max(y1, 1), min(x2, 71), min(y2, 53)
        want = _window_mean(image, cy2 - cy1 + 1, cx2 - cx1 + 1, cy1 - 1, cx1 - 1, 12)
        np.testing.assert_array_equal(clip[k], want)


def test_padded_sampler_equals_sampling_a_black_bordered_copy() -> None:
    """The retry's border is never drawn: the same integral image serves it, bit for bit."""
    image = np.random.default_rng(11).integers(0, 256, (53, 71, 3), dtype=np.uint8)
    pad = 21
    drawn = _AreaSampler(cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT))
    virtual = _AreaSampler(image).padded(pad)
    assert (virtual.height, virtual.width) == (drawn.height, drawn.width) == (95, 113)
    for size in [(95, 113), (40, 50), (13, 12)]:
        np.testing.assert_array_equal(virtual.level(*size), drawn.level(*size))
    # inside the image, across its edge into the border, and past the border itself
    boxes = np.array([[30, 30, 70, 72, 1], [2, 5, 40, 44, 1], [-6, 60, 60, 120, 1]], np.float32)
    for size, clip in [(24, False), (48, False), (24, True)]:
        np.testing.assert_array_equal(
            virtual.crops(boxes, size, clip), drawn.crops(boxes, size, clip)
        )


def test_very_large_photo_is_reduced_and_reported_at_full_size(onnx_detector: MTCNN) -> None:
    image = _read(OBAMA[0])
    small = onnx_detector.detect(image)
    k = 5  # -> ~5000 px wide, over 16 MP: detected on a whole-factor reduction
    big = cv2.resize(image, None, fx=k, fy=k, interpolation=cv2.INTER_LINEAR)
    assert big.shape[0] * big.shape[1] > 1 << 24
    face = max(onnx_detector.detect(big), key=lambda f: f.width * f.height)
    assert len(small) == 1
    side = small[0].width
    np.testing.assert_allclose(np.array(face.box) / k, small[0].box, atol=0.05 * side)
    np.testing.assert_allclose(face.landmarks / k, small[0].landmarks, atol=0.05 * side)


def test_batches_cover_every_crop_in_few_calls_and_sizes() -> None:
    """Every candidate is run exactly once: full chunks, then the rest in powers of two."""
    from facegate.vision.detect.mtcnn import _batch_sizes

    seen: set[int] = set()
    for n in range(0, 300):
        sizes = _batch_sizes(n, 16)
        assert sum(sizes) == n and all(0 < s <= 16 for s in sizes)
        rest = [s for s in sizes if s != 16]
        assert len(rest) == len(set(rest)) <= 4  # 8 + 4 + 2 + 1 at most, each once
        seen.update(sizes)
    assert seen == {16, 8, 4, 2, 1}  # a runtime sees five batch shapes, each planned once


HAMILTON = FACES.parent / "video" / "face_recognition_short_hamilton_clip.mp4"


def _clip_frame(path: Path, index: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(path))
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, bgr = cap.read()
    cap.release()
    if not ok:
        pytest.skip(f"{path.name} not present or too short")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def test_border_retry_only_where_the_plain_pass_found_nothing(bundle: Bundle) -> None:
    from benchmarks.probe import Probe

    detector = load_detector(bundle, "tflite")
    probe = Probe(detector)
    camera = _clip_frame(HAMILTON, 0)  # a speaker on a stage: two faces found
    assert len(detector.detect(camera)) == 2
    counts = probe.take()
    assert (counts.cascades, counts.retries) == (1, 0)
    crop = _read(FACES / "bbt" / "bernadette" / "bernadette5.png")  # 150x150: the face fills it
    faces = detector.detect(crop)
    counts = probe.take()
    assert (counts.cascades, counts.retries) == (2, 1)
    assert len(faces) == 1 and _plausible(faces[0])


def test_border_retry_finds_a_face_the_camera_frame_cuts(bundle: Bundle) -> None:
    """Hamilton frame 36: a close-up in profile, cut by the bottom edge; only the retry finds it."""
    from benchmarks.probe import Probe

    detector = load_detector(bundle, "tflite")
    probe = Probe(detector)
    faces = detector.detect(_clip_frame(HAMILTON, 36))
    assert probe.take().retries == 1
    assert len(faces) == 1 and faces[0].box[3] > 360  # past the frame's bottom edge


def _hamilton_frames(clip: Path, indices: set[int]) -> dict[int, np.ndarray]:
    cap = cv2.VideoCapture(str(clip))
    frames = {}
    for index in range(max(indices) + 1):
        ok, bgr = cap.read()
        assert ok, f"{clip} ends before frame {index}"
        if index in indices:
            frames[index] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    cap.release()
    return frames


def test_the_border_retry_runs_only_where_it_can_help(
    tflite_detector: MTCNN, hamilton_clip: Path
) -> None:
    """Frame 36 of the Hamilton clip is a close-up cut by the bottom edge: only the padded retry
    finds it, so the gate must let it through. Frame 37 has no face and one small background
    hit: the gate skips its retry, and the result is the same as with the retry."""
    nets = tflite_detector.pnet, tflite_detector.rnet, tflite_detector.onet
    gated = MTCNN(*nets, MTCNNConfig(retry_gate=True))
    always = MTCNN(*nets, MTCNNConfig(retry_gate=False))
    retries: list[float] = []
    padded = gated._padded

    def counted(image: np.ndarray, big: float, sampler: _AreaSampler | None = None) -> object:
        retries.append(big)
        return padded(image, big, sampler)

    gated._padded = counted  # type: ignore[method-assign,assignment]
    frames = _hamilton_frames(hamilton_clip, {36, 37})
    close_up = gated.detect(frames[36])
    assert len(close_up) == 1 and close_up[0].box[3] > frames[36].shape[0]  # leaves the frame
    assert len(retries) == 1
    assert gated.detect(frames[37]) == always.detect(frames[37]) == []
    assert len(retries) == 1, "frame 37's retry should have been skipped"


def _tight_and_cut(image: np.ndarray, face: Face, side: int) -> tuple[np.ndarray, np.ndarray]:
    """A tight grey 150 px crop of ``face`` and a frame around it with 30 % of the face cut off
    at ``side`` (0 left, 1 right, 2 top, 3 bottom): the pictures the border retry exists for."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = (round(v) for v in face.box)
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(width, x2), min(height, y2)
    grey = cv2.cvtColor(cv2.resize(image[y1:y2, x1:x2], (150, 150)), cv2.COLOR_RGB2GRAY)
    w, h = x2 - x1, y2 - y1
    box = [x1 - w // 2, y1 - h // 2, x2 + w // 2, y2 + h // 2]
    box[side] = [x1 + int(0.3 * w), x2 - int(0.3 * w), y1 + int(0.3 * h), y2 - int(0.3 * h)][side]
    left, top = max(0, box[0]), max(0, box[1])
    cut = np.ascontiguousarray(image[top : min(height, box[3]), left : min(width, box[2])])
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB), cut


def test_the_retry_gate_keeps_every_face_of_tight_and_cut_pictures(tflite_detector: MTCNN) -> None:
    """Tight crops and edge-cut frames of every fixture photo: the gated retry finds exactly the
    faces (and boxes) the ungated one finds, and some of them need the retry."""
    nets = tflite_detector.pnet, tflite_detector.rnet, tflite_detector.onet
    gated = MTCNN(*nets, MTCNNConfig(retry_gate=True))
    always = MTCNN(*nets, MTCNNConfig(retry_gate=False))
    never = MTCNN(*nets, MTCNNConfig(pad_mode="never"))
    pictures = []
    for k, path in enumerate(sorted(FACES.glob("*/*/*"))):
        if path.suffix.lower() in SUFFIXES:
            image = cv2.cvtColor(_read(path), cv2.COLOR_BGR2RGB)
            faces = gated.detect(image)
            if faces:
                pictures.extend(
                    p for p in _tight_and_cut(image, faces[0], k % 4) if min(p.shape[:2]) >= 24
                )
    assert len(pictures) >= 80, "tests/data/faces is incomplete"
    needed = 0
    for picture in pictures:
        want = always.detect(picture)
        got = gated.detect(picture)
        assert [f.box for f in got] == [f.box for f in want]
        needed += len(want) > len(never.detect(picture))
    assert needed >= 5, f"only {needed} pictures needed the retry: the gate is not tested"
