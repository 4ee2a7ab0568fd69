"""Verification accuracy of facegate and the peer on the same photos and the same pairs.

The labelled photos of ../shared/faces: face_recognition/ and bbt/ by folder, deepface/ by its
labels.csv; folders starting with "_" are skipped, and so is obama_resolution_variants/ (one
photo at four sizes: its pairs would be the same picture, not the same person). Every genuine and
every impostor pair is scored; folds are assigned after a seeded shuffle. Both systems detect on
a copy no larger than facegate's MAX_DETECT_SIDE (1920 px) and embed the largest face.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.common import FACES, recognizer, tracked
from benchmarks.workers import Worker
from facegate.evaluate import metrics
from facegate.evaluate.dataset import (
    Dataset,
    assign_folds,
    genuine_pairs,
    impostor_pairs,
    parse_pairs,
    scan,
    with_pair_images,
)
from facegate.evaluate.run import embed_images
from facegate.vision.recognizer import MAX_DETECT_SIDE

FAR = 1e-2
SEED = 0
SKIP_FOLDERS = ("obama_resolution_variants",)
SHARED_SETS = ("face_recognition", "bbt", "deepface")


@dataclass(frozen=True, slots=True)
class PairSet:
    """Images and the pairs over them, with LFW-style folds."""

    name: str
    paths: tuple[Path, ...]
    a: np.ndarray
    b: np.ndarray
    same: np.ndarray
    folds: np.ndarray


def shared_pairs() -> PairSet:
    """All genuine and impostor pairs over the labelled photos of ../shared/faces."""
    paths: list[Path] = []
    labels: list[str] = []
    for name in SHARED_SETS:
        data = scan(FACES / name)
        for path, label in zip(data.paths, data.labels, strict=True):
            if label not in SKIP_FOLDERS:
                paths.append(path)
                labels.append(f"{name}/{label}")
    ids = np.unique(np.asarray(labels), return_inverse=True)[1]
    ga, gb, _ = genuine_pairs(ids)
    ia, ib, _ = impostor_pairs(ids)
    a, b = np.concatenate([ga, ia]), np.concatenate([gb, ib])
    same = np.concatenate([np.ones(len(ga), bool), np.zeros(len(ia), bool)])
    order = np.random.default_rng(SEED).permutation(len(a))
    a, b, same = a[order], b[order], same[order]
    return PairSet("shared/faces", tuple(paths), a, b, same, assign_folds(same))


def lfw_pairs(root: Path, pairs_file: Path) -> PairSet:
    """The pairs of an LFW-style ``pairs.txt`` over the folder ``root``, with its own folds."""
    pairs = parse_pairs(pairs_file, root)
    data, idx = with_pair_images(Dataset(root, (), (), "pairs"), pairs)
    return PairSet(f"LFW-style {root.name}", data.paths, idx.a, idx.b, idx.same, idx.folds)


def facegate_vectors(paths: tuple[Path, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Unit embeddings (onnxruntime fp32) and which images gave one."""
    emb = embed_images(recognizer("onnxruntime", "fp32"), paths)
    return emb.vectors, emb.valid


def peer_vectors(worker: Worker, paths: tuple[Path, ...]) -> tuple[np.ndarray, np.ndarray]:
    """128-d dlib encodings (zeros where no face) and which images gave one."""
    vectors = np.zeros((len(paths), 128), np.float64)
    valid = np.zeros(len(paths), bool)
    for k, path in tracked(list(enumerate(paths)), "peer: encoding photos"):
        reply = worker.request("embed", path=str(path), max_side=MAX_DETECT_SIDE)
        if reply["encoding"] is not None:
            vectors[k], valid[k] = reply["encoding"], True
    return vectors, valid


def score(pairs: PairSet, vectors: np.ndarray, valid: np.ndarray, kind: str) -> dict:
    """10-fold accuracy, TAR@FAR and failures for one system's vectors on ``pairs``."""
    if kind == "cosine":
        s = np.sum(vectors[pairs.a] * vectors[pairs.b], axis=1)
    else:  # face_recognition compares Euclidean distances: higher score = more alike
        s = -np.linalg.norm(vectors[pairs.a] - vectors[pairs.b], axis=1)
    ok = valid[pairs.a] & valid[pairs.b]
    fold = metrics.kfold_accuracy(s, pairs.same, pairs.folds, ok)
    g, i = s[ok & pairs.same], s[ok & ~pairs.same]
    tar = metrics.tar_at_far(g, i, FAR) if len(g) and len(i) else None
    return {
        "accuracy": fold.mean if fold else None,
        "accuracy_std": fold.std if fold else None,
        "accuracy_failures_wrong": fold.mean_with_failures if fold else None,
        "threshold": (fold.threshold if kind == "cosine" else -fold.threshold) if fold else None,
        "tar_at_far_1e-2": tar[0] if tar else None,
        "auc": metrics.auc(metrics.roc(g, i)) if len(g) and len(i) else None,
        "images_failed": int((~valid).sum()),
        "failed": [str(p) for p, v in zip(pairs.paths, valid, strict=True) if not v],
        "pairs_scored": int(ok.sum()),
    }


def compare(pairs: PairSet, worker: Worker) -> dict:
    """Both systems on ``pairs``; also both restricted to the pairs both could score."""
    fv, fok = facegate_vectors(pairs.paths)
    pv, pok = peer_vectors(worker, pairs.paths)
    both = fok & pok
    return {
        "name": pairs.name,
        "images": len(pairs.paths),
        "genuine_pairs": int(pairs.same.sum()),
        "impostor_pairs": int((~pairs.same).sum()),
        "folds": len(np.unique(pairs.folds)),
        "facegate": score(pairs, fv, fok, "cosine"),
        "peer": score(pairs, pv, pok, "euclidean"),
        "facegate_common": score(pairs, fv, both, "cosine"),
        "peer_common": score(pairs, pv, both, "euclidean"),
    }
