"""``facegate unknowns``: list, show, label, ignore, reopen, purge, matches, correct.

Reads and writes the unknown faces the daemon kept in the gallery file (``[unknowns]``); no
model is loaded: the gallery's own model is used.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.table import Table

from facegate.cli.common import add_gallery_option, console, emit_json, gallery_path, safe
from facegate.errors import FacegateError
from facegate.gallery.unknowns import ClusterSummary, UnknownStore
from facegate.host.paths import ensure_private_dir
from facegate.host.permissions import write_private


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``unknowns`` command group."""
    p = sub.add_parser("unknowns", help="review unknown faces: clusters to label or ignore")
    usub = p.add_subparsers(dest="unknowns_command", required=True, metavar="ACTION")
    q = usub.add_parser("list", help="clusters of unknown faces, latest first")
    q.add_argument("--all", action="store_true", help="include ignored clusters")
    q.set_defaults(func=cmd_list)
    q = usub.add_parser("show", help="one cluster's sightings (time, camera, quality)")
    q.add_argument("id", type=int, help="cluster id (see `unknowns list`)")
    q.add_argument("--export", type=Path, metavar="DIR", help="write the crops there (0600)")
    q.set_defaults(func=cmd_show)
    q = usub.add_parser("label", help="enrol a cluster's best crops as NAME (new or existing)")
    q.add_argument("id", type=int)
    q.add_argument("name")
    q.add_argument("--max-crops", type=int, default=5, help="crops enrolled, best first")
    q.set_defaults(func=cmd_label)
    for name, helptext in (
        ("ignore", "a known stranger: faces of this cluster raise no 'unknown' event"),
        ("reopen", "undo ignore"),
    ):
        q = usub.add_parser(name, help=helptext)
        q.add_argument("id", type=int)
        q.set_defaults(func=cmd_state, state=name)
    q = usub.add_parser("purge", help="delete unknown faces: older than DAYS, or all")
    which = q.add_mutually_exclusive_group(required=True)
    which.add_argument("--older-than", type=float, metavar="DAYS")
    which.add_argument("--all", action="store_true", help="every sighting and cluster")
    q.add_argument("--yes", action="store_true", help="do not ask")
    q.set_defaults(func=cmd_purge)
    q = usub.add_parser("matches", help="recent recognitions that can still be corrected")
    q.set_defaults(func=cmd_matches)
    q = usub.add_parser("correct", help="'not this person': a recognized visit was someone else")
    q.add_argument("visit", help="the visit_id of the wrong 'recognized' event")
    q.set_defaults(func=cmd_correct)
    for q in usub.choices.values():
        add_gallery_option(q)
        q.add_argument("--json", action="store_true", help="machine-readable output")


def _open(args: argparse.Namespace) -> UnknownStore:
    return UnknownStore.open(gallery_path(args))


def _when(ts: float) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
    except (OverflowError, OSError, ValueError):
        return "?"


def _summary(c: ClusterSummary) -> dict[str, object]:
    return {
        "id": c.id,
        "size": c.size,
        "first_seen": c.first_seen,
        "last_seen": c.last_seen,
        "cameras": list(c.cameras),
        "state": c.state,
        "label": c.label,
    }


