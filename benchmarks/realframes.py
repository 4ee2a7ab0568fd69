"""Section: real frames, per stage, against face_recognition in the same run.

Four sets, none composed: the first 80 frames of the Hamilton clip (640x360, a speaker on a
stage), every 10th frame of the street clip (1920x1080, people walking), all 5 frames of the
face-api.js test clip (820x460), and the shared group photos (``faces/*/_group*``). Each frame
goes through facegate (LiteRT and ONNX Runtime, fp32, one thread: detect, align, embed, match
against a 1,000-template gallery) and through the peer (face_recognition 1.3.0: HOG detect with
one upsample + encodings, in its own venv) in turn, rotating who goes first. Besides
milliseconds (noisy on a shared machine: compare the ratios) each frame records counts that do
not depend on load: cascades run (a border retry is a second), interpreter calls, candidates left
after P-Net, R-Net and O-Net, and the batch sizes sent.
"""

from __future__ import annotations

import statistics
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from benchmarks import venvs
from benchmarks.common import FACES, VIDEO, console, recognizer, timed, tracked
from benchmarks.probe import NETS, FrameCounts, Probe
from benchmarks.stages import GALLERY_TEMPLATES
from benchmarks.synthetic import snapshot
from benchmarks.workers import Worker
from facegate.vision.image import load_image
from facegate.vision.recognizer import Recognizer

HAMILTON = VIDEO / "face_recognition_short_hamilton_clip.mp4"
STREET = VIDEO / "facenet_pytorch_video.mp4"
FACEAPI = VIDEO / "face_api_js_test_video.mp4"
HAMILTON_FRAMES = 80  # the measurement: the first 80 frames
STREET_STEP = 10  # every 10th frame of the 105: 11 frames (1080p frames cost the peer ~1 s each)
QUICK_FRAMES = 8  # per set with --quick
SYSTEMS = ("litert", "onnxruntime")
FACEGATE_STAGES = ("pnet", "rnet", "onet", "align", "embed", "match")


@dataclass(frozen=True, slots=True)
class RealFrame:
    """One real frame: RGB pixels and the PNG the peer reads (the same pixels)."""

    set: str
    name: str
    image: np.ndarray
    png: Path


