"""Structured pruning: whole channels out to a MAC budget, the surgery exact, training converts.

The last test is the CI training run: 1 epoch on 64 UTKFace crops through the real command; the
loss drops and the result goes through the ONNX and TFLite emitters and loads in facegate's
backends.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="optional extra: [train] (torch) is not installed")

from facegate.converters import ir_store  # noqa: E402
from facegate.converters.ir import count_macs  # noqa: E402
from facegate.converters.train import ir_torch, prune  # noqa: E402
from facegate.converters.train.distill import cosine_figures, embed  # noqa: E402
from facegate.converters.train.teacher import teacher_graph  # noqa: E402
from tests.data import shared  # noqa: E402


@pytest.fixture(scope="module")
def teacher():
    """The teacher MobileFaceNet as a layer graph."""
    return teacher_graph()


def test_groups_are_the_internal_channels_never_residual_tied(teacher) -> None:
    groups = prune.channel_groups(teacher)
    adds = {name for layer in teacher.layers if layer.op == "add" for name in layer.inputs}
    assert len(groups) == 17  # stem, 15 bottlenecks, head conv
    for g in groups:
        assert teacher.layers[g.producer].output not in adds
        assert all(teacher.layers[j].output not in adds for j in g.followers)
    assert [g.channels for g in groups][-1] == 512


@pytest.mark.parametrize("budget", [0.6, 0.4])
def test_pruned_net_fits_the_budget_and_keeps_its_interface(teacher, budget: float) -> None:
    full = count_macs(teacher, 112, 112)
    pruned = prune.prune_to_macs(teacher, int(budget * full))
    macs = count_macs(pruned, 112, 112)
    assert budget - 0.05 < macs / full <= budget
    assert pruned.params() < teacher.params()
    widths = prune.describe(pruned)
    assert widths[0] == 64 and widths[-1] == 512  # stem and head are spared
    assert all(w % prune.CHANNEL_STEP == 0 for w in widths)
    with torch.no_grad():
        out = ir_torch.to_module(pruned)(torch.zeros(2, 112, 112, 3))
    assert out.shape == (2, 192)


def test_removing_dead_channels_changes_nothing(teacher) -> None:
    """Channels whose filters, biases and depthwise weights are zero contribute exactly 0."""
    graph = ir_torch.to_graph(ir_torch.to_module(teacher))
    group = prune.channel_groups(graph)[3]
    dead = np.arange(0, group.channels, 3)
    for j in (group.producer, *group.followers):
        for key, value in graph.layers[j].weights.items():
            if key in ("kernel", "bias"):
                value[dead] = 0
    keep = np.setdiff1d(np.arange(group.channels), dead)
    smaller = prune.remove_channels(graph, {group.producer: keep})
    assert prune.describe(smaller)[3] == len(keep)
    x = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (2, 112, 112, 3)).astype("f4"))
    with torch.no_grad():
        want = ir_torch.to_module(graph)(x).numpy()
        got = ir_torch.to_module(smaller)(x).numpy()
    assert np.abs(got - want).max() < 1e-4 * np.abs(want).max()


def test_refit_recovers_much_of_what_pruning_lost(teacher, recognizer, faces_dir) -> None:
    from facegate.converters.train.distill import to_input
    from facegate.vision.image import load_image

    crops = []
    for path in sorted(faces_dir.rglob("*.jpg")):
        image = load_image(path)
        crops += [a.crop for a in recognizer.align(image, recognizer.detect(image))]
    crops = np.stack(crops)
    fit, check = crops[::2], crops[1::2]
    want = recognizer.embedder.embed(check)
    pruned = prune.prune_to_macs(teacher, int(0.6 * count_macs(teacher, 112, 112)))
    before = cosine_figures(embed(ir_torch.to_module(pruned), check), want)
    refitted = prune.refit(pruned, teacher, to_input(fit))
    after = cosine_figures(embed(ir_torch.to_module(refitted), check), want)
    assert after["cos_mean"] > before["cos_mean"] + 0.2


def _naive_elimination(x: np.ndarray, y: np.ndarray, keep: int) -> list[int]:
    """Backward elimination by brute force: for every candidate drop, a fresh solve of the
    ridge objective (the ridge fixed from all columns, as in the fast version)."""
    xa = np.concatenate([x, np.ones((len(x), 1))], axis=1).astype(np.float64)
    gram = xa.T @ xa
    gram += np.eye(len(gram)) * prune.REFIT_RIDGE * np.trace(gram) / len(gram)
    xty = xa.T @ y.astype(np.float64)
    alive = list(range(x.shape[1]))

    def loss(cols: list[int]) -> float:  # min over B of |y - XB|^2 + ridge |B|^2, less y'y
        s = [*cols, x.shape[1]]  # the bias always stays
        return -float(np.sum(xty[s] * np.linalg.solve(gram[np.ix_(s, s)], xty[s])))

    while len(alive) > keep:
        alive.remove(min(alive, key=lambda c: loss([a for a in alive if a != c])))
    return alive


def test_backward_elimination_matches_brute_force() -> None:
    """Every column matters a little and they are correlated, so each drop moves the others'
    coefficients: the fast downdates must pick what a fresh solve picks, step by step."""
    rng = np.random.default_rng(3)
    mix = np.eye(12) + 0.5 * rng.normal(size=(12, 12))
    x = (rng.normal(size=(3000, 12)) @ mix).astype(np.float32)
    scale = np.exp(rng.uniform(-2, 1, size=(12, 1)))
    y = x @ (scale * rng.normal(size=(12, 5))) + 0.1 * rng.normal(size=(3000, 5))
    for keep in (9, 6, 3, 1):
        assert list(prune.backward_elimination(x, y, keep)) == _naive_elimination(x, y, keep)


def test_backward_elimination_keeps_the_columns_the_output_is_made_of() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3000, 12)).astype(np.float32)
    x[:, 4] = x[:, 9] + 0.05 * rng.normal(size=3000)  # a near-copy: either may stay, not both
    x[:, 7] *= 50  # a loud column y never reads: a magnitude criterion would keep it
    y = x[:, [1, 4, 10]] @ rng.normal(size=(3, 5)) + 0.01 * rng.normal(size=(3000, 5))
    got = set(prune.backward_elimination(x, y, 3))
    assert {1, 10} < got and len(got & {4, 9}) == 1 and 7 not in got


def test_least_squares_selection_beats_filter_l1_on_crops_it_did_not_fit(
    teacher, recognizer, faces_dir
) -> None:
    """The same widths, two ways of choosing the channels, both refit on the same crops."""
    from facegate.converters.train.distill import to_input
    from facegate.vision.image import load_image

    crops = []
    for path in sorted(faces_dir.rglob("*.jpg")):
        image = load_image(path)
        crops += [a.crop for a in recognizer.align(image, recognizer.detect(image))]
    crops = np.stack(crops)
    fit, check = to_input(crops[::2]), crops[1::2]
    want = recognizer.embedder.embed(check)
    widths = prune.widths_for(teacher, int(0.6 * count_macs(teacher, 112, 112)))
    l1 = prune.refit(prune.remove_channels(teacher, prune.l1_plan(teacher, widths)), teacher, fit)
    lsq = prune.select_and_refit(teacher, widths, teacher, fit)
    assert prune.describe(lsq) == prune.describe(l1)
    assert count_macs(lsq, 112, 112) == count_macs(l1, 112, 112)
    got_l1 = cosine_figures(embed(ir_torch.to_module(l1), check), want)
    got_lsq = cosine_figures(embed(ir_torch.to_module(lsq), check), want)
    assert got_lsq["cos_mean"] > got_l1["cos_mean"] + 0.1, (got_lsq, got_l1)


def _training_loss(graph, crops: np.ndarray, recognizer) -> float:
    got = embed(ir_torch.to_module(graph), crops)
    return float(np.mean(1 - np.sum(got * recognizer.embedder.embed(crops), axis=1)))


@pytest.mark.slow
def test_one_epoch_on_64_crops_lowers_the_loss_and_converts(
    tmp_path: Path, teacher, recognizer
) -> None:
    shared("train/utkface_crops")
    shared("video/facenet_pytorch_video.mp4")  # the border fill's street scenes
    out = tmp_path / "p.npz"
    args = ["prune", "--budget", "0.6", "--epochs", "1", "--limit", "64", "--refit-crops", "16"]
    args += ["--out", str(out), "--no-progress", "--lr", "1e-4", "--fill-borders", "0.5"]
    proc = subprocess.run(
        [sys.executable, "-m", "facegate.converters.train", *args],
        capture_output=True, text=True, timeout=1500, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    graph, meta = ir_store.load(out)
    assert summary["architecture"] == graph.name == "mobilefacenet-pruned60"
    assert meta["seed"] == 14 and "UTKFace" in meta["training_data"]["licence"]
    assert meta["training_data"]["backgrounds"]["probability"] == 0.5
    assert meta["command"].startswith("python -m facegate.converters.train prune")
    assert meta["steps"][0]["epochs"] == 1 and meta["start"] == "teacher"
    _converts_and_loads(graph, tmp_path)
    # the loss the epoch trained on, measured on the same 64 crops before and after it
    from facegate.converters.train import faces

    rec = faces.open_recognizer()
    crops = faces.aligned_crops(rec, faces.training_paths(faces.train_root(), 64), "utkface")
    from facegate.converters.train.distill import to_input

    widths = prune.widths_for(teacher, int(0.6 * count_macs(teacher, 112, 112)))
    start = prune.select_and_refit(teacher, widths, teacher, to_input(crops.crops[:16]))
    assert meta["criterion"] == "lsq"
    assert _training_loss(graph, crops.crops, recognizer) < _training_loss(
        start, crops.crops, recognizer
    )


def _converts_and_loads(graph, tmp_path: Path) -> None:
    from facegate.backends import open_backend
    from facegate.converters import to_onnx, to_tflite

    x = np.random.default_rng(1).uniform(-1, 1, (1, 112, 112, 3)).astype(np.float32)
    onnx_path = to_onnx.save(to_onnx.to_onnx(graph), tmp_path / "e.onnx")
    tfl_path = to_tflite.save(to_tflite.convert(graph, "fp32"), tmp_path / "e.tflite")
    a = open_backend(onnx_path, "onnx", 1).run(x)[0]
    b = open_backend(tfl_path, "tflite", 1).run(x)[0]
    assert a.shape == b.shape == (1, 192)
    assert np.abs(a - b).max() < 1e-3 * np.abs(a).max()


def test_hints_compare_tensors_pruning_leaves_the_teacher_shape(teacher) -> None:
    from facegate.converters.train.distill import hint_loss
    from facegate.converters.train.pipeline import residual_stream

    pruned = prune.prune_to_macs(teacher, int(0.6 * count_macs(teacher, 112, 112)))
    taps = residual_stream(pruned)
    assert len(taps) >= 17  # every block's output
    t_mod, p_mod = ir_torch.to_module(teacher), ir_torch.to_module(pruned)
    t_mod.taps = p_mod.taps = taps
    x = torch.from_numpy(np.random.default_rng(2).uniform(-1, 1, (2, 112, 112, 3)).astype("f4"))
    with torch.no_grad():
        t_out, p_out = t_mod(x), p_mod(x)
    assert [a.shape for a in t_out[1:]] == [b.shape for b in p_out[1:]]
    assert float(hint_loss(t_out[1:], t_out[1:])) == 0.0
    assert float(hint_loss(p_out[1:], t_out[1:])) > 0.1


def test_step_budgets_fine_tune_a_net_already_within_the_budget() -> None:
    from facegate.converters.train.pipeline import step_budgets
    from facegate.errors import FacegateError

    assert step_budgets(1.0, 0.6, 2) == pytest.approx([0.8, 0.6])
    assert step_budgets(0.5915, 0.6, 1) == [None]  # --start pruned60 --budget 0.6: train only
    with pytest.raises(FacegateError, match="--budget"):
        step_budgets(1.0, 0.01, 1)
    with pytest.raises(FacegateError, match="--steps"):
        step_budgets(1.0, 0.6, 0)
