"""Presentation-attack detection measured as ISO/IEC 30107-3 measures it.

A folder holds ``real/`` (bona fide presentations) and one sub-folder per attack type (PAI
species, e.g. ``print_attack/``), images anywhere below them. Each image's largest face is
scored by a :class:`~facegate.vision.liveness.LivenessModel` (higher = more attack-like); a
presentation is accepted as live when its score is under the threshold.

- APCER (per attack type): the share of that type's attacks accepted as live.
- BPCER: the share of real presentations refused.
- ACER: (APCER + BPCER) / 2, per type, and with the worst type's APCER overall.

The threshold is chosen for a stated BPCER (the lowest threshold whose BPCER does not exceed
it, which gives the lowest APCER there).
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from facegate.errors import FacegateError
from facegate.host.permissions import write_private
from facegate.text import display_path

log = logging.getLogger(__name__)

REAL = "real"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DEFAULT_BPCER = 0.05  # the operating point reported: at most 1 real person in 20 refused


@dataclass(frozen=True, slots=True)
class AttackFigures:
    """One attack type's figures at the chosen threshold, and its curve."""

    kind: str
    images: int
    apcer: float
    acer: float
    curve_bpcer: list[float] = field(default_factory=list)
    curve_apcer: list[float] = field(default_factory=list)


@dataclass
class PadReport:
    """Everything ``eval-liveness`` measured."""

    dataset: str
    model: str
    crop_scale: float
    target_bpcer: float
    threshold: float
    bpcer: float
    real_images: int
    attacks: list[AttackFigures]
    no_face: dict[str, int]
    given_threshold: bool = False
    frames: int = 1  # presentations averaged per decision (consecutive images of one folder)
    real_scores: list[float] = field(default_factory=list)

    @property
    def acer(self) -> float:
        """ACER with the worst attack type's APCER (ISO/IEC 30107-3)."""
        worst = max((a.apcer for a in self.attacks), default=0.0)
        return (worst + self.bpcer) / 2

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form (scores summarised, no image names)."""
        out = asdict(self)
        out["acer"] = self.acer
        real = np.asarray(self.real_scores)
        out["real_scores"] = _summary(real)
        return out


def _summary(scores: np.ndarray) -> dict[str, float]:
    if len(scores) == 0:
        return {}
    q = np.percentile(scores, [5, 50, 95])
    return {"p5": float(q[0]), "median": float(q[1]), "p95": float(q[2])}


def scan_pad(root: Path, extra_suffixes: tuple[str, ...] = ()) -> dict[str, list[Path]]:
    """``real`` and each attack type's image (and ``extra_suffixes``) paths under ``root``."""
    suffixes = IMAGE_SUFFIXES + extra_suffixes
    if not (root / REAL).is_dir():
        raise FacegateError(f"{display_path(root)}: no real/ folder (bona fide presentations)")
    kinds = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))
    found = {k: _files(root / k, suffixes) for k in kinds}
    if not found[REAL]:
        raise FacegateError(f"{display_path(root / REAL)}: holds no images")
    return found


