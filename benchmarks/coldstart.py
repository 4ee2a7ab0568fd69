"""Section 5: daemon cold start (process start to first frame done) and resident memory.

With ``facegate run`` (``python -m facegate.cli run``): cold start is the wall time from spawning it
on a folder source holding one JPEG to its exit (it exits 0 at the end of a file source), and
memory is VmRSS polled from /proc every 20 ms while it runs over the Hamilton clip. The same is
always measured for ``benchmarks.coldstart_probe`` (Recognizer.from_bundle + first identify in a
fresh interpreter, then the Pipeline over the clip), which also splits the start into phases.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import FACES, VIDEO, bundle_dir, tracked
from benchmarks.e2e import ENROL

PHOTO = FACES / "face_recognition" / "obama" / "obama.jpg"
CLIP = VIDEO / "face_recognition_short_hamilton_clip.mp4"
ROOT = Path(__file__).resolve().parents[1]
POLL_S = 0.02
FIRST_FRAME_LOG = re.compile(r"first frame processed ([0-9.]+) s")
TIMEOUT_S = 600


def _rss_kb(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def watch(cmd: list[str], env: dict[str, str]) -> dict:
    """Run ``cmd``; wall time to exit, RSS samples (MiB), exit code, stdout and stderr tail."""
    with tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env, cwd=ROOT
        )
        samples = []
        while proc.poll() is None:
            kb = _rss_kb(proc.pid)
            if kb:
                samples.append(kb / 1024)
            time.sleep(POLL_S)
            if time.perf_counter() - start > TIMEOUT_S:
                proc.kill()
        wall = time.perf_counter() - start
        stdout = proc.stdout.read() if proc.stdout else ""
        err.seek(0)
        tail = err.read()[-2000:]
    half = samples[len(samples) // 2 :]
    return {
        "wall_s": wall,
        "rc": proc.returncode,
        "rss_max_mb": max(samples, default=float("nan")),
        "rss_steady_mb": statistics.median(half) if half else float("nan"),
        "stdout": stdout,
        "stderr_tail": tail,
    }


def cli_available(env: dict[str, str]) -> bool:
    """Whether ``facegate run`` exists in this checkout."""
    cmd = [sys.executable, "-m", "facegate.cli", "run", "--help"]
    return subprocess.run(cmd, capture_output=True, env=env, timeout=120).returncode == 0


def _cli_gallery(home: Path, env: dict[str, str]) -> Path:
    gallery = home / "gallery.db"
    cmd = [
        sys.executable,
        "-m",
        "facegate.cli",
        "gallery",
        "enroll",
        "--gallery",
        str(gallery),
        "--bundle",
        str(bundle_dir()),
        "lin_manuel_miranda",
        str(ENROL),
    ]
    subprocess.run(cmd, capture_output=True, env=env, timeout=300)
    return gallery


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(home: Path) -> Path:
    """A config whose /health server takes a free port (8765 may be busy on a shared machine)."""
    path = home / f"config-{time.monotonic_ns()}.toml"
    path.write_text(f"[http]\nport = {_free_port()}\n")
    return path


def measure_cli(home: Path, env: dict[str, str], reps: int) -> dict:
    """Cold start on a one-JPEG folder (``reps`` times) and RSS over the clip, via the CLI."""
    folder = home / "one"
    folder.mkdir()
    shutil.copy(PHOTO, folder / PHOTO.name)
    gallery = _cli_gallery(home, env)
    base = [
        sys.executable,
        "-m",
        "facegate.cli",
        "run",
        "--bundle",
        str(bundle_dir()),
        "--gallery",
        str(gallery),
    ]
    runs = []
    for k in tracked(list(range(reps)), "cold start: facegate run"):
        sink = f"jsonl:{home / f'cold{k}.jsonl'}"
        cmd = [*base, "--config", str(_config(home)), "--source", str(folder), "--sink", sink]
        runs.append(watch(cmd, env))
    sink = f"jsonl:{home / 'clip.jsonl'}"
    clip = watch(
        [*base, "--config", str(_config(home)), "--source", str(CLIP), "--sink", sink], env
    )
    events = home / "clip.jsonl"
    clip["events"] = len(events.read_text().splitlines()) if events.exists() else 0
    ok = [r for r in runs if r["rc"] == 0]
    logged = [float(m[1]) for r in ok if (m := FIRST_FRAME_LOG.search(r["stderr_tail"]))]
    return {
        "command": " ".join([*base[1:], "--source", "DIR", "--sink", "jsonl:PATH"]),
        "cold_start_s": statistics.median(r["wall_s"] for r in ok) if ok else None,
        "first_frame_logged_s": statistics.median(logged) if logged else None,
        "cold_runs": [{k: r[k] for k in ("wall_s", "rc", "rss_max_mb")} for r in runs],
        "failed": [r["stderr_tail"] for r in runs if r["rc"] != 0][:1],
        "clip": {k: v for k, v in clip.items() if k != "stdout"},
    }


def _probe_clip(base: list[str], env: dict[str, str], backend: str) -> dict:
    """The stand-in over the clip on ``backend``: RSS max and where it grew."""
    cmd = [*base, "--backend", backend, "--clip", str(CLIP), "--enrol", str(ENROL)]
    clip = watch(cmd, env)
    out = json.loads(clip["stdout"].splitlines()[-1]) if clip["rc"] == 0 else {}
    return {"rss_max_mb": clip["rss_max_mb"], "rss_mb_after": out.get("rss_mb_after")}


def measure_probe(env: dict[str, str], reps: int) -> dict:
    """The same with benchmarks.coldstart_probe: phases of the start, RSS over the clip."""
    base = [sys.executable, "-m", "benchmarks.coldstart_probe", str(bundle_dir())]
    runs = []
    for _ in tracked(list(range(reps)), "cold start: from_bundle + identify"):
        r = watch([*base, "--image", str(PHOTO)], env)
        r["phases"] = json.loads(r["stdout"].splitlines()[-1]) if r["rc"] == 0 else None
        runs.append(r)
    clip = watch([*base, "--clip", str(CLIP), "--enrol", str(ENROL)], env)
    ok = [r for r in runs if r["phases"]]
    clip_out = json.loads(clip["stdout"].splitlines()[-1]) if clip["rc"] == 0 else {}
    phases = (
        {
            k: statistics.median(r["phases"][k] for r in ok)
            for k in ("import_s", "open_s", "first_frame_s")
        }
        if ok
        else {}
    )
    return {
        "cold_start_s": statistics.median(r["wall_s"] for r in ok) if ok else None,
        "phases_s": phases,
        "first_frame_peak_rss_mb": statistics.median(r["phases"]["peak_rss_mb"] for r in ok)
        if ok
        else None,
        "clip": {k: v for k, v in clip.items() if k not in ("stdout", "stderr_tail")},
        "clip_peak_rss_mb": clip_out.get("peak_rss_mb"),
        "clip_onnxruntime": _probe_clip(base, env, "onnxruntime"),
        "rss_mb_after": clip_out.get("rss_mb_after"),
        "backend": clip_out.get("backend"),
    }


def run(quick: bool) -> dict:
    """Cold start and memory of the daemon (if present) and of the in-process stand-in."""
    reps = 2 if quick else 7
    with tempfile.TemporaryDirectory(prefix="facegate-cold-") as tmp:
        home = Path(tmp)
        env = {**os.environ, "FACEGATE_HOME": str(home / "state")}
        result: dict = {"photo": str(PHOTO), "clip": str(CLIP)}
        if cli_available(env):
            result["cli"] = measure_cli(home, env, reps)
        else:
            result["cli"] = {"skipped": "`python -m facegate.cli run` is not available"}
        result["probe"] = measure_probe(env, reps)
    return result
