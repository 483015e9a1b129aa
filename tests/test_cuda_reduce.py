"""Reductions on CUDA (sum, prod, amax, amin, all, any, norm2) against the CPU implementations.

Runs on Numba's CUDA simulator (tests/conftest.py), which launches 8-thread
blocks and at most 4 of them, so tensors of a few dozen elements already take
every path: block-per-output ("rows"), thread-per-output ("cols"), and the
two-pass split reduction with per-block partials.
"""
from __future__ import annotations

import numpy as np
import pytest
from _cuda_kernel_helpers import assert_same, fast_sim_threads  # noqa: F401 - autouse fixture

import jitorch

pytestmark = [pytest.mark.skipif(not jitorch.cuda.is_available(), reason="numba.cuda (or its simulator) is missing"),
              pytest.mark.filterwarnings("ignore::RuntimeWarning")]

if jitorch.cuda.is_available():
    from jitorch.runtime.cuda import array, dispatch_cache
    from jitorch.runtime.cuda import reduce as R

BOOL = np.dtype(bool)
DTYPES = [np.float32, np.float64, np.float16, np.int64, np.int32, np.int8, np.uint8, np.bool_]
DIMS = [(0,), (1,), (2,), (0, 2), (1, 2), (0, 1, 2)]


def _input(dtype, shape=(2, 3, 4), seed=0):
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.uniform(-2, 2, shape).astype(dtype)
    if dtype == BOOL:
        return rng.uniform(0, 1, shape) > 0.3
    lo = 0 if dtype.kind == "u" else -3
    return rng.integers(lo, 4, shape).astype(dtype)


def _out_dtype(kind, dtype):
    """The result dtype the front end asks for (ops/reductions.py)."""
    dtype = np.dtype(dtype)
    if kind in ("sum", "prod"):
        return dtype if dtype.kind == "f" else np.dtype(np.int64)
    if kind in ("all", "any"):
        return np.dtype(np.uint8) if dtype == np.uint8 else BOOL
    return dtype


def _check(kind, x, dims, keepdim=False):
    out = _out_dtype(kind, x.dtype)
    exact = out.kind != "f"
    rtol = {np.dtype(np.float16): 1e-3, np.dtype(np.float32): 1e-6}.get(out, 1e-12)
    return assert_same(kind, x, dims=tuple(dims), keepdim=keepdim, out_dtype=out, exact=exact, rtol=rtol, atol=0)


