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
from .typed_kernels import Kernel, contiguous, finish, flat, grid, isnan, span, zeros

F32 = np.dtype(np.float32)


def _planes(x: CudaArray) -> CudaArray:
    """(N, C, H, W) -> contiguous (N*C, H, W) in the compute dtype (float32 for half)."""
    n, c, h, w = x.shape
    return contiguous(x, F32 if x.dtype == np.float16 else x.dtype).reshape(n * c, h, w)


def _back(out: CudaArray, shape: tuple, dtype) -> CudaArray:
    return finish(out, dtype).reshape(shape)


# -- max pooling ------------------------------------------------------------------------------------------------
def _maxpool(x, P, H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, val, idx, total):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < total:
        j = t % ow
        i = (t // ow) % oh
        p = t // (ow * oh)
        h0 = i * sh - ph
        h1 = min(h0 + (kh - 1) * dh + 1, H)
        while h0 < 0:
            h0 += dh
        w0 = j * sw - pw
        w1 = min(w0 + (kw - 1) * dw + 1, W)
        while w0 < 0:
            w0 += dw
        best_i = h0 * W + w0
        best = -math.inf
        base = p * H * W
        for hi in range(h0, h1, dh):
            for wi in range(w0, w1, dw):
                v = x[base + hi * W + wi]
                if v > best or isnan(v):
                    best = v
                    best_i = hi * W + wi
        val[t] = best
        idx[t] = best_i
        t += step


_K_MAXPOOL = Kernel(_maxpool)


@impl("max_pool2d_with_indices", "cuda")
def _maxpool_cuda(x, k, s, p, d, out_hw):
    n, c, h, w = x.shape
    oh, ow = out_hw
    planes = _planes(x)
    val = empty((n * c, oh, ow), planes.dtype)
    idx = empty((n * c, oh, ow), np.int64)
    if val.size:
        b, t = grid(val.size)
        _K_MAXPOOL(b, t, flat(planes), n * c, h, w, k[0], k[1], s[0], s[1], p[0], p[1], d[0], d[1], oh, ow,
                   flat(val), flat(idx), val.size)
    return _back(val, (n, c, oh, ow), x.dtype), idx.reshape(n, c, oh, ow)


# -- average pooling --------------------------------------------------------------------------------------------
@cuda.jit(device=True, inline=True)
def _divisor(i, j, H, W, kh, kw, sh, sw, ph, pw, include_pad, divisor):
    hs = i * sh - ph
    he = min(hs + kh, H + ph)
    ws = j * sw - pw
    we = min(ws + kw, W + pw)
    if divisor > 0:
        return divisor
    if include_pad:
        return (he - hs) * (we - ws)
    return (min(he, H) - max(hs, 0)) * (min(we, W) - max(ws, 0))


def _avgpool(x, H, W, kh, kw, sh, sw, ph, pw, include_pad, divisor, oh, ow, out, total):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < total:
        j = t % ow
        i = (t // ow) % oh
        p = t // (ow * oh)
        hs = i * sh - ph
        ws = j * sw - pw
        h0 = max(hs, 0)
        h1 = min(min(hs + kh, H + ph), H)
        w0 = max(ws, 0)
        w1 = min(min(ws + kw, W + pw), W)
        d = _divisor(i, j, H, W, kh, kw, sh, sw, ph, pw, include_pad, divisor)
        acc = 0.0
        base = p * H * W
        for hi in range(h0, h1):
            for wi in range(w0, w1):
                acc += x[base + hi * W + wi]
        out[t] = acc / d if d > 0 else math.nan
        t += step


def _avgpool_backward(g, H, W, kh, kw, sh, sw, ph, pw, include_pad, divisor, oh, ow, out, total):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < total:
        w = t % W
        h = (t // W) % H
        p = t // (W * H)
        # windows i with i*sh - ph <= h < i*sh - ph + kh
        i0 = max((h + ph - kh) // sh + 1, 0)
        i1 = min((h + ph) // sh, oh - 1)
        j0 = max((w + pw - kw) // sw + 1, 0)
        j1 = min((w + pw) // sw, ow - 1)
        acc = 0.0
        for i in range(i0, i1 + 1):
            for j in range(j0, j1 + 1):
                d = _divisor(i, j, H, W, kh, kw, sh, sw, ph, pw, include_pad, divisor)
                if d > 0:
                    acc += g[(p * oh + i) * ow + j] / d
        out[t] = acc
        t += step


_K_AVGPOOL = Kernel(_avgpool)
_K_AVGPOOL_BWD = Kernel(_avgpool_backward)


@impl("avg_pool2d", "cuda")
def _avgpool_cuda(x, k, s, p, include_pad, divisor, in_hw, out_hw):
    n, c, h, w = x.shape
    oh, ow = out_hw
    planes = _planes(x)
    out = empty((n * c, oh, ow), planes.dtype)
    if out.size and planes.size:
        b, t = grid(out.size)
        _K_AVGPOOL(b, t, flat(planes), h, w, k[0], k[1], s[0], s[1], p[0], p[1], bool(include_pad), int(divisor),
                   oh, ow, flat(out), out.size)
    return _back(out, (n, c, oh, ow), x.dtype)


@impl("avg_pool2d_backward", "cuda")
def _avgpool_bwd_cuda(g, k, s, p, include_pad, divisor, in_hw, out_hw):
    n, c = g.shape[:2]
    h, w = in_hw
    oh, ow = out_hw
    planes = _planes(g)
    out = empty((n * c, h, w), planes.dtype)
    if out.size:
        b, t = grid(out.size)
        _K_AVGPOOL_BWD(b, t, flat(planes), h, w, k[0], k[1], s[0], s[1], p[0], p[1], bool(include_pad),
                       int(divisor), oh, ow, flat(out), out.size)
    return _back(out, (n, c, h, w), g.dtype)


# -- adaptive pooling: window i covers [floor(i*n/o), ceil((i+1)*n/o)) -------------------------------------------
def _adaptive_avg(x, H, W, oh, ow, out, total):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < total:
        j = t % ow
        i = (t // ow) % oh
        p = t // (ow * oh)
        h0 = (i * H) // oh
        h1 = ((i + 1) * H + oh - 1) // oh
        w0 = (j * W) // ow
        w1 = ((j + 1) * W + ow - 1) // ow
        acc = 0.0
        base = p * H * W
        for hi in range(h0, h1):
            for wi in range(w0, w1):
                acc += x[base + hi * W + wi]
        out[t] = acc / ((h1 - h0) * (w1 - w0))
        t += step


def _adaptive_avg_backward(g, H, W, oh, ow, out, total):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < total:
        w = t % W
        h = (t // W) % H
        p = t // (W * H)
        acc = 0.0
        # a superset of the windows holding (h, w); the exact test is inside
        for i in range(max((h * oh) // H - 1, 0), min(((h + 1) * oh) // H, oh - 1) + 1):
            h0 = (i * H) // oh
            h1 = ((i + 1) * H + oh - 1) // oh
            if h0 <= h < h1:
                for j in range(max((w * ow) // W - 1, 0), min(((w + 1) * ow) // W, ow - 1) + 1):
                    w0 = (j * W) // ow
                    w1 = ((j + 1) * W + ow - 1) // ow
                    if w0 <= w < w1:
                        acc += g[(p * oh + i) * ow + j] / ((h1 - h0) * (w1 - w0))
        out[t] = acc
        t += step


def _adaptive_max(x, H, W, oh, ow, val, idx, total):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < total:
        j = t % ow
        i = (t // ow) % oh
        p = t // (ow * oh)
        h0 = (i * H) // oh
        h1 = ((i + 1) * H + oh - 1) // oh
        w0 = (j * W) // ow
        w1 = ((j + 1) * W + ow - 1) // ow
        best_i = h0 * W + w0
        best = -math.inf
        base = p * H * W
        for hi in range(h0, h1):
            for wi in range(w0, w1):
                v = x[base + hi * W + wi]
                if v > best or isnan(v):
                    best = v
                    best_i = hi * W + wi
        val[t] = best
        idx[t] = best_i
        t += step


_K_ADAPTIVE_AVG = Kernel(_adaptive_avg)
_K_ADAPTIVE_AVG_BWD = Kernel(_adaptive_avg_backward)
_K_ADAPTIVE_MAX = Kernel(_adaptive_max)


@impl("adaptive_avg_pool2d", "cuda")
def _adaptive_avg_cuda(x, in_hw, out_hw):
    n, c, h, w = x.shape
    oh, ow = out_hw
    planes = _planes(x)
    out = empty((n * c, oh, ow), planes.dtype)
    if out.size and planes.size:
        b, t = grid(out.size)
        _K_ADAPTIVE_AVG(b, t, flat(planes), h, w, oh, ow, flat(out), out.size)
    return _back(out, (n, c, oh, ow), x.dtype)


@impl("adaptive_avg_pool2d_backward", "cuda")
def _adaptive_avg_bwd_cuda(g, in_hw, out_hw):
    n, c = g.shape[:2]
    h, w = in_hw
    oh, ow = out_hw
    planes = _planes(g)
    out = empty((n * c, h, w), planes.dtype)
    if out.size:
        b, t = grid(out.size)
        _K_ADAPTIVE_AVG_BWD(b, t, flat(planes), h, w, oh, ow, flat(out), out.size)
    return _back(out, (n, c, h, w), g.dtype)


@impl("adaptive_max_pool2d", "cuda")
def _adaptive_max_cuda(x, out_hw):
    n, c, h, w = x.shape
    oh, ow = out_hw
    planes = _planes(x)
    val = empty((n * c, oh, ow), planes.dtype)
    idx = empty((n * c, oh, ow), np.int64)
    if val.size:
        b, t = grid(val.size)
        _K_ADAPTIVE_MAX(b, t, flat(planes), h, w, oh, ow, flat(val), flat(idx), val.size)
    return _back(val, (n, c, oh, ow), x.dtype), idx.reshape(n, c, oh, ow)


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


_K_PLANE_GATHER = Kernel(_plane_gather)
_K_PLANE_SCATTER = Kernel(_plane_scatter_add)


@impl("plane_gather", "cuda")
def _plane_gather_cuda(src, idx):
    out = empty(idx.shape, src.dtype)
    if out.size:
        buf, s0, ss = span(src)
        b, t = grid(out.size)
        _K_PLANE_GATHER(b, t, buf, s0, ss, flat(contiguous(idx, np.int64)), idx.shape[1], flat(out), out.size)
    return out


@impl("plane_scatter_add", "cuda")
def _plane_scatter_cuda(g, idx, size):
    work = F32 if g.dtype == np.float16 else g.dtype
    out = zeros((idx.shape[0], size), work)
    if g.size:
        b, t = grid(g.size)
        _K_PLANE_SCATTER(b, t, flat(contiguous(g, work)), flat(contiguous(idx, np.int64)), idx.shape[1], size,
                         flat(out), g.size)
    return finish(out, g.dtype)


# -- separable resampling: out[p,i,j] = sum_a hw[i,a] sum_b ww[j,b] x[p, hidx[i,a], widx[j,b]] -------------------
def _resample(x, H, W, hidx, hw, th, widx, ww, tw, oh, ow, out, total):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < total:
        j = t % ow
        i = (t // ow) % oh
        p = t // (ow * oh)
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
        j = t % ow
        i = (t // ow) % oh
        p = t // (ow * oh)
        v = g[t]
        for a in range(th):
            hi = hidx[i * th + a]
            va = v * hw[i * th + a]
            for b in range(tw):
                cuda.atomic.add(out, (p * H + hi) * W + widx[j * tw + b], va * ww[j * tw + b])
        t += step


_K_RESAMPLE = Kernel(_resample)
_K_RESAMPLE_ADJ = Kernel(_resample_adjoint)
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


def _resample_run(src, modes, in_hw, out_hw, align_corners, scales, forward):
    n, c = src.shape[:2]
    planes = _planes(src)
    hidx, hw, th, widx, ww, tw = _device_taps(modes, in_hw, out_hw, align_corners, scales, planes.dtype)
    (H, W), (oh, ow) = in_hw, out_hw
    shape = (oh, ow) if forward else (H, W)
    out = (empty if forward else zeros)((n * c,) + shape, planes.dtype)
    if out.size and planes.size:
        if forward:
            b, t = grid(out.size)
            _K_RESAMPLE(b, t, flat(planes), H, W, hidx, hw, th, widx, ww, tw, oh, ow, flat(out), out.size)
        else:
            b, t = grid(planes.size)
            _K_RESAMPLE_ADJ(b, t, flat(planes), H, W, hidx, hw, th, widx, ww, tw, oh, ow, flat(out), planes.size)
    return _back(out, (n, c) + shape, src.dtype)


@impl("resample2d", "cuda")
def _resample_cuda(x, modes, in_hw, out_hw, align_corners, scales):
    return _resample_run(x, modes, in_hw, out_hw, align_corners, scales, True)


@impl("resample2d_adjoint", "cuda")
def _resample_adj_cuda(g, modes, in_hw, out_hw, align_corners, scales):
    return _resample_run(g, modes, in_hw, out_hw, align_corners, scales, False)
