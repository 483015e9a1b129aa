"""Scans along a dim: cumsum, cumprod, cummax/cummin, logcumsumexp, and diff.

Each scan primitive runs a Numba kernel over an ``(outer, n, inner)`` view of
its contiguous input (``runtime.sort_scan_kernels``).  ``cumsum`` and
``logcumsumexp`` take a ``reverse`` flag, so their derivative rules (a
reversed scan of the gradient) are the same primitives again and double
backward works.  Float sums and products accumulate in float64, like torch
on the CPU; integer and bool inputs give int64 results.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _dtype as D
from .._dispatch import apply
from .._tensor import Tensor, wrap_dim
from ..amp.autocast_mode import state as _amp
from ..amp.policy import cast_inputs as _amp_cast
from ..runtime import sort_scan_kernels as K
from . import reductions as R
from . import views as V
from .registry import impl, kernel_op
from .shape_ops import cat, gather_along
from .sorting import return_types

__all__ = ["cummax", "cummin", "cumprod", "cumsum", "diff", "logcumsumexp"]
TENSOR_METHODS = ["cumsum", "cumprod", "cummax", "cummin", "logcumsumexp", "diff", "cumsum_", "cumprod_"]


def _as_3d(x: np.ndarray, dim: int, dtype) -> np.ndarray:
    shape = x.shape
    return np.ascontiguousarray(x, dtype=dtype).reshape(math.prod(shape[:dim]), shape[dim],
                                                        math.prod(shape[dim + 1:]))


def _scan_types(x_dtype: np.dtype) -> tuple:
    """(kernel input/output dtype, accumulator dtype) for a scan over ``x_dtype``."""
    if x_dtype == np.float64:
        return np.float64, np.float64
    if x_dtype.kind == "f":
        return np.float32, np.float64
    return np.int64, np.int64


def _run_scan(x: np.ndarray, dim: int, body) -> np.ndarray:
    """Run ``body(x3, out3, acc)`` on normalized dtypes and give back the torch result dtype."""
    kdt, acc_dt = _scan_types(x.dtype)
    x3 = _as_3d(x, dim, kdt)
    out = np.empty(x3.shape, dtype=kdt)
    if out.size:
        body(x3, out, np.empty(x3.shape[2], dtype=acc_dt))
    out = out.reshape(x.shape)
    return out.astype(x.dtype) if x.dtype.kind == "f" and out.dtype != x.dtype else out


# -- primitives -------------------------------------------------------------------------------------
def _rev_cumsum(g: Tensor, d: int) -> Tensor:
    return apply(CUMSUM, [g], {"dim": d, "reverse": True})


CUMSUM = kernel_op("cumsum", vjp=lambda c, g: (apply(CUMSUM, [g], {"dim": c.attrs["dim"],
                                                                    "reverse": not c.attrs["reverse"]}),),
                   saves="none")


def _cumprod_vjp(c, g):
    """d/dx_i of sum_j g_j * prod_{k<=j} x_k, correct when x has zeros (no division by them).

    Before the first zero of a row the usual ``revcumsum(g * out) / x`` holds;
    at the first zero the gradient is ``revcumsum(g * cumprod(x with that zero
    replaced by 1))``; after it every product contains the zero, so 0.  Those
    masks are right in value but not in derivative, so under ``create_graph``
    (double backward) an input with zeros takes the O(n^2) product form.
    """
    import jitorch as J
    x, out = c.inputs[0], c.out
    d = c.attrs["dim"]
    zero = J.eq(x, 0)
    if J.is_grad_enabled() and bool(R.any(zero)):
        return (_cumprod_grad_quadratic(x, g, d),)
    seen = apply(CUMSUM, [zero], {"dim": d, "reverse": False})
    before = J.eq(seen, 0)
    first = J.logical_and(zero, J.eq(seen, 1))
    a = _rev_cumsum(g * out, d) / J.where(before, x, 1.0)
    p = apply(CUMPROD, [J.where(first, 1.0, x)], {"dim": d})
    b = _rev_cumsum(g * p, d)
    return (J.where(before, a, 0.0) + J.where(first, b, 0.0),)


def _cumprod_grad_quadratic(x: Tensor, g: Tensor, d: int) -> Tensor:
    """grad_k = sum_{j>=k} g_j prod_{i<=j, i!=k} x_i from an (n, n) table per row: smooth everywhere."""
    import jitorch as J
    xm, gm = V.movedim(x, d, -1), V.movedim(g, d, -1)
    n = xm.shape[-1]
    k_idx = J.arange(n, device=x.device)
    omit = J.eq(V.unsqueeze(k_idx, 1), V.unsqueeze(k_idx, 0))           # [k, i]: i is the omitted factor
    table = apply(CUMPROD, [J.where(omit, 1.0, V.unsqueeze(xm, -2))], {"dim": xm.ndim})  # [..., k, j]
    upper = J.ge(V.unsqueeze(k_idx, 0), V.unsqueeze(k_idx, 1))         # [k, j]: j >= k
    res = R.sum(J.where(upper, table * V.unsqueeze(gm, -2), 0.0), -1)
    return V.movedim(res, -1, d)


CUMPROD = kernel_op("cumprod", vjp=_cumprod_vjp, saves="both")


def _logcumsumexp_vjp(c, g):
    """grad_i = sum_{j>=i} g_j exp(x_i - out_j), summed in log space separately for g > 0 and g < 0."""
    import jitorch as J
    x, out = c.inputs[0], c.out
    d = c.attrs["dim"]
    rev = {"dim": d, "reverse": not c.attrs["reverse"]}
    # the most negative finite number, not -inf: -inf - -inf would make NaNs in double backward
    low = float(np.finfo(g.dtype.numpy_dtype).min)
    log_pos = J.where(g > 0, J.log(J.where(g > 0, g, 1.0)), low)
    log_neg = J.where(g < 0, J.log(J.where(g < 0, -g, 1.0)), low)
    pos = J.exp(apply(LOGCUMSUMEXP, [log_pos - out], rev) + x)
    neg = J.exp(apply(LOGCUMSUMEXP, [log_neg - out], rev) + x)
    return (pos - neg,)


LOGCUMSUMEXP = kernel_op("logcumsumexp", vjp=_logcumsumexp_vjp, saves="both")
CUMEXT_INDICES = kernel_op("cumext_indices", differentiable=False)


@impl("cumsum")
def _cumsum_cpu(x, dim, reverse):
    return _run_scan(x, dim, lambda x3, out, acc: K.cumsum_3d(x3, reverse, acc, out))


@impl("cumprod")
def _cumprod_cpu(x, dim):
    return _run_scan(x, dim, lambda x3, out, acc: K.cumprod_3d(x3, acc, out))


@impl("logcumsumexp")
def _logcumsumexp_cpu(x, dim, reverse):
    return _run_scan(x, dim, lambda x3, out, acc: K.logcumsumexp_3d(x3, reverse, out))


@impl("cumext_indices")
def _cumext_cpu(x, dim, want_max):
    kdt = _scan_types(x.dtype)[0]
    x3 = _as_3d(x, dim, kdt)
    out = np.empty(x3.shape, dtype=np.int64)
    if out.size:
        K.cumext_indices_3d(x3, want_max, out)
    return out.reshape(x.shape)


# -- public functions ------------------------------------------------------------------------------------
def _prepare(name: str, input: Tensor, dim: int, dtype) -> tuple:
    """(input as >= 1-D in the requested dtype, wrapped dim, original shape)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}(): argument 'input' (position 1) must be Tensor, not {type(input).__name__}")
    d = wrap_dim(dim, input.ndim)
    shape = tuple(input.shape)
    if dtype is not None:
        input = input.to(dtype)
    return (V.reshape(input, (1,)) if input.ndim == 0 else input), d, shape


