"""Numba kernels of the fused training-mode batch norm and its gradient (CPU).

Inputs are C-contiguous ``(N, C, L)`` views (L = the flattened spatial dims).  Channels are
independent: the drivers take a channel range, to be shared between threads by the caller.
Per channel: two passes for the statistics (mean, then the centered sum of
squares, as the composite computes them), one for the output.  Sums run in
float64 through ``radd``, whose reassociation lets LLVM vectorize them.
``stats`` is a ``(3, C)`` float64 array: the mean, ``1 / sqrt(var + eps)`` and the (biased) variance.
Numba's disk cache keys on this file's text alone, not on the ``vmath`` helpers inlined here:
after changing vmath, edit this file too (this note will do) so the cached machine code is rebuilt.
"""
from __future__ import annotations

import math

from numba import njit

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}


# Row sums with reassociation allowed (their own functions, so the flag covers only these loops):
# LLVM then splits them into vector lanes, where a serial float64 sum is bound by the add latency.
_FAST = {"fastmath": {"reassoc", "contract"}}


@njit(**_FAST, **_JIT)
def _sum(row):
    s = 0.0
    for k in range(row.shape[0]):
        s += float(row[k])
    return s


@njit(**_FAST, **_JIT)
def _sq_dev(row, mean):
    v = 0.0
    for k in range(row.shape[0]):
        d = float(row[k]) - mean
        v += d * d
    return v


@njit(**_FAST, **_JIT)
def _grad_sums(grow, xrow, mean):
    sg = 0.0
    sgx = 0.0
    for k in range(grow.shape[0]):
        gv = float(grow[k])
        sg += gv
        sgx += gv * (float(xrow[k]) - mean)
    return sg, sgx


@njit(**_JIT)
def _bn_channel_forward(x, w, b, has_w, has_b, eps, c, y, stats):
    n_b, _, n_l = x.shape
    count = n_b * n_l
    s = 0.0
    for n in range(n_b):
        s += _sum(x[n, c])
    mean = s / count
    v = 0.0
    for n in range(n_b):
        v += _sq_dev(x[n, c], mean)
    var = v / count
    invstd = 1.0 / math.sqrt(var + eps)
    stats[0, c] = mean
    stats[1, c] = invstd
    stats[2, c] = var
    scale = y.dtype.type(invstd * (float(w[c]) if has_w else 1.0))
    shift = y.dtype.type((float(b[c]) if has_b else 0.0) - mean * invstd * (float(w[c]) if has_w else 1.0))
    for n in range(n_b):
        row = x[n, c]
        out = y[n, c]
        for k in range(n_l):
            out[k] = row[k] * scale + shift


@njit(**_JIT)
def bn_forward(x, w, b, has_w, has_b, eps, y, stats, c0, c1):
    """Channels [c0, c1): statistics into ``stats`` and the normalized output into ``y``."""
    for c in range(c0, c1):
        _bn_channel_forward(x, w, b, has_w, has_b, eps, c, y, stats)


@njit(**_JIT)
def _bn_channel_backward(g, x, w, has_w, stats, want_x, c, gx, gwb):
    n_b, _, n_l = x.shape
    count = n_b * n_l
    mean = float(stats[0, c])
    invstd = float(stats[1, c])
    sg = 0.0
    sgx = 0.0
    for n in range(n_b):
        a, b = _grad_sums(g[n, c], x[n, c], mean)
        sg += a
        sgx += b
    gwb[0, c] = sgx * invstd  # d weight = sum(g * xhat)
    gwb[1, c] = sg            # d bias = sum(g)
    if want_x:
        wc = float(w[c]) if has_w else 1.0
        k1 = wc * invstd
        k3 = k1 * invstd * invstd * sgx / count
        # gx = k1 * g - k2 - (x - mean) * k3 = k1 * g - k3 * x + (k3 * mean - k2), in the tensor's dtype
        a1 = gx.dtype.type(k1)
        a3 = gx.dtype.type(k3)
        a0 = gx.dtype.type(k3 * mean - k1 * sg / count)
        for n in range(n_b):
            grow = g[n, c]
            xrow = x[n, c]
            out = gx[n, c]
            for k in range(n_l):
                out[k] = a1 * grow[k] - a3 * xrow[k] + a0


@njit(**_JIT)
def bn_backward(g, x, w, has_w, stats, want_x, gx, gwb, c0, c1):
    """Channels [c0, c1): weight and bias gradients into ``gwb``, the input gradient into ``gx``."""
    for c in range(c0, c1):
        _bn_channel_backward(g, x, w, has_w, stats, want_x, c, gx, gwb)