def _clip(path: Path, keep: Callable[[int], bool], stop: int) -> list[tuple[int, np.ndarray]]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    for index in range(stop):
        ok, bgr = cap.read()
        if not ok:
            break
        if keep(index):
            frames.append((index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    cap.release()
    return frames


def real_frames(folder: Path, quick: bool) -> list[RealFrame]:
    """The three sets, with PNG copies written to ``folder``."""
    limit = QUICK_FRAMES if quick else None
    sets: dict[str, list[tuple[str, np.ndarray]]] = {
        "hamilton": [
            (f"{i:03d}", im) for i, im in _clip(HAMILTON, lambda i: True, HAMILTON_FRAMES)
        ],
        "street": [
            (f"{i:03d}", im) for i, im in _clip(STREET, lambda i: i % STREET_STEP == 0, 10**6)
        ],
        "faceapi": [(f"{i:03d}", im) for i, im in _clip(FACEAPI, lambda i: True, 10**6)],
        "groups": [(p.name, load_image(p)) for p in sorted(FACES.glob("*/_group*/*"))],
    }
    out = []
    for name, frames in sets.items():
        for label, image in frames[:limit]:
            png = folder / f"{name}-{label}.png"
            cv2.imwrite(str(png), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            out.append(RealFrame(name, label, image, png))
    return out


def _facegate(rec: Recognizer, probe: Probe, frame: RealFrame) -> tuple[dict, FrameCounts, int]:
    """Milliseconds per stage of one frame, the detector's counts, and the faces found."""
    ms: dict[str, float] = {}
    ms["detect"], faces = timed(lambda: rec.detect(frame.image))
    counts = probe.take()
    ms.update(counts.stage_ms)
    ms["align"], aligned = timed(lambda: rec.align(frame.image, faces))
    ms["embed"] = ms["match"] = 0.0
    if faces:
        ms["embed"], vectors = timed(lambda: rec.embedder.embed([a.crop for a in aligned]))
        matcher = rec.matcher
        ms["match"], _ = timed(lambda: matcher.search(vectors) if matcher else [])
    ms["total"] = ms["detect"] + ms["align"] + ms["embed"] + ms["match"]
    return ms, counts, len(faces)


def _counts_dict(c: FrameCounts) -> dict:
    return {
        "cascades": c.cascades,
        "border_retries": c.retries,
        "interpreter_calls": c.interpreter_calls,
        "calls": dict(c.calls),
        "candidates": dict(c.candidates),
        "batches": {n: list(b) for n, b in c.batches.items()},
    }


def _one_frame(systems: dict, worker: Worker, frame: RealFrame, reps: int) -> dict:
    """Interleaved timings of one frame on every system and the peer."""
    worker.request("load", id=frame.png.name, path=str(frame.png))
    runs: dict[str, list] = {k: [] for k in [*systems, "peer"]}
    names = list(runs)
    for k in range(reps + 1):  # the first round warms up (LiteRT plans each new input shape)
        for j in range(len(names)):
            name = names[(j + k) % len(names)]
            if name == "peer":
                runs[name].append(worker.request("time", id=frame.png.name, reps=1))
            else:
                runs[name].append(_facegate(*systems[name], frame))
    row: dict = {"set": frame.set, "frame": frame.name, "size": list(frame.image.shape[:2])}
    for name in systems:
        timed_runs = runs[name][1:]
        row[name] = {
            "ms": {s: statistics.median(r[0][s] for r in timed_runs) for s in timed_runs[0][0]},
            "faces": timed_runs[0][2],
            "counts": _counts_dict(timed_runs[0][1]),
        }
    peer = runs["peer"][1:]
    row["peer"] = {
        "ms": statistics.median(r["ms"][0] for r in peer),
        "detect_ms": statistics.median(r["detect_ms"][0] for r in peer),
        "encode_ms": statistics.median(r["encode_ms"][0] for r in peer),
        "faces": peer[0]["faces"],
    }
    return row


def _set_summary(rows: list[dict]) -> dict:
    """Per-frame means of one set: ms per stage, counts, faces, and the ratio to the peer."""
    n = len(rows)
    out: dict = {"frames": n, "peer_ms": sum(r["peer"]["ms"] for r in rows) / n}
    out["peer_faces"] = sum(r["peer"]["faces"] for r in rows)
    for system in SYSTEMS:
        mine = [r[system] for r in rows]
        ms = {s: sum(m["ms"][s] for m in mine) / n for s in (*FACEGATE_STAGES, "detect", "total")}
        counts = [m["counts"] for m in mine]
        batches: dict[str, Counter] = {net: Counter() for net in NETS}
        for c in counts:
            for net in NETS:
                batches[net].update(c["batches"][net])
        out[system] = {
            "ms_per_frame": ms,
            "ratio": out["peer_ms"] / max(1e-9, ms["total"]),
            "faces": sum(m["faces"] for m in mine),
            "embed_ms_per_face": sum(m["ms"]["embed"] for m in mine)
            / max(1, sum(m["faces"] for m in mine)),
            "cascades": sum(c["cascades"] for c in counts),
            "border_retries": sum(c["border_retries"] for c in counts),
            "interpreter_calls_per_frame": sum(c["interpreter_calls"] for c in counts) / n,
            "candidates_per_frame": {
                net: sum(c["candidates"][net] for c in counts) / n for net in NETS
            },
            "batch_sizes": {net: dict(sorted(b.items())) for net, b in batches.items()},
        }
    return out


def _systems() -> dict[str, tuple[Recognizer, Probe]]:
    gallery = snapshot(GALLERY_TEMPLATES)
    out = {}
    for system in SYSTEMS:
        rec = recognizer(system, "fp32")
        rec.set_gallery(gallery)
        out[system] = (rec, Probe(rec.detector))
    return out


def run(quick: bool, install: bool, out: Path) -> dict:
    """Every real frame on facegate and the peer; per-frame rows and per-set summaries."""
    python = venvs.ensure(venvs.PEER, install)
    if python is None:
        console.print("[yellow]realframes: no peer venv (installs off or failed): section skipped")
        return {"skipped": "peer venv not available"}
    reps = 1 if quick else 3
    systems = _systems()
    with (
        tempfile.TemporaryDirectory(prefix="facegate-real-") as tmp,
        Worker(python, "peer_worker.py", out / "peer-worker.log") as worker,
    ):
        frames = real_frames(Path(tmp), quick)
        rows = [_one_frame(systems, worker, f, reps) for f in tracked(frames, "real frames")]
        versions = worker.request("info")
    sets = {s: _set_summary([r for r in rows if r["set"] == s]) for s in dict.fromkeys(
        r["set"] for r in rows)}  # fmt: skip
    return {"versions": versions, "repetitions": reps, "gallery_templates": GALLERY_TEMPLATES,
            "sets": sets, "rows": rows}  # fmt: skip


def tables(result: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """Per set and system: ms per stage, the ratio to the peer, and the detector's counts."""
    if "sets" not in result:
        return []
    heads = ["set", "system", "frames", "faces", "P-Net", "R-Net", "O-Net", "embed",
             "embed/face", "match",
             "total ms", "peer ms", "x peer", "cascades", "retries", "calls/frame",
             "cand P/R/O per frame"]  # fmt: skip
    rows = []
    for name, s in result["sets"].items():
        for system in SYSTEMS:
            m = s[system]
            ms = m["ms_per_frame"]
            cand = "/".join(f"{m['candidates_per_frame'][n]:.1f}" for n in NETS)
            rows.append([name, system, str(s["frames"]), f"{m['faces']} (peer {s['peer_faces']})",
                         *(f"{ms[k]:.1f}" for k in ("pnet", "rnet", "onet", "embed")),
                         f"{m['embed_ms_per_face']:.1f}", f"{ms['match']:.1f}",
                         f"{ms['total']:.1f}", f"{s['peer_ms']:.1f}", f"{m['ratio']:.1f}",
                         str(m["cascades"]), str(m["border_retries"]),
                         f"{m['interpreter_calls_per_frame']:.1f}", cand])  # fmt: skip
    return [("Real frames: facegate (one thread) and face_recognition, per frame", heads, rows)]
