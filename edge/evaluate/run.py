"""``evaluate``: embed a labelled dataset once, then score verification and identification.

Nothing is dropped silently: unreadable images, images without a face and the pairs they spoil
are counted in the report, and figures that the data cannot support say so instead of a number.
"""

from __future__ import annotations

import io
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from facegate.errors import FacegateError
from facegate.evaluate import metrics
from facegate.evaluate.dataset import (
    BALANCED_PER_CLASS,
    SEED,
    IndexPairs,
    balanced_pairs,
    genuine_pairs,
    impostor_pairs,
    parse_pairs,
    scan,
    with_pair_images,
)
from facegate.evaluate.embed import Embeddings, embed_images
from facegate.host.permissions import write_private
from facegate.text import display_path
from facegate.vision.recognizer import BACKENDS, Recognizer

log = logging.getLogger(__name__)

CURVE_POINTS = 200  # ROC points kept for the plot and the JSON (log-spaced in FAR)
CHUNK = 100_000  # pairs (or probes x gallery / 50) scored at a time: bounds working memory
BACKEND_OF = {fmt: name for name, fmt in BACKENDS.items()}  # model format -> runtime name
GENERATED = f"generated: up to {BALANCED_PER_CLASS} pairs per class from all pairs (seed {SEED})"


@dataclass(frozen=True, slots=True)
class FarPoint:
    """TAR and threshold at one FAR, or why it cannot be measured."""

    far: float
    tar: float | None
    threshold: float | None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Scores:
    """All-pairs verification over the dataset: counts, distribution, ROC summary."""

    genuine: int
    impostor: int
    failed_genuine: int  # pairs left out because an image had no usable face
    failed_impostor: int
    sampled: str | None  # how pairs were subsampled, None when all were used
    genuine_min: float | None = None
    genuine_median: float | None = None
    impostor_max: float | None = None
    impostor_p999: float | None = None
    auc: float | None = None
    best_accuracy: float | None = None
    best_threshold: float | None = None
    far_points: tuple[FarPoint, ...] = ()
    threshold_far: float | None = None  # FAR and TAR at the configured threshold
    threshold_tar: float | None = None
    curve_far: tuple[float, ...] = ()
    curve_tar: tuple[float, ...] = ()
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Verification:
    """10-fold verification accuracy (LFW protocol) on a pairs file or generated pairs."""

    source: str
    pairs: int
    failed_pairs: int
    folds: int
    accuracy: float | None = None  # failed pairs excluded
    accuracy_std: float | None = None
    accuracy_with_failures: float | None = None  # failed pairs counted as wrong
    accuracy_with_failures_std: float | None = None
    threshold: float | None = None  # mean of the per-fold thresholds
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Identification:
    """Closed-set rank-1 and open-set DIR with the first image of each identity as gallery."""

    gallery: int
    distractors: int  # gallery identities without probes
    probes: int
    failed_probes: int
    rank1: float | None = None
    rank1_with_failures: float | None = None
    far: float | None = None
    dir: float | None = None
    dir_threshold: float | None = None
    threshold: float | None = None  # the configured one
    dir_at_threshold: float | None = None
    fpir_at_threshold: float | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class EvalReport:
    """Everything ``facegate eval`` measured, JSON-ready through :meth:`as_dict`."""

    dataset: str
    source: str
    identities: int
    images: int
    embedded: int
    ignored_files: int
    unreadable: tuple[tuple[str, str], ...]
    no_face: tuple[str, ...]
    multi_face: int
    face: str  # which face of a photo with several was used: centre | largest
    face_reason: str
    face_differs: int  # images where the other rule would have used another face
    model_id: str
    bundle: str | None
    backend: str
    precision: str
    embedder_precision: str
    flip: bool
    threshold: float
    seconds: float
    images_per_s: float
    scores: Scores
    verification: Verification | None
    identification: Identification | None

    def as_dict(self) -> dict:
        """A JSON-serialisable dict (no NaN: absent figures are null with a note)."""
        return asdict(self)


