"""``python -m facegate.converters.train prune|distill ...`` (also ``facegate models prune``).

Each method has its own flags (:data:`facegate.cli.training.METHODS`, shared with the CLI) and
its own runner here (:data:`RUNNERS`), so a new method is one entry in each. Bad input (no shared
data, no torch, a broken file) is one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Callable

from facegate.cli.training import METHODS
from facegate.errors import FacegateError

log = logging.getLogger(__name__)


def _run_prune(args: argparse.Namespace) -> int:
    from facegate.converters.train import pipeline

    return pipeline.prune_command(args, _command_line(args))


def _run_distill(args: argparse.Namespace) -> int:
    if args.width is not None:  # a new ShuffleNet V2 student
        from facegate.converters.train.student_run import distill_student

        return distill_student(args, _command_line(args))
    from facegate.converters.train import pipeline

    return pipeline.distill_command(args, _command_line(args))


RUNNERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "prune": _run_prune,
    "distill": _run_distill,
}


def _command_line(args: argparse.Namespace) -> str:
    return str(args.command_line)


def parser(prog: str = "python -m facegate.converters.train") -> argparse.ArgumentParser:
    """The argument parser with one subparser per training method."""
    p = argparse.ArgumentParser(prog=prog, description="train facegate's own nets (offline)")
    sub = p.add_subparsers(dest="method", required=True, metavar="METHOD")
    for name, (text, add_args) in METHODS.items():
        add_args(sub.add_parser(name, help=text))
    return p


def run(args: argparse.Namespace) -> int:
    """Run a parsed training command; a FacegateError is one line and exit status 1."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        _check_torch()
        return RUNNERS[args.method](args)
    except FacegateError as err:
        print(f"facegate: error: {err}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: the command line) and run the method."""
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    args.command_line = "python -m facegate.converters.train " + shlex.join(argv)
    return run(args)


def _check_torch() -> None:
    try:
        import torch  # noqa: F401
        import tqdm  # noqa: F401
    except ImportError as err:
        raise FacegateError(
            f"training needs the [train] extra ({err.name} is missing): "
            "pip install 'facegate[train,convert]'"
        ) from err
