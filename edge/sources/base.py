"""The frame-source interface: open, read frames until the end (or forever), close."""

from __future__ import annotations

from abc import ABC, abstractmethod

from facegate.types import Frame


class FrameSource(ABC):
    """A camera, stream, video file or image folder; a context manager that holds the device.

    ``read`` returns the next frame, or ``None`` when a finite source has ended. A live source
    that fails raises :class:`facegate.errors.CameraError`; the capture loop reopens it
    with backoff.
    """

    name: str = "source"
    finite: bool = False  # True for video files and folders: the run ends after the last frame

    @abstractmethod
    def open(self) -> None:
        """Acquire the device or stream (raises SourceError when it cannot)."""

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
