"""Recurrences (``lstm_sequence``, ``gru_sequence``, ``rnn_sequence``) -> ONNX LSTM / GRU / RNN.

A jitorch recurrence primitive receives ``gx``, the input projection of every
timestep already computed (``x @ W_ih^T + b``, a matmul earlier in the
graph), and runs only the time loop.  ONNX's recurrent ops want the raw input
and ``W_ih``.  When ``gx`` visibly is ``(x.reshape(-1, I) @ W.t() + b).reshape(T, N, G)``
(what ``nn.LSTM``/``nn.GRU``/``nn.RNN`` record), the op gets ``x``, ``W`` and ``b``
themselves and the projection nodes are pruned.  Otherwise it gets ``gx`` as
its input and a permutation matrix as ``W``, which is still exact.  Either way
the gates are reordered from torch's layout to ONNX's:

    LSTM  torch [i, f, g, o]  ->  ONNX [i, o, f, c]
    GRU   torch [r, z, n]     ->  ONNX [z, r, h]   (linear_before_reset=1 is torch's formula)
"""
from __future__ import annotations

import numpy as np

from ...compiler.ir import Value
from ..builder import np_dtype
from . import lowers

_LSTM_ORDER = (0, 3, 1, 2)  # ONNX gate k is torch gate _LSTM_ORDER[k]
_GRU_ORDER = (1, 0, 2)


def _rows(hidden: int, order) -> np.ndarray:
    return np.concatenate([np.arange(g * hidden, (g + 1) * hidden) for g in order]).astype(np.int64)


def _selector(rows: np.ndarray, dtype) -> np.ndarray:
    """(1, G, G) matrix W with ``gx @ W[0]^T == gx[..., rows]``."""
    w = np.zeros((1, len(rows), len(rows)), dtype=np_dtype(dtype))
    w[0, np.arange(len(rows)), rows] = 1
    return w


def _reordered(ctx, v: Value, rows: np.ndarray) -> str:
    """``v[rows]`` with a leading num_directions axis of 1."""
    return ctx.b.unsqueeze(ctx.b.op("Gather", [ctx.name(v), ctx.b.const(rows)], axis=0), [0])


def _made_by(v, name: str):
    p = v.producer if isinstance(v, Value) else None
    return p if p is not None and p.name == name else None


def _projection(ctx, gx: Value):
    """(x, W_ih, b or None) when ``gx`` is ``(x.reshape(-1, I) @ W_ih.t() [+ b]).reshape(T, N, G)``."""
    out = _made_by(gx, "reshape")
    if out is None:
        return None
    flat, bias = out.inputs[0], None
    add = _made_by(flat, "add")
    if add is not None:
        flat, bias = add.inputs
        if not isinstance(bias, Value) or tuple(bias.shape) != (gx.shape[-1],):
            return None
    mm = _made_by(flat, "matmul")
    if mm is None:
        return None
    rows, wt = mm.inputs
    tr = _made_by(wt, "permute")
    flatten = _made_by(rows, "reshape")
    if tr is None or tuple(tr.attrs["dims"]) != (1, 0) or flatten is None:
        return None
    x, w = flatten.inputs[0], tr.inputs[0]
    xs, gs = ctx.shape(x), ctx.shape(gx)
    if len(xs) != 3 or xs[:2] != gs[:2] or x.dtype is not gx.dtype or len(w.shape) != 2 or xs[2] != w.shape[1]:
        return None
    return x, w, bias


def _inputs_and_weights(ctx, gx: Value, rows: np.ndarray):
    """(X, W, input-side bias or None) for an ONNX recurrent op, gates in ONNX order."""
    found = _projection(ctx, gx)
    if found is None:
        return ctx.name(gx), ctx.b.const(_selector(rows, gx.dtype)), None
    x, w, bias = found
    return ctx.name(x), _reordered(ctx, w, rows), None if bias is None else _reordered(ctx, bias, rows)


def _bias(ctx, w_bias, r_bias, size: int, dtype):
    """ONNX's B = [input-side biases, hidden-side biases] (None when both are absent)."""
    if w_bias is None and r_bias is None:
        return None
    zeros = ctx.b.const(np.zeros((1, size), np_dtype(dtype)))
    return ctx.b.op("Concat", [w_bias or zeros, r_bias or zeros], axis=1)


def _is_zero(ctx, v: Value) -> bool:
    if v.kind != "const":
        return False
    fill = ctx.table.constant_fill(v)
    if fill is not None:
        return fill == 0
    data = np.asarray(v.const._data)
    return bool(data.size) and not np.any(data) and not ctx.table.constant_varies(v)


def _initial(ctx, v: Value):
    """The initial state as (1, N, H), or None (ONNX's default of zeros) for a zero constant."""
    return None if _is_zero(ctx, v) else ctx.b.unsqueeze(ctx.name(v), [0])


def _direction(node) -> str:
    return "reverse" if node.attrs["reverse"] else "forward"


@lowers("lstm_sequence")
def lower_lstm(ctx, node):
    gx, w_hh, h0, c0 = node.inputs
    hidden = w_hh.shape[1]
    rows = _rows(hidden, _LSTM_ORDER)
    x, w, w_bias = _inputs_and_weights(ctx, gx, rows)
    y, _, c_last = ctx.b.op(
        "LSTM", [x, w, _reordered(ctx, w_hh, rows), _bias(ctx, w_bias, None, 4 * hidden, gx.dtype), None,
                 _initial(ctx, h0), _initial(ctx, c0)],
        n_out=3, hidden_size=hidden, direction=_direction(node))
    return [ctx.b.squeeze(y, [1]), ctx.b.squeeze(c_last, [0])]


@lowers("gru_sequence")
def lower_gru(ctx, node):
    gx, w_hh, b_hh, h0 = node.inputs
    hidden = w_hh.shape[1]
    rows = _rows(hidden, _GRU_ORDER)
    x, w, w_bias = _inputs_and_weights(ctx, gx, rows)
    r_bias = _reordered(ctx, b_hh, rows) if b_hh is not None else None
    y, _ = ctx.b.op(
        "GRU", [x, w, _reordered(ctx, w_hh, rows), _bias(ctx, w_bias, r_bias, 3 * hidden, gx.dtype), None,
                _initial(ctx, h0)],
        n_out=2, hidden_size=hidden, direction=_direction(node), linear_before_reset=1)
    return ctx.b.squeeze(y, [1])


@lowers("rnn_sequence")
def lower_rnn(ctx, node):
    gx, w_hh, h0 = node.inputs
    hidden = w_hh.shape[1]
    rows = np.arange(hidden, dtype=np.int64)
    x, w, w_bias = _inputs_and_weights(ctx, gx, rows)
    act = "Tanh" if node.attrs["nonlinearity"] == "tanh" else "Relu"
    y, _ = ctx.b.op(
        "RNN", [x, w, ctx.b.unsqueeze(ctx.name(w_hh), [0]), _bias(ctx, w_bias, None, hidden, gx.dtype), None,
                _initial(ctx, h0)],
        n_out=2, hidden_size=hidden, direction=_direction(node), activations=[act])
    return ctx.b.squeeze(y, [1])
