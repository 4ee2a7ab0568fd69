"""``facegate eval``: accuracy on a folder-per-identity dataset (LFW layout) or ``labels.csv``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.table import Table

from facegate.cli.common import add_recognizer_options, console, recognizer, safe
from facegate.errors import ConfigError, FacegateError
from facegate.evaluate.embed import FACE_RULES
from facegate.evaluate.run import (
    EvalReport,
    Identification,
    Scores,
    Verification,
    evaluate,
    plot_roc,
)
from facegate.host.permissions import write_private
from facegate.text import display_path

SHOWN_FAILURES = 5  # failed images listed on the terminal (all of them are in the JSON)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``eval``."""
    p = sub.add_parser("eval", help="measure accuracy on a folder of photos sorted by identity")
    p.add_argument("dir", type=Path, help="one folder per identity (LFW layout), or labels.csv")
    p.add_argument("--pairs", type=Path, help="LFW pairs.txt for the 10-fold accuracy")
    p.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="OUT",
        help="the full report as JSON: to OUT (a private file), or to stdout without OUT",
    )
    p.add_argument("--plot", type=Path, metavar="OUT.png", help="write the ROC curve as a PNG")
    p.add_argument(
        "--far",
        type=float,
        default=1e-3,
        help="false accept rate for the open-set DIR figure (default 1e-3)",
    )
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="NAME",
        help="leave out an identity folder (repeatable)",
    )
    p.add_argument(
        "--face",
        choices=FACE_RULES,
        default=None,
        help="which face of a photo with several is labelled (default: centre in an LFW-layout "
        "folder, every image 250x250; largest otherwise)",
    )
    add_recognizer_options(p)
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate, print a summary, and write the JSON and plot when asked."""
    if not 0.0 < args.far < 1.0:
        raise ConfigError("--far must be between 0 and 1, e.g. 1e-3")
    if not args.dir.is_dir():
        raise FacegateError(f"{display_path(args.dir)}: no such folder")
    if args.pairs is not None and not args.pairs.is_file():
        raise FacegateError(f"{display_path(args.pairs)}: no such pairs file")
    report = evaluate(
        recognizer(args),
        args.dir,
        args.pairs,
        args.far,
        bundle=args.bundle or "default",
        exclude=tuple(args.exclude),
        face=args.face,
    )
    text = json.dumps(report.as_dict(), indent=2) + "\n"
    if args.json not in (None, "-"):  # faces' statistics: private, like the gallery
        write_private(Path(args.json), text.encode("utf-8"))
    if args.plot:
        plot_roc(report, args.plot)
    if args.json == "-":
        sys.stdout.write(text)
    else:
        print_report(report)
    return 0


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _other(rule: str) -> str:
    return next(f for f in FACE_RULES if f != rule)


def _dataset_rows(r: EvalReport) -> list[tuple[str, str]]:
    rows = [
        ("dataset", f"{r.dataset} ({r.source})"),
        ("images", f"{r.images} of {r.identities} identities, {r.embedded} embedded"),
        ("unreadable", str(len(r.unreadable))),
        ("no face found", str(len(r.no_face))),
        ("face used", f"{r.face} ({r.face_reason})"),
        (
            "several faces",
            f"{r.multi_face}; --face {_other(r.face)} would change {r.face_differs}",
        ),
        (
            "model",
            f"{r.model_id} ({r.bundle}), {r.backend} {r.embedder_precision}"
            f"{' + flip' if r.flip else ''}",
        ),
        ("speed", f"{r.images_per_s:.1f} images/s ({r.seconds:.1f} s)"),
    ]
    if r.ignored_files:
        rows.insert(2, ("non-image files skipped", str(r.ignored_files)))
    return rows


def _score_rows(s: Scores, threshold: float) -> list[tuple[str, str]]:
    rows = [
        ("pairs", f"{s.genuine:,} genuine, {s.impostor:,} impostor"),
        (
            "failed pairs (left out)",
            f"{s.failed_genuine:,} genuine, {s.failed_impostor:,} impostor",
        ),
    ]
    if s.sampled:
        rows.append(("sampled", s.sampled))
    if s.note:
        return [*rows, ("ROC", s.note)]
    rows += [
        ("genuine min / median", f"{_num(s.genuine_min)} / {_num(s.genuine_median)}"),
        ("impostor max / 99.9th pct", f"{_num(s.impostor_max)} / {_num(s.impostor_p999)}"),
        ("AUC", f"{s.auc:.5f}"),
        ("best accuracy", f"{_pct(s.best_accuracy)} at {_num(s.best_threshold)}"),
    ]
    rows += [
        (
            f"TAR @ FAR {p.far:g}",
            p.note if p.tar is None else f"{_pct(p.tar)} at {_num(p.threshold)}",
        )
        for p in s.far_points
    ]
    at = f"FAR {s.threshold_far:.2g}, TAR {_pct(s.threshold_tar)}"
    return [*rows, (f"at threshold {threshold:.2f}", at)]


def _verification_rows(v: Verification) -> list[tuple[str, str]]:
    rows = [
        ("10-fold pairs", f"{v.pairs:,} in {v.folds} folds ({v.source}), {v.failed_pairs} failed")
    ]
    if v.accuracy is None:
        return [*rows, ("10-fold accuracy", v.note or "-")]
    return [
        *rows,
        (
            "10-fold accuracy",
            f"{_pct(v.accuracy)} ± {_pct(v.accuracy_std)} (mean threshold {_num(v.threshold)})",
        ),
        (
            "  failed pairs as wrong",
            f"{_pct(v.accuracy_with_failures)} ± {_pct(v.accuracy_with_failures_std)}",
        ),
    ]


def _identification_rows(i: Identification) -> list[tuple[str, str]]:
    rows = [
        (
            "gallery / probes",
            f"{i.gallery} ({i.distractors} without probes) / {i.probes} ({i.failed_probes} failed)",
        )
    ]
    if i.rank1 is None:
        return [*rows, ("identification", i.note or "-")]
    return [
        *rows,
        ("rank-1", f"{_pct(i.rank1)} ({_pct(i.rank1_with_failures)} counting failed probes)"),
        (
            f"DIR @ FAR {i.far:g}",
            i.note if i.dir is None else f"{_pct(i.dir)} at {_num(i.dir_threshold)}",
        ),
        (
            f"at threshold {i.threshold:.2f}",
            f"DIR {_pct(i.dir_at_threshold)}, FPIR {_pct(i.fpir_at_threshold)}",
        ),
    ]


def _failures(r: EvalReport) -> list[str]:
    lines = [f"unreadable: {p}: {why}" for p, why in r.unreadable]
    lines += [f"no face: {p}" for p in r.no_face]
    if len(lines) > SHOWN_FAILURES:
        lines = [
            *lines[:SHOWN_FAILURES],
            f"… and {len(lines) - SHOWN_FAILURES} more (all are in --json)",
        ]
    return lines


def print_report(r: EvalReport) -> None:
    """The evaluation summary as tables on the terminal."""
    out = console()
    sections = [
        ("dataset", _dataset_rows(r)),
        ("verification, all pairs", _score_rows(r.scores, r.threshold)),
    ]
    if r.verification is not None:
        sections.append(("verification, LFW protocol", _verification_rows(r.verification)))
    if r.identification is not None:
        sections.append(("identification", _identification_rows(r.identification)))
    for title, rows in sections:
        t = Table(title=title, show_header=False, title_justify="left")
        t.add_column(style="bold")
        t.add_column()
        for key, value in rows:
            t.add_row(safe(key), safe(value))
        out.print(t)
    for line in _failures(r):
        out.print(f"[yellow]{safe(line)}[/yellow]")
