"""PNG plots: per-stage stacked bars, gallery scaling, speed ratio against the peer."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

STAGES = ("decode", "detect", "align", "embed", "match")


def stages_plot(res: dict, path: Path) -> Path:
    """Stacked bars of stage medians, one bar per frame x backend x precision."""
    rows = sorted(res["rows"], key=lambda r: (r["frame"], r["backend"], r["precision"]))
    labels = [f"{r['frame']}\n{r['backend'][:4]} {r['precision']}" for r in rows]
    fig, ax = plt.subplots(figsize=(max(8, 0.7 * len(rows)), 5))
    bottom = [0.0] * len(rows)
    for stage in STAGES:
        values = [r["stages_ms"][stage]["median"] for r in rows]
        ax.bar(range(len(rows)), values, bottom=bottom, label=stage)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_xticks(range(len(rows)), labels, rotation=90, fontsize=7)
    ax.set_ylabel("ms (median)")
    ax.set_title("Per-stage latency, one thread")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _ann_series(ann: list[dict]) -> dict[str, tuple[list[int], list[float]]]:
    """Per index: the fastest effort with the best recall on noisy copies, per size."""
    series: dict[str, tuple[list[int], list[float]]] = {}
    for r in (r for r in ann if "sweep" in r):
        best = max(r["sweep"], key=lambda p: (p["recall"]["noisy_copies"], -p["median_ms"]))
        xs, ys = series.setdefault(f"{r['lib']}", ([], []))
        xs.append(r["templates"])
        ys.append(best["median_ms"])
    return series


def gallery_plot(res: dict, path: Path) -> Path:
    """Query latency and memory against gallery size (log-log)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    exact = res["exact"]
    sizes = [r["templates"] for r in exact]
    left.plot(sizes, [r["query_ms"]["median"] for r in exact], "o-", label="ExactMatcher")
    if isinstance(res.get("ann"), list):
        for lib, (xs, ys) in _ann_series(res["ann"]).items():
            left.plot(xs, ys, "s--", label=f"{lib} (best-recall effort)")
    left.axhline(5, color="grey", lw=0.8, ls=":")
    left.axhline(50, color="grey", lw=0.8, ls=":")
    left.set(
        xscale="log",
        yscale="log",
        xlabel="templates",
        ylabel="ms per probe (top-5)",
        title="Identification latency",
    )
    left.legend(fontsize=7)
    right.plot(sizes, [r["matrix_mb"] for r in exact], "o-", label="exact: template matrix")
    growth = [max(r["rss_growth_mb"], 0.1) for r in exact]
    right.plot(sizes, growth, "x:", label="exact: RSS growth")
    right.set(xscale="log", yscale="log", xlabel="templates", ylabel="MiB", title="Memory")
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def ratio_plot(res: dict, path: Path) -> Path:
    """Peer time / facegate time per frame, for both backends, with the 5x target."""
    rows = res["speed"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.38
    for k, backend in enumerate(("onnxruntime", "litert")):
        xs = [i + (k - 0.5) * width for i in range(len(rows))]
        ax.bar(xs, [r[backend]["ratio"] for r in rows], width, label=backend)
    ax.axhline(5, color="red", lw=1, ls="--", label="target 5×")
    ax.set_xticks(range(len(rows)), [r["frame"] for r in rows])
    ax.set_ylabel("face_recognition time / facegate time")
    ax.set_title("Speed ratio (detect+align+embed+match vs HOG+encodings)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def save_all(results: dict, out: Path) -> list[Path]:
    """Every plot the results allow."""
    done = []
    if "rows" in results.get("stages", {}):
        done.append(stages_plot(results["stages"], out / "stages.png"))
    if "exact" in results.get("gallery", {}):
        done.append(gallery_plot(results["gallery"], out / "gallery_scaling.png"))
    if "speed" in results.get("peer", {}):
        done.append(ratio_plot(results["peer"], out / "speed_ratio.png"))
    return done
