"""What the web page costs: the web stack's imports, and the daemon with the page on and off.

``python -m benchmarks.web [--reps N] [--out FILE]`` prints a table and writes JSON:

- imports: Flask, Flask-WTF (and with them Werkzeug, Jinja2, WTForms, itsdangerous) imported in
  a fresh interpreter that already holds numpy, OpenCV, onnxruntime and waitress (as the daemon
  does): wall time and the VmRSS they add;
- the daemon: ``facegate run`` over the Hamilton clip with ``http.web`` on and off, interleaved;
  the time from process start to its first frame (its own log line) and the peak VmRSS (polled
  every 20 ms). With the page on, the page and the events are fetched once the first frame is
  done (as by someone who opens it while the daemon runs), so the application is built and has
  served; a request during start-up would build it then, on the start's time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import IO

from benchmarks.coldstart import CLIP, ROOT, _cli_gallery, _free_port, _rss_kb
from benchmarks.common import bundle_dir

FIRST_FRAME = re.compile(r"first frame processed ([0-9.]+) s")
POLL_S = 0.02
IMPORTS = """
import time, json
def rss():
    return int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0]) / 1024
import numpy, cv2, onnxruntime, waitress.server
before, start = rss(), time.perf_counter()
import flask, flask_wtf.csrf
print(json.dumps({"import_ms": (time.perf_counter() - start) * 1000, "rss_mb": rss() - before}))
"""


def measure_imports(reps: int) -> dict[str, float]:
    """Median import time and RSS added by the web stack, each in a fresh interpreter."""
    runs = []
    for _ in range(reps):
        out = subprocess.run(
            [sys.executable, "-c", IMPORTS], capture_output=True, text=True, check=True, timeout=120
        )
        runs.append(json.loads(out.stdout))
    return {key: statistics.median(r[key] for r in runs) for key in ("import_ms", "rss_mb")}


def _fetch(port: int, path: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            resp.read()
            return resp.status == 200
    except OSError:
        return False


def _first_frame_seen(err: IO[str]) -> bool:
    """Whether the daemon's log (a file it writes) says its first frame is done."""
    err.seek(0)
    return FIRST_FRAME.search(err.read()) is not None


def run_daemon(home: Path, gallery: Path, web: bool) -> dict[str, float | bool]:
    """One ``facegate run`` over the clip: first-frame time, peak RSS, whether the page served."""
    port = _free_port()
    config = home / f"web-{web}-{time.monotonic_ns()}.toml"
    config.write_text(f"[http]\nport = {port}\nweb = {'true' if web else 'false'}\n")
    cmd = [sys.executable, "-m", "facegate.cli", "run", "--config", str(config)]
    cmd += ["--bundle", str(bundle_dir()), "--gallery", str(gallery), "--source", str(CLIP)]
    cmd += ["--sink", f"jsonl:{home / 'events.jsonl'}"]
    served, peak = False, 0.0
    with tempfile.TemporaryFile("w+") as err:
        env = {**os.environ, "FACEGATE_HOME": str(home)}  # snapshots and unknowns stay here
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT, env=env)
        while proc.poll() is None:
            peak = max(peak, (_rss_kb(proc.pid) or 0) / 1024)
            if web and not served and _first_frame_seen(err):  # as a user who opens it later
                served = _fetch(port, "/") and _fetch(port, "/api/events")
            time.sleep(POLL_S)
        err.seek(0)
        log = err.read()
    found = FIRST_FRAME.search(log)
    if proc.returncode != 0:
        print(log[-1500:], file=sys.stderr)
    return {
        "rc": proc.returncode,
        "first_frame_s": float(found[1]) if found else float("nan"),
        "peak_rss_mb": peak,
        "page_served": served,
    }


def measure_daemon(reps: int) -> dict[str, dict[str, float]]:
    """The daemon with the page off and on, interleaved ``reps`` times; medians."""
    runs: dict[str, list[dict]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        (home / "models").mkdir()
        (home / "models" / "default").symlink_to(bundle_dir())
        gallery = _cli_gallery(home, {**os.environ, "FACEGATE_HOME": str(home)})
        for _ in range(reps):
            for state in ("off", "on"):
                runs[state].append(run_daemon(home, gallery, state == "on"))
    return {
        state: {
            "first_frame_s": statistics.median(r["first_frame_s"] for r in rs),
            "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in rs),
            "page_served": all(r["page_served"] for r in rs) if state == "on" else False,
            "rc": max(r["rc"] for r in rs),
        }
        for state, rs in runs.items()
    }


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table, write the JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--out", type=Path, default=ROOT / "out" / "web.json")
    args = p.parse_args(argv)
    result = {"imports": measure_imports(args.reps), "daemon": measure_daemon(args.reps)}
    imp, d = result["imports"], result["daemon"]
    print(f"web stack imports: {imp['import_ms']:.0f} ms, +{imp['rss_mb']:.1f} MB RSS")
    for state in ("off", "on"):
        r = d[state]
        print(
            f"daemon, page {state:3}: first frame {r['first_frame_s']:.2f} s after start,"
            f" peak RSS {r['peak_rss_mb']:.0f} MB (exit {r['rc']})"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
