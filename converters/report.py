"""Measure built models (size, params, MACs, latency) and decide which variants pay their way."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from facegate.backends import open_backend

LATENCY_WARMUP = 5
LATENCY_RUNS = 30
# A variant pays in time when FP32 takes at least this many times as long (paired timing): the
# README's "≥ 15 % faster" rule. Smaller gaps are timing noise on a shared CPU: FP16 files that run
# the very same FP32 arithmetic measured 0.97-1.03x in turn (report.json of the default bundle).
KEEP_MIN_SPEEDUP = 1.15
KEEP_INT8_IF_SMALLER = 0.5  # an INT8 variant half the size of FP32 is kept as the small option


@dataclass
class VariantReport:
    """Everything measured about one built file."""

    role: str
    format: str
    precision: str
    file: str
    bytes: int
    params: int
    macs: int
    latency_ms: float | None = None
    speedup: float | None = None  # FP32 time / this time, runs alternated in one window
    parity: dict[str, float] = field(default_factory=dict)
    parity_ok: bool | None = None
    error: str | None = None
    kept: bool = False
    why: str = ""

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


def median_latency_ms(path: Path, fmt: str, shape: tuple[int, ...], threads: int = 1) -> float:
    """Median wall time of one run at ``shape`` on ``threads`` threads."""
    backend = open_backend(path, fmt, threads)
    x = np.random.default_rng(0).uniform(-1, 1, size=shape).astype(np.float32)
    for _ in range(LATENCY_WARMUP):
        backend.run(x)
    times = []
    for _ in range(LATENCY_RUNS):
        start = time.perf_counter()
        backend.run(x)
        times.append(time.perf_counter() - start)
    backend.close()
    return float(np.median(times) * 1000)


def paired_speedup(
    ref_path: Path, path: Path, fmt: str, shape: tuple[int, ...], threads: int = 1
) -> float:
    """FP32 median time over the variant's, the two run in turn (load drifts hit both alike).

    Timed one after the other, minutes apart, 2 ms models showed 0.8-1.3x "speedups" for FP16
    files that run the very same FP32 arithmetic; in turn they agree within a few percent.
    """
    backends = [open_backend(ref_path, fmt, threads), open_backend(path, fmt, threads)]
    x = np.random.default_rng(0).uniform(-1, 1, size=shape).astype(np.float32)
    for backend in backends:
        for _ in range(LATENCY_WARMUP):
            backend.run(x)
    times: list[list[float]] = [[], []]
    for k in range(LATENCY_RUNS):
        for i in (k % 2, 1 - k % 2):
            start = time.perf_counter()
            backends[i].run(x)
            times[i].append(time.perf_counter() - start)
    for backend in backends:
        backend.close()
    return float(np.median(times[0]) / np.median(times[1]))


def decide(reports: list[VariantReport]) -> None:
    """Set ``kept``/``why`` on every report: FP32 always; others only where they pay."""
    base = {(r.role, r.format): r for r in reports if r.precision == "fp32"}
    for r in reports:
        ref = base.get((r.role, r.format))
        if r.error:
            r.kept, r.why = False, f"failed: {r.error}"
        elif r.precision == "fp32":
            r.kept, r.why = True, "reference"
        elif not r.parity_ok:
            r.kept, r.why = False, "fails parity"
        elif (speed := _speedup(r, ref)) and speed >= KEEP_MIN_SPEEDUP:
            r.kept, r.why = True, f"{speed:.2f}x faster (rule >= {KEEP_MIN_SPEEDUP:.2f}x)"
        elif (
            ref
            and r.precision.startswith("int8")
            and r.bytes <= KEEP_INT8_IF_SMALLER * ref.bytes
            and not _has_better_int8(r, reports)
        ):
            r.kept, r.why = True, f"{ref.bytes / r.bytes:.1f}x smaller"
        else:
            speed = _speedup(r, ref)
            ratio = 1 / speed if speed else float("nan")
            r.kept, r.why = False, f"no gain ({ratio:.2f}x time; rule >= {KEEP_MIN_SPEEDUP:.2f}x)"


def _speedup(r: VariantReport, ref: VariantReport | None) -> float | None:
    """The paired speedup where measured, else the ratio of the separate medians."""
    if r.speedup:
        return r.speedup
    if ref and ref.latency_ms and r.latency_ms:
        return ref.latency_ms / r.latency_ms
    return None


def _has_better_int8(r: VariantReport, reports: list[VariantReport]) -> bool:
    """Keep one INT8 flavour per role and format: the faster one passing parity."""
    rivals = [
        o
        for o in reports
        if o is not r
        and o.role == r.role
        and o.format == r.format
        and o.precision.startswith("int8")
        and o.parity_ok
        and not o.error
    ]
    return any((o.latency_ms or 1e9) < (r.latency_ms or 1e9) for o in rivals)


def parity_text(parity: dict[str, float]) -> str:
    """Compact parity figures: cosine mean/min for embedders, worst IoU and landmark error."""
    if "mean_cos" in parity:
        return f"cos {parity['mean_cos']:.4f}/{parity['min_cos']:.3f}"
    if "flips" in parity:
        return f"Δp {parity['max_abs']:.4f}, {parity['flips']:.0f} flips"
    if "min_iou" in parity:
        return f"IoU {parity['min_iou']:.2f} {parity['max_landmark_px']:.1f}px"
    return "-"


def table(reports: list[VariantReport], title: str) -> Table:
    """A rich table: model × format × precision -> size, latency, parity, kept."""
    t = Table(title=title)
    for col in ("model", "fmt", "prec", "MB", "MMACs", "ms", "parity vs fp32", "kept"):
        t.add_column(col, justify="right" if col in ("MB", "MMACs", "ms") else "left")
    for r in reports:
        kept = ("yes " if r.kept else "no ") + r.why
        t.add_row(
            r.role,
            r.format,
            r.precision,
            f"{r.bytes / 1e6:.2f}",
            f"{r.macs / 1e6:.1f}",
            f"{r.latency_ms:.2f}" if r.latency_ms else "-",
            parity_text(r.parity),
            kept,
        )
    return t


def print_table(reports: list[VariantReport], title: str) -> None:
    """Print the table to the terminal."""
    Console().print(table(reports, title))
