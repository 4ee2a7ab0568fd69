"""Keep per-frame buffers in the process instead of returning them to the kernel every frame.

Every frame allocates and frees the same large temporaries (pyramid levels, crops, the
runtimes' intermediate tensors: ONNX Runtime runs without its arena, whose size would follow the
largest shape ever seen). glibc's default then hands the top of the heap back to the kernel after
each frame and takes it again on the next one, a page fault per 4 KB: measured here, ONNX Runtime's
P-Net over a 640x480 pyramid took 7.9 ms that way and 5.6 ms with the thresholds below (5.1 ms with
the arena). The price is memory that stays mapped once used: the daemon's RSS on the Hamilton
clip went from 167 to 172 MB with this and LiteRT's per-level P-Net interpreters together.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # blocks up to this size come from the heap and are reused
TRIM_THRESHOLD = 64 << 20  # free heap kept before any is returned to the kernel: above a
# 1080p frame's temporaries (16 MB measured no smaller on the Hamilton clip)

_done = False


def keep_frame_buffers() -> bool:
    """Set glibc's malloc thresholds once per process; False where the C library is not glibc."""
    global _done
    if _done:
        return True
    # The process's own symbols: glibc's mallopt where glibc is the C library. (find_library
    # would spawn ldconfig, ~20 ms of a one-image identify, and import subprocess.)
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        log.debug("no mallopt in this process's C library: malloc left as it is")
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    _done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    return _done
