"""The Raspberry Pi camera through picamera2 (libcamera), imported only when opened."""

from __future__ import annotations

import logging
import time
from typing import Any

from facegate.errors import CameraError
from facegate.sources.base import FrameSource, frame_to_rgb
from facegate.types import Frame

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "picamera2 is not installed: on Raspberry Pi OS run `sudo apt install python3-picamera2` "
    "and create the venv with --system-site-packages"
)
# libcamera's "RGB888" is stored B, G, R in memory (OpenCV order); we swap it to RGB.
PIXEL_FORMAT = "RGB888"
# capture waits at most this long; a camera that stops (ribbon cable, "frontend timed out")
# then fails the read instead of hanging it, and Capture reopens it.
READ_TIMEOUT = 5.0
# What picamera2/libcamera raise for a missing, busy or misconfigured camera.
_CAMERA_ERRORS = (RuntimeError, IndexError, ValueError, OSError)


class Picamera2Source(FrameSource):
    """A Pi camera module (CSI) delivering RGB frames of ``size``."""

    def __init__(
        self,
        camera_num: int = 0,
        size: tuple[int, int] = (1280, 720),
        fps: float | None = None,
        name: str | None = None,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        self.camera_num = camera_num
        self.size = size
        self.fps = fps
        self.name = name or f"picamera2:{camera_num}"
        self.read_timeout = read_timeout
        self._cam: Any = None
        self._index = 0

    def open(self) -> None:
        """Acquire, configure and start the camera (CameraError when it cannot)."""
        if self._cam is not None:
            return
        try:
            from picamera2 import Picamera2
        except ImportError as err:
            raise CameraError(INSTALL_HINT) from err
        try:
            cam = Picamera2(self.camera_num)
        except _CAMERA_ERRORS as err:
            raise CameraError(f"{self.name}: cannot open camera ({err})") from err
        try:
            cam.configure(cam.create_video_configuration(**self._config()))
            cam.start()
        except _CAMERA_ERRORS as err:
            cam.close()
            raise CameraError(f"{self.name}: cannot start camera ({err})") from err
        self._cam, self._index = cam, 0
        log.info("%s: started %dx%d", self.name, *self.size)

    def _config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"main": {"size": tuple(self.size), "format": PIXEL_FORMAT}}
        if self.fps:
            config["controls"] = {"FrameRate": float(self.fps)}
        return config

    def read(self) -> Frame:
        """The next frame (RGB); CameraError when the camera stops, ImageError for no picture."""
        if self._cam is None:
            raise CameraError(f"{self.name}: read before open")
        try:
            job = self._cam.capture_array("main", wait=False)
            array = self._cam.wait(job, timeout=self.read_timeout)
        except TimeoutError as err:
            raise CameraError(f"{self.name}: no frame for {self.read_timeout:g} s") from err
        except _CAMERA_ERRORS as err:
            raise CameraError(f"{self.name}: capture failed ({err})") from err
        index, self._index = self._index, self._index + 1
        return Frame(frame_to_rgb(array, bgr=True), time.time(), index, self.name)

    def close(self) -> None:
        """Stop and close the camera exactly once; safe to call twice."""
        cam, self._cam = self._cam, None
        if cam is None:
            return
        for step in (cam.stop, cam.close):  # a dead camera must not make closing fail
            try:
                step()
            except _CAMERA_ERRORS as err:
                log.warning("%s: %s failed (%s)", self.name, step.__name__, err)
        log.debug("%s: closed", self.name)
