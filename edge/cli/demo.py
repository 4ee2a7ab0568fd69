"""``facegate demo``: the main job on the bundled sample photos, with nothing to prepare."""

from __future__ import annotations

import argparse
import shutil

from edge.cli.common import add_recognizer_options, console, load_bundle, recognizer
from edge.cli.recognise import identify_files, print_identify
from edge.enroll import template_from_file
from edge.errors import FacegateError
from edge.gallery.store import GalleryStore
from edge.paths import ensure_private_dir, state_dir

# Who is enrolled from which sample photo; every other sample photo is identified.
DEMO_ENROL = {"obama": "obama.jpg", "biden": "biden.jpg"}


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``demo``."""
    p = sub.add_parser("demo", help="enrol and identify the bundled sample photos")
    add_recognizer_options(p)
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    """Enrol two people from sample photos into a scratch gallery, identify the rest."""
    bundle = load_bundle(args.bundle)
    samples = bundle.root / "samples"
    photos = sorted(samples.glob("*.jpg"))
    if not photos:
        raise FacegateError(f"bundle {bundle.name} has no sample photos in {samples}")
    rec = recognizer(args)
    folder = state_dir() / "demo"
    shutil.rmtree(folder, ignore_errors=True)
    ensure_private_dir(folder)
    out = console()
    with GalleryStore.open(folder / "gallery.db", rec.model_id, rec.embedder.size) as store:
        for name, file in DEMO_ENROL.items():
            outcome = template_from_file(rec, samples / file)
            if outcome.template is None:
                raise FacegateError(f"demo: cannot enrol {name} from {file}: {outcome.reason}")
            store.enroll(name, [outcome.template])
            out.print(f"enrolled {name} from {file}")
        rec.set_gallery(store.snapshot())
    probes = [p for p in photos if p.name not in DEMO_ENROL.values()]
    items, _ = identify_files(rec, probes)
    print_identify(
        [{k: v for k, v in it.items() if not k.startswith("_")} for it in items],
        rec.config.threshold,
    )
    return 0
