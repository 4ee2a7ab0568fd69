"""The ShuffleNet student in torch: same function as ONNX, teacher layers copied and frozen."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch", reason="optional: the [train] extra (torch) is not installed")

from facegate.converters.ir import Graph  # noqa: E402
from facegate.converters.to_onnx import to_onnx  # noqa: E402
from facegate.converters.train import shufflenet  # noqa: E402
from facegate.converters.train import student as st  # noqa: E402
from facegate.converters.train.distill import to_input  # noqa: E402
from facegate.converters.train.ir_torch import OP_TABLE, to_module  # noqa: E402
from facegate.converters.train.teacher import teacher_graph  # noqa: E402

TORCH_ONNX_TOLERANCE = 1e-4  # relative to the output's largest magnitude (FP32 sums reordered)


@pytest.fixture(scope="module")
def teacher() -> Graph:
    return teacher_graph()


def _x(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, 112, 112, 3)).astype(np.float32)


@pytest.mark.parametrize("width", [0.5, 1.0])
def test_torch_module_computes_what_onnx_runtime_computes(width: float) -> None:
    graph = shufflenet.build(width, seed=3)
    x = _x(2)
    want = ort.InferenceSession(to_onnx(graph).SerializeToString()).run(None, {"input": x})[0]
    with torch.no_grad():
        got = to_module(graph).eval()(torch.from_numpy(x)).numpy()
    assert np.abs(got - want).max() <= TORCH_ONNX_TOLERANCE * np.abs(want).max()


def test_copied_layers_are_the_teachers_and_frozen(teacher: Graph) -> None:
    module = st.make_student(st.StudentOptions(0.5), 3, teacher)
    frozen = [
        (i, layer)
        for i, layer in enumerate(module.graph.layers)
        if layer.output in st.shufflenet.TEACHER_STEM + st.shufflenet.TEACHER_HEAD
    ]
    assert len(frozen) == 8
    assert all(not p.requires_grad for i, _ in frozen for p in module.layer_weights(i).values())
    copied = sum(w.size for _, layer in frozen for w in layer.weights.values())
    assert st.trainable(module) == module.graph.params() - copied
    scratch = st.make_student(st.StudentOptions(0.5, copy_teacher=False), 3, None)
    assert st.trainable(scratch) == scratch.graph.params()


def test_the_frozen_head_maps_the_teachers_map_to_the_teachers_embedding(teacher: Graph) -> None:
    """The student's embedding is a fixed function of its map: the teacher's head, exactly."""
    online = st.OnlineTeacher(teacher)
    x = to_input(np.random.default_rng(1).integers(0, 256, (3, 112, 112, 3), dtype=np.uint8))
    want = online(x)
    module = st.make_student(st.StudentOptions(0.5), 3, teacher)
    layers = module.graph.layers
    env = {shufflenet.FEATURE_MAP: online.feature_map(x)}
    start = [layer.output for layer in layers].index(shufflenet.FEATURE_MAP) + 1
    with torch.no_grad():
        for i in range(start, len(layers)):
            xs = [env[name] for name in layers[i].inputs]
            env[layers[i].output] = OP_TABLE[layers[i].op](layers[i], xs, module.layer_weights(i))
    got = env[module.graph.outputs[0]]
    cos = torch.nn.functional.cosine_similarity(got, want, dim=1)
    assert float(cos.min()) > 0.99999


def test_online_teacher_is_the_bundles_embedder(teacher: Graph, recognizer) -> None:
    crops = np.random.default_rng(2).integers(0, 256, (4, 112, 112, 3), dtype=np.uint8)
    got = torch.nn.functional.normalize(st.OnlineTeacher(teacher)(to_input(crops)), dim=1)
    want = recognizer.embedder.embed(crops)
    assert float((got.numpy() * want).sum(1).min()) > 0.99999
