"""Section: the compression chain — teacher, pruned nets, students — measured in one run.

Rows: the teacher (bundle ``default``: MobileFaceNet) and every compressed embedder whose recipe
ships (``pruned``, ``pruned40``: structured pruning; ``student``, ``student-w10``: ShuffleNet V2
distilled from the teacher). Each bundle is built (or reused from the build cache) by the same
converters; the detector is the same in all of them, so the rows differ only in the embedder.

For each embedder variant the build made (ONNX Runtime and LiteRT, FP32 and INT8 — variants the
build measured and rejected are taken from the build cache and marked): params, MACs, file size,
median ms per face on one thread (all variants timed in turn, round after round, so that drift on
a shared machine cannot favour the ones measured first), and the cosine to the teacher (ONNX
Runtime FP32) on natural held-out crops — the largest face of every labelled photo of
../shared/faces, aligned once by facegate's detector; no compressed net trains on these photos.
For each bundle (FP32, ONNX Runtime) ``facegate eval`` on the shared identities
(face_recognition, bbt) and on the deepface set.
"""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path

import numpy as np
from rich.table import Table

from benchmarks.common import FACES, console, interleaved, timed, tracked
from facegate.backends import open_backend
from facegate.bundle import Bundle, ModelEntry
from facegate.evaluate.dataset import scan
from facegate.evaluate.embed import largest_face
from facegate.evaluate.run import evaluate
from facegate.host.paths import cache_dir
from facegate.vision.embed import Embedder
from facegate.vision.image import load_image
from facegate.vision.recognizer import Recognizer, RecognizerConfig

TEACHER = "default"
COMPRESSED = ("pruned", "pruned40", "student", "student-w10")
EVAL_SETS = ("face_recognition", "bbt", "deepface")
FORMATS = (("onnx", "onnxruntime"), ("tflite", "litert"))
PRECISIONS = ("fp32", "int8")
REJECTED = "rejected"  # converters.build.REJECTED: measured, not kept, left in the build cache


@dataclasses.dataclass
class Built:
    """One built bundle: where it is installed and where its build cache is."""

    name: str
    folder: Path
    cache: Path
    bundle: Bundle
    report: dict


def build_all(names: tuple[str, ...]) -> list[Built]:
    """Build (or reuse) each recipe that ships; one line per bundle."""
    import json

    from facegate.converters.command import build_bundle
    from facegate.converters.recipe import available

    out = []
    for name in [n for n in names if n in available()]:
        state, folder, key = build_bundle(name)
        console.print(f"compression: bundle {name} {state} ({key})")
        report = json.loads((folder / "report.json").read_text())
        cache = cache_dir() / "bundles" / f"{name}-{key}"
        out.append(Built(name, folder, cache, Bundle.load(folder), report))
    return out


def held_out_crops(rec: Recognizer, quick: bool) -> np.ndarray:
    """Aligned crops of the largest face of every labelled shared photo (evaluation data)."""
    paths = [p for name in EVAL_SETS for p in scan(FACES / name).paths]
    if quick:
        paths = paths[::6]
    crops = []
    for path in tracked(paths, "compression: aligning held-out faces"):
        image = load_image(path)
        faces = rec.detect(image)
        if faces:
            crops.append(rec.align(image, [faces[largest_face(faces)]])[0].crop)
    return np.stack(crops)


def _variant_file(built: Built, row: dict) -> Path | None:
    for folder in (built.folder, built.cache / REJECTED):
        if (folder / row["file"]).is_file():
            return folder / row["file"]
    return None


def _embedder(built: Built, row: dict, path: Path) -> Embedder:
    fp32 = built.bundle.entry("embedder", row["format"], "fp32")
    entry: ModelEntry = dataclasses.replace(
        fp32, file=path.name, format=row["format"], precision=row["precision"]
    )
    return Embedder(open_backend(path, row["format"], 1, list(fp32.outputs)), entry)


def variant_rows(built: Built, crops: np.ndarray, ref: np.ndarray) -> list[tuple[dict, Embedder]]:
    """Every embedder variant of ``built`` with its open embedder: size and cosine to the
    teacher (ms per face comes later, from :func:`time_variants`)."""
    rows = []
    for row in built.report["variants"]:
        if row["role"] != "embedder" or row["precision"] not in PRECISIONS:
            continue
        path = _variant_file(built, row)
        if path is None:
            continue
        emb = _embedder(built, row, path)
        cos = np.sum(emb.embed(crops) * ref, axis=1)
        out = {
            "bundle": built.name,
            "format": row["format"],
            "precision": row["precision"],
            "kept": bool(row["kept"]),
            "why": row.get("why", ""),
            "params": int(row["params"]),
            "macs": int(row["macs"]),
            "bytes": path.stat().st_size,
            "cosine_to_teacher": _cosines(cos),
        }
        rows.append((out, emb))
    return rows


def time_variants(variants: list[tuple[dict, Embedder]], face: np.ndarray, reps: int) -> None:
    """Median ms per face of every variant, timed in turn (one call each, rotating who goes
    first) so that a shared machine's drift falls on all of them alike; closes the embedders.
    """
    for _, emb in variants:
        for _ in range(3):  # warm-up: first calls allocate
            emb.embed(face)
    fns = [lambda e=emb: timed(lambda: e.embed(face))[0] for _, emb in variants]
    times = interleaved(fns, reps)
    for (row, emb), ms in zip(variants, times, strict=True):
        row["ms_per_face"] = statistics.median(ms)
        emb.backend.close()


