"""Device-side kernels of ``GradScaler``: the gradient check-and-unscale, and the scale update.

Neither synchronizes with the host: the inf/NaN flag and the scale stay in
device memory, and only ``GradScaler.step`` reads the flag (one ``.item()``
per optimizer step, as torch does).

- :func:`check_and_unscale`: one pass over a contiguous float32/float64
  gradient multiplies it by ``inv_scale`` (read from device memory) and sets
  ``found_inf`` to 1 if any element was inf or NaN (every writer stores the
  same 1.0, so the race is benign);
- :func:`update_scale`: torch's ``_amp_update_scale_`` in one thread.
"""
from __future__ import annotations

import numpy as np
from numba import cuda

from .array import CudaArray
from .typed_kernels import Kernel, grid


def _check_unscale(g, n, found, inv):
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    s = inv[0]
    while i < n:
        v = g[i]
        if v - v != 0:  # inf - inf and NaN - NaN are NaN; finite values give 0
            found[0] = 1.0
        g[i] = v * s
        i += step


def _update(scale, tracker, found, growth, backoff, interval):
    if cuda.grid(1) == 0:
        if found[0] != 0:
            # the product in double, rounded to float32, as torch's kernel does
            scale[0] = np.float32(np.float64(scale[0]) * backoff)
            tracker[0] = 0
        else:
            t = tracker[0] + 1
            if t == interval:
                s = np.float32(np.float64(scale[0]) * growth)
                if s - s == 0:  # a finite new scale only
                    scale[0] = s
                tracker[0] = 0
            else:
                tracker[0] = t


_CHECK = Kernel(_check_unscale, "amp_check_and_unscale")
_UPDATE = Kernel(_update, "amp_update_scale")


def _one(a: CudaArray) -> CudaArray:
    """A 0-d/1-element array as a 1-D view of length 1."""
    return a.as_strided((1,), (a.itemsize,))


def supports(g: CudaArray) -> bool:
    """Can :func:`check_and_unscale` take this gradient (contiguous float32/float64)?"""
    return g.flags.c_contiguous and g.dtype in (np.float32, np.float64)


def check_and_unscale(g: CudaArray, found_inf: CudaArray, inv_scale: CudaArray) -> None:
    """``g *= inv_scale`` in place; ``found_inf = 1`` if ``g`` held an inf or NaN."""
    n = g.size
    if n == 0:
        return
    blocks, threads = grid(n)
    _CHECK(blocks, threads, g.as_strided((n,), (g.itemsize,)), n, _one(found_inf), _one(inv_scale))


def update_scale(scale: CudaArray, tracker: CudaArray, found_inf: CudaArray, growth: float, backoff: float,
                 interval: int) -> None:
    """torch's ``_amp_update_scale_`` on device arrays (float32 scale, int32 tracker, float32 flag)."""
    _UPDATE(1, 1, _one(scale), _one(tracker), _one(found_inf), float(growth), float(backoff), int(interval))
