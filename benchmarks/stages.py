"""Section 1: per-stage latency (decode, detect, align, embed, match) per backend and precision.

Every (backend, precision) recognizer is opened first; then each repetition runs every frame
through every recognizer in turn (rotating the order), so a noisy neighbour slows all equally.
"""

from __future__ import annotations

from collections.abc import Callable

from benchmarks import synthetic
from benchmarks.common import BACKENDS, files_used, load_bundle, precisions, summary, timed, tracked
from benchmarks.frames import BenchFrame
from facegate.vision.image import decode_image
from facegate.vision.recognizer import Recognizer, RecognizerConfig

STAGES = ("decode", "detect", "align", "embed", "match")
GALLERY_TEMPLATES = 1000  # a household-to-office gallery; section 4 scales it up


def chain(rec: Recognizer, frame: BenchFrame) -> tuple[dict[str, float], int]:
    """Milliseconds of each stage for one frame, and the faces found."""
    ms: dict[str, float] = {}
    ms["decode"], image = timed(lambda: decode_image(frame.jpeg))
    ms["detect"], faces = timed(lambda: rec.detect(frame.image))
    ms["align"], aligned = timed(lambda: rec.align(frame.image, faces))
    if not faces:
        ms["embed"] = ms["match"] = 0.0
        return ms, 0
    ms["embed"], vectors = timed(lambda: rec.embed_aligned(aligned))
    ms["match"], _ = timed(lambda: rec.search(vectors))
    del image
    return ms, len(faces)


def recognizers(quick: bool) -> dict[tuple[str, str], Recognizer]:
    """One one-thread recognizer per backend and bundled precision, with a synthetic gallery."""
    bundle = load_bundle()
    gallery = synthetic.snapshot(GALLERY_TEMPLATES)
    out = {}
    for backend in BACKENDS:
        for precision in precisions(bundle):
            cfg = RecognizerConfig(backend=backend, precision=precision, threads=1)
            rec = Recognizer.from_bundle(bundle, cfg)
            rec.set_gallery(gallery)
            out[(backend, precision)] = rec
    return out


def _rotating(calls: list[Callable[[], None]], reps: int, label: str) -> None:
    for k in tracked(list(range(reps)), label):
        for j in range(len(calls)):
            calls[(j + k) % len(calls)]()


def run(frames: list[BenchFrame], quick: bool) -> dict:
    """Measure every stage for every frame and recognizer; medians over the repetitions."""
    recs = recognizers(quick)
    reps = 3 if quick else 30
    samples: dict[tuple, list[dict[str, float]]] = {}
    found: dict[tuple, int] = {}

    def one(key: tuple[str, str], frame: BenchFrame) -> Callable[[], None]:
        def call() -> None:
            ms, n = chain(recs[key], frame)
            samples.setdefault((*key, frame.name), []).append(ms)
            found[(*key, frame.name)] = n

        return call

    calls = [one(key, f) for key in recs for f in frames]
    for call in calls:  # warm-up: LiteRT builds one interpreter per input shape on first use
        call()
    samples.clear()
    _rotating(calls, reps, "per-stage latency")
    bundle = load_bundle()
    rows = []
    for (backend, precision, name), runs in samples.items():
        stages = {s: summary(r[s] for r in runs) for s in STAGES}
        total = summary(sum(r[s] for s in STAGES) for r in runs)
        pipeline = summary(sum(r[s] for s in STAGES[1:]) for r in runs)
        rows.append(
            {
                "backend": backend,
                "precision": precision,
                "frame": name,
                "faces_found": found[(backend, precision, name)],
                "files": files_used(bundle, backend, precision),
                "stages_ms": stages,
                "total_ms": total,
                "detect_to_match_ms": pipeline,
            }
        )
    return {"gallery_templates": GALLERY_TEMPLATES, "repetitions": reps, "rows": rows}
