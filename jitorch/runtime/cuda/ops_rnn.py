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
from .typed_kernels import cast, contiguous, flat, kernels, zeros

F32 = np.dtype(np.float32)


# -- what the gate kernels share -----------------------------------------------------------------------------------
@cuda.jit(device=True, inline=True)
def _sig(x):
    return 1.0 / (1.0 + math.exp(-x))


@cuda.jit(device=True, inline=True)
def _unit(t, hid, gates):
    """(unit j, start of its sample's gate row) of thread ``t`` over (sample, unit) with ``gates`` gates."""
    return t % hid, (t // hid) * gates * hid


@cuda.jit(device=True, inline=True)
def _plus_g(dh, gs, has_g, t):
    """A step's hidden-state gradient plus the incoming gradient of its output ``g_hs[s]``, when there is one."""
    return dh + gs[t] if has_g else dh


@cuda.jit(device=True, inline=True)
def _lstm_gates(gx, gh, row, j, hid):
    """Input, forget, cell and output gate activations of unit ``j``: (i, f, g, o)."""
    i = _sig(gx[row + j] + gh[row + j])
    f = _sig(gx[row + hid + j] + gh[row + hid + j])
    g = math.tanh(gx[row + 2 * hid + j] + gh[row + 2 * hid + j])
    o = _sig(gx[row + 3 * hid + j] + gh[row + 3 * hid + j])
    return i, f, g, o


@cuda.jit(device=True, inline=True)
def _gru_gates(gx, row, j, hid, ghr, ghz, ghn):
    """Reset, update and new gates of unit ``j`` from its hidden-side pre-activations (bias included): (r, z, n)."""
    r = _sig(gx[row + j] + ghr)
    z = _sig(gx[row + hid + j] + ghz)
    return r, z, math.tanh(gx[row + 2 * hid + j] + r * ghn)


# -- the host time loops -------------------------------------------------------------------------------------------
def _steps(t: int, reverse: bool) -> list:
    return list(range(t - 1, -1, -1)) if reverse else list(range(t))


def _work(a, dt):
    return None if a is None else contiguous(a, dt)


def _dtype(gx) -> np.dtype:
    return F32 if gx.dtype == np.float16 else gx.dtype  # half recurrences run in float32


def _forward(gx, w, h0, reverse: bool, gates: int, step) -> CudaArray:
    """The forward time loop in the work dtype: per step one GEMM ``gh = h @ W_hh^T``, then
    ``step(gx[s], gh, h, hs[s])`` (all flat but ``h``) launches the gate kernel that writes the new hidden state."""
    dt = _dtype(gx)
    gx, w, h = contiguous(gx, dt), contiguous(w, dt), contiguous(h0, dt)
    t, n, width = gx.shape
    hs = empty((t, n, width // gates), dt)
    for s in _steps(t, reverse):
        step(flat(gx[s]), flat(matmul(h, w.T)), h, flat(hs[s]))
        h = hs[s]
    return hs


class _Backward:
    """What every backward through time starts from, in the work dtype of ``like``: the states each step
    started from (``hp``), the step order, and the incoming gradients of the outputs."""

    def __init__(self, like, g_hs, h0, hs, reverse: bool):
        self.out_dt = like.dtype
        self.dt = dt = _dtype(like)
        self.hs = contiguous(hs, dt)
        self.t, self.n, self.hid = self.hs.shape
        self.steps = _steps(self.t, reverse)
        self.hp = _prev_states(self.hs, contiguous(h0, dt), reverse)
        self.g_hs = _work(g_hs, dt)
        self.has_g = g_hs is not None
        self._no_g = zeros((1,), dt)

    def g(self, s) -> CudaArray:
        """The incoming gradient of ``hs[s]`` for the gate kernels (a placeholder when there is none)."""
        return flat(self.g_hs[s]) if self.has_g else self._no_g

    def state(self) -> CudaArray:
        return zeros((self.n, self.hid), self.dt)

    def weight_grad(self, dpre: CudaArray) -> CudaArray:
        """``dW_hh``: every step's pre-activation gradients times the state it started from, in one GEMM."""
        t, n, width = dpre.shape
        return matmul(dpre.reshape(t * n, width).T, self.hp.reshape(t * n, self.hid))

    def results(self, *arrays) -> tuple:
        return tuple(cast(a, self.out_dt) for a in arrays)


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


# -- LSTM -------------------------------------------------------------------------------------------------------
def _lstm_step(gx, gh, c, h_out, hid, total):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < total:
        j, row = _unit(t, hid, 4)
        i, f, g, o = _lstm_gates(gx, gh, row, j, hid)
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
            i, f, g, o = _lstm_gates(gx, hpw, row, j, hid)
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
        j, row = _unit(t, hid, 4)
        dh = _plus_g(dmm[t], gs, has_g, t)
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


_K_LSTM_STEP, _K_LSTM_STATES, _K_LSTM_BWD = kernels(_lstm_step, _lstm_states, _lstm_step_backward)


@impl("lstm_sequence", "cuda")
def _lstm_cuda(gx, w, h0, c0, reverse):
    n, units = gx.shape[1], gx.shape[2] // 4
    cell = empty((n, units), _dtype(gx))
    copy_into(cell, c0)

    def step(gxs, gh, h, out):
        _K_LSTM_STEP.over(n * units, gxs, gh, flat(cell), out, units, n * units)
    hs = _forward(gx, w, h0, reverse, 4, step)
    return cast(hs, gx.dtype), cast(cell, gx.dtype)


@impl("lstm_sequence_backward", "cuda")
def _lstm_backward_cuda(g_hs, g_cn, gx, w, h0, c0, hs, reverse):
    bp = _Backward(gx, g_hs, h0, hs, reverse)
    dt, t, n, hid, steps = bp.dt, bp.t, bp.n, bp.hid, bp.steps
    gx, w, c0 = contiguous(gx, dt), contiguous(w, dt), contiguous(c0, dt)
    hpw = matmul(bp.hp, w.T)  # (T, N, 4H): the hidden half of every step's pre-activation
    acts = empty(gx.shape, dt)
    cs = empty(bp.hs.shape, dt)
    _K_LSTM_STATES.over(n * hid, flat(gx), flat(hpw), flat(c0), bool(reverse), flat(acts), flat(cs), t, n, hid)
    dgates = empty(gx.shape, dt)
    dc = bp.state() if g_cn is None else contiguous(g_cn, dt).copy()
    dmm = bp.state()
    for k in range(t - 1, -1, -1):
        s = steps[k]
        c_prev = c0 if k == 0 else cs[steps[k - 1]]
        _K_LSTM_BWD.over(n * hid, flat(dmm), bp.g(s), bp.has_g, flat(dc), flat(acts[s]), flat(c_prev),
                         flat(cs[s]), flat(dgates[s]), hid, n * hid)
        dmm = matmul(dgates[s], w)
    return bp.results(dgates, bp.weight_grad(dgates), dmm, dc)


# -- GRU --------------------------------------------------------------------------------------------------------
def _gru_step(gx, gh, bias, has_b, h_prev, h_out, hid, total):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < total:
        j, row = _unit(t, hid, 3)
        ghr = gh[row + j] + bias[j] if has_b else gh[row + j]
        ghz = gh[row + hid + j] + bias[hid + j] if has_b else gh[row + hid + j]
        ghn = gh[row + 2 * hid + j] + bias[2 * hid + j] if has_b else gh[row + 2 * hid + j]
        _r, z, nn = _gru_gates(gx, row, j, hid, ghr, ghz, ghn)
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
        j, row = _unit(t, hid, 3)
        d = _plus_g(dmm[t] + dprev[t], gs, has_g, t)
        ghn = gh[row + 2 * hid + j]
        r, z, nn = _gru_gates(gx, row, j, hid, gh[row + j], gh[row + hid + j], ghn)
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


(_K_GRU_STEP, _K_ADD_BIAS, _K_GRU_BWD, _K_ADD2, _K_COLSUM) = kernels(
    _gru_step, _add_bias, _gru_step_backward, _add2, _column_sums)


@impl("gru_sequence", "cuda")
def _gru_cuda(gx, w, b, h0, reverse):
    n, units = gx.shape[1], gx.shape[2] // 3
    bias = _work(b, _dtype(gx))
    bb = flat(bias) if bias is not None else zeros((1,), _dtype(gx))

    def step(gxs, gh, h, out):
        _K_GRU_STEP.over(n * units, gxs, gh, bb, bias is not None, flat(h), out, units, n * units)
    return cast(_forward(gx, w, h0, reverse, 3, step), gx.dtype)


@impl("gru_sequence_backward", "cuda")
def _gru_backward_cuda(g_hs, gx, w, b, h0, hs, reverse):
    bp = _Backward(gx, g_hs, h0, hs, reverse)
    dt, t, n, hid = bp.dt, bp.t, bp.n, bp.hid
    gx, w, bias = contiguous(gx, dt), contiguous(w, dt), _work(b, dt)
    three_h = gx.shape[2]
    gh = matmul(bp.hp, w.T)
    if bias is not None:
        _K_ADD_BIAS.over(gh.size, flat(gh), flat(bias), three_h, gh.size)
    dgx = empty(gx.shape, dt)
    dgh = empty(gh.shape, dt)
    dmm = bp.state()
    dprev = bp.state()
    for s in bp.steps[::-1]:
        direct = empty((n, hid), dt)
        _K_GRU_BWD.over(n * hid, flat(dmm), flat(dprev), bp.g(s), bp.has_g, flat(gx[s]), flat(gh[s]),
                        flat(bp.hp[s]), flat(dgx[s]), flat(dgh[s]), flat(direct), hid, n * hid)
        dmm, dprev = matmul(dgh[s], w), direct
    dh = empty((n, hid), dt)
    _K_ADD2.over(n * hid, flat(dh), flat(dmm), flat(dprev), n * hid)
    db = zeros((three_h,), dt)
    if bias is not None and t * n:
        _K_COLSUM.over(three_h, flat(dgh.reshape(t * n, three_h)), t * n, three_h, db)
    return bp.results(dgx, bp.weight_grad(dgh), db, dh)


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
        dh = _plus_g(dmm[t], gs, has_g, t)
        v = h[t]
        if relu:
            dpre[t] = dh if v > 0 else dh * 0.0
        else:
            dpre[t] = dh * (1.0 - v * v)
        t += step


_K_RNN_STEP, _K_RNN_BWD = kernels(_rnn_step, _rnn_step_backward)


@impl("rnn_sequence", "cuda")
def _rnn_cuda(gx, w, h0, reverse, nonlinearity):
    size = gx.shape[1] * gx.shape[2]
    relu = nonlinearity == "relu"

    def step(gxs, gh, h, out):
        _K_RNN_STEP.over(size, gxs, gh, out, relu, size)
    return cast(_forward(gx, w, h0, reverse, 1, step), gx.dtype)


@impl("rnn_sequence_backward", "cuda")
def _rnn_backward_cuda(g_hs, w, h0, hs, reverse, nonlinearity):
    bp = _Backward(hs, g_hs, h0, hs, reverse)
    w = contiguous(w, bp.dt)
    dpre = empty(bp.hs.shape, bp.dt)
    dmm = bp.state()
    size = bp.n * bp.hid
    for s in bp.steps[::-1]:
        _K_RNN_BWD.over(size, flat(dmm), bp.g(s), bp.has_g, flat(bp.hs[s]), flat(dpre[s]), nonlinearity == "relu",
                        size)
        dmm = matmul(dpre[s], w)
    return bp.results(dpre, bp.weight_grad(dpre), dmm)
