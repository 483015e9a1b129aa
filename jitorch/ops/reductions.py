"""Reduction primitives (sum, prod, amax, amin, all, any) and composites built on them.

A reduction runs one generated kernel over a (outer, reduced, inner) view of
its input; see ``runtime.codegen_cpu.render_reduce``.  float16 and bfloat16
inputs are read as float32 (sums in float64) and the result rounded once.

Under ``jitorch.autocast`` the public entry points pass their input through the
autocast policy (``amp/policy.py``: on CUDA sum, prod, softmax, log_softmax,
logsumexp and norm run in float32, as in torch); composites call the
policy-free ``_sum`` so that e.g. ``mean`` keeps its input's dtype.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _dtype as D
from .._dispatch import apply
from .._tensor import Tensor, wrap_dim
from ..amp.autocast_mode import state as _amp
from ..amp.policy import cast_inputs
from ..runtime import cpu
from .eager_fast import cpu_float_eager
from .registry import impl, kernel_op

# name -> (init, combine, finalize, pre, reassociate)
_SPECS = {
    "sum": ("0", "radd({acc}, {v})", "{acc}", "{x}", True),
    "prod": ("1", "rmul({acc}, {v})", "{acc}", "{x}", True),
    "amax": ("-np.inf", "{v} if ({v} > {acc} or {v} != {v}) and {acc} == {acc} else {acc}", "{acc}", "{x}", False),
    "amin": ("np.inf", "{v} if ({v} < {acc} or {v} != {v}) and {acc} == {acc} else {acc}", "{acc}", "{x}", False),
    "all": ("True", "{acc} and {v}", "{acc}", "({x} != 0)", False),
    "any": ("False", "{acc} or {v}", "{acc}", "({x} != 0)", False),
}
_INT_MINMAX = {
    "amax": ("{lo}", "{v} if {v} > {acc} else {acc}", "{acc}", "{x}", False),
    "amin": ("{hi}", "{v} if {v} < {acc} else {acc}", "{acc}", "{x}", False),
}


_ALL_DIMS = [tuple(range(n)) for n in range(65)]


def normalize_dims(dim, ndim):
    """``dim`` (None, int, or sequence) as a sorted tuple of distinct non-negative dims."""
    if dim is None:
        return _ALL_DIMS[ndim]
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    if len(dims) == 0:
        return tuple(range(ndim))
    out = sorted(wrap_dim(d, max(ndim, 1)) for d in dims)
    if ndim == 0:
        return ()
    if len(set(out)) != len(out):
        raise RuntimeError(f"dim {out[0]} appears multiple times in the list of dims")
    return tuple(out)


def _to_3d(x: np.ndarray, dims):
    """A (outer, k, inner) array whose axis 1 covers ``dims``; copies only if needed."""
    shp = x.shape
    nd = len(shp)
    if dims and dims[-1] - dims[0] == len(dims) - 1 and x.flags.c_contiguous:
        return x.reshape(math.prod(shp[:dims[0]]), math.prod(shp[dims[0]:dims[-1] + 1]),
                         math.prod(shp[dims[-1] + 1:]))
    keep = [d for d in range(nd) if d not in dims]
    y = np.ascontiguousarray(x.transpose(keep + list(dims)))
    return y.reshape(math.prod([shp[d] for d in keep]), math.prod([shp[d] for d in dims]), 1)


_BOOL_NP = np.dtype(bool)
_F64_NP = np.dtype(np.float64)
_I64_NP = np.dtype(np.int64)
_F32_NP = np.dtype(np.float32)


def _acc_dtype(kind, dt):
    if kind == "all" or kind == "any":
        return _BOOL_NP
    if kind == "sum" or kind == "prod":
        # float32 sums accumulate in float64: accurate, and still vectorized
        return _F64_NP if dt.is_floating_point else _I64_NP
    return _F32_NP if dt is D.float16 or dt is D.bfloat16 else dt.numpy_dtype


def _out_shape(shp, dims, keepdim):
    if keepdim:
        return tuple(1 if d in dims else s for d, s in enumerate(shp))
    return tuple(s for d, s in enumerate(shp) if d not in dims)


def _reduce_impl(kind):
    def run(x, dims, keepdim, out_dtype):
        out_np = out_dtype
        dt = D.from_numpy(x.dtype)
        # half and bfloat16 are read as float32 (the kernels have no 16-bit float arithmetic)
        src = x.astype(np.float32) if dt is D.float16 else D.bf16_values(x) if dt is D.bfloat16 else x
        shape = _out_shape(x.shape, dims, keepdim)
        if x.ndim == 0:
            src = src.reshape(1, 1, 1)
        else:
            src = _to_3d(src, dims)
        if src.shape[1] == 0 and kind in ("amax", "amin"):
            raise IndexError(f"{kind}(): Expected reduction dim {dims[0] if dims else 0} to have non-zero size.")
        spec = _SPECS[kind]
        if kind in _INT_MINMAX and not dt.is_floating_point:
            info = np.iinfo(src.dtype) if src.dtype != np.bool_ else None
            lo, hi = (int(info.min), int(info.max)) if info else (0, 1)
            s = _INT_MINMAX[kind]
            spec = (s[0].format(lo=lo, hi=hi),) + s[1:]
        acc = _acc_dtype(kind, dt)
        half_out = out_np == np.float16 or out_np == D.BF16_STORAGE
        kern_out = _F32_NP if half_out else out_np
        res = cpu.run_reduce(kind, spec, src, acc, kern_out, shape)
        if res.dtype != out_np:
            res = D.to_storage(res, D.from_numpy(np.dtype(out_np)))
        return res if res.shape == shape else res.reshape(shape)
    return run


def _expand_grad(g, c):
    """Broadcast a reduced gradient back over the reduced dims."""
    shape = c.in_meta[0][0]
    dims = c.attrs["dims"]
    if not c.attrs["keepdim"]:
        for d in dims:
            g = g.unsqueeze(d)
    return g.expand(shape)


def _minmax_vjp(c, g):
    x = c.inputs[0]
    out = c.out
    dims, keepdim = c.attrs["dims"], c.attrs["keepdim"]
    if not keepdim:
        for d in dims:
            out = out.unsqueeze(d)
            g = g.unsqueeze(d)
    mask = (x == out).to(g.dtype)
    return (mask * g / mask.sum(dims, keepdim=True),)


def _prod_vjp(c, g):
    x = c.inputs[0]
    out = c.out
    dims, keepdim = c.attrs["dims"], c.attrs["keepdim"]
    if not keepdim:
        for d in dims:
            out = out.unsqueeze(d)
            g = g.unsqueeze(d)
    import jitorch as J
    if not bool((x == 0).any()):
        return (g * out / x,)
    # with zeros: product of all other elements, computed by exclusive cumprods
    if len(dims) == 1 and x.ndim > 0:
        d = dims[0]
        ones = J.ones_like(x.narrow(d, 0, 1))
        left = J.cat([ones, x.narrow(d, 0, x.shape[d] - 1)], d).cumprod(d)
        right = J.cat([x.narrow(d, 1, x.shape[d] - 1), ones], d).flip(d).cumprod(d).flip(d)
        return (g * left * right,)
    flat = x.reshape(-1) if x.ndim else x.reshape(1)
    res = _prod_vjp_flat(flat, g.reshape(-1)[0] if g.numel() == 1 else g)
    return (res.reshape(x.shape),)


def _prod_vjp_flat(flat, g):
    import jitorch as J
    ones = J.ones_like(flat[:1])
    left = J.cat([ones, flat[:-1]]).cumprod(0)
    right = J.cat([flat[1:], ones]).flip(0).cumprod(0).flip(0)
    return g * left * right


# the gradient takes the input's dtype (a half sum may have produced a float32 result, see mean)
SUM = kernel_op("sum", vjp=lambda c, g: (_expand_grad(g, c).to(c.in_meta[0][1]),), saves="none")
PROD = kernel_op("prod", vjp=_prod_vjp, saves="both")
AMAX = kernel_op("amax", vjp=_minmax_vjp, saves="both")
AMIN = kernel_op("amin", vjp=_minmax_vjp, saves="both")
ALL = kernel_op("all", differentiable=False)
ANY = kernel_op("any", differentiable=False)
for _k in ("sum", "prod", "amax", "amin", "all", "any"):
    impl(_k)(_reduce_impl(_k))
for _op in (SUM, PROD, AMAX, AMIN, ALL, ANY):
    _op.bf16_native = True  # the implementations read bfloat16 bits themselves


def _reduce(op, input, dim, keepdim, out_dtype):
    if not isinstance(input, Tensor):
        raise TypeError(f"{op.name}(): argument 'input' (position 1) must be Tensor, not {type(input).__name__}")
    dims = normalize_dims(dim, input.ndim)
    return apply(op, [input], {"dims": dims, "keepdim": bool(keepdim), "out_dtype": out_dtype})


def sum(input, dim=None, keepdim=False, *, dtype=None, out=None):
    """Sum over ``dim`` (all dims by default). Integer and bool sums give int64, like torch."""
    if _amp.active and dtype is None:
        input = cast_inputs("sum", input)
    return _sum(input, dim, keepdim, dtype=dtype)


def _sum(input, dim=None, keepdim=False, *, dtype=None):
    """``sum`` without the autocast policy (for composites whose result keeps the input's dtype)."""
    if dtype is not None:
        input = input.to(dtype)
    dt = input.dtype
    odt = D.int64 if not dt.is_floating_point else dt
    return _reduce(SUM, input, dim, keepdim, odt.numpy_dtype)


def prod(input, dim=None, keepdim=False, *, dtype=None):
    if _amp.active and dtype is None and isinstance(input, Tensor):
        input = cast_inputs("prod", input)
    if dtype is not None:
        input = input.to(dtype)
    dt = input.dtype
    odt = D.int64 if not dt.is_floating_point else dt
    if dim is not None and isinstance(dim, (tuple, list)):
        raise TypeError("prod(): argument 'dim' must be int, not tuple")
    return _reduce(PROD, input, dim, keepdim, odt.numpy_dtype)


def _check_minmax_dims(name, input, dim):
    # with no dim an empty input has nothing to return (torch: RuntimeError; an empty dim: IndexError)
    if (dim is None or dim == () or dim == []) and input.numel() == 0:
        raise RuntimeError(f"{name}(): Expected reduction dim to be specified for input.numel() == 0. "
                           "Specify the reduction dim with the 'dim' argument.")


def amax(input, dim=(), keepdim=False):
    _check_minmax_dims("amax", input, dim)
    return _reduce(AMAX, input, dim if dim != () else None, keepdim, input.dtype.numpy_dtype)


def amin(input, dim=(), keepdim=False):
    _check_minmax_dims("amin", input, dim)
    return _reduce(AMIN, input, dim if dim != () else None, keepdim, input.dtype.numpy_dtype)


def all(input, dim=None, keepdim=False):
    return _reduce(ALL, input, dim, keepdim, np.bool_ if input.dtype is not D.uint8 else np.uint8)


def any(input, dim=None, keepdim=False):
    return _reduce(ANY, input, dim, keepdim, np.bool_ if input.dtype is not D.uint8 else np.uint8)


def _count(input, dim):
    dims = normalize_dims(dim, input.ndim)
    n = 1
    for d in dims:
        n *= input.shape[d]
    return n


def mean(input, dim=None, keepdim=False, *, dtype=None):
    """Arithmetic mean over ``dim``; floating dtypes only, like torch."""
    if dtype is not None:
        input = input.to(dtype)
    if not input.dtype.is_floating_point:
        raise RuntimeError(
            "mean(): could not infer output dtype. Input dtype must be either a floating point or complex "
            f"dtype. Got: {D.type_word(input.dtype)}")
    n = _count(input, dim)
    if input.dtype is D.float16 or input.dtype is D.bfloat16:
        # sum and division in float32, one rounding at the end (as torch): not the half sum, rounded twice
        s = _reduce(SUM, input, dim, keepdim, _F32_NP)
        return (s / n if n else s * float("nan")).to(input.dtype)
    return _sum(input, dim, keepdim) / n if n else _sum(input, dim, keepdim) * float("nan")


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Variance with Bessel's ``correction`` (default 1)."""
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    if not input.dtype.is_floating_point:
        raise RuntimeError("std and var only support floating point and complex dtypes")
    n = _count(input, dim)
    mu = mean(input, dim, keepdim=True)
    d = input - mu
    return _sum(d * d, dim, keepdim) / max(n - correction, 0) if n - correction > 0 else \
        _sum(d * d, dim, keepdim) / 0.0


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return var(input, dim, unbiased, keepdim, correction=correction).sqrt()


def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return var(input, dim, unbiased, keepdim, correction=correction), mean(input, dim, keepdim)


def std_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return std(input, dim, unbiased, keepdim, correction=correction), mean(input, dim, keepdim)


def logsumexp(input, dim, keepdim=False):
    """``log(sum(exp(x)))`` computed stably (shifted by the max)."""
    if _amp.active:
        input = cast_inputs("logsumexp", input)
    if not input.dtype.is_floating_point:
        input = input.to(D.get_default_dtype())
    import jitorch as J
    if _count(input, dim) == 0:  # no max to shift by: the sum is 0 and the result -inf
        s = _sum(input.exp(), dim, keepdim=True).log()
    else:
        m = amax(input, dim, keepdim=True).detach()
        m = J.where(J.isfinite(m), m, 0.0)
        s = _sum((input - m).exp(), dim, keepdim=True).log() + m
    if not keepdim:
        s = s.squeeze(normalize_dims(dim, input.ndim)) if input.ndim else s
    return s


def _softmax_dtype_check(name, input, dim):
    # torch has no integer softmax kernels (pass dtype= to compute in floating point)
    if not input.dtype.is_floating_point:
        where = "lastdim_" if input.ndim == 0 or wrap_dim(dim, max(input.ndim, 1)) == max(input.ndim - 1, 0) else ""
        raise NotImplementedError(f"\"{name}_{where}kernel_impl\" not implemented for '{D.type_word(input.dtype)}'")


def softmax(input, dim=None, dtype=None, _stacklevel=3):
    """``exp(x - max) / sum(exp(x - max))`` along ``dim``."""
    if _amp.active and dtype is None:
        input = cast_inputs("softmax", input)
    if dtype is not None:
        input = input.to(dtype)
    if dim is None:
        dim = 0 if input.ndim in (0, 1, 3) else 1
    _softmax_dtype_check("softmax", input, dim)
    m = amax(input, dim, keepdim=True).detach()
    e = (input - m).exp()
    return e / _sum(e, dim, keepdim=True)


def log_softmax(input, dim=None, dtype=None, _stacklevel=3):
    """``x - logsumexp(x)`` along ``dim``."""
    if _amp.active and dtype is None:
        input = cast_inputs("log_softmax", input)
    if dtype is not None:
        input = input.to(dtype)
    if dim is None:
        dim = 0 if input.ndim in (0, 1, 3) else 1
    _softmax_dtype_check("log_softmax", input, dim)
    if cpu_float_eager(input):
        from .softmax_ops import log_softmax_fused
        return log_softmax_fused(input, wrap_dim(dim, max(input.ndim, 1)) if input.ndim else 0)
    m = amax(input, dim, keepdim=True).detach()
    shifted = input - m
    return shifted - _sum(shifted.exp(), dim, keepdim=True).log()


def norm(input, p="fro", dim=None, keepdim=False, dtype=None):
    """Vector p-norm over ``dim`` (``'fro'`` and 2 are the Euclidean norm)."""
    if _amp.active and dtype is None:
        input = cast_inputs("norm", input)
    if dtype is not None:
        input = input.to(dtype)
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"linalg.vector_norm: Expected a floating point or complex tensor as input. Got {D.type_word(input.dtype)}")
    if p in ("fro", 2, 2.0, None):
        return apply(NORM2, [input], {"dims": normalize_dims(dim, input.ndim), "keepdim": bool(keepdim),
                                      "out_dtype": input.dtype.numpy_dtype})
    if p == float("inf"):
        return amax(input.abs(), dim if dim is not None else (), keepdim)
    if p == float("-inf"):
        return amin(input.abs(), dim if dim is not None else (), keepdim)
    if p == 1:
        return _sum(input.abs(), dim, keepdim)
    if p == 0:
        return _sum((input != 0).to(input.dtype), dim, keepdim)
    if p == "nuc":
        raise NotImplementedError("nuclear norm is not supported")
    return _sum(input.abs() ** p, dim, keepdim) ** (1.0 / p)


