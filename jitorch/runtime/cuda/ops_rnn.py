"""CUDA recurrences of RNN / LSTM / GRU layers (the ``*_sequence`` primitives and their backward).

Same structure as the CPU kernels (``jitorch/ops/rnn_ops.py``): the time loop
stays on the host and each step is one GEMM (``h @ W_hh^T``, through the
strided GEMM, so ``W^T`` is never copied) plus one fused gate kernel with a
thread per (sample, hidden unit).  The backward runs backpropagation through
time the same way, adding the incoming ``g_hs[s]`` and the previous step's
terms inside the gate kernel, and finishes with one big GEMM for ``dW_hh``.
Whole-sequence gate activations of the LSTM backward come from one kernel
whose threads walk the time steps of their unit.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda

from ...ops import rnn_ops as _rnn_ops  # noqa: F401 - the ops must exist before their impls
from ...ops.registry import impl
from .array import CudaArray, empty
from .copy import copy_into
from .gemm import matmul
from .typed_kernels import Kernel, cast, contiguous, flat, grid, zeros

F32 = np.dtype(np.float32)


@cuda.jit(device=True, inline=True)
def _sig(x):
    return 1.0 / (1.0 + math.exp(-x))


def _steps(t: int, reverse: bool) -> list:
    return list(range(t - 1, -1, -1)) if reverse else list(range(t))


def _prev_states(hs: CudaArray, h0: CudaArray, reverse: bool) -> CudaArray:
    """The hidden state each step started from, stacked like ``hs``."""
    hp = empty(hs.shape, hs.dtype)
    t = hs.shape[0]
    if t:
        if reverse:
            copy_into(hp[t - 1], h0)
            if t > 1:
                copy_into(hp[:t - 1], hs[1:])
        else:
            copy_into(hp[0], h0)
            if t > 1:
                copy_into(hp[1:], hs[:t - 1])
    return hp


def _work(a, dt):
    return None if a is None else contiguous(a, dt)


def _dtype(gx) -> np.dtype:
    return F32 if gx.dtype == np.float16 else gx.dtype  # half recurrences run in float32


def _launch(kernel, n, *args):
    if n:
        b, t = grid(n)
        kernel(b, t, *args)


# -- LSTM -------------------------------------------------------------------------------------------------------
def _lstm_step(gx, gh, c, h_out, hid, total):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < total:
        b = t // hid
        j = t % hid
        row = b * 4 * hid
        i = _sig(gx[row + j] + gh[row + j])
        f = _sig(gx[row + hid + j] + gh[row + hid + j])
        g = math.tanh(gx[row + 2 * hid + j] + gh[row + 2 * hid + j])
        o = _sig(gx[row + 3 * hid + j] + gh[row + 3 * hid + j])
        cn = f * c[t] + i * g
        c[t] = cn
        h_out[t] = o * math.tanh(cn)
        t += step


def _lstm_states(gx, hpw, c0, reverse, acts, cs, nsteps, n, hid):
    """Gate activations and cell states of a whole sequence; a thread per (sample, unit) walks the steps."""
    q = cuda.grid(1)
    stride = cuda.gridsize(1)
    while q < n * hid:
        b = q // hid
        j = q % hid
        c = c0[q]
        for k in range(nsteps):
            s = nsteps - 1 - k if reverse else k
            row = (s * n + b) * 4 * hid
            i = _sig(gx[row + j] + hpw[row + j])
            f = _sig(gx[row + hid + j] + hpw[row + hid + j])
            g = math.tanh(gx[row + 2 * hid + j] + hpw[row + 2 * hid + j])
            o = _sig(gx[row + 3 * hid + j] + hpw[row + 3 * hid + j])
            acts[row + j] = i
            acts[row + hid + j] = f
            acts[row + 2 * hid + j] = g
            acts[row + 3 * hid + j] = o
            c = f * c + i * g
            cs[(s * n + b) * hid + j] = c
        q += stride


def _lstm_step_backward(dmm, gs, has_g, dc, act, c_prev, c_t, dgates, hid, total):
    """One step back: dh = dmm (+ g_hs[s]); gate gradients into ``dgates``; dc becomes d c_{t-1}."""
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < total:
        b = t // hid
        j = t % hid
        row = b * 4 * hid
        dh = dmm[t] + gs[t] if has_g else dmm[t]
        i = act[row + j]
        f = act[row + hid + j]
        g = act[row + 2 * hid + j]
        o = act[row + 3 * hid + j]
        tc = math.tanh(c_t[t])
        dcell = dc[t] + dh * o * (1.0 - tc * tc)
        dgates[row + j] = dcell * g * i * (1.0 - i)
        dgates[row + hid + j] = dcell * c_prev[t] * f * (1.0 - f)
        dgates[row + 2 * hid + j] = dcell * i * (1.0 - g * g)
        dgates[row + 3 * hid + j] = dh * tc * o * (1.0 - o)
        dc[t] = dcell * f
        t += step


_K_LSTM_STEP = Kernel(_lstm_step)
_K_LSTM_STATES = Kernel(_lstm_states)
_K_LSTM_BWD = Kernel(_lstm_step_backward)


@impl("lstm_sequence", "cuda")
def _lstm_cuda(gx, w, h0, c0, reverse):
    out_dt = gx.dtype
    dt = _dtype(gx)
    gx, w, h = contiguous(gx, dt), contiguous(w, dt), contiguous(h0, dt)
    t, n, four_h = gx.shape
    hid = four_h // 4
    hs = empty((t, n, hid), dt)
    cell = empty((n, hid), dt)
    copy_into(cell, c0)
    for s in _steps(t, reverse):
        gh = matmul(h, w.T)
        _launch(_K_LSTM_STEP, n * hid, flat(gx[s]), flat(gh), flat(cell), flat(hs[s]), hid, n * hid)
        h = hs[s]
    return cast(hs, out_dt), cast(cell, out_dt)


@impl("lstm_sequence_backward", "cuda")
def _lstm_backward_cuda(g_hs, g_cn, gx, w, h0, c0, hs, reverse):
    out_dt = gx.dtype
    dt = _dtype(gx)
    gx, w, h0, c0, hs = (contiguous(a, dt) for a in (gx, w, h0, c0, hs))
    g_hs = _work(g_hs, dt)
    t, n, four_h = gx.shape
    hid = four_h // 4
    steps = _steps(t, reverse)
    hp = _prev_states(hs, h0, reverse)
    hpw = matmul(hp, w.T)  # (T, N, 4H): the hidden half of every step's pre-activation
    acts = empty(gx.shape, dt)
    cs = empty(hs.shape, dt)
    _launch(_K_LSTM_STATES, n * hid, flat(gx), flat(hpw), flat(c0), bool(reverse), flat(acts), flat(cs), t, n, hid)
    dgates = empty(gx.shape, dt)
    dc = zeros((n, hid), dt) if g_cn is None else contiguous(g_cn, dt).copy()
    dmm = zeros((n, hid), dt)
    dummy = zeros((1,), dt)
    for k in range(t - 1, -1, -1):
        s = steps[k]
        c_prev = c0 if k == 0 else cs[steps[k - 1]]
        gs = flat(g_hs[s]) if g_hs is not None else dummy
        _launch(_K_LSTM_BWD, n * hid, flat(dmm), gs, g_hs is not None, flat(dc), flat(acts[s]), flat(c_prev),
                flat(cs[s]), flat(dgates[s]), hid, n * hid)
        dmm = matmul(dgates[s], w)
    dw = matmul(dgates.reshape(t * n, four_h).T, hp.reshape(t * n, hid))
    return tuple(cast(a, out_dt) for a in (dgates, dw, dmm, dc))


# -- GRU --------------------------------------------------------------------------------------------------------
def _gru_step(gx, gh, bias, has_b, h_prev, h_out, hid, total):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < total:
        b = t // hid
        j = t % hid
        row = b * 3 * hid
        ghr = gh[row + j] + bias[j] if has_b else gh[row + j]
        ghz = gh[row + hid + j] + bias[hid + j] if has_b else gh[row + hid + j]
        ghn = gh[row + 2 * hid + j] + bias[2 * hid + j] if has_b else gh[row + 2 * hid + j]
        r = _sig(gx[row + j] + ghr)
        z = _sig(gx[row + hid + j] + ghz)
        nn = math.tanh(gx[row + 2 * hid + j] + r * ghn)
        h_out[t] = (1.0 - z) * nn + z * h_prev[t]
        t += step


def _add_bias(x, bias, width, total):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < total:
        x[t] += bias[t % width]
        t += step


def _gru_step_backward(dmm, dprev, gs, has_g, gx, gh, h_prev, dgx, dgh, direct, hid, total):
    """dh = dmm + dprev (+ g_hs[s]); gradients of the step's input and hidden gates; ``direct`` = dh * z."""
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < total:
        b = t // hid
        j = t % hid
        row = b * 3 * hid
        d = dmm[t] + dprev[t]
        if has_g:
            d += gs[t]
        r = _sig(gx[row + j] + gh[row + j])
        z = _sig(gx[row + hid + j] + gh[row + hid + j])
        ghn = gh[row + 2 * hid + j]
        nn = math.tanh(gx[row + 2 * hid + j] + r * ghn)
        dn = d * (1.0 - z) * (1.0 - nn * nn)
        dz = d * (h_prev[t] - nn) * z * (1.0 - z)
        dr = dn * ghn * r * (1.0 - r)
        dgx[row + j] = dr
        dgx[row + hid + j] = dz
        dgx[row + 2 * hid + j] = dn
        dgh[row + j] = dr
        dgh[row + hid + j] = dz
        dgh[row + 2 * hid + j] = dn * r
        direct[t] = d * z
        t += step


