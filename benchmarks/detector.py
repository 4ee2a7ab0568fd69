"""Section: facegate's MTCNN against facenet-pytorch 2.6.0's, its reference.

Exactness: both detectors on the same pixels of every photo in ../shared/faces (min face 40,
thresholds 0.6/0.7/0.7, factor 0.709, no padding, every O-Net output kept): faces found by one and
not the other, and the largest box / landmark / score difference of the faces both found.
Speed: the same 640x480 and 1280x720 benchmark frames, facegate (ONNX Runtime and LiteRT, fp32,
one thread) and the reference (torch, one thread) timed in turn, rotating who goes first.
facenet-pytorch runs in its own venv (benchmarks.venvs.MTCNN_REF) as a JSON-lines worker.
"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks import venvs
from benchmarks.common import FACES, console, load_bundle, summary, timed, tracked
from benchmarks.frames import BenchFrame
from benchmarks.workers import Worker
from facegate.vision.detect import MTCNN, MTCNNConfig
from facegate.vision.image import load_image
from facegate.vision.recognizer import prepare_process

SMALL_COORD = 1024  # px: float32 steps are <= 6.1e-5 px below this, finer than 1e-4 px
BACKENDS = {"onnxruntime": "onnx", "litert": "tflite"}
NETS = ("pnet", "rnet", "onet")
SUFFIXES = {".jpg", ".jpeg", ".png"}
# The cascade as the reference runs it: its defaults but min face 40 (facegate's), crops of edge
# boxes clipped, no border retry and no final score floor (facegate's own steps after it).
CASCADE = MTCNNConfig(min_face_size=40.0, pad_mode="never", min_score=0.0, crop="clip")
MATCH_PX = 2.0  # a face of one detector is "the same" as the nearest of the other within this


@dataclass(slots=True)
class Agreement:
    """How two detectors' outputs on the same images differ."""

    images: int = 0
    ref_faces: int = 0
    faces: int = 0
    only_ref: list[str] = field(default_factory=list)
    only_ours: list[str] = field(default_factory=list)
    box_px: list[float] = field(default_factory=list)
    landmark_px: list[float] = field(default_factory=list)
    score: list[float] = field(default_factory=list)
    coord: list[float] = field(default_factory=list)  # largest |coordinate| of each matched face
    worst: list[tuple[float, str]] = field(default_factory=list)

    def add(self, name: str, ref: dict, boxes: np.ndarray, marks: np.ndarray, scores: np.ndarray):
        """Match one image's faces (nearest box) and record their differences."""
        rb = np.asarray(ref["boxes"], np.float64).reshape(-1, 4)
        rl = np.asarray(ref["landmarks"], np.float64).reshape(-1, 5, 2)
        rs = np.asarray(ref["scores"], np.float64).reshape(-1)
        self.images += 1
        self.ref_faces += len(rb)
        self.faces += len(boxes)
        used: set[int] = set()
        for k in range(len(rb)):
            gap = np.abs(boxes - rb[k]).max(axis=1) if len(boxes) else np.array([np.inf])
            j = int(gap.argmin())
            if gap[j] > MATCH_PX or j in used:
                self.only_ref.append(name)
                continue
            used.add(j)
            self.box_px.append(float(gap[j]))
            self.landmark_px.append(float(np.abs(marks[j] - rl[k]).max()))
            self.score.append(float(abs(scores[j] - rs[k])))
            self.coord.append(float(max(np.abs(rb[k]).max(), np.abs(rl[k]).max())))
            self.worst.append((max(self.box_px[-1], self.landmark_px[-1]), name))
        self.only_ours.extend(name for j in range(len(boxes)) if j not in used)

    def as_dict(self) -> dict:
        def stats(v: list[float]) -> dict[str, float]:
            a = np.asarray(v or [np.nan])
            return {"median": float(np.median(a)), "p95": float(np.percentile(a, 95)),
                    "max": float(a.max())}  # fmt: skip

        worst = np.maximum(self.box_px, self.landmark_px) if self.coord else np.zeros(0)
        coord = np.asarray(self.coord)
        small = worst[coord < SMALL_COORD] if len(coord) else worst
        return {
            "images": self.images, "ref_faces": self.ref_faces, "faces": self.faces,
            "only_ref": self.only_ref, "only_ours": self.only_ours,
            "box_px": stats(self.box_px), "landmark_px": stats(self.landmark_px),
            "score": stats(self.score), "worst": sorted(self.worst, reverse=True)[:5],
            # the difference in float32 steps at the coordinate's magnitude: the reference
            # computes in float32, so below one step there is nothing left to match
            "float32_steps": stats(list(worst / np.spacing(coord.astype(np.float32)))),
            "px_under_1024": float(small.max()) if len(small) else None,
        }  # fmt: skip


