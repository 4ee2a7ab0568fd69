"""Section 3: facegate against face_recognition 1.3.0 (dlib HOG + ResNet encodings).

The peer runs in its own venv (benchmarks.venvs.PEER) as a subprocess worker that times itself.
Speed: per frame, facegate's detect+align+embed+match (onnxruntime and LiteRT, fp32, one thread)
and the peer's ``face_locations(model="hog")`` (one upsample, the default) + ``face_encodings``
run in turn on the same pixels, rotating who goes first, so load from other work hits all alike.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from functools import partial
from pathlib import Path

from benchmarks import accuracy, venvs
from benchmarks.common import console, recognizer, summary, tracked
from benchmarks.frames import BenchFrame
from benchmarks.stages import GALLERY_TEMPLATES, STAGES, chain
from benchmarks.synthetic import snapshot
from benchmarks.workers import Worker
from facegate.vision.recognizer import Recognizer

SYSTEMS = ("onnxruntime", "litert")


def _facegate(rec: Recognizer, frame: BenchFrame, found: dict) -> float:
    ms, n = chain(rec, frame)
    found[frame.name] = n
    return sum(ms[s] for s in STAGES[1:])  # decode is not part of the comparison


def _peer(worker: Worker, frame: BenchFrame, found: dict, cpu: list[float]) -> float:
    reply = worker.request("time", id=frame.name, reps=1)
    found[frame.name] = reply["faces"]
    cpu.append(reply["cpu_ms"][0] / reply["ms"][0])
    return reply["ms"][0]


def _row(frame: BenchFrame, times: dict[str, list[float]], found: dict[str, dict]) -> dict:
    peer = times["peer"]
    row: dict = {"frame": frame.name, "faces_pasted": frame.faces, "peer_ms": summary(peer)}
    row["peer_faces"] = found["peer"][frame.name]
    for system in SYSTEMS:
        mine = times[system]
        n = max(1, found[system][frame.name])
        row[system] = {
            "ms": summary(mine),
            "faces": found[system][frame.name],
            "ratio": statistics.median(peer) / statistics.median(mine),
            "paired_ratio": statistics.median(p / m for p, m in zip(peer, mine, strict=True)),
            "ms_per_face": statistics.median(mine) / n,
        }
    row["peer_ms_per_face"] = statistics.median(peer) / max(1, row["peer_faces"])
    return row


def _frame(worker: Worker, recs: dict[str, Recognizer], frame: BenchFrame, reps: int) -> dict:
    """Interleaved timings of one frame; its row of the speed table."""
    worker.request("load", id=frame.name, path=str(frame.png))
    found: dict[str, dict] = {"peer": {}, **{s: {} for s in SYSTEMS}}
    cpu: list[float] = []
    calls: dict[str, Callable[[], float]] = {
        s: partial(_facegate, recs[s], frame, found[s]) for s in SYSTEMS
    }
    calls["peer"] = partial(_peer, worker, frame, found["peer"], cpu)
    for call in calls.values():
        call()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in calls}
    names = list(calls)
    for k in tracked(list(range(reps)), f"peer vs facegate {frame.name}"):
        for j in range(len(names)):
            name = names[(j + k) % len(names)]
            times[name].append(calls[name]())
    row = _row(frame, times, found)
    row["peer_cpu_per_wall"] = statistics.median(cpu)
    return row


def speed(worker: Worker, frames: list[BenchFrame], reps: int) -> list[dict]:
    """Interleaved per-frame timings and speed ratios (peer time / facegate time)."""
    gallery = snapshot(GALLERY_TEMPLATES)
    recs = {s: recognizer(s, "fp32") for s in SYSTEMS}
    for rec in recs.values():
        rec.set_gallery(gallery)
    return [_frame(worker, recs, frame, reps) for frame in frames]


def run(
    frames: list[BenchFrame], quick: bool, install: bool, out: Path, lfw: tuple[Path, Path] | None
) -> dict:
    """Speed ratios per frame, and verification accuracy of both systems on the same pairs."""
    python = venvs.ensure(venvs.PEER, install)
    if python is None:
        console.print("[yellow]peer: no peer venv (installs off or failed): section skipped")
        return {"skipped": "peer venv not available"}
    with Worker(python, "peer_worker.py", out / "peer-worker.log") as worker:
        info = worker.request("info")
        result: dict = {"versions": info, "speed": speed(worker, frames, 2 if quick else 12)}
        if quick:
            result["accuracy"] = {"skipped": "--quick"}
            return result
        result["accuracy"] = [accuracy.compare(accuracy.shared_pairs(), worker)]
        if lfw is not None:
            result["accuracy"].append(accuracy.compare(accuracy.lfw_pairs(*lfw), worker))
    return result
