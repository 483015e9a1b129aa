"""The fused eager CPU primitives (``ops.eager_fast``) against torch: forward, gradients, double backward.

Each case runs the same function on jitorch and torch tensors built from the same float64 samples,
compares the outputs and every input's gradient, and asserts that jitorch took the fused primitive
(its ``grad_fn`` name), so the kernels under test really ran.
"""
from __future__ import annotations

import numpy as np
import pytest

import jitorch as J
from jitorch import nn as jnn

torch = pytest.importorskip("torch")

TOL = {"float32": {"rtol": 2e-4, "atol": 2e-5}, "float64": {"rtol": 1e-9, "atol": 1e-10}}
DTYPES = ("float32", "float64")


def _tensors(arrays, dtype, grads):
    out = []
    for lib in (J, torch):
        ts = []
        for a, g in zip(arrays, grads):
            if a is None:
                ts.append(None)
                continue
            t = lib.tensor(np.asarray(a, dtype=dtype))
            ts.append(t.requires_grad_(g) if g else t)
        out.append(ts)
    return out


def _compare(got, want, dtype, what):
    if want is None:
        assert got is None, what
        return
    assert got is not None, what
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), err_msg=what, **TOL[dtype])


def check(fn, arrays, dtype, grads=None, node=None, seed=0):
    """fn(lib, *tensors) -> tensor, on jitorch and torch; compares forward and gradients."""
    grads = grads if grads is not None else [a is not None for a in arrays]
    (js, ts) = _tensors(arrays, dtype, grads)
    yj, yt = fn(J, *js), fn(torch, *ts)
    if node is not None:
        assert yj.grad_fn is not None and yj.grad_fn.name() == node, yj.grad_fn
    _compare(yj, yt, dtype, "forward")
    g = np.random.default_rng(seed).standard_normal(tuple(yt.shape)).astype(dtype)
    yj.backward(J.tensor(g))
    yt.backward(torch.tensor(g))
    for k, (a, b) in enumerate(zip(js, ts)):
        if a is not None and a.requires_grad:
            _compare(a.grad, b.grad, dtype, f"grad of input {k}")
    return js, ts


def check_double(fn, arrays, grads=None):
    """Second derivatives (create_graph) in float64: d/dx of sum(first gradients ** 2)."""
    grads = grads if grads is not None else [a is not None for a in arrays]
    (js, ts) = _tensors(arrays, "float64", grads)
    res = []
    for lib, xs in ((J, js), (torch, ts)):
        y = fn(lib, *xs)
        wrt = [x for x in xs if x is not None and x.requires_grad]
        g1 = lib.autograd.grad((y * y * y).sum(), wrt, create_graph=True)
        res.append(lib.autograd.grad(sum((g * g).sum() for g in g1), wrt, allow_unused=True))
    for a, b in zip(*res):
        if b is None:
            assert a is None or not np.any(a.numpy())
            continue
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-8, atol=1e-9)


def rand(*shape, seed=0, scale=1.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


# -- linear ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape", [(5, 7), (2, 3, 7), (1, 7)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear(dtype, x_shape, bias):
    arrays = [rand(*x_shape), rand(4, 7, seed=1), rand(4, seed=2) if bias else None]
    node = "AddmmBackward0" if len(x_shape) == 2 else None
    check(lambda lib, x, w, b: lib.nn.functional.linear(x, w, b), arrays, dtype, node=node)


def test_linear_partial_grads_and_double_backward():
    arrays = [rand(6, 5), rand(3, 5, seed=1), rand(3, seed=2)]
    check(lambda lib, x, w, b: lib.nn.functional.linear(x, w, b), arrays, "float32", grads=[False, True, False])
    check_double(lambda lib, x, w, b: lib.nn.functional.linear(x, w, b), arrays)


def test_linear_noncontiguous_input():
    x = rand(7, 5)
    xj, xt = J.tensor(x).t(), torch.tensor(x).t()
    w = rand(3, 7, seed=1)
    np.testing.assert_allclose(J.nn.functional.linear(xj, J.tensor(w)).numpy(),
                               torch.nn.functional.linear(xt, torch.tensor(w)).numpy(), rtol=1e-12)


# -- relu (threshold_backward) ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_gradient_matches_torch_on_zero_nan_and_inf(dtype):
    x = np.array([-2.0, -0.0, 0.0, 1.5, np.nan, np.inf, -np.inf, 3.0])
    check(lambda lib, a: lib.relu(a) * 2, [x], dtype)


def test_relu_double_backward():
    check_double(lambda lib, a: lib.relu(a) * a, [rand(4, 5)])


# -- log_softmax ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,dim", [((6, 10), 1), ((6, 10), 0), ((3, 4, 5), 1), ((3, 4, 5), -1), ((7,), 0),
                                       ((2, 3, 4, 5), 2)])