def detector(backend: str, config: MTCNNConfig = CASCADE) -> MTCNN:
    """facegate's MTCNN on the bundle's FP32 nets, one thread."""
    prepare_process(1)  # as Recognizer.from_bundle with one thread
    bundle = load_bundle()
    fmt = BACKENDS[backend]
    return MTCNN(*(bundle.open(bundle.entry(n, fmt), threads=1) for n in NETS), config)


def reference_request(config: MTCNNConfig = CASCADE) -> dict:
    """The worker's detector settings for ``config``."""
    return {"min_face": config.min_face_size, "factor": config.scale_factor,
            "thresholds": list(config.thresholds)}  # fmt: skip


def photos() -> list[Path]:
    """Every photo of ../shared/faces, group shots included."""
    return sorted(p for p in FACES.rglob("*") if p.suffix.lower() in SUFFIXES)


def agreement(worker: Worker, det: MTCNN, images: list[Path], scratch: Path) -> Agreement:
    """Compare ``det`` with the reference on ``images`` (the same decoded pixels for both)."""
    out = Agreement()
    npy = scratch / "image.npy"
    for path in tracked(images, "MTCNN vs facenet-pytorch"):
        pixels = load_image(path)
        np.save(npy, pixels)
        ref = worker.request("detect", path=str(npy), **reference_request(det.config))
        faces = det.detect(pixels)
        boxes = np.array([f.box for f in faces], np.float64).reshape(-1, 4)
        marks = np.array([f.landmarks for f in faces], np.float64).reshape(-1, 5, 2)
        scores = np.array([f.score for f in faces], np.float64)
        out.add(str(path.relative_to(FACES)), ref, boxes, marks, scores)
    return out


def reference_spread(worker: Worker, config: MTCNNConfig, images: list[Path], scratch: Path):
    """facenet-pytorch with torch's native convolutions against itself with oneDNN's."""
    out = Agreement()
    npy = scratch / "image.npy"
    for path in tracked(images, "facenet-pytorch vs itself"):
        np.save(npy, load_image(path))
        ref = worker.request("detect", path=str(npy), **reference_request(config))
        other = worker.request("detect", path=str(npy), onednn=False, **reference_request(config))
        boxes = np.asarray(other["boxes"], np.float64).reshape(-1, 4)
        marks = np.asarray(other["landmarks"], np.float64).reshape(-1, 5, 2)
        out.add(str(path.relative_to(FACES)), ref, boxes, marks, np.asarray(other["scores"]))
    return out


def _speed(worker: Worker, dets: dict[str, MTCNN], frame: BenchFrame, reps: int, npy: Path):
    np.save(npy, frame.image)
    request = reference_request()

    def ref() -> float:
        return worker.request("time", path=str(npy), reps=1, **request)["ms"][0]

    calls = {n: (lambda d=d: timed(lambda: d.detect(frame.image))[0]) for n, d in dets.items()}
    calls["facenet-pytorch"] = ref
    for call in calls.values():
        call()  # warm-up
    names = list(calls)
    times: dict[str, list[float]] = {n: [] for n in names}
    for k in range(reps):
        for j in range(len(names)):
            name = names[(j + k) % len(names)]
            times[name].append(calls[name]())
    row: dict = {"frame": frame.name, "ms": {n: summary(t) for n, t in times.items()}}
    peer = statistics.median(times["facenet-pytorch"])
    row["ratio"] = {n: peer / statistics.median(times[n]) for n in dets}
    row["faces"] = {n: len(d.detect(frame.image)) for n, d in dets.items()}
    return row


def run(frames: list[BenchFrame], quick: bool, install: bool, out: Path) -> dict:
    """Exactness on shared/faces and speed on the benchmark frames, against facenet-pytorch."""
    python = venvs.ensure(venvs.MTCNN_REF, install)
    if python is None:
        console.print("[yellow]detector: no facenet-pytorch venv: section skipped")
        return {"skipped": "facenet-pytorch venv not available"}
    dets = {b: detector(b) for b in BACKENDS}
    with (
        tempfile.TemporaryDirectory(prefix="facegate-mtcnn-") as tmp,
        Worker(python, "mtcnn_ref_worker.py", out / "mtcnn-ref-worker.log") as worker,
    ):
        scratch = Path(tmp)
        result: dict = {"versions": worker.request("info")}
        images = photos()[:: 8 if quick else 1]
        result["exactness"] = {b: agreement(worker, d, images, scratch).as_dict()
                               for b, d in dets.items()}  # fmt: skip
        result["reference_spread"] = reference_spread(worker, CASCADE, images, scratch).as_dict()
        reps = 3 if quick else 15
        result["speed"] = [_speed(worker, dets, fr, reps, scratch / "frame.npy")
                           for fr in tracked(frames, "detector speed")]  # fmt: skip
    return result
