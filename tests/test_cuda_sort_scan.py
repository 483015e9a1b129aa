"""CUDA sorting, selection and scan kernels compared with the CPU implementations."""
from __future__ import annotations

import numpy as np
import pytest
from _cuda_kernel_helpers import assert_same, fast_sim_threads  # noqa: F401

import jitorch
from jitorch.runtime.cuda import array as A
from jitorch.runtime.cuda import ops_sort

RNG = np.random.default_rng(2)


def _ties_and_nans(shape, dtype=np.float32):
    x = RNG.integers(0, 5, shape).astype(dtype)
    if dtype != np.int64:
        x.reshape(-1)[[3, 11, 12]] = np.nan
    return x


@pytest.mark.parametrize("descending", [False, True])
def test_argsort_is_stable_with_nans_last(descending):
    x = _ties_and_nans((3, 37))  # rows longer than the simulator's shared chunk: global merge steps run too
    assert_same("argsort", x, dim=1, descending=descending, exact=True)
    assert_same("argsort", x, dim=0, descending=descending, exact=True)
    assert_same("argsort", RNG.integers(-2, 3, (2, 5)), dim=1, descending=descending, exact=True)
    assert_same("argsort", np.array(3.0), dim=0, descending=descending, exact=True)


def test_sort_rows_of_many_short_rows_share_chunks():
    rows = RNG.standard_normal((6, 3))
    keys, order = ops_sort.sort_rows(A.from_host(rows))
    np.testing.assert_array_equal(order.to_host(), np.argsort(rows, axis=1, kind="stable"))
    np.testing.assert_array_equal(keys.to_host(), np.sort(rows, axis=1))


@pytest.mark.parametrize("largest", [True, False])
def test_topk(largest):
    assert_same("topk_indices", _ties_and_nans((3, 19)), dim=1, k=4, largest=largest, exact=True)


@pytest.mark.parametrize("rule", ["none", "propagate", "ignore"])
def test_kth_indices(rule):
    assert_same("kth_indices", _ties_and_nans((3, 13)), dim=1, k=5, nan_rule=rule, exact=True)


def test_mode_and_medians():
    assert_same("mode_indices", _ties_and_nans((3, 13)), dim=1, exact=True)
    assert_same("mode_indices", RNG.integers(0, 3, (4, 6)), dim=0, exact=True)
    x = _ties_and_nans((17,))
    assert_same("median_all", x)
    assert_same("nanmedian_all", x)
    assert_same("median_all", RNG.standard_normal(8).astype(np.float16))
    assert_same("median_all", RNG.integers(0, 9, (7,)), exact=True)
    assert_same("nanmedian_all", np.full(4, np.nan))


@pytest.mark.parametrize("want_max", [True, False])
def test_argext(want_max):
    y = RNG.standard_normal((4, 6))
    y[1, 2] = y[2, 4] = np.nan
    y[3, :] = 1.0  # ties keep the first index
    for dim, keepdim in [(1, False), (0, True), (None, False), (None, True)]:
        assert_same("argext", y, dim=dim, want_max=want_max, keepdim=keepdim, exact=True)
    long_row = RNG.integers(0, 3, (300,))  # several segments per row, then a pass over their winners
    assert_same("argext", long_row, dim=0, want_max=want_max, keepdim=False, exact=True)


@pytest.mark.parametrize("right", [False, True])
def test_searchsorted(right):
    seq = np.sort(RNG.integers(0, 10, (3, 8)), axis=1)
    vals = RNG.integers(-1, 11, (3, 5)).astype(np.float64)
    assert_same("searchsorted", seq, vals, sorter=None, right=right, int32=False, exact=True)
    assert_same("searchsorted", seq[0], vals, sorter=None, right=right, int32=True, exact=True)
    u = RNG.standard_normal((2, 7))
    assert_same("searchsorted", u, RNG.standard_normal((2, 3)), sorter=np.argsort(u, axis=1), right=right,
                int32=False, exact=True)


@pytest.mark.parametrize("shape,dim", [((2, 9, 3), 0), ((2, 9, 3), 1), ((2, 9, 3), 2), ((2, 19), 1)])
def test_float_scans(shape, dim):
    # a non-innermost dim runs a thread per column; the innermost one a block per row, in tiles
    x = RNG.standard_normal(shape).astype(np.float32)
    for reverse in (False, True):
        assert_same("cumsum", x, dim=dim, reverse=reverse)
        assert_same("logcumsumexp", x, dim=dim, reverse=reverse)
    assert_same("cumprod", x, dim=dim)
    assert_same("cumsum", x.astype(np.float16), dim=dim, reverse=False, rtol=1e-3, atol=1e-3)


def test_integer_scans_are_exact():
    xi = RNG.integers(-3, 4, (2, 21))
    assert_same("cumsum", xi, dim=1, reverse=False, exact=True)
    assert_same("cumsum", xi, dim=0, reverse=True, exact=True)
    assert_same("cumprod", xi, dim=1, exact=True)
    big = np.full((1, 20), 2 ** 58, np.int64)  # beyond float64's integers: no float accumulator may be used
    assert_same("cumsum", big, dim=1, reverse=False, exact=True)


@pytest.mark.parametrize("want_max", [True, False])
def test_cumext_indices(want_max):
    y = RNG.integers(0, 4, (3, 21)).astype(np.float64)
    y[1, 5] = np.nan
    y[2, [3, 9]] = np.nan
    assert_same("cumext_indices", y, dim=1, want_max=want_max, exact=True)
    assert_same("cumext_indices", y, dim=0, want_max=want_max, exact=True)


def test_tensor_sort_scan_and_gradients_match_cpu():
    x = jitorch.randn(3, 7)
    outs = []
    for dev in ("cpu", "cuda"):
        t = x.detach().to(dev).requires_grad_()
        v, i = jitorch.sort(t, dim=1, descending=True)
        y = v[:, :3].sum() + t.cumsum(1).pow(2).sum() + t.max(dim=0).values.sum() + t.logcumsumexp(0).sum()
        y.backward()
        outs.append((v.detach().cpu().numpy(), i.cpu().numpy(), y.detach().cpu().numpy(), t.grad.cpu().numpy()))
    for a, b in zip(outs[0], outs[1]):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
