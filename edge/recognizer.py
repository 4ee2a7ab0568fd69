"""The public recognition API: image -> faces -> aligned crops -> embeddings -> matches.

The CLI, the evaluator and the daemon all go through :class:`Recognizer`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import cv2
import numpy as np

from edge.align import align
from edge.bundle import Bundle
from edge.detect.mtcnn import MTCNN, MTCNNConfig
from edge.embed import Embedder
from edge.errors import ConfigError
from edge.gallery.match import ExactMatcher, Matcher, decide
from edge.gallery.store import GallerySnapshot
from edge.types import AlignedFace, Face, FaceResult

log = logging.getLogger(__name__)

# Cosine similarity at or above which two faces are called the same person. Chosen from the ROC
# measured by `facegate eval` (README, "Accuracy"): on an LFW-style benchmark with this
# MobileFaceNet a FAR of 1e-3 needs about 0.44, the best-accuracy threshold lies at 0.36-0.39,
# and on ../shared/faces no two different people reached 0.55 while same-person pairs rarely
# fall below 0.45. 0.44 keeps false accepts near 1e-3.
DEFAULT_THRESHOLD = 0.44
MAX_DETECT_SIDE = 1920  # larger photos are detected on a downscaled copy, aligned at full size
BACKENDS = {"onnxruntime": "onnx", "litert": "tflite"}


@dataclass(frozen=True, slots=True)
class RecognizerConfig:
    """Everything that tunes recognition; defaults are the measured ones."""

    backend: str = "auto"  # auto | onnxruntime | litert
    precision: str = "fp32"  # fp32 | fp16 | int8 (falls back to fp32 per model if not bundled)
    threads: int = 1
    detector: MTCNNConfig = field(default_factory=MTCNNConfig)
    threshold: float = DEFAULT_THRESHOLD
    flip: bool = False
    top_k: int = 3
    strategy: str = "best"  # best template per person, or "mean" template
    max_side: int = MAX_DETECT_SIDE


def resolve_format(backend: str) -> str:
    """Map a backend name to a model format; ``auto`` picks LiteRT when it is installed."""
    if backend == "auto":
        try:
            import ai_edge_litert.interpreter  # noqa: F401
        except ImportError:
            return "onnx"
        return "tflite"
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r} (use auto, onnxruntime or litert)")
    return BACKENDS[backend]


class Recognizer:
    """Detects, aligns, embeds and matches faces with one bundle and one gallery snapshot."""

    def __init__(self, detector: MTCNN, embedder: Embedder, config: RecognizerConfig) -> None:
        self.detector, self.embedder, self.config = detector, embedder, config
        self.matcher: Matcher | None = None

    @classmethod
    def from_bundle(cls, bundle: Bundle, config: RecognizerConfig | None = None) -> Recognizer:
        """Open the bundle's detector and embedder for the configured backend and precision."""
        config = config or RecognizerConfig()
        fmt = resolve_format(config.backend)
        nets = [
            bundle.open(bundle.entry(r, fmt, config.precision), config.threads)
            for r in ("pnet", "rnet", "onet")
        ]
        entry = bundle.entry("embedder", fmt, config.precision)
        embedder = Embedder(bundle.open(entry, config.threads), entry, config.flip)
        log.info("recognizer: %s %s, embedder %s", fmt, config.precision, entry.file)
        return cls(MTCNN(*nets, config=config.detector), embedder, config)

    @property
    def model_id(self) -> str:
        """The embedding space of this recognizer (galleries must match it)."""
        return self.embedder.model_id

    def set_gallery(self, snapshot: GallerySnapshot | None) -> None:
        """Match against ``snapshot`` from now on (None: every face is unknown)."""
        if snapshot is None or len(snapshot.names) == 0:
            self.matcher = None
            return
        self.matcher = ExactMatcher(
            snapshot, top_k=self.config.top_k, strategy=self.config.strategy
        )

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in an RGB image, detected on a copy no larger than ``max_side``."""
        scale = min(1.0, self.config.max_side / max(image.shape[:2]))
        if scale >= 1.0:
            return self.detector.detect(image)
        size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        return [
            Face(tuple(v / scale for v in f.box), f.score, f.landmarks / scale)
            for f in self.detector.detect(small)
        ]

    def align_face(self, image: np.ndarray, face: Face) -> AlignedFace:
        """The 112x112 aligned crop of one face."""
        return align(image, face)

    def embed(self, image: np.ndarray, faces: list[Face]) -> tuple[list[AlignedFace], np.ndarray]:
        """Aligned crops and their embeddings for ``faces`` of ``image``."""
        aligned = [align(image, f) for f in faces]
        return aligned, self.embedder.embed([a.crop for a in aligned])

    def identify(self, image: np.ndarray) -> list[FaceResult]:
        """Every face in ``image`` with its embedding and best gallery match (or unknown)."""
        faces = self.detect(image)
        _, embeddings = self.embed(image, faces)
        matches = (
            self.matcher.search(embeddings) if self.matcher and len(faces) else [[] for _ in faces]
        )
        return [
            FaceResult(f, e, decide(m, self.config.threshold), tuple(m))
            for f, e, m in zip(faces, embeddings, matches, strict=True)
        ]
