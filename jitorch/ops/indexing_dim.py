"""Ops that index along one dim: gather, scatter (+add/reduce), index_select/add/copy/fill,
take_along_dim.

Index values are validated here, before any kernel runs; the loops are the
Numba kernels of ``jitorch.runtime.index_kernels``.  Each derivative rule is
written with these same ops, so double backward works.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _dtype as D
from .._dispatch import apply, broadcast_shapes
from .._tensor import Tensor, wrap_dim
from ..runtime import index_kernels as K
from .indexing_base import (
    I64,
    INDEX_BACKWARD,
    INDEX_PUT,
    IndexPlan,
    _index_impl,
    _work_dtype,
    array_device,
    as_tensor_arg,
    broadcast_array,
    check_index_device,
    checked_index,
    host_array,
    index_data,
    inplace,
    is_scalar,
    note_read,
    out_of_bounds,
    own_index,
    type_word,
    wrap_negative,
)
from .registry import impl, kernel_op

_MODES = {"sum": K.ADD, "prod": K.MULTIPLY, "mean": K.ADD, "amax": K.AMAX, "amin": K.AMIN}


def _nd(shape: tuple) -> tuple:
    """0-d tensors index like 1-element vectors."""
    return tuple(shape) if len(shape) else (1,)


def _strides(shape: tuple) -> np.ndarray:
    st = np.ones(len(shape), dtype=I64)
    for d in range(len(shape) - 2, -1, -1):
        st[d] = st[d + 1] * shape[d + 1]
    return st


def _zeros(shape, dt, device=None) -> Tensor:
    from .creation import zeros
    return zeros(shape, dtype=dt, device=device)


# -- primitives ---------------------------------------------------------------------------------------------
def _pad_to(g: Tensor, shape: tuple) -> Tensor:
    """A gradient for a tensor of ``shape`` of which only the leading block ``g.shape`` was read."""
    if tuple(g.shape) == tuple(shape):
        return g
    plan = IndexPlan(tuple(slice(0, n) for n in g.shape))
    return apply(INDEX_PUT, [_zeros(shape, g.dtype, g.device), g], {"plan": plan, "value": None, "accumulate": False})


def _gather_grad(c, g, k: int = 1) -> Tensor | None:
    """Grad of the ``src`` of a scatter (input ``k``): ``g.gather(dim, index)`` padded to src's shape."""
    if not c.needs_input_grad[k]:
        return None
    a = c.attrs
    return _pad_to(apply(GATHER, [g], {"dim": a["dim"], "index": a["index"]}), c.in_meta[k][0])


def _gather_vjp(c, g):
    a = c.attrs
    z = _zeros(c.in_meta[0][0], g.dtype, g.device)
    return (apply(SCATTER_ADD, [z, g], {"dim": a["dim"], "index": a["index"]}),)


def _scatter_vjp(c, g):
    a = c.attrs
    gx = apply(SCATTER, [g, None], {"dim": a["dim"], "index": a["index"], "value": 0}) \
        if c.needs_input_grad[0] else None
    return gx, _gather_grad(c, g)


def _scatter_add_vjp(c, g):
    return g, _gather_grad(c, g)


GATHER = kernel_op("gather", vjp=_gather_vjp, saves="none", node_name="GatherBackward0")
SCATTER = kernel_op("scatter", nin=2, vjp=_scatter_vjp, saves="none", node_name="ScatterBackward0")
SCATTER_ADD = kernel_op("scatter_add", nin=2, vjp=_scatter_add_vjp, saves="none", node_name="ScatterAddBackward0")


@impl("gather")
def _gather_impl(x, dim, index):
    shape = _nd(x.shape)
    work, finish = _work_dtype(x.dtype) if x.dtype == np.float16 else (x.dtype, lambda a: a)
    src = np.ascontiguousarray(x, dtype=work).reshape(-1)
    ishape = _nd(index.shape)
    out = np.empty(index.size, dtype=work)
    if out.size:
        K.gather_nd(src, _strides(shape), index.reshape(-1), np.array(ishape, dtype=I64), dim, out)
    return finish(out).reshape(index.shape)


