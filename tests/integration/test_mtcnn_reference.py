"""facegate's MTCNN against facenet-pytorch 2.6.0's, run for real in its own venv.

On the same pixels of every photo in ../shared/faces, with the cascade set as the reference runs
it (``crop="clip"``), both must find the same faces with the same boxes, landmarks and scores, up
to float32 rounding in the nets (ONNX Runtime's and LiteRT's convolutions sum in another order
than torch's). Measured: the same 161 faces; box/landmark differences at most 4.9e-4 px (ONNX
Runtime) and 9.8e-4 px (LiteRT) on photos up to 4352 px wide, 1.2e-4 px on those up to 1024 px.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import detector, venvs
from benchmarks.workers import Worker
from tests.data import shared

# float32 carries ~7 digits: at 4,000 px one step is 2.4e-4 px; the nets' own rounding adds a few.
ABS_PX = 1e-4
REL = 5e-7  # of the coordinate (about 4 float32 steps)
SCORE = 1e-5


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory):
    python = venvs.ensure(venvs.MTCNN_REF)
    if python is None:
        pytest.skip(
            "missing tool: the facenet-pytorch reference venv is not installed (see its pip log)"
        )
    log = tmp_path_factory.mktemp("ref") / "worker.log"
    with Worker(python, "mtcnn_ref_worker.py", log) as worker:
        yield worker


@pytest.fixture(scope="module")
def photos() -> list[Path]:
    """Every photo of ../shared/faces (~160 faces), or skip: they are optional data."""
    shared("faces")
    found = detector.photos()
    assert found, "../shared/faces holds no photos"
    return found


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnxruntime", "litert"])
def test_cascade_matches_facenet_pytorch(
    bundle, photos: list[Path], reference: Worker, backend: str, tmp_path: Path
) -> None:
    got = detector.agreement(reference, detector.detector(backend), photos, tmp_path)
    assert got.ref_faces > 150  # the photos hold ~160 faces: the comparison is not vacuous
    assert got.only_ref == [] and got.only_ours == []
    assert got.faces == got.ref_faces
    for diffs in (got.box_px, got.landmark_px):
        excess = [d - (ABS_PX + REL * c) for d, c in zip(diffs, got.coord, strict=True)]
        assert max(excess) <= 0, sorted(got.worst, reverse=True)[:5]
    assert max(got.score) <= SCORE
