"""Helpers shared by the CLI commands: bundle lookup, JSON output, tables, safe text."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from facegate.bundle import Bundle
from facegate.errors import ConfigError
from facegate.host.paths import models_dir
from facegate.text import visible

if TYPE_CHECKING:
    from facegate.vision.recognizer import Recognizer

DEFAULT_BUNDLE = "default"


def bundle_path(name_or_path: str | None) -> Path:
    """A bundle given by name (in the state dir) or by folder path."""
    value = name_or_path or DEFAULT_BUNDLE
    path = Path(value).expanduser()
    if path.is_dir() and (path / "manifest.json").exists():
        return path
    return models_dir() / value


def load_bundle(name_or_path: str | None) -> Bundle:
    """Load a bundle by name or path (one-line error when it is not built)."""
    return Bundle.load(bundle_path(name_or_path))


def emit_json(data: object) -> None:
    """Print JSON to stdout."""
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def console() -> Console:
    """The console human-readable output goes to (no highlighting, no ``:emoji:`` codes)."""
    return Console(highlight=False, emoji=False)


def safe(value: object) -> str:
    """``value`` ready to embed in console markup: control characters and markup escaped.

    Use it for every stored or user-given string (names, paths, sources, model ids) printed
    through :func:`console` or placed in a rich ``Table``: ``[/x]`` is then text, not a tag.
    """
    return escape(visible(value))


def add_recognizer_options(p: argparse.ArgumentParser) -> None:
    """Options every command that runs the models shares."""
    g = p.add_argument_group("models")
    g.add_argument("--bundle", default=None, help="bundle name or folder (default: default)")
    g.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "litert"])
    g.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int8"])
    g.add_argument("--threads", type=int, default=1, help="inference threads (default 1)")
    g.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="same-person cosine threshold (default: the measured one)",
    )
    g.add_argument("--flip", action="store_true", help="test-time flip: ~2x embed time, +accuracy")


def add_gallery_option(p: argparse.ArgumentParser) -> None:
    """The ``--gallery`` option (default: the state dir's gallery.db)."""
    p.add_argument(
        "--gallery",
        type=Path,
        default=None,
        help="gallery database (default: $FACEGATE_HOME/gallery.db)",
    )


def gallery_path(args: argparse.Namespace) -> Path:
    """The gallery file chosen on the command line, or the default one."""
    from facegate.host.paths import state_dir

    return args.gallery or state_dir() / "gallery.db"


def recognizer(args: argparse.Namespace) -> Recognizer:
    """Build a recognizer from the shared options."""
    from facegate.vision.recognizer import DEFAULT_THRESHOLD, Recognizer, RecognizerConfig

    if args.threads < 1:
        raise ConfigError("--threads must be at least 1")
    threshold = DEFAULT_THRESHOLD if args.threshold is None else args.threshold
    if not -1.0 <= threshold <= 1.0:
        raise ConfigError("--threshold is a cosine similarity between -1 and 1")
    config = RecognizerConfig(
        backend=args.backend,
        precision=args.precision,
        threads=args.threads,
        threshold=threshold,
        flip=args.flip,
    )
    return Recognizer.from_bundle(load_bundle(args.bundle), config)
