"""A 2-minute soak (benchmarks/soak.py): memory flat after warm-up, frames flowing throughout.

The 30-minute soak is run by hand (``python -m benchmarks.soak --minutes 30 ...``); this one
guards against leaks big enough to show in two minutes and against the pipeline stalling.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.soak import report, soak
from facegate.service.capture import BACKOFF_MAX
from tests.data import needs_tool

MINUTES = 2.0
INTERVAL_S = 2.0
MAX_GROWTH = 0.05  # RSS after warm-up may grow 5% at most (allocator noise is well under 1%)


@pytest.mark.slow
def test_two_minute_soak_has_flat_memory_and_no_gaps(
    bundle_dir: Path, hamilton_clip: Path, tmp_path: Path
) -> None:
    needs_tool("ffmpeg", hint="it serves the clip as an RTSP camera")
    result = soak(MINUTES, hamilton_clip, interval=INTERVAL_S, quiet=True, bundle=bundle_dir)
    (tmp_path / "soak.json").write_text(json.dumps(result, indent=1))
    print(f"\n{report(result)}")
    samples = result["samples"]
    assert len(samples) >= MINUTES * 60 / INTERVAL_S * 0.8
    assert result["rss_mb"]["growth"] <= MAX_GROWTH, result["rss_mb"]
    assert result["longest_gap_s"] <= BACKOFF_MAX
    assert all(s["processed"] > 0 for s in samples)
    assert result["fps"]["mean"] > 0 and samples[-1]["source_up"] == 1
    assert result["meta"]["exit_code"] == 0 and result["meta"]["log_problems"] == []
