"""The benchmark harness runs in quick mode and writes results.json (numbers are not judged)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.data import DATA, REPO, SHARED, has_shared

SECTIONS = ("stages", "gallery", "limits")
SMOKE_TIMEOUT_S = 300  # the run takes ~30 s on a quiet machine; this only catches a hang


@pytest.mark.slow
def test_quick_benchmark_writes_results(tmp_path: Path, bundle_dir: Path) -> None:
    out = tmp_path / "bench"
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.run",
        "--quick",
        "--out",
        str(out),
        "--sections",
        ",".join(SECTIONS),
        "--bundle",
        str(bundle_dir),
    ]
    done = subprocess.run(
        cmd,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT_S,
        # the frames are cut from four photos that tests/data holds too, in the same layout
        env={**os.environ, "FACEGATE_SHARED": str(SHARED if has_shared() else DATA)},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert {"meta", *SECTIONS} <= set(results)
    for name in SECTIONS:
        assert "error" not in results[name], results[name].get("error")
    stages = results["stages"]["rows"]
    assert {r["frame"] for r in stages} == {
        "640x480_1face",
        "640x480_4face",
        "1280x720_1face",
        "1280x720_4face",
    }
    assert all(
        set(r["stages_ms"]) == {"decode", "detect", "align", "embed", "match"} for r in stages
    )
    assert {r["templates"] for r in results["gallery"]["exact"]} == {1_000, 10_000, 100_000}
    assert results["limits"]["attainable_gflops"] > 0
    assert {r["frame"] for r in results["limits"]["frames"]} == {r["frame"] for r in stages}
    assert (out / "results.md").is_file()
    assert (out / "stages.png").is_file() and (out / "gallery_scaling.png").is_file()


def test_realframes_times_one_camera_frame_stage_by_stage(bundle_dir: Path) -> None:
    """The real-frame section's per-frame step, on Hamilton's first frame (two faces)."""
    import cv2

    from benchmarks import common, realframes

    common.use_bundle(bundle_dir)
    cap = cv2.VideoCapture(str(DATA / "video" / "face_recognition_short_hamilton_clip.mp4"))
    ok, bgr = cap.read()
    cap.release()
    assert ok
    frame = realframes.RealFrame("hamilton", "000", cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), Path())
    for rec, probe in realframes._systems().values():
        ms, counts, faces = realframes._facegate(rec, probe, frame)
        assert faces == 2
        assert {*realframes.FACEGATE_STAGES, "detect", "total"} <= set(ms)
        assert (counts.cascades, counts.retries) == (1, 0)
        assert counts.candidates["onet"] >= 2 and counts.calls["pnet"] > 0


def test_compression_times_the_variants_in_turn(bundle_dir: Path) -> None:
    """Every variant gets its ms per face from the same rounds, each round in a new order."""
    from benchmarks import compression
    from facegate.bundle import Bundle

    report = json.loads((bundle_dir / "report.json").read_text())
    built = compression.Built("default", bundle_dir, bundle_dir, Bundle.load(bundle_dir), report)
    crops = np.random.default_rng(5).integers(0, 255, (3, 112, 112, 3), dtype=np.uint8)
    variants = compression.variant_rows(built, crops, np.zeros((3, 192), np.float32))
    assert {(r["format"], r["precision"]) for r, _ in variants} >= {
        ("onnx", "fp32"),
        ("tflite", "fp32"),
    }
    order: list[int] = []
    for i, (_, emb) in enumerate(variants):
        embed = emb.embed
        emb.embed = lambda x, i=i, embed=embed: order.append(i) or embed(x)
    compression.time_variants(variants, crops[:1], reps=4)
    n = len(variants)
    timed = order[3 * n :]  # after three warm-up calls each
    rounds = [timed[k * n : (k + 1) * n] for k in range(4)]
    assert all(sorted(r) == list(range(n)) for r in rounds)  # every variant once a round
    assert len({r[0] for r in rounds}) > 1  # and not always the same one first
    assert all(r["ms_per_face"] > 0 for r, _ in variants)
