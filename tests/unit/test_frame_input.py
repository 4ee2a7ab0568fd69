"""Frames of odd size or dtype: coerced or refused once, at the source, and counted by capture.

The frame contract (RGB uint8 H x W x 3, contiguous, sides >= 16) is met where a frame is made:
``frame_to_rgb`` coerces what can be a picture and refuses the rest with ImageError; a ``Frame``
refuses anything that breaks the contract, so the pipeline never sees such a frame; capture
counts a refused frame as rejected and reads on.
"""

from __future__ import annotations

import logging
import sys
import time
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from facegate.errors import ImageError
from facegate.service.capture import Capture
from facegate.service.pipeline import Pipeline, PipelineSettings
from facegate.service.snapshots import SnapshotStore
from facegate.sources import FolderSource, OpenCVSource, Picamera2Source
from facegate.sources.base import FrameSource, frame_to_rgb
from facegate.types import MIN_FRAME_SIDE, Frame
from facegate.vision.image import load_image

T0 = 1_700_000_000.0
COERCED, REFUSED = "coerced", "refused"
# Frames no camera should send, but some driver one day will: (label, array, what becomes of it).
ODD_FRAMES = [
    ("1x1", np.zeros((1, 1, 3), np.uint8), REFUSED),
    ("0x0", np.zeros((0, 0, 3), np.uint8), REFUSED),
    ("0x640", np.zeros((0, 640, 3), np.uint8), REFUSED),
    ("empty gray", np.zeros((0, 0), np.uint8), REFUSED),
    ("float64", np.random.default_rng(0).random((48, 64, 3)) * 255, COERCED),
    ("float64 NaN", np.full((48, 64, 3), np.nan), COERCED),
    ("float64 gray", np.zeros((48, 64)), COERCED),
    ("16-bit", np.full((48, 64, 3), 40000, np.uint16), COERCED),
    ("16-bit gray", np.zeros((48, 64), np.uint16), COERCED),
    ("4-channel", np.zeros((48, 64, 4), np.uint8), COERCED),
    ("4-channel float64", np.zeros((48, 64, 4)), COERCED),
    ("int32 gray", np.zeros((48, 64), np.int32), COERCED),
    ("bool", np.zeros((48, 64, 3), bool), COERCED),
    ("2-channel", np.zeros((48, 64, 2), np.uint8), REFUSED),
    ("1-D", np.zeros(64, np.uint8), REFUSED),
    ("4-D", np.zeros((2, 48, 64, 3), np.uint8), REFUSED),
    ("thin", np.zeros((5, 5000, 3), np.uint8), REFUSED),
    ("not an array", None, REFUSED),
]
IDS = [label for label, _, _ in ODD_FRAMES]


@pytest.fixture(scope="module")
def face(faces_dir: Path) -> np.ndarray:
    """A real RGB uint8 photo with one large face."""
    return load_image(faces_dir / "face_recognition" / "obama" / "obama.jpg")


@pytest.fixture()
def pipeline(recognizer, tmp_path: Path) -> Pipeline:
    """A pipeline on the real models, with snapshots; an unknown face is reported at once."""
    recognizer.set_gallery(None)
    settings = PipelineSettings(unknown_after=1, min_sharpness=0.0)
    return Pipeline(recognizer, settings, SnapshotStore(tmp_path / "snapshots"))


def frame(image: object, index: int) -> Frame:
    return Frame(image, T0 + index / 10, index, "test")  # type: ignore[arg-type]


# ---- frame_to_rgb: the one conversion ----------------------------------------------------------


@pytest.mark.parametrize(("label", "image", "outcome"), ODD_FRAMES, ids=IDS)
def test_frame_to_rgb_coerces_or_refuses_each_odd_frame(
    label: str, image: object, outcome: str
) -> None:
    if outcome == REFUSED:
        with pytest.raises(ImageError):
            frame_to_rgb(image)
        return
    out = frame_to_rgb(image)
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3, label
    assert out.shape[:2] == image.shape[:2] and out.flags.c_contiguous
    assert Frame(out, T0, 0, "test").image is out  # what it makes meets the contract


def test_frame_to_rgb_keeps_the_picture() -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (32, 40, 3), dtype=np.uint8)
    assert frame_to_rgb(rgb) is rgb  # no copy for a frame that is already right
    np.testing.assert_array_equal(frame_to_rgb(rgb.astype(np.float64)), rgb)
    np.testing.assert_array_equal(frame_to_rgb(rgb.astype(np.uint16) * 257), rgb)
    rgba = np.dstack([rgb, np.full((32, 40), 255, np.uint8)])
    np.testing.assert_array_equal(frame_to_rgb(rgba), rgb)
    np.testing.assert_array_equal(frame_to_rgb(np.ascontiguousarray(rgb[..., ::-1]), bgr=True), rgb)
    assert frame_to_rgb(np.full((20, 20, 3), 300.0))[0, 0, 0] == 255  # clipped, not wrapped
    assert frame_to_rgb(np.full((20, 20, 3), np.nan))[0, 0, 0] == 0


