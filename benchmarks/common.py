"""Shared helpers: timing (medians, interleaved A/B), progress bars, bundle and recognizer setup."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from facegate.bundle import Bundle
from facegate.host.paths import models_dir
from facegate.vision.recognizer import Recognizer, RecognizerConfig

T = TypeVar("T")
SHARED = Path(os.environ.get("FACEGATE_SHARED", Path(__file__).resolve().parents[2] / "shared"))
FACES = SHARED / "faces"
VIDEO = SHARED / "video"
BACKENDS = ("onnxruntime", "litert")
console = Console(stderr=True, highlight=False)
if not console.is_terminal:  # logs and CI: wide enough that tables keep one line per row
    console = Console(stderr=True, highlight=False, width=200)


_bundle_override: list[Path] = []


def use_bundle(path: Path) -> None:
    """Benchmark the bundle at ``path`` instead of the built default one."""
    _bundle_override[:] = [path]


def bundle_dir() -> Path:
    """The bundle under test: the built default one unless ``use_bundle`` chose another."""
    return _bundle_override[0] if _bundle_override else models_dir() / "default"


def load_bundle() -> Bundle:
    """Load the default bundle."""
    return Bundle.load(bundle_dir())


def recognizer(backend: str = "onnxruntime", precision: str = "fp32") -> Recognizer:
    """A one-thread recognizer of the default bundle."""
    config = RecognizerConfig(backend=backend, precision=precision, threads=1)
    return Recognizer.from_bundle(load_bundle(), config)


def precisions(bundle: Bundle) -> list[str]:
    """Precisions with at least one file in the bundle (others fall back entirely to fp32)."""
    found = {e.precision for e in bundle.entries}
    return [p for p in ("fp32", "fp16", "int8") if p in found]


def files_used(bundle: Bundle, backend: str, precision: str) -> dict[str, str]:
    """Which file runs for each role at ``precision`` (after the per-model fp32 fallback)."""
    fmt = {"onnxruntime": "onnx", "litert": "tflite"}[backend]
    roles = ("pnet", "rnet", "onet", "embedder")
    return {r: bundle.entry(r, fmt, precision).file for r in roles}


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """(milliseconds, result) of one call."""
    start = time.perf_counter()
    out = fn()
    return 1000.0 * (time.perf_counter() - start), out


def median_ms(fn: Callable[[], object], reps: int, warmup: int = 1) -> float:
    """Median milliseconds of ``reps`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    return statistics.median(timed(fn)[0] for _ in range(reps))


def interleaved(fns: list[Callable[[], float]], reps: int) -> list[list[float]]:
    """Run ``fns`` in turn ``reps`` times, rotating who goes first; each returns its own ms."""
    times: list[list[float]] = [[] for _ in fns]
    for k in range(reps):
        for j in range(len(fns)):
            i = (j + k) % len(fns)
            times[i].append(fns[i]())
    return times


def summary(values: Iterable[float]) -> dict[str, float]:
    """Median, 10th and 90th percentile and count of a list of timings."""
    v = np.asarray(list(values), np.float64)
    if v.size == 0:
        return {"median": float("nan"), "p10": float("nan"), "p90": float("nan"), "n": 0}
    p10, med, p90 = np.percentile(v, [10, 50, 90])
    return {"median": float(med), "p10": float(p10), "p90": float(p90), "n": int(v.size)}


def progress() -> Progress:
    """A transient progress bar on stderr."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


def tracked(items: list[T], label: str) -> Iterator[T]:
    """Iterate ``items`` under a progress bar."""
    with progress() as bar:
        task = bar.add_task(label, total=len(items))
        for item in items:
            yield item
            bar.advance(task)


def machine() -> dict[str, object]:
    """What ran the benchmark."""
    import onnxruntime

    cpu = "unknown"
    info = Path("/proc/cpuinfo")
    if info.exists():
        names = [
            ln.split(":", 1)[1].strip()
            for ln in info.read_text().splitlines()
            if ln.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": onnxruntime.__version__,
        "load_average": os.getloadavg(),
    }
