"""Recurrences of RNN / LSTM / GRU layers as primitives (one per layer and direction).

The input projection ``x @ W_ih^T + b`` of all timesteps is an ordinary
matmul done by the caller; a primitive here runs only the time loop: per step
one BLAS ``h @ W_hh^T`` and one fused gate kernel (``runtime.rnn_kernels``),
with no autograd bookkeeping inside the loop.  Its derivative rule is
backpropagation through time, again one matmul plus one fused kernel per step
and a single big matmul for ``dW_hh`` at the end.

Under ``create_graph`` (double backward) the rule instead replays the
recurrence with ordinary jitorch ops and differentiates that, so higher
derivatives are exact too, just slower.
"""
from __future__ import annotations

import numpy as np

from .._dispatch import apply
from .._tensor import Tensor
from ..autograd import grad_mode
from ..runtime import blas, nb_blas, parallel
from ..runtime import rnn_kernels as K
from .eager_fast import cpu_float_eager
from .registry import impl, kernel_op


def _steps(t: int, reverse: bool) -> np.ndarray:
    return np.arange(t - 1, -1, -1) if reverse else np.arange(t)


def _prev_states(hs: np.ndarray, h0: np.ndarray, reverse: bool) -> np.ndarray:
    """The hidden state each step started from, stacked like ``hs``."""
    hp = np.empty_like(hs)
    if hs.shape[0]:
        if reverse:
            hp[-1] = h0
            hp[:-1] = hs[1:]
        else:
            hp[0] = h0
            hp[1:] = hs[:-1]
    return hp


def _c(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a)


def _zeros_if_none(g, shape, dtype):
    return np.zeros(shape, dtype) if g is None else np.array(g, dtype=dtype, copy=True)


# -- LSTM -------------------------------------------------------------------------------------------------
def _lstm_vjp(c, g):
    g_hs, g_cn = g
    if grad_mode.is_grad_enabled():
        return _replay_grads(c, (g_hs, g_cn), "lstm")
    gx, w, h0, c0 = c.inputs
    return apply(LSTM_BACKWARD, [g_hs, g_cn, gx, w, h0, c0, c.out], c.attrs)


LSTM_SEQ = kernel_op("lstm_sequence", nin=4, n_outputs=2, saves="both", vjp=_lstm_vjp,
                     node_name="LstmSequenceBackward0")
LSTM_BACKWARD = kernel_op("lstm_sequence_backward", nin=7, n_outputs=4, differentiable=False)


@impl("lstm_sequence")
def _lstm_cpu(gx, w, h0, c0, reverse):
    gx, h = _c(gx), _c(h0)
    t, n, _ = gx.shape
    hs = np.empty((t, n, h.shape[1]), dtype=gx.dtype)
    cell = np.array(c0, dtype=gx.dtype, copy=True)
    wt = np.ascontiguousarray(w.T)  # BLAS is up to 2x slower on the transposed operand
    for s in _steps(t, reverse):
        K.lstm_step(gx[s], h @ wt, cell, hs[s])
        h = hs[s]
    return hs, cell


@impl("lstm_sequence_backward")
def _lstm_backward_cpu(g_hs, g_cn, gx, w, h0, c0, hs, reverse):
    t, n, four_h = gx.shape
    hid = four_h // 4
    dt = gx.dtype
    hp = _prev_states(hs, h0, reverse)
    pre = _c(gx + hp @ w.T)
    acts = np.empty_like(pre)
    cs = np.empty_like(hs)
    steps = _steps(t, reverse)
    c0 = _c(c0)
    K.lstm_states(pre, c0, steps, acts, cs)
    dgates = np.empty_like(pre)
    dh = np.zeros((n, hid), dt)
    dc = _zeros_if_none(g_cn, (n, hid), dt)
    for k in range(t - 1, -1, -1):
        s = steps[k]
        if g_hs is not None:
            dh = dh + g_hs[s]
        c_prev = c0 if k == 0 else cs[steps[k - 1]]
        K.lstm_step_backward(_c(dh), dc, acts[s], c_prev, cs[s], dgates[s])
        dh = dgates[s] @ w
    dw = dgates.reshape(t * n, four_h).T @ hp.reshape(t * n, hid)
    return dgates, dw, dh.astype(dt, copy=False), dc


def lstm_sequence(gx: Tensor, w_hh: Tensor, h0: Tensor, c0: Tensor, reverse: bool = False):
    """All hidden states ``(T, N, H)`` and the last cell state ``(N, H)`` of one LSTM layer direction.

    ``gx`` is ``x @ W_ih^T + b_ih + b_hh`` for every timestep, shape ``(T, N, 4H)``.
    """
    attrs = {"reverse": bool(reverse)}
    if _wants_grad(gx, w_hh, h0, c0) and cpu_float_eager(gx, w_hh, h0, c0):
        _, hs, cn = apply(LSTM_TRAIN, [gx, w_hh, h0, c0], attrs)
        return hs, cn
    return apply(LSTM_SEQ, [gx, w_hh, h0, c0], attrs)


