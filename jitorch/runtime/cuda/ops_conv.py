"""CUDA ``im2col`` and ``col2im``: with the GEMM they make ``conv2d`` (and its gradients) run on the GPU.

``im2col`` gives every column entry its own thread, in the column array's
memory order (so the stores are coalesced), reading the image through its
strides.  ``col2im``, its adjoint, is written as a gather: one thread per
image pixel sums the column entries that were read from it (at most
``kh * kw``, found by inverting the window arithmetic), so overlapping windows
need no atomics and the sum is deterministic.  Both column layouts are
served: batch-major ``(N, C*kh*kw, L)`` and channel-major ``(C*kh*kw, N, L)``.
"""
from __future__ import annotations

import numpy as np
from numba import cuda

from ...ops import nn_ops as _nn_ops  # noqa: F401 - the ops must exist before their impls
from ...ops.registry import impl
from .array import empty
from .typed_kernels import Kernel, contiguous, flat, grid, span


@cuda.jit(device=True, inline=True)
def _column_coords(t, N, C, KK, L, channel_major):
    """(n, c, r, l) of flat position ``t`` of a column array of either layout."""
    l = t % L
    rest = t // L
    if channel_major:
        n = rest % N
        rest //= N
        r = rest % KK
        c = rest // KK
    else:
        r = rest % KK
        rest //= KK
        c = rest % C
        n = rest // C
    return n, c, r, l


@cuda.jit(device=True, inline=True)
def _column_pos(n, c, r, l, N, C, KK, L, channel_major):
    if channel_major:
        return ((c * KK + r) * N + n) * L + l
    return ((n * C + c) * KK + r) * L + l


def _im2col(x, x0, xs, N, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, ow, L, channel_major, out, total):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    KK = kh * kw
    while t < total:
        n, c, r, l = _column_coords(t, N, C, KK, L, channel_major)
        hi = (l // ow) * sh - ph + (r // kw) * dh
        wi = (l % ow) * sw - pw + (r % kw) * dw
        if hi >= 0 and hi < H and wi >= 0 and wi < W:
            out[t] = x[x0 + n * xs[0] + c * xs[1] + hi * xs[2] + wi * xs[3]]
        else:
            out[t] = 0
        t += step


def _col2im(cols, N, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, channel_major, acc0, out, total):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    KK = kh * kw
    L = oh * ow
    while t < total:
        w = t % W
        rest = t // W
        h = rest % H
        rest //= H
        c = rest % C
        n = rest // C
        acc = acc0
        for ki in range(kh):
            hn = h + ph - ki * dh
            if hn % sh == 0:
                i = hn // sh
                if i >= 0 and i < oh:
                    for kj in range(kw):
                        wn = w + pw - kj * dw
                        if wn % sw == 0:
                            j = wn // sw
                            if j >= 0 and j < ow:
                                acc += cols[_column_pos(n, c, ki * kw + kj, i * ow + j, N, C, KK, L, channel_major)]
        out[t] = acc
        t += step


_K_IM2COL = Kernel(_im2col)
_K_COL2IM = Kernel(_col2im)


@impl("im2col", "cuda")
def _im2col_cuda(x, geom, in_hw, channel_major):
    n, c, h, w = x.shape
    g = geom
    kk, length = g.kh * g.kw, g.oh * g.ow
    out = empty((c * kk, n, length) if channel_major else (n, c * kk, length), x.dtype)
    if out.size:
        buf, x0, xs = span(x)
        b, t = grid(out.size)
        _K_IM2COL(b, t, buf, x0, xs, n, c, h, w, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.ow, length,
                  bool(channel_major), flat(out), out.size)
    return out


@impl("col2im", "cuda")
def _col2im_cuda(cols, geom, in_hw, channel_major):
    g = geom
    kk = g.kh * g.kw
    n, c = (cols.shape[1], cols.shape[0] // kk) if channel_major else (cols.shape[0], cols.shape[1] // kk)
    h, w = in_hw
    src = contiguous(cols)
    out = empty((n, c, h, w), cols.dtype)
    if out.size:
        acc0 = 0.0 if cols.dtype == np.float64 else np.float32(0.0)  # float32 sums for half, as on the CPU
        b, t = grid(out.size)
        _K_COL2IM(b, t, flat(src), n, c, h, w, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.oh, g.ow,
                  bool(channel_major), acc0, flat(out), out.size)
    return out