@settings(max_examples=150, deadline=None)
@given(
    hnp.arrays(
        dtype=st.sampled_from(
            [
                np.uint8,
                np.uint16,
                np.int8,
                np.int32,
                np.int64,
                np.float16,
                np.float32,
                np.float64,
                bool,
            ]
        ),
        shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=40),
    ),
    st.booleans(),
)
def test_frame_to_rgb_never_raises_anything_but_image_error(image: np.ndarray, bgr: bool) -> None:
    try:
        out = frame_to_rgb(image, bgr=bgr)
    except ImageError:
        return
    assert out.dtype == np.uint8 and out.shape == (*image.shape[:2], 3)
    assert min(out.shape[:2]) >= MIN_FRAME_SIDE
    Frame(out, T0, 0, "test")  # never a contract breach


# ---- Frame: the contract, so the pipeline never converts ---------------------------------------


@pytest.mark.parametrize(("label", "image", "outcome"), ODD_FRAMES, ids=IDS)
def test_a_frame_refuses_every_odd_image_unconverted(
    label: str, image: object, outcome: str
) -> None:
    with pytest.raises(ImageError):
        frame(image, 0)


def test_a_frame_refuses_a_strided_view() -> None:
    rgb = np.zeros((32, 40, 3), np.uint8)
    with pytest.raises(ImageError, match="contiguous"):
        frame(rgb[:, ::2], 0)
    frame(rgb, 0)


@pytest.mark.parametrize(
    "convert",
    [
        pytest.param(lambda rgb: rgb.astype(np.float64), id="float64"),
        pytest.param(lambda rgb: rgb.astype(np.uint16) * 257, id="16-bit"),
        pytest.param(
            lambda rgb: np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]), id="RGBA"
        ),
        pytest.param(lambda rgb: cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), id="gray"),
    ],
)
def test_coerced_frames_still_find_the_face(pipeline: Pipeline, face: np.ndarray, convert) -> None:
    events = pipeline.process(frame(frame_to_rgb(convert(face)), 0))
    assert pipeline.metrics.counters["faces"] == 1
    assert [e.kind for e in events] == ["unknown"]  # embedded, matched (empty gallery), reported
    snapshot = Path(events[0].snapshot)
    assert cv2.imread(str(snapshot)).dtype == np.uint8


