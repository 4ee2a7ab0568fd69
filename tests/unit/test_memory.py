"""Per-frame buffers stay in the process: no page faults for a frame's worth of temporaries."""

from __future__ import annotations

import platform
import resource

import numpy as np
import pytest

from facegate.host.memory import keep_frame_buffers


def _frame() -> float:
    blocks = [np.ones(1 << 18, np.float32) for _ in range(24)]  # 24 x 1 MB temporaries
    return sum(float(b[0]) for b in blocks)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_a_frames_temporaries_are_reused_without_page_faults() -> None:
    assert keep_frame_buffers()
    assert keep_frame_buffers()  # once per process; a second call is harmless
    block = np.ones(1 << 19, np.float32)  # freed 2 MB: glibc's own threshold would be 2 MB
    del block
    _frame()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        _frame()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    # glibc's defaults hand the 24 MB back after every frame: ~61,000 faults for these 10
    assert faults < 2000, f"{faults} page faults for 10 frames of reused temporaries"
