"""Evaluation data: a folder per identity (LFW layout) or ``labels.csv``, LFW pairs files, pairs.

Folders whose names start with ``_`` or ``.`` are not identities; files that are not images are
counted and skipped. Pair lists are index arrays into :attr:`Dataset.paths`.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facegate.errors import FacegateError
from facegate.evaluate.metrics import N_FOLDS, distinct

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
LABELS_FILE = "labels.csv"
MAX_PAIRS = 5_000_000  # per class; above this, pairs are sampled (5M scores: ~1 s, 40 MB)
BALANCED_PER_CLASS = 3000  # generated verification pairs per class, as in LFW View 2
SEED = 0  # every sample is reproducible


@dataclass(frozen=True, slots=True)
class Dataset:
    """Images with their identity labels, in the order they are embedded."""

    root: Path
    paths: tuple[Path, ...]
    labels: tuple[str, ...]
    source: str  # "folders" or "labels.csv"
    ignored: int = 0  # files skipped because they are not images

    def label_ids(self) -> np.ndarray:
        """Integer identity per image (sorted name order)."""
        return np.unique(np.asarray(self.labels), return_inverse=True)[1].astype(np.int64)

    @property
    def identities(self) -> int:
        """Number of distinct identities."""
        return len(set(self.labels))


@dataclass(frozen=True, slots=True)
class Pair:
    """One verification pair from a pairs file."""

    first: Path
    second: Path
    same: bool
    fold: int


@dataclass(frozen=True, slots=True)
class IndexPairs:
    """Verification pairs as indices into a dataset, with their class and fold."""

    a: np.ndarray
    b: np.ndarray
    same: np.ndarray
    folds: np.ndarray


def _is_identity(path: Path) -> bool:
    return path.is_dir() and not path.name.startswith(("_", "."))


def _scan_folders(root: Path) -> Dataset:
    paths, labels, ignored = [], [], 0
    for folder in sorted(p for p in root.iterdir() if _is_identity(p)):
        for file in sorted(f for f in folder.iterdir() if f.is_file()):
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                ignored += 1
                continue
            paths.append(file)
            labels.append(folder.name)
    return Dataset(root, tuple(paths), tuple(labels), "folders", ignored)


def _read_labels(root: Path) -> Dataset:
    path = root / LABELS_FILE
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if rows and not {"identity", "file"} <= set(rows[0]):
        raise FacegateError(f"{path}: needs the columns 'identity,file', has {','.join(rows[0])}")
    paths, missing = [], []
    for row in rows:
        name, file = row["identity"].strip(), row["file"].strip()
        found = next((p for p in (root / file, root / name / file) if p.is_file()), None)
        paths.append(found)
        if found is None:
            missing.append(file)
    if missing:
        raise FacegateError(
            f"{path}: {len(missing)} listed file(s) not found, the first: {missing[0]}"
        )
    labels = tuple(row["identity"].strip() for row in rows)
    return Dataset(root, tuple(paths), labels, LABELS_FILE)


def scan(root: Path | str, exclude: tuple[str, ...] = ()) -> Dataset:
    """The images under ``root``: per ``labels.csv`` (identity,file) if present, else by folder.

    ``exclude`` drops identities by name (e.g. a folder that is not a person).
    """
    root = Path(root)
    if not root.is_dir():
        raise FacegateError(f"{root}: no such folder")
    data = _read_labels(root) if (root / LABELS_FILE).is_file() else _scan_folders(root)
    if exclude:
        keep = [i for i, label in enumerate(data.labels) if label not in exclude]
        data = Dataset(
            data.root,
            tuple(data.paths[i] for i in keep),
            tuple(data.labels[i] for i in keep),
            data.source,
            data.ignored,
        )
    if not data.paths:
        raise FacegateError(
            f"{root}: no images found (expected a folder per identity, or {LABELS_FILE})"
        )
    log.info(
        "%s: %d images of %d identities (%s)", root, len(data.paths), data.identities, data.source
    )
    return data


def _image(root: Path, name: str, number: str) -> Path:
    return root / name / f"{name}_{int(number):04d}.jpg"


def _pair_line(tokens: list[str], root: Path) -> tuple[Path, Path, bool]:
    if len(tokens) == 3 and tokens[1].isdigit() and tokens[2].isdigit():
        return _image(root, tokens[0], tokens[1]), _image(root, tokens[0], tokens[2]), True
    if len(tokens) == 4 and tokens[1].isdigit() and tokens[3].isdigit():
        return _image(root, tokens[0], tokens[1]), _image(root, tokens[2], tokens[3]), False
    raise ValueError(" ".join(tokens))


def _header(rows: list[tuple[int, list[str]]]) -> tuple[int, int] | None:
    """(folds, pairs per class per fold) from a "10 300" or "1100" first line, else None."""
    tokens = rows[0][1] if rows else []
    if not tokens or len(tokens) > 2 or not all(t.isdigit() for t in tokens):
        return None
    return (int(tokens[0]), int(tokens[1])) if len(tokens) == 2 else (1, int(tokens[0]))


def _folds(same: list[bool], header: tuple[int, int] | None, path: Path) -> np.ndarray:
    if header is None or header[0] == 1:
        return assign_folds(np.asarray(same, bool))
    folds, per_class = header
    if len(same) != folds * 2 * per_class:
        raise FacegateError(
            f"{path}: the header says {folds} folds of 2 x {per_class} pairs "
            f"({folds * 2 * per_class}), the file has {len(same)}"
        )
    return np.arange(len(same)) // (2 * per_class)


def parse_pairs(path: Path | str, root: Path | str) -> list[Pair]:
    """Read an LFW ``pairs.txt`` (with or without its header); every image must exist."""
    path, root = Path(path), Path(root)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise FacegateError(f"{path}: no such pairs file") from err
    rows = [(n, line.split()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    header = _header(rows)
    parsed = []
    for n, tokens in rows[1:] if header else rows:
        try:
            parsed.append((n, *_pair_line(tokens, root)))
        except ValueError:
            raise FacegateError(
                f"{path}, line {n}: expected 'name n1 n2' or "
                f"'name1 n1 name2 n2', got {' '.join(tokens)!r}"
            ) from None
    if not parsed:
        raise FacegateError(f"{path}: no pairs")
    missing = [(n, p) for n, a, b, _ in parsed for p in (a, b) if not p.is_file()]
    if missing:
        raise FacegateError(
            f"{path}: {len(missing)} image(s) it names are missing, the first: "
            f"{missing[0][1]} (line {missing[0][0]})"
        )
    folds = _folds([s for *_, s in parsed], header, path)
    return [Pair(a, b, s, int(f)) for (_, a, b, s), f in zip(parsed, folds, strict=True)]


def with_pair_images(data: Dataset, pairs: list[Pair]) -> tuple[Dataset, IndexPairs]:
    """The dataset extended by any pair image it lacks, and the pairs as indices into it."""
    index = {p.resolve(): i for i, p in enumerate(data.paths)}
    paths, labels = list(data.paths), list(data.labels)
    for p in (q for pair in pairs for q in (pair.first, pair.second)):
        if p.resolve() not in index:
            index[p.resolve()] = len(paths)
            paths.append(p)
            labels.append(p.parent.name)
    extended = Dataset(data.root, tuple(paths), tuple(labels), data.source, data.ignored)
    a = np.array([index[p.first.resolve()] for p in pairs], np.int64)
    b = np.array([index[p.second.resolve()] for p in pairs], np.int64)
    same = np.array([p.same for p in pairs], bool)
    return extended, IndexPairs(a, b, same, np.array([p.fold for p in pairs], np.int64))


def assign_folds(same: np.ndarray, n_folds: int = N_FOLDS) -> np.ndarray:
    """Contiguous folds per class in the given order, as many as the smaller class allows."""
    same = np.asarray(same, bool)
    n_folds = max(1, min(n_folds, int(same.sum()), int((~same).sum())))
    folds = np.zeros(len(same), np.int64)
    for cls in (True, False):
        where = np.flatnonzero(same == cls)
        folds[where] = np.arange(len(where)) * n_folds // max(1, len(where))
    return folds


def _random_pairs(rng: np.random.Generator, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    a = rng.integers(0, n, m)
    b = rng.integers(0, n - 1, m)
    b += b >= a
    return np.minimum(a, b), np.maximum(a, b)


def _unique_pairs(a: np.ndarray, b: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    codes = distinct(a * n + b)
    return codes // n, codes % n


def genuine_pairs(
    labels: np.ndarray, limit: int = MAX_PAIRS, seed: int = SEED
) -> tuple[np.ndarray, np.ndarray, bool]:
    """All same-identity index pairs (i < j), or a seeded sample of ``limit``; and if sampled."""
    labels = np.asarray(labels)
    groups = [np.flatnonzero(labels == k) for k in np.unique(labels)]
    total = sum(len(g) * (len(g) - 1) // 2 for g in groups)
    rng, parts = np.random.default_rng(seed), []
    for g in (g for g in groups if len(g) > 1):
        if total <= limit:
            i, j = np.triu_indices(len(g), 1)
        else:  # each identity keeps its share of the sample
            share = max(1, round(limit * len(g) * (len(g) - 1) / 2 / total))
            i, j = _unique_pairs(*_random_pairs(rng, len(g), share), len(g))
        parts.append((g[i], g[j]))
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), False
    return (
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        total > limit,
    )


def _all_impostors(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    parts = []
    for k in np.unique(labels):
        mine, later = np.flatnonzero(labels == k), np.flatnonzero(labels > k)
        a, b = np.meshgrid(mine, later, indexing="ij")
        parts.append((np.minimum(a, b).ravel(), np.maximum(a, b).ravel()))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def impostor_pairs(
    labels: np.ndarray, limit: int = MAX_PAIRS, seed: int = SEED
) -> tuple[np.ndarray, np.ndarray, bool]:
    """All different-identity index pairs, or a seeded sample of ``limit``; and if sampled."""
    labels = np.asarray(labels)
    n, counts = len(labels), np.unique(labels, return_counts=True)[1]
    total = (n * n - int(np.sum(counts.astype(np.int64) ** 2))) // 2
    if total <= limit:
        return (
            (*_all_impostors(labels), False)
            if total
            else (np.zeros(0, np.int64), np.zeros(0, np.int64), False)
        )
    rng = np.random.default_rng(seed)
    a, b = np.zeros(0, np.int64), np.zeros(0, np.int64)
    while len(a) < limit:
        x, y = _random_pairs(rng, n, 2 * limit)
        keep = labels[x] != labels[y]
        a, b = _unique_pairs(np.concatenate((a, x[keep])), np.concatenate((b, y[keep])), n)
    pick = np.sort(rng.choice(len(a), limit, replace=False))
    return a[pick], b[pick], True


def balanced_pairs(
    genuine: tuple[np.ndarray, np.ndarray],
    impostor: tuple[np.ndarray, np.ndarray],
    per_class: int = BALANCED_PER_CLASS,
    seed: int = SEED,
) -> IndexPairs:
    """LFW-style verification pairs: as many of each class (seeded sample), in 10 folds."""
    rng = np.random.default_rng(seed)
    k = min(per_class, len(genuine[0]), len(impostor[0]))
    g = np.sort(rng.choice(len(genuine[0]), k, replace=False))
    i = np.sort(rng.choice(len(impostor[0]), k, replace=False))
    same = np.concatenate((np.ones(k, bool), np.zeros(k, bool)))
    order = rng.permutation(2 * k)
    a = np.concatenate((genuine[0][g], impostor[0][i]))[order]
    b = np.concatenate((genuine[1][g], impostor[1][i]))[order]
    return IndexPairs(a, b, same[order], assign_folds(same[order]))
