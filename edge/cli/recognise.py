"""``facegate identify`` and ``verify``: recognition on single images.

File names print with undecodable bytes escaped (``display_path``) and every user string is
markup-escaped before rich sees it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from facegate.cli.common import (
    add_gallery_option,
    add_recognizer_options,
    console,
    emit_json,
    gallery_path,
    load_bundle,
    recognizer,
    safe,
)
from facegate.errors import FacegateError, ImageError
from facegate.gallery.store import GalleryStore
from facegate.host.paths import ensure_private_dir
from facegate.host.permissions import write_private
from facegate.text import display_path
from facegate.types import Face, FaceResult
from facegate.vision.image import load_image
from facegate.vision.recognizer import Recognizer

if TYPE_CHECKING:
    from facegate.vision.liveness import LivenessModel

ANNOTATE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``identify``, ``verify`` and ``demo``."""
    i = sub.add_parser("identify", help="find and name every face in images")
    i.add_argument("images", nargs="+", type=Path)
    i.add_argument(
        "--annotate",
        type=Path,
        metavar="OUT",
        help="write each image with boxes and names (private files): to OUT for one image, "
        "into the folder OUT for several",
    )
    i.add_argument(
        "--liveness",
        action="store_true",
        help="also judge each face live or a presentation attack (an attack is never named)",
    )
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
    """Draw boxes, landmarks and names on a copy of ``image`` and save it as a private file."""
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
    try:
        ok, buf = cv2.imencode(path.suffix or ".jpg", bgr)
    except cv2.error:
        ok = False
    if not ok:
        raise FacegateError(f"cannot write {display_path(path)}: not an image file extension")
    write_private(path, buf.tobytes())


def annotated_paths(out: Path, sources: list[Path], several: bool) -> list[Path]:
    """Where each annotated image goes: ``out`` for one image, else files in the folder ``out``."""
    if not several and not out.is_dir():
        return [out]
    ensure_private_dir(out)
    taken: set[str] = set()
    paths = []
    for src in sources:
        stem, suffix = src.stem, src.suffix.lower()
        if suffix not in ANNOTATE_SUFFIXES:
            stem, suffix = src.name, ".jpg"
        name, n = stem + suffix, 1
        while name in taken:
            n += 1
            name = f"{stem}-{n}{suffix}"
        taken.add(name)
        paths.append(out / name)
    return paths


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
            out.append({"image": display_path(path), "error": str(err)})
            failures += 1
            continue
        results = rec.identify(image)
        out.append(
            {
                "image": display_path(path),
                "faces": [_result_dict(r) for r in results],
                "_results": results,
                "_pixels": image,
            }
        )
    return out, failures


def cmd_identify(args: argparse.Namespace) -> int:
    """Print every face with its name (or unknown); exit 1 if an image could not be read."""
    rec = _with_gallery(args)
    model = None
    if args.liveness:  # opened first: a bundle without the stage is refused before any work
        from facegate.vision.liveness import LivenessModel

        model = LivenessModel.from_bundle(load_bundle(args.bundle), rec.config)
    items, failures = identify_files(rec, args.images)
    if model is not None:
        judge_liveness(items, model)
    if args.annotate:
        read = [(it, path) for it, path in zip(items, args.images, strict=True) if "faces" in it]
        several = len(args.images) > 1
        targets = annotated_paths(args.annotate, [path for _, path in read], several)
        for (it, _), target in zip(read, targets, strict=True):
            annotate(it["_pixels"], it["_results"], target)
            it["annotated"] = display_path(target)
    clean = [{k: v for k, v in it.items() if not k.startswith("_")} for it in items]
    if args.json:
        emit_json(clean)
    else:
        print_identify(clean, rec.config.threshold)
    return 1 if failures else 0


def judge_liveness(items: list[dict], model: LivenessModel) -> None:
    """Add each face's attack score and verdict; a face judged an attack loses its name."""
    for it in items:
        if not it.get("faces"):
            continue
        scores = model.score(it["_pixels"], [r.face for r in it["_results"]])
        for face, score in zip(it["faces"], scores, strict=True):
            face["attack_score"] = round(float(score), 4)
            face["live"] = bool(score < model.spec.threshold)
            if not face["live"]:
                face["name"] = face["similarity"] = None


def print_identify(items: list[dict], threshold: float) -> None:
    """Human-readable table of identification results."""
    from rich.table import Table

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
                "[red]ATTACK[/red]" if f.get("live") is False else safe(f["name"] or "unknown"),
                f"{f['similarity'] or best or 0:.3f}",
            )
    console().print(t)


def _faces(rec: Recognizer, path: Path) -> tuple[list[Face], np.ndarray]:
    """Every face of the photo at ``path`` and their embeddings (no face: an error)."""
    image = load_image(path)
    faces = rec.detect(image)
    if not faces:
        raise FacegateError(f"{display_path(path)}: no face found")
    return faces, rec.embed(image, faces)[1]


def _box(face: Face) -> list[float]:
    return [round(v, 1) for v in face.box]


def verify_pairs(
    rec: Recognizer, path1: Path, path2: Path
) -> tuple[list[Face], list[Face], list[dict]]:
    """Both photos' faces and every cross pair's similarity, best first."""
    faces1, emb1 = _faces(rec, path1)
    faces2, emb2 = _faces(rec, path2)
    sims = emb1 @ emb2.T
    pairs = [
        {"face1": i, "face2": j, "similarity": round(float(sims[i, j]), 4)}
        for i in range(len(faces1))
        for j in range(len(faces2))
    ]
    pairs.sort(key=lambda p: -p["similarity"])
    return faces1, faces2, pairs


def _verify_lines(args: argparse.Namespace, faces1: list, faces2: list, best: dict) -> str:
    a, b = (safe(display_path(p)) for p in (args.image1, args.image2))
    box1 = ",".join(f"{v:.0f}" for v in faces1[best["face1"]].box)
    box2 = ",".join(f"{v:.0f}" for v in faces2[best["face2"]].box)
    if len(faces1) == len(faces2) == 1:
        return f"one face in each photo: {a} at {box1}, {b} at {box2}"
    return (
        f"every face compared ({len(faces1)} x {len(faces2)}), the best pair: "
        f"{a} face {best['face1'] + 1} at {box1} with {b} face {best['face2'] + 1} at {box2}"
    )


def cmd_verify(args: argparse.Namespace) -> int:
    """Compare every face of one photo with every face of the other; judge the best pair."""
    rec = recognizer(args)
    faces1, faces2, pairs = verify_pairs(rec, args.image1, args.image2)
    best, threshold = pairs[0], rec.config.threshold
    same = best["similarity"] >= threshold
    if args.json:
        emit_json(
            {
                "similarity": best["similarity"],
                "threshold": threshold,
                "same_person": same,
                "compared": "every face of image1 with every face of image2; the best pair decides",
                "image1": {"path": display_path(args.image1), "faces": [_box(f) for f in faces1]},
                "image2": {"path": display_path(args.image2), "faces": [_box(f) for f in faces2]},
                "best": best,
                "pairs": pairs,
            }
        )
        return 0
    verdict = "same person" if same else "different people"
    out = console()
    out.print(f"similarity {best['similarity']:.3f} (threshold {threshold:.2f}): {verdict}")
    out.print(_verify_lines(args, faces1, faces2, best), soft_wrap=True)  # paths stay whole
    return 0
