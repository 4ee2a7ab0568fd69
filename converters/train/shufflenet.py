"""A ShuffleNet V2 face embedder as a layer graph: 112×112 NHWC crop -> the teacher's 192-d space.

Layout (Ma et al., "ShuffleNet V2", ECCV 2018, with MobileFaceNet's stem and head):

- stem: 3×3 s2 conv to 64 -> PReLU -> depthwise 3×3 -> PReLU (56×56), MobileFaceNet's first two
  layers, so they can be copied from the teacher;
- three stages at 28, 14 and 7 pixels (4, 8 and 4 units); each starts with a down-sampling unit
  (two branches, both stride 2) followed by basic units (channel split: one half passes through,
  the other runs 1×1 -> depthwise 3×3 -> 1×1; concat; channel shuffle). Both branches have the
  same width (the paper's rule: equal widths minimise memory access cost);
- head: 1×1 conv to 512 -> PReLU -> global depthwise 7×7 conv -> 1×1 512 -> 1×1 192 -> flatten,
  the teacher's head layer for layer, so all but its first conv can be copied from the teacher.

A channel shuffle followed by the next unit's split is one constant permutation, so no shuffle is
emitted: each basic unit's two ``gather_channels`` carry the previous shuffle in their indices. A
shuffle before a down-sampling unit or the head needs no op at all: both branches there start with
convolutions over every channel, whose weights absorb any fixed permutation.

Activations are PReLU (as the teacher's) after every 1×1 conv; depthwise convs are linear, as in
the paper. Weights are He-initialised from a seeded generator.
"""

from __future__ import annotations

import numpy as np

from facegate.converters.ir import Graph, Layer

STEM_CHANNELS = 64  # the teacher's stem width, so its stem copies over
STAGE_CHANNELS = {0.5: (48, 96, 192), 1.0: (116, 232, 464)}  # the paper's Table 5
STAGE_REPEATS = (4, 8, 4)  # units per stage, the first of each down-sampling
HEAD_CHANNELS = 512  # the teacher's feature map before its global depthwise conv
EMBEDDING_SIZE = 192  # the teacher's embedding
FEATURE_MAP = "head_act"  # the 7×7×512 map that feature-map distillation matches
PRELU_INIT = 0.25  # He et al. 2015's initial PReLU slope
PRELU_GAIN = 2.0 / (1.0 + PRELU_INIT**2)  # He init for a conv followed by that PReLU
LINEAR_GAIN = 1.0  # a conv followed by no activation (depthwise, head): keeps the variance
INPUT_SIZE = 112


class _Builder:
    """Appends layers with He-initialised weights and unique names."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.layers: list[Layer] = []

    def conv(
        self,
        src: str,
        name: str,
        cin: int,
        cout: int,
        kernel: int,
        stride: int = 1,
        depthwise: bool = False,
        padding: str = "same",
        gain: float = PRELU_GAIN,
    ) -> str:
        """A conv with zero bias and normal weights of variance ``gain / fan_in`` (He et al.)."""
        cin_g = 1 if depthwise else cin
        std = np.sqrt(gain / (cin_g * kernel * kernel))
        weights = {
            "kernel": (self.rng.standard_normal((cout, cin_g, kernel, kernel)) * std).astype(
                np.float32
            ),
            "bias": np.zeros(cout, np.float32),
        }
        attrs = {"stride": stride, "padding": padding, "group": cin if depthwise else 1}
        self.layers.append(Layer("conv", [src], name, attrs, weights))
        return name

    def prelu(self, src: str, name: str, channels: int) -> str:
        """PReLU with every slope at ``PRELU_INIT``."""
        slope = np.full(channels, PRELU_INIT, np.float32)
        self.layers.append(Layer("prelu", [src], name, {}, {"slope": slope}))
        return name

    def gather(self, src: str, name: str, indices: list[int]) -> str:
        """Pick ``indices`` from ``src``'s channels."""
        self.layers.append(Layer("gather_channels", [src], name, {"indices": list(indices)}))
        return name

    def concat(self, inputs: list[str], name: str) -> str:
        """Channel concat of ``inputs``."""
        self.layers.append(Layer("concat", inputs, name))
        return name


