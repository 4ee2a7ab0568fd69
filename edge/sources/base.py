"""The frame-source interface, and the one place a device's pixels become a contract frame."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from facegate.errors import ImageError
from facegate.types import MIN_FRAME_SIDE, Frame
from facegate.vision.image import to_rgb


def frame_to_rgb(image: object, *, bgr: bool = False, min_side: int = MIN_FRAME_SIDE) -> np.ndarray:
    """Any frame array as a contract image (RGB uint8 HxWx3, contiguous), or ImageError.

    ``bgr``: the array is in OpenCV's B, G, R(, A) order. Gray, RGBA, 16-bit, float (clipped to
    0..255, NaN as 0), bool and integer frames are coerced; empty frames, frames with a side
    under ``min_side`` and other shapes are refused. An array that already meets the contract
    is returned as it is (no copy).
    """
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
        raise ImageError("frame is not an image array")
    if image.size == 0 or min(image.shape[:2]) < min_side:
        raise ImageError(f"frame of shape {image.shape} is not a picture")
    if image.dtype.kind not in "biuf":
        raise ImageError(f"frame of dtype {image.dtype} is not an image")
    if bgr and image.ndim == 3 and image.shape[2] in (3, 4):
        image = image[..., 2::-1]  # BGR or BGRA -> RGB (alpha dropped)
    if image.dtype.kind == "f":
        image = np.nan_to_num(image, nan=0.0, posinf=255.0, neginf=0.0)
    if image.dtype not in (np.uint8, np.uint16):
        # to_rgb converts channels before depth, and cv2 converts only 8/16-bit and float32
        image = np.clip(image, 0, 255).astype(np.float32)
    return to_rgb(image)


class FrameSource(ABC):
    """A camera, stream, video file or image folder; a context manager that holds the device.

    ``read`` returns the next frame, or ``None`` when a finite source has ended. Its image meets
    the frame contract (see :class:`facegate.types.Frame`): the source converts its device's
    pixels once, with :func:`frame_to_rgb`. A frame that is no picture raises
    :class:`facegate.errors.ImageError` (the capture loop counts it and reads on); a live source
    that fails raises :class:`facegate.errors.CameraError` (the capture loop reopens it with
    backoff).
    """

    name: str = "source"
    finite: bool = False  # True for video files and folders: the run ends after the last frame
    stills: bool = False  # True when every frame is an unrelated photo (a folder of images)

    @abstractmethod
    def open(self) -> None:
        """Acquire the device or stream (raises CameraError when it cannot)."""

    @abstractmethod
    def read(self) -> Frame | None:
        """The next frame, or None at the end of a finite source."""

    @abstractmethod
    def close(self) -> None:
        """Release the device; safe to call twice."""

    def __enter__(self) -> FrameSource:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
