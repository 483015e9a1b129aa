"""Scans along a dim: cumsum, cumprod, cummax/cummin, logcumsumexp, diff."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
from helpers import LAYOUTS, arr, check_grad, check_op, torch

import jitorch

F16, F32, F64, I64, I32, I8, B = (jitorch.float16, jitorch.float32, jitorch.float64, jitorch.int64, jitorch.int32,
                                  jitorch.int8, jitorch.bool)
NAN = float("nan")
X = arr(3, 4, seed=21)
SMALL = np.array([[1.0, -2.0, 3.0], [2.0, 1.0, -1.0]])


def lib(t):
    return jitorch if isinstance(t, jitorch.Tensor) else torch


def gradgrad(fn, x: jitorch.Tensor) -> bool:
    """Finite-difference check of the first gradient (core gradgradcheck runs it under no_grad)."""
    go = jitorch.randn(*fn(x).shape, dtype=jitorch.float64, generator=jitorch.Generator().manual_seed(0))

    def first(t, g):
        with jitorch.enable_grad():
            return jitorch.autograd.grad(fn(t), [t], g, create_graph=True)[0]
    return jitorch.autograd.gradcheck(first, (x, go.requires_grad_()))


def _int_result(dt):
    return dt if dt.is_floating_point else I64


# -- cumsum / cumprod ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, np_fn", [("cumsum", np.cumsum), ("cumprod", np.cumprod)])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cumsum_cumprod(name, np_fn, dim):
    check_op(lambda a: getattr(lib(a), name)(a, dim), lambda a: np_fn(a, dim), SMALL,
             dtypes=(F32, F64, F16, I64, I8, B), layouts=LAYOUTS, out_dtype=_int_result)


@pytest.mark.parametrize("name", ["cumsum", "cumprod"])
def test_scan_dtype_argument_and_0d(name):
    f = getattr(jitorch, name)
    r = f(jitorch.tensor([1, 2, 3]), 0, dtype=F32)
    assert r.dtype is F32 and r.tolist() == ([1.0, 3.0, 6.0] if name == "cumsum" else [1.0, 2.0, 6.0])
    z = f(jitorch.tensor(2.0), 0)
    assert z.ndim == 0 and z.item() == 2.0
    assert f(jitorch.tensor(2.0), -1).item() == 2.0
    assert tuple(f(jitorch.zeros(0, 3), 0).shape) == (0, 3)
    with pytest.raises(IndexError, match=re.escape("Dimension out of range (expected to be in range of [-1, 0], but "
                                                   "got 1)")):
        f(jitorch.tensor([2.0]), 1)
    with pytest.raises(TypeError):
        f(jitorch.tensor([2.0]))  # dim is required, like torch


def test_cumsum_float32_accumulates_in_float64():
    x = np.full(100_000, 0.1, dtype=np.float32)
    got = jitorch.cumsum(jitorch.from_numpy(x), 0).numpy()
    ref = np.cumsum(x.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(got, ref)


def test_inplace_scans():
    x = jitorch.tensor([1.0, 2.0, 3.0])
    assert x.cumsum_(0) is x and x.tolist() == [1.0, 3.0, 6.0]
    assert x.cumprod_(0).tolist() == [1.0, 3.0, 18.0]


@pytest.mark.parametrize("data", [[2.0, 0.0, 3.0, 0.0, 4.0], [0.0, 1.5, 2.0], [1.5, 2.0, 0.0], [0.0, 0.0, 2.0]])
def test_cumprod_grad_with_zeros(data):
    x = np.array(data)
    check_grad(lambda a: lib(a).cumprod(a, 0), [x], (lambda a: torch.cumprod(a, 0)) if torch else None)
    rows = np.stack([x, x[::-1], np.ones_like(x)], 1)  # zeros in different places per column
    check_grad(lambda a: lib(a).cumprod(a, 0), [rows], (lambda a: torch.cumprod(a, 0)) if torch else None)


# -- cummax / cummin --------------------------------------------------------------------------------------
CUM_DATA = np.array([[1.0, 3.0, 2.0, 3.0, 0.0, 5.0, 5.0, 1.0], [4.0, 4.0, 1.0, 1.0, 2.0, 0.0, 0.0, 6.0]])


def _np_cumext(a, dim, want_max):
    m = np.moveaxis(a, dim, -1)
    vals = np.empty_like(m)
    idx = np.empty(m.shape, dtype=np.int64)
    for r in np.ndindex(m.shape[:-1]):
        best, bi = m[r][0], 0
        for j, v in enumerate(m[r]):
            if (v >= best) if want_max else (v <= best):
                best, bi = v, j
            vals[r + (j,)], idx[r + (j,)] = best, bi
    return np.moveaxis(vals, -1, dim), np.moveaxis(idx, -1, dim)


@pytest.mark.parametrize("name", ["cummax", "cummin"])
@pytest.mark.parametrize("dim", [0, 1])
def test_cummax_cummin(name, dim):
    check_op(lambda a: getattr(lib(a), name)(a, dim), lambda a: _np_cumext(a, dim, name == "cummax"), CUM_DATA,
             dtypes=(F32, F64, I64, B), layouts=LAYOUTS, grad=False)
    check_op(lambda a: getattr(lib(a), name)(a, dim), None, X, dtypes=(F64,))  # distinct values: gradients


def test_cummax_nan_ties_and_0d():
    check_op(lambda a: lib(a).cummax(a, 0), None, np.array([1.0, 3.0, 2.0, 3.0, NAN, 5.0, NAN, 1.0]),
             dtypes=(F32, F64), grad=False)
    check_op(lambda a: lib(a).cummin(a, 0), None, np.array([3.0, 1.0, NAN, 1.0, NAN, 0.0]), dtypes=(F64,),
             grad=False)
    r = jitorch.cummax(jitorch.tensor(1.0), 0)
    assert r.values.ndim == 0 and r.indices.item() == 0 and isinstance(r, jitorch.return_types.cummax)
    _v, i = jitorch.cummin(jitorch.tensor([3.0, 1.0, 1.0]), 0)
    assert i.tolist() == [0, 1, 2]


def test_cummax_grad_accumulates_on_repeated_indices():
    x = jitorch.tensor([1.0, 3.0, 2.0, 0.5], dtype=F64, requires_grad=True)
    jitorch.cummax(x, 0).values.sum().backward()
    assert x.grad.tolist() == [1.0, 3.0, 0.0, 0.0]


# -- logcumsumexp --------------------------------------------------------------------------------------------
def _np_lcse(a, dim):
    return np.log(np.cumsum(np.exp(a), dim))


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_logcumsumexp(dim):
    check_op(lambda a: lib(a).logcumsumexp(a, dim), lambda a: _np_lcse(a, dim), X, dtypes=(F32, F64),
             layouts=LAYOUTS)


def test_logcumsumexp_special_values():
    check_op(lambda a: lib(a).logcumsumexp(a, 0), None, np.array([1.0, 2.0, -math.inf, 3.0]), dtypes=(F32, F64),
             grad=False)
    check_op(lambda a: lib(a).logcumsumexp(a, 0), None, np.array([math.inf, 2.0, -math.inf]), dtypes=(F64,),
             grad=False)
    check_op(lambda a: lib(a).logcumsumexp(a, 0), None, np.array([-math.inf, -math.inf, 1.0]), dtypes=(F64,),
             grad=False)
    big = jitorch.logcumsumexp(jitorch.tensor([1000.0, 1000.0]), 0)
    assert abs(big[1].item() - (1000 + math.log(2))) < 1e-3
    with pytest.raises(NotImplementedError, match="\"logcumsumexp_out_cpu\" not implemented for 'Long'"):
        jitorch.logcumsumexp(jitorch.tensor([1, 2]), 0)


def test_logcumsumexp_grad_with_mixed_sign_cotangent():
    x = np.array([[0.5, -1.0, 2.0, 0.0], [3.0, 1.0, -2.0, 0.5]])
    check_grad(lambda a: lib(a).logcumsumexp(a, 1), [x], (lambda a: torch.logcumsumexp(a, 1)) if torch else None)


# -- diff ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n, dim", [(1, -1), (2, -1), (1, 0), (3, 1), (0, 1), (5, 1)])
def test_diff(n, dim):
    check_op(lambda a: lib(a).diff(a, n, dim), lambda a: np.diff(a, n, dim), X, dtypes=(F32, F64, I64, B),
             layouts=LAYOUTS, grad=n > 0)


def test_diff_prepend_append():
    pre, app = arr(3, 1, seed=1), arr(3, 2, seed=2)
    check_op(lambda a, p, q: lib(a).diff(a, 2, 1, p, q), lambda a, p, q: np.diff(a, 2, 1, prepend=p, append=q),
             X, pre, app, dtypes=(F32, F64))
    r = jitorch.diff(jitorch.tensor([1, 2]), prepend=jitorch.tensor([0.5]))
    assert r.dtype is F32 and r.tolist() == [0.5, 1.0]


@pytest.mark.parametrize("kwargs, msg", [
    ({"n": -1}, "order must be non-negative but got -1"),
    ({"prepend": np.zeros(())}, "diff expects prepend or append to be the same dimension as input"),
    ({"append": np.zeros((2, 1))}, "input.size(0) = 3, but got tensor.size(0) = 2"),
])
def test_diff_errors(kwargs, msg):
    kwargs = {k: jitorch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    with pytest.raises(RuntimeError, match=re.escape(msg)):
        jitorch.diff(jitorch.tensor(X), **kwargs)
    with pytest.raises(RuntimeError, match="diff expects input to be at least one-dimensional"):
        jitorch.diff(jitorch.tensor(1.0))


# -- gradients ------------------------------------------------------------------------------------------------------
GRAD_CASES = [
    ("cumsum0", lambda a: lib(a).cumsum(a, 0)),
    ("cumsum1", lambda a: a.cumsum(-1)),
    ("cumsum_dtype", lambda a: lib(a).cumsum(a, 1, dtype=lib(a).float64)),
    ("cumprod", lambda a: lib(a).cumprod(a, 1)),
    ("cummin", lambda a: lib(a).cummin(a, 1).values),
    ("logcumsumexp", lambda a: lib(a).logcumsumexp(a, 0)),
    ("diff", lambda a: lib(a).diff(a, 2, 0)),
]


@pytest.mark.parametrize("name, fn", GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_grads(name, fn):
    check_grad(fn, [X], fn if torch is not None else None)


@pytest.mark.parametrize("fn", [lambda a: jitorch.cumsum(a * a, 1), lambda a: jitorch.cumprod(a, 1),
                                lambda a: jitorch.logcumsumexp(a * a, 0), lambda a: jitorch.cummax(a.exp(), 1).values])
def test_double_backward(fn):
    assert gradgrad(fn, jitorch.tensor(X, dtype=F64, requires_grad=True))


def test_cumprod_double_backward_with_zero():
    x = jitorch.tensor([[2.0, 0.0, 3.0], [1.5, 2.0, 0.5]], dtype=F64, requires_grad=True)
    assert gradgrad(lambda a: jitorch.cumprod(a, 1), x)
