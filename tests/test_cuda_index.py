"""CUDA indexing kernels compared with the CPU implementations on the same inputs."""
from __future__ import annotations

import numpy as np
import pytest
from _cuda_kernel_helpers import assert_same, fast_sim_threads  # noqa: F401

import jitorch
from jitorch.ops.indexing_base import IndexPlan
from jitorch.ops.registry import OPS
from jitorch.runtime.cuda import array as A
from jitorch.runtime.cuda import backend
from jitorch.runtime.cuda import device_checks as DC
from jitorch.runtime.cuda import streams as S

backend.load()  # the CUDA impls are registered on first CUDA use; some tests call them directly

RNG = np.random.default_rng(1)
X = RNG.standard_normal((4, 5, 3)).astype(np.float32)
I0 = np.array([[0, 3], [2, 2]])
I1 = np.broadcast_to(np.array([1, 4]), (2, 2))


@pytest.mark.parametrize("dims,idx", [((0, 1), (I0, I1)), ((0, 2), (np.array([1, 3]), np.array([2, 0]))),
                                      ((1,), (np.array([4, 0, 4]),)), ((2,), (np.array([[1], [2]]),))])
def test_index(dims, idx):
    assert_same("index", X, dims=dims, idx=idx, exact=True)


def test_index_of_a_strided_view_reads_in_place():
    v = A.from_host(X).transpose(2, 0, 1)[:, ::2]
    got = OPS["index"].impl["cuda"](v, (2,), (np.array([4, 0, 2]),)).to_host()
    np.testing.assert_array_equal(got, X.transpose(2, 0, 1)[:, ::2][:, :, [4, 0, 2]])


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.bool_, np.int64])
def test_index_backward_accumulates_repeats(dtype):
    g = (RNG.standard_normal((2, 2, 3)) > 0 if dtype == np.bool_ else RNG.integers(-3, 4, (2, 2, 3))).astype(dtype)
    assert_same("index_backward", g, shape=(4, 5, 3), dims=(0, 1), idx=(I0, I1))


@pytest.mark.parametrize("accumulate", [False, True])
def test_index_put(accumulate):
    idx = np.array([0, 2]) if not accumulate else np.array([0, 0, 2])  # repeats only where they add up
    plan = IndexPlan((slice(1, 3),), (1,), (idx,))
    v = RNG.standard_normal((idx.size, 1)).astype(np.float32)
    assert_same("index_put", X, v, plan=plan, value=None, accumulate=accumulate)
    assert_same("index_put", X, None, plan=IndexPlan((slice(None), 1)), value=5.0, accumulate=accumulate)
    flat = IndexPlan.positions(np.array([3, 7, 7]))
    assert_same("index_put", X, np.ones((1, 3), np.float32), plan=flat, value=None, accumulate=True)


def test_gather_and_scatter_family():
    idx = RNG.integers(0, 5, (3, 4, 3))
    src = RNG.standard_normal((3, 4, 3)).astype(np.float32)
    assert_same("gather", X, dim=1, index=idx, exact=True)
    assert_same("scatter_add", X, src, dim=1, index=idx)
    assert_same("scatter", X, None, dim=2, index=np.array([[[1]]]), value=7.5, exact=True)
    assert_same("scatter_add", RNG.integers(0, 3, (4, 5)).astype(np.int8), RNG.integers(0, 3, (2, 5)).astype(np.int8),
                dim=0, index=RNG.integers(0, 4, (2, 5)), exact=True)


@pytest.mark.parametrize("reduce", ["sum", "prod", "mean", "amax", "amin"])
@pytest.mark.parametrize("include_self", [True, False])
def test_scatter_reduce(reduce, include_self):
    idx = RNG.integers(0, 5, (3, 4, 3))
    src = RNG.standard_normal((4, 4, 3)).astype(np.float32)  # larger than the index: only its leading block is read
    src[0, 0, 0] = np.nan
    assert_same("scatter_reduce", X, src, dim=1, index=idx, reduce=reduce, include_self=include_self)
    xi = RNG.integers(-4, 5, (3, 4))
    assert_same("scatter_reduce", xi, RNG.integers(-4, 5, (3, 4)), dim=1, index=RNG.integers(0, 4, (3, 4)),
                reduce=reduce, include_self=include_self, exact=True)


def test_index_add_copy_fill_select():
    assert_same("index_add", X, RNG.standard_normal((4, 3, 3)).astype(np.float32), dim=1, index=np.array([0, 2, 2]),
                alpha=2.0)
    assert_same("index_add", np.ones(5, np.bool_), np.array([True, False]), dim=0, index=np.array([1, 1]), alpha=1,
                exact=True)
    assert_same("index_copy", X, RNG.standard_normal((2, 5, 3)).astype(np.float32), dim=0, index=np.array([3, 1]),
                exact=True)
    assert_same("index_fill", X, None, dim=2, index=np.array([0, 2]), value=-1.0, exact=True)
    assert_same("index_fill", X, np.array(3.0, np.float32), dim=0, index=np.array([1]), value=None, exact=True)
    assert_same("index_select", X, dims=(2,), idx=(np.array([2, 2, 0]),), exact=True)