def _wants_grad(*tensors) -> bool:
    return grad_mode.is_grad_enabled() and any(t._requires_grad for t in tensors)


# The eager CPU training path (see ``eager_fast``): the forward also returns its workspace (every
# step's activated gates, cell and hidden state, ``lstm_step_ws``) as output 0, which the node saves,
# so the backward needs no replay of the forward.  Its derivative rule is the same BPTT.
def _lstm_train_vjp(c, g):
    _, g_hs, g_cn = g
    if g_hs is None and g_cn is None:
        return None, None, None, None
    if grad_mode.is_grad_enabled():
        return _replay_grads(c, (g_hs, g_cn), "lstm")
    _, w, h0, c0 = c.inputs
    return apply(LSTM_TRAIN_BACKWARD, [g_hs, g_cn, w, h0, c0, c.out], c.attrs)


LSTM_TRAIN = kernel_op("lstm_sequence_train", nin=4, n_outputs=3, saves="both", vjp=_lstm_train_vjp,
                       node_name="LstmSequenceBackward0")
LSTM_TRAIN_BACKWARD = kernel_op("lstm_sequence_train_backward", nin=6, n_outputs=4, differentiable=False)


def _initial_row(h0: np.ndarray, c0: np.ndarray, dtype) -> np.ndarray:
    """(N, 6H) with c0 and h0 where a workspace row keeps c and h (the kernels read step -1 from it)."""
    n, hid = h0.shape
    init = np.zeros((n, 6 * hid), dtype=dtype)
    init[:, 4 * hid:5 * hid] = c0
    init[:, 5 * hid:] = h0
    return init


# Batch rows never interact in a recurrence, so both drivers run the whole time loop over two halves of
# the batch side by side (``runtime.parallel``: the caller and one helper thread, no spinning).
@impl("lstm_sequence_train")
def _lstm_train_cpu(gx, w, h0, c0, reverse):
    gx = _c(gx)
    t, n, four_h = gx.shape
    hid = four_h // 4
    ws = np.empty((t, n, 6 * hid), dtype=gx.dtype)
    h0, c0 = _c(h0), _c(c0)
    wt = np.ascontiguousarray(w.T)  # once per sequence: BLAS is up to 2x slower on a transposed operand
    steps = _steps(t, reverse)
    parts = parallel.split(n)
    blas.prepare(h0[:parts[0][1]], wt)
    if nb_blas.AVAILABLE:
        init = _initial_row(h0, c0, ws.dtype)

        def rows(k):
            lo, hi = parts[k]
            K.lstm_forward_rows(gx, wt, init, steps, lo, hi, np.empty((hi - lo, four_h), dtype=gx.dtype), ws)
    else:  # NumPy's BLAS is not callable from Numba: the same loop in Python
        def rows(k):
            lo, hi = parts[k]
            h, cell = h0[lo:hi], c0[lo:hi]
            gh = np.empty((hi - lo, four_h), dtype=gx.dtype)
            for s in steps:
                np.matmul(h, wt, out=gh)
                K.lstm_step_ws(gx[s, lo:hi], gh, cell, ws[s, lo:hi])
                h = ws[s, lo:hi, 5 * hid:]
                cell = ws[s, lo:hi, 4 * hid:5 * hid]

    parallel.run_chunks(rows, len(parts), t * n * four_h * hid)
    hs = np.ascontiguousarray(ws[:, :, 5 * hid:])
    cn = np.array(ws[steps[-1], :, 4 * hid:5 * hid] if t else c0, dtype=gx.dtype, copy=True)
    return ws, hs, cn