def _add2(out, a, b, total):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < total:
        out[t] = a[t] + b[t]
        t += step


def _column_sums(x, rows, cols, out):
    q = cuda.grid(1)
    step = cuda.gridsize(1)
    while q < cols:
        acc = x[q] * 0
        for r in range(rows):
            acc += x[r * cols + q]
        out[q] = acc
        q += step


_K_GRU_STEP = Kernel(_gru_step)
_K_ADD_BIAS = Kernel(_add_bias)
_K_GRU_BWD = Kernel(_gru_step_backward)
_K_ADD2 = Kernel(_add2)
_K_COLSUM = Kernel(_column_sums)


@impl("gru_sequence", "cuda")
def _gru_cuda(gx, w, b, h0, reverse):
    out_dt = gx.dtype
    dt = _dtype(gx)
    gx, w, h = contiguous(gx, dt), contiguous(w, dt), contiguous(h0, dt)
    bias = _work(b, dt)
    t, n, three_h = gx.shape
    hid = three_h // 3
    hs = empty((t, n, hid), dt)
    bb = flat(bias) if bias is not None else zeros((1,), dt)
    for s in _steps(t, reverse):
        gh = matmul(h, w.T)
        _launch(_K_GRU_STEP, n * hid, flat(gx[s]), flat(gh), bb, bias is not None, flat(h), flat(hs[s]), hid,
                n * hid)
        h = hs[s]
    return cast(hs, out_dt)