def _scatter_run(x, src, dim, index, mode, value=None, include_self=True, mean=False):
    """``x.clone()`` with ``src`` (or the scalar ``value``) combined in at ``index`` along ``dim``."""
    shape = _nd(x.shape)
    work, finish = _work_dtype(x.dtype) if (mode != K.ASSIGN or x.dtype == np.float16) else (x.dtype, None)
    out = np.array(x, dtype=work, order="C", copy=True).reshape(-1)
    if src is None:
        s = np.full(1, value, dtype=work) if work != np.bool_ else np.full(1, bool(value))
        sstr = np.zeros(len(shape), dtype=I64)
    else:
        s = np.ascontiguousarray(src, dtype=work).reshape(-1)
        sstr = _strides(_nd(src.shape))
    counts = np.zeros(out.size if (mean or not include_self) else 0, dtype=I64)
    if index.size:
        K.scatter_nd(out, _strides(shape), index.reshape(-1), np.array(_nd(index.shape), dtype=I64), dim, s,
                     sstr, mode, counts, not include_self)
    if mean:
        denom = counts + 1 if include_self else np.maximum(counts, 1)
        out = out // denom if out.dtype.kind in "iub" else (out / denom).astype(out.dtype)
    out = out.reshape(x.shape)
    return finish(out) if finish is not None else out


@impl("scatter")
def _scatter_impl(x, src, dim, index, value):
    return _scatter_run(x, src, dim, index, K.ASSIGN, value)


@impl("scatter_add")
def _scatter_add_impl(x, src, dim, index):
    return _scatter_run(x, src, dim, index, K.ADD)


def _scatter_reduce_vjp(c, g):
    """torch's scatter_reduce_backward, written with the ops of this module."""
    import jitorch as J
    x, src = c.inputs
    out = c.out
    a = c.attrs
    dim, index, red, incl = a["dim"], a["index"], a["reduce"], a["include_self"]
    idx_t = _as_index(index)
    if tuple(src.shape) != tuple(index.shape):  # only the leading block of src took part
        src = src[tuple(slice(0, n) for n in index.shape)]

    def gat(t):
        return apply(GATHER, [t], {"dim": dim, "index": index})

    if red == "sum":
        gx, gs = g, gat(g)
    elif red == "mean":
        n = J.ones_like(g) if incl else J.zeros_like(g)
        n = scatter_add(n, dim, idx_t, J.ones_like(src))
        n = masked_fill_value(n, n == 0, 1)
        gx = g / n
        gs = gat(gx)
    elif red == "prod":
        masked_x = masked_fill_value(x, x == 0, 1)
        masked_x_res = scatter_reduce(masked_x, dim, idx_t, src, "prod", include_self=incl)
        gx = g * masked_x_res / masked_x
        src_zero = src == 0
        nzeros = gat(scatter_add(J.zeros_like(x), dim, idx_t, src_zero.to(x.dtype)))
        single = src_zero & (nzeros == 1)
        masked_src = masked_fill_value(src, single, 1)
        masked_src_res = scatter_reduce(x, dim, idx_t, masked_src, "prod", include_self=incl)
        gs = J.where(single, gat(g * masked_src_res), gat(g * out) / masked_fill_value(src, src_zero, 1))
    else:  # amax / amin: the gradient is shared evenly between the tied winners
        value = gat(out)
        x_wins = (x == out).to(x.dtype)
        src_wins = (src == value).to(x.dtype)
        n = scatter_add(x_wins, dim, idx_t, src_wins)
        share = g / n
        gx = x_wins * share
        gs = src_wins * gat(share)
    if not incl:
        gx = apply(SCATTER, [gx, None], {"dim": dim, "index": index, "value": 0})
    return (gx if c.needs_input_grad[0] else None,
            _pad_to(gs, c.in_meta[1][0]) if c.needs_input_grad[1] else None)


SCATTER_REDUCE = kernel_op("scatter_reduce", nin=2, vjp=_scatter_reduce_vjp, saves="both",
                           node_name="ScatterReduceBackward0")


@impl("scatter_reduce")
def _scatter_reduce_impl(x, src, dim, index, reduce, include_self):
    return _scatter_run(x, src, dim, index, _MODES[reduce], None, include_self, mean=reduce == "mean")


def masked_fill_value(x: Tensor, mask: Tensor, value) -> Tensor:
    from .indexing import masked_fill
    return masked_fill(x, mask, value)


