"""CUDA pooling and resampling: max/avg/adaptive pooling, the plane gather/scatter of max-pool
gradients, and the separable ``resample2d`` of ``interpolate``.

Every kernel gives one thread per output element of an ``(N*C, H, W)`` stack
of planes and follows the CPU kernels' arithmetic (window bounds, divisors,
NaN rules, accumulation in float64).  Backward passes of average pooling are
gathers (each input pixel sums the windows that contain it, found by
inverting the window formulas), so they need no atomics; the scatters whose
sources overlap arbitrarily (``plane_scatter_add``, ``resample2d_adjoint``)
use atomic adds.  float16 planes are computed in float32, as on the CPU.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda

from ...ops import pool_ops as _pool_ops  # noqa: F401 - the ops must exist before their impls
from ...ops import resample_ops as _resample_ops
from ...ops.registry import impl
from .array import CudaArray, empty
from .copy import from_host
from .typed_kernels import Kernel, contiguous, finish, flat, isnan, kernels, span, zeros

F32 = np.dtype(np.float32)


def _work(dtype) -> np.dtype:
    return F32 if dtype == np.float16 else np.dtype(dtype)


def _planes(x: CudaArray) -> CudaArray:
    """(N, C, H, W) -> contiguous (N*C, H, W) in the compute dtype (float32 for half)."""
    n, c, h, w = x.shape
    return contiguous(x, _work(x.dtype)).reshape(n * c, h, w)


def _plane_op(kernel, src: CudaArray, result_hw, args: tuple, indices: bool = False, scatter: bool = False):
    """Run a plane ``kernel`` over the (N*C, *result_hw) result of (N, C, H, W) ``src``; returned as (N, C, ...)
    in ``src``'s dtype (and the int64 in-plane ``indices`` of a max).

    Kernel arguments: the source planes, ``args``, the flat result (then the indices) and the thread count,
    one thread per result element, or with ``scatter`` one per source element adding into a zeroed result.
    An empty source gives zeros (there is nothing to read).
    """
    n, c = src.shape[:2]
    planes = _planes(src)
    shape = (n * c, *result_hw)
    alloc = zeros if scatter or not planes.size else empty
    outs = (alloc(shape, planes.dtype),) + ((alloc(shape, np.int64),) if indices else ())
    threads = planes.size if scatter else outs[0].size
    if outs[0].size and planes.size:
        kernel.over(threads, flat(planes), *args, *[flat(o) for o in outs], threads)
    val = finish(outs[0], src.dtype).reshape((n, c, *result_hw))
    return (val, outs[1].reshape((n, c, *result_hw))) if indices else val


# -- the windows ---------------------------------------------------------------------------------------------------
@cuda.jit(device=True, inline=True)
def _plane_coords(t, h, w):
    """(plane, row, column) of flat position ``t`` of a stack of ``h`` x ``w`` planes."""
    return t // (w * h), (t // w) % h, t % w


@cuda.jit(device=True, inline=True)
def _dilated_range(i, stride, pad, k, dil, n):
    """Rows [start, stop) (step ``dil``) of max-pool window ``i`` that lie inside an input of ``n`` rows."""
    start = i * stride - pad
    stop = min(start + (k - 1) * dil + 1, n)
    while start < 0:
        start += dil
    return start, stop


@cuda.jit(device=True, inline=True)
def _avg_cell(i, j, H, W, kh, kw, sh, sw, ph, pw, include_pad, divisor):
    """Average-pool window (i, j): its rows [h0, h1) and columns [w0, w1) inside the input, and its divisor."""
    hs = i * sh - ph
    he = min(hs + kh, H + ph)
    ws = j * sw - pw
    we = min(ws + kw, W + pw)
    h0, h1, w0, w1 = max(hs, 0), min(he, H), max(ws, 0), min(we, W)
    if divisor > 0:
        return h0, h1, w0, w1, divisor
    if include_pad:
        return h0, h1, w0, w1, (he - hs) * (we - ws)
    return h0, h1, w0, w1, (h1 - h0) * (w1 - w0)


@cuda.jit(device=True, inline=True)
def _adaptive_cell(i, j, H, W, oh, ow):
    """Adaptive window (i, j), rows [floor(i*H/oh), ceil((i+1)*H/oh)) and likewise columns, and its size."""
    h0 = (i * H) // oh
    h1 = ((i + 1) * H + oh - 1) // oh
    w0 = (j * W) // ow
    w1 = ((j + 1) * W + ow - 1) // ow
    return h0, h1, w0, w1, (h1 - h0) * (w1 - w0)


@cuda.jit(device=True, inline=True)
def _window_max(x, base, W, h0, h1, dh, w0, w1, dw):
    """(max, its in-plane index) over rows h0:h1:dh and columns w0:w1:dw of the plane at ``base``; NaN wins."""
    best_i = h0 * W + w0
    best = -math.inf
    for hi in range(h0, h1, dh):
        for wi in range(w0, w1, dw):
            v = x[base + hi * W + wi]
            if v > best or isnan(v):
                best = v
                best_i = hi * W + wi
    return best, best_i


@cuda.jit(device=True, inline=True)
def _window_sum(x, base, W, h0, h1, w0, w1):
    acc = 0.0
    for hi in range(h0, h1):
        for wi in range(w0, w1):
            acc += x[base + hi * W + wi]
    return acc


# -- max pooling ------------------------------------------------------------------------------------------------
def _maxpool(x, P, H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, val, idx, total):
    # P (the plane count) is unused: it stays so the kernel's signature (and its PTX check) is unchanged
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < total:
        p, i, j = _plane_coords(t, oh, ow)
        h0, h1 = _dilated_range(i, sh, ph, kh, dh, H)
        w0, w1 = _dilated_range(j, sw, pw, kw, dw, W)
        val[t], idx[t] = _window_max(x, p * H * W, W, h0, h1, dh, w0, w1, dw)
        t += step


_K_MAXPOOL = Kernel(_maxpool)


@impl("max_pool2d_with_indices", "cuda")
def _maxpool_cuda(x, k, s, p, d, out_hw):
    n, c, h, w = x.shape
    return _plane_op(_K_MAXPOOL, x, out_hw, (n * c, h, w, *k, *s, *p, *d, *out_hw), indices=True)


# -- average pooling: the backward is a gather (each input pixel sums the windows that hold it) -------------------
def _avgpool(x, H, W, kh, kw, sh, sw, ph, pw, include_pad, divisor, oh, ow, out, total):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < total:
        p, i, j = _plane_coords(t, oh, ow)
        h0, h1, w0, w1, d = _avg_cell(i, j, H, W, kh, kw, sh, sw, ph, pw, include_pad, divisor)
        acc = _window_sum(x, p * H * W, W, h0, h1, w0, w1)
        out[t] = acc / d if d > 0 else math.nan
        t += step


def _avgpool_backward(g, H, W, kh, kw, sh, sw, ph, pw, include_pad, divisor, oh, ow, out, total):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < total:
        p, h, w = _plane_coords(t, H, W)
        # windows i with i*sh - ph <= h < i*sh - ph + kh
        i0 = max((h + ph - kh) // sh + 1, 0)
        i1 = min((h + ph) // sh, oh - 1)
        j0 = max((w + pw - kw) // sw + 1, 0)
        j1 = min((w + pw) // sw, ow - 1)
        acc = 0.0
        for i in range(i0, i1 + 1):
            for j in range(j0, j1 + 1):
                d = _avg_cell(i, j, H, W, kh, kw, sh, sw, ph, pw, include_pad, divisor)[4]
                if d > 0:
                    acc += g[(p * oh + i) * ow + j] / d
        out[t] = acc
        t += step


_K_AVGPOOL, _K_AVGPOOL_BWD = kernels(_avgpool, _avgpool_backward)


def _avg_args(k, s, p, include_pad, divisor, in_hw, out_hw) -> tuple:
    return (*in_hw, *k, *s, *p, bool(include_pad), int(divisor), *out_hw)


@impl("avg_pool2d", "cuda")
def _avgpool_cuda(x, k, s, p, include_pad, divisor, in_hw, out_hw):
    return _plane_op(_K_AVGPOOL, x, out_hw, _avg_args(k, s, p, include_pad, divisor, x.shape[2:], out_hw))


@impl("avg_pool2d_backward", "cuda")
def _avgpool_bwd_cuda(g, k, s, p, include_pad, divisor, in_hw, out_hw):
    return _plane_op(_K_AVGPOOL_BWD, g, in_hw, _avg_args(k, s, p, include_pad, divisor, in_hw, out_hw))


# -- adaptive pooling: window i covers [floor(i*n/o), ceil((i+1)*n/o)) -------------------------------------------
def _adaptive_avg(x, H, W, oh, ow, out, total):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < total:
        p, i, j = _plane_coords(t, oh, ow)
        h0, h1, w0, w1, size = _adaptive_cell(i, j, H, W, oh, ow)
        out[t] = _window_sum(x, p * H * W, W, h0, h1, w0, w1) / size
        t += step


def _adaptive_avg_backward(g, H, W, oh, ow, out, total):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < total:
        p, h, w = _plane_coords(t, H, W)
        acc = 0.0
        # a superset of the windows holding (h, w); the exact test is inside
        for i in range(max((h * oh) // H - 1, 0), min(((h + 1) * oh) // H, oh - 1) + 1):
            for j in range(max((w * ow) // W - 1, 0), min(((w + 1) * ow) // W, ow - 1) + 1):
                h0, h1, w0, w1, size = _adaptive_cell(i, j, H, W, oh, ow)
                if h0 <= h < h1 and w0 <= w < w1:
                    acc += g[(p * oh + i) * ow + j] / size
        out[t] = acc
        t += step


def _adaptive_max(x, H, W, oh, ow, val, idx, total):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < total:
        p, i, j = _plane_coords(t, oh, ow)
        h0, h1, w0, w1, _size = _adaptive_cell(i, j, H, W, oh, ow)
        val[t], idx[t] = _window_max(x, p * H * W, W, h0, h1, 1, w0, w1, 1)
        t += step


_K_ADAPTIVE_AVG, _K_ADAPTIVE_AVG_BWD, _K_ADAPTIVE_MAX = kernels(_adaptive_avg, _adaptive_avg_backward, _adaptive_max)


@impl("adaptive_avg_pool2d", "cuda")
def _adaptive_avg_cuda(x, in_hw, out_hw):
    return _plane_op(_K_ADAPTIVE_AVG, x, out_hw, (*x.shape[2:], *out_hw))


@impl("adaptive_avg_pool2d_backward", "cuda")
def _adaptive_avg_bwd_cuda(g, in_hw, out_hw):
    return _plane_op(_K_ADAPTIVE_AVG_BWD, g, in_hw, (*in_hw, *out_hw))


@impl("adaptive_max_pool2d", "cuda")
def _adaptive_max_cuda(x, out_hw):
    return _plane_op(_K_ADAPTIVE_MAX, x, out_hw, (*x.shape[2:], *out_hw), indices=True)


# -- gather / scatter-add within planes (max-pool backward and its adjoint) --------------------------------------
def _plane_gather(src, s0, ss, idx, L, out, total):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < total:
        out[t] = src[s0 + (t // L) * ss[0] + idx[t] * ss[1]]
        t += step


def _plane_scatter_add(g, idx, L, size, out, total):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < total:
        cuda.atomic.add(out, (t // L) * size + idx[t], g[t])
        t += step


_K_PLANE_GATHER, _K_PLANE_SCATTER = kernels(_plane_gather, _plane_scatter_add)


@impl("plane_gather", "cuda")
def _plane_gather_cuda(src, idx):
    out = empty(idx.shape, src.dtype)
    buf, s0, ss = span(src)
    _K_PLANE_GATHER.over(out.size, buf, s0, ss, flat(contiguous(idx, np.int64)), idx.shape[1], flat(out), out.size)
    return out


@impl("plane_scatter_add", "cuda")
def _plane_scatter_cuda(g, idx, size):
    work = _work(g.dtype)
    out = zeros((idx.shape[0], size), work)
    if g.size:
        _K_PLANE_SCATTER.over(g.size, flat(contiguous(g, work)), flat(contiguous(idx, np.int64)), idx.shape[1], size,
                              flat(out), g.size)
    return finish(out, g.dtype)


# -- separable resampling: out[p,i,j] = sum_a hw[i,a] sum_b ww[j,b] x[p, hidx[i,a], widx[j,b]] -------------------
def _resample(x, H, W, hidx, hw, th, widx, ww, tw, oh, ow, out, total):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < total:
        p, i, j = _plane_coords(t, oh, ow)
        base = p * H * W
        acc = 0.0
        for a in range(th):
            hi = hidx[i * th + a]
            row = 0.0
            for b in range(tw):
                row += ww[j * tw + b] * x[base + hi * W + widx[j * tw + b]]
            acc += hw[i * th + a] * row
        out[t] = acc
        t += step


def _resample_adjoint(g, H, W, hidx, hw, th, widx, ww, tw, oh, ow, out, total):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < total:
        p, i, j = _plane_coords(t, oh, ow)
        v = g[t]
        for a in range(th):
            hi = hidx[i * th + a]
            va = v * hw[i * th + a]
            for b in range(tw):
                cuda.atomic.add(out, (p * H + hi) * W + widx[j * tw + b], va * ww[j * tw + b])
        t += step


_K_RESAMPLE, _K_RESAMPLE_ADJ = kernels(_resample, _resample_adjoint)
_TAPS: dict = {}


def _device_taps(modes, in_hw, out_hw, align_corners, scales, dtype) -> tuple:
    """The tap tables (torch's index formulas, computed on the host once) as cached device arrays."""
    key = (tuple(modes), tuple(in_hw), tuple(out_hw), align_corners, tuple(scales), np.dtype(dtype).name)
    taps = _TAPS.get(key)
    if taps is None:
        hidx, hw, widx, ww = _resample_ops._taps(modes, in_hw, out_hw, align_corners, scales, dtype)
        if len(_TAPS) > 256:
            _TAPS.clear()
        taps = _TAPS[key] = (from_host(hidx.reshape(-1)), from_host(hw.reshape(-1)), hidx.shape[1],
                             from_host(widx.reshape(-1)), from_host(ww.reshape(-1)), widx.shape[1])
    return taps


def _resample_args(src, modes, in_hw, out_hw, align_corners, scales) -> tuple:
    taps = _device_taps(modes, in_hw, out_hw, align_corners, scales, _work(src.dtype))
    return (*in_hw, *taps, *out_hw)


@impl("resample2d", "cuda")
def _resample_cuda(x, modes, in_hw, out_hw, align_corners, scales):
    return _plane_op(_K_RESAMPLE, x, out_hw, _resample_args(x, modes, in_hw, out_hw, align_corners, scales))


@impl("resample2d_adjoint", "cuda")
def _resample_adj_cuda(g, modes, in_hw, out_hw, align_corners, scales):
    return _plane_op(_K_RESAMPLE_ADJ, g, in_hw, _resample_args(g, modes, in_hw, out_hw, align_corners, scales),
                     scatter=True)
