"""The torch view of the layer graph computes what the bundle's ONNX embedder computes."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="optional extra: [train] (torch) is not installed")

from facegate.converters.train import ir_torch  # noqa: E402
from facegate.converters.train.distill import to_input  # noqa: E402
from facegate.converters.train.teacher import teacher_graph  # noqa: E402
from facegate.vision.image import load_image  # noqa: E402

TOLERANCE = 1e-4  # max |difference| of unit embeddings: float32 summation order only


@pytest.fixture(scope="module")
def crops(recognizer, faces_dir) -> np.ndarray:
    """Aligned crops of real photos, made by facegate's own detector and alignment."""
    out = []
    for path in sorted(faces_dir.rglob("*.jpg"))[:8]:
        image = load_image(path)
        out += [a.crop for a in recognizer.align(image, recognizer.detect(image))]
    assert len(out) >= 4
    return np.stack(out)


def test_teacher_module_matches_the_bundle_fp32_onnx(recognizer, crops: np.ndarray) -> None:
    module = ir_torch.to_module(teacher_graph())
    with torch.no_grad():
        raw = module(to_input(crops)).numpy()
    got = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    want = recognizer.embedder.embed(crops)
    assert float(np.abs(got - want).max()) < TOLERANCE


def test_to_graph_carries_trained_weights_back() -> None:
    graph = teacher_graph()
    module = ir_torch.to_module(graph)
    with torch.no_grad():
        module.layer_weights(0)["bias"].add_(1.0)
    back = ir_torch.to_graph(module)
    assert np.allclose(back.layers[0].weights["bias"], graph.layers[0].weights["bias"] + 1.0)
    assert np.array_equal(back.layers[5].weights["kernel"], graph.layers[5].weights["kernel"])
    assert back is not graph and back.layers[0].weights["bias"] is not module.graph.layers[0]