# -- validation ---------------------------------------------------------------------------------------------
def _dim_index(op: str, x: Tensor, dim: int, index: Tensor, src: Tensor | None = None, *, what="self"):
    """Checks shared by gather and the scatters; returns (dim, int64 index array)."""
    idx = index_data(index)
    if idx is None:
        raise RuntimeError(f"{op}(): Expected dtype int32/int64 for index")
    check_index_device(x, index)
    d = wrap_dim(dim, x.ndim)
    xs, js = _nd(x.shape), _nd(index.shape)
    if len(js) != len(xs):
        raise RuntimeError(f"Index tensor must have the same number of dimensions as {what} tensor")
    if src is not None and len(_nd(src.shape)) != len(xs):
        raise RuntimeError("Index tensor must have the same number of dimensions as src tensor")
    if idx.size:
        for k in range(len(xs)):
            too_big = (k != d and js[k] > xs[k])
            if op == "gather" and too_big:
                raise RuntimeError(f"Size does not match at dimension {k} expected index {list(index.shape)} to be no "
                                   f"larger than self {list(x.shape)} apart from dimension {d}")
            if op != "gather" and (too_big or (src is not None and js[k] > _nd(src.shape)[k])):
                msg = (f"Expected index {list(index.shape)} to be no larger than self {list(x.shape)} apart from "
                       f"dimension {d}")
                if src is not None:
                    msg += f" and to be no larger size than src {list(src.shape)}"
                raise RuntimeError(msg)
        bad = out_of_bounds(idx, xs[d], False)
        if bad is not None:
            raise RuntimeError(f"index {bad} is out of bounds for dimension {d} with size {xs[d]}")
    return d, own_index(idx)


# -- gather / scatter -----------------------------------------------------------------------------------------
def gather(input: Tensor, dim: int, index: Tensor, *, sparse_grad: bool = False) -> Tensor:
    """``out[i][j] = input[index[i][j]][j]`` (dim 0); ``out`` has ``index``'s shape.

    >>> import jitorch
    >>> jitorch.tensor([[1, 2], [3, 4]]).gather(1, jitorch.tensor([[0, 0], [1, 0]]))
    tensor([[1, 1],
            [4, 3]])
    """
    d, idx = _dim_index("gather", input, dim, index, what="input")
    return apply(GATHER, [input], {"dim": d, "index": idx})


def _src_or_value(op: str, self: Tensor, src, value):
    if src is None and value is None:
        raise TypeError(f"{op}() missing required argument 'src' or 'value'")
    if value is None and is_scalar(src):  # scatter(input, dim, index, 2.0): the value form
        src, value = None, src
    if src is not None:
        src = as_tensor_arg(src)
        if src._dtype is not self._dtype:
            raise RuntimeError(f"{op}(): Expected self.dtype to be equal to src.dtype")
    elif isinstance(value, Tensor):
        value = value.item()
    return src, value


def scatter(input: Tensor, dim: int, index: Tensor, src=None, value=None, *, reduce: str | None = None) -> Tensor:
    """``input`` with ``src`` (a tensor, or the scalar ``value``) written at ``index`` along ``dim``."""
    src, value = _src_or_value("scatter", input, src, value)
    d, idx = _dim_index("scatter", input, dim, index, src)
    if reduce is not None:
        if reduce not in ("add", "multiply"):
            raise RuntimeError("reduce argument must be either add or multiply.")
        if src is None:
            from .creation import full
            src = full(tuple(index.shape), value, dtype=input.dtype)
        red = "sum" if reduce == "add" else "prod"
        return apply(SCATTER_REDUCE, [input, src], {"dim": d, "index": idx, "reduce": red, "include_self": True})
    return apply(SCATTER, [input, src], {"dim": d, "index": idx, "value": value})


def scatter_(self: Tensor, dim: int, index: Tensor, src=None, value=None, *, reduce: str | None = None) -> Tensor:
    return inplace(self, lambda s: scatter(s, dim, index, src, value, reduce=reduce), src)


