"""Sorting, selection, max/min forms, unique and searchsorted: values, indices, NaN rules, errors, gradients."""
from __future__ import annotations

import re

import numpy as np
import pytest
from helpers import LAYOUTS, arr, check_grad, check_op, np_of, requires_torch, torch

import jitorch

F16, F32, F64, I64, I32, B = jitorch.float16, jitorch.float32, jitorch.float64, jitorch.int64, jitorch.int32, \
    jitorch.bool
NAN = float("nan")


def lib(t):
    return jitorch if isinstance(t, jitorch.Tensor) else torch


def gradgrad(fn, x: jitorch.Tensor) -> bool:
    """Finite-difference check of the first gradient (core gradgradcheck runs it under no_grad)."""
    go = jitorch.randn(*fn(x).shape, dtype=jitorch.float64, generator=jitorch.Generator().manual_seed(0))

    def first(t, g):
        with jitorch.enable_grad():
            return jitorch.autograd.grad(fn(t), [t], g, create_graph=True)[0]
    return jitorch.autograd.gradcheck(first, (x, go.requires_grad_()))


X = np.random.default_rng(11).permutation(12).reshape(3, 4) - 6.0  # distinct even as ints: unambiguous indices
TIES = np.array([[3, 1, 2, 1], [0, 0, 5, 5], [2, 2, 2, 2]], dtype=np.float64)
WITH_NAN = np.array([3.0, NAN, 1.0, 2.0, NAN, 1.0])


def np_sort(a, dim=-1, descending=False):
    if descending:
        idx = np.flip(np.argsort(np.flip(a, dim), dim, kind="stable"), dim)
        idx = a.shape[dim] - 1 - idx
    else:
        idx = np.argsort(a, dim, kind="stable")
    return np.take_along_axis(a, idx, dim), idx


# -- sort / argsort / msort --------------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("descending", [False, True])
def test_sort(dim, descending):
    check_op(lambda a: lib(a).sort(a, dim=dim, descending=descending, stable=True), lambda a: np_sort(a, dim, descending), X,
             dtypes=(F32, F64, F16), layouts=LAYOUTS)


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("dtype", [I64, I32, B, F32])
def test_sort_ties_are_stable(descending, dtype):
    data = TIES if dtype is not B else TIES > 1
    check_op(lambda a: lib(a).sort(a, dim=1, descending=descending, stable=True),
             lambda a: np_sort(a, 1, descending), data.astype(np.float64) if dtype is not B else data,
             dtypes=(dtype,), grad=False)


@pytest.mark.parametrize("descending", [False, True])
def test_sort_nan_is_largest(descending):
    check_op(lambda a: lib(a).sort(a, descending=descending, stable=True), None, WITH_NAN, dtypes=(F32, F64),
             grad=False)
    v, _i = jitorch.sort(jitorch.tensor(WITH_NAN), descending=descending)
    assert np.isnan(v.numpy()[:2]).all() == descending and np.isnan(v.numpy()[-2:]).all() != descending


def test_sort_edge_cases():
    s = jitorch.sort(jitorch.tensor(3.0))
    assert s.values.item() == 3.0 and s.indices.item() == 0 and s.indices.dtype is I64
    e = jitorch.sort(jitorch.zeros(2, 0), 1)
    assert tuple(e.values.shape) == (2, 0) and e.indices.dtype is I64
    with pytest.raises(IndexError, match=re.escape("Dimension out of range (expected to be in range of [-1, 0], but "
                                                   "got 1)")):
        jitorch.sort(jitorch.tensor(3.0), 1)
    values, indices = jitorch.sort(jitorch.tensor([2.0, 1.0]))  # unpacks like a tuple
    assert values.tolist() == [1.0, 2.0] and indices.tolist() == [1, 0]
    assert "return_types.sort" in repr(jitorch.sort(jitorch.tensor([1.0])))
    assert isinstance(jitorch.sort(jitorch.tensor([1.0])), jitorch.return_types.sort)


@pytest.mark.parametrize("dim", [0, -1])
def test_argsort_and_msort(dim):
    check_op(lambda a: lib(a).argsort(a, dim=dim, stable=True), lambda a: np.argsort(a, dim, kind="stable"), TIES,
             dtypes=(F64, I64), layouts=LAYOUTS, grad=False)
    check_op(lambda a: lib(a).msort(a), lambda a: np.sort(a, 0), X, dtypes=(F32, I64), layouts=LAYOUTS)
    d = jitorch.argsort(jitorch.tensor(TIES), dim, descending=True)
    assert d.tolist() == np_sort(TIES, dim, True)[1].tolist()