def test_log_softmax(dtype, shape, dim):
    check(lambda lib, a: lib.log_softmax(a, dim), [rand(*shape, scale=3)], dtype, node="LogSoftmaxBackward0")


def test_log_softmax_extreme_rows_and_empty():
    x = np.array([[1.0, -np.inf, 2.0], [np.nan, 1.0, 0.0], [1e4, -1e4, 0.0], [-np.inf, -np.inf, -np.inf]])
    for dt in DTYPES:
        got = J.log_softmax(J.tensor(x.astype(dt)), 1).numpy()
        want = torch.log_softmax(torch.tensor(x.astype(dt)), 1).numpy()
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        ok = ~np.isnan(want)
        np.testing.assert_allclose(got[ok], want[ok], rtol=1e-6)
    assert tuple(J.log_softmax(J.zeros(2, 0, 3), 1).shape) == (2, 0, 3)


def test_log_softmax_double_backward_and_cross_entropy():
    check_double(lambda lib, a: lib.log_softmax(a, 1), [rand(4, 6)])
    y = np.array([1, 0, 3, 2])
    for dt in DTYPES:
        check(lambda lib, a: lib.nn.functional.cross_entropy(a, lib.tensor(y)), [rand(4, 5)], dt)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [-100, 2])
def test_nll_loss_reduced(reduction, weighted, ignore_index):
    y = np.array([0, 2, 4, 1, 2, 3])
    w = np.abs(rand(5, seed=3)) + 0.1 if weighted else None

    def fn(lib, a):
        wt = None if w is None else lib.tensor(w, dtype=a.dtype)
        return lib.nn.functional.nll_loss(lib.log_softmax(a, 1), lib.tensor(y), wt, ignore_index=ignore_index,
                                          reduction=reduction)

    for dt in DTYPES:
        check(fn, [rand(6, 5)], dt, node="NllLossBackward0")
    check_double(fn, [rand(6, 5)])


def test_nll_loss_reduced_errors_and_all_ignored():
    x = J.randn(3, 4, requires_grad=True)
    for bad in ([0, -5, 2], [0, 7, 2]):
        with pytest.raises(IndexError, match="out of bounds"):
            J.nn.functional.cross_entropy(x, J.tensor(bad))
    assert np.isnan(J.nn.functional.nll_loss(J.randn(2, 3), J.tensor([-100, -100])).item())


# -- batch norm (training mode) ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5), (4, 3, 5, 6), (2, 3, 2, 3, 2)])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_training_matches_torch(dtype, shape, affine):
    cls = {2: "BatchNorm1d", 3: "BatchNorm1d", 4: "BatchNorm2d", 5: "BatchNorm3d"}[len(shape)]
    c = shape[1]
    mods = {}
    for lib in (J, torch):
        m = getattr(lib.nn, cls)(c, affine=affine).to(getattr(lib, dtype))
        if affine:
            with lib.no_grad():
                m.weight.copy_(lib.tensor(np.linspace(0.5, 2.0, c).astype(dtype)))
                m.bias.copy_(lib.tensor(np.linspace(-1.0, 1.0, c).astype(dtype)))
        mods[lib] = m
    x = rand(*shape, scale=3) + 1
    for step in range(2):  # twice: the running statistics update on top of their first values
        check(lambda lib, a: mods[lib](a), [x + step], dtype, node="NativeBatchNormBackward0", seed=step)
    for name in ("running_mean", "running_var"):
        _compare(getattr(mods[J], name), getattr(mods[torch], name), dtype, name)
    assert int(mods[J].num_batches_tracked) == 2
    if affine:
        _compare(mods[J].weight.grad, mods[torch].weight.grad, dtype, "weight grad")
        _compare(mods[J].bias.grad, mods[torch].bias.grad, dtype, "bias grad")


