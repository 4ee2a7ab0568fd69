"""Soak: ``facegate run`` on a looping RTSP camera for M minutes; RSS and fps over time.

``python -m benchmarks.soak --minutes M [--clip PATH] [--out FILE.json] [--plot FILE.png]``

The camera is the test suite's RTSP relay (``tests.integration.rtsp_server``: ffmpeg loops the
clip forever). The daemon runs as a real process in a private state dir; every ``--interval``
seconds its VmRSS (from /proc) and /metrics are sampled. Growth is measured after a warm-up:
(median RSS of the last 25% of samples - median of the first 25% after the first 20% of the
run) / that first median. The clock starts at the daemon's first processed frame.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.common import FACES, VIDEO, bundle_dir
from tests.integration.rtsp_server import RtspServer, free_port

ROOT = Path(__file__).resolve().parents[1]
CLIP = VIDEO / "face_recognition_short_hamilton_clip.mp4"
PEOPLE = ("lin_manuel_miranda",)  # enrolled, so the clip gives recognized events as well
WARMUP = 0.2  # share of the run left out before the first RSS window (arenas, caches fill up)
WINDOW = 0.25  # share of the samples in each RSS window
START_TIMEOUT_S = 180.0  # daemon start to first processed frame, on a slow shared box
TOKEN = "soak-token"
_PROBLEM = re.compile(r"(ERROR|CRITICAL) |Traceback")
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


@dataclass(frozen=True, slots=True)
class Sample:
    """One look at the daemon."""

    t_s: float  # seconds since the first processed frame
    rss_mb: float
    fps: float  # the daemon's own 5 s window (facegate_fps)
    rate: float  # frames processed per second since the previous sample
    processed: int
    captured: int
    source_up: int
    reconnects: int


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text -> {"name" or "name{labels}": value}."""
    out = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line.strip())
        if match and not line.startswith("#"):
            out[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return out


def rss_mb(pid: int) -> float | None:
    """VmRSS of ``pid`` in MiB, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    kb = next((int(x.split()[1]) for x in text.splitlines() if x.startswith("VmRSS:")), None)
    return None if kb is None else kb / 1024


def fetch_metrics(port: int, token: str = TOKEN) -> dict[str, float] | None:
    """The daemon's /metrics, parsed; None while it does not answer."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
    request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return parse_metrics(resp.read().decode())
    except (OSError, urllib.error.URLError):
        return None


def growth(samples: list[Sample], warmup: float = WARMUP, window: float = WINDOW) -> dict:
    """RSS medians of the first window after warm-up and of the last window, and the growth."""
    n = len(samples)
    if n < 4:
        raise ValueError(f"too few samples for a growth figure ({n})")
    size, start = max(1, int(n * window)), int(n * warmup)
    first = statistics.median(s.rss_mb for s in samples[start : start + size])
    last = statistics.median(s.rss_mb for s in samples[n - size :])
    return {"first_mb": first, "last_mb": last, "growth": (last - first) / first}


def longest_gap(samples: list[Sample]) -> float:
    """Longest stretch (s) in which the processed-frame counter did not move."""
    gap, since = 0.0, 0.0
    for prev, cur in itertools.pairwise(samples):
        if cur.processed > prev.processed:
            since = cur.t_s
        gap = max(gap, cur.t_s - since)
    return gap


def prepare_home(
    home: Path, source: str, http_port: int, max_fps: float | None, bundle: Path | None = None
) -> Path:
    """A private FACEGATE_HOME with the bundle linked in as default and a config; its path."""
    (home / "models").mkdir(parents=True)
    (home / "models" / "default").symlink_to(bundle or bundle_dir())
    (home / "token").write_text(TOKEN + "\n")
    (home / "token").chmod(0o600)
    fps = f"max_fps = {max_fps}\n" if max_fps else ""
    config = home / "config.toml"
    config.write_text(
        f'[camera]\nname = "soak"\nsource = "{source}"\n{fps}'
        f'[http]\nport = {http_port}\ntoken_file = "{home / "token"}"\n'
        f'[[sinks]]\ntype = "jsonl"\npath = "{home / "events.jsonl"}"\n'
    )
    return config


def enrol(home: Path, people: list[str]) -> None:
    """Enrol each person from the shared photos (skipped where the folder is missing)."""
    for person in people:
        folder = FACES / "face_recognition" / person
        if not folder.is_dir():
            print(f"no photos of {person} in {folder}: not enrolled", file=sys.stderr)
            continue
        cmd = [sys.executable, "-m", "facegate.cli", "gallery", "enroll", person]
        cmd += [str(p) for p in sorted(folder.iterdir())]
        env = {**os.environ, "FACEGATE_HOME": str(home)}
        subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)