# -- topk / kthvalue ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("k, dim, largest", [(2, -1, True), (2, -1, False), (1, 0, True), (3, 0, False),
                                            (4, 1, True), (0, 1, True)])
def test_topk(k, dim, largest):
    def ref(a):
        v, i = np_sort(a, dim, largest)
        sl = [slice(None)] * a.ndim
        sl[dim] = slice(0, k)
        return v[tuple(sl)], i[tuple(sl)]
    check_op(lambda a: lib(a).topk(a, k, dim, largest), ref, X, dtypes=(F32, F64, I64), layouts=LAYOUTS,
             grad=k > 0)


@pytest.mark.parametrize("largest", [True, False])
def test_topk_small_k_selection_matches_full_sort(largest):
    # k much smaller than the row takes the heap selection path; it must order ties and NaNs like sort
    rng = np.random.default_rng(3)
    a = rng.integers(0, 6, (5, 97)).astype(np.float64)
    a[rng.random(a.shape) < 0.05] = NAN
    for k in (1, 3, 7):
        t = jitorch.topk(jitorch.tensor(a), k, 1, largest=largest)
        s = jitorch.sort(jitorch.tensor(a), 1, descending=largest)
        np.testing.assert_array_equal(t.indices.numpy(), s.indices.numpy()[:, :k])
        np.testing.assert_array_equal(t.values.numpy(), s.values.numpy()[:, :k])
        if torch is not None:
            np.testing.assert_array_equal(t.values.numpy(), torch.topk(torch.tensor(a), k, 1, largest).values.numpy())
    b = arr(4, 64, seed=9)
    check_op(lambda x: lib(x).topk(x, 3, 1, largest), None, b, dtypes=(F32, F64), layouts=LAYOUTS, grad=False)
    check_grad(lambda x: lib(x).topk(x, 2, 1, largest).values, [arr(2, 40, seed=4)],
               (lambda x: torch.topk(x, 2, 1, largest).values) if torch is not None else None)


def test_topk_nan_and_errors():
    t = jitorch.topk(jitorch.tensor(WITH_NAN), 3)
    assert np.isnan(t.values.numpy()[:2]).all() and t.indices.tolist() == [1, 4, 0]
    assert t.values.dtype is F64 and t.indices.dtype is I64
    for k in (7, -1):
        with pytest.raises(RuntimeError, match="selected index k out of range"):
            jitorch.topk(jitorch.tensor(WITH_NAN), k)
    with pytest.raises(RuntimeError, match="topk does not support bool dtypes on CPU"):
        jitorch.topk(jitorch.tensor([True, False]), 1)
    z = jitorch.topk(jitorch.tensor(3.0), 1)
    assert z.values.item() == 3.0 and z.indices.item() == 0


@pytest.mark.parametrize("k, dim, keepdim", [(1, -1, False), (2, 1, True), (3, 0, False), (4, -1, False)])
def test_kthvalue(k, dim, keepdim):
    def ref(a):
        v, i = np_sort(a, dim)
        sl = [slice(None)] * a.ndim
        sl[dim] = slice(k - 1, k)
        v, i = v[tuple(sl)], i[tuple(sl)]
        return (v, i) if keepdim else (v.squeeze(dim), i.squeeze(dim))
    check_op(lambda a: lib(a).kthvalue(a, k, dim, keepdim), ref, X, dtypes=(F32, F64, I64), layouts=LAYOUTS)


def test_kthvalue_errors():
    for k in (0, 4):
        with pytest.raises(RuntimeError, match="kthvalue\\(\\): selected number k out of range for dimension 0"):
            jitorch.kthvalue(jitorch.tensor([3.0, 1.0, 2.0]), k)
    r = jitorch.kthvalue(jitorch.tensor(3.0), 1)
    assert r.values.item() == 3.0 and r.indices.item() == 0


