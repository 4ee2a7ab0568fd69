"""``facegate demo``: the daemon on the bundled sample photos, with nothing to prepare.

Enrols two people from sample photos into a scratch state dir, then runs the real service loop
(`facegate run`) over the folder of sample photos and prints its events as JSON lines.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil

from rich.console import Console

from facegate.cli.common import add_recognizer_options, console, load_bundle, recognizer, safe
from facegate.errors import FacegateError
from facegate.gallery.enroll import template_from_file
from facegate.gallery.store import GalleryStore
from facegate.host.paths import ensure_private_dir, state_dir
from facegate.text import display_path

# Who is enrolled from which sample photo; the daemon then watches the whole folder.
DEMO_ENROL = {"obama": "obama.jpg", "biden": "biden.jpg"}
DEMO_HTTP_PORT = 0  # no endpoint needed for a one-shot demo


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``demo``."""
    p = sub.add_parser("demo", help="enrol two sample people, run the daemon over sample photos")
    add_recognizer_options(p)
    p.add_argument(
        "--json",
        action="store_true",
        help="stdout carries only the events (JSON lines); progress goes to stderr",
    )
    p.set_defaults(func=cmd_demo)


def _out(args: argparse.Namespace) -> Console:
    """Where progress lines go: stdout, or stderr when stdout is for JSON only."""
    return Console(stderr=True, highlight=False) if args.json else console()


def _enrol(args: argparse.Namespace, folder: os.PathLike, gallery: os.PathLike) -> None:
    rec = recognizer(args)
    out = _out(args)
    with GalleryStore.open(gallery, rec.model_id, rec.embedder.size) as store:
        for name, file in DEMO_ENROL.items():
            outcome = template_from_file(rec, folder / file)
            if outcome.template is None:
                raise FacegateError(f"demo: cannot enrol {name} from {file}: {outcome.reason}")
            store.enroll(name, [outcome.template])
            out.print(f"enrolled {name} from {file}", highlight=False)


def cmd_demo(args: argparse.Namespace) -> int:
    """Enrol, then run the daemon over the sample photos and print its events."""
    from facegate import config as cfg
    from facegate.service import daemon

    bundle = load_bundle(args.bundle)
    samples = bundle.root / "samples"
    if not any(samples.glob("*.jpg")):
        raise FacegateError(f"bundle {bundle.name} has no sample photos in {samples}")
    scratch = state_dir() / "demo"
    shutil.rmtree(scratch, ignore_errors=True)
    ensure_private_dir(scratch)
    _enrol(args, samples, scratch / "gallery.db")
    config = cfg.apply_overrides(
        cfg.default(), source=str(samples), sinks=["jsonl:-"], camera="demo",
        bundle=str(bundle.root), backend=args.backend, precision=args.precision,
        threads=args.threads, threshold=args.threshold, gallery=str(scratch / "gallery.db"))
    # Photos are single frames of unrelated scenes: one vote names a face, and no track
    # carries over from one photo to the next (IoU 1.0 never matches another photo's box).
    config = dataclasses.replace(
        config,
        recognition=dataclasses.replace(config.recognition, votes=1, unknown_after=1),
        tracker=dataclasses.replace(config.tracker, max_missed=1, iou_threshold=1.0),
        snapshots=dataclasses.replace(config.snapshots, dir=str(scratch / "snapshots")),
        http=dataclasses.replace(config.http, enabled=False))
    _out(args).print(
        f"running the daemon over {safe(display_path(samples))} (events as JSON lines):"
    )
    return daemon.run(config)