def cmd_list(args: argparse.Namespace) -> int:
    """List clusters, latest first."""
    with _open(args) as store:
        found = store.clusters(include_ignored=args.all)
    if args.json:
        emit_json([_summary(c) for c in found])
        return 0
    t = Table(title=f"{len(found)} unknown cluster(s)")
    for col in ("id", "faces", "first seen", "last seen", "cameras", "state"):
        t.add_column(col, justify="right" if col in ("id", "faces") else "left")
    for c in found:
        state = f"labelled {safe(c.label)}" if c.state == "labelled" else c.state
        cams = safe(", ".join(c.cameras))
        t.add_row(str(c.id), str(c.size), _when(c.first_seen), _when(c.last_seen), cams, state)
    console().print(t)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """Show a cluster's sightings; ``--export DIR`` writes their crops as 0600 JPEGs."""
    with _open(args) as store:
        cluster = store.cluster(args.id)
        sightings = store.sightings(args.id)
        written = _export(store, [s.id for s in sightings], args.export) if args.export else []
    rows = [
        {"id": s.id, "time": s.time, "camera": s.camera, "quality": round(s.quality, 3)}
        for s in sightings
    ]
    if args.json:
        emit_json({**_summary(cluster), "sightings": rows, "exported": written})
        return 0
    t = Table(title=f"cluster {cluster.id}: {cluster.size} face(s), {cluster.state}")
    for col in ("sighting", "time", "camera", "quality"):
        t.add_column(col)
    for s in sightings:
        t.add_row(str(s.id), _when(s.time), safe(s.camera), f"{s.quality:.2f}")
    console().print(t)
    if written:
        console().print(f"wrote {len(written)} crop(s) to {safe(args.export)}")
    return 0


def _export(store: UnknownStore, ids: list[int], folder: Path) -> list[str]:
    if folder.exists() and not folder.is_dir():
        raise FacegateError(f"{safe(folder)} is not a folder")
    ensure_private_dir(folder)
    written = []
    for sighting_id in ids:
        path = folder / f"sighting-{sighting_id}.jpg"
        write_private(path, store.crop(sighting_id))
        written.append(str(path))
    return written


def cmd_label(args: argparse.Namespace) -> int:
    """Enrol a cluster as a person."""
    with _open(args) as store:
        done = store.label(args.id, args.name, args.max_crops)
    _say(
        args,
        {"cluster": done.cluster_id, "name": done.name, "templates_added": done.templates_added},
        f"cluster {done.cluster_id} enrolled as {safe(done.name)}: {done.templates_added}"
        f" template(s) added, {done.total_templates} in all",
    )
    return 0


def cmd_state(args: argparse.Namespace) -> int:
    """Ignore or reopen a cluster."""
    with _open(args) as store:
        (store.ignore if args.state == "ignore" else store.reopen)(args.id)
    state = "ignored" if args.state == "ignore" else "open"
    _say(args, {"cluster": args.id, "state": state}, f"cluster {args.id} is {state}")
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    """Delete sightings after asking (``--yes`` skips the question)."""
    days = None if args.all else args.older_than
    if days is not None and not days >= 0:
        raise FacegateError(f"--older-than must be a number of days >= 0, got {days}")
    what = "every unknown face" if days is None else f"unknown faces older than {days:g} days"
    if not args.yes and not _confirm(f"delete {what}?"):
        console().print("nothing deleted")
        return 1
    with _open(args) as store:
        count = store.purge(days)
    _say(args, {"deleted": count}, f"deleted {count} unknown face(s)")
    return 0


def cmd_matches(args: argparse.Namespace) -> int:
    """List the recent recognitions kept for corrections."""
    with _open(args) as store:
        rows = store.recent_matches()
    if args.json:
        keys = ("visit_id", "person", "time", "camera", "similarity")
        emit_json([dict(zip(keys, row, strict=True)) for row in rows])
        return 0
    t = Table(title=f"{len(rows)} recent recognition(s)")
    for col in ("visit", "person", "time", "camera", "similarity"):
        t.add_column(col)
    for visit, person, when, camera, sim in rows:
        t.add_row(safe(visit), safe(person), _when(when), safe(camera), f"{sim:.3f}")
    console().print(t)
    return 0


def cmd_correct(args: argparse.Namespace) -> int:
    """Keep a wrongly recognized visit's face as a negative example of that person."""
    with _open(args) as store:
        name = store.correct(args.visit)
    _say(
        args,
        {"visit": args.visit, "not": name},
        f"visit {safe(args.visit)} is not {safe(name)}: that face no longer matches them",
    )
    return 0


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        raise FacegateError("refusing to delete without confirmation: add --yes")
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def _say(args: argparse.Namespace, data: dict, text: str) -> None:
    if args.json:
        emit_json(data)
    else:
        console().print(text)