# -- median / nanmedian / mode --------------------------------------------------------------------------------
def _lower_median(a, axis=None):
    s = np.sort(a, axis=axis) if axis is not None else np.sort(a.reshape(-1))
    n = s.shape[axis if axis is not None else 0]
    return np.take(s, (n - 1) // 2, axis=axis if axis is not None else 0)


def test_median_full():
    check_op(lambda a: lib(a).median(a), _lower_median, X, dtypes=(F32, F64, I64), layouts=LAYOUTS)
    check_op(lambda a: lib(a).median(a), None, arr(5, seed=3), dtypes=(F64,))
    assert np.isnan(jitorch.median(jitorch.tensor(WITH_NAN)).item())
    assert np.isnan(jitorch.median(jitorch.zeros(0)).item())


@pytest.mark.parametrize("dim, keepdim", [(0, False), (1, True), (-1, False)])
def test_median_dim(dim, keepdim):
    def ref(a):
        v, i = np_sort(a, dim)
        k = (a.shape[dim] - 1) // 2
        v, i = np.take(v, [k], dim), np.take(i, [k], dim)
        return (v, i) if keepdim else (v.squeeze(dim), i.squeeze(dim))
    check_op(lambda a: lib(a).median(a, dim, keepdim), ref, X, dtypes=(F32, F64, I64), layouts=LAYOUTS)


def test_median_nan_rows_and_nanmedian():
    rows = np.array([[3.0, NAN, 1.0, NAN], [1.0, 2.0, 3.0, 4.0]])
    check_op(lambda a: lib(a).median(a, 1), None, rows, dtypes=(F32, F64), grad=False)
    check_op(lambda a: lib(a).nanmedian(a, 1), None, rows, dtypes=(F32, F64), grad=False)
    check_op(lambda a: lib(a).nanmedian(a), None, WITH_NAN, dtypes=(F32, F64), grad=False)
    assert np.isnan(jitorch.nanmedian(jitorch.tensor([NAN, NAN])).item())
    with pytest.raises(IndexError, match=re.escape("median(): Expected reduction dim 0 to have non-zero size.")):
        jitorch.median(jitorch.zeros(0), 0)


def test_median_full_grad_is_spread_over_ties():
    x = jitorch.tensor([1.0, 2.0, 2.0, 3.0, 2.0], dtype=F64, requires_grad=True)
    jitorch.median(x).backward()
    np.testing.assert_allclose(x.grad.numpy(), [0, 1 / 3, 1 / 3, 0, 1 / 3])
    if torch is not None:
        t = torch.tensor([1.0, 2.0, 2.0, 3.0, 2.0], dtype=torch.float64, requires_grad=True)
        torch.median(t).backward()
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy())


@pytest.mark.parametrize("data, dim", [([1, 2, 2, 3, 3, 0, 3.0, 2], -1), ([3.0, 1.0, 3.0, 1.0], 0),
                                       ([[1, 2, 2], [3, 3, 1]], 0), ([[1, 2, 2], [3, 3, 1]], 1)])
def test_mode(data, dim):
    check_op(lambda a: lib(a).mode(a, dim), None, np.array(data, dtype=np.float64), dtypes=(F32, F64, I64),
             grad=False)
    r = jitorch.mode(jitorch.tensor(data), dim, keepdim=True)
    assert r.values.ndim == np.ndim(data)
    with pytest.raises(IndexError, match=re.escape("mode(): Expected reduction dim 0 to have non-zero size.")):
        jitorch.mode(jitorch.zeros(0))


# -- max / min / argmax / argmin / aminmax / count_nonzero -------------------------------------------------------
@pytest.mark.parametrize("name", ["max", "min"])
@pytest.mark.parametrize("dim, keepdim", [(0, False), (1, True), (-1, False)])
def test_max_min_dim(name, dim, keepdim):
    npf, arg = (np.max, np.argmax) if name == "max" else (np.min, np.argmin)
    check_op(lambda a: getattr(lib(a), name)(a, dim, keepdim),
             lambda a: (npf(a, dim, keepdims=keepdim), np.expand_dims(arg(a, dim), dim) if keepdim else arg(a, dim)),
             TIES, dtypes=(F32, F64, I64, B), layouts=LAYOUTS, grad=False)
    check_op(lambda a: getattr(a, name)(dim=dim, keepdim=keepdim), None, X, dtypes=(F32,), grad=True)


@pytest.mark.parametrize("name", ["max", "min"])
def test_max_min_forms(name):
    x = jitorch.tensor([[1.0, 5.0], [7.0, 2.0]])
    full = getattr(jitorch, name)(x)
    assert isinstance(full, jitorch.Tensor) and full.ndim == 0 and full.item() == (7.0 if name == "max" else 1.0)
    assert getattr(x, name)().item() == full.item()
    other = jitorch.tensor([[3.0, 3.0], [3.0, 3.0]])
    pair = getattr(jitorch, name)(x, other)
    assert pair.tolist() == getattr(np, name + "imum")(x.numpy(), other.numpy()).tolist()
    assert getattr(x, name)(other).tolist() == pair.tolist()
    assert getattr(jitorch, name)(x, other=other).tolist() == pair.tolist()
    v, i = getattr(x, name)(1)
    assert isinstance(getattr(x, name)(1), getattr(jitorch.return_types, name))
    assert i.dtype is I64 and v.tolist() == getattr(np, name)(x.numpy(), 1).tolist()
    z = getattr(jitorch, name)(jitorch.tensor(1.0), 0)
    assert z.values.item() == 1.0 and z.indices.item() == 0
    assert getattr(jitorch, name)(jitorch.tensor([True, False])).dtype is B


