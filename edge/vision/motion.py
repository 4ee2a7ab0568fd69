"""A cheap motion test: a small blurred grey copy of each frame against a running background.

A 640x480 frame is shrunk to ``WIDTH`` pixels wide (area average), made grey and blurred, then
compared with a running average of the previous small frames; pixels that changed by more than
``threshold`` grey levels count as moved. This costs a fraction of a millisecond, against ~20 ms
for a detector pass, so a camera that sees no change skips detection altogether.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in full-frame pixels

WIDTH = 160  # small copy's width: a 60 px face at 640 wide is still 15 px of change
BLUR = 5  # Gaussian kernel side on the small copy: smooths sensor noise and JPEG/H.264 blocks
# Share of each new small frame mixed into the background: the background forgets a change in
# ~1/rate frames (20 frames, under a second at 25 fps), so a stopped object stops counting.
BACKGROUND_RATE = 0.05
MOTION_THRESHOLD = 25  # grey levels; the clips' frame-to-frame noise on the blurred copy is < 10
# Share of the small copy that must change to call it motion: 0.2 % = 38 of 160x120 pixels,
# a little more than one 60 px face at 640 wide moving by a few pixels.
MOTION_MIN_AREA = 0.002


@dataclass(frozen=True, slots=True)
class Motion:
    """Which pixels of the small copy changed, and how to map full-frame boxes onto it."""

    mask: np.ndarray  # uint8 (h, w): 255 where the frame changed
    scale: float  # small pixels per full-frame pixel
    min_pixels: int  # changed pixels that count as motion

    @property
    def changed(self) -> int:
        """Number of changed pixels in the small copy."""
        return int(cv2.countNonZero(self.mask))

    @property
    def moved(self) -> bool:
        """Whether enough pixels changed to call it motion."""
        return self.changed >= self.min_pixels

    def moved_outside(self, boxes: Iterable[Box]) -> bool:
        """Whether enough pixels changed outside ``boxes`` (full-frame pixels)."""
        rest = self.mask.copy()
        h, w = rest.shape
        for x1, y1, x2, y2 in boxes:
            s = self.scale
            c1, r1 = max(0, int(x1 * s)), max(0, int(y1 * s))
            c2, r2 = min(w, int(np.ceil(x2 * s))), min(h, int(np.ceil(y2 * s)))
            rest[r1:r2, c1:c2] = 0
        return int(cv2.countNonZero(rest)) >= self.min_pixels


class MotionGate:
    """Keeps one camera's background; ``update`` tells what changed in a new frame."""

    def __init__(
        self, threshold: float = MOTION_THRESHOLD, min_area: float = MOTION_MIN_AREA
    ) -> None:
        self.threshold, self.min_area = threshold, min_area
        self._background: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the background: the next frame counts as all changed."""
        self._background = None

    def update(self, image: np.ndarray) -> Motion:
        """Compare an RGB frame with the background, then blend it into the background."""
        h, w = image.shape[:2]
        scale = min(1.0, WIDTH / w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        grey = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), (BLUR, BLUR), 0)
        min_pixels = max(1, round(self.min_area * grey.size))
        if self._background is None or self._background.shape != grey.shape:
            self._background = grey.astype(np.float32)
            return Motion(np.full_like(grey, 255), scale, min_pixels)
        diff = cv2.absdiff(grey, cv2.convertScaleAbs(self._background))
        _, mask = cv2.threshold(diff, self.threshold, 255, cv2.THRESH_BINARY)
        cv2.accumulateWeighted(grey, self._background, BACKGROUND_RATE)
        return Motion(mask, scale, min_pixels)
