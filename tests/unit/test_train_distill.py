"""The distillation loop: seeded, and a run resumed from its checkpoint ends where an unbroken
run of the same length ends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="optional extra: [train] (torch) is not installed")

from facegate.converters.ir import Graph, Layer  # noqa: E402
from facegate.converters.train import ir_torch  # noqa: E402
from facegate.converters.train.distill import DistillConfig, distill, schedule  # noqa: E402
from facegate.converters.train.teacher import Targets  # noqa: E402


def _tiny() -> Graph:
    rng = np.random.default_rng(5)
    conv = {"kernel": rng.normal(0, 0.05, (4, 3, 28, 28)).astype("f4"), "bias": np.zeros(4, "f4")}
    layers = [
        Layer("conv", ["input"], "a", {"stride": 28, "padding": "valid", "group": 1}, conv),
        Layer("prelu", ["a"], "b", {}, {"slope": np.full(4, 0.25, "f4")}),
        Layer("flatten", ["b"], "embedding"),
    ]
    return Graph("tiny", "input", (None, 112, 112, 3), layers, ["embedding"])


def _data() -> tuple[np.ndarray, Targets]:
    rng = np.random.default_rng(6)
    crops = rng.integers(0, 256, (24, 112, 112, 3), dtype=np.uint8)
    t = rng.normal(size=(24, 64)).astype("f4")
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    return crops, Targets(t, t[:, ::-1].copy())


def _run(stop_after: int, ckpt: Path, resume: bool, module=None, average_last: int = 0):
    module = module or ir_torch.to_module(_tiny())
    crops, targets = _data()
    cfg = DistillConfig(epochs=3, batch=8, lr=1e-2, checkpoint=ckpt, resume=resume,
                        stop_after=stop_after, progress=False,
                        average_last=average_last)  # fmt: skip
    report = distill(module, crops, targets, cfg, (crops[:4], targets.plain[:4]))
    return module, report


def test_resumed_run_ends_where_an_unbroken_run_ends(tmp_path: Path) -> None:
    straight, report = _run(3, tmp_path / "a.ckpt", resume=False)
    _run(1, tmp_path / "b.ckpt", resume=False)  # planned 3 epochs, stopped after 1
    resumed, again = _run(3, tmp_path / "b.ckpt", resume=True)
    assert again.epochs == report.epochs == 3 and len(again.losses) == 3
    assert np.allclose(again.losses, report.losses, atol=1e-5)
    for key, value in straight.state_dict().items():
        assert torch.allclose(value, resumed.state_dict()[key], atol=1e-6), key
    assert report.losses[-1] < report.losses[0]  # it learns


def test_average_last_ends_on_the_mean_of_the_last_epochs_weights(tmp_path: Path) -> None:
    """--average-last 2 of 3 epochs: the mean of the weights after epochs 2 and 3, also when the
    run was stopped and resumed in between; the report says what the mean scored."""
    epoch2, _ = _run(2, tmp_path / "plain.ckpt", resume=False)
    w2 = {k: v.clone() for k, v in epoch2.state_dict().items()}
    epoch3, plain = _run(3, tmp_path / "plain.ckpt", resume=True)
    averaged, report = _run(3, tmp_path / "avg.ckpt", resume=False, average_last=2)
    for key, value in averaged.state_dict().items():
        want = (w2[key] + epoch3.state_dict()[key]) / 2
        assert torch.allclose(value, want, atol=1e-6), key
        assert not torch.allclose(value, epoch3.state_dict()[key], atol=1e-6), key
    assert report.averaged["epochs"] == 2 and "cos_mean" in report.averaged["heldout"]
    assert np.allclose(report.losses, plain.losses, atol=1e-5)  # the same trajectory
    _run(2, tmp_path / "split.ckpt", resume=False, average_last=2)  # epoch 2 summed, then stop
    resumed, again = _run(3, tmp_path / "split.ckpt", resume=True, average_last=2)
    assert again.averaged["epochs"] == 2
    for key, value in resumed.state_dict().items():
        assert torch.allclose(value, averaged.state_dict()[key], atol=1e-6), key


def _lrs(make_schedule, total: int = 40) -> list[float]:
    """The learning rate of each of ``total`` batches under ``make_schedule(optimizer)``."""
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    sched = make_schedule(opt)
    lrs = []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_warmup_rises_to_the_peak_then_decays_to_zero() -> None:
    lrs = _lrs(lambda opt: schedule(opt, 40, warmup=10))
    assert lrs[0] == pytest.approx(1e-4)  # 1/10 of the peak on the first batch, not the peak
    assert lrs[:10] == sorted(lrs[:10])
    assert max(lrs) == pytest.approx(1e-3) and lrs.index(max(lrs)) in (9, 10)
    assert lrs[10:] == sorted(lrs[10:], reverse=True)
    assert lrs[-1] < 1e-5


def test_no_warmup_keeps_the_plain_cosine_decay() -> None:
    """Weights trained before --warmup existed must come out the same from the same command."""
    plain = _lrs(lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=40))
    assert _lrs(lambda opt: schedule(opt, 40, warmup=0)) == plain
