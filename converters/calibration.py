"""Calibration and parity data: real faces from photos, with augmentation.

Calibration (INT8 ranges) and parity (quantized vs FP32 agreement) use *different photos*: the
sample photos are split, deterministically, into a calibration half and a held-out half (or, with
``--calib DIR``, the calibration photos come from DIR and every sample photo whose content is not
among them is held out). The augmentations differ too, but the split is what keeps a variant from
being judged on the faces it was calibrated on.

Each photo is also seen shrunk, so that its largest face spans each of ``FACE_SIDES_PX``: the
sample photos are portraits, and a variant must keep parity on faces of the sizes a camera shows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from facegate.errors import BundleError
from facegate.vision.align import align
from facegate.vision.detect.mtcnn import MTCNN
from facegate.vision.image import load_image
from facegate.vision.liveness import crop_face

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
MAX_SIDE = 640  # photos are shrunk first: calibration needs faces, not megapixels

Augment = Callable[[np.ndarray], np.ndarray]


def _rotate(deg: float) -> Augment:
    def run(img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        m = cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0)
        return cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)

    return run


def _gain(g: float) -> Augment:
    return lambda img: np.clip(img.astype(np.float32) * g, 0, 255).astype(np.uint8)


def _blur(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    small = cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _noise(img: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(7)
    return np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)


def _grey(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)


def _tint(r: float, g: float, b: float) -> Augment:
    return lambda img: np.clip(img * np.float32([r, g, b]), 0, 255).astype(np.uint8)


def _gamma(value: float) -> Augment:
    lut = (255 * (np.arange(256) / 255) ** value).astype(np.uint8)
    return lambda img: lut[img]


def _jpeg(img: np.ndarray) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 30])
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if ok else img


def _flip(img: np.ndarray) -> np.ndarray:
    return img[:, ::-1].copy()


# Largest-face sizes each photo is also shown at (shrunk, never enlarged): from near MTCNN's
# 40 px min_face_size up to portrait sizes. After _shrink the sample photos' faces span only
# 98-224 px; a camera frame shows 40-200 px faces, and every view is a new pixel grid for the nets.
FACE_SIDES_PX = (160, 112, 80, 56)

HOLD_OUT_EVERY = 2  # every 2nd sample photo (sorted by name) is held out: 3 of the 6 samples

# Varied light, colour, pose and quality, so INT8 ranges cover more than a few clean photos.
CALIBRATION_AUGMENTS: tuple[Augment, ...] = (
    lambda img: img,
    _flip,
    _gain(0.6),
    _gain(1.35),
    _rotate(8),
    _rotate(-8),
    _blur,
    _noise,
    _grey,
    _tint(1.15, 1.0, 0.8),
    _tint(0.8, 1.0, 1.2),
    _gamma(0.6),
    _gamma(1.6),
    _jpeg,
    lambda img: _rotate(12)(_flip(img)),
    lambda img: _gain(0.75)(_blur(img)),
)
# Applied to held-out photos only; the unchanged photo is the case that matters most on a device.
PARITY_AUGMENTS: tuple[Augment, ...] = (
    lambda img: img,
    _gain(0.8),
    _rotate(4),
    lambda img: _gain(1.15)(_flip(img)),
    _rotate(-5),
    _gamma(0.8),
    _tint(0.9, 1.0, 1.1),
    lambda img: _gain(1.1)(_rotate(3)(img)),
)

# A liveness model's parity needs faces whose attack score moves: grey, blurred, noisy, dark and
# recompressed views, as prints and poor cameras show. With PARITY_AUGMENTS every held-out crop
# scored far under the threshold and an ONNX INT8 file passed (max |Δp| 0.032) that refuses
# 40 % of NUAA's real held-out faces; on these views it shows max |Δp| 0.109 and 2 flipped
# decisions, and the LiteRT INT8 file, 0.004 and none (NUAA's figures: LiteRT INT8 as FP32).
LIVENESS_PARITY_AUGMENTS = CALIBRATION_AUGMENTS


@dataclass(frozen=True)
class Split:
    """Which photos calibrate and which are held out to check parity: disjoint by content."""

    calibrate: list[Path]
    check: list[Path]
    source: str  # "samples" (the bundle's own photos, split) or "calib-dir" (--calib DIR)

    def record(self) -> dict:
        """JSON-ready: file names and content sha256 of both sets, for the manifest and report."""

        def rows(paths: list[Path]) -> list[dict[str, str]]:
            return [{"file": p.name, "sha256": _digest(p)} for p in paths]

        return {"source": self.source, "calibrate": rows(self.calibrate), "check": rows(self.check)}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def split(samples: Path, calib_dir: Path | None) -> Split:
    """Disjoint calibration and held-out parity photos, chosen the same way on every build."""
    photos = photo_paths(samples)
    if calib_dir is None:
        calibrate = [p for i, p in enumerate(photos) if i % HOLD_OUT_EVERY != HOLD_OUT_EVERY - 1]
        source = "samples"
    else:
        calibrate, source = photo_paths(calib_dir), "calib-dir"
    seen = {_digest(p) for p in calibrate}
    check = [p for p in photos if p not in calibrate and _digest(p) not in seen]
    if not calibrate or not check:
        raise BundleError(
            f"need photos both to calibrate ({len(calibrate)}) and to check parity on "
            f"({len(check)}): give --calib DIR with face photos other than the samples"
        )
    return Split(calibrate, check, source)


@dataclass
class FaceData:
    """Aligned crops plus the stage inputs MTCNN's nets see, for one augmentation set."""

    photos: list[np.ndarray]
    crops: list[np.ndarray]  # 112x112 RGB uint8
    rnet: list[np.ndarray]  # 24x24 RGB uint8
    onet: list[np.ndarray]  # 48x48 RGB uint8
    boxes: list[tuple[int, tuple[float, ...]]] = field(default_factory=list)  # (photo, box)