def sum_to_size(input, *size):
    """Sum broadcast dims away so the result has ``size`` (the inverse of expand)."""
    size = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else tuple(size)
    shp = tuple(input.shape)
    if shp == size:
        return input
    lead = len(shp) - len(size)
    if lead < 0:
        raise RuntimeError(f"size {list(size)} is not expandable to size {list(shp)}")
    dims = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(size) if s == 1 and shp[lead + i] != 1)
    for i, s in enumerate(size):
        if s != 1 and shp[lead + i] != s:
            raise RuntimeError(f"size {list(size)} is not expandable to size {list(shp)}")
    r = _sum(input, dims, keepdim=True) if dims else input
    if lead:
        r = r.reshape(size)
    return r


def _norm2_vjp(c, g):
    # d|x|/dx = x / |x|, taken as 0 where |x| == 0 (as torch does) rather than 0/0
    x, out = c.inputs[0], c.out
    if not c.attrs["keepdim"]:
        for d in c.attrs["dims"]:
            out = out.unsqueeze(d)
            g = g.unsqueeze(d)
    import jitorch as J
    return (g * x / J.where(out == 0, float("inf"), out),)


NORM2 = kernel_op("norm2", vjp=_norm2_vjp, saves="both", node_name="NormBackward1")
NORM2.bf16_native = True


@impl("norm2")
def _norm2_impl(x, dims, keepdim, out_dtype):
    sq = np.square(D.host_values(x).astype(np.float64))
    res = np.asarray(np.sqrt(_reduce_impl("sum")(sq, dims, keepdim, np.dtype(np.float64))))
    return D.to_storage(res, D.from_numpy(np.dtype(out_dtype)))