@impl("gru_sequence_backward", "cuda")
def _gru_backward_cuda(g_hs, gx, w, b, h0, hs, reverse):
    out_dt = gx.dtype
    dt = _dtype(gx)
    gx, w, h0, hs = (contiguous(a, dt) for a in (gx, w, h0, hs))
    g_hs, bias = _work(g_hs, dt), _work(b, dt)
    t, n, three_h = gx.shape
    hid = three_h // 3
    hp = _prev_states(hs, h0, reverse)
    gh = matmul(hp, w.T)
    if bias is not None:
        _launch(_K_ADD_BIAS, gh.size, flat(gh), flat(bias), three_h, gh.size)
    dgx = empty(gx.shape, dt)
    dgh = empty(gh.shape, dt)
    dmm = zeros((n, hid), dt)
    dprev = zeros((n, hid), dt)
    dummy = zeros((1,), dt)
    for s in _steps(t, reverse)[::-1]:
        direct = empty((n, hid), dt)
        gs = flat(g_hs[s]) if g_hs is not None else dummy
        _launch(_K_GRU_BWD, n * hid, flat(dmm), flat(dprev), gs, g_hs is not None, flat(gx[s]), flat(gh[s]),
                flat(hp[s]), flat(dgx[s]), flat(dgh[s]), flat(direct), hid, n * hid)
        dmm, dprev = matmul(dgh[s], w), direct
    dh = empty((n, hid), dt)
    _launch(_K_ADD2, n * hid, flat(dh), flat(dmm), flat(dprev), n * hid)
    flat_dgh = dgh.reshape(t * n, three_h)
    dw = matmul(flat_dgh.T, hp.reshape(t * n, hid))
    db = zeros((three_h,), dt)
    if bias is not None and t * n:
        _launch(_K_COLSUM, three_h, flat(flat_dgh), t * n, three_h, db)
    return tuple(cast(a, out_dt) for a in (dgx, dw, db, dh))


