"""The public recognition API: image -> faces -> aligned crops -> embeddings -> matches.

The CLI, the evaluator and the daemon all go through :class:`Recognizer`. It offers each stage
on its own (``detect``, ``align``, ``embed_aligned``, ``match``, ``quality``) for the service's
pipeline, which decides between the stages which faces are worth the next one, and the whole
chain (``identify``) for one-shot use. Images are frame-contract RGB (``facegate.types.Frame``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from facegate.backends.onnxruntime import DEFAULT_PROVIDERS, Providers
from facegate.bundle import Bundle
from facegate.errors import ConfigError
from facegate.gallery.match import ExactMatcher, Matcher, decide
from facegate.gallery.store import GallerySnapshot
from facegate.host.memory import keep_frame_buffers
from facegate.types import AlignedFace, Face, FaceResult, Match
from facegate.vision.align import align
from facegate.vision.detect.mtcnn import MTCNN, MTCNNConfig
from facegate.vision.embed import Embedder
from facegate.vision.quality import FaceQuality, head_pose, sharpness

log = logging.getLogger(__name__)

# Cosine similarity at or above which two faces are called the same person. Measured with
# `facegate eval` on every labelled photo of ../shared/faces (119 images, 27 people, 249 genuine
# and 6,772 impostor pairs, FP32): at 0.44 FAR 0.25% with TAR 100%; FAR 1e-3 needs 0.502; the
# lowest genuine pair scores 0.489 and the best-accuracy threshold is 0.538 (99.94%). On an
# LFW-style benchmark this MobileFaceNet needs about 0.44 for FAR 1e-3. Video frames score lower
# than photos (the Hamilton clip names Lin-Manuel Miranda at 0.49), and the daemon asks for
# several agreeing frames, so 0.44 is the default; raise it where false accepts cost more.
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
    providers: Providers = field(default_factory=Providers)  # onnxruntime execution providers


def prepare_process(threads: int) -> None:
    """Process settings for a frame loop: OpenCV's thread count, kept frame buffers.

    OpenCV's pool gets the inference thread count: its work here is resampling and warps of
    small images, where a second pool thread mostly waits to be woken (measured with two:
    640x480 detection 1.07x slower, single calls stalling up to 40 ms).
    """
    cv2.setNumThreads(threads)
    keep_frame_buffers()


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


def model_format(config: RecognizerConfig) -> str:
    """The model format; execution providers other than the CPU are onnxruntime's, so ``auto``
    means ONNX when they are asked for."""
    if config.providers.names == DEFAULT_PROVIDERS:
        return resolve_format(config.backend)
    if config.backend == "litert":
        raise ConfigError("execution providers are onnxruntime's: use --backend onnxruntime")
    return resolve_format("onnxruntime")


class Recognizer:
    """Detects, aligns, embeds and matches faces with one bundle and one gallery snapshot."""

    def __init__(self, detector: MTCNN, embedder: Embedder, config: RecognizerConfig) -> None:
        self.detector, self.embedder, self.config = detector, embedder, config
        self.matcher: Matcher | None = None

    @classmethod
    def from_bundle(cls, bundle: Bundle, config: RecognizerConfig | None = None) -> Recognizer:
        """Open the bundle's detector and embedder for the configured backend and precision."""
        config = config or RecognizerConfig()
        fmt = model_format(config)
        prepare_process(config.threads)
        threads, providers = config.threads, config.providers
        nets = [
            bundle.open(bundle.entry(r, fmt, config.precision), threads, providers)
            for r in ("pnet", "rnet", "onet")
        ]
        entry = bundle.entry("embedder", fmt, config.precision)
        embedder = Embedder(bundle.open(entry, threads, providers), entry, config.flip)
        rec = cls(MTCNN(*nets, config=config.detector), embedder, config)
        log.info(
            "recognizer: %s %s, embedder %s, provider %s",
            fmt,
            config.precision,
            entry.file,
            rec.provider,
        )
        return rec

    @property
    def provider(self) -> str:
        """Where the embedder runs: onnxruntime's execution provider, or the runtime's name."""
        backend = self.embedder.backend
        return str(getattr(backend, "provider", backend.name))

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

    def detect(self, image: np.ndarray, detector: MTCNN | None = None) -> list[Face]:
        """Faces in an RGB image, detected on a copy no larger than ``max_side``.

        ``detector``: another view of this recognizer's networks (a camera's own pyramid).
        """
        detector = self.detector if detector is None else detector
        scale = min(1.0, self.config.max_side / max(image.shape[:2]))
        if scale >= 1.0:
            return detector.detect(image)
        size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        return [
            Face(tuple(v / scale for v in f.box), f.score, f.landmarks / scale)
            for f in detector.detect(small)
        ]

    def align(self, image: np.ndarray, faces: Sequence[Face]) -> list[AlignedFace]:
        """The 112x112 aligned crop of each face."""
        return [align(image, f) for f in faces]

    def embed_aligned(self, aligned: Sequence[AlignedFace]) -> np.ndarray:
        """Embeddings (N, D), L2-normalised, of aligned crops."""
        return self.embedder.embed([a.crop for a in aligned])

    def embed(self, image: np.ndarray, faces: list[Face]) -> tuple[list[AlignedFace], np.ndarray]:
        """Aligned crops and their embeddings for ``faces`` of ``image``."""
        aligned = self.align(image, faces)
        return aligned, self.embed_aligned(aligned)

    def search(self, embeddings: np.ndarray) -> list[list[Match]]:
        """The top-k gallery candidates of each embedding ([] each without a gallery)."""
        if self.matcher is None or len(embeddings) == 0:
            return [[] for _ in range(len(embeddings))]
        return self.matcher.search(embeddings)

    def match(self, embeddings: np.ndarray) -> list[Match | None]:
        """The gallery person of each embedding, or None (unknown) under the threshold."""
        return [decide(c, self.config.threshold) for c in self.search(embeddings)]

    @staticmethod
    def quality(aligned: AlignedFace) -> FaceQuality:
        """Size, sharpness and head pose of one aligned face."""
        face = aligned.face
        return FaceQuality(face.size, sharpness(aligned.crop), head_pose(face.landmarks))

    def identify(self, image: np.ndarray) -> list[FaceResult]:
        """Every face in ``image`` with its embedding and best gallery match (or unknown)."""
        faces = self.detect(image)
        _, embeddings = self.embed(image, faces)
        return [
            FaceResult(f, e, decide(m, self.config.threshold), tuple(m))
            for f, e, m in zip(faces, embeddings, self.search(embeddings), strict=True)
        ]
