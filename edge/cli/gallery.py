"""``facegate gallery``: enroll, list, show, rename, remove, export, import, reembed."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
import time
from collections import Counter
from pathlib import Path

from rich.progress import Progress
from rich.table import Table

from facegate.cli.common import (
    add_bundle_options,
    add_gallery_option,
    add_recognizer_options,
    console,
    emit_json,
    gallery_path,
    recognizer,
    safe,
)
from facegate.errors import FacegateError
from facegate.gallery.exchange import export_gallery, import_gallery
from facegate.gallery.rules import NameRefused, normalise_name
from facegate.gallery.store import GalleryStore, OnConflict
from facegate.host.paths import state_dir
from facegate.host.permissions import private_paths, warn_private
from facegate.text import display_path, visible

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
log = logging.getLogger(__name__)
MODEL_ACTIONS = ("enroll", "reembed")  # the actions that run the models (embed photos or crops)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``gallery`` command group."""
    p = sub.add_parser("gallery", help="manage enrolled people")
    gsub = p.add_subparsers(dest="gallery_command", required=True, metavar="ACTION")
    e = gsub.add_parser("enroll", help="enrol NAME from photos, or every sub-folder of --from-dir")
    e.add_argument("name", nargs="?", help="person's name")
    e.add_argument("images", nargs="*", type=Path, help="photos of that person")
    e.add_argument("--from-dir", type=Path, help="folder with one sub-folder of photos per person")
    e.add_argument("--largest", action="store_true", help="take the largest face of a group photo")
    e.set_defaults(func=cmd_enroll)
    for name, func, helptext in (
        ("list", cmd_list, "enrolled people"),
        ("reembed", cmd_reembed, "recompute embeddings with this bundle"),
    ):
        q = gsub.add_parser(name, help=helptext)
        q.set_defaults(func=func)
    s = gsub.add_parser("show", help="one person's templates")
    s.add_argument("name")
    s.set_defaults(func=cmd_show)
    r = gsub.add_parser("rename", help="rename a person")
    r.add_argument("old")
    r.add_argument("new")
    r.set_defaults(func=cmd_rename)
    d = gsub.add_parser("remove", help="delete a person and all their templates")
    d.add_argument("name")
    d.add_argument("--yes", action="store_true", help="do not ask")
    d.set_defaults(func=cmd_remove)
    x = gsub.add_parser(
        "export", help="write a portable gallery file: checksummed, or encrypted with a passphrase"
    )
    x.add_argument("file", type=Path)
    x.set_defaults(func=cmd_export)
    i = gsub.add_parser("import", help="add the people of an exported gallery file")
    i.add_argument("file", type=Path)
    clash = i.add_mutually_exclusive_group()
    clash.add_argument(
        "--merge",
        dest="on_conflict",
        action="store_const",
        const="merge",
        help="add new templates to people already enrolled under the same name",
    )
    clash.add_argument(
        "--replace",
        dest="on_conflict",
        action="store_const",
        const="replace",
        help="replace the templates of people already enrolled under the same name",
    )
    i.set_defaults(func=cmd_import, on_conflict="refuse")
    for q in (x, i):
        _add_passphrase_options(q)
    for name, q in gsub.choices.items():
        add_gallery_option(q)
        if name in MODEL_ACTIONS:
            add_recognizer_options(q, threshold=False)
        else:  # only the model's identity matters: the gallery is tied to it
            add_bundle_options(q)
        q.add_argument("--json", action="store_true", help="machine-readable output")


def _add_passphrase_options(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--passphrase-file",
        type=Path,
        metavar="PATH",
        help="encrypt/decrypt with the passphrase in PATH (its first line)",
    )
    g.add_argument(
        "--passphrase-env",
        metavar="VAR",
        help="encrypt/decrypt with the passphrase in environment variable VAR",
    )


def _open(
    args: argparse.Namespace, allow_mismatch: bool = False, readonly: bool = False
) -> tuple[object, GalleryStore]:
    """The recognizer and the gallery; ``readonly`` for commands that only read it."""
    rec = recognizer(args)
    path = gallery_path(args)
    # checked before GalleryStore.open, which quietly tightens the gallery files' modes
    warn_private(private_paths(path, state=state_dir() if args.gallery is None else None))
    store = GalleryStore.open(
        path,
        rec.model_id,
        rec.embedder.size,
        allow_model_mismatch=allow_mismatch,
        readonly=readonly,
    )
    return rec, store