def start_daemon(home: Path, config: Path) -> subprocess.Popen:
    """``python -m facegate.cli run --config CONFIG`` with its log in home/daemon.log."""
    env = {**os.environ, "FACEGATE_HOME": str(home)}
    with (home / "daemon.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "facegate.cli", "run", "--config", str(config)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def wait_first_frame(proc: subprocess.Popen, port: int, timeout: float) -> None:
    """Return once the daemon has processed a frame; raise if it dies or takes too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the daemon exited with {proc.returncode} before its first frame")
        metrics = fetch_metrics(port)
        if metrics and metrics.get("facegate_frames_processed_total", 0) > 0:
            return
        time.sleep(0.5)
    raise RuntimeError(f"no frame processed within {timeout:g} s")


def take_sample(pid: int, port: int, t0: float, prev: Sample | None) -> Sample | None:
    """One sample, or None when the daemon is gone or /metrics does not answer."""
    rss, metrics = rss_mb(pid), fetch_metrics(port)
    if rss is None or metrics is None:
        return None
    now = time.monotonic() - t0
    processed = int(metrics.get("facegate_frames_processed_total", 0))
    rate = 0.0
    if prev is not None and now > prev.t_s:
        rate = (processed - prev.processed) / (now - prev.t_s)
    return Sample(
        t_s=round(now, 2),
        rss_mb=round(rss, 2),
        fps=round(metrics.get("facegate_fps", 0.0), 2),
        rate=round(rate, 2),
        processed=processed,
        captured=int(metrics.get("facegate_frames_captured_total", 0)),
        source_up=int(metrics.get("facegate_source_up", 0)),
        reconnects=int(metrics.get("facegate_source_reconnects_total", 0)),
    )


def sample_loop(
    proc: subprocess.Popen, port: int, seconds: float, interval: float, quiet: bool = False
) -> list[Sample]:
    """Sample every ``interval`` s for ``seconds`` (printing a row each time unless quiet)."""
    samples: list[Sample] = []
    t0 = time.monotonic()
    if not quiet:
        print(f"{'t_s':>8} {'rss_mb':>8} {'fps':>6} {'rate':>6} {'frames':>8} {'up':>3}")
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the daemon exited with {proc.returncode} during the soak")
        sample = take_sample(proc.pid, port, t0, samples[-1] if samples else None)
        if sample is not None:
            samples.append(sample)
            if not quiet:
                s = sample
                print(
                    f"{s.t_s:8.1f} {s.rss_mb:8.1f} {s.fps:6.1f} {s.rate:6.1f} "
                    f"{s.processed:8d} {s.source_up:3d}",
                    flush=True,
                )
        if time.monotonic() - t0 >= seconds:
            return samples
        time.sleep(max(0.0, interval - (time.monotonic() - t0) % interval))


def stop_daemon(proc: subprocess.Popen, timeout: float = 15.0) -> int:
    """SIGTERM, then SIGKILL after ``timeout``; the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def log_problems(log: str) -> list[str]:
    """ERROR/CRITICAL lines and tracebacks of the daemon log."""
    return [ln for ln in log.splitlines() if _PROBLEM.match(ln)]


def summarize(samples: list[Sample], meta: dict) -> dict:
    """The figures: RSS start/end/growth, fps mean/min, longest gap, plus every sample."""
    rates = [s.rate for s in samples[1:]]
    return {
        "meta": meta,
        "rss_mb": {"start": samples[0].rss_mb, "end": samples[-1].rss_mb, **growth(samples)},
        "fps": {
            "mean": statistics.fmean(rates) if rates else 0.0,
            "min": min(rates) if rates else 0.0,
            "max": max(rates) if rates else 0.0,
        },
        "longest_gap_s": longest_gap(samples),
        "samples": [asdict(s) for s in samples],
    }


def soak(
    minutes: float,
    clip: Path = CLIP,
    interval: float = 5.0,
    max_fps: float | None = None,
    people: tuple[str, ...] = PEOPLE,
    quiet: bool = False,
    bundle: Path | None = None,
) -> dict:
    """Run the soak and return its summary (see :func:`summarize`)."""
    home = Path(tempfile.mkdtemp(prefix="facegate-soak-"))
    try:
        with RtspServer(clip) as server:
            port = free_port()
            config = prepare_home(home, server.url, port, max_fps, bundle)
            enrol(home, list(people))
            proc = start_daemon(home, config)
            try:
                wait_first_frame(proc, port, START_TIMEOUT_S)
                samples = sample_loop(proc, port, minutes * 60, interval, quiet)
                final = fetch_metrics(port) or {}
            finally:
                code = stop_daemon(proc)
        log = (home / "daemon.log").read_text(errors="replace")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    meta = {
        "minutes": minutes,
        "clip": str(clip),
        "interval_s": interval,
        "max_fps": max_fps,
        "people": list(people),
        "pid": proc.pid,
        "exit_code": code,
        "log_problems": log_problems(log)[:20],
        "final_metrics": {k: v for k, v in final.items() if k.startswith("facegate_")},
    }
    return summarize(samples, meta)


def plot(result: dict, path: Path) -> Path:
    """RSS and fps against time, one panel each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result["samples"]
    minutes = [s["t_s"] / 60 for s in samples]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    top.plot(minutes, [s["rss_mb"] for s in samples], "-", color="tab:blue")
    top.axhline(result["rss_mb"]["first_mb"], color="grey", lw=0.8, ls=":")
    top.set(ylabel="RSS (MiB)", title=f"facegate soak: growth {result['rss_mb']['growth']:+.1%}")
    rates = [s["rate"] for s in samples[1:]]  # the first sample has no interval before it
    bottom.plot(minutes[1:], rates, "-", color="tab:green", label="interval")
    bottom.plot(minutes, [s["fps"] for s in samples], "-", color="tab:orange", lw=0.8, label="5 s")
    bottom.set(xlabel="minutes", ylabel="frames processed / s")
    bottom.set_ylim(bottom=0)
    bottom.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def report(result: dict) -> str:
    """The headline figures, a few lines."""
    r, f = result["rss_mb"], result["fps"]
    return (
        f"RSS start {r['start']:.1f} MiB, end {r['end']:.1f} MiB; after warm-up "
        f"{r['first_mb']:.1f} -> {r['last_mb']:.1f} MiB ({r['growth']:+.2%})\n"
        f"fps mean {f['mean']:.2f}, min {f['min']:.2f}, max {f['max']:.2f}; "
        f"longest gap {result['longest_gap_s']:.1f} s; exit code {result['meta']['exit_code']}; "
        f"{len(result['meta']['log_problems'])} error lines in the log"
    )


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    p.add_argument("--minutes", type=float, required=True, help="length of the soak")
    p.add_argument("--clip", type=Path, default=CLIP, help="video looped as the camera")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    p.add_argument("--max-fps", type=float, help="the daemon's camera.max_fps (unset: all)")
    p.add_argument("--people", default=",".join(PEOPLE), help="comma-separated people to enrol")
    p.add_argument("--out", type=Path, help="write the JSON here")
    p.add_argument("--plot", type=Path, help="write a PNG plot here")
    p.add_argument("--bundle", type=Path, help="bundle folder (default: the built default one)")
    p.add_argument("--quiet", action="store_true", help="no per-sample rows")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run a soak from the command line."""
    args = _args(argv)
    people = tuple(p for p in args.people.split(",") if p)
    result = soak(
        args.minutes, args.clip, args.interval, args.max_fps, people, args.quiet, args.bundle
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
    if args.plot:
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        plot(result, args.plot)
    print(report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
