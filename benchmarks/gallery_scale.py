"""Section 4: identification latency and memory from 1k to 1M synthetic 192-d unit templates.

ExactMatcher runs in this process. The approximate indexes (usearch, hnswlib, faiss) are not
project dependencies, so they run in their own venv (benchmarks.venvs.ANN), one fresh worker
process per index and size so each one's memory growth is its own. Recall@1 is measured against
the exact top-1 template on probes that are half noisy copies of gallery rows, half random.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from benchmarks import gallery_exact, synthetic, venvs
from benchmarks.common import console, tracked
from benchmarks.workers import Worker, WorkerError

SIZES = (1_000, 10_000, 100_000, 1_000_000)
TOP_K = 5
PROBES = 1000
HNSW_EFFORTS = (16, 64, 256, 1024)  # ef at search time
IVF_EFFORTS = (1, 8, 64, 256)  # lists probed
CANDIDATES = {
    "usearch-f32": HNSW_EFFORTS,
    "usearch-i8": HNSW_EFFORTS,
    "hnswlib": HNSW_EFFORTS,
    "faiss-hnsw": HNSW_EFFORTS,
    "faiss-ivf": IVF_EFFORTS,
}
RECALL_TARGET = 0.99
BUILD_BUDGET_S = 400.0  # an index whose 100k build extrapolates past this at 1M is not built
MB = 2**20


def exact_top1(gallery: np.ndarray, probes: np.ndarray) -> np.ndarray:
    """The exact most similar gallery row of each probe."""
    step = max(1, (1 << 26) // len(gallery))
    return np.concatenate(
        [np.argmax(probes[s : s + step] @ gallery.T, axis=1) for s in range(0, len(probes), step)]
    )


def _recall(top1: list[int], truth: np.ndarray) -> dict[str, float]:
    got = np.asarray(top1)
    noisy = slice(0, len(truth) // 2)
    rand = slice(len(truth) // 2, len(truth))
    return {
        "all": float(np.mean(got == truth)),
        "noisy_copies": float(np.mean(got[noisy] == truth[noisy])),
        "random": float(np.mean(got[rand] == truth[rand])),
    }


def ann_one(python: Path, lib: str, files: tuple[Path, Path], truth: np.ndarray, log: Path) -> dict:
    """Build and sweep one index in a fresh worker; recall per effort."""
    with Worker(python, "ann_worker.py", log) as worker:
        reply = worker.request(
            "bench",
            lib=lib,
            data=str(files[0]),
            probes=str(files[1]),
            k=TOP_K,
            efforts=list(CANDIDATES[lib]),
        )
    for point in reply["sweep"]:
        point["recall"] = _recall(point.pop("top1"), truth)
    ok = [p for p in reply["sweep"] if p["recall"]["all"] >= RECALL_TARGET]
    reply["chosen"] = min(ok, key=lambda p: p["median_ms"]) if ok else None
    return reply


def _libs_for(n: int, quick: bool, earlier: dict[str, dict]) -> list[str]:
    if quick and n > 10_000:
        return []
    if n < 1_000_000 or 100_000 not in {r["templates"] for r in earlier.values()}:
        return list(CANDIDATES)
    return [
        lib
        for lib, r in earlier.items()
        if r["templates"] == 100_000 and r["build_s"] * 12 < BUILD_BUDGET_S
    ]


def ann(python: Path, sizes: list[int], quick: bool, out: Path) -> list[dict]:
    """Every candidate index at every size (1M: those whose build time allows it)."""
    rows: list[dict] = []
    last: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="facegate-ann-") as tmp:
        for n in sizes:
            libs = _libs_for(n, quick, last)
            if not libs:
                continue
            gallery = synthetic.unit_rows(n)
            probes, _ = synthetic.probes(gallery, PROBES)
            truth = exact_top1(gallery, probes)
            files = (Path(tmp) / "gallery.npy", Path(tmp) / "probes.npy")
            np.save(files[0], gallery)
            np.save(files[1], probes)
            del gallery
            for lib in tracked(libs, f"ANN indexes at {n:,} templates"):
                try:
                    row = {
                        "lib": lib,
                        "templates": n,
                        **ann_one(python, lib, files, truth, out / "ann-worker.log"),
                    }
                except WorkerError as err:
                    row = {"lib": lib, "templates": n, "error": str(err)}
                rows.append(row)
                if "error" not in row:
                    last[lib] = row
    return rows


def run(quick: bool, install: bool, out: Path) -> dict:
    """Exact matcher at every size; approximate indexes where their venv is available."""
    sizes = [n for n in SIZES if not (quick and n >= 1_000_000)]
    result: dict = {"top_k": TOP_K, "probes": PROBES, **gallery_exact.run(sizes, quick)}
    python = venvs.ensure(venvs.ANN, install and not quick)
    if python is None:
        console.print("[yellow]gallery: no ANN venv, approximate indexes skipped")
        result["ann"] = {"skipped": "ANN venv not available"}
        return result
    result["ann"] = ann(python, sizes, quick, out)
    return result
