"""Distillation: a student learns to reproduce the teacher's L2-normalised embeddings.

``distill(student, crops, targets, cfg)`` trains in place and returns a :class:`DistillReport`.
Loss per crop: ``1 - cos(student, teacher)`` against the cached teacher embedding of the crop (or
of its mirror when the view is mirrored), or, with ``cfg.teacher`` set, against the teacher's
embedding of the very augmented view (online). Optional extras: a relational term (the batch's
student similarity matrix against the teacher's, MSE), a hint term (``cfg.hint``: the student's
extra outputs against the online teacher's, relative MSE; both modules return
``(embedding, *feature_maps)`` with matching maps) and a free feature-loss hook. Seeded; one
torch thread by default; a checkpoint after every epoch that ``resume`` continues from; the
held-out cosine to the teacher is measured after every epoch.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facegate.converters.train import augment
from facegate.converters.train.teacher import Targets

log = logging.getLogger(__name__)

MEAN, STD = 127.5, 128.0  # the embedder's input normalisation (models/default.json)
FeatureLoss = Callable[[tuple[torch.Tensor, ...], torch.Tensor], torch.Tensor]


@dataclass
class DistillConfig:
    """How to train: schedule, seed, augmentation, checkpointing and optional loss terms."""

    epochs: int = 4
    batch: int = 32
    lr: float = 3e-4
    warmup: int = 0  # batches of linear warm-up before the cosine decay (0: decay from step 0)
    average_last: int = 0  # end on the mean of the weights after each of the last N epochs
    weight_decay: float = 0.0
    seed: int = 14
    threads: int = 1
    samples_per_epoch: int | None = None  # None: every crop once per epoch
    augment: augment.Augment | None = field(default_factory=augment.Augment)
    backgrounds: tuple[np.ndarray, ...] = ()  # images for the augmentation's border fill
    relational: float = 0.0  # weight of the similarity-matrix term (0: off)
    teacher: nn.Module | None = None  # online targets from this module instead of the cache
    hint: float = 0.0  # weight of the feature-map term: student taps vs the teacher's (online)
    feature_loss: FeatureLoss | None = None  # (student's extra outputs, input batch) -> loss
    checkpoint: Path | None = None
    resume: bool = False
    stop_after: int | None = None  # end after this epoch (the schedule still plans ``epochs``)
    progress: bool = True


@dataclass
class DistillReport:
    """What a run did and reached."""

    wall_s: float = 0.0
    epochs: int = 0
    losses: list[float] = field(default_factory=list)  # mean training loss per epoch
    heldout: list[dict[str, float]] = field(default_factory=list)  # cosine mean/p5 per epoch
    averaged: dict = field(default_factory=dict)  # {"epochs": N, "heldout": ...} of the mean

    def as_dict(self) -> dict:
        """JSON-ready figures."""
        return {
            "wall_s": round(self.wall_s, 1),
            "epochs": self.epochs,
            "losses": [round(v, 5) for v in self.losses],
            "heldout": self.heldout,
            "averaged": self.averaged,
        }


def to_input(crops: np.ndarray) -> torch.Tensor:
    """uint8 RGB NHWC crops as the embedder's normalised float input."""
    return (torch.from_numpy(np.ascontiguousarray(crops)).float() - MEAN) / STD


def _embedding(out: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, tuple]:
    if isinstance(out, tuple):
        return out[0], out[1:]
    return out, ()


def embed(module: nn.Module, crops: np.ndarray, batch: int = 64) -> np.ndarray:
    """Unit embeddings of ``crops`` by ``module`` (no gradients)."""
    parts = []
    with torch.no_grad():
        for i in range(0, len(crops), batch):
            emb, _ = _embedding(module(to_input(crops[i : i + batch])))
            parts.append(F.normalize(emb, dim=1).numpy())
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def cosine_figures(got: np.ndarray, want: np.ndarray) -> dict[str, float]:
    """Mean, 5th percentile and minimum cosine between matching rows of two unit-vector sets."""
    cos = np.sum(got * want, axis=1)
    return {
        "cos_mean": round(float(cos.mean()), 4),
        "cos_p5": round(float(np.percentile(cos, 5)), 4),
        "cos_min": round(float(cos.min()), 4),
    }