def _passphrase(args: argparse.Namespace) -> str | None:
    """The passphrase from --passphrase-file or --passphrase-env (never from an argument)."""
    if args.passphrase_file is not None:
        warn_private([args.passphrase_file])
        try:
            text = args.passphrase_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            reason = getattr(err, "strerror", None) or err
            raise FacegateError(
                f"cannot read the passphrase file {args.passphrase_file}: {reason}"
            ) from err
        secret, where = (text.splitlines() or [""])[0], str(args.passphrase_file)
    elif args.passphrase_env is not None:
        secret, where = os.environ.get(args.passphrase_env), f"${args.passphrase_env}"
        if secret is None:
            raise FacegateError(f"environment variable {args.passphrase_env} is not set")
    else:
        return None
    if not secret:
        raise FacegateError(f"the passphrase in {where} is empty")
    return secret


def _ask_passphrase(path: Path) -> str:
    """Prompt for an encrypted file's passphrase on the terminal, without echo."""
    secret = getpass.getpass(f"passphrase for {path}: ")
    if not secret:
        raise FacegateError("no passphrase given: nothing imported")
    return secret


def _people_from_dir(root: Path) -> list[tuple[str, list[Path]]]:
    if not root.is_dir():
        raise FacegateError(f"{display_path(root)}: not a folder")
    people = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_")):
        if display_path(folder.name) != folder.name:  # not UTF-8: cannot be a stored name
            log.warning("skipping %s: rename the folder to the person's name", display_path(folder))
            continue
        files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        people.append((folder.name, files))
    if not people and any(f.suffix.lower() in IMAGE_SUFFIXES for f in root.iterdir()):
        shown = display_path(root).rstrip("/")
        raise FacegateError(
            f"{shown}: no person sub-folders (expected one sub-folder per person); "
            f"did you mean `facegate gallery enroll {Path(shown).name} {shown}/*`?"
        )
    return people


def _plan(args: argparse.Namespace) -> list[tuple[str, list[Path]]]:
    if args.from_dir:
        if args.name or args.images:
            raise FacegateError("give either NAME IMAGE... or --from-dir DIR, not both")
        return _people_from_dir(args.from_dir)
    if not args.name or not args.images:
        raise FacegateError("enroll needs NAME and at least one IMAGE (or --from-dir DIR)")
    return [(normalise_name(args.name), list(args.images))]  # a bad name fails before the work


def cmd_enroll(args: argparse.Namespace) -> int:
    """Enrol people; refused photos are reported with reasons and never abort the run."""
    from facegate.gallery.enroll import template_from_file

    plan = _plan(args)
    rec, store = _open(args)
    enrolled: dict[str, int] = {}
    skipped: list[dict] = []
    total = sum(len(paths) for _, paths in plan)
    with store, _progress(args, total) as progress:
        task = progress.add_task("enrolling", total=total)
        for name, paths in plan:
            templates = []
            for path in paths:
                outcome = template_from_file(rec, path, args.largest)
                progress.advance(task)
                if outcome.template is None:
                    skipped.append(
                        {"person": name, "file": outcome.source, "reason": outcome.reason}
                    )
                else:
                    templates.append(outcome.template)
            if templates:  # one transaction per person: whole or absent after a crash
                _enrol_one(store, name, templates, enrolled, skipped)
    return _enrol_summary(args, enrolled, skipped)


def _enrol_one(
    store: GalleryStore, name: str, templates: list, enrolled: dict, skipped: list[dict]
) -> None:
    """Enrol one person; a refused name (invalid, look-alike) is reported, not raised."""
    try:
        store.enroll(name, templates)
    except NameRefused as err:
        skipped.append({"person": name, "file": "-", "reason": str(err)})
        return
    enrolled[name] = len(templates)


def _progress(args: argparse.Namespace, total: int) -> Progress:
    return Progress(console=console(), transient=True, disable=args.json or total < 4)


def _enrol_summary(args: argparse.Namespace, enrolled: dict, skipped: list[dict]) -> int:
    if args.json:
        emit_json({"enrolled": enrolled, "skipped": skipped})
    else:
        out = console()
        for name, n in enrolled.items():
            out.print(f"enrolled {safe(name)}: {n} template(s)")
        for s in skipped:
            out.print(f"skipped {safe(s['file'])} ({safe(s['person'])}): {safe(s['reason'])}")
        reasons = Counter(s["reason"].split(" (")[0] for s in skipped)
        out.print(
            f"{len(enrolled)} people enrolled, {sum(enrolled.values())} templates, "
            f"{len(skipped)} photos skipped" + (f": {dict(reasons)}" if reasons else "")
        )
    return 0 if enrolled else 1


def _when(ts: float) -> str:
    """A stored time as local date and minute; "?" for one no calendar can show."""
    try:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))
    except (OverflowError, OSError, ValueError):  # written by an import before range checks
        return "?"


