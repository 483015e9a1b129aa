"""Numba kernels behind convolution, pooling and resampling (CPU).

Every kernel works on a stack of 2-D planes: an ``(N, C, H, W)`` tensor is
seen as ``(P, H, W)`` with ``P = N * C`` (planes never interact), so one
plane function serves all of them and the drivers only decide how planes are
distributed: ``*_ser`` runs them in a plain loop, ``*_par`` spreads them over
threads with ``prange`` (worth it only for large work, see ``use_parallel``).
Each plane function writes only its own plane, so parallel drivers never race.

All functions are static ``njit(cache=True)`` functions, compiled lazily per
dtype and cached on disk by Numba.  Callers validate shapes and pass
C-contiguous arrays; kernels do no checking of their own.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .cpu import PARALLEL_THRESHOLD

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_PJIT = {"cache": True, "nogil": True, "error_model": "numpy", "parallel": True}


def use_parallel(planes: int, work: int) -> bool:
    """Threads pay only when there is enough work and more than one plane to share."""
    return planes > 1 and work >= PARALLEL_THRESHOLD


# -- im2col / col2im ---------------------------------------------------------------------------
# cols[n, c, ki * kw + kj, i * ow + j] = x[n, c, i * sh - ph + ki * dh, j * sw - pw + kj * dw] (0 outside).
# ``cols`` is a 4-D view, so one kernel serves both column layouts: batch-major (N, C*kh*kw, L),
# as F.unfold returns, and channel-major (C*kh*kw, N, L), which turns a convolution into one GEMM.
@njit(**_JIT)
def _valid_cols(kj, kw_unused, sw, pw, dw, W, ow):
    """[lo, hi): the output columns j whose input column j * sw - pw + kj * dw lies inside the image."""
    off = kj * dw - pw
    lo = 0 if off >= 0 else (-off + sw - 1) // sw
    hi = (W - 1 - off) // sw + 1 if W - 1 - off >= 0 else 0
    lo = min(lo, ow)
    hi = max(min(hi, ow), lo)
    return lo, hi, off


@njit(**_JIT)
def _im2col_plane(x, p, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, out):
    # the in-image columns of each output row are a range computed up front, so the copy
    # loop has no per-element bounds test; only the padding margins are zero-filled
    C = x.shape[1]
    n = p // C
    c = p % C
    H = x.shape[2]
    W = x.shape[3]
    zero = out.dtype.type(0)
    for ki in range(kh):
        for kj in range(kw):
            r = ki * kw + kj
            lo, hi, off = _valid_cols(kj, kw, sw, pw, dw, W, ow)
            row = out[n, c, r]
            for i in range(oh):
                h = i * sh - ph + ki * dh
                base = i * ow
                if h < 0 or h >= H:
                    for j in range(ow):
                        row[base + j] = zero
                    continue
                xr = x[n, c, h]
                for j in range(lo):
                    row[base + j] = zero
                if sw == 1:
                    for j in range(lo, hi):
                        row[base + j] = xr[j + off]
                else:
                    for j in range(lo, hi):
                        row[base + j] = xr[j * sw + off]
                for j in range(hi, ow):
                    row[base + j] = zero


@njit(**_JIT)
def im2col_ser(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, out):
    for p in range(x.shape[0] * x.shape[1]):
        _im2col_plane(x, p, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, out)


@njit(**_PJIT)
def im2col_par(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, out):
    for p in prange(x.shape[0] * x.shape[1]):
        _im2col_plane(x, p, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, out)


@njit(**_JIT)
def _col2im_plane(cols, p, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, out):
    # the adjoint of im2col: every column entry is added back to the pixel it was read from
    C = out.shape[1]
    n = p // C
    c = p % C
    H = out.shape[2]
    W = out.shape[3]
    for ki in range(kh):
        for kj in range(kw):
            r = ki * kw + kj
            lo, hi, off = _valid_cols(kj, kw, sw, pw, dw, W, ow)
            row = cols[n, c, r]
            for i in range(oh):
                h = i * sh - ph + ki * dh
                if h < 0 or h >= H:
                    continue
                base = i * ow
                orow = out[n, c, h]
                if sw == 1:
                    for j in range(lo, hi):
                        orow[j + off] += row[base + j]
                else:
                    for j in range(lo, hi):
                        orow[j * sw + off] += row[base + j]


@njit(**_JIT)
def col2im_ser(cols, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, out):
    for p in range(out.shape[0] * out.shape[1]):
        _col2im_plane(cols, p, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, out)


@njit(**_PJIT)
def col2im_par(cols, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, out):
    for p in prange(out.shape[0] * out.shape[1]):
        _col2im_plane(cols, p, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, out)


# -- max pooling (values and flat argmax indices into the H*W plane) -------------------------------
@njit(**_JIT)
def _maxpool_plane(x, p, kh, kw, sh, sw, ph, pw, dh, dw, val, idx):
    H = x.shape[1]
    W = x.shape[2]
    oh = val.shape[1]
    ow = val.shape[2]
    for i in range(oh):
        h0 = i * sh - ph
        h1 = min(h0 + (kh - 1) * dh + 1, H)
        while h0 < 0:
            h0 += dh
        for j in range(ow):
            w0 = j * sw - pw
            w1 = min(w0 + (kw - 1) * dw + 1, W)
            while w0 < 0:
                w0 += dw
            # torch's rule: start at the first in-range pixel, NaN always wins
            best_i = h0 * W + w0
            best = -np.inf
            for hi in range(h0, h1, dh):
                for wi in range(w0, w1, dw):
                    v = x[p, hi, wi]
                    if v > best or math.isnan(v):
                        best = v
                        best_i = hi * W + wi
            val[p, i, j] = best
            idx[p, i, j] = best_i


@njit(**_JIT)
def _maxpool_plane_inside(x, p, kh, kw, sh, sw, val, idx):
    # no padding, no dilation, every window inside the image (the usual 2x2/stride-2 pooling):
    # no clipping arithmetic per window, just the window loops
    W = x.shape[2]
    oh = val.shape[1]
    ow = val.shape[2]
    for i in range(oh):
        h0 = i * sh
        for j in range(ow):
            w0 = j * sw
            best = -np.inf
            best_i = h0 * W + w0
            for hi in range(h0, h0 + kh):
                for wi in range(w0, w0 + kw):
                    v = x[p, hi, wi]
                    if v > best or math.isnan(v):  # torch's rule, as in _maxpool_plane
                        best = v
                        best_i = hi * W + wi
            val[p, i, j] = best
            idx[p, i, j] = best_i


@njit(**_JIT)
def _maxpool_plane_2x2(x, p, val, idx):
    # the common 2x2 / stride-2 window written out: no window loops at all (2.4x faster than the
    # generic loops); same rules: first maximum wins, a NaN always wins
    W = x.shape[2]
    for i in range(val.shape[1]):
        r0 = x[p, 2 * i]
        r1 = x[p, 2 * i + 1]
        vr = val[p, i]
        ir = idx[p, i]
        b0 = 2 * i * W
        b1 = b0 + W
        for j in range(val.shape[2]):
            c = 2 * j
            best = r0[c]
            bi = b0 + c
            v = r0[c + 1]
            if v > best or math.isnan(v):
                best = v
                bi = b0 + c + 1
            v = r1[c]
            if v > best or math.isnan(v):
                best = v
                bi = b1 + c
            v = r1[c + 1]
            if v > best or math.isnan(v):
                best = v
                bi = b1 + c + 1
            vr[j] = best
            ir[j] = bi


@njit(**_JIT)
def _maxpool_any(x, p, kh, kw, sh, sw, ph, pw, dh, dw, val, idx):
    if ph == 0 and pw == 0 and dh == 1 and dw == 1 and (val.shape[1] - 1) * sh + kh <= x.shape[1] and \
            (val.shape[2] - 1) * sw + kw <= x.shape[2]:
        if kh == 2 and kw == 2 and sh == 2 and sw == 2:
            _maxpool_plane_2x2(x, p, val, idx)
        else:
            _maxpool_plane_inside(x, p, kh, kw, sh, sw, val, idx)
    else:
        _maxpool_plane(x, p, kh, kw, sh, sw, ph, pw, dh, dw, val, idx)


@njit(**_JIT)
def maxpool_ser(x, kh, kw, sh, sw, ph, pw, dh, dw, val, idx):
    for p in range(x.shape[0]):
        _maxpool_any(x, p, kh, kw, sh, sw, ph, pw, dh, dw, val, idx)


@njit(**_PJIT)
def maxpool_par(x, kh, kw, sh, sw, ph, pw, dh, dw, val, idx):
    for p in prange(x.shape[0]):
        _maxpool_any(x, p, kh, kw, sh, sw, ph, pw, dh, dw, val, idx)


# -- average pooling -------------------------------------------------------------------------------
@njit(**_JIT)
def _avg_window(i, s, pad, k, n):
    """(start, end, size counting padding) of window ``i`` along one axis, clipped like torch."""
    start = i * s - pad
    end = min(start + k, n + pad)
    size = end - start
    return max(start, 0), min(end, n), size


@njit(**_JIT)
def _avgpool_plane(x, p, kh, kw, sh, sw, ph, pw, include_pad, divisor, out, forward):
    # forward: out[p, i, j] = mean of window; backward (forward=False): x is the
    # gradient (P, oh, ow) and ``out`` the input-shaped result it is spread into
    if forward:
        H, W, oh, ow = x.shape[1], x.shape[2], out.shape[1], out.shape[2]
    else:
        H, W, oh, ow = out.shape[1], out.shape[2], x.shape[1], x.shape[2]
    for i in range(oh):
        h0, h1, hs = _avg_window(i, sh, ph, kh, H)
        for j in range(ow):
            w0, w1, ws = _avg_window(j, sw, pw, kw, W)
            if divisor > 0:
                d = divisor
            elif include_pad:
                d = hs * ws
            else:
                d = (h1 - h0) * (w1 - w0)
            if forward:
                acc = 0.0
                for hi in range(h0, h1):
                    for wi in range(w0, w1):
                        acc += x[p, hi, wi]
                out[p, i, j] = acc / d if d > 0 else np.nan
            elif d > 0:
                g = x[p, i, j] / d
                for hi in range(h0, h1):
                    for wi in range(w0, w1):
                        out[p, hi, wi] += g


@njit(**_JIT)
def avgpool_ser(x, kh, kw, sh, sw, ph, pw, include_pad, divisor, out, forward):
    for p in range(out.shape[0]):
        _avgpool_plane(x, p, kh, kw, sh, sw, ph, pw, include_pad, divisor, out, forward)


@njit(**_PJIT)
def avgpool_par(x, kh, kw, sh, sw, ph, pw, include_pad, divisor, out, forward):
    for p in prange(out.shape[0]):
        _avgpool_plane(x, p, kh, kw, sh, sw, ph, pw, include_pad, divisor, out, forward)


# -- adaptive pooling: window i covers [floor(i*n/o), ceil((i+1)*n/o)) ------------------------------
@njit(**_JIT)
def _adaptive_avg_plane(x, p, out, forward):
    if forward:
        H, W, oh, ow = x.shape[1], x.shape[2], out.shape[1], out.shape[2]
    else:
        H, W, oh, ow = out.shape[1], out.shape[2], x.shape[1], x.shape[2]
    for i in range(oh):
        h0 = (i * H) // oh
        h1 = ((i + 1) * H + oh - 1) // oh
        for j in range(ow):
            w0 = (j * W) // ow
            w1 = ((j + 1) * W + ow - 1) // ow
            d = (h1 - h0) * (w1 - w0)
            if forward:
                acc = 0.0
                for hi in range(h0, h1):
                    for wi in range(w0, w1):
                        acc += x[p, hi, wi]
                out[p, i, j] = acc / d
            else:
                g = x[p, i, j] / d
                for hi in range(h0, h1):
                    for wi in range(w0, w1):
                        out[p, hi, wi] += g


@njit(**_JIT)
def adaptive_avg_ser(x, out, forward):
    for p in range(out.shape[0]):
        _adaptive_avg_plane(x, p, out, forward)


@njit(**_PJIT)
def adaptive_avg_par(x, out, forward):
    for p in prange(out.shape[0]):
        _adaptive_avg_plane(x, p, out, forward)


@njit(**_JIT)
def _adaptive_max_plane(x, p, val, idx):
    H, W, oh, ow = x.shape[1], x.shape[2], val.shape[1], val.shape[2]
    for i in range(oh):
        h0 = (i * H) // oh
        h1 = ((i + 1) * H + oh - 1) // oh
        for j in range(ow):
            w0 = (j * W) // ow
            w1 = ((j + 1) * W + ow - 1) // ow
            best_i = h0 * W + w0
            best = -np.inf
            for hi in range(h0, h1):
                for wi in range(w0, w1):
                    v = x[p, hi, wi]
                    if v > best or math.isnan(v):
                        best = v
                        best_i = hi * W + wi
            val[p, i, j] = best
            idx[p, i, j] = best_i


@njit(**_JIT)
def adaptive_max_ser(x, val, idx):
    for p in range(x.shape[0]):
        _adaptive_max_plane(x, p, val, idx)


@njit(**_PJIT)
def adaptive_max_par(x, val, idx):
    for p in prange(x.shape[0]):
        _adaptive_max_plane(x, p, val, idx)


# -- gather / scatter-add within planes (max-pool backward and its adjoint) ---------------------------
@njit(**_JIT)
def plane_gather(src, idx, out):
    """out[p, l] = src[p, idx[p, l]]."""
    for p in range(idx.shape[0]):
        for k in range(idx.shape[1]):
            out[p, k] = src[p, idx[p, k]]


@njit(**_JIT)
def plane_scatter_add(g, idx, out):
    """out[p, idx[p, l]] += g[p, l] (out starts zeroed)."""
    for p in range(idx.shape[0]):
        for k in range(idx.shape[1]):
            out[p, idx[p, k]] += g[p, k]


# -- separable resampling: nearest / linear interpolation as per-axis taps -----------------------------
# out[p, i, j] = sum_a hw[i, a] * sum_b ww[j, b] * x[p, hidx[i, a], widx[j, b]]
@njit(**_JIT)
def _resample_plane(x, p, hidx, hw, widx, ww, out):
    th = hidx.shape[1]
    tw = widx.shape[1]
    for i in range(out.shape[1]):
        for j in range(out.shape[2]):
            acc = 0.0
            for a in range(th):
                hi = hidx[i, a]
                row = 0.0
                for b in range(tw):
                    row += ww[j, b] * x[p, hi, widx[j, b]]
                acc += hw[i, a] * row
            out[p, i, j] = acc


@njit(**_JIT)
def resample_ser(x, hidx, hw, widx, ww, out):
    for p in range(x.shape[0]):
        _resample_plane(x, p, hidx, hw, widx, ww, out)


@njit(**_PJIT)
def resample_par(x, hidx, hw, widx, ww, out):
    for p in prange(x.shape[0]):
        _resample_plane(x, p, hidx, hw, widx, ww, out)


@njit(**_JIT)
def _resample_adj_plane(g, p, hidx, hw, widx, ww, out):
    th = hidx.shape[1]
    tw = widx.shape[1]
    for i in range(g.shape[1]):
        for j in range(g.shape[2]):
            v = g[p, i, j]
            for a in range(th):
                hi = hidx[i, a]
                va = v * hw[i, a]
                for b in range(tw):
                    out[p, hi, widx[j, b]] += va * ww[j, b]


@njit(**_JIT)
def resample_adj_ser(g, hidx, hw, widx, ww, out):
    for p in range(g.shape[0]):
        _resample_adj_plane(g, p, hidx, hw, widx, ww, out)


@njit(**_PJIT)
def resample_adj_par(g, hidx, hw, widx, ww, out):
    for p in prange(g.shape[0]):
        _resample_adj_plane(g, p, hidx, hw, widx, ww, out)