def test_batch_norm_functional_variants_and_double_backward():
    x, w, b = rand(5, 3, 4), rand(3, seed=1), rand(3, seed=2)

    def fn(lib, a, wt, bs):
        return lib.nn.functional.batch_norm(a, None, None, wt, bs, True, 0.1, 1e-3)

    check(fn, [x, w, b], "float64", node="NativeBatchNormBackward0")
    check(fn, [x, w, b], "float32", grads=[True, False, True])
    check_double(fn, [x, w, b])


def test_batch_norm_momentum_none_and_eval_match_torch():
    x = rand(5, 3, 4, scale=2)
    outs = {}
    for lib in (J, torch):
        m = lib.nn.BatchNorm1d(3, momentum=None)
        for k in range(3):
            m(lib.tensor((x + k).astype(np.float32), requires_grad=True))
        m.eval()
        outs[lib] = (m(lib.tensor(x.astype(np.float32))), m.running_mean, m.running_var)
    for a, b in zip(outs[J], outs[torch]):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-5, atol=1e-6)


# -- convolution ------------------------------------------------------------------------------------------------
CONV_CASES = [
    # (x shape, w shape, padding, dilation, groups)
    ((2, 1, 9, 9), (3, 1, 3, 3), 1, 1, 1),
    ((2, 4, 7, 6), (6, 2, 3, 2), (0, 1), 1, 2),
    ((3, 3, 8, 8), (4, 3, 3, 3), 2, (2, 1), 1),
    ((2, 2, 5, 5), (2, 2, 5, 5), 2, 1, 1),
    ((1, 6, 6, 7), (6, 1, 3, 3), 1, 1, 6),
    ((2, 3, 6, 6), (4, 3, 1, 1), 0, 1, 1),
    ((2, 3, 7, 5), (2, 3, 2, 4), "same", 1, 1),  # asymmetric padding
    ((1, 1, 4, 4), (1, 1, 4, 4), 0, 1, 1),  # a 1x1 output
]


@pytest.fixture(params=["loops", "columns"])
def conv_strategy(request, monkeypatch):
    """Run a convolution test through the direct loops and through columns + BLAS."""
    from jitorch.ops import nn_ops
    monkeypatch.setattr(nn_ops, "DIRECT_LOOP_TAPS", 10 ** 6 if request.param == "loops" else 0)
    return request.param


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_direct(dtype, case, bias, conv_strategy):
    xs, ws, pad, dil, groups = case
    arrays = [rand(*xs), rand(*ws, seed=1), rand(ws[0], seed=2) if bias else None]
    check(lambda lib, x, w, b: lib.nn.functional.conv2d(x, w, b, 1, pad, dil, groups), arrays, dtype,
          node="ConvolutionBackward0")


def test_conv2d_direct_partial_grads_noncontiguous_and_conv1d(conv_strategy):
    arrays = [rand(2, 3, 6, 6), rand(4, 3, 3, 3, seed=1), rand(4, seed=2)]
    conv = lambda lib, x, w, b: lib.nn.functional.conv2d(x, w, b, padding=1)
    check(conv, arrays, "float32", grads=[False, True, True])
    check(conv, arrays, "float32", grads=[True, False, False])
    # a channels-last (non-contiguous) input
    x = rand(2, 6, 6, 3)
    got = J.nn.functional.conv2d(J.tensor(x).permute(0, 3, 1, 2), J.tensor(arrays[1]), padding=1)
    want = torch.nn.functional.conv2d(torch.tensor(x).permute(0, 3, 1, 2), torch.tensor(arrays[1]), padding=1)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-10)
    check(lambda lib, x, w: lib.nn.functional.conv1d(x, w, padding=2, dilation=2), [rand(2, 3, 11), rand(5, 3, 3)],
          "float64")