def hint_loss(student: tuple[torch.Tensor, ...], teacher: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Mean over matching feature maps of their MSE, each relative to the teacher's power."""
    terms = [
        F.mse_loss(s, t) / t.pow(2).mean().clamp_min(1e-8)
        for s, t in zip(student, teacher, strict=True)
    ]
    return torch.stack(terms).mean()


def _loss(
    cfg: DistillConfig, student: nn.Module, x: torch.Tensor, want: torch.Tensor, feats: tuple
) -> torch.Tensor:
    emb, extra = _embedding(student(x))
    s = F.normalize(emb, dim=1)
    loss = (1 - (s * want).sum(dim=1)).mean()
    if cfg.hint > 0:
        loss = loss + cfg.hint * hint_loss(extra[: len(feats)], feats)
        extra = extra[len(feats) :]
    if cfg.relational > 0:
        loss = loss + cfg.relational * F.mse_loss(s @ s.T, want @ want.T)
    if cfg.feature_loss is not None:
        loss = loss + cfg.feature_loss(extra, x)
    return loss


def _targets(
    cfg: DistillConfig, x: torch.Tensor, idx: np.ndarray, flipped: np.ndarray, targets: Targets
) -> tuple[torch.Tensor, tuple]:
    """Unit target embeddings, and the teacher's feature maps when a hint term asks for them."""
    if cfg.teacher is not None:
        with torch.no_grad():
            emb, feats = _embedding(cfg.teacher(x))
        return F.normalize(emb, dim=1), feats if cfg.hint > 0 else ()
    rows = np.where(flipped[:, None], targets.flipped[idx], targets.plain[idx])
    return torch.from_numpy(rows.astype(np.float32)), ()


def _save(path: Path, state: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, tmp)
    tmp.replace(path)


@dataclass
class _Run:
    student: nn.Module
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    rng: np.random.Generator
    report: DistillReport
    start_epoch: int = 0
    weight_sum: dict[str, torch.Tensor] = field(default_factory=dict)  # for --average-last
    summed: int = 0


def schedule(
    opt: torch.optim.Optimizer, total: int, warmup: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """Cosine decay to zero over ``total`` batches, after ``warmup`` batches of linear rise."""
    if warmup <= 0:  # the plain cosine decay earlier weights were trained with, unchanged
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    warmup = min(warmup, total - 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _start(student: nn.Module, cfg: DistillConfig, steps: int) -> _Run:
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    params = [p for p in student.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = schedule(opt, max(1, steps * cfg.epochs), cfg.warmup)
    run = _Run(student, opt, sched, np.random.default_rng(cfg.seed), DistillReport())
    if cfg.resume and cfg.checkpoint is not None and cfg.checkpoint.is_file():
        state = torch.load(cfg.checkpoint, weights_only=True)  # tensors and plain data only
        student.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        run.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        run.report = DistillReport(**state["report"])
        run.start_epoch = int(state["epoch"])
        run.weight_sum, run.summed = state.get("weight_sum", {}), int(state.get("summed", 0))
        log.warning("resumed from %s after epoch %d", cfg.checkpoint, run.start_epoch)
    return run


def _epoch(run: _Run, crops: np.ndarray, targets: Targets, cfg: DistillConfig, n: int) -> float:
    from tqdm import tqdm

    order = run.rng.permutation(len(crops))[:n]
    total, seen = 0.0, 0
    run.student.train()
    steps = range(0, len(order), cfg.batch)
    bar = tqdm(steps, desc=f"epoch {len(run.report.losses) + 1}", unit="batch",
               disable=not cfg.progress, leave=False)  # fmt: skip
    for i in bar:
        idx = order[i : i + cfg.batch]
        views, flipped = augment.batch(crops[idx], run.rng, cfg.augment, cfg.backgrounds)
        x = to_input(views)
        loss = _loss(cfg, run.student, x, *_targets(cfg, x, idx, flipped, targets))
        run.opt.zero_grad()
        loss.backward()
        run.opt.step()
        run.sched.step()
        total += float(loss.detach()) * len(idx)
        seen += len(idx)
        bar.set_postfix(loss=f"{total / seen:.4f}")
    return total / max(seen, 1)


def distill(
    student: nn.Module,
    crops: np.ndarray,
    targets: Targets,
    cfg: DistillConfig,
    heldout: tuple[np.ndarray, np.ndarray] | None = None,
) -> DistillReport:
    """Train ``student`` on ``crops`` toward ``targets``; ``heldout`` = (crops, teacher vectors)."""
    if cfg.augment is not None and cfg.augment.fill > 0 and cfg.teacher is None:
        raise ValueError("border fill changes the crop: its targets need the online teacher")
    n = min(cfg.samples_per_epoch or len(crops), len(crops))
    run = _start(student, cfg, -(-n // cfg.batch))
    started = time.monotonic() - run.report.wall_s
    for epoch in range(run.start_epoch, cfg.epochs):
        loss = _epoch(run, crops, targets, cfg, n)
        run.report.losses.append(loss)
        if heldout is not None:
            student.eval()
            run.report.heldout.append(cosine_figures(embed(student, heldout[0]), heldout[1]))
        run.report.epochs = epoch + 1
        if epoch + 1 > cfg.epochs - cfg.average_last:
            _add_weights(run)
        run.report.wall_s = time.monotonic() - started
        log.warning("epoch %d: loss %.4f, held-out %s", epoch + 1, loss,
                    run.report.heldout[-1] if heldout is not None else "-")  # fmt: skip
        if cfg.checkpoint is not None:
            _save(cfg.checkpoint, _state(run, epoch + 1))
        if cfg.stop_after is not None and epoch + 1 >= cfg.stop_after:
            break
    if run.summed and run.report.epochs == cfg.epochs:
        _use_average(run, heldout)
    return run.report


def _add_weights(run: _Run) -> None:
    for name, value in run.student.state_dict().items():
        value = value.detach().to(torch.float64)
        run.weight_sum[name] = run.weight_sum[name] + value if name in run.weight_sum else value
    run.summed += 1


def _use_average(run: _Run, heldout: tuple[np.ndarray, np.ndarray] | None) -> None:
    """Load the mean of the summed end-of-epoch weights and measure it on ``heldout``."""
    current = run.student.state_dict()
    run.student.load_state_dict(
        {k: (v / run.summed).to(current[k].dtype) for k, v in run.weight_sum.items()}
    )
    run.report.averaged = {"epochs": run.summed}
    if heldout is not None:
        run.student.eval()
        run.report.averaged["heldout"] = cosine_figures(embed(run.student, heldout[0]), heldout[1])
    log.warning("mean of the last %d epochs' weights: held-out %s", run.summed,
                run.report.averaged.get("heldout", "-"))  # fmt: skip


def _state(run: _Run, epoch: int) -> dict:
    return {
        "model": run.student.state_dict(),
        "optimizer": run.opt.state_dict(),
        "scheduler": run.sched.state_dict(),
        "rng": run.rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        "report": run.report.as_dict() | {"wall_s": run.report.wall_s},
        "epoch": epoch,
        "weight_sum": run.weight_sum,
        "summed": run.summed,
    }
