"""Helpers shared by the CLI commands: bundle lookup, JSON output, tables, safe text."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from facegate.bundle import Bundle
from facegate.errors import ConfigError
from facegate.host.paths import models_dir
from facegate.text import visible

if TYPE_CHECKING:
    from rich.console import Console

    from facegate.backends.onnxruntime import Providers
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
    """The console human-readable output goes to (no highlighting, no ``:emoji:`` codes).

    rich loads here, not at import: ``--json`` output never needs it.
    """
    from rich.console import Console

    return Console(highlight=False, emoji=False)


def safe(value: object) -> str:
    """``value`` ready to embed in console markup: control characters and markup escaped.

    Use it for every stored or user-given string (names, paths, sources, model ids) printed
    through :func:`console` or placed in a rich ``Table``: ``[/x]`` is then text, not a tag.
    """
    from rich.markup import escape

    return escape(visible(value))


def add_bundle_options(p: argparse.ArgumentParser) -> None:
    """``--bundle`` and ``--backend``: for commands that open the models for their identity only."""
    g = p.add_argument_group("models")
    g.add_argument("--bundle", default=None, help="bundle name or folder (default: default)")
    g.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "litert"])


def add_recognizer_options(p: argparse.ArgumentParser, threshold: bool = True) -> None:
    """Options every command that runs the models shares (``threshold``: also --threshold)."""
    g = p.add_argument_group("models")
    g.add_argument("--bundle", default=None, help="bundle name or folder (default: default)")
    g.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "litert"])
    g.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int8"])
    g.add_argument("--threads", type=int, default=1, help="inference threads (default 1)")
    if threshold:
        g.add_argument(
            "--threshold",
            type=float,
            default=None,
            help="same-person cosine threshold (default: the measured one)",
        )
    g.add_argument("--flip", action="store_true", help="test-time flip: ~2x embed time, +accuracy")
    add_providers_option(g)


def add_providers_option(p: argparse._ActionsContainer) -> None:
    """The ``--providers`` option: onnxruntime execution providers, in order of preference."""
    p.add_argument(
        "--providers",
        metavar="LIST",
        default=None,
        help="onnxruntime execution providers, e.g. cuda,cpu or tensorrt,cuda,cpu (default: cpu)",
    )


def providers(args: argparse.Namespace) -> Providers:
    """The execution providers given with ``--providers`` (default: the CPU)."""
    from facegate.backends.onnxruntime import Providers, parse_providers

    text = getattr(args, "providers", None)
    return Providers(parse_providers(text)) if text is not None else Providers()


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

    threads = getattr(args, "threads", 1)  # commands without every option run the defaults
    if threads < 1:
        raise ConfigError("--threads must be at least 1")
    threshold = getattr(args, "threshold", None)
    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    if not -1.0 <= threshold <= 1.0:
        raise ConfigError("--threshold is a cosine similarity between -1 and 1")
    config = RecognizerConfig(
        backend=getattr(args, "backend", "auto"),
        precision=getattr(args, "precision", "fp32"),
        threads=threads,
        threshold=threshold,
        flip=getattr(args, "flip", False),
        providers=providers(args),
    )
    return Recognizer.from_bundle(load_bundle(args.bundle), config)