def photo_paths(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursive), skipping folders that start with ``_``."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith("_") for part in p.relative_to(folder).parts)
    )


def _shrink(img: np.ndarray) -> np.ndarray:
    scale = MAX_SIDE / max(img.shape[:2])
    if scale >= 1:
        return img
    size = (round(img.shape[1] * scale), round(img.shape[0] * scale))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def _box_crop(img: np.ndarray, box: tuple[float, ...], size: int, jitter: float) -> np.ndarray:
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1) * (1 + jitter)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    m = np.float32(
        [
            [size / side, 0, size / 2 - cx * size / side],
            [0, size / side, size / 2 - cy * size / side],
        ]
    )
    return cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_AREA)


def _views(img: np.ndarray, detector: MTCNN) -> list[np.ndarray]:
    """The photo, then the photo shrunk so its largest face spans each of ``FACE_SIDES_PX``."""
    faces = detector.detect(img)
    if not faces:
        return [img]
    side = max(max(f.box[2] - f.box[0], f.box[3] - f.box[1]) for f in faces)
    views = [img]
    for target in FACE_SIDES_PX:
        if target < side:
            size = (round(img.shape[1] * target / side), round(img.shape[0] * target / side))
            views.append(cv2.resize(img, size, interpolation=cv2.INTER_AREA))
    return views


def collect(paths: list[Path], detector: MTCNN, augments: tuple[Augment, ...]) -> FaceData:
    """Detect and align every face in every augmented view of every photo."""
    data = FaceData([], [], [], [])
    for path in paths:
        for view in _views(_shrink(load_image(path)), detector):
            for aug in augments:
                _add(data, detector, np.ascontiguousarray(aug(view)))
    return data


def _add(data: FaceData, detector: MTCNN, img: np.ndarray) -> None:
    data.photos.append(img)
    for i, face in enumerate(detector.detect(img)):
        data.crops.append(align(img, face).crop)
        jitter = (-0.1, 0.0, 0.15)[i % 3]
        data.rnet.append(_box_crop(img, face.box, 24, jitter))
        data.onet.append(_box_crop(img, face.box, 48, jitter))
        data.boxes.append((len(data.photos) - 1, face.box))


def normalise(images: list[np.ndarray], mean: float, std: float) -> np.ndarray:
    """Stack uint8 RGB images into a float32 NHWC batch, ``(x - mean) / std``."""
    return (np.stack(images).astype(np.float32) - mean) / std


def context_crops(data: FaceData, scale: float, size: int) -> list[np.ndarray]:
    """Each face with its context as a liveness model sees it: ``scale`` x its box, ``size`` px."""
    return [crop_face(data.photos[i], box, scale, size) for i, box in data.boxes]


PNET_CALIB_SIZE = (160, 120)  # one fixed size, so all P-Net calibration images form one batch


def pnet_inputs(photos: list[np.ndarray], mean: float, std: float) -> np.ndarray:
    """P-Net sees whole pyramid levels: each photo shrunk to one small size, as one batch."""
    small = [cv2.resize(img, PNET_CALIB_SIZE, interpolation=cv2.INTER_AREA) for img in photos]
    return normalise(small, mean, std)
