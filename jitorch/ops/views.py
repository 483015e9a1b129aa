"""View primitives: results share storage with their input (no kernel runs).

On the CPU a view is a NumPy view of the input's array, on CUDA a ``CudaArray``
view of the same storage (``runtime/cuda/ops_views.py``); the derivative rules
move the gradient back into the input's shape.
"""
from __future__ import annotations

import numpy as np

from .._dispatch import apply
from .._tensor import Tensor, wrap_dim
from .registry import impl, kernel_op


def _in_shape(c):
    return c.in_meta[0][0]


# -- primitives --------------------------------------------------------------------------------
RESHAPE = kernel_op("reshape", vjp=lambda c, g: (g.reshape(_in_shape(c)),), saves="none",
                    node_name="ViewBackward0")
PERMUTE = kernel_op("permute", vjp=lambda c, g: (g.permute(tuple(int(d) for d in np.argsort(c.attrs["dims"]))),),
                    saves="none")
EXPAND = kernel_op("expand", vjp=lambda c, g: (g.sum_to_size(_in_shape(c)),), saves="none")
SLICE = kernel_op("slice", vjp=lambda c, g: (_slice_backward(g, _in_shape(c), c.attrs["index"]),),
                  saves="none", node_name="SliceBackward0")
AS_STRIDED = kernel_op("as_strided", vjp=lambda c, g: (_as_strided_backward(g, c),), saves="none")
DIAGONAL = kernel_op("diagonal", vjp=lambda c, g: (_diagonal_backward(g, c),), saves="none")
UNFOLD = kernel_op("unfold", vjp=lambda c, g: (_unfold_backward(g, c),), saves="none")


@impl("reshape")
def _reshape(x, shape):
    v = x.view()
    try:
        v.shape = shape  # raises instead of copying when strides don't allow a view
    except AttributeError:
        raise RuntimeError(
            "view size is not compatible with input tensor's size and stride (at least one dimension "
            "spans across two contiguous subspaces). Use .reshape(...) instead.") from None
    return v


@impl("permute")
def _permute(x, dims):
    return x.transpose(dims)


@impl("expand")
def _expand(x, shape):
    return np.broadcast_to(x, shape)


@impl("slice")
def _slice(x, index):
    out = x[index]
    # all-int indexing gives a NumPy scalar (a copy): index with a trailing ... to keep a 0-d view
    return out if isinstance(out, np.ndarray) else x[index + (Ellipsis,)]


