"""Section 2: end-to-end frame rate of the Pipeline on the real clips of ../shared/video.

Lin-Manuel Miranda is enrolled from his one photo first. Every frame is read with
cv2.VideoCapture and handed to Pipeline.process with its video timestamp (index / fps), so the
tracker's timeouts follow video time; the wall time of decode and of process are kept apart.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import cv2
import numpy as np

from benchmarks.common import FACES, VIDEO, recognizer, summary, timed, tracked
from facegate.gallery.enroll import template_from_file
from facegate.gallery.store import GallerySnapshot
from facegate.service.pipeline import Pipeline, PipelineSettings
from facegate.types import Frame
from facegate.vision.recognizer import Recognizer

ENROL = FACES / "face_recognition" / "lin_manuel_miranda" / "lin-manuel-miranda.png"
QUICK_FRAMES = 30


def enrol(rec: Recognizer) -> None:
    """Give ``rec`` a one-person gallery: Lin-Manuel Miranda from his photo."""
    outcome = template_from_file(rec, ENROL)
    if outcome.template is None:
        raise RuntimeError(f"cannot enrol {ENROL}: {outcome.reason}")
    emb = outcome.template.embedding[None].astype(np.float32)
    snap = GallerySnapshot(("lin_manuel_miranda",), emb, np.zeros(1, np.int64), rec.model_id, 1)
    rec.set_gallery(snap)


def _frames(clip: Path, limit: int | None) -> tuple[list[tuple[float, np.ndarray]], float, int]:
    """Decoded RGB frames (with decode ms each), the clip's fps and its frame count."""
    cap = cv2.VideoCapture(str(clip))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    frames = []
    while limit is None or len(frames) < limit:
        ms, (ok, bgr) = timed(cap.read)
        if not ok:
            break
        frames.append((ms, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    cap.release()
    return frames, fps, total


def play(rec: Recognizer, clip: Path, limit: int | None) -> dict:
    """Run every frame of ``clip`` through a fresh Pipeline; frame rate and events."""
    frames, fps, total = _frames(clip, limit)
    pipe = Pipeline(rec, PipelineSettings(camera=clip.stem))
    process_ms, events = [], []
    for index, (_, image) in enumerate(tracked(frames, f"{clip.name}")):
        frame = Frame(image, index / fps, index, clip.name)
        ms, out = timed(lambda f=frame: pipe.process(f))
        process_ms.append(ms)
        events.extend(out)
    events.extend(pipe.finish(len(frames) / fps))
    decode_ms = [d for d, _ in frames]
    h, w = frames[0][1].shape[:2] if frames else (0, 0)
    return {
        "clip": clip.name,
        "size": f"{w}x{h}",
        "frames": len(frames),
        "clip_frames": total,
        "clip_fps": fps,
        "process_ms": summary(process_ms),
        "decode_ms": summary(decode_ms),
        "fps_process": 1000 * len(frames) / max(1e-9, sum(process_ms)),
        "fps_with_decode": 1000 * len(frames) / max(1e-9, sum(process_ms) + sum(decode_ms)),
        "realtime": 1000 / fps >= statistics.median(process_ms) if process_ms else None,
        "stage_ms": pipe.metrics.stage_ms(),
        "counters": dict(pipe.metrics.counters),
        "events": [e.kind + (f":{e.person}" if e.person else "") for e in events],
    }


def run(quick: bool) -> dict:
    """Every clip on both backends (fp32, one thread)."""
    rows = []
    clips = sorted(VIDEO.glob("*.mp4"))
    for backend in ("onnxruntime", "litert"):
        rec = recognizer(backend, "fp32")
        enrol(rec)
        for clip in clips:
            rows.append({"backend": backend, **play(rec, clip, QUICK_FRAMES if quick else None)})
    return {"enrolled": str(ENROL), "rows": rows}
