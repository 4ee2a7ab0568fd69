"""Face embeddings: aligned 112x112 crops -> unit vectors, preprocessing from the manifest."""

from __future__ import annotations

import logging

import numpy as np

from facegate.backends import Backend
from facegate.bundle import ModelEntry
from facegate.errors import ModelError

log = logging.getLogger(__name__)

MAX_BATCH = 32  # bounds the working memory of one embedder run


class Embedder:
    """Runs the embedding model on aligned crops (uint8 RGB) with optional test-time flip.

    ``flip`` embeds the mirrored crop too and adds the two raw outputs before normalising:
    measured about +0.2 points of verification accuracy for about twice the embedding time.
    """

    def __init__(self, backend: Backend, entry: ModelEntry, flip: bool = False) -> None:
        if entry.embedding_size is None:
            raise ModelError(f"{entry.file}: the manifest gives no embedding size")
        spec = entry.input
        if spec.layout != "NHWC":
            raise ModelError(f"{entry.file}: input layout {spec.layout} is not supported")
        self.backend, self.entry, self.flip = backend, entry, flip
        self.size = int(entry.embedding_size)
        self.height, self.width = int(spec.shape[1]), int(spec.shape[2])
        self._bgr = spec.colour.upper() == "BGR"
        self._mean, self._scale = spec.mean, 1.0 / spec.std

    @property
    def model_id(self) -> str:
        """The embedding space these vectors live in."""
        return self.entry.model_id

    def _prepare(self, crops: np.ndarray) -> np.ndarray:
        if crops.shape[1:] != (self.height, self.width, 3):
            raise ModelError(
                f"embedder expects {self.height}x{self.width} crops, got {crops.shape}"
            )
        x = crops[..., ::-1] if self._bgr else crops
        return (x.astype(np.float32) - self._mean) * self._scale

    def _raw(self, batch: np.ndarray) -> np.ndarray:
        out = self.backend.run(np.ascontiguousarray(batch))[0]
        if out.ndim != 2 or out.shape[1] != self.size:
            raise ModelError(f"{self.entry.file}: output {out.shape}, manifest says {self.size}-d")
        return out

    def embed(self, crops: np.ndarray | list[np.ndarray]) -> np.ndarray:
        """(N, 112, 112, 3) uint8 RGB crops -> (N, D) float32 unit vectors."""
        crops = np.asarray(crops)
        if crops.ndim == 3:
            crops = crops[None]
        if len(crops) == 0:
            return np.zeros((0, self.size), np.float32)
        parts = []
        step = max(1, min(MAX_BATCH, self.backend.max_batch))
        for i in range(0, len(crops), step):
            x = self._prepare(crops[i : i + step])
            raw = self._raw(x)
            if self.flip:
                raw = raw + self._raw(np.ascontiguousarray(x[:, :, ::-1]))
            parts.append(raw)
        out = np.concatenate(parts).astype(np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)