def test_conv2d_direct_double_backward_and_strided_fallback(conv_strategy):
    arrays = [rand(2, 2, 5, 5), rand(3, 2, 3, 3, seed=1), rand(3, seed=2)]
    check_double(lambda lib, x, w, b: lib.nn.functional.conv2d(x, w, b, padding=1), arrays)
    # stride 2 takes the im2col path: same results
    check(lambda lib, x, w, b: lib.nn.functional.conv2d(x, w, b, stride=2, padding=1), arrays, "float64")


def test_conv2d_large_enough_to_share_work_between_threads(conv_strategy):
    # big enough for the helper thread and the split GEMMs (runtime.parallel.MIN_WORK)
    arrays = [rand(8, 8, 24, 24), rand(8, 8, 3, 3, seed=1), rand(8, seed=2)]
    check(lambda lib, x, w, b: lib.nn.functional.conv2d(x, w, b, padding=1), arrays, "float32")


def test_conv2d_module_training_step_matches_torch(conv_strategy):
    x = rand(4, 1, 12, 12).astype(np.float32)
    mj, mt = jnn.Conv2d(1, 3, 5, padding=2), torch.nn.Conv2d(1, 3, 5, padding=2)
    mt.load_state_dict({k: torch.tensor(v.numpy()) for k, v in mj.state_dict().items()})
    for m, lib in ((mj, J), (mt, torch)):
        (m(lib.tensor(x)) ** 2).mean().backward()
    np.testing.assert_allclose(mj.weight.grad.numpy(), mt.weight.grad.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(mj.bias.grad.numpy(), mt.bias.grad.numpy(), rtol=1e-4, atol=1e-6)


# -- max pooling --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("args", [(2, 2, 0, 1, False), (3, 2, 1, 1, True), ((3, 2), (1, 2), (1, 0), (2, 1), False)])
def test_max_pool2d_training_path(dtype, args):
    k, s, p, d, ceil = args
    x = rand(2, 3, 9, 8)
    x[0, 0, 1, 1] = np.nan
    x[1, 2, 3:5, 3:5] = 7.0  # ties: the first maximum wins
    check(lambda lib, a: lib.nn.functional.max_pool2d(a, k, s, p, d, ceil), [x], dtype,
          node="MaxPool2DWithIndicesBackward0")
    ij = J.nn.functional.max_pool2d(J.tensor(x, requires_grad=True), k, s, p, d, ceil, True)[1]
    it = torch.nn.functional.max_pool2d(torch.tensor(x, requires_grad=True), k, s, p, d, ceil, True)[1]
    np.testing.assert_array_equal(ij.numpy(), it.numpy())


def test_max_pool2d_double_backward():
    check_double(lambda lib, a: lib.nn.functional.max_pool2d(a, 2) * 3, [rand(2, 2, 4, 6)])


# -- LSTM -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layers,bidir,batch_first,with_state", [(1, False, True, False), (2, True, False, True),
                                                                 (1, True, True, True)])
def test_lstm_training_path(dtype, layers, bidir, batch_first, with_state):
    mj = jnn.LSTM(5, 7, num_layers=layers, bidirectional=bidir, batch_first=batch_first).to(getattr(J, dtype))
    mt = torch.nn.LSTM(5, 7, num_layers=layers, bidirectional=bidir, batch_first=batch_first).to(
        getattr(torch, dtype))
    mt.load_state_dict({k: torch.tensor(v.detach().numpy()) for k, v in mj.state_dict().items()})
    d = 2 if bidir else 1
    arrays = [rand(3, 4, 5), rand(layers * d, 3 if batch_first else 4, 7, seed=1),
              rand(layers * d, 3 if batch_first else 4, 7, seed=2)]
    mods = {J: mj, torch: mt}

    def fn(lib, x, h, c):
        out, (hn, cn) = mods[lib](x, (h, c)) if with_state else mods[lib](x)
        return out.sum(-1) + (hn * cn).sum() + cn.sum()

    check(fn, arrays, dtype, grads=[True, with_state, with_state])
    for (name, pj), pt in zip(mj.named_parameters(), mt.parameters()):
        _compare(pj.grad, pt.grad, dtype, name)


