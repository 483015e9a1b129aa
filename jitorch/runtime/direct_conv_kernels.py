"""Stride-1 2-D convolution kernels (CPU, Numba) on the padded input's row pitch.

The trick that keeps every inner loop unit-stride: an output plane is computed
on the padded input's row pitch ``Wp``.  Output pixel ``(i, j)`` sits at flat
position ``p = i * Wp + j``, and filter tap ``(ki, kj)`` reads input position
``p + ki * dh * Wp + kj * dw``, so one tap is ``acc[p] += w * x[p + off]`` over a
contiguous run of ``L = (oh - 1) * Wp + ow`` positions.  The ``Wp - ow``
positions at the end of each row are scratch (their reads stay inside the
padded plane) and are dropped when the plane is written out.  Gradients use
the same layout for the output gradient with the scratch positions zeroed, so
the same runs are exact there too.

Two ways to use it (``ops.nn_ops`` picks per layer):
* direct loops, for filters with few taps per output (a network's first
  convolution): each pass over a run applies up to five taps of a filter row,
  which keeps the loop vectorized and the accumulator traffic low;
* columns + BLAS, for the rest: ``build_cols`` copies each tap's run into a
  ``(C*kh*kw, N, L)`` matrix (plain contiguous copies, unlike a classic
  im2col), one GEMM per group does the arithmetic, and ``crop_bias`` /
  ``scatter_cols`` move results back to image layout.

Arrays: ``x`` (N, C, Hp*Wp) padded input, ``w`` (O, C/groups, kh, kw),
``g`` (N, O, oh*Wp) or ``gt`` (O, N, L) output gradient on the padded pitch.
Sums of products accumulate in the tensor's dtype (as a BLAS GEMM does).  The drivers
take a range of independent tasks (planes, images, filter pairs), so callers can share
them between threads with ``runtime.parallel.run_chunks``.
"""
from __future__ import annotations

import numpy as np
from numba import njit

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}


# -- direct loops ---------------------------------------------------------------------------------------
# A pass over the run applies several taps of one filter row at once: five slices in, one accumulator
# read and written, instead of one slice in and the accumulator read and written per tap.
@njit(**_JIT)
def _taps5(run, xrow, off, dw, w0, w1, w2, w3, w4, length):
    s0 = xrow[off:off + length]
    s1 = xrow[off + dw:off + dw + length]
    s2 = xrow[off + 2 * dw:off + 2 * dw + length]
    s3 = xrow[off + 3 * dw:off + 3 * dw + length]
    s4 = xrow[off + 4 * dw:off + 4 * dw + length]
    for p in range(length):
        run[p] += w0 * s0[p] + w1 * s1[p] + w2 * s2[p] + w3 * s3[p] + w4 * s4[p]


@njit(**_JIT)
def _taps3(run, xrow, off, dw, w0, w1, w2, length):
    s0 = xrow[off:off + length]
    s1 = xrow[off + dw:off + dw + length]
    s2 = xrow[off + 2 * dw:off + 2 * dw + length]
    for p in range(length):
        run[p] += w0 * s0[p] + w1 * s1[p] + w2 * s2[p]


@njit(**_JIT)
def _taps1(run, xrow, off, w0, length):
    s0 = xrow[off:off + length]
    for p in range(length):
        run[p] += w0 * s0[p]


@njit(**_JIT)
def _filter_row(run, xrow, off, dw, wr, length):
    """run += the taps of filter row ``wr`` applied at offsets off, off + dw, ..."""
    k = 0
    kw = wr.shape[0]
    while k < kw:
        if kw - k >= 5:
            _taps5(run, xrow, off + k * dw, dw, wr[k], wr[k + 1], wr[k + 2], wr[k + 3], wr[k + 4], length)
            k += 5
        elif kw - k >= 3:
            _taps3(run, xrow, off + k * dw, dw, wr[k], wr[k + 1], wr[k + 2], length)
            k += 3
        else:
            _taps1(run, xrow, off + k * dw, wr[k], length)
            k += 1