def pair_scores(vectors: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each index pair (vectors are unit length), in float64."""
    out = np.empty(len(a), np.float64)
    for s in range(0, len(a), CHUNK):
        x, y = vectors[a[s : s + CHUNK]], vectors[b[s : s + CHUNK]]
        out[s : s + CHUNK] = np.einsum("ij,ij->i", x, y, dtype=np.float64)
    return out


def _unreachable(n: int, what: str, far: float) -> str:
    return f"not reachable: {n:,} {what}, at least {int(np.ceil(1 / far - 1e-9)):,} needed"


def _far_point(genuine: np.ndarray, impostor: np.ndarray, far: float) -> FarPoint:
    found = metrics.tar_at_far(genuine, impostor, far)
    if found is None:
        return FarPoint(far, None, None, _unreachable(len(impostor), "impostor pairs", far))
    return FarPoint(far, *found)


def _roc_figures(g: np.ndarray, i: np.ndarray, fars: tuple[float, ...], threshold: float) -> dict:
    curve = metrics.roc(g, i)
    acc, best = metrics.best_accuracy(g, i)
    far_t, tar_t = metrics.rates_at(g, i, threshold)
    curve_far, curve_tar = metrics.thin(curve, CURVE_POINTS)
    return dict(
        genuine_min=float(g.min()),
        genuine_median=float(np.median(g)),
        impostor_max=float(i.max()),
        impostor_p999=float(np.percentile(i, 99.9)),
        auc=metrics.auc(curve),
        best_accuracy=acc,
        best_threshold=best,
        far_points=tuple(_far_point(g, i, f) for f in fars),
        threshold_far=far_t,
        threshold_tar=tar_t,
        curve_far=curve_far,
        curve_tar=curve_tar,
    )


def score_pairs(
    emb: Embeddings, labels: np.ndarray, fars: tuple[float, ...], threshold: float
) -> tuple[Scores, tuple, tuple]:
    """All genuine and impostor pairs (sampled above the limit): ROC, TAR@FAR, distribution."""
    gen, imp = genuine_pairs(labels), impostor_pairs(labels)
    ok_g = emb.valid[gen[0]] & emb.valid[gen[1]]
    ok_i = emb.valid[imp[0]] & emb.valid[imp[1]]
    g = pair_scores(emb.vectors, gen[0][ok_g], gen[1][ok_g])
    i = pair_scores(emb.vectors, imp[0][ok_i], imp[1][ok_i])
    sampled = "; ".join(
        f"{name} pairs: a seeded sample (seed {SEED}) of {len(p[0]):,}"
        for name, p in (("genuine", gen), ("impostor", imp))
        if p[2]
    )
    base = dict(
        genuine=len(g),
        impostor=len(i),
        failed_genuine=int((~ok_g).sum()),
        failed_impostor=int((~ok_i).sum()),
        sampled=sampled or None,
    )
    if len(g) == 0 or len(i) == 0:
        note = "no ROC: needs at least one genuine and one impostor pair with both faces found"
        return Scores(**base, note=note), gen[:2], imp[:2]
    return Scores(**base, **_roc_figures(g, i, fars, threshold)), gen[:2], imp[:2]


def verify_pairs(emb: Embeddings, pairs: IndexPairs, source: str) -> Verification:
    """10-fold accuracy over ``pairs``; a pair with a failed image is failed."""
    ok = emb.valid[pairs.a] & emb.valid[pairs.b]
    scores = np.zeros(len(ok))
    scores[ok] = pair_scores(emb.vectors, pairs.a[ok], pairs.b[ok])
    base = dict(
        source=source,
        pairs=len(ok),
        failed_pairs=int((~ok).sum()),
        folds=len(np.unique(pairs.folds)),
    )
    k = metrics.kfold_accuracy(scores, pairs.same, pairs.folds, ok)
    if k is None:
        return Verification(
            **base,
            note="no cross-validated accuracy: needs 2 or more folds with pairs of both classes",
        )
    return Verification(
        **base,
        accuracy=k.mean,
        accuracy_std=k.std,
        threshold=k.threshold,
        accuracy_with_failures=k.mean_with_failures,
        accuracy_with_failures_std=k.std_with_failures,
    )


def identify(emb: Embeddings, labels: np.ndarray, far: float, threshold: float) -> Identification:
    """Rank-1 (closed set) and DIR at ``far`` (open set, leave-own-identity-out searches)."""
    gallery, probes, failed, distractors = metrics.split_gallery(labels, emb.valid)
    base = dict(
        gallery=len(gallery),
        distractors=distractors,
        probes=len(probes),
        failed_probes=failed,
        far=far,
        threshold=threshold,
    )
    if len(probes) == 0 or len(gallery) < 2:
        return Identification(
            **base, note="no identification: needs a probe and 2 or more gallery identities"
        )
    mated, nonmated = metrics.searches(emb.vectors, labels, gallery, probes)
    hits = metrics.rank1(mated, nonmated)
    found = metrics.dir_at_far(mated, nonmated, far)
    dir_t, fpir_t = metrics.open_set_at(mated, nonmated, threshold)
    note = None if found else "DIR " + _unreachable(len(probes), "non-mated searches", far)
    dir_rate, dir_threshold = found or (None, None)
    return Identification(
        **base,
        rank1=hits,
        dir=dir_rate,
        dir_threshold=dir_threshold,
        rank1_with_failures=hits * len(probes) / (len(probes) + failed),
        dir_at_threshold=dir_t,
        fpir_at_threshold=fpir_t,
        note=note,
    )


def evaluate(
    rec: Recognizer,
    root: Path | str,
    pairs_file: Path | str | None = None,
    far: float = 1e-3,
    progress: bool = True,
    bundle: str | None = None,
    exclude: tuple[str, ...] = (),
    face: str | None = None,
) -> EvalReport:
    """Embed every image of ``root`` once and measure verification and identification.

    ``face`` picks the face of a photo with several: centre, largest, or None for the rule
    that fits the folder's layout (see :mod:`facegate.evaluate.embed`).
    """
    if not 0.0 < far < 1.0:
        raise ValueError("far must be between 0 and 1")
    data, listed = scan(root, exclude), None
    if pairs_file is not None:
        data, listed = with_pair_images(data, parse_pairs(pairs_file, data.root))
    emb = embed_images(rec, data.paths, progress, face)
    labels, threshold = data.label_ids(), rec.config.threshold
    fars = tuple(sorted({*metrics.FAR_POINTS, far}, reverse=True))
    scores, gen, imp = score_pairs(emb, labels, fars, threshold)
    verification = None
    if listed is not None:
        verification = verify_pairs(emb, listed, f"pairs file {pairs_file}")
    elif len(gen[0]) and len(imp[0]):
        verification = verify_pairs(emb, balanced_pairs(gen, imp), GENERATED)
    return EvalReport(
        dataset=display_path(data.root),
        source=data.source,
        identities=data.identities,
        images=len(data.paths),
        embedded=int(emb.valid.sum()),
        ignored_files=data.ignored,
        unreadable=emb.unreadable,
        no_face=emb.no_face,
        multi_face=emb.multi_face,
        face=emb.face,
        face_reason=emb.face_reason,
        face_differs=emb.face_differs,
        model_id=rec.model_id,
        bundle=bundle,
        backend=BACKEND_OF.get(rec.embedder.entry.format, rec.embedder.entry.format),
        precision=rec.config.precision,
        embedder_precision=rec.embedder.entry.precision,
        flip=rec.config.flip,
        threshold=threshold,
        seconds=emb.seconds,
        images_per_s=len(data.paths) / max(emb.seconds, 1e-9),
        scores=scores,
        verification=verification,
        identification=identify(emb, labels, far, threshold),
    )


def plot_roc(report: EvalReport, path: Path | str) -> None:
    """Write the ROC (log FAR vs TAR), FAR points and threshold marked, as a private file.

    The format follows the file name's extension (png, pdf, svg, ...; none: png).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    s = report.scores
    if not s.curve_far:
        raise FacegateError(f"no ROC to plot ({s.note or 'no impostor pair was accepted'})")
    fig = Figure(figsize=(7, 5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot(s.curve_far, s.curve_tar, lw=1.5, label=f"ROC (AUC {s.auc:.4f})")
    for p in (p for p in s.far_points if p.tar is not None):
        label = f"TAR {p.tar:.3f} @ FAR {p.far:g} (t={p.threshold:.3f})"
        ax.plot([p.far], [p.tar], "o", ms=5, label=label)
    x = s.threshold_far or s.curve_far[0]  # FAR 0 cannot sit on a log axis: drawn at the left
    label = f"t={report.threshold:.2f}: FAR {s.threshold_far:.2g}, TAR {s.threshold_tar:.3f}"
    ax.plot([x], [s.threshold_tar], "s" if s.threshold_far else "<", ms=6, color="k", label=label)
    ax.set(
        xscale="log",
        xlabel="false accept rate (FAR)",
        ylabel="true accept rate (TAR)",
        ylim=(0, 1.01),
    )
    ax.grid(True, which="both", alpha=0.3)
    flip = ", flip" if report.flip else ""
    ax.set_title(
        f"{Path(report.dataset).name}: {report.model_id} ({report.backend} "
        f"{report.embedder_precision}{flip})",
        fontsize=9,
    )
    ax.legend(loc="lower right", fontsize=7)
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    if fmt not in FigureCanvasAgg.get_supported_filetypes():
        raise FacegateError(f"{display_path(path)}: cannot write a .{fmt} plot (use .png)")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt)
    write_private(Path(path), buf.getvalue())
