"""The multicam benchmark section runs in quick mode and reports what it promises (not judged)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.data import REPO, SHARED, shared

SMOKE_TIMEOUT_S = 600  # ~1 min on a quiet machine; this only catches a hang


@pytest.mark.slow
def test_quick_multicam_section_writes_every_figure(tmp_path: Path, bundle_dir: Path) -> None:
    shared("video/facenet_pytorch_video.mp4")  # the empty scene is made from it: skip without
    out = tmp_path / "bench"
    cmd = [sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(out),
           "--sections", "multicam", "--bundle", str(bundle_dir)]  # fmt: skip
    env = {**os.environ, "FACEGATE_SHARED": str(SHARED)}
    done = subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, timeout=SMOKE_TIMEOUT_S, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())["multicam"]
    assert res["empty_scene_faces"] == 0  # the empty street holds nobody
    assert res["empty"]["on"]["plans"]["skip"] == res["empty"]["on"]["frames"] - 1
    assert res["single"]["off"]["plans"] == {"skip": 0, "regions": 0, "full": 0}  # no planner
    assert sum(res["single"]["on"]["plans"].values()) == res["single"]["on"]["frames"]
    stages = {"motion", "detect", "align", "embed", "match"}
    assert set(res["single"]["on"]["stage_ms_per_frame"]) == stages
    cams = res["four"]["cameras"]
    assert [c["offset_frames"] for c in cams] == [0, 10, 20, 30]  # a quarter of 40 frames each
    assert (
        res["four"]["fps_each"] > 0
        and "Detection planner targets" in (out / "results.md").read_text()
    )
    # the verdicts follow the figures they judge (four cameras: frames per camera per wall second)
    targets = res["targets"]
    assert targets["fps_each_met"] == (res["four"]["fps_each"] >= targets["fps_each"])
    empty_ms = res["empty"]["on"]["frame_ms"]["median"]
    assert targets["empty_ms_met"] == (empty_ms <= targets["empty_ms"])
