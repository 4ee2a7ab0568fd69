"""ExactMatcher at growing gallery sizes: latency, memory, a profile, and the bandwidth bound.

One probe scores against every template: the (D, T) float32 matrix is read once per probe, so
the latency cannot drop below matrix bytes / memory read bandwidth (measured here on one core).
Latency is measured with BLAS threads as this process has them, and again in a subprocess whose
BLAS is limited to one thread (benchmarks.limits.ONE_THREAD), since the machine may be shared.
"""

from __future__ import annotations

import cProfile
import gc
import json
import os
import pstats
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

from benchmarks import synthetic
from benchmarks.common import summary, timed, tracked
from facegate.gallery.match import ExactMatcher

TOP_K = 5
PROBES = 1000
PROFILED_SEARCHES = 50
BANDWIDTH_BYTES = 512 * 2**20  # larger than any cache, so reads come from DRAM
MB = 2**20
ROOT = Path(__file__).resolve().parents[1]


def rss_mb() -> float:
    """Resident set size of this process in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def read_bandwidth_gbs(reps: int = 5) -> float:
    """GB/s of one core summing a float32 array far larger than the caches."""
    data = np.ones(BANDWIDTH_BYTES // 4, np.float32)
    data.sum()
    ms = statistics.median(timed(data.sum)[0] for _ in range(reps))
    return data.nbytes / (ms / 1000) / 1e9


def profile(matcher: ExactMatcher, probes: np.ndarray) -> list[dict]:
    """cProfile of one-probe searches: the functions that take the time, per search."""
    prof = cProfile.Profile()
    prof.enable()
    for q in probes[:PROFILED_SEARCHES]:
        matcher.search(q[None])
    prof.disable()
    stats = pstats.Stats(prof)
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:6]  # by own (total) time
    total = sum(v[2] for v in stats.stats.values())
    return [
        {
            "function": f"{Path(k[0]).name}:{k[1]}({k[2]})",
            "ms_per_search": 1000 * v[2] / PROFILED_SEARCHES,
            "share": v[2] / total,
        }
        for k, v in rows
    ]


def exact(n: int, reps: int, with_profile: bool) -> dict:
    """ExactMatcher on ``n`` templates: construction, one-probe top-5 latency, memory."""
    probes, _ = synthetic.probes(synthetic.unit_rows(min(n, 10_000), seed=7), PROBES)
    gc.collect()
    before = rss_mb()
    snap = synthetic.snapshot(n)
    build_ms, matcher = timed(lambda: ExactMatcher(snap, top_k=TOP_K))
    grown = rss_mb() - before
    matcher.search(probes[:1])  # warm-up
    queries = np.tile(probes, (reps // len(probes) + 1, 1))[:reps]
    times = [timed(lambda q=q: matcher.search(q[None]))[0] for q in queries]
    row = {
        "templates": n,
        "build_ms": build_ms,
        "query_ms": summary(times),
        "matrix_mb": n * synthetic.DIM * 4 / MB,
        "rss_growth_mb": grown,
    }
    if with_profile:
        row["profile"] = profile(matcher, probes)
    return row


def one_thread(sizes: list[int], reps: int) -> dict[int, dict] | None:
    """Median latency per size in a subprocess with one BLAS thread; None if it failed."""
    from benchmarks.limits import ONE_THREAD

    cmd = [sys.executable, "-m", "benchmarks.gallery_exact", str(reps), *map(str, sizes)]
    env = {**os.environ, **ONE_THREAD}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    if done.returncode != 0:
        return None
    return {int(k): v for k, v in json.loads(done.stdout.splitlines()[-1]).items()}


def run(sizes: list[int], quick: bool) -> dict:
    """Every size as-is (with a profile of the largest two), then with one BLAS thread."""
    rows = []
    for n in tracked(sizes, "exact matcher"):
        reps = 30 if n >= 1_000_000 or quick else 200
        rows.append(exact(n, reps, with_profile=n >= 100_000 and not quick))
        gc.collect()
    bandwidth = read_bandwidth_gbs()
    for row in rows:
        row["bandwidth_bound_ms"] = row["matrix_mb"] * MB / (bandwidth * 1e9) * 1000
    single = None if quick else one_thread(sizes, 30)
    for row in rows:
        row["query_ms_one_blas_thread"] = (single or {}).get(row["templates"])
    return {"exact": rows, "read_bandwidth_gbs": bandwidth}


if __name__ == "__main__":
    reps, *ns = (int(a) for a in sys.argv[1:])
    out = {n: exact(n, reps, with_profile=False)["query_ms"] for n in ns}
    print(json.dumps(out))