def test_a_frame_size_change_mid_stream(pipeline: Pipeline, face: np.ndarray) -> None:
    h, w = face.shape[:2]
    sizes = [(w, h), (w // 2, h // 2), (w * 2, h), (w, h), (64, 48), (w // 3, h // 3), (w, h)]
    events = []
    for i, size in enumerate(sizes):
        image = cv2.resize(face, size, interpolation=cv2.INTER_AREA)
        events += pipeline.process(frame(image, i))
    events += pipeline.finish(T0 + 60)
    assert pipeline.metrics.counters["faces"] >= 5
    assert {e.kind for e in events} <= {"unknown", "left"}
    assert pipeline.metrics.counters["frames_processed"] == len(sizes)


# ---- capture ---------------------------------------------------------------------------------


class ListSource(FrameSource):
    """A finite source that hands out the given images as frames."""

    finite = True

    def __init__(self, images: list[object]) -> None:
        self.images, self.name = list(images), "list"

    def open(self) -> None:
        self._next = 0

    def read(self) -> Frame | None:
        """Like a real source: the one conversion, then the frame (ImageError if no picture)."""
        if self._next >= len(self.images):
            return None
        self._next += 1
        return frame(frame_to_rgb(self.images[self._next - 1]), self._next - 1)

    def close(self) -> None:
        pass


def drain(capture: Capture) -> list[Frame]:
    frames = []
    while (item := capture.get(timeout=5)) is not None:
        frames.append(item)
    return frames


def test_capture_counts_refused_frames_and_reads_on(caplog: pytest.LogCaptureFixture) -> None:
    images = [image for _, image, _ in ODD_FRAMES] + [np.zeros((48, 64, 3), np.uint8)]
    capture = Capture(lambda: ListSource(images))
    with caplog.at_level(logging.DEBUG, logger="facegate.service.capture"), capture:
        frames = drain(capture)
    for item in frames:
        assert item.image.dtype == np.uint8 and item.image.ndim == 3 and item.image.shape[2] == 3
    # kept: float64 (3 kinds), 16-bit (2), 4-channel (2), int32 gray, bool and the good frame
    coerced = sum(outcome == COERCED for _, _, outcome in ODD_FRAMES)
    assert len(frames) == coerced + 1 == 10
    stats = capture.stats()
    assert stats.rejected == len(images) - 10 and stats.frames == 10
    assert stats.state == "ended" and stats.reconnects == 0  # a refused frame is not a failure
    dropping = [r for r in caplog.records if "dropping a frame" in r.getMessage()]
    assert [r.levelno for r in dropping][:2] == [logging.WARNING, logging.DEBUG]


# ---- sources -----------------------------------------------------------------------------------


class FakeVideoCapture:
    """Stands in for cv2.VideoCapture: returns the given BGR frames, then nothing."""

    def __init__(self, images: list[np.ndarray]) -> None:
        self.images = list(images)

    def read(self) -> tuple[bool, np.ndarray | None]:
        return (True, self.images.pop(0)) if self.images else (False, None)

    def get(self, prop: int) -> float:
        return 0.0

    def release(self) -> None:
        pass


def opencv_source(images: list[np.ndarray], uri: str = "/tmp/clip.mp4") -> OpenCVSource:
    source = OpenCVSource(uri)
    source._cap, source._t0 = FakeVideoCapture(images), time.time()
    return source


def test_opencv_source_coerces_depth_and_channels_to_rgb() -> None:
    bgr = np.zeros((48, 64, 3), np.uint8)
    bgr[..., 0] = 200  # blue
    source = opencv_source(
        [bgr.astype(np.float64), bgr.astype(np.uint16) * 257, np.dstack([bgr, bgr[..., :1]])]
    )
    for _ in range(3):
        image = source.read().image
        assert image.dtype == np.uint8 and image.shape == (48, 64, 3)
        assert tuple(image[0, 0]) == (0, 0, 200)  # RGB
    assert source.read() is None


@pytest.mark.parametrize(
    "bad",
    [np.zeros((1, 1, 3), np.uint8), np.zeros((0, 0, 3), np.uint8), np.zeros((48, 64, 2), np.uint8)],
)
def test_opencv_source_refuses_what_is_no_picture(bad: np.ndarray) -> None:
    source = opencv_source([bad, np.zeros((48, 64, 3), np.uint8)])
    with pytest.raises(ImageError, match="is not"):
        source.read()
    assert source.read().index == 1  # the next frame still comes, numbered as read


class FakePicamera2:
    """A camera whose next array is whatever the test puts in ``array``."""

    array: np.ndarray = np.zeros((48, 64, 3), np.uint8)

    def __init__(self, camera_num: int = 0) -> None:
        pass

    def create_video_configuration(self, **kwargs: object) -> dict:
        return dict(kwargs)

    def configure(self, config: dict) -> None:
        pass

    def start(self) -> None:
        pass

    def capture_array(self, name: str = "main", wait: object = None) -> str:
        return "job"

    def wait(self, job: str, timeout: float | None = None) -> np.ndarray:
        return FakePicamera2.array

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_picamera2_coerces_xrgb_and_refuses_tiny_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2
    monkeypatch.setitem(sys.modules, "picamera2", module)
    bgra = np.zeros((48, 64, 4), np.uint8)
    bgra[..., 2] = 90  # red, in XRGB8888's B, G, R, X memory order
    monkeypatch.setattr(FakePicamera2, "array", bgra)
    with Picamera2Source(size=(64, 48)) as source:
        image = source.read().image
        assert image.shape == (48, 64, 3) and tuple(image[0, 0]) == (90, 0, 0)
        monkeypatch.setattr(FakePicamera2, "array", np.zeros((1, 1, 3), np.uint8))
        with pytest.raises(ImageError, match="is not a picture"):
            source.read()


def test_folder_source_coerces_photos_and_skips_tiny_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cv2.imwrite(str(tmp_path / "a-16bit.png"), np.full((40, 50, 3), 30000, np.uint16))
    cv2.imwrite(str(tmp_path / "b-rgba.png"), np.full((40, 50, 4), 128, np.uint8))
    cv2.imwrite(str(tmp_path / "c-gray.png"), np.full((40, 50), 77, np.uint8))
    cv2.imwrite(str(tmp_path / "d-tiny.png"), np.zeros((1, 1, 3), np.uint8))
    with caplog.at_level(logging.WARNING), FolderSource(tmp_path) as source:
        frames = []
        while (item := source.read()) is not None:
            frames.append(item)
    assert len(frames) == 3
    for item in frames:
        assert item.image.dtype == np.uint8 and item.image.shape == (40, 50, 3)
    assert any("d-tiny.png" in r.getMessage() for r in caplog.records)