@impl("lstm_sequence_train_backward")
def _lstm_train_backward_cpu(g_hs, g_cn, w, h0, c0, ws, reverse):
    t, n, six_h = ws.shape
    hid = six_h // 6
    dt = ws.dtype
    steps = _steps(t, reverse)
    dgates = np.empty((t, n, 4 * hid), dtype=dt)
    dh = np.zeros((n, hid), dt)
    dc = _zeros_if_none(g_cn, (n, hid), dt)
    c0 = _c(c0)
    g_hs = _c(g_hs) if g_hs is not None else None
    parts = parallel.split(n)
    blas.prepare(dh[:parts[0][1]], w.T)  # the per-step products dgates[s] @ w have this size
    if nb_blas.AVAILABLE:
        init = _initial_row(h0, c0, dt)
        wc = _c(w)
        g_arr = g_hs if g_hs is not None else dgates  # a placeholder of the right type when absent

        def rows(k):
            lo, hi = parts[k]
            K.lstm_backward_rows(g_arr, g_hs is not None, wc, init, ws, steps, lo, hi, dh, dc, dgates)
    else:
        def rows(k):
            lo, hi = parts[k]
            dh_k, dc_k = dh[lo:hi], dc[lo:hi]
            for j in range(t - 1, -1, -1):
                s = steps[j]
                c_prev = c0[lo:hi] if j == 0 else ws[steps[j - 1], lo:hi, 4 * hid:5 * hid]
                g_out = g_hs[s, lo:hi] if g_hs is not None else dh_k
                K.lstm_step_backward_ws(dh_k, g_out, g_hs is not None, dc_k, ws[s, lo:hi], c_prev,
                                        dgates[s, lo:hi])
                np.matmul(dgates[s, lo:hi], w, out=dh_k)

    parallel.run_chunks(rows, len(parts), t * n * 4 * hid * hid)
    hp = np.empty((t, n, hid), dtype=dt)  # the hidden state each step started from
    for k in range(t):
        hp[steps[k]] = h0 if k == 0 else ws[steps[k - 1], :, 5 * hid:]
    dw = blas.matmul(dgates.reshape(t * n, 4 * hid).T, hp.reshape(t * n, hid))
    return dgates, dw, dh, dc


# -- GRU ----------------------------------------------------------------------------------------------------
def _gru_vjp(c, g):
    if grad_mode.is_grad_enabled():
        return _replay_grads(c, (g,), "gru")
    gx, w, b, h0 = c.inputs
    return apply(GRU_BACKWARD, [g, gx, w, b, h0, c.out], c.attrs)


GRU_SEQ = kernel_op("gru_sequence", nin=4, saves="both", vjp=_gru_vjp, node_name="GruSequenceBackward0")
GRU_BACKWARD = kernel_op("gru_sequence_backward", nin=6, n_outputs=4, differentiable=False)


def _hidden_gates(h, w, b):
    gh = h @ w.T
    return gh + b if b is not None else gh


@impl("gru_sequence")
def _gru_cpu(gx, w, b, h0, reverse):
    gx, h = _c(gx), _c(h0)
    t, n, _ = gx.shape
    hs = np.empty((t, n, h.shape[1]), dtype=gx.dtype)
    for s in _steps(t, reverse):
        K.gru_step(gx[s], _c(_hidden_gates(h, w, b)), h, hs[s])
        h = hs[s]
    return hs


@impl("gru_sequence_backward")
def _gru_backward_cpu(g_hs, gx, w, b, h0, hs, reverse):
    t, n, three_h = gx.shape
    hid = three_h // 3
    dt = gx.dtype
    hp = _prev_states(hs, h0, reverse)
    gh = _c(_hidden_gates(hp, w, b))
    gx = _c(gx)
    dgx = np.empty_like(gx)
    dgh = np.empty_like(gh)
    direct = np.empty((n, hid), dt)
    dh = np.zeros((n, hid), dt)
    for s in _steps(t, reverse)[::-1]:
        if g_hs is not None:
            dh = dh + g_hs[s]
        K.gru_step_backward(_c(dh), gx[s], gh[s], hp[s], dgx[s], dgh[s], direct)
        dh = direct + dgh[s] @ w
    flat = dgh.reshape(t * n, three_h)
    dw = flat.T @ hp.reshape(t * n, hid)
    db = flat.sum(0) if b is not None else np.zeros(three_h, dt)  # placeholder: no bias input
    return dgx, dw, db, dh.astype(dt, copy=False)


def gru_sequence(gx: Tensor, w_hh: Tensor, b_hh: Tensor | None, h0: Tensor, reverse: bool = False) -> Tensor:
    """All hidden states ``(T, N, H)`` of one GRU layer direction; ``gx = x @ W_ih^T + b_ih``."""
    return apply(GRU_SEQ, [gx, w_hh, b_hh, h0], {"reverse": bool(reverse)})


# -- Elman RNN (tanh / relu) ---------------------------------------------------------------------------------
def _rnn_vjp(c, g):
    if grad_mode.is_grad_enabled():
        return _replay_grads(c, (g,), "rnn")
    _, w, h0 = c.inputs
    return apply(RNN_BACKWARD, [g, w, h0, c.out], c.attrs)


RNN_SEQ = kernel_op("rnn_sequence", nin=3, saves="both", vjp=_rnn_vjp, node_name="RnnSequenceBackward0")
RNN_BACKWARD = kernel_op("rnn_sequence_backward", nin=4, n_outputs=3, differentiable=False)


