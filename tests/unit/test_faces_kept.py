"""FaceKeeper: the best face per track goes to the store; a failing store never stops the loop."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from facegate.gallery.unknowns import UnknownStore
from facegate.service.faces_kept import FaceKeeper
from facegate.service.metrics import Metrics
from facegate.types import AlignedFace, Face
from facegate.vision.quality import FaceQuality, Pose

DIM = 128


def aligned(rng: np.random.Generator) -> AlignedFace:
    face = Face((0.0, 0.0, 100.0, 100.0), 0.99, np.zeros((5, 2), np.float32))
    return AlignedFace(face, rng.integers(0, 256, (112, 112, 3), dtype=np.uint8))


def test_the_best_face_of_a_track_is_kept_and_failures_are_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rng = np.random.default_rng(0)
    store = UnknownStore.open(tmp_path / "g.db", "m", DIM)
    metrics = Metrics()
    keeper = FaceKeeper(store, "door", metrics)
    vector = rng.normal(size=DIM).astype(np.float32)
    sharp, blurred = FaceQuality(100, 900, Pose(0, 0)), FaceQuality(100, 50, Pose(0, 0))
    best = aligned(rng)
    keeper.note(7, best, sharp, vector)
    keeper.note(7, aligned(rng), blurred, vector)  # worse: not kept
    added = keeper.unknown(7, 1.7e9)
    assert added is not None and added.state == "open"
    assert store.best_crop(added.cluster_id) == keeper.face_jpeg(7)
    keeper.forget([7])
    assert keeper.unknown(7, 1.7e9) is None  # the track ended: nothing left to keep
    keeper.note(8, best, sharp, vector)
    store.close()  # the store fails from now on (as on a full disk)
    with caplog.at_level(logging.WARNING):
        assert keeper.unknown(8, 1.7e9) is None
        assert keeper.unknown(8, 1.7e9) is None
    assert metrics.counters["unknowns_errors"] == 2 and metrics.counters["unknowns_kept"] == 1
    assert caplog.text.count("cannot keep unknown faces") == 1  # logged once, not per face
