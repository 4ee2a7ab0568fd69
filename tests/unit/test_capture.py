"""Capture, the frame queue and the frame sources, with fakes instead of cameras."""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
import types
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from facegate.errors import CameraError, ImageError
from facegate.service.capture import Capture, LatestFrameQueue
from facegate.service.metrics import Metrics
from facegate.service.prom import collect
from facegate.sources import FolderSource, OpenCVSource, Picamera2Source, display_name, open_source
from facegate.sources.base import FrameSource, frame_to_rgb
from facegate.sources.opencv import CAPTURE_OPTIONS_ENV, RTSP_CAPTURE_OPTIONS
from facegate.types import Frame

T0 = 1_700_000_000.0
# How long a condition may take before the test calls it a hang. Generous on purpose: a test
# returns as soon as its condition holds, and a loaded 2-core machine can stall a thread for
# seconds; no test here judges speed against the wall clock.
DEADLINE_S = 30.0


def make_frame(index: int, stamp: float | None = None) -> Frame:
    image = np.full((16, 16, 3), index % 256, np.uint8)
    return Frame(image, T0 + index if stamp is None else stamp, index, "fake")


def wait_for(predicate: Callable[[], bool], timeout: float = DEADLINE_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


class FakeSource(FrameSource):
    """``count`` frames stamped 1/fps apart, then ``then``: end, raise, none, or hang."""

    def __init__(
        self, count: int = 10**9, *, finite: bool = False, fps: float = 100.0, then: str = "end"
    ) -> None:
        self.count, self.finite, self.fps, self.then = count, finite, fps, then
        self.name = "fake"
        self.opened = self.closed = 0
        self._index = 0

    def open(self) -> None:
        self.opened += 1

    def read(self) -> Frame | None:
        if self._index < self.count:
            self._index += 1
            return make_frame(self._index - 1, T0 + (self._index - 1) / self.fps)
        if self.then == "raise":
            raise CameraError("fake: stream lost")
        if self.then == "boom":
            raise ValueError("driver bug")
        if self.then == "hang":
            time.sleep(0.02)
        return None

    def close(self) -> None:
        self.closed += 1


def factory(*plan: Callable[[], FrameSource] | Exception) -> Callable[[], FrameSource]:
    """Each call takes the next plan item (the last one repeats): raise it, or build a source."""
    items = list(plan)

    def make() -> FrameSource:
        item = items.pop(0) if len(items) > 1 else items[0]
        if isinstance(item, Exception):
            raise item
        return item()

    return make


# ---- LatestFrameQueue -------------------------------------------------------------------


def test_queue_drops_the_oldest_and_counts_it() -> None:
    q = LatestFrameQueue(maxsize=2)
    for i in range(5):
        assert q.put(make_frame(i))
    assert q.dropped == 3 and len(q) == 2
    assert [q.get(0).index, q.get(0).index] == [3, 4]


def test_queue_get_times_out_with_empty() -> None:
    with pytest.raises(queue.Empty):
        LatestFrameQueue().get(timeout=0.01)


def test_queue_close_is_an_end_marker_after_the_last_frame() -> None:
    q = LatestFrameQueue()
    q.put(make_frame(0))
    q.close()
    assert not q.put(make_frame(1))
    assert q.get(0).index == 0
    assert q.get(0) is None and q.get() is None


class SignallingCondition(threading.Condition):
    """A Condition that sets ``waiting`` when a thread starts waiting on it."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        self.waiting.set()
        return super().wait(timeout)


def test_blocking_put_waits_for_the_consumer_and_close_releases_it() -> None:
    q = LatestFrameQueue(maxsize=1)
    q._cond = cond = SignallingCondition()  # see the putter block, instead of sleeping on it
    q.put(make_frame(0))
    results: list[bool] = []
    putter = threading.Thread(target=lambda: results.append(q.put(make_frame(1), block=True)))
    putter.start()
    assert cond.waiting.wait(DEADLINE_S), "the put on a full queue never waited"
    assert results == [] and q.dropped == 0
    assert q.get(1).index == 0
    putter.join(DEADLINE_S)
    assert results == [True] and q.get(1).index == 1
    putter = threading.Thread(target=lambda: results.append(q.put(make_frame(2), block=True)))
    q.put(make_frame(3))
    cond.waiting.clear()
    putter.start()
    assert cond.waiting.wait(DEADLINE_S)
    q.close()
    putter.join(DEADLINE_S)
    assert results == [True, False]


# ---- Capture ----------------------------------------------------------------------------


def drain(cap: Capture, timeout: float = DEADLINE_S, delay: float = 0.0) -> list[Frame]:
    frames = []
    while (frame := cap.get(timeout)) is not None:
        frames.append(frame)
        time.sleep(delay)
    return frames


def test_finite_source_delivers_every_frame_in_order_then_ends() -> None:
    with Capture(factory(lambda: FakeSource(40, finite=True)), maxsize=2) as cap:
        frames = drain(cap, delay=0.001)  # a consumer slower than the source
    assert [f.index for f in frames] == list(range(40))
    assert cap.state == "ended" and cap.dropped == 0 and cap.reconnects == 0
    assert cap.queue.closed


def test_max_fps_on_a_file_uses_its_timestamps() -> None:
    source = factory(lambda: FakeSource(300, finite=True, fps=30.0))  # 10 s of video
    with Capture(source, max_fps=10) as cap:
        frames = drain(cap)
    assert len(frames) == 100 and cap.skipped == 200
    assert [f.index for f in frames[:4]] == [0, 3, 6, 9]


def test_frames_skipped_by_max_fps_are_in_the_metrics() -> None:
    source = factory(lambda: FakeSource(30, finite=True, fps=30.0))  # 1 s of video
    with Capture(source, max_fps=10) as cap:
        frames = drain(cap)
    metrics = collect(Metrics(), cap.stats(), [])
    skipped = metrics["facegate_frames_skipped_total"]
    assert skipped[0] == "counter" and skipped[2] == cap.skipped == 20
    assert metrics["facegate_frames_captured_total"][2] == len(frames) + skipped[2] == 30


class BrokenPicturesSource(FakeSource):
    """A live source whose every frame is no picture (a camera sending raw buffers)."""

    def read(self) -> Frame | None:
        raise ImageError("frame of shape (1, 614400) is not a picture")


def test_a_live_source_of_no_pictures_is_counted_then_reopened() -> None:
    opened: list[BrokenPicturesSource] = []

    def make() -> FrameSource:
        opened.append(BrokenPicturesSource())
        return opened[-1]

    with Capture(make, max_failed_reads=3, backoff_initial=0.01) as cap:
        assert wait_for(lambda: cap.reconnects >= 1)
    assert cap.rejected >= 3 and cap.frames == 0
    assert "3 failed reads in a row" in (cap.last_error or "")


def test_max_fps_on_a_live_source_limits_by_capture_time() -> None:
    # 100 frames stamped over 1 s (a live source stamps frames with the wall clock), then silence
    source = factory(lambda: FakeSource(100, fps=100.0, then="hang"))
    with Capture(source, max_fps=10, max_failed_reads=10**9, stall_timeout=60) as cap:
        assert wait_for(lambda: cap.frames == 100)
        assert cap.frames - cap.skipped == 10


def test_realtime_plays_a_file_at_its_own_speed_without_blocking() -> None:
    started = time.monotonic()  # before the thread starts: load can only lengthen ``took``
    with Capture(factory(lambda: FakeSource(21, finite=True, fps=100.0)), realtime=True) as cap:
        assert wait_for(lambda: cap.state == "ended")
        took = time.monotonic() - started
    assert took >= 0.199  # 20 intervals of 10 ms (less 1 ms of float rounding): never faster
    assert cap.dropped == 19  # nobody consuming, and the file did not block on the queue


def test_failed_opens_are_retried_with_backoff_until_the_source_works() -> None:
    err = CameraError("fake: connection refused")
    source = factory(err, err, err, lambda: FakeSource(then="hang"))
    with Capture(source, backoff_initial=0.01) as cap:
        assert wait_for(lambda: cap.state == "streaming" and cap.frames > 5)
        assert cap.reconnects == 3 and cap.last_error.endswith("fake: connection refused")
        assert cap.get(1) is not None


@pytest.mark.parametrize("then", ["raise", "none", "boom"])
def test_a_failing_live_source_is_closed_and_reopened(then: str) -> None:
    made: list[FakeSource] = []

    def make() -> FakeSource:
        made.append(FakeSource(5 if not made else 10**9, then=then))
        return made[-1]

    with Capture(make, backoff_initial=0.01, max_failed_reads=3) as cap:
        assert wait_for(lambda: len(made) == 2 and cap.frames > 10)
        assert cap.reconnects == 1 and cap.state == "streaming"
    assert made[0].opened == made[0].closed == 1 and made[1].closed == 1
    assert cap.last_error and "\n" not in cap.last_error


def test_a_stalled_live_source_is_reopened() -> None:
    made: list[FakeSource] = []

    def make() -> FakeSource:
        made.append(FakeSource(2, then="hang"))
        return made[-1]

    with Capture(make, backoff_initial=0.01, stall_timeout=0.1, max_failed_reads=10**9) as cap:
        assert wait_for(lambda: cap.reconnects >= 1)
    assert "no frame for 0.1 s" in (cap.last_error or "")


def test_stop_interrupts_the_backoff_wait() -> None:
    cap = Capture(factory(CameraError("fake: down")), backoff_initial=3600).start()
    assert wait_for(lambda: cap.state == "backoff")
    cap.stop(timeout=DEADLINE_S)  # an uninterrupted hour-long backoff would outlast the join
    assert not cap.running and cap.state == "ended" and cap.get(0) is None


def test_a_finite_source_that_fails_ends_instead_of_replaying() -> None:
    source = factory(lambda: FakeSource(3, finite=True, then="raise"))
    with Capture(source, backoff_initial=0.01) as cap:
        frames = drain(cap)
    assert len(frames) == 3 and cap.reconnects == 0 and cap.state == "ended"
    assert cap.last_error == "fake: stream lost"


def test_stats_snapshot() -> None:
    with Capture(factory(lambda: FakeSource(4, finite=True)), name="door") as cap:
        drain(cap)
    stats = cap.stats()
    assert (stats.name, stats.state, stats.frames, stats.dropped) == ("door", "ended", 4, 0)
    assert stats.last_frame_time is not None


# ---- Picamera2Source --------------------------------------------------------------------


class FakePicamera2:
    """Records calls; delivers BGR frames (what libcamera's 'RGB888' really is)."""

    instances: list[FakePicamera2] = []  # noqa: RUF012

    def __init__(self, camera_num: int = 0) -> None:
        self.camera_num = camera_num
        self.calls: list[str] = []
        self.config: dict | None = None
        self.timeout = False
        FakePicamera2.instances.append(self)

    def create_video_configuration(self, **kwargs: object) -> dict:
        return dict(kwargs)

    def configure(self, config: dict) -> None:
        self.calls.append("configure")
        self.config = config

    def start(self) -> None:
        self.calls.append("start")

    def capture_array(self, name: str = "main", wait: object = None) -> str:
        self.calls.append(f"capture_array:{name}")
        return "job"

    def wait(self, job: str, timeout: float | None = None) -> np.ndarray:
        if self.timeout:
            raise TimeoutError
        width, height = self.config["main"]["size"]
        bgr = np.zeros((height, width, 3), np.uint8)
        bgr[..., 0], bgr[..., 1], bgr[..., 2] = 10, 20, 30  # B, G, R
        return bgr

    def stop(self) -> None:
        self.calls.append("stop")

    def close(self) -> None:
        self.calls.append("close")


@pytest.fixture()
def fake_picamera2(monkeypatch: pytest.MonkeyPatch) -> type[FakePicamera2]:
    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2
    monkeypatch.setitem(sys.modules, "picamera2", module)
    FakePicamera2.instances = []
    return FakePicamera2


def test_picamera2_reads_rgb_frames_and_closes_exactly_once(fake_picamera2) -> None:
    source = Picamera2Source(camera_num=1, size=(64, 48), fps=15)
    with source:
        frames = [source.read(), source.read()]
    source.close()
    cam = fake_picamera2.instances[0]
    assert cam.camera_num == 1
    assert cam.config == {
        "main": {"size": (64, 48), "format": "RGB888"},
        "controls": {"FrameRate": 15.0},
    }
    assert frames[0].image.shape == (48, 64, 3) and frames[0].image.dtype == np.uint8
    assert tuple(frames[0].image[0, 0]) == (30, 20, 10)  # R, G, B
    assert [f.index for f in frames] == [0, 1] and frames[0].source == "picamera2:1"
    assert cam.calls.count("stop") == 1 and cam.calls.count("close") == 1
    assert cam.calls[-2:] == ["stop", "close"]


def test_picamera2_timeout_is_a_camera_error(fake_picamera2) -> None:
    with Picamera2Source(size=(64, 48)) as source:
        fake_picamera2.instances[0].timeout = True
        with pytest.raises(CameraError, match="no frame"):
            source.read()


def test_missing_picamera2_is_a_one_line_camera_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # makes the import fail
    with pytest.raises(CameraError) as info:
        Picamera2Source().open()
    message = str(info.value)
    assert "\n" not in message and "sudo apt install python3-picamera2" in message


# ---- OpenCV and folder sources, open_source -----------------------------------------------


def test_display_name_strips_credentials() -> None:
    assert display_name("rtsp://admin:s3cret@10.0.0.5:554/stream1") == "rtsp://10.0.0.5:554/stream1"
    name = display_name("http://cam.local/video.cgi?user=admin&password=s3cret&channel=1")
    assert "s3cret" not in name and "admin" not in name and "channel=1" in name
    assert display_name(0) == "video0" and display_name("/tmp/clip.mp4") == "/tmp/clip.mp4"


def test_frame_to_rgb_from_bgr_converts_and_rejects_nonsense() -> None:
    bgra = np.zeros((20, 20, 4), np.uint8)
    bgra[..., 0] = 255
    assert tuple(frame_to_rgb(bgra, bgr=True)[0, 0]) == (0, 0, 255)
    assert frame_to_rgb(np.zeros((20, 20), np.uint16), bgr=True).shape == (20, 20, 3)
    for bad in (np.zeros((1, 5000), np.uint8), np.zeros((20, 20, 2), np.uint8), np.zeros(9)):
        with pytest.raises(ImageError):
            frame_to_rgb(bad, bgr=True)


def test_rtsp_defaults_to_tcp_unless_the_user_chose(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CAPTURE_OPTIONS_ENV, "")
    monkeypatch.delenv(CAPTURE_OPTIONS_ENV)
    OpenCVSource("http://cam.local/x")._set_stream_options()
    assert CAPTURE_OPTIONS_ENV not in os.environ
    OpenCVSource("rtsp://cam.local/x")._set_stream_options()
    assert os.environ[CAPTURE_OPTIONS_ENV] == RTSP_CAPTURE_OPTIONS
    monkeypatch.setenv(CAPTURE_OPTIONS_ENV, "rtsp_transport;udp")
    OpenCVSource("rtsp://cam.local/x")._set_stream_options()
    assert os.environ[CAPTURE_OPTIONS_ENV] == "rtsp_transport;udp"


def write_video(path: Path, count: int, fps: float = 10.0) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    assert writer.isOpened()
    for _ in range(count):
        bgr = np.zeros((48, 64, 3), np.uint8)
        bgr[..., 2] = 200  # red in BGR
        writer.write(bgr)
    writer.release()


def test_video_file_frames_are_rgb_timestamped_and_end_with_none(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    write_video(path, 12, fps=10.0)
    with OpenCVSource(str(path)) as source:
        frames = []
        while (frame := source.read()) is not None:
            frames.append(frame)
        assert source.read() is None
    assert source.finite and len(frames) == 12
    assert frames[0].image.shape == (48, 64, 3) and frames[0].image[0, 0, 0] > 150
    assert frames[0].image[0, 0, 2] < 50  # red stayed red: BGR was swapped
    assert np.allclose(np.diff([f.timestamp for f in frames]), 0.1, atol=1e-3)


def test_opencv_source_errors_are_camera_errors(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="no such video file"):
        OpenCVSource(str(tmp_path / "missing.mp4")).open()
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    with pytest.raises(CameraError, match="cannot open file"):
        OpenCVSource(str(tmp_path / "junk.mp4")).open()
    with pytest.raises(CameraError, match="read before open"):
        OpenCVSource(str(tmp_path / "junk.mp4")).read()


def test_folder_source_sorts_naturally_and_skips_unreadable_files(tmp_path: Path) -> None:
    for name, value in (("img10.png", 10), ("img2.png", 2), ("img1.jpg", 1)):
        cv2.imwrite(str(tmp_path / name), np.full((32, 32, 3), value * 10, np.uint8))
    (tmp_path / "img3.jpg").write_bytes(b"garbage")
    (tmp_path / "notes.txt").write_text("not an image")
    with FolderSource(tmp_path, fps=5) as source:
        frames = []
        while (frame := source.read()) is not None:
            frames.append(frame)
    assert [round(int(f.image[0, 0, 0]) / 10) for f in frames] == [1, 2, 10]
    assert [f.index for f in frames] == [0, 1, 2] and source.finite
    assert np.allclose(np.diff([f.timestamp for f in frames]), 0.2)


def test_folder_without_images_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="no images"):
        FolderSource(tmp_path).open()
    with pytest.raises(CameraError, match="not a folder"):
        FolderSource(tmp_path / "missing").open()


def test_open_source_dispatch(tmp_path: Path) -> None:
    clip = tmp_path / "clip.avi"
    write_video(clip, 2)
    cam = open_source("picamera2:1")
    assert isinstance(cam, Picamera2Source) and cam.camera_num == 1
    assert open_source("picamera2").camera_num == 0
    for spec, kind in (("0", "device"), ("/dev/video2", "device"), (str(clip), "file")):
        source = open_source(spec)
        assert isinstance(source, OpenCVSource) and source.kind == kind
    assert open_source("0").uri == 0 and open_source(str(clip)).finite
    for url in ("rtsp://u:p@cam/1", "rtsps://cam/1", "http://cam/x.mjpg", "https://cam/x"):
        source = open_source(url)
        assert isinstance(source, OpenCVSource) and source.kind == "stream"
        assert not source.finite and "u:p" not in source.name
    assert isinstance(open_source(str(tmp_path)), FolderSource)


@pytest.mark.parametrize("spec", ["", "picamera2:x", "nope/missing.mp4", "rtps://u:secret@cam"])
def test_open_source_refuses_what_it_cannot_use(spec: str) -> None:
    with pytest.raises(CameraError) as info:
        open_source(spec)
    assert "\n" not in str(info.value) and "secret" not in str(info.value)