@njit(**_JIT)
def _forward_plane(x, w, b, has_b, groups, dh, dw, wp, oh, ow, n, o, acc, out):
    cg = w.shape[1]
    c0 = (o // (w.shape[0] // groups)) * cg
    length = (oh - 1) * wp + ow
    run = acc[:length]
    for p in range(length):
        run[p] = 0
    for c in range(cg):
        xrow = x[n, c0 + c]
        for ki in range(w.shape[2]):
            _filter_row(run, xrow, ki * dh * wp, dw, w[o, c, ki], length)
    bias = b[o] if has_b else acc.dtype.type(0)
    plane = out[n, o]
    for i in range(oh):
        for j in range(ow):
            plane[i * ow + j] = acc[i * wp + j] + bias


@njit(**_JIT)
def conv_forward(x, w, b, has_b, groups, dh, dw, wp, oh, ow, out, t0, t1):
    """out[n, o] (oh*ow) = conv(x, w) + b for the planes t = n * O + o in [t0, t1)."""
    n_o = w.shape[0]
    acc = np.empty((oh - 1) * wp + ow, dtype=out.dtype)
    for t in range(t0, t1):
        _forward_plane(x, w, b, has_b, groups, dh, dw, wp, oh, ow, t // n_o, t % n_o, acc, out)


@njit(**_JIT)
def _input_grad_image(g, w, groups, dh, dw, wp, oh, ow, n, gx):
    # gx[n] (C, Hp*Wp), zeroed by the caller, receives every tap's share of g[n]
    n_o = w.shape[0]
    og = n_o // groups
    cg = w.shape[1]
    kh = w.shape[2]
    kw = w.shape[3]
    length = (oh - 1) * wp + ow
    for o in range(n_o):
        grow = g[n, o][:length]
        c0 = (o // og) * cg
        for c in range(cg):
            xrow = gx[n, c0 + c]
            for ki in range(kh):
                for kj in range(kw):
                    wv = w[o, c, ki, kj]
                    off = ki * dh * wp + kj * dw
                    dst = xrow[off:off + length]
                    for p in range(length):
                        dst[p] += wv * grow[p]


@njit(**_JIT)
def conv_input_grad(g, w, groups, dh, dw, wp, oh, ow, gx, n0, n1):
    """gx[n] (zeroed by the caller) += the input gradient of images n in [n0, n1)."""
    for n in range(n0, n1):
        _input_grad_image(g, w, groups, dh, dw, wp, oh, ow, n, gx)


# Weight-gradient dot products: reassociation lets LLVM split the sums into vector lanes (the order of
# a BLAS dot, not a serial one); one pass over g serves up to five taps of a filter row.
@njit(fastmath={"reassoc", "contract"}, **_JIT)
def _dots5(g, xrow, off, dw, length, res, k):
    u = g[:length]
    s0 = xrow[off:off + length]
    s1 = xrow[off + dw:off + dw + length]
    s2 = xrow[off + 2 * dw:off + 2 * dw + length]
    s3 = xrow[off + 3 * dw:off + 3 * dw + length]
    s4 = xrow[off + 4 * dw:off + 4 * dw + length]
    a0 = a1 = a2 = a3 = a4 = res.dtype.type(0)
    for p in range(length):
        gv = u[p]
        a0 += gv * s0[p]
        a1 += gv * s1[p]
        a2 += gv * s2[p]
        a3 += gv * s3[p]
        a4 += gv * s4[p]
    res[k] += a0
    res[k + 1] += a1
    res[k + 2] += a2
    res[k + 3] += a3
    res[k + 4] += a4


@njit(fastmath={"reassoc", "contract"}, **_JIT)
def _dots3(g, xrow, off, dw, length, res, k):
    u = g[:length]
    s0 = xrow[off:off + length]
    s1 = xrow[off + dw:off + dw + length]
    s2 = xrow[off + 2 * dw:off + 2 * dw + length]
    a0 = a1 = a2 = res.dtype.type(0)
    for p in range(length):
        gv = u[p]
        a0 += gv * s0[p]
        a1 += gv * s1[p]
        a2 += gv * s2[p]
    res[k] += a0
    res[k + 1] += a1
    res[k + 2] += a2


@njit(fastmath={"reassoc", "contract"}, **_JIT)
def _dots1(g, xrow, off, length, res, k):
    u = g[:length]
    s0 = xrow[off:off + length]
    a0 = res.dtype.type(0)
    for p in range(length):
        a0 += u[p] * s0[p]
    res[k] += a0


@njit(**_JIT)
def _weight_grad_pair(g, x, groups, dh, dw, wp, oh, ow, o, c, gw):
    # gw[o, c] (kh, kw): each tap is a dot product of g[:, o] with a shifted x[:, c0 + c]
    og = gw.shape[0] // groups
    cg = gw.shape[1]
    kw = gw.shape[3]
    c_in = (o // og) * cg + c
    length = (oh - 1) * wp + ow
    for ki in range(gw.shape[2]):
        res = gw[o, c, ki]
        for k in range(kw):
            res[k] = 0
        off = ki * dh * wp
        for n in range(g.shape[0]):
            grow = g[n, o]
            xrow = x[n, c_in]
            k = 0
            while k < kw:
                if kw - k >= 5:
                    _dots5(grow, xrow, off + k * dw, dw, length, res, k)
                    k += 5
                elif kw - k >= 3:
                    _dots3(grow, xrow, off + k * dw, dw, length, res, k)
                    k += 3
                else:
                    _dots1(grow, xrow, off + k * dw, length, res, k)
                    k += 1


@njit(fastmath={"reassoc", "contract"}, **_JIT)
def _sum64(a):
    s = 0.0
    for p in range(a.shape[0]):
        s += a[p]
    return s


@njit(**_JIT)
def conv_weight_grad(g, x, groups, dh, dw, wp, oh, ow, gw, t0, t1):
    """gw[o, c] for the pairs t = o * (C/groups) + c in [t0, t1)."""
    n_c = gw.shape[1]
    for t in range(t0, t1):
        _weight_grad_pair(g, x, groups, dh, dw, wp, oh, ow, t // n_c, t % n_c, gw)


# -- columns for BLAS ----------------------------------------------------------------------------------------
@njit(**_JIT)
def build_cols(x, kh, kw, dh, dw, wp, length, cols):
    """cols[c*kh*kw + ki*kw + kj, n, :] = x[n, c, ki*dh*wp + kj*dw :][:length]."""
    n_b, n_c, _ = x.shape
    for c in range(n_c):
        for ki in range(kh):
            for kj in range(kw):
                r = (c * kh + ki) * kw + kj
                off = ki * dh * wp + kj * dw
                for n in range(n_b):
                    src = x[n, c][off:off + length]
                    dst = cols[r, n]
                    for p in range(length):
                        dst[p] = src[p]


@njit(**_JIT)
def scatter_cols(cols, kh, kw, dh, dw, wp, length, gx):
    """The adjoint of build_cols: gx[n, c, off(ki, kj) + p] += cols[c*kh*kw + ki*kw + kj, n, p] (gx zeroed)."""
    n_b, n_c, _ = gx.shape
    for n in range(n_b):
        for c in range(n_c):
            xrow = gx[n, c]
            for ki in range(kh):
                for kj in range(kw):
                    off = ki * dh * wp + kj * dw
                    src = cols[(c * kh + ki) * kw + kj, n]
                    dst = xrow[off:off + length]
                    for p in range(length):
                        dst[p] += src[p]


@njit(**_JIT)
def crop_bias(full, b, has_b, wp, oh, ow, out):
    """out (N, O, oh*ow) = full (O, N, L) without its scratch positions, plus the bias."""
    n_o, n_b, _ = full.shape
    for n in range(n_b):
        for o in range(n_o):
            src = full[o, n]
            dst = out[n, o]
            bias = b[o] if has_b else out.dtype.type(0)
            for i in range(oh):
                s = src[i * wp:i * wp + ow]
                d = dst[i * ow:(i + 1) * ow]
                for j in range(ow):
                    d[j] = s[j] + bias


@njit(**_JIT)
def spread_rows_t(g, wp, out, gb):
    """out (O, N, L) = g (N, O, oh, ow) on the padded pitch, scratch positions zeroed;
    gb (O,) float64 += each output channel's sum (the bias gradient)."""
    n_b, n_o, oh, ow = g.shape
    for n in range(n_b):
        for o in range(n_o):
            row = out[o, n]
            src = g[n, o]
            s = 0.0
            for i in range(oh):
                line = src[i]
                base = i * wp
                for j in range(ow):
                    row[base + j] = line[j]
                if i < oh - 1:
                    for j in range(ow, wp):
                        row[base + j] = 0
                s += _sum64(line)
            gb[o] += s


@njit(**_JIT)
def spread_rows(g, wp, out, gb):
    """out (N, O, oh*wp) = g (N, O, oh, ow) on the padded pitch, scratch columns zeroed;
    gb (O,) float64 += the sum of each output channel (the bias gradient)."""
    n_b, n_o, oh, ow = g.shape
    for n in range(n_b):
        for o in range(n_o):
            row = out[n, o]
            src = g[n, o]
            s = 0.0
            for i in range(oh):
                dst = row[i * wp:(i + 1) * wp]
                line = src[i]
                for j in range(ow):
                    dst[j] = line[j]
                for j in range(ow, wp):
                    dst[j] = 0
                s += _sum64(line)
            gb[o] += s


@njit(**_JIT)
def pad_planes(x, pt, pl, out):
    """out (N, C, Hp, Wp) = x (N, C, H, W) placed at row ``pt``, column ``pl``, zeros around it."""
    n_b, n_c, h, w = x.shape
    hp = out.shape[2]
    wp = out.shape[3]
    zero = out.dtype.type(0)
    for n in range(n_b):
        for c in range(n_c):
            src = x[n, c]
            dst = out[n, c]
            for i in range(hp):
                r = dst[i]
                if i < pt or i >= pt + h:
                    for j in range(wp):
                        r[j] = zero
                    continue
                s = src[i - pt]
                for j in range(pl):
                    r[j] = zero
                for j in range(w):
                    r[pl + j] = s[j]
                for j in range(pl + w, wp):
                    r[j] = zero


@njit(**_JIT)
def crop_planes(xp, pt, pl, out):
    """out (N, C, H, W) = the window of xp (N, C, Hp, Wp) at row ``pt``, column ``pl``."""
    n_b, n_c, h, w = out.shape
    for n in range(n_b):
        for c in range(n_c):
            for i in range(h):
                s = xp[n, c, pt + i]
                d = out[n, c, i]
                for j in range(w):
                    d[j] = s[pl + j]
