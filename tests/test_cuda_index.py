"""CUDA indexing kernels compared with the CPU implementations on the same inputs."""
from __future__ import annotations

import numpy as np
import pytest
from _cuda_kernel_helpers import assert_same, fast_sim_threads  # noqa: F401

import jitorch
from jitorch.ops.indexing_base import IndexPlan
from jitorch.runtime.cuda import array as A

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
    from jitorch.ops.registry import OPS
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
