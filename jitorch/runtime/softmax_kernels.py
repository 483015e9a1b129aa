"""Numba kernels of the fused log-softmax and its gradient (CPU).

Arrays arrive as C-contiguous ``(outer, C, inner)`` views with the softmax
over axis 1.  Sums accumulate in float64, as the reduction kernels do, and
NaN propagates through the row max exactly as ``amax`` does, so results match
the composite ``x - max - log(sum(exp(x - max)))`` of ``ops.reductions``.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}


@njit(**_JIT)
def log_softmax_fwd(x, out):
    n_outer, n_c, n_in = x.shape
    m = np.empty(n_in, dtype=np.float64)
    s = np.empty(n_in, dtype=np.float64)
    for o in range(n_outer):
        for i in range(n_in):
            m[i] = -np.inf
            s[i] = 0.0
        for c in range(n_c):
            for i in range(n_in):
                v = x[o, c, i]
                if (v > m[i] or math.isnan(v)) and not math.isnan(m[i]):  # NaN wins, as in amax
                    m[i] = v
        for c in range(n_c):
            for i in range(n_in):
                s[i] += math.exp(x[o, c, i] - m[i])
        for i in range(n_in):
            s[i] = math.log(s[i])
        for c in range(n_c):
            for i in range(n_in):
                out[o, c, i] = (x[o, c, i] - m[i]) - s[i]


@njit(**_JIT)
def log_softmax_bwd(g, y, out):
    """out = g - exp(y) * sum(g) over axis 1, where y is the log-softmax output."""
    n_outer, n_c, n_in = g.shape
    s = np.empty(n_in, dtype=np.float64)
    for o in range(n_outer):
        for i in range(n_in):
            s[i] = 0.0
        for c in range(n_c):
            for i in range(n_in):
                s[i] += g[o, c, i]
        for c in range(n_c):
            for i in range(n_in):
                out[o, c, i] = g[o, c, i] - math.exp(y[o, c, i]) * s[i]