@impl("as_strided")
def _as_strided(x, size, stride, storage_offset):
    base = x
    while isinstance(base.base, np.ndarray) and base.base.dtype == base.dtype:
        base = base.base
    item = x.itemsize
    start = x.__array_interface__["data"][0] - base.__array_interface__["data"][0]
    off = start if storage_offset is None else storage_offset * item
    flat = base.reshape(-1) if base.flags.c_contiguous else base
    return np.lib.stride_tricks.as_strided(flat[off // item:], shape=size, strides=[s * item for s in stride])


@impl("diagonal")
def _diagonal(x, offset, dim1, dim2):
    d = np.diagonal(x, offset, dim1, dim2)
    if x.flags.writeable:
        d.flags.writeable = True  # NumPy hands out a read-only view; torch's diagonal is writable
    return d


@impl("unfold")
def _unfold(x, dim, size, step):
    if x.ndim == 0:
        return x.reshape(1)
    n = (x.shape[dim] - size) // step + 1
    shape = x.shape[:dim] + (n,) + x.shape[dim + 1:] + (size,)
    strides = x.strides[:dim] + (x.strides[dim] * step,) + x.strides[dim + 1:] + (x.strides[dim],)
    return np.lib.stride_tricks.as_strided(x, shape, strides, writeable=x.flags.writeable)


# backward helpers: a zero tensor with the gradient written into the viewed region
SLICE_BACKWARD = kernel_op("slice_backward", vjp=lambda c, g: (g[c.attrs["index"]],), saves="none")
AS_STRIDED_BACKWARD = kernel_op("as_strided_backward", vjp=lambda c, g: (as_strided(
    g, c.attrs["size"], c.attrs["stride"], c.attrs["storage_offset"]),), saves="none")


@impl("slice_backward")
def _slice_backward_impl(g, shape, index):
    out = np.zeros(shape, dtype=g.dtype)
    out[index] = g
    return out


@impl("as_strided_backward")
def _as_strided_backward_impl(g, shape, size, stride, storage_offset):
    # accumulate every element of the strided view back into a flat buffer
    n = int(np.prod(shape))
    out = np.zeros(n, dtype=g.dtype)
    idx = np.zeros(size, dtype=np.int64) + (storage_offset or 0)
    for d, (sz, st) in enumerate(zip(size, stride)):
        shp = [1] * len(size)
        shp[d] = sz
        idx = idx + (np.arange(sz) * st).reshape(shp)
    np.add.at(out, idx.reshape(-1), g.reshape(-1))
    return out.reshape(shape)


UNFOLD_BACKWARD = kernel_op("unfold_backward", saves="none", vjp=lambda c, g: (
    unfold(g, c.attrs["dim"], c.attrs["size"], c.attrs["step"]) if len(c.attrs["shape"]) else g.reshape(()),))


@impl("unfold_backward")
def _unfold_backward_impl(g, shape, dim, size, step):
    # every window adds its gradient back onto the elements it covers (windows may overlap)
    out = np.zeros(shape, dtype=g.dtype)
    if len(shape) == 0:
        return g.reshape(())
    for k in range(g.shape[dim]):
        window = np.moveaxis(np.take(g, k, axis=dim), -1, dim)
        index = (slice(None),) * dim + (slice(k * step, k * step + size),)
        out[index] += window
    return out


def _unfold_backward(g, c):
    a = c.attrs
    return apply(UNFOLD_BACKWARD, [g], {"shape": _in_shape(c), "dim": a["dim"], "size": a["size"],
                                        "step": a["step"]})


def _slice_backward(g, shape, index):
    return apply(SLICE_BACKWARD, [g], {"shape": shape, "index": index})


def _as_strided_backward(g, c):
    a = c.attrs
    return apply(AS_STRIDED_BACKWARD, [g], {"shape": _in_shape(c), "size": a["size"], "stride": a["stride"],
                                           "storage_offset": a["storage_offset"] or 0})


def _diagonal_backward(g, c):
    import jitorch as J
    a = c.attrs
    z = J.zeros(_in_shape(c), dtype=g.dtype, device=g.device)
    return J.diagonal_scatter(z, g, a["offset"], a["dim1"], a["dim2"])


# -- public view functions ---------------------------------------------------------------------------
def _infer_shape(shape, numel):
    shape = list(shape)
    neg = [i for i, s in enumerate(shape) if s == -1]
    if len(neg) > 1:
        raise RuntimeError("only one dimension can be inferred")
    for s in shape:
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool):
            raise TypeError(f"shape must be a sequence of ints, but got element of type {type(s).__name__}")
        if s < -1:
            raise RuntimeError(f"invalid shape dimension {s}")
    known = 1
    for i, s in enumerate(shape):
        if i not in neg:
            known *= s
    if neg:
        if known == 0 or numel % known:
            raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
        shape[neg[0]] = numel // known
    elif known != numel:
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
    return tuple(int(s) for s in shape)


def _shape_args(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def view(input: Tensor, *shape) -> Tensor:
    """A view with a new shape (no copy); errors when the strides do not allow it."""
    if len(shape) == 1 and not isinstance(shape[0], (tuple, list, int, np.integer)):
        return _view_dtype(input, shape[0])  # x.view(dtype): reinterpret the bytes
    shape = _infer_shape(_shape_args(shape), input._data.size)
    return apply(RESHAPE, [input], {"shape": shape}, view_of=input)


def _view_dtype(input, dtype):
    from .. import _dtype as D
    from .._tensor import wrap_view
    dt = D.to_dtype(dtype)
    return wrap_view(input._data.view(dt.numpy_dtype), input)


def reshape(input: Tensor, *shape) -> Tensor:
    """Like ``view`` but copies when a view is impossible."""
    shape = _infer_shape(_shape_args(shape), input._data.size)
    x = input
    if not _viewable(x._data, shape):
        x = x.contiguous()
    return apply(RESHAPE, [x], {"shape": shape}, view_of=x)


def _viewable(arr, shape) -> bool:
    if arr.flags.c_contiguous:
        return True
    if arr.__class__ is not np.ndarray:
        return arr.view_if_possible(shape) is not None
    v = arr.view()
    try:
        v.shape = shape
        return True
    except AttributeError:
        return False


def flatten(input: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    nd = input.ndim
    if nd == 0:
        return reshape(input, (1,))
    s = wrap_dim(start_dim, nd)
    e = wrap_dim(end_dim, nd)
    if s > e:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    shp = input.shape
    n = 1
    for d in shp[s:e + 1]:
        n *= d
    return reshape(input, tuple(shp[:s]) + (n,) + tuple(shp[e + 1:]))


def unflatten(input: Tensor, dim: int, sizes) -> Tensor:
    d = wrap_dim(dim, input.ndim)
    sizes = list(sizes)
    shp = input.shape
    sizes = list(_infer_shape(sizes, shp[d]))
    return view(input, tuple(shp[:d]) + tuple(sizes) + tuple(shp[d + 1:]))


def permute(input: Tensor, *dims) -> Tensor:
    dims = _shape_args(dims)
    nd = input.ndim
    if len(dims) != nd:
        raise RuntimeError(f"permute(sparse_coo): number of dimensions in the tensor input does not match the "
                           f"length of the desired ordering of dimensions i.e. input.dim() = {nd} is not equal "
                           f"to len(dims) = {len(dims)}")
    dims = tuple(wrap_dim(d, nd) for d in dims)
    if len(set(dims)) != nd:
        raise RuntimeError("permute(): duplicate dims are not allowed.")
    return apply(PERMUTE, [input], {"dims": dims}, view_of=input)


def transpose(input: Tensor, dim0: int, dim1: int) -> Tensor:
    nd = input.ndim
    if nd == 0:
        wrap_dim(dim0, nd), wrap_dim(dim1, nd)
        return view(input, ())
    d0, d1 = wrap_dim(dim0, nd), wrap_dim(dim1, nd)
    dims = list(range(nd))
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return apply(PERMUTE, [input], {"dims": tuple(dims)}, view_of=input)


swapaxes = swapdims = transpose


def t(input: Tensor) -> Tensor:
    if input.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {input.ndim}D")
    return transpose(input, 0, 1) if input.ndim == 2 else view(input, input.shape)


def adjoint(input: Tensor) -> Tensor:
    return transpose(input, -2, -1)


def movedim(input: Tensor, source, destination) -> Tensor:
    nd = input.ndim
    src = [wrap_dim(s, nd) for s in (source if isinstance(source, (tuple, list)) else [source])]
    dst = [wrap_dim(s, nd) for s in (destination if isinstance(destination, (tuple, list)) else [destination])]
    order = [d for d in range(nd) if d not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return permute(input, tuple(order))


moveaxis = movedim


def squeeze(input: Tensor, dim=None) -> Tensor:
    shp = input.shape
    if dim is None:
        new = tuple(s for s in shp if s != 1)
    else:
        dims = dim if isinstance(dim, (tuple, list)) else (dim,)
        dims = {wrap_dim(d, max(input.ndim, 1)) for d in dims}
        new = tuple(s for i, s in enumerate(shp) if not (i in dims and s == 1))
    return apply(RESHAPE, [input], {"shape": new}, view_of=input)


def unsqueeze(input: Tensor, dim: int) -> Tensor:
    d = wrap_dim(dim, input.ndim + 1)
    shp = list(input.shape)
    shp.insert(d, 1)
    return apply(RESHAPE, [input], {"shape": tuple(shp)}, view_of=input)


def expand(input: Tensor, *sizes) -> Tensor:
    sizes = _shape_args(sizes)
    shp = input.shape
    if len(sizes) < len(shp):
        raise RuntimeError(f"expand(torch.FloatTensor{{{list(shp)}}}, size={list(sizes)}): the number of sizes "
                           f"provided ({len(sizes)}) must be greater or equal to the number of dimensions in the "
                           f"tensor ({len(shp)})")
    lead = len(sizes) - len(shp)
    out = []
    for i, s in enumerate(sizes):
        cur = shp[i - lead] if i >= lead else None
        if s == -1:
            if cur is None:
                raise RuntimeError("The expanded size of the tensor (-1) isn't allowed in a leading, non-existing dimension 0")
            s = cur
        if cur is not None and cur != 1 and cur != s:
            raise RuntimeError(f"The expanded size of the tensor ({s}) must match the existing size ({cur}) at "
                               f"non-singleton dimension {i}.  Target sizes: {list(sizes)}.  Tensor sizes: {list(shp)}")
        out.append(int(s))
    return apply(EXPAND, [input], {"shape": tuple(out)}, view_of=input)


def expand_as(input: Tensor, other: Tensor) -> Tensor:
    return expand(input, tuple(other.shape))


def broadcast_to(input: Tensor, shape) -> Tensor:
    return expand(input, tuple(shape))


def narrow(input: Tensor, dim: int, start, length: int) -> Tensor:
    d = wrap_dim(dim, input.ndim)
    start = int(start)
    size = input.shape[d]
    if start < 0:
        start += size
    if start < 0 or start + length > size or length < 0:
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size ({size}).")
    idx = (slice(None),) * d + (slice(start, start + length),)
    return apply(SLICE, [input], {"index": idx}, view_of=input)


def select(input: Tensor, dim: int, index: int) -> Tensor:
    d = wrap_dim(dim, input.ndim)
    size = input.shape[d]
    if not -size <= index < size:
        raise IndexError(f"select(): index {index} out of range for tensor of size {list(input.shape)} at dimension {d}")
    idx = (slice(None),) * d + (int(index),)
    return apply(SLICE, [input], {"index": idx}, view_of=input)


def basic_index(input: Tensor, index: tuple) -> Tensor:
    """``x[...]`` with ints, slices, None and Ellipsis only (always a view)."""
    return apply(SLICE, [input], {"index": index}, view_of=input)


def unfold(input: Tensor, dimension: int, size: int, step: int) -> Tensor:
    """All windows of ``size`` along ``dimension`` taken every ``step``, as a new last dim."""
    nd = input.ndim
    d = wrap_dim(dimension, max(nd, 1))
    length = input.shape[d] if nd else 1
    if size > length:
        raise RuntimeError(f"maximum size for tensor at dimension {d} is {length} but size is {size}")
    if step <= 0:
        raise RuntimeError(f"step is {step} but must be > 0")
    return apply(UNFOLD, [input], {"dim": d, "size": int(size), "step": int(step)}, view_of=input)


def as_strided(input: Tensor, size, stride, storage_offset=None) -> Tensor:
    return apply(AS_STRIDED, [input], {"size": tuple(size), "stride": tuple(stride),
                                       "storage_offset": storage_offset}, view_of=input)


def diagonal(input: Tensor, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
    nd = input.ndim
    return apply(DIAGONAL, [input], {"offset": offset, "dim1": wrap_dim(dim1, nd), "dim2": wrap_dim(dim2, nd)},
                 view_of=input)


def contiguous(input: Tensor, memory_format=None) -> Tensor:
    """Self when already contiguous, else a contiguous copy."""
    if input._data.flags.c_contiguous:
        return input
    from .elementwise import COPY
    if input._data.__class__ is not np.ndarray:
        from .conversion import _copy_as
        return _copy_as(COPY, input, input._dtype)
    from .._dispatch import elementwise
    return elementwise(COPY, input)