def shuffle_order(channels: int, groups: int = 2) -> list[int]:
    """Source channel of each output channel of a channel shuffle (reshape g×n, transpose)."""
    per_group = channels // groups
    return [(k % groups) * per_group + k // groups for k in range(channels)]


def _down_unit(b: _Builder, src: str, name: str, cin: int, cout: int) -> str:
    half = cout // 2
    left = b.conv(src, f"{name}.b1.dw", cin, cin, 3, 2, True, gain=LINEAR_GAIN)
    left = b.prelu(b.conv(left, f"{name}.b1.pw", cin, half, 1), f"{name}.b1.pw_act", half)
    right = b.prelu(b.conv(src, f"{name}.b2.pw1", cin, half, 1), f"{name}.b2.pw1_act", half)
    right = b.conv(right, f"{name}.b2.dw", half, half, 3, 2, True, gain=LINEAR_GAIN)
    right = b.prelu(b.conv(right, f"{name}.b2.pw2", half, half, 1), f"{name}.b2.pw2_act", half)
    return b.concat([left, right], f"{name}.cat")


def _basic_unit(b: _Builder, src: str, name: str, channels: int) -> str:
    """Split (with the previous unit's shuffle folded in), branch, concat."""
    half = channels // 2
    order = shuffle_order(channels)
    keep = b.gather(src, f"{name}.keep", order[:half])
    x = b.gather(src, f"{name}.split", order[half:])
    x = b.prelu(b.conv(x, f"{name}.pw1", half, half, 1), f"{name}.pw1_act", half)
    x = b.conv(x, f"{name}.dw", half, half, 3, depthwise=True, gain=LINEAR_GAIN)
    x = b.prelu(b.conv(x, f"{name}.pw2", half, half, 1), f"{name}.pw2_act", half)
    return b.concat([keep, x], f"{name}.cat")


def _head(b: _Builder, src: str, channels: int) -> str:
    x = b.prelu(b.conv(src, "head", channels, HEAD_CHANNELS, 1), FEATURE_MAP, HEAD_CHANNELS)
    x = b.conv(x, "gdc", HEAD_CHANNELS, HEAD_CHANNELS, 7, 1, True, "valid", LINEAR_GAIN)
    x = b.conv(x, "linear", HEAD_CHANNELS, HEAD_CHANNELS, 1, padding="valid", gain=LINEAR_GAIN)
    x = b.conv(x, "embed", HEAD_CHANNELS, EMBEDDING_SIZE, 1, gain=LINEAR_GAIN)
    b.layers.append(Layer("flatten", [x], "embedding"))
    return "embedding"


def build(width: float, seed: int = 0) -> Graph:
    """A He-initialised ShuffleNet V2 embedder at ``width`` (0.5 or 1.0)."""
    if width not in STAGE_CHANNELS:
        raise ValueError(f"no ShuffleNet V2 width {width} (have {sorted(STAGE_CHANNELS)})")
    b = _Builder(seed)
    x = b.prelu(b.conv("input", "stem", 3, STEM_CHANNELS, 3, 2), "stem_act", STEM_CHANNELS)
    x = b.conv(x, "stem_dw", STEM_CHANNELS, STEM_CHANNELS, 3, depthwise=True)
    x = b.prelu(x, "stem_dw_act", STEM_CHANNELS)
    channels = STEM_CHANNELS
    for stage, (cout, repeats) in enumerate(
        zip(STAGE_CHANNELS[width], STAGE_REPEATS, strict=True), start=2
    ):
        x = _down_unit(b, x, f"s{stage}.0", channels, cout)
        channels = cout
        for unit in range(1, repeats):
            x = _basic_unit(b, x, f"s{stage}.{unit}", channels)
    out = _head(b, x, channels)
    name = f"shufflenet-v2-{width:g}x-face"
    return Graph(name, "input", (None, INPUT_SIZE, INPUT_SIZE, 3), b.layers, [out])


# Student layer -> teacher layer position, for the layers whose shapes match the teacher's:
# MobileFaceNet's first conv/PReLU/depthwise/PReLU, and its head after the 1×1 to 512.
TEACHER_STEM = ("stem", "stem_act", "stem_dw", "stem_dw_act")
TEACHER_HEAD = (FEATURE_MAP, "gdc", "linear", "embed")


def copy_from_teacher(student: Graph, teacher: Graph) -> list[str]:
    """Copy the teacher's stem and head weights into ``student`` in place; returns their names."""
    mine = {layer.output: layer for layer in student.layers}
    weighted = [layer for layer in teacher.layers if layer.weights]
    stem = zip(TEACHER_STEM, weighted[:4], strict=True)
    head = zip(TEACHER_HEAD, weighted[-4:], strict=True)
    pairs = [*stem, *head]
    copied = []
    for name, source in pairs:
        target = mine[name]
        if target.op != source.op or any(
            source.weights[k].shape != v.shape for k, v in target.weights.items()
        ):
            raise ValueError(f"teacher layer {source.output} does not fit student layer {name}")
        target.weights = {k: v.copy() for k, v in source.weights.items()}
        copied.append(name)
    return copied