def _cosines(cos: np.ndarray) -> dict[str, float]:
    return {
        "mean": float(cos.mean()),
        "p5": float(np.percentile(cos, 5)),
        "min": float(cos.min()),
        "n": int(cos.size),
    }


def eval_rows(built: Built, quick: bool) -> dict:
    """``facegate eval`` (ONNX Runtime FP32, one thread) on each shared set."""
    config = RecognizerConfig(backend="onnxruntime", precision="fp32", threads=1)
    rec = Recognizer.from_bundle(built.bundle, config)
    out = {}
    for name in EVAL_SETS if not quick else EVAL_SETS[:1]:
        report = evaluate(rec, FACES / name, progress=False, bundle=built.name)
        v = report.verification
        out[name] = {
            "images": report.images,
            "embedded": report.embedded,
            "accuracy": v.accuracy if v else None,
            "auc": report.scores.auc,
            "threshold_tar": report.scores.threshold_tar,
            "threshold_far": report.scores.threshold_far,
        }
    return out


def run(quick: bool, out: Path) -> dict:
    """Build the bundles, measure every embedder variant, print the table, draw the plot."""
    builds = build_all((TEACHER, *COMPRESSED))
    teacher = next(b for b in builds if b.name == TEACHER)
    config = RecognizerConfig(backend="onnxruntime", precision="fp32", threads=1)
    rec = Recognizer.from_bundle(teacher.bundle, config)
    crops = held_out_crops(rec, quick)
    ref = rec.embedder.embed(crops)
    reps = 20 if quick else 200
    variants = [
        v for b in tracked(builds, "compression: variants") for v in variant_rows(b, crops, ref)
    ]
    console.print(f"compression: timing {len(variants)} variants in turn, {reps} rounds")
    time_variants(variants, crops[:1], reps)
    rows = [row for row, _ in variants]
    evals = {b.name: eval_rows(b, quick) for b in tracked(builds, "compression: facegate eval")}
    _speedups(rows)
    console.print(table(rows, evals, len(crops)))
    plot(rows, out / "compression.png")
    return {"held_out_crops": len(crops), "variants": rows, "eval": evals}


def plot(rows: list[dict], path: Path) -> Path:
    """Cosine to the teacher against ms per face, one marker per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    markers = {
        ("onnx", "fp32"): "o",
        ("onnx", "int8"): "s",
        ("tflite", "fp32"): "^",
        ("tflite", "int8"): "D",
    }
    names = dict(FORMATS)
    for (fmt, prec), marker in markers.items():
        sel = [r for r in rows if r["format"] == fmt and r["precision"] == prec]
        if not sel:
            continue
        xs = [r["ms_per_face"] for r in sel]
        ys = [r["cosine_to_teacher"]["mean"] for r in sel]
        ax.scatter(xs, ys, marker=marker, label=f"{names[fmt]} {prec}")
        for r, x, y in zip(sel, xs, ys, strict=True):
            ax.annotate(r["bundle"], (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("ms per face, one thread")
    ax.set_ylabel("mean cosine to the teacher (held-out natural crops)")
    ax.set_title("compression: speed against agreement with the teacher")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _speedups(rows: list[dict]) -> None:
    """Speed-up of each row against the teacher's FP32 on the same runtime."""
    base = {
        r["format"]: r["ms_per_face"]
        for r in rows
        if r["bundle"] == TEACHER and r["precision"] == "fp32"
    }
    for r in rows:
        ref = base.get(r["format"])
        r["speedup_vs_teacher_fp32"] = ref / r["ms_per_face"] if ref else None


def table(rows: list[dict], evals: dict, n_crops: int) -> Table:
    """One row per (bundle, runtime, precision); eval columns per bundle."""
    t = Table(
        title=f"compression: embedders, one thread; cosine to the teacher on {n_crops} held-out "
        "natural crops; eval = facegate eval accuracy (FP32)",
        title_justify="left",
    )
    heads = (
        "bundle",
        "runtime",
        "prec",
        "kept",
        "params",
        "MMACs",
        "MB",
        "ms/face",
        "× teacher",
        "cos mean",
        "cos p5",
        *(f"eval {s}" for s in EVAL_SETS),
    )
    for head in heads:
        t.add_column(head)
    names = dict(FORMATS)
    for r in rows:
        ev = evals.get(r["bundle"], {})
        acc = [ev.get(s, {}).get("accuracy") for s in EVAL_SETS]
        t.add_row(
            r["bundle"],
            names[r["format"]],
            r["precision"],
            "yes" if r["kept"] else "no",
            f"{r['params'] / 1e6:.2f} M",
            f"{r['macs'] / 1e6:.1f}",
            f"{r['bytes'] / 1e6:.2f}",
            f"{r['ms_per_face']:.2f}",
            f"{r['speedup_vs_teacher_fp32']:.2f}" if r["speedup_vs_teacher_fp32"] else "-",
            f"{r['cosine_to_teacher']['mean']:.3f}",
            f"{r['cosine_to_teacher']['p5']:.3f}",
            *(f"{a:.3f}" if a is not None else "-" for a in acc),
        )
    return t