def _scan(op, name: str, input: Tensor, dim: int, dtype, attrs: dict) -> Tensor:
    x, d, shape = _prepare(name, input, dim, dtype)
    if not x.dtype.is_floating_point:
        x = x.to(D.int64)  # torch: integer and bool scans give int64
    r = apply(op, [x], dict(attrs, dim=d))
    return V.reshape(r, shape) if len(shape) == 0 else r


def cumsum(input: Tensor, dim: int, *, dtype=None, out=None) -> Tensor:
    """Running sum along ``dim``.

    >>> jitorch.cumsum(jitorch.tensor([1, 2, 3]), 0)
    tensor([1, 3, 6])
    """
    if _amp.active and dtype is None:  # float32 under CUDA autocast (amp/policy.py)
        input = _amp_cast("cumsum", input)
    return _scan(CUMSUM, "cumsum", input, dim, dtype, {"reverse": False})


def cumprod(input: Tensor, dim: int, *, dtype=None, out=None) -> Tensor:
    """Running product along ``dim`` (its gradient is exact when the input has zeros)."""
    if _amp.active and dtype is None:
        input = _amp_cast("cumprod", input)
    return _scan(CUMPROD, "cumprod", input, dim, dtype, {})


def logcumsumexp(input: Tensor, dim: int, *, out=None) -> Tensor:
    """``log(cumsum(exp(x)))`` along ``dim``, computed stably; floating inputs only."""
    if isinstance(input, Tensor) and not input.dtype.is_floating_point:
        from .._dispatch import _type_word
        raise NotImplementedError(f"\"logcumsumexp_out_cpu\" not implemented for '{_type_word(input.dtype)}'")
    return _scan(LOGCUMSUMEXP, "logcumsumexp", input, dim, None, {"reverse": False})


