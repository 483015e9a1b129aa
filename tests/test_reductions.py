"""Reductions: sum/mean/prod/amax/amin/all/any/var/std/norm/logsumexp/softmax/log_softmax."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import (
    LAYOUTS,
    arr,
    assert_close,
    check_op,
    keep,
    make,
    np_of,
    requires_torch,
    torch,
)

import jitorch

F16, F32, F64 = jitorch.float16, jitorch.float32, jitorch.float64
I8, I32, I64, U8, B = jitorch.int8, jitorch.int32, jitorch.int64, jitorch.uint8, jitorch.bool

X3 = arr(2, 3, 4, seed=11)
IX3 = np.round(arr(2, 3, 4, lo=-5, hi=5, seed=12))
DIMS = [None, 0, 1, -1, (0, 2), (-1, 0)]
DIM_IDS = ["all", "0", "1", "-1", "(0,2)", "(-1,0)"]


def _axis(dim):
    return dim if dim is None or isinstance(dim, tuple) else (dim,)


def _np_norm(x, p, axis, keepdims):
    a = np.abs(x)
    if p == np.inf:
        return a.max(axis=axis, keepdims=keepdims)
    if p == -np.inf:
        return a.min(axis=axis, keepdims=keepdims)
    if p == 0:
        return (a != 0).sum(axis=axis, keepdims=keepdims).astype(x.dtype)
    return (a ** p).sum(axis=axis, keepdims=keepdims) ** (1.0 / p)


REFS = {"sum": np.sum, "mean": np.mean, "amax": np.max, "amin": np.min}


@pytest.mark.parametrize("keepdim", [False, True], ids=["", "keepdim"])
@pytest.mark.parametrize("dim", DIMS, ids=DIM_IDS)
@pytest.mark.parametrize("name", ["sum", "mean", "amax", "amin"])
def test_basic_reductions(name, dim, keepdim):
    ref = REFS[name]
    check_op(lambda t: getattr(t, name)(dim=dim, keepdim=keepdim),
             lambda x: ref(x, axis=_axis(dim), keepdims=keepdim), X3, dtypes=(F32, F64))


@pytest.mark.parametrize("name", ["sum", "mean", "amax", "amin"])
def test_reductions_float16(name):
    check_op(lambda t: getattr(t, name)(dim=1), lambda x: REFS[name](x, axis=1), X3, dtypes=(F16,), grad=False)


@pytest.mark.parametrize("layout", LAYOUTS[1:])
@pytest.mark.parametrize("name", ["sum", "mean", "amax", "var", "prod"])
def test_reductions_non_contiguous(name, layout):
    for dim in (None, 0, -1, (0, 2)):
        if name == "prod" and isinstance(dim, tuple):
            continue
        check_op(lambda t, dim=dim: getattr(t, name)(dim) if dim is not None else getattr(t, name)(),
                 None, X3, dtypes=(F32,), layouts=(layout,), grad=False)


@pytest.mark.parametrize("keepdim", [False, True], ids=["", "keepdim"])
@pytest.mark.parametrize("dim", [None, 0, 2, -2], ids=["all", "0", "2", "-2"])
def test_prod(dim, keepdim):
    x = arr(2, 3, 4, lo=0.5, hi=1.5, seed=13)
    if dim is None:
        fn, ref = (lambda t: t.prod()), (lambda v: np.prod(v))
    else:
        fn, ref = (lambda t: t.prod(dim, keepdim=keepdim)), (lambda v: np.prod(v, axis=dim, keepdims=keepdim))
    check_op(fn, ref, x, dtypes=(F32, F64))


@pytest.mark.skipif(not hasattr(jitorch, "cumprod") or not hasattr(jitorch, "cat"),
                    reason="prod's zero-aware gradient needs cat/cumprod")
def test_prod_grad_with_zeros():
    x = np.array([[1.5, 0.0, 2.0], [0.0, 0.0, 3.0], [1.0, 2.0, -1.0]])
    check_op(lambda t: t.prod(1), lambda v: np.prod(v, axis=1), x, dtypes=(F64,))
    check_op(lambda t: t.prod(), np.prod, x[0], dtypes=(F64,))


@pytest.mark.parametrize("dt", [I8, I32, I64, U8, B], ids=lambda d: d.name)
def test_integer_and_bool_sums_are_int64(dt):
    x = keep(IX3 > 0) if dt is B else (np.abs(IX3) if dt is U8 else IX3)
    check_op(lambda t: t.sum(), lambda v: np.sum(v, dtype=np.int64), x, dtypes=(dt,), grad=False, out_dtype=I64)
    check_op(lambda t: t.sum(1, keepdim=True), lambda v: np.sum(v, axis=1, keepdims=True, dtype=np.int64), x,
             dtypes=(dt,), grad=False, out_dtype=I64)
    check_op(lambda t: t.prod(2), lambda v: np.prod(v, axis=2, dtype=np.int64), x, dtypes=(dt,), grad=False,
             out_dtype=I64)


@pytest.mark.parametrize("dt", [I8, I64, U8, B], ids=lambda d: d.name)
def test_integer_min_max_keep_dtype(dt):
    x = keep(IX3 > 0) if dt is B else (np.abs(IX3) if dt is U8 else IX3)
    check_op(lambda t: t.amax(1), lambda v: np.max(v, axis=1), x, dtypes=(dt,), grad=False, out_dtype=dt)
    check_op(lambda t: t.amin((0, 2)), lambda v: np.min(v, axis=(0, 2)), x, dtypes=(dt,), grad=False, out_dtype=dt)


def test_sum_dtype_argument():
    x = jitorch.tensor([100, 100], dtype=I8)
    assert x.sum(dtype=F64).dtype is F64 and x.sum(dtype=F64).item() == 200.0
    f = jitorch.tensor([1.5, 2.5])
    assert f.sum(dtype=F64).dtype is F64
    assert jitorch.sum(f, 0).item() == 4.0
    assert jitorch.tensor([1, 2]).prod(dtype=F64).dtype is F64
    assert jitorch.mean(jitorch.tensor([1, 2]), dtype=F64).item() == 1.5


@pytest.mark.parametrize("name", ["all", "any"])
def test_all_any(name):
    x = np.array([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [np.nan, 0.0, 0.0]])
    ref = getattr(np, name)
    for dim in (None, 0, 1, -1, (0, 1)):
        check_op(lambda t, dim=dim: getattr(t, name)(dim=dim), lambda v, dim=dim: ref(v, axis=_axis(dim)), x,
                 dtypes=(F32,), grad=False, out_dtype=B)
        check_op(lambda t, dim=dim: getattr(t, name)(dim=dim), lambda v, dim=dim: ref(v, axis=_axis(dim)),
                 np.nan_to_num(x),
                 dtypes=(I64,), grad=False, out_dtype=B)
    check_op(lambda t: getattr(t, name)(dim=0, keepdim=True), lambda v: ref(v, axis=0, keepdims=True),
             keep(x > 1), dtypes=(B,), grad=False)
    # uint8 inputs give uint8, as in torch
    check_op(lambda t: getattr(t, name)(dim=1), lambda v: ref(v, axis=1).astype(np.uint8), np.nan_to_num(x),
             dtypes=(U8,), grad=False, out_dtype=U8)


def test_nan_propagates_through_max_min_sum():
    x = jitorch.tensor([[1.0, np.nan, 3.0], [4.0, 5.0, 6.0]])
    assert np.isnan(x.amax().item()) and np.isnan(x.amin().item()) and np.isnan(x.sum().item())
    assert np.isnan(x.amax(1).tolist()[0]) and x.amax(1).tolist()[1] == 6.0
    assert np.isnan(x.amin(0).tolist()[1])
    assert jitorch.tensor([np.inf, -np.inf]).amax().item() == np.inf


@pytest.mark.parametrize("correction", [0, 1, 2])
@pytest.mark.parametrize("dim", [None, 0, -1, (0, 2)], ids=["all", "0", "-1", "(0,2)"])
@pytest.mark.parametrize("name", ["var", "std"])
def test_var_std(name, dim, correction):
    ref = np.var if name == "var" else np.std
    x = arr(3, 4, 5, seed=14)    # every reduced size exceeds the correction
    check_op(lambda t: getattr(t, name)(dim=dim, correction=correction, keepdim=correction == 1),
             lambda v: ref(v, axis=_axis(dim), ddof=correction, keepdims=correction == 1), x, dtypes=(F32, F64))


def test_var_std_unbiased_flag_and_tuple_outputs():
    check_op(lambda t: t.var(1, unbiased=False), lambda v: np.var(v, axis=1), X3, dtypes=(F64,))
    check_op(lambda t: t.std(unbiased=True), lambda v: np.std(v, ddof=1), X3, dtypes=(F64,))
    check_op(lambda t: jitorch.var_mean(t, 1) if isinstance(t, jitorch.Tensor) else torch.var_mean(t, 1),
             lambda v: (np.var(v, axis=1, ddof=1), np.mean(v, axis=1)), X3, dtypes=(F32,), grad=False)
    check_op(lambda t: jitorch.std_mean(t, (0, 2), correction=0) if isinstance(t, jitorch.Tensor)
             else torch.std_mean(t, (0, 2), correction=0),
             lambda v: (np.std(v, axis=(0, 2)), np.mean(v, axis=(0, 2))), X3, dtypes=(F64,), grad=False)


def test_var_with_too_few_elements():
    x = jitorch.tensor([1.0])
    assert np.isnan(x.var().item())                     # n - correction == 0
    assert x.var(correction=0).item() == 0.0
    assert jitorch.tensor([1.0, 2.0]).var(correction=5).item() == np.inf


@pytest.mark.parametrize("p", [2, 1, np.inf, -np.inf, 0, 3, "fro"], ids=str)
def test_norm(p):
    x = np.where(np.abs(X3) < 0.1, 0.5, X3)     # no zeros: every p-norm is differentiable
    pn = 2 if p == "fro" else p
    for dim in (None, 1, (0, 2)):
        if p == "fro" and dim == 1:
            continue
        check_op(lambda t, dim=dim: t.norm(p=p, dim=dim), lambda v, dim=dim: _np_norm(v, pn, _axis(dim), False), x,
                 dtypes=(F32, F64), grad=p != 0)
    check_op(lambda t: t.norm(p, 1, keepdim=True), lambda v: _np_norm(v, pn, (1,), True), x, dtypes=(F32,),
             grad=False)


@pytest.mark.parametrize("keepdim", [False, True], ids=["", "keepdim"])
@pytest.mark.parametrize("dim", [0, -1, (0, 2)], ids=["0", "-1", "(0,2)"])
def test_logsumexp(dim, keepdim):
    def ref(v):
        m = np.max(v, axis=_axis(dim), keepdims=True)
        r = np.log(np.sum(np.exp(v - m), axis=_axis(dim), keepdims=True)) + m
        return r if keepdim else np.squeeze(r, axis=_axis(dim))
    check_op(lambda t: t.logsumexp(dim, keepdim=keepdim), ref, X3 * 30, dtypes=(F32, F64))


def test_logsumexp_special_values():
    x = jitorch.tensor([[-np.inf, -np.inf], [np.inf, 1.0], [1000.0, 1000.0]])
    r = x.logsumexp(1).tolist()
    assert r[0] == -np.inf and r[1] == np.inf and abs(r[2] - (1000.0 + np.log(2))) < 1e-3
    assert jitorch.tensor([1, 2]).logsumexp(0).dtype is F32


def _softmax(v, dim):
    e = np.exp(v - v.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax(name, dim):
    ref = (lambda v: _softmax(v, dim)) if name == "softmax" else (lambda v: np.log(_softmax(v, dim)))
    check_op(lambda t: getattr(t, name)(dim), ref, X3 * 3, dtypes=(F32, F64, F16))
    check_op(lambda t: getattr(t, name)(dim), None, X3 * 3, dtypes=(F32,), layouts=LAYOUTS[1:], grad=False)


def test_softmax_functional_and_dtype():
    x = make(jitorch, X3, F32)
    r = jitorch.softmax(x, 1, dtype=F64)
    assert r.dtype is F64
    assert_close(np_of(r), _softmax(X3.astype(np.float32).astype(np.float64), 1), "float64", rtol=1e-6)
    assert jitorch.log_softmax(x, -1).dtype is F32


def test_softmax_stability_and_masking():
    x = jitorch.tensor([[1000.0, 1000.0, -np.inf], [-np.inf, 0.0, -np.inf]])
    assert x.softmax(1).tolist() == [[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]]
    ls = x.log_softmax(1).tolist()
    assert ls[1][1] == 0.0 and ls[1][0] == -np.inf
    assert np.isnan(jitorch.tensor([-np.inf, -np.inf]).softmax(0).tolist()).all()   # as in torch


def test_softmax_grad_rows_sum_to_zero():
    x = jitorch.tensor(X3, requires_grad=True)
    (x.softmax(-1) * jitorch.tensor(arr(2, 3, 4, seed=3))).sum().backward()
    assert np.allclose(np_of(x.grad).sum(-1), 0, atol=1e-6)


# -- special shapes: 0-d, empty, size-1 dims ---------------------------------------------------------
def test_zero_dim_input():
    x = jitorch.tensor(2.5, requires_grad=True)
    for name in ("sum", "mean", "amax", "amin", "prod"):
        r = getattr(x, name)()
        assert r.shape == () and r.item() == 2.5
        assert getattr(x, name)(0).shape == () and getattr(x, name)(-1, keepdim=True).shape == ()
    assert x.logsumexp(0).item() == 2.5 and x.softmax(0).item() == 1.0
    x.sum(0).backward()
    assert x.grad.item() == 1.0


@requires_torch
def test_empty_reductions_match_torch():
    cases = [lambda m: m.empty(0).sum(), lambda m: m.empty(0).prod(), lambda m: m.empty(0).mean(),
             lambda m: m.empty(0, 3).sum(0), lambda m: m.empty(0, 3).sum(1), lambda m: m.empty(0, 3).amax(1),
             lambda m: m.empty(2, 0).amin(0), lambda m: m.empty(0, dtype=m.bool).all(),
             lambda m: m.empty(0, dtype=m.bool).any(), lambda m: m.empty(0).logsumexp(0),
             lambda m: m.empty(0).norm(), lambda m: m.empty(0, dtype=m.int64).sum(),
             lambda m: m.empty(0, 2).softmax(1), lambda m: m.empty(0, 4).var(0)]
    for i, case in enumerate(cases):
        j, t = case(jitorch), case(torch)
        assert j.dtype.name == str(t.dtype)[6:] and tuple(j.shape) == tuple(t.shape), i
        assert_close(np_of(j), np_of(t), j.dtype.name, what=f"case {i}: ")


@requires_torch
@pytest.mark.parametrize("case", [lambda m: m.empty(0).amax(), lambda m: m.empty(0).amin(),
                                  lambda m: m.empty(0, 3).amax(0), lambda m: m.empty(2, 0).amin(1),
                                  lambda m: m.empty(0, 3).amax((0, 1))],
                         ids=["amax", "amin", "amax-dim0", "amin-dim1", "amax-tuple"])
def test_empty_max_min_raise_like_torch(case):
    with pytest.raises(Exception) as te:
        case(torch)
    with pytest.raises(type(te.value)):
        case(jitorch)


def test_sum_of_empty_is_zero_and_grad():
    x = jitorch.zeros(0, 3, requires_grad=True)
    s = x.sum()
    assert s.item() == 0.0 and s.shape == ()
    s.backward()
    assert tuple(x.grad.shape) == (0, 3)


def test_reduce_over_size_one_and_keepdim_shapes():
    x = jitorch.ones(2, 1, 3)
    assert tuple(x.sum(1).shape) == (2, 3) and tuple(x.sum(1, keepdim=True).shape) == (2, 1, 3)
    assert tuple(x.sum((0, 2), keepdim=True).shape) == (1, 1, 1)
    assert tuple(x.amax(dim=(), keepdim=False).shape) == ()
    assert tuple(x.sum(dim=[]).shape) == ()      # an empty dim list reduces everything, as in torch


# -- errors -----------------------------------------------------------------------------------------
def test_dim_errors():
    x = jitorch.ones(2, 3)
    with pytest.raises(IndexError, match="Dimension out of range"):
        x.sum(2)
    with pytest.raises(IndexError):
        x.amax(-3)
    with pytest.raises(RuntimeError, match="appears multiple times"):
        x.sum((0, 0))
    with pytest.raises(RuntimeError, match="appears multiple times"):
        x.sum((1, -1))
    with pytest.raises(RuntimeError, match="mean"):
        jitorch.tensor([1, 2]).mean()
    with pytest.raises(RuntimeError):
        jitorch.tensor([1, 2]).var()
    with pytest.raises(RuntimeError):
        jitorch.tensor([1, 2]).norm()


# -- larger inputs ----------------------------------------------------------------------------------
def test_float32_sum_is_accurate():
    x = jitorch.full((100003,), 0.1)
    assert abs(x.sum().item() - 100003 * np.float32(0.1)) < 1e-2
    big = arr(257, 129, seed=5)
    # float32 sums accumulate in float64: closer to NumPy's float64 sum than torch's float32 one
    check_op(lambda t: t.sum(0), lambda v: v.sum(0), big, dtypes=(F32,), grad=False, torch_fn=False)
    check_op(lambda t: t.amax(1), lambda v: v.max(1), big, dtypes=(F32,), grad=False)
