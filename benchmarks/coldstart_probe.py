"""A fresh-process stand-in for the daemon: open the bundle, process a photo or a whole clip.

Run as ``python -m benchmarks.coldstart_probe BUNDLE (--image PATH | --clip PATH)``; prints one
JSON line with the time of each phase since the interpreter started (imports, opening the models,
first frame) and the peak resident memory. The parent measures wall time and RSS from outside.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

T0 = time.perf_counter()


def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory (or its peak, ``VmHWM``) in MiB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


RSS = {"interpreter": rss_mb()}
import numpy  # noqa: E402

RSS["numpy"] = rss_mb()
import cv2  # noqa: E402

RSS["cv2"] = rss_mb()
import onnxruntime  # noqa: E402, F401

RSS["onnxruntime"] = rss_mb()

from facegate.bundle import Bundle  # noqa: E402
from facegate.service.pipeline import Pipeline, PipelineSettings  # noqa: E402
from facegate.types import Frame  # noqa: E402
from facegate.vision.recognizer import Recognizer, RecognizerConfig  # noqa: E402

RSS["edge"] = rss_mb()
IMPORTED = time.perf_counter()


def _clip(pipe: Pipeline, path: str) -> int:
    cap = cv2.VideoCapture(path)
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    n = 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        pipe.process(Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), n / fps, n, "clip"))
        n += 1
    return n


def enrol(rec: Recognizer, photo: str | None) -> None:
    """A one-person gallery from ``photo`` (without importing the benchmark harness)."""
    if not photo:
        return
    from facegate.gallery.enroll import template_from_file
    from facegate.gallery.store import GallerySnapshot

    t = template_from_file(rec, Path(photo)).template
    if t is not None:
        owners = numpy.zeros(1, numpy.int64)
        rec.set_gallery(GallerySnapshot(("enrolled",), t.embedding[None], owners, rec.model_id, 1))


def main() -> None:
    """Open, process, report."""
    parser = argparse.ArgumentParser()
    parser.add_argument("bundle")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--image")
    parser.add_argument("--clip")
    parser.add_argument("--enrol", help="photo of the one person to enrol before the clip")
    args = parser.parse_args()
    config = RecognizerConfig(backend=args.backend, threads=1)
    rec = Recognizer.from_bundle(Bundle.load(Path(args.bundle)), config)
    opened = time.perf_counter()
    RSS["models open"] = rss_mb()
    out = {"import_s": IMPORTED - T0, "open_s": opened - IMPORTED}
    if args.image:
        from facegate.vision.image import load_image

        faces = rec.identify(load_image(args.image))
        out["first_frame_s"] = time.perf_counter() - opened
        out["faces"] = len(faces)
        RSS["first frame"] = rss_mb()
    if args.clip:
        enrol(rec, args.enrol)
        out["frames"] = _clip(Pipeline(rec, PipelineSettings()), args.clip)
        RSS["after clip"] = rss_mb()
    out["peak_rss_mb"] = rss_mb("VmHWM")
    out["rss_mb_after"] = RSS
    out["backend"] = type(rec.embedder.backend).__name__
    print(json.dumps(out))


if __name__ == "__main__":
    main()
