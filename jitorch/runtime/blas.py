"""The BLAS behind NumPy, used as jitorch's extern matmul kernel, and its thread count.

OpenBLAS threads spin while they wait for work; next to Numba's own worker
threads on a small machine they can turn a 0.05 ms matmul into 15 ms.  So a
small product runs on one BLAS thread and a large one on all of them
(``set_threads`` switches only when the wanted count changes); a mid-size one
is split in two single-threaded halves shared with jitorch's helper thread.
"""
from __future__ import annotations

import ctypes
import os
import re

import numpy as np

# below this many multiply-adds a product is faster on one thread (measured on a LeNet
# training step: 2 BLAS threads for mid-size products made the whole step 2.5x slower)
SINGLE_THREAD_FLOPS = 1 << 26

_setter = None
_max_threads = 1
_current = None


_library = None


def _find_openblas():
    global _library
    try:
        with open("/proc/self/maps") as f:
            maps = f.read()
    except OSError:
        return None, 1
    for path in sorted(set(re.findall(r"(/\S*openblas\S*\.so\S*)", maps))):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas_", "openblas_"):
            for suffix in ("64_", ""):
                setter = getattr(lib, f"{prefix}set_num_threads{suffix}", None)
                getter = getattr(lib, f"{prefix}get_num_threads{suffix}", None)
                if setter is not None and getter is not None:
                    getter.restype = ctypes.c_int
                    _library = lib
                    return setter, max(1, int(getter()))
    return None, 1


def library():
    """The OpenBLAS library NumPy loaded (a ``ctypes.CDLL``), or None when it was not found."""
    return _library


def _init() -> None:
    global _setter, _max_threads
    if os.environ.get("JITORCH_BLAS_THREADS") == "default":
        return
    _setter, _max_threads = _find_openblas()


def set_threads(n: int) -> None:
    global _current
    if _setter is not None and n != _current:
        _setter(int(n))
        _current = n


def prepare(a: np.ndarray, b: np.ndarray) -> None:
    """Set the BLAS thread count for ``a @ b`` (for callers that then run ``np.matmul(..., out=)``)."""
    if _setter is not None:
        flops = a.shape[-2] * a.shape[-1] * b.shape[-1] * max(1, a.size // max(1, a.shape[-2] * a.shape[-1]))
        set_threads(1 if flops < SINGLE_THREAD_FLOPS else _max_threads)


# Mid-size products (a training step's layers) are split in two halves of the output, one
# single-threaded BLAS call each on this thread and on jitorch's helper thread
# (``runtime.parallel``): two cores without OpenBLAS's spinning workers, and no slower than one
# call when the other core is busy (the caller then runs both halves).
SHARED_FLOPS = 1 << 24  # measured: below ~16M multiply-adds the hand-off costs more than it saves


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.matmul`` with the BLAS thread count chosen by the product's size."""
    prepare(a, b)
    if a.ndim == 2 and b.ndim == 2 and a.dtype == b.dtype and a.dtype.kind == "f" and \
            SHARED_FLOPS <= a.shape[0] * a.shape[1] * b.shape[1] < SINGLE_THREAD_FLOPS:
        return _shared_matmul(a, b)
    if a.ndim > 2 and not a.flags.c_contiguous:
        a = np.ascontiguousarray(a)  # a batched strided operand makes NumPy leave BLAS for a slow loop
    if b.ndim > 2 and not b.flags.c_contiguous:
        b = np.ascontiguousarray(b)
    return np.matmul(a, b)


def _shared_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from . import parallel
    m, n = a.shape[0], b.shape[1]
    out = np.empty((m, n), dtype=a.dtype)
    if m >= n:  # split the longer side, so each half stays a well-shaped GEMM
        rows = parallel.split(m, 2)
        parallel.run_chunks(lambda k: np.matmul(a[slice(*rows[k])], b, out=out[slice(*rows[k])]), len(rows),
                            m * a.shape[1] * n)
    else:
        cols = parallel.split(n, 2)
        parallel.run_chunks(lambda k: np.matmul(a, b[:, slice(*cols[k])], out=out[:, slice(*cols[k])]), len(cols),
                            m * a.shape[1] * n)
    return out


_init()