def test_take_along_dim_helpers():
    assert_same("gather_along_dim", X, RNG.integers(0, 4, (2, 5, 3)), dim=0, exact=True)
    assert_same("gather_along_dim", X, RNG.integers(0, 4, (2, 1, 3)), dim=0, exact=True)  # broadcast
    assert_same("scatter_add_along_dim", RNG.standard_normal((3, 4, 3)).astype(np.float32),
                RNG.integers(0, 5, (3, 4, 3)), dim=1, shape=(3, 5, 3))


@pytest.mark.parametrize("shape", [(3, 4, 5), (7,), (), (0, 3)])
def test_nonzero(shape):
    x = RNG.standard_normal(shape) > 0.3
    assert_same("nonzero", x, exact=True)
    if shape == (7,):
        x = np.array([0.0, np.nan, 2.0, -0.0, 1.0, 0.0, 3.0], np.float32)
        assert_same("nonzero", x, exact=True)


def test_diagonal_scatter():
    for offset in (-1, 0, 1):
        n = len(np.diagonal(X, offset, 0, 1).T)
        src = RNG.standard_normal((3, n)).astype(np.float32)
        assert_same("diagonal_scatter", X, src, offset=offset, dim1=0, dim2=1, exact=True)


# -- tensor level ----------------------------------------------------------------------------------------------
def test_indexing_gradients_match_cpu():
    x = jitorch.randn(4, 5)
    rows = jitorch.tensor([2, 0, 2])
    results = []
    for dev in ("cpu", "cuda"):
        t = x.detach().to(dev).requires_grad_()
        y = t[rows] * 2 + t.index_select(1, rows).sum() + t[1:3, rows].sum()
        y.sum().backward()
        results.append((y.detach().cpu().numpy(), t.grad.cpu().numpy()))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-5, atol=1e-6)