def test_max_nan_and_errors():
    r = jitorch.max(jitorch.tensor([1.0, NAN, 3.0, NAN]), 0)
    assert np.isnan(r.values.item()) and r.indices.item() == 1
    assert np.isnan(jitorch.min(jitorch.tensor([1.0, NAN])).item())
    with pytest.raises(RuntimeError, match=re.escape("max(): Expected reduction dim to be specified for "
                                                     "input.numel() == 0.")):
        jitorch.max(jitorch.zeros(0))
    with pytest.raises(IndexError, match=re.escape("max(): Expected reduction dim 0 to have non-zero size.")):
        jitorch.max(jitorch.zeros(0, 3), 0)
    e = jitorch.max(jitorch.zeros(0, 3), 1)
    assert tuple(e.values.shape) == (0,) and e.indices.dtype is I64


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@pytest.mark.parametrize("dim, keepdim", [(None, False), (None, True), (0, False), (1, True), (-1, False)])
def test_argmax_argmin(name, dim, keepdim):
    def ref(a):
        r = getattr(np, name)(a, dim, keepdims=keepdim)
        return np.asarray(r)
    check_op(lambda a: getattr(lib(a), name)(a, dim, keepdim), ref, TIES, dtypes=(F32, F64, I64),
             layouts=LAYOUTS, grad=False)


def test_argmax_nan_and_errors():
    assert jitorch.argmax(jitorch.tensor([1.0, NAN, 5.0, NAN])).item() == 1
    assert jitorch.argmin(jitorch.tensor([1.0, NAN, -5.0])).item() == 1
    assert jitorch.argmax(jitorch.tensor(3.0), 0).item() == 0
    assert tuple(jitorch.argmax(jitorch.zeros(0, 3), 1).shape) == (0,)
    with pytest.raises(IndexError, match=re.escape("argmax(): Expected reduction dim to be specified for "
                                                   "input.numel() == 0.")):
        jitorch.argmax(jitorch.zeros(0))
    with pytest.raises(IndexError, match=re.escape("argmax(): Expected reduction dim 0 to have non-zero size.")):
        jitorch.argmax(jitorch.zeros(0, 3), 0)
    with pytest.raises(RuntimeError, match=re.escape("argmax(): does not support bool input")):
        jitorch.argmax(jitorch.tensor([True, False]))


@pytest.mark.parametrize("dim", [None, 0, 1, (0, 1)])
def test_count_nonzero(dim):
    a = np.array([[0.0, 1.0, 0.0], [2.0, -3.0, 0.0]])
    check_op(lambda x: lib(x).count_nonzero(x, dim), lambda x: np.asarray(np.count_nonzero(x, axis=dim)), a,
             dtypes=(F32, I64, B), layouts=LAYOUTS, grad=False)
    with_nan = np.where(a == -3.0, NAN, a)
    check_op(lambda x: lib(x).count_nonzero(x, dim), lambda x: np.asarray(np.count_nonzero(x, axis=dim)), with_nan,
             dtypes=(F64,), grad=False)


@pytest.mark.parametrize("dim, keepdim", [(None, False), (0, False), (1, True)])
def test_aminmax(dim, keepdim):
    check_op(lambda a: lib(a).aminmax(a, dim=dim, keepdim=keepdim),
             lambda a: (np.amin(a, dim, keepdims=keepdim), np.amax(a, dim, keepdims=keepdim)), X,
             dtypes=(F32, I64), grad=False)
    r = jitorch.aminmax(jitorch.tensor([[0.0, NAN], [2.0, 3.0]]))
    assert np.isnan(r.min.item()) and np.isnan(r.max.item())
    with pytest.raises(RuntimeError, match="cannot compute aminmax over an empty dimension"):
        jitorch.aminmax(jitorch.zeros(0))


