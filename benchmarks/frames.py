"""Benchmark frames made from real photos of ../shared/faces.

A 1-face frame is a crop of one photo around its face, at the frame's aspect ratio, sized so the
face spans ``FACE_FRACTION`` of the frame height, then area-resized to the frame size. A 4-face
frame is a 2x2 grid of such crops of four different people (each cell half the frame per side).
The face boxes that place the crops come from facegate's detector on the source photo; the
benchmark then detects afresh on the finished frame. Frames are also kept as JPEG (quality 90)
for the decode stage and as PNG files for the peer worker (lossless, so both see the same pixels).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from benchmarks.common import FACES
from facegate.vision.image import load_image
from facegate.vision.recognizer import Recognizer

SIZES = ((640, 480), (1280, 720))
FACE_COUNTS = (1, 4)
FACE_FRACTION = 0.45  # face box height / crop height: a head-and-shoulders shot
JPEG_QUALITY = 90
ONE_FACE = "face_recognition/obama/obama.jpg"
FOUR_FACES = (
    "face_recognition/obama/obama.jpg",
    "face_recognition/biden/biden.jpg",
    "face_recognition/kit_harington/johnsnow_test1.jpg",
    "face_recognition/rose_leslie/img2.jpg",
)


@dataclass(frozen=True, slots=True)
class BenchFrame:
    """One benchmark frame: RGB pixels, its JPEG bytes, and where its PNG copy is."""

    name: str
    image: np.ndarray
    jpeg: bytes
    png: Path
    faces: int  # faces pasted in
    sources: tuple[str, ...]


def _crop_around(image: np.ndarray, box: tuple[float, ...], width: int, height: int) -> np.ndarray:
    """A width x height crop of ``image`` centred on the face ``box`` (padded if it must be)."""
    x1, y1, x2, y2 = box[:4]
    ch = (y2 - y1) / FACE_FRACTION
    cw = ch * width / height
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 + 0.1 * (y2 - y1)  # a little below: shoulders
    left, top = round(cx - cw / 2), round(cy - ch / 2)
    h, w = image.shape[:2]
    pad = max(0, -left, -top, left + round(cw) - w, top + round(ch) - h)
    if pad:
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    crop = image[top + pad : top + pad + round(ch), left + pad : left + pad + round(cw)]
    return cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA)


def _face_crop(rec: Recognizer, rel: str, width: int, height: int) -> np.ndarray:
    image = load_image(FACES / rel)
    face = max(rec.detect(image), key=lambda f: f.width * f.height)
    return _crop_around(image, face.box, width, height)


def compose(rec: Recognizer, size: tuple[int, int], faces: int) -> np.ndarray:
    """A frame of ``size`` with one face, or a 2x2 grid of four faces."""
    width, height = size
    if faces == 1:
        return _face_crop(rec, ONE_FACE, width, height)
    cells = [_face_crop(rec, rel, width // 2, height // 2) for rel in FOUR_FACES]
    return np.vstack([np.hstack(cells[:2]), np.hstack(cells[2:])])


def build_frames(rec: Recognizer, folder: Path) -> list[BenchFrame]:
    """Every benchmark frame (sizes x face counts), with PNG copies written to ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = []
    for size in SIZES:
        for n in FACE_COUNTS:
            image = compose(rec, size, n)
            name = f"{size[0]}x{size[1]}_{n}face"
            bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
            ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            png = folder / f"{name}.png"
            cv2.imwrite(str(png), bgr)
            if not ok:
                raise RuntimeError(f"cannot encode {name}")
            sources = (ONE_FACE,) if n == 1 else FOUR_FACES
            frames.append(BenchFrame(name, image, jpeg.tobytes(), png, n, sources))
    return frames