def scatter_add(input: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:
    """``input`` with ``src`` summed in at ``index`` along ``dim`` (repeats add up)."""
    src = as_tensor_arg(src)
    if src._dtype is not input._dtype:
        raise RuntimeError("scatter(): Expected self.dtype to be equal to src.dtype")
    d, idx = _dim_index("scatter_add", input, dim, index, src)
    return apply(SCATTER_ADD, [input, src], {"dim": d, "index": idx})


def scatter_add_(self: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:
    return inplace(self, lambda s: scatter_add(s, dim, index, src), src)


def scatter_reduce(input: Tensor, dim: int, index: Tensor, src: Tensor, reduce: str, *,
                   include_self: bool = True) -> Tensor:
    """Reduce ``src`` into ``input`` at ``index`` with sum/prod/mean/amax/amin."""
    if reduce not in _MODES:
        raise RuntimeError(f"reduce argument must be either sum, prod, mean, amax or amin, got {reduce}")
    src = as_tensor_arg(src)
    if src._dtype is not input._dtype:
        raise RuntimeError("scatter_reduce(): Expected self.dtype to be equal to src.dtype")
    d, idx = _dim_index("scatter_reduce", input, dim, index, src)
    return apply(SCATTER_REDUCE, [input, src], {"dim": d, "index": idx, "reduce": reduce,
                                                "include_self": bool(include_self)})


def scatter_reduce_(self: Tensor, dim: int, index: Tensor, src: Tensor, reduce: str, *,
                    include_self: bool = True) -> Tensor:
    return inplace(self, lambda s: scatter_reduce(s, dim, index, src, reduce, include_self=include_self), src)


def take_along_dim(input: Tensor, indices: Tensor, dim: int | None = None) -> Tensor:
    """``gather`` with broadcasting (and wrapping of negative indices); flat when ``dim`` is None."""
    if indices._dtype is not D.int64:
        raise RuntimeError(f"torch.take_along_dim(): dtype of indices should be Long but got {type_word(indices._dtype)}")
    note_read(indices)
    if dim is None:
        flat = input.reshape(-1)
        idx = _wrapped(indices._data.reshape(-1), max(flat.numel(), 1))
        return gather(flat, 0, _as_index(idx))
    if input.ndim != indices.ndim:
        raise RuntimeError("torch.take_along_dim(): input and indices should have the same number of dimensions, "
                           f"but got {input.ndim} dimensions for input, and {indices.ndim} dimensions for indices")
    d = wrap_dim(dim, input.ndim)
    size = _nd(input.shape)[d]
    ishape = list(input.shape)
    if ishape:
        ishape[d] = indices.shape[d]
    shape = list(broadcast_shapes(tuple(ishape), tuple(indices.shape)))
    idx = broadcast_array(_wrapped(indices._data, size), tuple(shape))
    if shape:
        shape[d] = input.shape[d]
    x = input if list(input.shape) == shape else input.expand(tuple(shape))
    return gather(x, d, _as_index(idx))


def _wrapped(idx, size: int):
    """take_along_dim's indices with negatives counted from the end (out-of-range ones are left
    for gather to report)."""
    bad, wrapped = checked_index(idx, size, True)
    if bad is not None:
        return wrap_negative(host_array(idx), size)
    return wrapped if wrapped.__class__ is np.ndarray else wrap_negative(wrapped, size)


def _as_index(arr) -> Tensor:
    """An int64 index tensor over ``arr`` (a NumPy or device array), on the array's device."""
    from .._tensor import wrap
    return wrap(own_index(arr) if arr.__class__ is not np.ndarray or arr.dtype != I64 or not arr.flags.c_contiguous
                else arr, D.int64, array_device(arr))


# -- index_select / index_add / index_copy / index_fill ------------------------------------------------------
def _index_select_vjp(c, g):
    a = c.attrs
    return (apply(INDEX_BACKWARD, [g], {"shape": c.in_meta[0][0], "dims": a["dims"], "idx": a["idx"]}),)


INDEX_SELECT = kernel_op("index_select", vjp=_index_select_vjp, saves="none", node_name="IndexSelectBackward0")
impl("index_select")(_index_impl)


def _select_grad(g, dim, index, shape):
    r = apply(INDEX_SELECT, [g.reshape(_nd(g.shape))], {"dims": (dim,), "idx": (index,)})
    return r.reshape(shape)


def _index_add_vjp(c, g):
    a = c.attrs
    gs = None
    if c.needs_input_grad[1]:
        gs = _select_grad(g, a["dim"], a["index"], c.in_meta[1][0])
        if a["alpha"] != 1:
            gs = gs * a["alpha"]
    return g, gs


def _index_copy_vjp(c, g):
    a = c.attrs
    gx = apply(INDEX_FILL, [g, None], {"dim": a["dim"], "index": a["index"], "value": 0}) \
        if c.needs_input_grad[0] else None
    gs = _select_grad(g, a["dim"], a["index"], c.in_meta[1][0]) if c.needs_input_grad[1] else None
    return gx, gs


def _index_fill_vjp(c, g):
    a = c.attrs
    gx = apply(INDEX_FILL, [g, None], {"dim": a["dim"], "index": a["index"], "value": 0}) \
        if c.needs_input_grad[0] else None
    gv = None
    if len(c.needs_input_grad) > 1 and c.needs_input_grad[1]:
        # each filled position counts once, however often the index names it
        idx = np.asarray(host_array(a["index"]), dtype=np.int64).reshape(-1)
        size = g.shape[a["dim"]] if g.ndim else 1
        once = np.unique(np.where(idx < 0, idx + size, idx))  # -1 and size-1 are the same position
        gv = apply(INDEX_SELECT, [g.reshape(_nd(g.shape))], {"dims": (a["dim"],), "idx": (once,)}).sum()
        if gv.dtype is not c.in_meta[1][1]:
            gv = gv.to(c.in_meta[1][1])
    return gx, gv


INDEX_ADD = kernel_op("index_add", nin=2, vjp=_index_add_vjp, saves="none", node_name="IndexAddBackward0")
INDEX_COPY = kernel_op("index_copy", nin=2, vjp=_index_copy_vjp, saves="none", node_name="IndexCopyBackward0")
INDEX_FILL = kernel_op("index_fill", nin=2, vjp=_index_fill_vjp, saves="none", node_name="IndexFillBackward0")


def _index_reduce(x, src, dim, index, alpha, accumulate):
    shape = _nd(x.shape)
    work, finish = _work_dtype(x.dtype) if (accumulate or x.dtype == np.float16) else (x.dtype, lambda a: a)
    outer, inner = math.prod(shape[:dim]), math.prod(shape[dim + 1:])
    out = np.array(x, dtype=work, order="C", copy=True).reshape(outer, shape[dim], inner)
    s = np.ascontiguousarray(src, dtype=work).reshape(outer, index.size, inner)
    if alpha != 1:
        s = (s * alpha).astype(work)
    if out.size and s.size:
        K.index_reduce_3d(out, index, s, accumulate)
    return finish(out).reshape(x.shape)


@impl("index_add")
def _index_add_impl(x, src, dim, index, alpha):
    return _index_reduce(x, src, dim, index, alpha, True)


@impl("index_copy")
def _index_copy_impl(x, src, dim, index):
    return _index_reduce(x, src, dim, index, 1, False)


@impl("index_fill")
def _index_fill_impl(x, v, dim, index, value):
    out = np.array(x, order="C", copy=True)
    view = out.reshape(_nd(out.shape))
    view[(slice(None),) * dim + (index,)] = v if v is not None else value
    return out


def _vector_index(op: str, x: Tensor, dim: int, index: Tensor, allowed, dtype_msg: str):
    idx = index_data(index, allowed)
    if idx is None:
        raise RuntimeError(dtype_msg.format(type_word(index._dtype)))
    check_index_device(x, index)
    d = wrap_dim(dim, x.ndim)
    return d, idx


def index_select(input: Tensor, dim: int, index: Tensor) -> Tensor:
    """The slices ``index`` (a vector) of ``input`` along ``dim``."""
    d, idx = _vector_index("index_select", input, dim, index, (D.int64, D.int32),
                           "index_select(): Expected dtype int32 or int64 for index")
    if index.ndim > 1:
        raise IndexError("index_select(): Index is supposed to be a vector")
    size = _nd(input.shape)[d]
    if input.ndim == 0 and idx.size != 1:
        raise RuntimeError(f"index_select(): Index to scalar can have only 1 value, got {idx.size} value(s)")
    bad = out_of_bounds(idx, size, False)
    if bad is not None:
        raise RuntimeError(f"INDICES element is out of DATA bounds, id={bad} axis_dim={size}")
    idx = own_index(idx.reshape(-1))
    x = input if input.ndim else input.reshape(1)
    out = apply(INDEX_SELECT, [x], {"dims": (d,), "idx": (idx,)})
    return out if input.ndim else out.reshape(())


def _check_source(op: str, x: Tensor, d: int, idx: np.ndarray, source: Tensor) -> None:
    xs, ss = _nd(x.shape), _nd(source.shape)
    if len(xs) != len(ss) or any(a != b for k, (a, b) in enumerate(zip(xs, ss)) if k != d):
        if op == "index_add_":
            raise RuntimeError("source tensor shape must match self tensor shape, excluding the specified "
                               f"dimension. Got self.shape = {list(x.shape)} source.shape = {list(source.shape)}")
        k = next((k for k in range(min(len(xs), len(ss))) if k != d and xs[k] != ss[k]), d)
        raise RuntimeError(f"index_copy_(): Source/destination tensor must have same slice shapes. Destination "
                           f"slice shape: {xs[k]} at dimension {k} and source slice shape: "
                           f"{ss[k] if k < len(ss) else 1} at dimension {k}.")
    if ss[d] != idx.size:
        if op == "index_add_":
            raise RuntimeError(f"index_add_(): Number of indices ({idx.size}) should be equal to source.size(dim): "
                               f"({ss[d]}), for dim: {d}")
        raise IndexError(f"index_copy_(): Number of indices ({idx.size}) should be equal to source.size(dim) "
                         f"({ss[d]})")


def _prep_index_source(op: str, x: Tensor, dim: int, index: Tensor, source: Tensor):
    if op == "index_add_":
        d, idx = _vector_index(op, x, dim, index, (D.int64, D.int32),
                               "index_add_(): Expected dtype int32/int64 for index but got: {}")
        if index.ndim > 1:
            raise IndexError(f"index_add_(): Index is supposed to be a vector, but got dim: {index.ndim} with type: "
                             f"{type_word(index._dtype)} and size: {list(index.shape)}")
    else:
        d, idx = _vector_index(op, x, dim, index, (D.int64,), "index_copy_(): Expected a long tensor for index, "
                               "but got {}")
        if index.ndim > 1:
            raise IndexError("index_copy_(): Index should have dimension 1 or 0 (got 2)")
    source = as_tensor_arg(source)
    if source._dtype is not x._dtype:
        if op == "index_add_":
            raise RuntimeError(f"index_add_(): self ({type_word(x._dtype)}) and source "
                               f"({type_word(source._dtype)}) must have the same scalar type")
        raise RuntimeError(f"index_copy_(): self and source expected to have the same dtype, but got (self) "
                           f"{type_word(x._dtype)} and (source) {type_word(source._dtype)}")
    idx = idx.reshape(-1)
    _check_source(op, x, d, idx, source)
    size = _nd(x.shape)[d]
    bad = out_of_bounds(idx, size, False)
    if bad is not None:
        prefix = "index_copy_(): " if op == "index_copy_" else ""
        exc = IndexError if op == "index_copy_" else RuntimeError
        raise exc(f"{prefix}index {bad} is out of bounds for dimension {d} with size {size}")
    return d, own_index(idx), source


def index_add(input: Tensor, dim: int, index: Tensor, source: Tensor, *, alpha=1) -> Tensor:
    """``input`` with ``alpha * source`` added at the slices ``index`` along ``dim`` (repeats add up)."""
    d, idx, source = _prep_index_source("index_add_", input, dim, index, source)
    return apply(INDEX_ADD, [input, source], {"dim": d, "index": idx, "alpha": alpha})


def index_add_(self: Tensor, dim: int, index: Tensor, source: Tensor, *, alpha=1) -> Tensor:
    return inplace(self, lambda s: index_add(s, dim, index, source, alpha=alpha), source)


def index_copy(input: Tensor, dim: int, index: Tensor, source: Tensor) -> Tensor:
    """``input`` with the slices ``index`` along ``dim`` replaced by those of ``source``."""
    d, idx, source = _prep_index_source("index_copy_", input, dim, index, source)
    return apply(INDEX_COPY, [input, source], {"dim": d, "index": idx})


def index_copy_(self: Tensor, dim: int, index: Tensor, source: Tensor) -> Tensor:
    return inplace(self, lambda s: index_copy(s, dim, index, source), source)


def index_fill(input: Tensor, dim: int, index: Tensor, value) -> Tensor:
    """``input`` with the slices ``index`` along ``dim`` set to ``value`` (a scalar or 0-d tensor)."""
    idx = index_data(index, (D.int64,))
    if idx is None:
        raise IndexError("index_fill_(): Expected dtype int64 for index.")
    check_index_device(input, index)
    if index.ndim > 1:
        raise RuntimeError("Index has to be a vector/scalar")
    d = wrap_dim(dim, input.ndim)
    vt = None
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise RuntimeError("index_fill_ only supports a 0-dimensional value tensor, but got tensor with "
                               f"{value.ndim} dimension(s).")
        vt = value.to(input.dtype) if value._dtype is not input._dtype else value
        value = None
    size = _nd(input.shape)[d]
    idx = idx.reshape(-1)
    bad, idx = checked_index(idx, size, True)
    if bad is not None:
        raise IndexError(f"index {bad} is out of bounds for dimension {d} with size {size}")
    idx = own_index(idx)
    return apply(INDEX_FILL, [input, vt], {"dim": d, "index": idx, "value": value})


def index_fill_(self: Tensor, dim: int, index: Tensor, value) -> Tensor:
    return inplace(self, lambda s: index_fill(s, dim, index, value), value)