def _files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Files with ``suffixes`` anywhere under ``folder``, linked folders followed, sorted."""
    return sorted(
        Path(top) / name
        for top, _, names in os.walk(folder, followlinks=True)
        for name in names
        if Path(name).suffix.lower() in suffixes
    )


def threshold_for_bpcer(real: np.ndarray, target: float) -> float:
    """The lowest threshold whose BPCER (share of real scores >= it) is at most ``target``."""
    ordered = np.sort(real)[::-1]
    allowed = int(np.floor(target * len(ordered) + 1e-9))  # real presentations that may be refused
    if allowed >= len(ordered):
        return float(ordered[-1])
    return float(np.nextafter(ordered[allowed], np.inf))


def rates(real: np.ndarray, attack: np.ndarray, threshold: float) -> tuple[float, float]:
    """(APCER, BPCER) at ``threshold``: attacks scored under it, real scored at or above it."""
    apcer = float(np.mean(attack < threshold)) if len(attack) else 0.0
    bpcer = float(np.mean(real >= threshold)) if len(real) else 0.0
    return apcer, bpcer


def curve(real: np.ndarray, attack: np.ndarray) -> tuple[list[float], list[float]]:
    """BPCER and APCER over every threshold (the DET/ROC of this attack type)."""
    cuts = np.unique(np.concatenate([real, attack, [np.inf]]))
    points = [rates(real, attack, float(t)) for t in cuts]
    return [round(b, 5) for _, b in points], [round(a, 5) for a, _ in points]


def pad_report(
    scores: dict[str, np.ndarray],
    no_face: dict[str, int],
    target_bpcer: float,
    names: tuple[str, str, float],
    threshold: float | None = None,
) -> PadReport:
    """Figures from per-type scores; ``threshold`` None chooses it for ``target_bpcer``."""
    real = scores[REAL]
    if len(real) == 0:
        raise FacegateError("no face was found in any real image: nothing to measure")
    t = threshold_for_bpcer(real, target_bpcer) if threshold is None else threshold
    attacks = []
    for kind, values in scores.items():
        if kind == REAL:
            continue
        apcer, bpcer = rates(real, values, t)
        bpcers, apcers = curve(real, values)
        attacks.append(AttackFigures(kind, len(values), apcer, (apcer + bpcer) / 2, bpcers, apcers))
    dataset, model, scale = names
    _, bpcer = rates(real, np.zeros(0), t)
    return PadReport(
        dataset,
        model,
        scale,
        target_bpcer,
        t,
        bpcer,
        len(real),
        attacks,
        no_face,
        given_threshold=threshold is not None,
        real_scores=[float(v) for v in real],
    )


def score_folder(
    paths: list[Path], score_one: Callable[[Path], float | None]
) -> tuple[np.ndarray, int]:
    """Scores of the images where a face was found, and the count without one."""
    values = [score_one(p) for p in paths]
    found = [v for v in values if v is not None]
    return np.asarray(found, np.float64), len(values) - len(found)


def plot_pad(report: PadReport, path: Path) -> None:
    """Write APCER against BPCER per attack type (the threshold marked) as a private PNG."""
    try:
        data = _plot_matplotlib(report)
    except ImportError:  # the device has no matplotlib: a plain OpenCV drawing
        data = _plot_opencv(report)
    write_private(path, data)


def _plot_matplotlib(report: PadReport) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for a in report.attacks:
        ax.plot(a.curve_bpcer, a.curve_apcer, lw=1.5, label=f"{a.kind} ({a.images})")
        ax.plot([report.bpcer], [a.apcer], "o", color="k")
    ax.axvline(report.target_bpcer, ls=":", color="grey", label=f"BPCER {report.target_bpcer:g}")
    ax.set(xlabel="BPCER (real refused)", ylabel="APCER (attacks accepted)", xlim=(0, 1))
    ax.set(ylim=(0, 1))
    ax.grid(True, alpha=0.3)
    ax.set_title(f"{report.model} on {Path(report.dataset).name}, t={report.threshold:.3f}")
    ax.legend(loc="upper right", fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _plot_opencv(report: PadReport) -> bytes:
    import cv2

    side, pad = 400, 40
    img = np.full((side + 2 * pad, side + 2 * pad, 3), 255, np.uint8)
    cv2.rectangle(img, (pad, pad), (pad + side, pad + side), (0, 0, 0), 1)
    colours = [(200, 80, 0), (0, 120, 220), (0, 160, 0), (160, 0, 160)]
    for i, a in enumerate(report.attacks):
        pts = np.array(
            [
                (pad + b * side, pad + (1 - ap) * side)
                for b, ap in zip(a.curve_bpcer, a.curve_apcer, strict=True)
            ],
            np.int32,
        )
        cv2.polylines(img, [pts], False, colours[i % len(colours)], 2)
        cv2.putText(
            img,
            a.kind,
            (pad + 10, pad + 20 + 18 * i),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5,
            colours[i % len(colours)],
            1,
        )
    cv2.putText(
        img,
        "BPCER ->",
        (pad + side - 80, pad + side + 25),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.5,
        (0, 0, 0),
        1,
    )
    cv2.putText(img, "APCER", (5, pad - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise FacegateError("cannot encode the plot as PNG")
    return buf.tobytes()
