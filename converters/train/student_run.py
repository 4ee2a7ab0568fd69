"""``distill --width W``: train a new ShuffleNet V2 student from the teacher and save it.

    python -m facegate.converters.train distill --width 0.5 \
        --out models/weights/shufflenet-student-w05.npz --epochs 6 --seed 14

The teacher runs online (ONNX Runtime) on every augmented batch, so the UTKFace crops need no
cached targets; the held-out natural crops (``../shared/faces``, never trained on) are scored
against the teacher after every epoch. The result is a ``facegate-ir`` file whose ``meta`` holds
width, params, MACs, training data and licence, command, seed, options and per-epoch figures;
before it is written, its ONNX form is checked against the torch module.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time

import numpy as np

from facegate.converters import ir_store
from facegate.converters.ir import Graph, count_macs
from facegate.converters.train import augment, faces, pipeline, shufflenet
from facegate.converters.train import student as st
from facegate.converters.train.distill import DistillConfig, DistillReport, distill
from facegate.converters.train.ir_torch import GraphModule, to_graph
from facegate.converters.train.teacher import Targets, teacher_graph, teacher_targets
from facegate.errors import FacegateError

log = logging.getLogger(__name__)

SIDE = 112


def options(args: argparse.Namespace) -> st.StudentOptions:
    """The transfer switches the command line asks for."""
    if args.feature_weight < 0:
        raise FacegateError(f"--feature-weight must be >= 0, got {args.feature_weight}")
    return st.StudentOptions(
        args.width, not args.from_scratch, args.feature_weight, not args.mild_augment
    )


def _data(args: argparse.Namespace) -> tuple[faces.Crops, faces.Crops, Targets]:
    """Training crops, held-out crops and the teacher's vectors of the held-out crops."""
    rec = faces.open_recognizer()
    shared = faces.shared_dir()
    paths = faces.training_paths(shared / "train" / "utkface_crops", args.limit)
    train = faces.aligned_crops(rec, paths, "utkface")
    held = faces.aligned_crops(rec, faces.heldout_paths(shared / "faces"), "heldout")
    return train, held, teacher_targets(rec, held)


def _config(args: argparse.Namespace, opts: st.StudentOptions, teacher: Graph) -> DistillConfig:
    online = st.OnlineTeacher(teacher, args.threads)
    feature = st.feature_loss(online, opts.feature_weight) if opts.feature_weight else None
    cfg = pipeline.config(args, args.out.with_name(f"{args.out.stem}.ckpt"))
    base = st.STRONG if opts.strong else augment.Augment()
    cfg.augment = dataclasses.replace(base, fill=args.fill_borders)
    cfg.teacher = online
    cfg.feature_loss = feature
    return cfg


def distill_student(args: argparse.Namespace, command: str) -> int:
    """Build, train, check and save one student; prints one JSON line of figures."""
    started = time.monotonic()
    opts = options(args)
    teacher = teacher_graph()
    module = st.make_student(opts, args.seed, teacher)
    train, held, held_targets = _data(args)
    unused = Targets(np.zeros((0, 192), np.float32), np.zeros((0, 192), np.float32))
    report = distill(
        module, train.crops, unused, _config(args, opts, teacher), (held.crops, held_targets.plain)
    )
    graph = _graph(module)
    meta = _meta(args, opts, graph, teacher, report, (len(train.crops), len(held.crops)))
    meta["command"], meta["wall_s"] = command, round(time.monotonic() - started, 1)
    meta["onnx_max_abs_gap"] = pipeline.check_onnx(graph, held.crops[:8])
    args.out.with_name(f"{args.out.stem}.ckpt").unlink(missing_ok=True)
    ir_store.save(graph, args.out, meta)
    print(json.dumps({k: meta[k] for k in ("architecture", "params", "macs", "heldout", "wall_s")}))
    return 0


def _graph(module: GraphModule) -> Graph:
    module.taps = ()
    return to_graph(module.eval())


def _meta(
    args: argparse.Namespace,
    opts: st.StudentOptions,
    graph: Graph,
    teacher: Graph,
    report: DistillReport,
    counts: tuple[int, int],
) -> dict:
    macs = count_macs(graph, SIDE, SIDE)
    return {
        "architecture": graph.name,
        "params": graph.params(),
        "macs": macs,
        "macs_shape": [1, SIDE, SIDE, 3],
        "mac_fraction_of_teacher": round(macs / count_macs(teacher, SIDE, SIDE), 4),
        "embedding": "the teacher's 192-d space (default bundle's MobileFaceNet)",
        "method": "distillation into ShuffleNet V2 (online teacher)",
        "options": {
            "copy_teacher": opts.copy_teacher,
            "copied_layers": list(shufflenet.TEACHER_STEM + shufflenet.TEACHER_HEAD)
            if opts.copy_teacher
            else [],
            "feature_weight": opts.feature_weight,
            "augment": "strong" if opts.strong else "default",
        },
        "training_data": pipeline.training_data(args, counts[0]),
        "heldout": {
            "data": "every identity photo of ../shared/faces (never trained on)",
            "crops": counts[1],
            **(report.heldout[-1] if report.heldout else {}),
        },
        "seed": args.seed,
        "steps": [report.as_dict()],
    }
