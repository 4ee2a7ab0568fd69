"""CI: one epoch of ``distill --width 0.5`` on 64 UTKFace crops: the loss drops, the file converts
and loads (ONNX Runtime and LiteRT)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tests.data import shared

torch = pytest.importorskip("torch", reason="optional: the [train] extra (torch) is not installed")

from facegate.backends.litert import LiteRTBackend  # noqa: E402
from facegate.converters import ir_store  # noqa: E402
from facegate.converters.to_onnx import to_onnx  # noqa: E402
from facegate.converters.to_tflite import convert  # noqa: E402
from facegate.converters.train import command, faces  # noqa: E402
from facegate.converters.train import student as st  # noqa: E402
from facegate.converters.train.distill import to_input  # noqa: E402
from facegate.converters.train.ir_torch import to_module  # noqa: E402
from facegate.converters.train.teacher import teacher_graph  # noqa: E402

CROPS, SEED = 64, 5


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    shared("train/utkface_crops")
    shared("faces")
    out = tmp_path_factory.mktemp("student") / "s.npz"
    argv = ["distill", "--width", "0.5", "--out", str(out), "--epochs", "1", "--limit", str(CROPS)]
    argv += ["--batch", "16", "--lr", "2e-3", "--seed", str(SEED), "--no-progress"]
    assert command.main(argv) == 0
    return out


def test_one_epoch_lowers_the_loss_on_its_crops(trained: Path) -> None:
    graph, meta = ir_store.load(trained)
    teacher = st.OnlineTeacher(teacher_graph())
    rec = faces.open_recognizer()
    paths = faces.training_paths(shared("train/utkface_crops"), CROPS)
    x = to_input(faces.aligned_crops(rec, paths, "utkface").crops)
    before = st.make_student(st.StudentOptions(0.5), SEED, teacher_graph())
    after = to_module(graph)
    weight = meta["options"]["feature_weight"]
    assert st.distill_loss(after, teacher, x, weight) < st.distill_loss(before, teacher, x, weight)
    assert meta["training_data"]["crops"] == len(x) and meta["seed"] == SEED
    assert meta["options"]["copy_teacher"] and meta["heldout"]["crops"] > 0
    assert not trained.with_name("s.ckpt").exists()  # the checkpoint goes once the file is written


def test_the_student_converts_and_loads(trained: Path, tmp_path: Path) -> None:
    graph, _ = ir_store.load(trained)
    x = np.random.default_rng(1).uniform(-1, 1, (2, 112, 112, 3)).astype(np.float32)
    want = ort.InferenceSession(to_onnx(graph).SerializeToString()).run(None, {"input": x})[0]
    path = tmp_path / "s.tflite"
    path.write_bytes(convert(graph, "fp32"))
    got = LiteRTBackend(path).run(x)[0]
    assert got.shape == want.shape == (2, 192)
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
