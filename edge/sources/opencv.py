"""OpenCV frame sources: V4L2/USB cameras, RTSP/HTTP streams and video files."""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import cv2

from facegate.errors import CameraError
from facegate.sources.base import FrameSource, frame_to_rgb
from facegate.types import Frame

log = logging.getLogger(__name__)

STREAM_SCHEMES = ("rtsp", "rtsps", "http", "https", "rtmp")
# A dead stream is noticed within 5 s, well inside Capture's 10 s stall timeout.
STREAM_TIMEOUT_MS = 5000
# RTP over UDP loses packets on Wi-Fi and through NAT (smeared frames, or nothing at all);
# interleaved TCP is what NVRs default to. Only set when the user has not chosen options.
RTSP_CAPTURE_OPTIONS = "rtsp_transport;tcp"
CAPTURE_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_SECRET = re.compile(
    r"((?:user(?:name)?|pass(?:word)?|pwd|token|key|auth|secret|sig(?:nature)?)=)[^&;/]*", re.I
)


def display_name(uri: str | int) -> str:
    """A name for logs and events: no ``user:password@`` and no secret query values."""
    if isinstance(uri, int):
        return f"video{uri}"
    parts = urlsplit(uri)
    if not parts.scheme or not parts.netloc:
        return uri
    host = parts.netloc.rpartition("@")[2]
    path, query = _SECRET.sub(r"\1***", parts.path), _SECRET.sub(r"\1***", parts.query)
    return urlunsplit((parts.scheme, host, path, query, ""))


def source_kind(uri: str | int) -> str:
    """'device' (index, /dev/videoN or a udev name under /dev/v4l/), 'stream' (URL) or 'file'."""
    if isinstance(uri, int) or uri.isdigit() or uri.startswith(("/dev/video", "/dev/v4l/")):
        return "device"
    if urlsplit(uri).scheme.lower() in STREAM_SCHEMES:
        return "stream"
    return "file"


def _cv_message(err: cv2.error) -> str:
    return str(err).strip().splitlines()[-1] if str(err).strip() else "OpenCV error"


class OpenCVSource(FrameSource):
    """A camera (index or /dev/videoN), a stream URL or a video file, read with OpenCV."""

    def __init__(
        self,
        uri: str | int,
        name: str | None = None,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        fourcc: str | None = None,
        timeout_ms: int = STREAM_TIMEOUT_MS,
    ) -> None:
        self.uri = int(uri) if isinstance(uri, str) and uri.isdigit() else uri
        self.kind = source_kind(uri)
        self.finite = self.kind == "file"
        self.name = name or display_name(self.uri)
        self.width, self.height, self.fps, self.fourcc = width, height, fps, fourcc
        self.timeout_ms = timeout_ms
        self._cap: cv2.VideoCapture | None = None
        self._index = 0
        self._t0 = 0.0
        self._file_fps = 0.0

    def open(self) -> None:
        """Open the device, stream or file (raises CameraError when it cannot)."""
        if self._cap is not None:
            return
        cap = self._create()
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"{self.name}: cannot open {self.kind}{self._hint()}")
        if self.kind == "device":
            self._apply_hints(cap)
        self._cap, self._index, self._t0 = cap, 0, time.time()
        self._file_fps = cap.get(cv2.CAP_PROP_FPS) if self.finite else 0.0
        log.info(
            "%s: opened %s (%dx%d, %.1f fps)",
            self.name,
            self.kind,
            cap.get(cv2.CAP_PROP_FRAME_WIDTH),
            cap.get(cv2.CAP_PROP_FRAME_HEIGHT),
            cap.get(cv2.CAP_PROP_FPS),
        )

    def _create(self) -> cv2.VideoCapture:
        try:
            if self.kind == "device":
                api = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
                return cv2.VideoCapture(self.uri, api)
            if self.kind == "stream":
                self._set_stream_options()
                params = self._timeouts()
                if params:
                    return cv2.VideoCapture(self.uri, cv2.CAP_FFMPEG, params)
                return cv2.VideoCapture(self.uri, cv2.CAP_FFMPEG)
            if not Path(self.uri).is_file():
                raise CameraError(f"{self.name}: no such video file")
            return cv2.VideoCapture(str(self.uri))
        except cv2.error as err:
            raise CameraError(f"{self.name}: cannot open ({_cv_message(err)})") from err

    def _hint(self) -> str:
        if self.kind == "device":
            path = Path(f"/dev/video{self.uri}" if isinstance(self.uri, int) else self.uri)
            if sys.platform.startswith("linux") and not path.exists():
                return f" ({path} does not exist: unplugged?)"
            return " (busy, unsupported, or no permission: is the user in the 'video' group?)"
        if self.kind == "stream":
            return " (unreachable, refused, wrong path or credentials, or timed out)"
        return " (not a video OpenCV can decode)"

    def _set_stream_options(self) -> None:
        scheme = urlsplit(str(self.uri)).scheme.lower()
        if scheme in ("rtsp", "rtsps") and CAPTURE_OPTIONS_ENV not in os.environ:
            os.environ[CAPTURE_OPTIONS_ENV] = RTSP_CAPTURE_OPTIONS

    def _timeouts(self) -> list[int]:
        names = ("CAP_PROP_OPEN_TIMEOUT_MSEC", "CAP_PROP_READ_TIMEOUT_MSEC")
        if not all(hasattr(cv2, n) for n in names):  # OpenCV < 4.5.2 (old Jetson images)
            return []
        return [v for n in names for v in (getattr(cv2, n), self.timeout_ms)]

    def _apply_hints(self, cap: cv2.VideoCapture) -> None:
        if self.fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*self.fourcc[:4].ljust(4)))
        for prop, value in (
            (cv2.CAP_PROP_FRAME_WIDTH, self.width),
            (cv2.CAP_PROP_FRAME_HEIGHT, self.height),
            (cv2.CAP_PROP_FPS, self.fps),
        ):
            if value:
                cap.set(prop, value)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # fewer queued frames: lower latency

    def read(self) -> Frame | None:
        """The next RGB frame; None at the end of a file; CameraError when a live read fails.

        ImageError (from :func:`frame_to_rgb`) for a decoded frame that is no picture.
        """
        if self._cap is None:
            raise CameraError(f"{self.name}: read before open")
        started = time.monotonic()
        try:
            ok, image = self._cap.read()
        except cv2.error as err:
            raise CameraError(f"{self.name}: read failed ({_cv_message(err)})") from err
        if self.kind == "stream" and time.monotonic() - started >= self.timeout_ms / 1000:
            # the read timeout fired: OpenCV then hands out stale decoder frames as "ok"
            raise CameraError(f"{self.name}: no data for {self.timeout_ms / 1000:g} s (stalled)")
        if not ok or image is None:
            if self.finite:
                return None
            raise CameraError(f"{self.name}: no frame (stream ended, timed out or device gone)")
        index, self._index = self._index, self._index + 1
        return Frame(frame_to_rgb(image, bgr=True), self._timestamp(index), index, self.name)

    def _timestamp(self, index: int) -> float:
        """Wall clock for live sources; open time + media position for files."""
        if not self.finite or self._cap is None:
            return time.time()
        pos = self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000
        if pos > 0 or (pos == 0 and index == 0):
            return self._t0 + pos
        if self._file_fps > 0:
            return self._t0 + index / self._file_fps
        return time.time()

    def close(self) -> None:
        """Release the capture; safe to call twice."""
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()
            log.debug("%s: closed", self.name)
