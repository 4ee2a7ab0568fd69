"""The peer (face_recognition 1.3.0 on dlib) as a JSON-lines worker; runs in the peer venv.

Requests on stdin, one JSON object per line; one JSON reply per line on the real stdout (anything
the libraries print goes to stderr). Ops: ``load`` (keep a PNG in memory), ``time`` (HOG detect
with one upsample + 128-d encodings, timed here so pipe overhead is not counted), ``embed`` (the
encoding of the largest face of a photo, for verification), ``quit``.
"""

from __future__ import annotations

import json
import os
import sys
import time

import face_recognition
import numpy as np
from PIL import Image, ImageOps

UPSAMPLE = 1  # face_locations' default number_of_times_to_upsample
MODEL = "hog"
_images: dict[str, np.ndarray] = {}


def _read(path: str, max_side: int | None = None) -> tuple[np.ndarray, float]:
    """RGB pixels upright per EXIF, downscaled to ``max_side``; and the downscale factor."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
        scale = 1.0
        if max_side and max(im.size) > max_side:
            scale = max_side / max(im.size)
            im = im.resize((round(im.width * scale), round(im.height * scale)), Image.BILINEAR)
        return np.asarray(im), scale


def _time(key: str, reps: int) -> dict:
    image = _images[key]
    out: dict[str, list[float]] = {"ms": [], "detect_ms": [], "encode_ms": [], "cpu_ms": []}
    faces = 0
    for _ in range(reps):
        cpu, t0 = time.process_time(), time.perf_counter()
        boxes = face_recognition.face_locations(image, UPSAMPLE, MODEL)
        t1 = time.perf_counter()
        face_recognition.face_encodings(image, boxes)
        t2 = time.perf_counter()
        out["ms"].append(1000 * (t2 - t0))
        out["detect_ms"].append(1000 * (t1 - t0))
        out["encode_ms"].append(1000 * (t2 - t1))
        out["cpu_ms"].append(1000 * (time.process_time() - cpu))
        faces = len(boxes)
    return {**out, "faces": faces}


def _embed(path: str, max_side: int) -> dict:
    small, scale = _read(path, max_side)
    boxes = face_recognition.face_locations(small, UPSAMPLE, MODEL)
    if not boxes:
        return {"faces": 0, "encoding": None}
    top, right, bottom, left = max(boxes, key=lambda b: (b[2] - b[0]) * (b[1] - b[3]))
    full = small if scale == 1.0 else _read(path)[0]
    box = tuple(round(v / scale) for v in (top, right, bottom, left))
    enc = face_recognition.face_encodings(full, [box])[0]
    return {"faces": len(boxes), "encoding": [float(v) for v in enc]}


def handle(req: dict) -> dict:
    """Answer one request."""
    op = req["op"]
    if op == "load":
        _images[req["id"]] = _read(req["path"])[0]
        return {"shape": list(_images[req["id"]].shape)}
    if op == "time":
        return _time(req["id"], int(req.get("reps", 1)))
    if op == "embed":
        return _embed(req["path"], int(req["max_side"]))
    if op == "info":
        import dlib

        return {"dlib": dlib.__version__, "face_recognition": face_recognition.__version__}
    raise ValueError(f"unknown op {op!r}")


def main() -> None:
    """Serve requests until ``quit`` or end of input."""
    reply = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr
    for line in sys.stdin:
        req = json.loads(line)
        if req["op"] == "quit":
            break
        try:
            reply.write(json.dumps({"ok": True, **handle(req)}) + "\n")
        except Exception as err:  # report to the parent, keep serving
            reply.write(json.dumps({"ok": False, "error": f"{type(err).__name__}: {err}"}) + "\n")


if __name__ == "__main__":
    main()