# -- the nn primitives built on them (jitorch/nn/_ops.py) ----------------------------------------------------------
def test_embedding_and_backward():
    w = RNG.standard_normal((6, 4)).astype(np.float32)
    idx = np.array([[1, 5, 1], [0, 2, 2]])
    assert_same("embedding", w, idx, padding_idx=None, exact=True)
    g = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    assert_same("embedding_backward", g, idx, num_weights=6, padding_idx=None)
    assert_same("embedding_backward", g.astype(np.float16), idx, num_weights=6, padding_idx=2, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("weighted", [False, True])
def test_nll_gather_and_scatter(weighted):
    x = RNG.standard_normal((3, 5, 2)).astype(np.float32)
    target = np.array([[0, 4], [-100, 2], [3, 3]])
    weight = RNG.random(5).astype(np.float32) if weighted else None
    assert_same("nll_gather", x, target, weight, ignore_index=-100, exact=True)
    g = RNG.standard_normal((3, 2)).astype(np.float32)
    assert_same("nll_scatter", g, target, weight, shape=(3, 5, 2), ignore_index=-100, exact=True)


def test_padding_primitives():
    x = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    widths = ((0, 0), (1, 2), (2, 1))
    region = tuple(slice(b, b + n) for (b, _), n in zip(widths, x.shape))
    assert_same("pad_constant", x, widths=widths, value=1.5, region=region, exact=True)
    maps = ((1, np.array([1, 0, 1, 2, 1])), (2, np.array([2, 1, 0, 1, 2, 3, 2])))  # reflect-style index maps
    assert_same("pad_gather", x, maps=maps, exact=True)
    assert_same("pad_scatter", RNG.standard_normal((2, 5, 7)).astype(np.float32), maps=maps, shape=(2, 3, 4))


def test_nn_primitives_tensors_and_gradients_match_cpu():
    # the primitives straight (the nn.functional front ends still read CUDA index tensors on the host)
    import jitorch.nn.functional as F
    from jitorch.nn import _ops as nn_ops
    from jitorch.runtime.cuda import fallback
    fallback._fell_back.clear()  # what earlier tests in this process sent to the host does not count here
    logits, w = jitorch.randn(4, 5, 1), jitorch.randn(7, 3)
    target = jitorch.tensor([[1], [0], [-100], [4]])
    ids = jitorch.tensor([[1, 6], [6, 0]])
    img = jitorch.randn(1, 2, 3, 4)
    outs = []
    for dev in ("cpu", "cuda"):
        lt, wt, it = (t.detach().to(dev).requires_grad_() for t in (logits, w, img))
        loss = nn_ops.nll_gather(lt, target.to(dev), None, -100).sum() + \
            nn_ops.embedding_rows(wt, ids.to(dev), None).pow(2).sum() + \
            F.pad(it, (1, 2, 2, 1), mode="reflect").pow(2).sum() + F.pad(it, (1, 1), value=0.5).sum()
        loss.backward()
        outs.append([t.detach().cpu().numpy() for t in (loss, lt.grad, wt.grad, it.grad)])
    for a, b in zip(*outs):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
    assert not jitorch.cuda._host_fallback_ops() & {"embedding", "embedding_backward", "nll_gather", "nll_scatter",
                                                     "pad_gather", "pad_scatter", "pad_constant"}


# -- device-side index checks (runtime/cuda/device_checks.py) ------------------------------------------------------
# A CUDA kernel checks each device index it reads: an out-of-range one is skipped (a gather gives 0 there, a
# scatter writes nothing) and recorded; the host raises the error at its next synchronization, never before.
def _cuda_impl(name):
    return OPS[name].impl["cuda"]


def _dev(a):
    return A.from_host(np.asarray(a))


def _raises_at_next_sync(match, sync=lambda: A.from_host(np.zeros(2, np.float32)).to_host()):
    """The recorded error comes out of the next host synchronization (here: an unrelated value read)."""
    with pytest.raises(DC.DeviceIndexError, match=match) as info:
        sync()
    assert isinstance(info.value, IndexError) and isinstance(info.value, RuntimeError)
    sync()  # raised once: the record is clear again


def test_valid_device_indices_cause_no_host_sync():
    before = DC.host_syncs()
    x = _dev(X)
    y = _cuda_impl("index")(x, (0, 1), (_dev(I0), _dev(np.ascontiguousarray(I1))))
    g = _cuda_impl("gather")(x, 1, _dev(RNG.integers(0, 5, (3, 4, 3))))
    s = _cuda_impl("scatter_add")(x, _dev(np.ones((3, 4, 3), np.float32)), 1, _dev(RNG.integers(0, 5, (3, 4, 3))))
    e = _cuda_impl("embedding")(_dev(X[0]), _dev(np.array([[3, 0], [1, 1]])), None)
    assert DC.host_syncs() == before  # launches and allocations only
    np.testing.assert_array_equal(y.to_host(), X[I0, I1])
    assert DC.host_syncs() == before + 1  # the read is the sync
    assert g.shape == (3, 4, 3) and s.shape == X.shape and e.shape == (2, 2, 3)


def test_out_of_range_gather_is_skipped_and_raised_at_the_next_sync():
    x = _dev(X)
    idx = _dev(np.array([1, -1, 7]))  # -1 counts from the end for x[idx]; 7 is out of range
    before = DC.host_syncs()
    y = _cuda_impl("index")(x, (0,), (idx,))
    assert DC.host_syncs() == before  # nothing raised or read yet
    _raises_at_next_sync(r"index: index 7 is out of bounds for dimension 0 with size 4")
    got = y.to_host()
    np.testing.assert_array_equal(got[:2], X[[1, -1]])
    np.testing.assert_array_equal(got[2], 0)  # the bad row is never read: zeros, no data from anywhere


@pytest.mark.parametrize("op,call,bad", [
    ("index_select", lambda x, i: _cuda_impl("index_select")(x, (1,), (i,)), -1),  # no negatives here
    ("index_select", lambda x, i: _cuda_impl("index_select")(x, (1,), (i,)), 5),
    ("gather", lambda x, i: _cuda_impl("gather")(x, 2, i.reshape(1, 1, 2)), 3),
    ("embedding", lambda x, i: _cuda_impl("embedding")(x[:, :, 0], i, None), 4),
])
def test_gathers_check_device_indices(op, call, bad):
    out = call(_dev(X), _dev(np.array([0, bad])))
    _raises_at_next_sync(rf"{op}: .*{bad}")
    assert not np.isnan(out.to_host()).any()


@pytest.mark.parametrize("op", ["scatter", "scatter_add", "scatter_reduce"])
def test_scatters_skip_out_of_range_indices(op):
    base = RNG.standard_normal((2, 3)).astype(np.float32)
    idx = np.array([[0, 5, 1]])
    src = np.ones((1, 3), np.float32)
    extra = {"scatter": {"value": None}, "scatter_add": {}, "scatter_reduce": {"reduce": "sum", "include_self": True}}
    out = _cuda_impl(op)(_dev(base), _dev(src), 0, _dev(idx), **extra[op])
    _raises_at_next_sync(rf"{op}: index 5 is out of bounds for dimension 0 with size 2")
    want = base.copy()  # the valid columns as on the CPU, the bad one untouched
    ok = np.array([[0, 0, 1]])
    OPS[op].impl["cpu"](want, src, 0, ok, **extra[op])
    expect = OPS[op].impl["cpu"](base, src, 0, ok, **extra[op])
    expect[:, 1] = base[:, 1]
    np.testing.assert_allclose(out.to_host(), expect)


@pytest.mark.parametrize("op", ["index_put", "index_add", "index_copy", "index_fill"])
def test_indexed_writes_skip_out_of_range_indices(op):
    x = _dev(X)
    bad = _dev(np.array([2, 9]))
    if op == "index_put":
        out = _cuda_impl(op)(x, None, IndexPlan(None, (0,), (bad,)), 1.5, False)
    elif op == "index_fill":
        out = _cuda_impl(op)(x, None, 0, bad, 1.5)
    else:
        kw = {"alpha": 1} if op == "index_add" else {}
        out = _cuda_impl(op)(x, _dev(np.ones((2, 5, 3), np.float32)), 0, bad, **kw)
    _raises_at_next_sync(rf"{op}: index 9 is out of bounds for dimension 0 with size 4")
    got = out.to_host()
    np.testing.assert_array_equal(got[[0, 1, 3]], X[[0, 1, 3]])  # only row 2 was written
    assert not np.array_equal(got[2], X[2])


def test_nll_and_embedding_backward_check_on_the_device():
    x = _dev(RNG.standard_normal((2, 4, 1)).astype(np.float32))
    out = _cuda_impl("nll_gather")(x, _dev(np.array([[1], [6]])), None, -100)
    _raises_at_next_sync(r"nll_loss: Target 6 is out of bounds")
    assert out.to_host()[1, 0] == 0
    g = _cuda_impl("embedding_backward")(_dev(np.ones((2, 3), np.float32)), _dev(np.array([1, 8])), 4, None)
    _raises_at_next_sync(r"embedding: index out of range in self \(index 8")
    want = np.zeros((4, 3), np.float32)
    want[1] = 1  # index 1's row; index 8's is skipped
    np.testing.assert_array_equal(g.to_host(), want)


def test_first_report_wins_and_every_sync_point_raises():
    for sync in (S.synchronize, lambda: S.current().synchronize(), lambda: S.current().record_event().synchronize(),
                 lambda: S.current().query()):
        _cuda_impl("index")(_dev(X), (0,), (_dev(np.array([4, 1, -5])),))
        with pytest.raises(DC.DeviceIndexError, match=r"index (4|-5) is out of bounds for dimension 0 with size 4"):
            sync()
        sync()


def test_check_range_reports_without_reading():
    before = DC.host_syncs()
    DC.check_range(_dev(np.array([0, 3, -100, 2])), 0, 4, "my_op", skip=-100)
    DC.check_range(_dev(np.array([1, 4])), 0, 4, "my_op", "value {value} not below {bound}")
    assert DC.host_syncs() == before
    _raises_at_next_sync(r"my_op: value 4 not below 4")


# -- tensor level: the front end leaves device indices to the kernels -------------------------------------------------
def test_tensor_indexing_with_device_indices_never_syncs():
    x = jitorch.from_numpy(X).to("cuda")
    rows = jitorch.tensor([3, -1, 0], device="cuda")
    before = jitorch.cuda._host_syncs()
    outs = [x[rows], x.index_select(1, rows.abs()), x.gather(0, rows.abs().reshape(3, 1, 1).expand(3, 5, 3)),
            jitorch.take_along_dim(x, rows.reshape(3, 1, 1), 0), x.index_fill(0, rows, 2.0),
            jitorch.nn.functional.embedding(rows.abs(), x[:, :, 0])]
    assert jitorch.cuda._host_syncs() == before
    np.testing.assert_array_equal(outs[0].cpu().numpy(), X[[3, -1, 0]])
    np.testing.assert_array_equal(outs[3].cpu().numpy(), np.take_along_axis(X, np.array([3, 3, 0]).reshape(3, 1, 1), 0))


@pytest.mark.parametrize("read", ["item", "cpu", "print", "synchronize"])
def test_tensor_out_of_range_index_raises_at_the_next_read(read):
    x = jitorch.from_numpy(X).to("cuda")
    y = x[jitorch.tensor([0, 4], device="cuda")]  # no error yet: the kernel only recorded it
    z = x.sum()
    act = {"item": z.item, "cpu": y.cpu, "print": lambda: repr(y), "synchronize": jitorch.cuda.synchronize}[read]
    with pytest.raises(IndexError, match="index 4 is out of bounds for dimension 0 with size 4"):
        act()
    assert z.item() == pytest.approx(float(X.sum()), rel=1e-5)  # raised once; later reads work
