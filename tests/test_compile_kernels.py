"""Generated CPU kernels and the graph rewrites before them: compiled == eager, and the structure
(kernel counts, what the passes leave in the graph, what the source says) is what the speed needs."""
import numpy as np
import pytest

import jitorch as J
from jitorch.compiler.passes import run_pipeline

F = J.nn.functional


def _close(a, b, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=rtol, atol=atol)


def _entry(cf):
    cf = getattr(cf, "_compiled", cf)
    return next(iter(cf.entries.values()))


def _sources(ex) -> list:
    return [k.source for k in ex.kernels]


def _run_twice(cf, *args):
    cf(*args)  # the capture call runs eagerly
    return cf(*args)


# -- row kernels ---------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(7, 33), (3, 5, 130), (2048, 1024)])
def test_layer_norm_softmax_is_one_float32_kernel(shape):
    x = J.randn(*shape)
    w, b = J.randn(shape[-1]), J.randn(shape[-1])

    def fn(x, w, b):
        return F.softmax(F.layer_norm(x, (shape[-1],), w, b), dim=-1)

    cf = J.compile(fn)
    _close(_run_twice(cf, x, w, b), fn(x, w, b), rtol=1e-4, atol=1e-6)
    ex = _entry(cf).forward
    assert ex.n_kernels == 1
    src = _sources(ex)[0]
    assert "fmaximum(" in src  # the row max vectorizes through llvm.maximum
    assert "np.float32((np.float32(1) / math.sqrt(" in src  # rsqrt stays float32 (its template mixes in a float64 NaN)


def test_row_max_propagates_nan_and_handles_infinities():
    x = J.randn(6, 40)
    x[1, 3] = float("nan")
    x[2, :] = float("-inf")
    x[3, 5] = float("inf")

    def fn(t):
        return t.amax(-1), t.amin(-1), (t * 2).amax(-1, keepdim=True) + 1

    cf = J.compile(fn)
    for got, want in zip(_run_twice(cf, x), fn(x)):
        np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_row_kernel_on_a_non_contiguous_input():
    base = J.randn(40, 24)
    x = base.t()  # (24, 40), strided

    def fn(t):
        return F.softmax(t * 3, dim=-1)

    cf = J.compile(fn)
    _close(_run_twice(cf, x), fn(x), rtol=1e-5)


def test_softmax_over_many_rows_runs_parallel_with_per_chunk_scratch():
    x = J.randn(1100, 1000)  # above the parallel threshold, rows not a multiple of the chunk count
    cf = J.compile(lambda t: F.softmax(t, dim=-1))
    _close(_run_twice(cf, x), F.softmax(x, dim=-1), rtol=1e-5)
    src = _sources(_entry(cf).forward)[0]
    assert "prange(n_chunks)" in src and "np.empty(K" in src


def test_per_row_operand_in_an_elementwise_group_is_read_per_row():
    x, s = J.randn(3, 7, 20), J.randn(3, 7, 1)
    fn = lambda a, b: (a - b) * b + 1
    cf = J.compile(fn)
    _close(_run_twice(cf, x, s), fn(x, s))
    src = _sources(_entry(cf).forward)[0]
    assert "in1[r]" in src


# -- column (leading-dim) reductions -------------------------------------------------------------

@pytest.mark.parametrize("shape", [(64, 10), (5, 3, 17), (3000, 400)])
def test_column_sum_fuses_with_its_producer_and_stores_the_full_value(shape):
    g, m = J.randn(*shape), J.randn(*shape)
    lead = tuple(range(len(shape) - 1))

    def fn(g, m):
        h = g * (m > 0).float()
        return h, h.sum(lead), (h * m).amax(lead)

    cf = J.compile(fn)
    got, want = _run_twice(cf, g, m), fn(g, m)
    _close(got[0], want[0])
    _close(got[1], want[1], rtol=1e-4, atol=1e-5)
    _close(got[2], want[2])
    ex = _entry(cf).forward
    assert ex.n_kernels == 1
    assert got[1]._data.base is None  # written by the kernel in its own shape: no view to copy


def test_column_sum_with_broadcast_operands():
    x, bias, rowscale = J.randn(9, 4, 6), J.randn(6), J.randn(9, 1, 1)

    def fn(x, b, s):
        y = (x + b) * s
        return y.sum((0, 1)), y

    cf = J.compile(fn)
    for got, want in zip(_run_twice(cf, x, bias, rowscale), fn(x, bias, rowscale)):
        _close(got, want, rtol=1e-5, atol=1e-5)


def test_mean_over_leading_dims_of_a_strided_input():
    x = J.randn(12, 30).t()  # (30, 12), strided
    fn = lambda t: (t * t).mean(0)
    cf = J.compile(fn)
    _close(_run_twice(cf, x), fn(x), rtol=1e-5)


# -- graph rewrites ------------------------------------------------------------------------------

def _train_step_grads(model, x, compiled):
    m = J.compile(model) if compiled else model
    for p in model.parameters():
        p.grad = None
    for _ in range(2):  # the first compiled call captures, the second runs the graphs
        for p in model.parameters():
            p.grad = None
        m(x).square().mean().backward()
    return [p.grad.clone() for p in model.parameters()]


def test_mlp_weight_gradients_come_out_contiguous_and_equal_eager():
    J.manual_seed(0)
    model = J.nn.Sequential(J.nn.Linear(13, 32), J.nn.ReLU(), J.nn.Linear(32, 5))
    x = J.randn(7, 13)
    want = _train_step_grads(model, x, compiled=False)
    got = _train_step_grads(model, x, compiled=True)
    for g, w in zip(got, want):
        _close(g, w, rtol=1e-4, atol=1e-6)
    cm = J.compile(model)
    cm(x).square().mean().backward()
    cm(x).square().mean().backward()
    graph = _entry(cm).backward.graph
    # no weight gradient is a transposed view of a product: each is a product of its own
    for out in graph.outputs:
        assert out.producer is None or out.producer.name != "permute"


