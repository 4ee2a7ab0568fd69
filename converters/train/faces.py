"""Aligned 112x112 face crops for training and for held-out evaluation, cached once.

Every crop is made the way the device makes it: facegate's own MTCNN (the default bundle, ONNX
FP32) finds the largest face and :func:`facegate.vision.align.align` warps it to the ArcFace
template. Training crops come from ``../shared/train/utkface_crops`` (UTKFace: non-commercial
research use only). Evaluation crops are every photo of ``../shared/faces/*/`` (identity folders;
``_`` folders are groups and are skipped) and are never trained on.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facegate.bundle import Bundle, sha256_file
from facegate.errors import FacegateError
from facegate.host.paths import cache_dir, ensure_private_dir, models_dir
from facegate.vision.image import load_image, video_frames
from facegate.vision.recognizer import Recognizer, RecognizerConfig

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
SUBSET_SEED = 0  # --limit N takes the first N of this fixed shuffle: the same N every run
TRAINING_DATA = {
    "name": "UTKFace aligned crops (../shared/train/utkface_crops)",
    "licence": "UTKFace: non-commercial research purposes only",
}
BACKGROUND_VIDEO = "facenet_pytorch_video.mp4"  # strangers in a street: no evaluated identity
BACKGROUND_DATA = {
    "name": f"frames of ../shared/video/{BACKGROUND_VIDEO} as border-fill backgrounds",
    "licence": "example clip of the facenet-pytorch repository (MIT)",
}
BACKGROUND_EVERY = 3  # every third frame, at half size: 35 street scenes of 960x540
BACKGROUND_SCALE = 0.5


@dataclass(frozen=True)
class Crops:
    """Aligned crops (N, 112, 112, 3) uint8 RGB, what they came from, and a content digest."""

    crops: np.ndarray
    labels: list[str]
    digest: str


def shared_dir() -> Path:
    """The shared data folder: ``$FACEGATE_SHARED``, else ``../shared`` beside the checkout."""
    env = os.environ.get("FACEGATE_SHARED")
    if env:
        return Path(env)
    beside_checkout = Path(__file__).resolve().parents[2].parent / "shared"
    return beside_checkout if beside_checkout.is_dir() else Path.cwd().parent / "shared"


def train_root() -> Path:
    """The UTKFace crops under the shared data folder."""
    return shared_dir() / "train" / "utkface_crops"


def open_recognizer(bundle_dir: Path | None = None) -> Recognizer:
    """The default bundle's detector and embedder on ONNX Runtime FP32 (one thread)."""
    root = bundle_dir or models_dir() / "default"
    bundle = Bundle.load(root)
    return Recognizer.from_bundle(bundle, RecognizerConfig(backend="onnxruntime"))


def background_images(video: Path | None = None) -> tuple[np.ndarray, ...]:
    """Street scenes (RGB uint8) for the augmentation's border fill: frames of the shared clip."""
    video = video or shared_dir() / "video" / BACKGROUND_VIDEO
    if not video.is_file():
        raise FacegateError(f"no background clip at {video} (needed by --fill-borders)")
    frames = [
        cv2.resize(f, None, fx=BACKGROUND_SCALE, fy=BACKGROUND_SCALE, interpolation=cv2.INTER_AREA)
        for f in video_frames(video, BACKGROUND_EVERY)
    ]
    if not frames:
        raise FacegateError(f"{video}: no frame could be decoded")
    return tuple(frames)


def _list(folder: Path, pattern: str) -> list[Path]:
    return sorted(p for p in folder.glob(pattern) if p.suffix.lower() in IMAGE_SUFFIXES)


def training_paths(folder: Path, limit: int | None = None) -> list[Path]:
    """The training photos, or a fixed random subset of ``limit`` of them."""
    if not folder.is_dir():
        raise FacegateError(f"no training data at {folder} (UTKFace crops expected there)")
    paths = _list(folder, "*")
    if limit is not None:
        order = np.random.default_rng(SUBSET_SEED).permutation(len(paths))[:limit]
        paths = [paths[i] for i in sorted(order)]
    if not paths:
        raise FacegateError(f"no photos in {folder}")
    return paths


def heldout_paths(faces_root: Path) -> list[Path]:
    """Every photo of every identity folder under ``faces_root`` (``_`` folders skipped)."""
    if not faces_root.is_dir():
        raise FacegateError(f"no evaluation photos at {faces_root}")
    paths = []
    for ident in sorted(p for p in faces_root.glob("*/*") if p.is_dir()):
        if not ident.name.startswith("_") and not ident.parent.name.startswith("_"):
            paths += _list(ident, "*")
    if not paths:
        raise FacegateError(f"no identity folders with photos under {faces_root}")
    return paths


def _key(rec: Recognizer, paths: list[Path]) -> str:
    from facegate.vision import align
    from facegate.vision.detect import mtcnn

    h = hashlib.sha256()
    for module in (align, mtcnn):
        h.update(Path(module.__file__).read_bytes())
    for net in (rec.detector.pnet, rec.detector.rnet, rec.detector.onet):
        h.update(sha256_file(net.path).encode())
    for p in paths:
        h.update(f"{p.parent.name}/{p.name}:{p.stat().st_size}\0".encode())
    return h.hexdigest()[:16]


def _crop(rec: Recognizer, path: Path) -> np.ndarray | None:
    try:
        image = load_image(path)
    except FacegateError as err:
        log.warning("skipped %s: %s", path.name, err)
        return None
    faces = rec.detect(image)
    if not faces:
        return None
    return rec.align(image, [max(faces, key=lambda f: f.size)])[0].crop


def aligned_crops(rec: Recognizer, paths: list[Path], kind: str) -> Crops:
    """Crops of ``paths`` (photos without a face dropped), from the cache when made before."""
    from tqdm import tqdm

    key = _key(rec, paths)
    cache = cache_dir() / "train" / f"{kind}-{key}.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            return Crops(z["crops"], [str(s) for s in z["labels"]], key)
    crops, labels = [], []
    for path in tqdm(paths, desc=f"align {kind}", unit="img"):
        crop = _crop(rec, path)
        if crop is not None:
            crops.append(crop)
            labels.append(f"{path.parent.name}/{path.name}")
    if not crops:
        raise FacegateError(f"no face found in {len(paths)} {kind} photos")
    out = Crops(np.stack(crops).astype(np.uint8), labels, key)
    ensure_private_dir(cache.parent)  # face crops and embeddings are biometric data
    tmp = cache.with_suffix(".tmp")
    with tmp.open("wb") as fh:
        np.savez(fh, crops=out.crops, labels=np.array(labels))
    tmp.chmod(0o600)
    tmp.replace(cache)
    log.info("%s: %d faces in %d photos, cached in %s", kind, len(crops), len(paths), cache)
    return out