def _cumext(kind: str, want_max: bool, input: Tensor, dim: int):
    x, d, shape = _prepare(kind, input, dim, None)
    idx = apply(CUMEXT_INDICES, [x], {"dim": d, "want_max": want_max})
    vals = gather_along(x, idx, d)
    if len(shape) == 0:
        vals, idx = V.reshape(vals, ()), V.reshape(idx, ())
    return getattr(return_types, kind)(vals, idx)


def cummax(input: Tensor, dim: int, *, out=None):
    """Running maximum along ``dim`` and where it was found (ties and NaNs take the later index)."""
    return _cumext("cummax", True, input, dim)


def cummin(input: Tensor, dim: int, *, out=None):
    """Running minimum along ``dim`` and where it was found (ties and NaNs take the later index)."""
    return _cumext("cummin", False, input, dim)


def cumsum_(self: Tensor, dim: int, *, dtype=None) -> Tensor:
    return self.copy_(cumsum(self, dim, dtype=dtype))


def cumprod_(self: Tensor, dim: int, *, dtype=None) -> Tensor:
    return self.copy_(cumprod(self, dim, dtype=dtype))


def _check_diff_extra(input: Tensor, extra: Tensor, d: int) -> None:
    if extra.ndim != input.ndim:
        raise RuntimeError("diff expects prepend or append to be the same dimension as input")
    for k in range(input.ndim):
        if k != d and extra.shape[k] != input.shape[k]:
            raise RuntimeError("diff expects the shape of tensor to prepend or append to match that of input "
                               f"except along the differencing dimension; input.size({k}) = {input.shape[k]}, "
                               f"but got tensor.size({k}) = {extra.shape[k]}")


def diff(input: Tensor, n: int = 1, dim: int = -1, prepend: Tensor | None = None,
         append: Tensor | None = None) -> Tensor:
    """``n``-th forward difference along ``dim`` (after joining ``prepend``/``append``); bool uses xor."""
    if not isinstance(input, Tensor):
        raise TypeError(f"diff(): argument 'input' (position 1) must be Tensor, not {type(input).__name__}")
    if input.ndim == 0:
        raise RuntimeError("diff expects input to be at least one-dimensional")
    if n < 0:
        raise RuntimeError(f"order must be non-negative but got {n}")
    d = wrap_dim(dim, input.ndim)
    for extra in (prepend, append):
        if extra is not None:
            _check_diff_extra(input, extra, d)
    parts = [t for t in (prepend, input, append) if t is not None]
    x = cat(parts, d) if len(parts) > 1 else input
    import jitorch as J
    for _ in range(n):
        m = x.shape[d]
        if m == 0:
            break
        hi, lo = V.narrow(x, d, 1, m - 1), V.narrow(x, d, 0, m - 1)
        x = J.logical_xor(hi, lo) if x.dtype is D.bool_ else hi - lo
    return x
