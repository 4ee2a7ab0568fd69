"""The teacher's embeddings of every crop and of its mirror image, computed once and cached.

The teacher is the default bundle's FP32 MobileFaceNet on ONNX Runtime: the very embedding space
a gallery holds. Vectors are L2-normalised. The cache is keyed by the crops' digest and the
embedder file's sha256.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facegate.bundle import sha256_file
from facegate.converters.ir import Graph
from facegate.converters.train.faces import Crops
from facegate.host.paths import cache_dir, ensure_private_dir
from facegate.vision.recognizer import Recognizer

BATCH = 64


@dataclass(frozen=True)
class Targets:
    """Teacher embeddings (N, D) of the crops and of their mirror images."""

    plain: np.ndarray
    flipped: np.ndarray


def teacher_targets(rec: Recognizer, crops: Crops) -> Targets:
    """The teacher's unit embeddings of ``crops`` and of their mirrors (cached)."""
    from tqdm import tqdm

    model = sha256_file(rec.embedder.backend.path)[:12]
    cache = cache_dir() / "train" / f"teacher-{crops.digest}-{model}.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            return Targets(z["plain"], z["flipped"])
    plain, flipped = [], []
    for i in tqdm(range(0, len(crops.crops), BATCH), desc="teacher", unit="batch"):
        batch = crops.crops[i : i + BATCH]
        plain.append(rec.embedder.embed(batch))
        flipped.append(rec.embedder.embed(np.ascontiguousarray(batch[:, :, ::-1])))
    out = Targets(np.concatenate(plain), np.concatenate(flipped))
    ensure_private_dir(cache.parent)  # face crops and embeddings are biometric data
    tmp = cache.with_suffix(".tmp")
    with tmp.open("wb") as fh:
        np.savez(fh, plain=out.plain, flipped=out.flipped)
    tmp.chmod(0o600)
    tmp.replace(cache)
    return out


def teacher_graph(recipe_name: str = "default") -> Graph:
    """The teacher as a layer graph: the recipe's pinned MobileFaceNet, read like a build does."""
    import tempfile

    from facegate.converters import recipe, sources
    from facegate.converters.tflite_reader import read

    rec = recipe.load(recipe_name)
    m = rec.models["embedder"]
    archive = sources.fetch(rec.sources[m.source], cache_dir())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(m.member).name
        path.write_bytes(sources.read_member(archive, m.member))
        graph = read(path, "mobilefacenet")
    return graph
