"""Fused gate math of LSTM and GRU steps (CPU, Numba).

A recurrent layer does its big work in BLAS (the input projection of all
timesteps at once, then one ``h @ W_hh^T`` per step); what is left per step is
a handful of elementwise gate formulas, fused here into one pass over
``(N, H)`` so a step costs one kernel call instead of a dozen tiny ops.
Gate layouts are torch's: LSTM ``[i, f, g, o]``, GRU ``[r, z, n]``.
Numba's disk cache keys on this file's text alone, not on the ``vmath`` helpers inlined here:
after changing vmath, edit this file too (this note will do) so the cached machine code is rebuilt.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from .nb_blas import gemm
from .vmath import sigmoid32, tanh32

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}


def _sig(x):
    return 1.0 / (1.0 + math.exp(-x))


def _tanh(x):
    return math.tanh(x)


# float32 gates use the branch-free vmath versions (no libm call per element); float64 keeps libm
@overload(_sig)
def _sig_impl(x):
    if x == types.float32:
        return lambda x: sigmoid32(x)
    return lambda x: 1.0 / (1.0 + math.exp(-x))


@overload(_tanh)
def _tanh_impl(x):
    if x == types.float32:
        return lambda x: tanh32(x)
    return lambda x: math.tanh(x)


# -- LSTM ----------------------------------------------------------------------------------------------
@njit(**_JIT)
def lstm_step(gx, gh, c, h_out):
    """One step: gates = gx + gh; c <- f*c + i*g (in place); h_out = o * tanh(c).

    Each gate is its own unit-stride loop over the hidden units, so LLVM can
    vectorize the transcendentals (one interleaved loop over all four did not).
    """
    n, hid = c.shape
    z = np.empty(4 * hid, dtype=gx.dtype)
    tc = np.empty(hid, dtype=gx.dtype)
    for b in range(n):
        gxb = gx[b]
        ghb = gh[b]
        for j in range(2 * hid):
            z[j] = _sig(gxb[j] + ghb[j])
        for j in range(2 * hid, 3 * hid):
            z[j] = _tanh(gxb[j] + ghb[j])
        for j in range(3 * hid, 4 * hid):
            z[j] = _sig(gxb[j] + ghb[j])
        cb = c[b]
        for j in range(hid):
            cn = z[hid + j] * cb[j] + z[j] * z[2 * hid + j]
            cb[j] = cn
            tc[j] = _tanh(cn)
        hb = h_out[b]
        for j in range(hid):
            hb[j] = z[3 * hid + j] * tc[j]


@njit(**_JIT)
def lstm_states(pre, c0, steps, acts, cs):
    """Gate activations and cell states of a whole sequence from pre-activations (for backward).

    ``steps`` lists the timesteps in processing order (reversed for the backward direction).
    Activations come first, gate by gate in unit-stride loops (vectorizable); the cell
    recurrence, which carries a dependence from step to step, runs after them.
    """
    n, hid = c0.shape
    for t in range(pre.shape[0]):
        for b in range(n):
            for j in range(2 * hid):
                acts[t, b, j] = _sig(pre[t, b, j])
            for j in range(2 * hid, 3 * hid):
                acts[t, b, j] = _tanh(pre[t, b, j])
            for j in range(3 * hid, 4 * hid):
                acts[t, b, j] = _sig(pre[t, b, j])
    for k in range(steps.shape[0]):
        t = steps[k]
        for b in range(n):
            for j in range(hid):
                prev = c0[b, j] if k == 0 else cs[steps[k - 1], b, j]
                cs[t, b, j] = acts[t, b, hid + j] * prev + acts[t, b, j] * acts[t, b, 2 * hid + j]


@njit(**_JIT)
def lstm_step_backward(dh, dc, act, c_prev, c_t, dgates):
    """Gate gradients of one step; ``dc`` (in: d c_t, out: d c_{t-1}) is updated in place.

    tanh(c_t) gets its own loop; the rest is arithmetic over unit-stride rows (vectorizable).
    """
    n, hid = dh.shape
    tc = np.empty(hid, dtype=act.dtype)
    for b in range(n):
        ab = act[b]
        gb = dgates[b]
        dhb = dh[b]
        dcb = dc[b]
        cpb = c_prev[b]
        ctb = c_t[b]
        for j in range(hid):
            tc[j] = _tanh(ctb[j])
        for j in range(hid):
            i = ab[j]
            f = ab[hid + j]
            g = ab[2 * hid + j]
            o = ab[3 * hid + j]
            dcell = dcb[j] + dhb[j] * o * (1.0 - tc[j] * tc[j])
            gb[j] = dcell * g * i * (1.0 - i)
            gb[hid + j] = dcell * cpb[j] * f * (1.0 - f)
            gb[2 * hid + j] = dcell * i * (1.0 - g * g)
            gb[3 * hid + j] = dhb[j] * tc[j] * o * (1.0 - o)
            dcb[j] = dcell * f


# -- LSTM with a saved workspace (training) ---------------------------------------------------------------
# A step's row of the workspace holds [i, f, g, o | c | h] (6H values per batch entry): the activated
# gates, the cell state and the hidden state, so the backward reads them instead of replaying the
# forward (which cost another input-sized GEMM and a gate pass).
@njit(**_JIT)
def lstm_step_ws(gx, gh, c_prev, ws):
    """gates = gx + gh (N, 4H); writes the step's activations, c and h into ws (N, 6H).

    Every loop runs over its own unit-stride slice (one gate, or c, or h), which is what lets
    LLVM vectorize it: indexing one long row at computed offsets ran at half the speed.
    """
    n, hid = c_prev.shape
    for b in range(n):
        gxb = gx[b]
        ghb = gh[b]
        row = ws[b]
        z = row[:4 * hid]
        for j in range(4 * hid):
            z[j] = gxb[j] + ghb[j]
        zif = z[:2 * hid]
        for j in range(2 * hid):
            zif[j] = _sig(zif[j])
        zg = z[2 * hid:3 * hid]
        for j in range(hid):
            zg[j] = _tanh(zg[j])
        zo = z[3 * hid:]
        for j in range(hid):
            zo[j] = _sig(zo[j])
        zi = z[:hid]
        zf = z[hid:2 * hid]
        cpb = c_prev[b]
        cb = row[4 * hid:5 * hid]
        hb = row[5 * hid:]
        for j in range(hid):
            cb[j] = zf[j] * cpb[j] + zi[j] * zg[j]
        for j in range(hid):
            hb[j] = zo[j] * _tanh(cb[j])


@njit(**_JIT)
def lstm_step_backward_ws(dh, g_out, has_g, dc, ws, c_prev, dgates):
    """Gate gradients of one step from its workspace row; ``dh`` is d h_t without the output's own
    gradient ``g_out`` (added here when ``has_g``); ``dc`` (in: d c_t, out: d c_{t-1}) is updated in place."""
    n, hid = dh.shape
    one = ws.dtype.type(1)  # a typed 1: a float literal would move float32 math to float64
    tc = np.empty(hid, dtype=ws.dtype)
    d = np.empty(hid, dtype=ws.dtype)
    for b in range(n):
        row = ws[b]
        zi = row[:hid]
        zf = row[hid:2 * hid]
        zg = row[2 * hid:3 * hid]
        zo = row[3 * hid:4 * hid]
        cb = row[4 * hid:5 * hid]
        gb = dgates[b]
        gi = gb[:hid]
        gf = gb[hid:2 * hid]
        gg = gb[2 * hid:3 * hid]
        go = gb[3 * hid:]
        dhb = dh[b]
        dcb = dc[b]
        cpb = c_prev[b]
        for j in range(hid):
            tc[j] = _tanh(cb[j])
        if has_g:
            gob = g_out[b]
            for j in range(hid):
                d[j] = dhb[j] + gob[j]
        else:
            for j in range(hid):
                d[j] = dhb[j]
        for j in range(hid):
            i = zi[j]
            f = zf[j]
            g = zg[j]
            o = zo[j]
            t = tc[j]
            dcell = dcb[j] + d[j] * o * (one - t * t)
            gi[j] = dcell * g * i * (one - i)
            gf[j] = dcell * cpb[j] * f * (one - f)
            gg[j] = dcell * i * (one - g * g)
            go[j] = d[j] * t * o * (one - o)
            dcb[j] = dcell * f


# Whole time loops over a slice of batch rows [lo, hi): one GIL-free call per slice, so two threads can
# run the two halves of a batch side by side (the GEMMs call BLAS from inside, see ``nb_blas``).
# ``init`` (N, 6H) holds the initial state where a workspace row keeps it: c0 at [4H:5H], h0 at [5H:].
@njit(**_JIT)
def lstm_forward_rows(gx, wt, init, steps, lo, hi, gh, ws):
    hid = init.shape[1] // 6
    for k in range(steps.shape[0]):
        s = steps[k]
        prev = init[lo:hi] if k == 0 else ws[steps[k - 1], lo:hi]
        gemm(prev[:, 5 * hid:], wt, gh)
        lstm_step_ws(gx[s, lo:hi], gh, prev[:, 4 * hid:5 * hid], ws[s, lo:hi])


@njit(**_JIT)
def lstm_backward_rows(g_hs, has_g, w, init, ws, steps, lo, hi, dh, dc, dgates):
    hid = init.shape[1] // 6
    dh_r = dh[lo:hi]
    dc_r = dc[lo:hi]
    for j in range(steps.shape[0] - 1, -1, -1):
        s = steps[j]
        prev = init[lo:hi] if j == 0 else ws[steps[j - 1], lo:hi]
        g_out = g_hs[s, lo:hi] if has_g else dh_r
        lstm_step_backward_ws(dh_r, g_out, has_g, dc_r, ws[s, lo:hi], prev[:, 4 * hid:5 * hid], dgates[s, lo:hi])
        gemm(dgates[s, lo:hi], w, dh_r)


# -- GRU -----------------------------------------------------------------------------------------------
@njit(**_JIT)
def gru_step(gx, gh, h_prev, h_out):
    """r, z = sigmoid(gx + gh); n = tanh(gx_n + r * gh_n); h = (1 - z) * n + z * h_prev."""
    n_, hid = h_prev.shape
    for b in range(n_):
        for j in range(hid):
            r = _sig(gx[b, j] + gh[b, j])
            z = _sig(gx[b, hid + j] + gh[b, hid + j])
            nn = _tanh(gx[b, 2 * hid + j] + r * gh[b, 2 * hid + j])
            h_out[b, j] = (1.0 - z) * nn + z * h_prev[b, j]


@njit(**_JIT)
def gru_step_backward(dh, gx, gh, h_prev, dgx, dgh, dh_prev):
    """Gradients of one GRU step w.r.t. its input gates, hidden gates and (directly) h_prev."""
    n_, hid = dh.shape
    for b in range(n_):
        for j in range(hid):
            r = _sig(gx[b, j] + gh[b, j])
            z = _sig(gx[b, hid + j] + gh[b, hid + j])
            ghn = gh[b, 2 * hid + j]
            nn = _tanh(gx[b, 2 * hid + j] + r * ghn)
            d = dh[b, j]
            dn = d * (1.0 - z) * (1.0 - nn * nn)
            dz = d * (h_prev[b, j] - nn) * z * (1.0 - z)
            dr = dn * ghn * r * (1.0 - r)
            dgx[b, j] = dr
            dgx[b, hid + j] = dz
            dgx[b, 2 * hid + j] = dn
            dgh[b, j] = dr
            dgh[b, hid + j] = dz
            dgh[b, 2 * hid + j] = dn * r
            dh_prev[b, j] = d * z