@pytest.mark.parametrize("kind", ["sum", "prod", "amax", "amin", "all", "any"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_reductions_match_cpu(kind, dtype):
    x = _input(dtype)
    if kind == "prod" and np.dtype(dtype).kind == "f":
        x = (x * 0.5 + np.sign(x)).astype(dtype)  # magnitudes near 1 keep products in range
    for k, dims in enumerate(DIMS):
        _check(kind, x, dims, keepdim=k % 2 == 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16], ids=str)
def test_norm2_matches_cpu(dtype):
    x = _input(dtype)
    for k, dims in enumerate(DIMS):
        _check("norm2", x, dims, keepdim=k % 2 == 0)


def _launch_names():
    return {name for name, n in dispatch_cache.launches().items() if n}


def test_every_strategy_runs():
    before = dict(dispatch_cache.launches())
    x = _input(np.float32, (40,), seed=3)                # whole tensor: split into partials + second pass
    _check("sum", x, (0,))
    _check("amax", x, (0,))
    m = _input(np.float32, (6, 5), seed=4)
    _check("sum", m, (0,))                               # outer dim of a row-major matrix: thread per column
    _check("sum", m, (1,))                               # inner dim: block per row
    tall = _input(np.float64, (40, 3), seed=8)
    _check("sum", tall, (0,))                            # few long columns: split columns + second pass
    _check("amin", tall, (0,))
    ran = {name for name, n in dispatch_cache.launches().items() if n > before.get(name, 0)}
    assert any("_rows_partial_" in name for name in ran)
    assert any("_cols_partial_" in name for name in ran)
    assert any("_partials_" in name and "_rows_" in name for name in ran)
    assert any("_partials_" in name and "_cols_" in name for name in ran)
    assert any("_cols_k1r1" in name for name in ran)
    assert any("_rows_k1r1" in name for name in ran)


@pytest.mark.parametrize("view", [
    lambda a: a.transpose(2, 0, 1),
    lambda a: a[:, ::2, 1:],
    lambda a: a[1],
], ids=["transposed", "sliced", "indexed"])
def test_strided_inputs_are_read_in_place(view):
    base = _input(np.float64, (3, 4, 5), seed=5)
    host = np.ascontiguousarray(view(base))
    dev = view(array.from_host(base))
    for kind in ("sum", "amin", "norm2"):
        for dims in [(0,), (host.ndim - 1,), tuple(range(host.ndim))]:
            want = jitorch.ops.registry.OPS[kind].impl["cpu"](host, dims, False, np.dtype(np.float64))
            got = R.reduce(kind, dev, dims, False, np.float64).to_host()
            np.testing.assert_allclose(got, want, rtol=1e-12)


def test_broadcast_input_has_zero_strides():
    from jitorch.runtime.cuda.copy import broadcast_to
    row = np.array([1.5, -2.0, 4.0])
    dev = broadcast_to(array.from_host(row), (4, 3))
    assert dev.strides[0] == 0
    np.testing.assert_allclose(R.reduce("sum", dev, (0,), False, np.float64).to_host(), row * 4)
    np.testing.assert_allclose(R.reduce("prod", dev, (1,), True, np.float64).to_host(), np.full((4, 1), row.prod()))


def test_nan_propagates_through_max_and_min():
    x = np.arange(40, dtype=np.float32)
    for pos in (0, 17, 39):  # first element, mid chunk, last element of the last split
        y = x.copy()
        y[pos] = np.nan
        for kind in ("amax", "amin"):
            got = R.reduce(kind, array.from_host(y), (0,), False, np.float32).to_host()
            assert np.isnan(got), (kind, pos)
    m = np.array([[1.0, np.nan, 3.0], [4.0, 5.0, -np.inf]], np.float16)
    _check("amax", m, (1,))
    _check("amin", m, (0,))
    _check("amax", m, (0, 1))


def test_empty_and_zero_dim_inputs():
    e = np.zeros((2, 0, 3), np.float32)
    for kind in ("sum", "prod", "all", "any", "norm2"):
        _check(kind, e, (1,))
        _check(kind, e, (0,))  # no outputs at all
    with pytest.raises(IndexError, match="non-zero size"):
        R.reduce("amax", array.from_host(e), (1,), False, np.float32)
    s = np.array(2.5, np.float32)
    for kind in ("sum", "amax", "norm2", "all"):
        _check(kind, s, ())


def test_integer_sums_accumulate_in_int64():
    x = np.full((30,), 100, np.int8)  # 3000 overflows int8 but not the int64 accumulator
    got = R.reduce("sum", array.from_host(x), (0,), False, np.int64).to_host()
    assert got.dtype == np.int64 and int(got) == 3000
    b = np.ones(20, bool)
    assert int(R.reduce("sum", array.from_host(b), (0,), False, np.int64).to_host()) == 20


# -- tensors --------------------------------------------------------------------------------------------

def _both(a, dtype=jitorch.float32, requires_grad=False):
    c = jitorch.tensor(a, dtype=dtype, requires_grad=requires_grad)
    g = jitorch.tensor(a, dtype=dtype).to("cuda").requires_grad_(requires_grad)
    return c, g


def test_tensor_reductions_and_composites():
    a = np.random.default_rng(6).normal(size=(3, 5))
    c, g = _both(a)
    for fn in (lambda t: t.sum(), lambda t: t.sum(1, keepdim=True), lambda t: t.mean(0), lambda t: t.amax(1),
               lambda t: t.var(1), lambda t: t.norm(), lambda t: t.softmax(1), lambda t: t.logsumexp(0),
               lambda t: (t > 0).all(1), lambda t: (t > 0).any(), lambda t: t.prod(0)):
        want, got = fn(c), fn(g)
        assert got.device.type == "cuda" and got.dtype == want.dtype
        np.testing.assert_allclose(got.cpu().numpy(), want.numpy(), rtol=1e-5, atol=1e-6)


def test_tensor_reduction_gradients():
    a = np.array([[0.5, -1.0, 2.0, 2.0], [3.0, 0.25, -0.5, 1.0]])
    outs = []
    for t in _both(a, requires_grad=True):
        (t.amax(1).sum() + (t * t).sum(0).norm()).backward()
        outs.append(t.grad.cpu().numpy())
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-5, atol=1e-6)