def cmd_list(args: argparse.Namespace) -> int:
    """List enrolled people (read-only: works on a full disk or a read-only mount)."""
    _, store = _open(args, readonly=True)
    with store:
        people = store.people()
    if args.json:
        emit_json(
            [
                {
                    "name": p.name,
                    "slug": p.slug,
                    "templates": p.template_count,
                    "created": p.created,
                }
                for p in people
            ]
        )
        return 0
    t = Table(title=f"{len(people)} people in {safe(store.path)}")
    t.add_column("name")
    t.add_column("templates", justify="right")
    t.add_column("enrolled")
    for p in people:
        t.add_row(safe(p.name), str(p.template_count), _when(p.created))
    console().print(t)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """Show one person's templates (source, time, model)."""
    _, store = _open(args, readonly=True)
    with store:
        p = store.person(args.name)
    rows = [{"source": t.source, "created": t.created, "model_id": t.model_id} for t in p.templates]
    if args.json:
        emit_json({"name": p.name, "slug": p.slug, "created": p.created, "templates": rows})
        return 0
    t = Table(title=f"{safe(p.name)}: {p.template_count} template(s)")
    for col in ("source", "enrolled", "model"):
        t.add_column(col)
    for r in rows:
        t.add_row(safe(r["source"]), _when(r["created"]), safe(r["model_id"]))
    console().print(t)
    return 0


def cmd_rename(args: argparse.Namespace) -> int:
    """Rename a person."""
    _, store = _open(args)
    with store:
        old = store.rename(args.old, args.new)
        new = store.person(args.new).name
    _say(args, {"renamed": old, "to": new}, f"renamed {safe(old)} to {safe(new)}")
    return 0


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        raise FacegateError("refusing to delete without confirmation: add --yes")
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def cmd_remove(args: argparse.Namespace) -> int:
    """Delete a person after asking (``--yes`` skips the question)."""
    _, store = _open(args)
    with store:
        person = store.person(args.name)
        if not args.yes and not _confirm(
            f"delete {visible(person.name)} and {person.template_count} template(s)?"
        ):
            console().print("nothing deleted")
            return 1
        count = store.remove(person.name)
    _say(
        args,
        {"removed": person.name, "templates": count},
        f"removed {safe(person.name)} ({count} templates)",
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Export the gallery to a portable file."""
    passphrase = _passphrase(args)
    _, store = _open(args, readonly=True)
    with store:
        s = export_gallery(store, args.file, passphrase)
    text = f"exported {s.people} people ({s.templates} templates) to {safe(s.path)}"
    if s.skipped:
        lines = "".join(f"\n  {safe(problem)}" for problem in s.skipped)
        text += f"; left out {len(s.skipped)} an import would refuse:{lines}"
    _say(
        args,
        {
            "file": str(s.path),
            "people": s.people,
            "templates": s.templates,
            "skipped": list(s.skipped),
        },
        text,
    )
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Import an exported gallery file (all or nothing); asks for a passphrase on a terminal."""
    passphrase = _passphrase(args)
    ask = (lambda: _ask_passphrase(args.file)) if sys.stdin.isatty() else None
    _, store = _open(args)
    on_conflict: OnConflict = args.on_conflict
    with store:
        s = import_gallery(store, args.file, passphrase, ask, on_conflict)
    _say(
        args,
        {
            "added": s.people_added,
            "merged": s.people_merged,
            "replaced": s.people_replaced,
            "templates": s.templates_added,
            "already_stored": s.templates_skipped,
        },
        f"imported {s.templates_added} templates: {s.people_added} new people, "
        f"{s.people_merged} merged, {s.people_replaced} replaced; "
        f"{s.templates_skipped} already in the gallery",
    )
    return 0


def cmd_reembed(args: argparse.Namespace) -> int:
    """Recompute every template from its stored crop with the current bundle."""
    rec, store = _open(args, allow_mismatch=True)
    with store:
        before = store.model_id
        count = store.reembed(rec.embedder.embed, rec.model_id)
        failed = [f.describe() for f in store.reembed_failures]
    text = f"re-embedded {count} templates: {safe(before)} -> {safe(rec.model_id)}"
    if failed:
        lines = "".join(f"\n  {safe(line)}" for line in failed)
        text += (
            f"; {len(failed)} could not be (kept with {safe(before)}, not used for matching:"
            f" re-enrol them):{lines}"
        )
    _say(args, {"templates": count, "from": before, "to": rec.model_id, "failed": failed}, text)
    return 1 if failed else 0


def _say(args: argparse.Namespace, data: dict, text: str) -> None:
    if args.json:
        emit_json(data)
    else:
        console().print(text)
