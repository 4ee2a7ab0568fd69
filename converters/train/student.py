"""Distil MobileFaceNet into a ShuffleNet V2 student that embeds into the teacher's 192-d space.

What transfers the teacher's knowledge with little data (each switch is measured in
docs/compression.md, section "ShuffleNet V2 student"):

- ``copy_teacher``: the student's stem (conv 3×3 s2 -> PReLU -> depthwise 3×3 -> PReLU) and its
  head after the 1×1 to 512 (PReLU -> global depthwise 7×7 -> 1×1 -> 1×1 192) are the teacher's
  own layers, frozen. The embedding is then a fixed function of the 7×7×512 map, so the student
  lives in the teacher's space by construction and only learns the stages between.
- ``feature_weight``: the student's 7×7×512 map is pulled toward the teacher's map of the very
  same augmented view (MSE relative to the teacher map's mean square): 25,088 targets per crop
  instead of 192.
- ``strong``: heavier augmentation than the default (larger similarity jitter, more colour, blur,
  JPEG and down-then-up sampling), so the narrow training set covers more of what cameras see.

The teacher runs online (ONNX Runtime) on every augmented batch, its map and embedding in one
pass, so each view's targets are the teacher's outputs for that very view (a jittered crop moves
the teacher's embedding too).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from facegate.converters.ir import Graph
from facegate.converters.train import augment, shufflenet
from facegate.converters.train.distill import FeatureLoss
from facegate.converters.train.ir_torch import GraphModule, to_module

# Chosen, not tuned (no run was long enough to tune them): roughly twice the default's strength.
STRONG = augment.Augment(
    flip=0.5,
    jitter=0.8,
    max_shift=0.08,  # twice the default: alignment errors of small and turned faces
    max_scale=0.10,
    max_rotate_deg=12.0,
    colour=0.8,
    blur=0.4,
    jpeg=0.5,
    down_up=0.4,
)
TEACHER_FEATURE_INDEX = -4  # the teacher's weighted layers end: PReLU(512) -> GDC -> 1×1 -> 1×1


@dataclass(frozen=True)
class StudentOptions:
    """Which of the transfer ideas a run uses."""

    width: float = 0.5
    copy_teacher: bool = True
    feature_weight: float = 1.0  # 0: embedding cosine only
    strong: bool = True


def teacher_feature_name(teacher: Graph) -> str:
    """The tensor holding the teacher's 7×7×512 map (the PReLU before its global depthwise)."""
    return [layer for layer in teacher.layers if layer.weights][TEACHER_FEATURE_INDEX].output


class OnlineTeacher(nn.Module):
    """The frozen teacher on ONNX Runtime: its embedding of a batch, and its 7×7×512 map.

    ONNX Runtime runs MobileFaceNet several times faster than the same graph in torch on a CPU,
    and the teacher needs no gradients; one run gives the embedding and the map together.
    """

    def __init__(self, teacher: Graph, threads: int = 1) -> None:
        import onnxruntime as ort

        from facegate.converters.to_onnx import to_onnx

        super().__init__()
        self.feature = teacher_feature_name(teacher)
        graph = copy.copy(teacher)
        graph.outputs = [*teacher.outputs, self.feature]
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(to_onnx(graph).SerializeToString(), options)
        self.input_name = teacher.input_name
        self.last: tuple[torch.Tensor, torch.Tensor] | None = None  # (input, NCHW map)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The teacher's embedding of ``x``; its map is kept for :meth:`feature_map`."""
        emb, fmap = self.session.run(None, {self.input_name: x.detach().numpy()})
        self.last = (x, torch.from_numpy(fmap).permute(0, 3, 1, 2))
        return torch.from_numpy(emb)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """The teacher's map of ``x`` (reused when ``x`` is the batch just embedded)."""
        if self.last is None or self.last[0] is not x:
            self(x)
        assert self.last is not None
        return self.last[1]


def feature_loss(teacher: OnlineTeacher, weight: float) -> FeatureLoss:
    """``weight`` × MSE(student map, teacher map) / mean square of the teacher map."""

    def loss(extra: tuple[torch.Tensor, ...], x: torch.Tensor) -> torch.Tensor:
        want = teacher.feature_map(x)
        return weight * F.mse_loss(extra[0], want) / want.pow(2).mean().clamp(min=1e-8)

    return loss


def make_student(options: StudentOptions, seed: int, teacher: Graph | None) -> GraphModule:
    """The student module: He-initialised, with the teacher's stem and head copied and frozen."""
    graph = shufflenet.build(options.width, seed)
    frozen: list[str] = []
    if options.copy_teacher:
        if teacher is None:
            raise ValueError("copying the teacher's layers needs the teacher graph")
        frozen = shufflenet.copy_from_teacher(graph, teacher)
    module = to_module(graph)
    for i, layer in enumerate(graph.layers):
        if layer.output in frozen:
            for param in module.layer_weights(i).values():
                param.requires_grad_(False)
    if options.feature_weight > 0:
        module.taps = (shufflenet.FEATURE_MAP,)
    return module


def trainable(module: nn.Module) -> int:
    """Number of weights the optimiser updates."""
    return int(sum(p.numel() for p in module.parameters() if p.requires_grad))


def distill_loss(
    module: GraphModule, teacher: OnlineTeacher, x: torch.Tensor, feature_weight: float
) -> float:
    """The training loss of ``module`` on one batch, without augmentation or gradients."""
    module.taps = (shufflenet.FEATURE_MAP,) if feature_weight else ()
    with torch.no_grad():
        out = module(x)
        emb, extra = (out[0], out[1:]) if isinstance(out, tuple) else (out, ())
        want = F.normalize(teacher(x), dim=1)
        loss = (1 - (F.normalize(emb, dim=1) * want).sum(dim=1)).mean()
        if feature_weight:
            loss = loss + feature_loss(teacher, feature_weight)(extra, x)
    return float(loss)
