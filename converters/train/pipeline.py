"""The work behind the training commands: data, teacher, prune/refit/distil, save, check."""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facegate.bundle import sha256_file
from facegate.converters import ir_store
from facegate.converters.ir import Graph, count_macs
from facegate.converters.train import faces, prune
from facegate.converters.train.augment import Augment
from facegate.converters.train.distill import (
    DistillConfig,
    DistillReport,
    cosine_figures,
    distill,
    embed,
    to_input,
)
from facegate.converters.train.faces import Crops
from facegate.converters.train.ir_torch import to_graph, to_module
from facegate.converters.train.teacher import Targets, teacher_graph, teacher_targets
from facegate.errors import FacegateError

log = logging.getLogger(__name__)

SIDE = 112
ONNX_TOLERANCE = 1e-3  # max |ONNX - torch| on raw embeddings of norm ~8-20: float32 reordering


@dataclass
class Data:
    """Training crops with their teacher targets, and the held-out natural crops."""

    train: Crops
    targets: Targets
    heldout: Crops
    heldout_targets: Targets


def load_data(args: argparse.Namespace, online: bool = False) -> Data:
    """Aligned crops and teacher embeddings (cached after the first run).

    ``online``: the teacher runs on every training batch, so the training crops need no cached
    targets (the held-out ones still do).
    """
    rec = faces.open_recognizer()
    train = faces.aligned_crops(
        rec, faces.training_paths(faces.train_root(), args.limit), "utkface"
    )
    heldout = faces.aligned_crops(rec, faces.heldout_paths(faces.shared_dir() / "faces"), "heldout")
    empty = np.zeros((len(train.crops), 0), np.float32)
    targets = Targets(empty, empty) if online else teacher_targets(rec, train)
    return Data(train, targets, heldout, teacher_targets(rec, heldout))


def config(args: argparse.Namespace, checkpoint: Path) -> DistillConfig:
    """The distillation settings the command line asks for."""
    fill = getattr(args, "fill_borders", 0.0)
    return DistillConfig(
        epochs=args.epochs,
        batch=args.batch,
        lr=args.lr,
        warmup=args.warmup,
        average_last=args.average_last,
        seed=args.seed,
        threads=args.threads,
        samples_per_epoch=args.samples_per_epoch,
        relational=args.relational,
        augment=Augment(fill=fill),
        backgrounds=faces.background_images() if fill > 0 else (),
        checkpoint=checkpoint,
        resume=args.resume,
        stop_after=args.stop_after,
        progress=not args.no_progress,
    )


def step_budgets(start: float, budget: float, steps: int) -> list[float | None]:
    """MAC fractions of each pruning step, evenly spaced from ``start`` down to ``budget``;
    ``[None]`` (fine-tune only, nothing removed) when ``start`` is already within ``budget``."""
    if not 0.05 <= budget <= 1:
        raise FacegateError(f"--budget must lie in [0.05, 1], got {budget}")
    if steps < 1:
        raise FacegateError(f"--steps must be at least 1, got {steps}")
    if start <= budget:
        return [None]
    return [start - (start - budget) * (i + 1) / steps for i in range(steps)]


def _train(
    graph: Graph, data: Data, cfg: DistillConfig, teacher: Graph | None = None
) -> tuple[Graph, DistillReport]:
    """Distil into ``graph``; with a hint weight or border fill, the teacher runs online on every
    augmented batch; with a hint weight its residual stream (which pruning leaves the same shape)
    supervises the student's."""
    module = to_module(graph)
    if online(cfg) and teacher is not None:
        cfg.teacher = to_module(teacher).eval()
        for p in cfg.teacher.parameters():
            p.requires_grad_(False)
    if cfg.hint > 0 and cfg.teacher is not None:
        module.taps = cfg.teacher.taps = residual_stream(graph)
    held = (data.heldout.crops, data.heldout_targets.plain)
    report = distill(module, data.train.crops, data.targets, cfg, held)
    module.taps = ()
    return to_graph(module), report


def online(cfg: DistillConfig) -> bool:
    """Whether the targets must come from the teacher run on each view (not from the cache)."""
    return cfg.hint > 0 or (cfg.augment is not None and cfg.augment.fill > 0)


def residual_stream(graph: Graph) -> tuple[str, ...]:
    """The tensors pruning never narrows: every block's output (residual adds, projections)."""
    consumers = {graph.layers[j].output for g in prune.channel_groups(graph) for j in g.consumers}
    adds = {layer.output for layer in graph.layers if layer.op == "add"}
    return tuple(layer.output for layer in graph.layers if layer.output in consumers | adds)