# -- unique / unique_consecutive -------------------------------------------------------------------------------
@pytest.mark.parametrize("inv, counts", [(False, False), (True, False), (False, True), (True, True)])
def test_unique(inv, counts):
    data = np.array([[3, 1, 2], [1, 3, 3]], dtype=np.float64)

    def ref(a):
        v, i, c = np.unique(a, return_inverse=True, return_counts=True)
        return tuple([v] + ([i.reshape(a.shape)] if inv else []) + ([c] if counts else []))
    check_op(lambda a: lib(a).unique(a, return_inverse=inv, return_counts=counts), ref, data,
             dtypes=(F32, I64, B), layouts=LAYOUTS, grad=False)


def test_unique_dim_nan_and_0d():
    check_op(lambda a: lib(a).unique(a, dim=0, return_inverse=True, return_counts=True), None,
             np.array([[3.0, 1.0], [2.0, 1.0], [3.0, 1.0]]), dtypes=(F32, I64), grad=False)
    check_op(lambda a: lib(a).unique(a, dim=1), None, np.array([[3.0, 1.0, 3.0], [2.0, 1.0, 2.0]]),
             dtypes=(I64,), grad=False)
    u = jitorch.unique(jitorch.tensor([NAN, 1.0, NAN]))
    assert u.numel() == 3 and np.isnan(u.numpy()[1:]).all()  # NaNs are never merged
    v, i = jitorch.unique(jitorch.tensor(3.0), return_inverse=True)
    assert v.tolist() == [3.0] and i.ndim == 0


@pytest.mark.parametrize("dim", [None, 0, 1])
def test_unique_consecutive(dim):
    data = np.array([[1, 1, 2, 2], [1, 1, 2, 3], [1, 1, 2, 3], [0, 0, 0, 0]], dtype=np.float64)
    check_op(lambda a: lib(a).unique_consecutive(a, return_inverse=True, return_counts=True, dim=dim), None, data,
             dtypes=(F32, I64), layouts=LAYOUTS, grad=False)
    r = jitorch.unique_consecutive(jitorch.tensor([1, 1, 2, 2, 3, 1, 1, 2]), return_counts=True)
    assert r[0].tolist() == [1, 2, 3, 1, 2] and r[1].tolist() == [2, 2, 1, 2, 1]


# -- searchsorted / bucketize -----------------------------------------------------------------------------------------
SEQ = np.array([1.0, 3.0, 5.0, 7.0, 9.0])
VALS = np.array([[3.0, 6.0, 9.0], [0.0, 10.0, 5.0]])


@pytest.mark.filterwarnings("ignore:torch.searchsorted")
@pytest.mark.parametrize("right", [False, True])
def test_searchsorted_1d(right):
    side = "right" if right else "left"
    check_op(lambda s, v: lib(s).searchsorted(s, v, right=right), lambda s, v: np.searchsorted(s, v, side), SEQ,
             VALS, dtypes=(F32, F64, I64), layouts=LAYOUTS, grad=False)
    check_op(lambda s, v: lib(s).searchsorted(s, v, side=side), lambda s, v: np.searchsorted(s, v, side), SEQ,
             VALS, dtypes=(F64,), grad=False)


def test_searchsorted_nd_sorter_scalar_int32():
    seq = np.array([[1.0, 3.0, 5.0], [2.0, 4.0, 6.0]])
    vals = np.array([[3.0, 6.0], [1.0, 7.0]])
    check_op(lambda s, v: lib(s).searchsorted(s, v), lambda s, v: np.stack([np.searchsorted(s[i], v[i])
                                                                             for i in range(2)]),
             seq, vals, dtypes=(F32, I64), grad=False)
    s = jitorch.tensor([5, 1, 3])
    assert jitorch.searchsorted(s, jitorch.tensor([4]), sorter=jitorch.tensor([1, 2, 0])).tolist() == [2]
    r = jitorch.searchsorted(jitorch.tensor([1, 3, 5]), 4)
    assert r.ndim == 0 and r.item() == 2
    assert jitorch.searchsorted(jitorch.tensor([1, 3, 5]), jitorch.tensor([4]), out_int32=True).dtype is I32
    assert jitorch.searchsorted(jitorch.tensor([1, 3, 5]), jitorch.tensor([4.5])).tolist() == [2]
    # torch's binary search uses plain comparisons: a NaN boundary looks small, a NaN value goes last
    got = jitorch.searchsorted(jitorch.tensor([1.0, 3.0, NAN]), jitorch.tensor([4.0, NAN, 2.0]))
    assert got.tolist() == [3, 3, 1]