@impl("rnn_sequence")
def _rnn_cpu(gx, w, h0, reverse, nonlinearity):
    t, n, hid = gx.shape
    hs = np.empty((t, n, hid), dtype=gx.dtype)
    h = h0
    wt = w.T
    for s in _steps(t, reverse):
        pre = gx[s] + h @ wt
        if nonlinearity == "tanh":
            np.tanh(pre, out=hs[s])
        else:
            np.maximum(pre, 0, out=hs[s])
        h = hs[s]
    return hs


@impl("rnn_sequence_backward")
def _rnn_backward_cpu(g_hs, w, h0, hs, reverse, nonlinearity):
    t, n, hid = hs.shape
    dt = hs.dtype
    hp = _prev_states(hs, h0, reverse)
    dpre = np.empty_like(hs)
    dh = np.zeros((n, hid), dt)
    for s in _steps(t, reverse)[::-1]:
        if g_hs is not None:
            dh = dh + g_hs[s]
        h = hs[s]
        dpre[s] = dh * (1 - h * h) if nonlinearity == "tanh" else dh * (h > 0)
        dh = dpre[s] @ w
    dw = dpre.reshape(t * n, hid).T @ hp.reshape(t * n, hid)
    return dpre, dw, dh.astype(dt, copy=False)


def rnn_sequence(gx: Tensor, w_hh: Tensor, h0: Tensor, reverse: bool = False, nonlinearity: str = "tanh"):
    """All hidden states of one Elman RNN layer direction; ``gx = x @ W_ih^T + b_ih + b_hh``."""
    return apply(RNN_SEQ, [gx, w_hh, h0], {"reverse": bool(reverse), "nonlinearity": nonlinearity})


# -- exact higher derivatives: replay with recorded ops ---------------------------------------------------------
def lstm_cell_math(gates: Tensor, c: Tensor):
    """(h, c) of an LSTM step from its gate pre-activations, written with jitorch ops."""
    hid = c.shape[-1]
    i = gates.narrow(-1, 0, hid).sigmoid()
    f = gates.narrow(-1, hid, hid).sigmoid()
    g = gates.narrow(-1, 2 * hid, hid).tanh()
    o = gates.narrow(-1, 3 * hid, hid).sigmoid()
    c = f * c + i * g
    return o * c.tanh(), c


def gru_cell_math(gx: Tensor, gh: Tensor, h: Tensor) -> Tensor:
    """The next GRU hidden state from input gates ``gx`` and hidden gates ``gh``, with jitorch ops."""
    hid = h.shape[-1]
    r = (gx.narrow(-1, 0, hid) + gh.narrow(-1, 0, hid)).sigmoid()
    z = (gx.narrow(-1, hid, hid) + gh.narrow(-1, hid, hid)).sigmoid()
    n = (gx.narrow(-1, 2 * hid, hid) + r * gh.narrow(-1, 2 * hid, hid)).tanh()
    return (1 - z) * n + z * h


def _replay_grads(c, grads, kind):
    """Gradients of a recurrence by differentiating a recorded re-run (keeps create_graph exact)."""
    import jitorch as J
    inputs = list(c.inputs)
    reverse = c.attrs["reverse"]
    gx, w = inputs[0], inputs[1]
    t = gx.shape[0]
    outs, gouts = [], []
    if kind == "lstm":
        h, cell = inputs[2], inputs[3]
    elif kind == "gru":
        h = inputs[3]
    else:
        h = inputs[2]
    g_hs = grads[0]
    for s in _steps(t, reverse):
        s = int(s)
        if kind == "lstm":
            h, cell = lstm_cell_math(gx.select(0, s) + h @ w.t(), cell)
        elif kind == "gru":
            gh = h @ w.t()
            if inputs[2] is not None:
                gh = gh + inputs[2]
            h = gru_cell_math(gx.select(0, s), gh, h)
        else:
            pre = gx.select(0, s) + h @ w.t()
            h = pre.tanh() if c.attrs["nonlinearity"] == "tanh" else pre.relu()
        if g_hs is not None:
            outs.append(h)
            gouts.append(g_hs.select(0, s))
    if kind == "lstm" and grads[1] is not None and t:
        outs.append(cell)
        gouts.append(grads[1])
    wanted = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad and
              c.needs_input_grad[i]]
    res = [None] * len(inputs)
    if outs and wanted:
        got = J.autograd.grad(outs, [inputs[i] for i in wanted], gouts, create_graph=True, allow_unused=True)
        for i, gi in zip(wanted, got):
            res[i] = gi
    return tuple(res)
