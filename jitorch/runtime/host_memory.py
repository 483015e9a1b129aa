"""Host allocations: keep freed large buffers in the process instead of unmapping them.

glibc serves allocations above its mmap threshold (at most 32 MiB by default)
with fresh mmaps, so every large eager op result is a new mapping whose pages
fault in on first write: a 16M-element add then spends a third of its time in
page faults.  Raising the thresholds lets freed buffers be reused, the way a
caching allocator would (measured here: 16M add 10.9 ms -> 7.8 ms).
``JITORCH_MALLOC_TUNING=0`` leaves glibc's defaults alone.
"""
from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def tune() -> bool:
    """Apply the thresholds; returns False where that is not possible (not glibc, or disabled)."""
    if os.environ.get("JITORCH_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = mallopt(_M_MMAP_THRESHOLD, 1 << 30) == 1
    ok = mallopt(_M_TRIM_THRESHOLD, 1 << 31) == 1 and ok
    return ok
