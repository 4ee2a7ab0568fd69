"""The flags of the training commands (``facegate models prune|distill``).

Only argparse here: the CLI registers these without importing the offline side; the work runs
in :mod:`facegate.converters.train` ([train] extra), which uses the same definitions.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def count(text: str) -> int:
    """A whole number >= 0 (argparse type): a negative count is refused in one line."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def probability(text: str) -> float:
    """A number in [0, 1] (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{value} is not in [0, 1]")
    return value


def add_common_args(p: argparse.ArgumentParser) -> None:
    """Flags every training command takes."""
    p.add_argument("--out", type=Path, required=True, help="the .npz to write (facegate-ir)")
    p.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs (per step)")
    p.add_argument("--limit", type=int, default=None, help="train on N crops (a fixed subset)")
    p.add_argument(
        "--samples-per-epoch", type=int, default=None, help="crops drawn per epoch (default: all)"
    )
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument(
        "--warmup",
        type=count,
        default=0,
        metavar="STEPS",
        help="raise the learning rate linearly over the first STEPS batches, then the cosine decay"
        " (for continuing from trained weights without knocking them off their optimum)",
    )
    p.add_argument(
        "--average-last",
        type=count,
        default=0,
        metavar="N",
        help="end on the mean of the weights after each of the last N epochs (0: the last weights)",
    )
    p.add_argument(
        "--fill-borders",
        type=probability,
        default=0.0,
        metavar="P",
        help="with probability P, fill a view's black alignment border with a patch of a street"
        " scene (../shared/video), the teacher run online on the filled view (0: off)",
    )
    p.add_argument("--seed", type=int, default=14)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument(
        "--resume", action="store_true", help="continue from the checkpoint beside --out"
    )
    p.add_argument(
        "--stop-after",
        type=int,
        default=None,
        metavar="N",
        help="stop after epoch N of --epochs (continue later with --resume)",
    )
    p.add_argument(
        "--relational", type=float, default=0.0, help="weight of the similarity-matrix term"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_prune_args(p: argparse.ArgumentParser) -> None:
    """``prune``: MobileFaceNet's channels to a MAC budget, then fine-tuning."""
    p.add_argument("--budget", type=float, required=True, help="fraction of the teacher's MACs")
    p.add_argument("--steps", type=int, default=1, help="prune in N steps, fine-tuning between")
    p.add_argument("--start", type=Path, help="prune this .npz (a larger pruned net) instead")
    p.add_argument("--refit-crops", type=int, default=64, help="crops for the least-squares refit")
    p.add_argument(
        "--criterion",
        choices=("lsq", "l1"),
        default="lsq",
        help="which channels stay: the ones the next layer is best rebuilt from on real crops"
        " (lsq, default) or the largest filters (l1)",
    )
    p.add_argument(
        "--hint",
        type=float,
        default=0.0,
        help="weight of the feature-map term: every residual-stream tensor against the teacher's"
        " (teacher run online on each augmented batch)",
    )
    add_common_args(p)


def add_distill_args(p: argparse.ArgumentParser) -> None:
    """``distill``: train a student net (a facegate-ir .npz) toward the teacher."""
    start = p.add_mutually_exclusive_group(required=True)
    start.add_argument("--init", type=Path, help="the student to train (.npz)")
    start.add_argument(
        "--width", type=float, choices=(0.5, 1.0), help="a new ShuffleNet V2 student, 0.5 or 1.0"
    )
    add_student_args(p)
    add_common_args(p)


def add_student_args(p: argparse.ArgumentParser) -> None:
    """How a new ShuffleNet student (``--width``) learns; the defaults are the best measured."""
    p.add_argument(
        "--from-scratch", action="store_true", help="do not copy the teacher's stem and head"
    )
    p.add_argument(
        "--feature-weight", type=float, default=1.0, help="7x7x512 feature-map term (0: off)"
    )
    p.add_argument(
        "--mild-augment", action="store_true", help="the default augmentation, not the strong one"
    )


# method -> (help, flags); facegate.converters.train.command maps each to its work
METHODS = {
    "prune": (
        "prune MobileFaceNet's channels to a MAC budget, fine-tune (offline)",
        add_prune_args,
    ),
    "distill": ("distil the teacher into a student net (offline)", add_distill_args),
}