def test_lstm_workspace_path_is_taken_and_double_backward():
    m = jnn.LSTM(3, 4)
    out, _ = m(J.randn(5, 2, 3))
    assert out.grad_fn.name() == "LstmSequenceBackward0"
    mj, mt = jnn.LSTM(4, 3).double(), torch.nn.LSTM(4, 3).double()
    mt.load_state_dict({k: torch.tensor(v.detach().numpy()) for k, v in mj.state_dict().items()})
    mods = {J: mj, torch: mt}
    check_double(lambda lib, x: mods[lib](x)[0], [rand(2, 3, 4)])


def test_lstm_gradient_of_last_cell_only():
    mj, mt = jnn.LSTM(3, 4), torch.nn.LSTM(3, 4)
    mt.load_state_dict({k: torch.tensor(v.detach().numpy()) for k, v in mj.state_dict().items()})
    mods = {J: mj, torch: mt}
    check(lambda lib, x: mods[lib](x)[1][1] * 2, [rand(6, 2, 3)], "float32")


def test_lstm_training_path_without_blas_in_numba(monkeypatch):
    # the Python time loop the ops fall back to when NumPy's BLAS exports no cblas gemm
    from jitorch.runtime import nb_blas
    monkeypatch.setattr(nb_blas, "AVAILABLE", False)
    mj, mt = jnn.LSTM(4, 6, batch_first=True), torch.nn.LSTM(4, 6, batch_first=True)
    mt.load_state_dict({k: torch.tensor(v.detach().numpy()) for k, v in mj.state_dict().items()})
    mods = {J: mj, torch: mt}
    check(lambda lib, x: mods[lib](x)[0].sum(-1), [rand(5, 7, 4)], "float32")
    for pj, pt in zip(mj.parameters(), mt.parameters()):
        _compare(pj.grad, pt.grad, "float32", "parameter grad")


# -- the helper thread ----------------------------------------------------------------------------------------
def test_run_chunks_runs_every_chunk_once_and_reraises():
    from jitorch.runtime import parallel
    seen = []
    parallel.run_chunks(seen.append, 7, work=1 << 30)
    assert sorted(seen) == list(range(7))

    def nested(k):
        inner = []
        parallel.run_chunks(inner.append, 3, work=1 << 30)  # from inside a chunk: runs serially
        assert sorted(inner) == [0, 1, 2]

    parallel.run_chunks(nested, 4, work=1 << 30)

    def failing(k):
        if k == 2:
            raise ValueError("chunk 2")

    with pytest.raises(ValueError, match="chunk 2"):
        parallel.run_chunks(failing, 5, work=1 << 30)
    assert parallel.split(10, 4) == [(0, 3), (3, 6), (6, 8), (8, 10)]
    assert parallel.split(1, 4) == [(0, 1)]


def test_empty_batches_and_channels_match_torch():
    cases = [
        (lambda lib, x, w: lib.nn.functional.conv2d(x, w, padding=1), [rand(0, 2, 5, 5), rand(3, 2, 3, 3, seed=1)]),
        (lambda lib, x, w: lib.nn.functional.linear(x, w), [rand(0, 5), rand(3, 5, seed=1)]),
        (lambda lib, x: lib.nn.functional.batch_norm(x, None, None, training=True), [rand(3, 0, 4)]),
    ]
    for fn, arrays in cases:
        check(fn, arrays, "float32")
    m = jnn.LSTM(3, 4)
    for shape in [(5, 0, 3), (0, 2, 3)]:
        x = J.randn(*shape, requires_grad=True)
        out, (_, c) = m(x)
        (out.sum() + c.sum()).backward()
        assert tuple(out.shape) == shape[:2] + (4,) and tuple(x.grad.shape) == shape
