"""RNN / LSTM / GRU and their cells against torch with identical weights: outputs, final states and
the gradients of inputs, initial states and every parameter; gradchecks of the recurrence primitives."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from _nn_ext_helpers import assert_close, assert_param_grads, copy_state, to_j, to_np

import jitorch
import jitorch.nn as jnn
from jitorch.ops import rnn_ops as R

torch = pytest.importorskip("torch")


def _rand(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _cot(shape, seed):
    return _rand(*shape, seed=seed)


def _run_pair(tm, jm, x, hx=None, lstm=False, tol=(1e-4, 1e-5)):
    """Forward + backward of a weighted sum of every output in both libraries, then compare all."""
    tx, jx = x.clone().requires_grad_(), to_j(x, True)
    if hx is None:
        t_hx = j_hx = None
    elif lstm:
        t_hx = tuple(h.clone().requires_grad_() for h in hx)
        j_hx = tuple(to_j(h, True) for h in hx)
    else:
        t_hx, j_hx = hx.clone().requires_grad_(), to_j(hx, True)
    t_out, t_state = tm(tx, t_hx)
    j_out, j_state = jm(jx, j_hx)
    t_states = t_state if lstm else (t_state,)
    j_states = j_state if lstm else (j_state,)
    assert_close(j_out, t_out, *tol, "output")
    for k, (js, ts) in enumerate(zip(j_states, t_states)):
        assert_close(js, ts, *tol, f"state {k}")
    cots = [_cot(tuple(t.shape), 10 + k) for k, t in enumerate((t_out,) + tuple(t_states))]
    t_loss = sum((t * c).sum() for t, c in zip((t_out,) + tuple(t_states), cots))
    j_loss = sum((j * to_j(c)).sum() for j, c in zip((j_out,) + tuple(j_states), cots))
    t_loss.backward()
    j_loss.backward()
    assert_close(jx.grad, tx.grad, *tol, "grad input")
    if hx is not None:
        for k, (jh, th) in enumerate(zip(j_hx if lstm else (j_hx,), t_hx if lstm else (t_hx,))):
            assert_close(jh.grad, th.grad, *tol, f"grad of initial state {k}")
    assert_param_grads(tm, jm, *tol)


GRID = list(itertools.product(["LSTM", "GRU", "RNN"], [1, 2], [True, False], [False, True], [False, True]))


@pytest.mark.parametrize("kind,layers,bias,batch_first,bidirectional", GRID)
def test_recurrent_layers_match_torch(kind, layers, bias, batch_first, bidirectional):
    kw = {"num_layers": layers, "bias": bias, "batch_first": batch_first, "bidirectional": bidirectional}
    tm, jm = getattr(torch.nn, kind)(5, 6, **kw), getattr(jnn, kind)(5, 6, **kw)
    assert [n for n, _ in jm.named_parameters()] == [n for n, _ in tm.named_parameters()]
    copy_state(tm, jm)
    t_len, batch = 4, 3
    x = _rand(batch, t_len, 5) if batch_first else _rand(t_len, batch, 5)
    h_shape = (layers * (2 if bidirectional else 1), batch, 6)
    hx = (_rand(*h_shape, seed=1), _rand(*h_shape, seed=2)) if kind == "LSTM" else _rand(*h_shape, seed=1)
    with_state = (layers + bidirectional) % 2 == 0  # half the grid also runs without initial state
    _run_pair(tm, jm, x, hx if with_state else None, lstm=kind == "LSTM")


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_unbatched_input_and_float64(kind):
    tm = getattr(torch.nn, kind)(3, 4, num_layers=2, bidirectional=True).double()
    jm = getattr(jnn, kind)(3, 4, num_layers=2, bidirectional=True, dtype=jitorch.float64)
    copy_state(tm, jm)
    x = _rand(5, 3, dtype=torch.float64)
    hx = _rand(4, 4, seed=1, dtype=torch.float64)
    _run_pair(tm, jm, x, (hx, hx * 0.5) if kind == "LSTM" else hx, lstm=kind == "LSTM", tol=(1e-10, 1e-12))


def test_rnn_relu_and_state_dict_roundtrip():
    tm = torch.nn.RNN(4, 5, num_layers=2, nonlinearity="relu")
    jm = jnn.RNN(4, 5, num_layers=2, nonlinearity="relu")
    assert repr(jm) == repr(tm)
    copy_state(tm, jm)
    _run_pair(tm, jm, _rand(6, 2, 4), None)
    # jitorch -> torch direction of the state dict
    jm2 = jnn.RNN(4, 5, num_layers=2, nonlinearity="relu")
    tm2 = torch.nn.RNN(4, 5, num_layers=2, nonlinearity="relu")
    tm2.load_state_dict({k: torch.from_numpy(to_np(v).copy()) for k, v in jm2.state_dict().items()})
    x = _rand(3, 2, 4)
    assert_close(jm2(to_j(x))[0], tm2(x)[0])


def test_parameter_shapes_and_init_range():
    m = jnn.LSTM(7, 5, num_layers=2, bidirectional=True)
    t = torch.nn.LSTM(7, 5, num_layers=2, bidirectional=True)
    assert [(n, tuple(p.shape)) for n, p in m.named_parameters()] == \
        [(n, tuple(p.shape)) for n, p in t.named_parameters()]
    assert max(float(p.abs().amax()) for p in m.parameters()) <= 1 / np.sqrt(5)
    assert len(m.all_weights) == 4 and len(m._flat_weights) == 16
    m.flatten_parameters()


@pytest.mark.parametrize("kind", ["LSTMCell", "GRUCell", "RNNCell"])
@pytest.mark.parametrize("batched", [True, False])
def test_cells_match_torch(kind, batched):
    kw = {"nonlinearity": "relu"} if kind == "RNNCell" else {}
    tm, jm = getattr(torch.nn, kind)(4, 3, **kw), getattr(jnn, kind)(4, 3, **kw)
    assert repr(jm) == repr(tm)
    copy_state(tm, jm)
    shape = (2, 4) if batched else (4,)
    x = _rand(*shape)
    h = _rand(*((2, 3) if batched else (3,)), seed=1)
    tx, jx = x.clone().requires_grad_(), to_j(x, True)
    th, jh = h.clone().requires_grad_(), to_j(h, True)
    if kind == "LSTMCell":
        tc, jc = (h * 0.3).requires_grad_(), to_j(h * 0.3, True)
        t_out, j_out = tm(tx, (th, tc)), jm(jx, (jh, jc))
        t_loss = (t_out[0] * 2).sum() + (t_out[1] ** 2).sum()
        j_loss = (j_out[0] * 2).sum() + (j_out[1] ** 2).sum()
        for a, b in zip(j_out, t_out):
            assert_close(a, b)
    else:
        t_out, j_out = tm(tx, th), jm(jx, jh)
        assert_close(j_out, t_out)
        t_loss, j_loss = (t_out ** 2).sum(), (j_out ** 2).sum()
    t_loss.backward()
    j_loss.backward()
    assert_close(jx.grad, tx.grad)
    assert_close(jh.grad, th.grad)
    assert_param_grads(tm, jm)
    # no initial state: zeros
    out = jm(to_j(x))
    ref = tm(x)
    assert_close(out[0] if kind == "LSTMCell" else out, ref[0] if kind == "LSTMCell" else ref)


def test_dropout_between_layers():
    m = jnn.GRU(4, 8, num_layers=2, dropout=0.5)
    x = to_j(_rand(5, 3, 4))
    m.eval()
    a, b = m(x)[0], m(x)[0]
    assert_close(a, b)  # no dropout in eval mode
    m.train()
    jitorch.manual_seed(0)
    c = m(x)[0]
    jitorch.manual_seed(1)
    d = m(x)[0]
    assert not np.allclose(to_np(c), to_np(d))
    with pytest.warns(UserWarning, match="dropout option adds dropout after all but last recurrent layer"):
        jnn.LSTM(3, 3, dropout=0.2)


def test_lstm_step_count_is_small():
    """Each layer-direction is one recurrence node: the graph does not grow per timestep."""
    m = jnn.LSTM(3, 4)
    out, _ = m(to_j(_rand(50, 2, 3), True))
    seen, stack = set(), [out.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        stack.extend(nf[0] for nf in node.next_functions if nf is not None)
    assert len(seen) < 20


# -- primitives: finite differences and double backward ------------------------------------------------------------
def _d(*shape, seed=0, scale=1.0):
    a = np.random.default_rng(seed).standard_normal(shape) * scale
    return jitorch.from_numpy(a).requires_grad_()


@pytest.mark.parametrize("reverse", [False, True])
def test_gradcheck_lstm_sequence(reverse):
    gx, w, h0, c0 = _d(3, 2, 8), _d(8, 2, seed=1, scale=0.5), _d(2, 2, seed=2), _d(2, 2, seed=3)

    def fn(gx, w, h0, c0):
        hs, cn = R.lstm_sequence(gx, w, h0, c0, reverse)
        return hs, cn
    assert jitorch.autograd.gradcheck(fn, (gx, w, h0, c0))


@pytest.mark.parametrize("reverse", [False, True])
def test_gradcheck_gru_sequence(reverse):
    gx, w, b, h0 = _d(3, 2, 6), _d(6, 2, seed=1, scale=0.5), _d(6, seed=2), _d(2, 2, seed=3)
    assert jitorch.autograd.gradcheck(lambda *a: R.gru_sequence(*a, reverse), (gx, w, b, h0))


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_gradcheck_rnn_sequence(act):
    gx, w, h0 = _d(3, 2, 3), _d(3, 3, seed=1, scale=0.5), _d(2, 3, seed=2)
    assert jitorch.autograd.gradcheck(lambda *a: R.rnn_sequence(*a, True, act), (gx, w, h0))


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_gradgradcheck_sequences(kind):
    if kind == "lstm":
        args = (_d(2, 1, 4), _d(4, 1, seed=1, scale=0.5), _d(1, 1, seed=2), _d(1, 1, seed=3))
        fn = lambda *a: R.lstm_sequence(*a)[0]
    elif kind == "gru":
        args = (_d(2, 1, 3), _d(3, 1, seed=1, scale=0.5), _d(3, seed=2), _d(1, 1, seed=3))
        fn = R.gru_sequence
    else:
        args = (_d(2, 1, 2), _d(2, 2, seed=1, scale=0.5), _d(1, 2, seed=2))
        fn = R.rnn_sequence
    assert jitorch.autograd.gradgradcheck(fn, args)


def test_double_backward_lstm_matches_torch():
    tm, jm = torch.nn.LSTM(2, 3).double(), jnn.LSTM(2, 3, dtype=jitorch.float64)
    copy_state(tm, jm)
    x = _rand(4, 2, 2, dtype=torch.float64)
    grads = []
    for lib, m, xx in ((torch, tm, x.clone().requires_grad_()), (jitorch, jm, to_j(x, True))):
        out, _ = m(xx)
        g, = lib.autograd.grad((out ** 2).sum(), [xx], create_graph=True)
        (g ** 2).sum().backward()
        grads.append((xx.grad, m.weight_hh_l0.grad))
    for a, b in zip(grads[1], grads[0]):
        assert_close(a, b, 1e-8, 1e-10)


# -- errors ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_errors_match_torch(kind):
    for lib in (torch, jitorch):
        nn = torch.nn if lib is torch else jnn
        m = getattr(nn, kind)(4, 3, num_layers=2)
        with pytest.raises(RuntimeError, match="input.size\\(-1\\) must be equal to input_size. Expected 4, got 5"):
            m(lib.zeros(2, 1, 5))
        with pytest.raises(ValueError, match=f"{kind}: Expected input to be 2D or 3D, got 4D"):
            m(lib.zeros(2, 1, 1, 4))
        bad = lib.zeros(1, 1, 3)
        if kind == "LSTM":
            with pytest.raises(RuntimeError, match=r"Expected hidden\[0\] size \(2, 1, 3\), got \[1, 1, 3\]"):
                m(lib.zeros(2, 1, 4), (bad, lib.zeros(2, 1, 3)))
        else:
            with pytest.raises(RuntimeError, match=r"Expected hidden size \(2, 1, 3\), got \[1, 1, 3\]"):
                m(lib.zeros(2, 1, 4), bad)
    with pytest.raises(ValueError, match="hidden_size must be greater than zero"):
        jnn.GRU(3, 0)
    with pytest.raises(ValueError, match="Unknown nonlinearity 'gelu'"):
        jnn.RNN(3, 4, nonlinearity="gelu")
    with pytest.raises(ValueError, match="dropout should be a number in range"):
        jnn.LSTM(3, 4, dropout=2.0)