@pytest.mark.parametrize("kwargs, msg", [
    ({"side": "left", "right": True}, "side and right can't be set to opposites"),
    ({"side": "foo"}, "side can only be 'left' or 'right' but got foo"),
])
def test_searchsorted_errors(kwargs, msg):
    with pytest.raises(RuntimeError, match=re.escape(msg)):
        jitorch.searchsorted(jitorch.tensor(SEQ), jitorch.tensor([1.0]), **kwargs)


def test_searchsorted_shape_errors():
    with pytest.raises(RuntimeError, match=re.escape("boundaries tensor [2, 3] and input value tensor [3, 2]")):
        jitorch.searchsorted(jitorch.zeros(2, 3), jitorch.zeros(3, 2))
    with pytest.raises(RuntimeError, match="boundaries tensor should have positive dimension"):
        jitorch.searchsorted(jitorch.tensor(1.0), jitorch.zeros(3))


@pytest.mark.parametrize("right", [False, True])
def test_bucketize(right):
    check_op(lambda v, s: lib(v).bucketize(v, s, right=right),
             lambda v, s: np.searchsorted(s, v, "right" if right else "left"), VALS, SEQ, dtypes=(F32, I64),
             grad=False)
    assert jitorch.bucketize(3, jitorch.tensor(SEQ)).item() == 1
    with pytest.raises(RuntimeError, match=re.escape("boundaries tensor must be 1 dimension, but got dim(2)")):
        jitorch.bucketize(jitorch.zeros(3), jitorch.zeros(1, 5))


# -- gradients -------------------------------------------------------------------------------------------------------
GRAD_CASES = [
    ("sort", lambda a: lib(a).sort(a, 1).values),
    ("sort_desc_dim0", lambda a: lib(a).sort(a, 0, descending=True)[0]),
    ("topk", lambda a: lib(a).topk(a, 2, 1).values),
    ("topk_small", lambda a: lib(a).topk(a, 2, 0, largest=False).values),
    ("kthvalue", lambda a: lib(a).kthvalue(a, 2, 1).values),
    ("median_dim", lambda a: lib(a).median(a, 0).values),
    ("median_all", lambda a: lib(a).median(a)),
    ("nanmedian_all", lambda a: lib(a).nanmedian(a)),
    ("mode", lambda a: lib(a).mode(a, 1).values),
    ("max_dim", lambda a: lib(a).max(a, 1).values),
    ("min_dim_keep", lambda a: a.min(0, keepdim=True).values),
    ("max_all", lambda a: lib(a).max(a)),
    ("max_pair", lambda a: lib(a).max(a, a.flip(1))),
    ("msort", lambda a: lib(a).msort(a)),
]


@pytest.mark.parametrize("name, fn", GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_grads(name, fn):
    check_grad(fn, [X], fn if torch is not None else None)


@pytest.mark.parametrize("fn", [lambda a: jitorch.sort(a.exp(), 1).values, lambda a: jitorch.max(a.exp(), 0).values,
                                lambda a: jitorch.topk(a.exp(), 2).values, lambda a: jitorch.median(a.exp())])
def test_double_backward(fn):
    assert gradgrad(fn, jitorch.tensor(X, dtype=F64, requires_grad=True))


def test_indices_are_not_differentiable():
    x = jitorch.tensor(X, requires_grad=True)
    v, i = jitorch.sort(x)
    assert v.requires_grad and not i.requires_grad and i.grad_fn is None


@requires_torch
def test_large_random_matches_torch():
    rng = np.random.default_rng(5)
    a = rng.standard_normal((37, 129)).astype(np.float32)
    a[rng.random(a.shape) < 0.05] = np.nan
    j, t = jitorch.tensor(a), torch.tensor(a)
    for fj, ft in [(lambda x: x.sort(dim=1, stable=True), lambda x: x.sort(dim=1, stable=True)),
                   (lambda x: x.sort(dim=0, descending=True, stable=True),
                    lambda x: x.sort(dim=0, descending=True, stable=True)),
                   (lambda x: x.max(1), lambda x: x.max(1)), (lambda x: x.argmin(0), lambda x: x.argmin(0)),
                   (lambda x: x.topk(5, 1).values, lambda x: x.topk(5, 1).values)]:
        rj, rt = fj(j), ft(t)
        for u, w in zip(rj if isinstance(rj, tuple) else (rj,), rt if isinstance(rt, tuple) else (rt,)):
            np.testing.assert_array_equal(np_of(u), np_of(w))
