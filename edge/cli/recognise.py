"""``facegate identify``, ``verify`` and ``demo``: recognition on single images."""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from rich.table import Table

from facegate.cli.common import (
    add_gallery_option,
    add_recognizer_options,
    console,
    emit_json,
    gallery_path,
    recognizer,
    safe,
)
from facegate.errors import FacegateError, ImageError
from facegate.gallery.store import GalleryStore
from facegate.types import FaceResult
from facegate.vision.image import load_image
from facegate.vision.recognizer import Recognizer


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``identify``, ``verify`` and ``demo``."""
    i = sub.add_parser("identify", help="find and name every face in images")
    i.add_argument("images", nargs="+", type=Path)
    i.add_argument("--annotate", type=Path, help="write the (first) image with boxes and names")
    i.set_defaults(func=cmd_identify)
    v = sub.add_parser("verify", help="are two photos the same person?")
    v.add_argument("image1", type=Path)
    v.add_argument("image2", type=Path)
    v.set_defaults(func=cmd_verify)
    for p in (i, v):
        add_recognizer_options(p)
        add_gallery_option(p)
        p.add_argument("--json", action="store_true", help="machine-readable output")


def _result_dict(r: FaceResult) -> dict:
    return {
        "box": [round(v, 1) for v in r.face.box],
        "score": round(r.face.score, 4),
        "landmarks": np.round(r.face.landmarks, 1).tolist(),
        "name": r.name,
        "similarity": round(r.match.similarity, 4) if r.match else None,
        "candidates": [
            {"name": m.name, "similarity": round(m.similarity, 4)} for m in r.candidates
        ],
    }


def annotate(image: np.ndarray, results: list[FaceResult], path: Path) -> None:
    """Draw boxes, landmarks and names on a copy of ``image`` and save it."""
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    thick = max(1, round(max(image.shape[:2]) / 500))
    for r in results:
        x1, y1, x2, y2 = (round(v) for v in r.face.box)
        colour = (60, 200, 60) if r.match else (40, 40, 230)
        cv2.rectangle(bgr, (x1, y1), (x2, y2), colour, thick)
        for x, y in r.face.landmarks:
            cv2.circle(bgr, (round(x), round(y)), thick + 1, (0, 220, 255), -1)
        label = f"{r.name} {r.match.similarity:.2f}" if r.match else "unknown"
        cv2.putText(
            bgr,
            label,
            (x1, max(12, y1 - 6)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5 * thick,
            colour,
            thick,
            cv2.LINE_AA,
        )
    if not cv2.imwrite(str(path), bgr):
        raise FacegateError(f"cannot write {path} (unknown extension or unwritable folder)")


def _with_gallery(args: argparse.Namespace) -> Recognizer:
    rec = recognizer(args)
    path = gallery_path(args)
    if path.exists():
        with GalleryStore.open(path, rec.model_id, rec.embedder.size, readonly=True) as store:
            rec.set_gallery(store.snapshot())
    return rec


def identify_files(rec: Recognizer, paths: list[Path]) -> tuple[list[dict], int]:
    """Identify faces in every file; unreadable files are reported, not raised."""
    out, failures = [], 0
    for path in paths:
        try:
            image = load_image(path)
        except ImageError as err:
            out.append({"image": str(path), "error": str(err)})
            failures += 1
            continue
        results = rec.identify(image)
        out.append(
            {
                "image": str(path),
                "faces": [_result_dict(r) for r in results],
                "_results": results,
                "_pixels": image,
            }
        )
    return out, failures


def cmd_identify(args: argparse.Namespace) -> int:
    """Print every face with its name (or unknown); exit 1 if an image could not be read."""
    rec = _with_gallery(args)
    items, failures = identify_files(rec, args.images)
    if args.annotate:
        first = next((it for it in items if "faces" in it), None)
        if first is not None:
            annotate(first["_pixels"], first["_results"], args.annotate)
    clean = [{k: v for k, v in it.items() if not k.startswith("_")} for it in items]
    if args.json:
        emit_json(clean)
    else:
        print_identify(clean, rec.config.threshold)
    return 1 if failures else 0


def print_identify(items: list[dict], threshold: float) -> None:
    """Human-readable table of identification results."""
    t = Table(title=f"faces (same person at cosine >= {threshold:.2f})")
    for col in ("image", "face", "box (x1,y1,x2,y2)", "name", "similarity"):
        t.add_column(col)
    for it in items:
        shown = safe(it["image"] if len(it["image"]) <= 40 else "…/" + Path(it["image"]).name)
        if "error" in it:
            t.add_row(shown, "-", "-", f"[red]error: {safe(it['error'])}[/red]", "-")
            continue
        if not it["faces"]:
            t.add_row(shown, "-", "-", "no face", "-")
        for n, f in enumerate(it["faces"], 1):
            best = f["candidates"][0]["similarity"] if f["candidates"] else None
            t.add_row(
                shown,
                str(n),
                ",".join(f"{v:.0f}" for v in f["box"]),
                safe(f["name"] or "unknown"),
                f"{f['similarity'] or best or 0:.3f}",
            )
    console().print(t)


def _single(rec: Recognizer, path: Path) -> np.ndarray:
    image = load_image(path)
    faces = rec.detect(image)
    if not faces:
        raise FacegateError(f"{path}: no face found")
    face = max(faces, key=lambda f: f.width * f.height)
    return rec.embed(image, [face])[1][0]


def cmd_verify(args: argparse.Namespace) -> int:
    """Similarity of the largest face in each photo and the same/different verdict."""
    rec = recognizer(args)
    a, b = _single(rec, args.image1), _single(rec, args.image2)
    similarity = float(np.dot(a, b))
    same = similarity >= rec.config.threshold
    if args.json:
        emit_json(
            {
                "similarity": round(similarity, 4),
                "threshold": rec.config.threshold,
                "same_person": same,
            }
        )
    else:
        verdict = "same person" if same else "different people"
        console().print(
            f"similarity {similarity:.3f} (threshold {rec.config.threshold:.2f}): {verdict}"
        )
    return 0