def test_transformer_layer_gradients_match_eager_and_qkv_grad_is_one_cat():
    J.manual_seed(0)
    layer = J.nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=48, dropout=0.0,
                                         batch_first=True)
    x = J.randn(3, 5, 32)
    want = _train_step_grads(layer, x, compiled=False)
    got = _train_step_grads(layer, x, compiled=True)
    for g, w in zip(got, want):
        _close(g, w, rtol=1e-4, atol=1e-5)
    cl = J.compile(layer)
    cl(x).square().mean().backward()
    cl(x).square().mean().backward()
    names = [n.name for n in _entry(cl).backward.graph.nodes]
    assert "slice_backward" not in names and names.count("cat") == 1


def _graph_of(fn, *args):
    cf = J.compile(fn)
    cf(*args)
    return _entry(cf).forward.graph


def test_expand_before_an_elementwise_op_is_dropped():
    x, s = J.randn(4, 6), J.randn(4, 1)
    fn = lambda a, b: a * b.expand(4, 6)
    graph = _graph_of(fn, x, s)
    assert all(n.name != "expand" for n in graph.nodes)
    cf = J.compile(fn)
    _close(_run_twice(cf, x, s), fn(x, s))


def test_keepdim_sum_then_reshape_becomes_one_reduction():
    x = J.randn(8, 5)
    fn = lambda t: (t * 2).sum(0, keepdim=True).reshape(5)
    graph = _graph_of(fn, x)
    assert [n.name for n in graph.nodes] == ["mul", "sum"]
    cf = J.compile(fn)
    _close(_run_twice(cf, x), fn(x), rtol=1e-5)


def test_permute_of_permute_is_one_permute():
    x = J.randn(2, 3, 4)
    fn = lambda t: t.permute(1, 0, 2).permute(2, 1, 0) * 2
    graph = _graph_of(fn, x)
    perms = [n for n in graph.nodes if n.name == "permute"]
    assert len(perms) == 1 and tuple(perms[0].attrs["dims"]) == (2, 0, 1)
    cf = J.compile(fn)
    _close(_run_twice(cf, x), fn(x))


def test_partial_slice_gradients_are_not_turned_into_a_cat():
    # the pieces leave a gap: the sum of scattered pieces must stay (the gap is zeros)
    w = J.randn(4, 9, requires_grad=True)

    def fn(w):
        return (w[:, 0:3] * 2).sum() + (w[:, 5:9] * 3).sum()

    cf = J.compile(fn)
    for _ in range(2):
        w.grad = None
        cf(w).backward()
    got = w.grad.clone()
    w.grad = None
    fn(w).backward()
    _close(got, w.grad)


def test_pipeline_keeps_values_the_caller_sees():
    x, y = J.randn(3, 4), J.randn(4, 5)

    def fn(a, b):
        p = a @ b
        return p, p.t()  # the product itself is an output: it must not be rewritten away

    cf = J.compile(fn)
    for got, want in zip(_run_twice(cf, x, y), fn(x, y)):
        _close(got, want, rtol=1e-5)
    graph = run_pipeline(_entry(cf).forward.graph)
    assert [n.name for n in graph.nodes].count("matmul") == 1


def test_row_shaped_value_in_a_full_op_broadcasts_along_columns():
    # s has the row shape (1, 5); against (1, 5, 5) NumPy aligns it with the last dims
    x = J.randn(1, 5, 5)

    def fn(t):
        s = t.sum(-1)
        return t - s, (t * 2).softmax(-1) + s

    cf = J.compile(fn)
    for got, want in zip(_run_twice(cf, x), fn(x)):
        _close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not J.cuda.is_available(), reason="numba.cuda (or its simulator) is missing")
def test_cuda_groups_with_per_row_values_and_siblings_match_cpu():
    # the schedule is shared with the CUDA code generator: the groups the CPU now forms
    # (per-row values next to full-size ones, siblings reading one input) must render there too
    x, s = J.randn(2, 3, 8), J.randn(2, 3, 1).abs() + 0.5

    def fn(a, b):
        c = b * b  # per row
        d = a / b  # full size
        return (a * c - d).softmax(-1) * 2, a * 3

    cf = J.compile(fn)
    xc, sc = x.to("cuda"), s.to("cuda")
    for got, want in zip(_run_twice(cf, xc, sc), fn(x, s)):
        np.testing.assert_allclose(got.cpu().numpy(), want.numpy(), rtol=1e-5, atol=1e-6)


def test_reductions_over_size_one_dims():
    x = J.randn(1, 6)
    y = J.randn(6, 1)

    def fn(a, b):
        return (a * 2).sum(0, keepdim=True) + 1, (b * 3).amax(-1, keepdim=True) - 1, (a + 1).sum(0)

    cf = J.compile(fn)
    for got, want in zip(_run_twice(cf, x, y), fn(x, y)):
        _close(got, want)


@pytest.mark.parametrize("shape", [(3, 1000, 400), (40, 30000)])
def test_column_sum_over_few_rows_of_many_columns(shape):
    # big enough for threads, but too few rows (or too many columns) for per-chunk partials
    x, y = J.randn(*shape), J.randn(*shape)
    fn = lambda a, b: ((a * b).sum(0), (a - b).amin(0))
    cf = J.compile(fn)
    for got, want in zip(_run_twice(cf, x, y), fn(x, y)):
        _close(got, want, rtol=1e-4, atol=1e-5)