def prune_command(args: argparse.Namespace, command: str) -> int:
    """Prune the teacher (or ``--start``) to ``--budget`` of its MACs in ``--steps``, fine-tune."""
    started = time.monotonic()
    teacher = teacher_graph()
    full = count_macs(teacher, SIDE, SIDE)
    graph = ir_store.load(args.start)[0] if args.start else teacher
    start = f"{args.start} (sha256 {sha256_file(args.start)})" if args.start else "teacher"
    budgets = step_budgets(count_macs(graph, SIDE, SIDE) / full, args.budget, args.steps)
    data = load_data(args, online=args.hint > 0 or args.fill_borders > 0)
    refit_x = to_input(data.train.crops[: args.refit_crops])
    reports = []
    for i, fraction in enumerate(budgets):
        ckpt = args.out.with_name(f"{args.out.stem}.step{i + 1}.ckpt")
        if fraction is None:  # a --start net already within the budget: fine-tune it as it is
            fraction = count_macs(graph, SIDE, SIDE) / full
            log.warning("%s is within the budget: fine-tuning only, held-out now %s", args.start,
                        _heldout(graph, data))  # fmt: skip
        elif args.resume and ckpt.is_file():  # the checkpoint holds the weights: shapes only
            widths = prune.widths_for(graph, int(fraction * full))
            graph = prune.remove_channels(graph, prune.l1_plan(graph, widths))
        else:
            graph = _prune_step(graph, int(fraction * full), teacher, refit_x, args.criterion)
            log.warning("step %d: %.0f%% of the MACs, widths %s, held-out after refit %s", i + 1,
                        100 * fraction, prune.describe(graph), _heldout(graph, data))  # fmt: skip
        cfg = config(args, ckpt)
        cfg.hint = args.hint
        graph, report = _train(graph, data, cfg, teacher)
        reports.append({"mac_fraction": round(fraction, 4), **report.as_dict()})
    graph.name = f"mobilefacenet-pruned{round(args.budget * 100)}"
    method = {
        "method": f"structured channel pruning ({CRITERIA[args.criterion]}), least-squares refit,"
        " distillation"
        + (f" with feature-map hints (weight {args.hint})" if args.hint > 0 else ""),
        "steps": reports,
        "criterion": args.criterion,
        "widths": prune.describe(graph),
        "start": start,  # with its digest: --out may overwrite the file it started from
    }
    return _finish(graph, data, args, command, method, time.monotonic() - started)


CRITERIA = {
    "lsq": "channels chosen by least-squares backward elimination on real crops",
    "l1": "channels chosen by filter L1",
}


def _prune_step(graph: Graph, macs: int, teacher: Graph, x: object, criterion: str) -> Graph:
    """``graph`` narrowed to ``macs`` by ``criterion``, its consumers refit to the teacher."""
    widths = prune.widths_for(graph, macs)
    if criterion == "lsq":
        return prune.select_and_refit(graph, widths, teacher, x)
    return prune.refit(prune.remove_channels(graph, prune.l1_plan(graph, widths)), teacher, x)


def distill_command(args: argparse.Namespace, command: str) -> int:
    """Distil the teacher into the net of ``--init`` (a facegate-ir .npz)."""
    started = time.monotonic()
    graph, _ = ir_store.load(args.init)
    data = load_data(args, online=args.fill_borders > 0)
    ckpt = args.out.with_name(f"{args.out.stem}.ckpt")
    graph, report = _train(graph, data, config(args, ckpt), teacher_graph())
    method = {"method": "distillation", "steps": [report.as_dict()], "init": str(args.init)}
    return _finish(graph, data, args, command, method, time.monotonic() - started)


def _heldout(graph: Graph, data: Data) -> dict[str, float]:
    return cosine_figures(embed(to_module(graph), data.heldout.crops), data.heldout_targets.plain)


def _finish(
    graph: Graph, data: Data, args: argparse.Namespace, command: str, method: dict, wall: float
) -> int:
    teacher_macs = count_macs(teacher_graph(), SIDE, SIDE)
    macs = count_macs(graph, SIDE, SIDE)
    meta = {
        "architecture": graph.name,
        "params": graph.params(),
        "macs": macs,
        "macs_shape": [1, SIDE, SIDE, 3],
        "mac_fraction_of_teacher": round(macs / teacher_macs, 4),
        "embedding": "the teacher's 192-d space (default bundle's MobileFaceNet)",
        "training_data": training_data(args, len(data.train.crops)),
        "heldout": {
            "data": "every identity photo of ../shared/faces (never trained on)",
            "crops": len(data.heldout.crops),
            **_heldout(graph, data),
        },
        "command": command,
        "seed": args.seed,
        "wall_s": round(wall, 1),  # this invocation (a resumed run: since the resume)
        "train_wall_s": round(sum(step["wall_s"] for step in method["steps"]), 1),
        **method,
    }
    meta["onnx_max_abs_gap"] = check_onnx(graph, data.heldout.crops[:8])
    ir_store.save(graph, args.out, meta)
    print(json.dumps({k: meta[k] for k in ("architecture", "params", "macs", "heldout", "wall_s")}))
    return 0


def training_data(args: argparse.Namespace, crops: int) -> dict:
    """The meta's account of what a run trained on (and its licences)."""
    out = {**faces.TRAINING_DATA, "crops": crops}
    if getattr(args, "fill_borders", 0.0) > 0:
        out["backgrounds"] = {**faces.BACKGROUND_DATA, "probability": args.fill_borders}
    return out


def check_onnx(graph: Graph, crops: np.ndarray) -> float:
    """The graph emitted as ONNX must compute what the torch module computes."""
    import onnxruntime as ort
    import torch

    from facegate.converters.to_onnx import to_onnx

    model = to_onnx(graph)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = to_input(crops)
    got = sess.run(None, {graph.input_name: x.numpy()})[0]
    with torch.no_grad():
        want = to_module(graph)(x).numpy()
    gap = float(np.abs(got - want).max())
    if gap > ONNX_TOLERANCE:
        raise FacegateError(f"ONNX output differs from torch by {gap:.2e}")
    return gap