# -- Elman RNN ---------------------------------------------------------------------------------------------------
def _rnn_step(gx, gh, h_out, relu, total):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < total:
        pre = gx[t] + gh[t]
        h_out[t] = max(pre, 0.0) if relu else math.tanh(pre)
        t += step


def _rnn_step_backward(dmm, gs, has_g, h, dpre, relu, total):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < total:
        dh = dmm[t] + gs[t] if has_g else dmm[t]
        v = h[t]
        if relu:
            dpre[t] = dh if v > 0 else dh * 0.0
        else:
            dpre[t] = dh * (1.0 - v * v)
        t += step


_K_RNN_STEP = Kernel(_rnn_step)
_K_RNN_BWD = Kernel(_rnn_step_backward)


@impl("rnn_sequence", "cuda")
def _rnn_cuda(gx, w, h0, reverse, nonlinearity):
    out_dt = gx.dtype
    dt = _dtype(gx)
    gx, w, h = contiguous(gx, dt), contiguous(w, dt), contiguous(h0, dt)
    t, n, hid = gx.shape
    hs = empty((t, n, hid), dt)
    for s in _steps(t, reverse):
        gh = matmul(h, w.T)
        _launch(_K_RNN_STEP, n * hid, flat(gx[s]), flat(gh), flat(hs[s]), nonlinearity == "relu", n * hid)
        h = hs[s]
    return cast(hs, out_dt)


@impl("rnn_sequence_backward", "cuda")
def _rnn_backward_cuda(g_hs, w, h0, hs, reverse, nonlinearity):
    out_dt = hs.dtype
    dt = _dtype(hs)
    w, h0, hs = (contiguous(a, dt) for a in (w, h0, hs))
    g_hs = _work(g_hs, dt)
    t, n, hid = hs.shape
    hp = _prev_states(hs, h0, reverse)
    dpre = empty(hs.shape, dt)
    dmm = zeros((n, hid), dt)
    dummy = zeros((1,), dt)
    for s in _steps(t, reverse)[::-1]:
        gs = flat(g_hs[s]) if g_hs is not None else dummy
        _launch(_K_RNN_BWD, n * hid, flat(dmm), gs, g_hs is not None, flat(hs[s]), flat(dpre[s]),
                nonlinearity == "relu", n * hid)
        dmm = matmul(dpre[s], w)
    dw = matmul(dpre.reshape(t * n, hid).T, hp.reshape(t * n, hid))
    return tuple(cast(a, out_dt) for a in (dpre, dw, dmm))
