"""Triangles and diagonals: tril, triu, diag, diag_embed, diagonal_scatter; and one_hot."""
from __future__ import annotations

import functools

import numpy as np

from .. import _dtype as D
from .._dispatch import apply
from .._dispatch import elementwise as _ew
from .._tensor import Tensor, wrap, wrap_dim
from . import elementwise as E
from .indexing_base import I64, device_bounds, inplace, note_read
from .registry import impl, kernel_op


# -- tril / triu -------------------------------------------------------------------------------------------
def _triangle(input: Tensor, diagonal: int, lower: bool) -> Tensor:
    """``input`` with the elements off the kept triangle zeroed: a ``where`` with a constant mask,
    so gradients (and their gradients) come from ``where``."""
    name = "tril" if lower else "triu"
    if input.ndim < 2:
        raise RuntimeError(f"{name}: input tensor must have at least 2 dimensions")
    n, m = input.shape[-2:]
    dev = input._device
    if dev.type == "cpu":
        keep = _triangle_mask(n, m, int(diagonal), lower)
    else:
        keep = _device_triangle_mask(n, m, int(diagonal), lower)
    return _ew(E.WHERE, wrap(keep, D.bool_, dev), input, 0, dtype=input.dtype)


def _triangle_mask(n: int, m: int, diagonal: int, lower: bool) -> np.ndarray:
    offset = np.arange(m)[None, :] - np.arange(n)[:, None]
    return offset <= diagonal if lower else offset >= diagonal


# Device masks are uploaded once per shape and kept (a host-to-device copy waits for the
# device): attention's causal masks repeat every step.  Large ones are not kept.
_CACHED_MASK_SIZE = 1 << 22


def _device_triangle_mask(n: int, m: int, diagonal: int, lower: bool):
    """The triangle mask as a read-only device array (kept for later calls when small)."""
    if n * m <= _CACHED_MASK_SIZE:
        return _cached_device_mask(n, m, diagonal, lower)
    from ..runtime.cuda.copy import from_host
    return from_host(_triangle_mask(n, m, diagonal, lower))


@functools.lru_cache(maxsize=32)
def _cached_device_mask(n: int, m: int, diagonal: int, lower: bool):
    from ..runtime.cuda.copy import from_host
    keep = from_host(_triangle_mask(n, m, diagonal, lower))
    return keep.as_strided(keep.shape, keep.strides, writeable=False)


def tril(input: Tensor, diagonal: int = 0) -> Tensor:
    """The lower triangle (on and below ``diagonal``) of the last two dims; the rest zero."""
    return _triangle(input, diagonal, True)


def triu(input: Tensor, diagonal: int = 0) -> Tensor:
    """The upper triangle (on and above ``diagonal``) of the last two dims; the rest zero."""
    return _triangle(input, diagonal, False)


def tril_(self: Tensor, diagonal: int = 0) -> Tensor:
    return inplace(self, lambda s: _triangle(s, diagonal, True))


def triu_(self: Tensor, diagonal: int = 0) -> Tensor:
    return inplace(self, lambda s: _triangle(s, diagonal, False))


# -- diagonal_scatter ----------------------------------------------------------------------------------------
def _diagonal_scatter_vjp(c, g):
    from .creation import zeros
    from .views import diagonal
    a = c.attrs
    gx = gs = None
    if c.needs_input_grad[0]:
        gx = apply(DIAGONAL_SCATTER, [g, zeros(c.in_meta[1][0], dtype=g.dtype, device=g.device)], a)
    if c.needs_input_grad[1]:
        gs = diagonal(g, a["offset"], a["dim1"], a["dim2"])
        if gs.dtype is not c.in_meta[1][1]:
            gs = gs.to(c.in_meta[1][1])
    return gx, gs


DIAGONAL_SCATTER = kernel_op("diagonal_scatter", nin=2, vjp=_diagonal_scatter_vjp, saves="none",
                             node_name="DiagonalScatterBackward0")


@impl("diagonal_scatter")
def _diagonal_scatter_impl(x, src, offset, dim1, dim2):
    out = np.array(x, order="C", copy=True)
    view = np.moveaxis(out, (dim1, dim2), (-2, -1))
    n = src.shape[-1]
    rows = np.arange(n) + max(-offset, 0)
    cols = np.arange(n) + max(offset, 0)
    view[..., rows, cols] = src
    return out


def _diag_dims(ndim: int, dim1: int, dim2: int) -> tuple[int, int]:
    d1, d2 = wrap_dim(dim1, ndim), wrap_dim(dim2, ndim)
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    return d1, d2


def diagonal_scatter(input: Tensor, src: Tensor, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
    """``input`` with its ``diagonal(offset, dim1, dim2)`` replaced by ``src``."""
    d1, d2 = _diag_dims(input.ndim, dim1, dim2)
    dummy = np.broadcast_to(np.zeros((), np.bool_), tuple(input.shape))
    dshape = np.diagonal(dummy, offset, d1, d2).shape
    if tuple(src.shape) != dshape:
        raise RuntimeError(f"expected src to have a size equal to the slice of self. src size = {list(src.shape)}, "
                           f"slice size = {list(dshape)}")
    return apply(DIAGONAL_SCATTER, [input, src], {"offset": int(offset), "dim1": d1, "dim2": d2})


def diag_embed(input: Tensor, offset: int = 0, dim1: int = -2, dim2: int = -1) -> Tensor:
    """A tensor whose ``(dim1, dim2)`` diagonals (at ``offset``) hold the last dim of ``input``."""
    from .creation import zeros
    d1, d2 = _diag_dims(input.ndim + 1, dim1, dim2)
    n = input.shape[-1] + abs(offset)
    shape = list(input.shape[:-1])
    for d in sorted((d1, d2)):
        shape.insert(d, n)
    return diagonal_scatter(zeros(tuple(shape), dtype=input.dtype, device=input.device), input, offset, d1, d2)


def diag(input: Tensor, diagonal: int = 0) -> Tensor:
    """1-D: a square matrix with ``input`` on diagonal ``diagonal``; 2-D: that diagonal (a copy)."""
    if input.ndim == 1:
        return diag_embed(input, diagonal, 0, 1)
    if input.ndim == 2:
        from .views import diagonal as diagonal_view
        return diagonal_view(input, diagonal).clone()
    raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {input.ndim}D")


# -- one_hot ---------------------------------------------------------------------------------------------------
def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """``(*, num_classes)`` int64 tensor with a 1 at each class index (``nn.functional.one_hot``)."""
    if not isinstance(tensor, Tensor) or tensor.dtype is not D.int64:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    note_read(tensor)
    a = tensor._data
    if num_classes == -1 and a.size == 0:
        raise RuntimeError("Can not infer total number of classes from empty tensor.")
    if a.size and a.__class__ is not np.ndarray:  # on the device: checked there, read only for a size
        if num_classes == -1:
            num_classes = device_bounds(a)[1] + 1
        from ..runtime.cuda.device_checks import check_range
        check_range(a, 0, num_classes, "one_hot", "Class values must be non-negative and smaller than "
                    "num_classes (got {value}, num_classes={bound})")
    elif a.size:
        lo, hi = int(a.min()), int(a.max())
        if num_classes == -1:
            num_classes = hi + 1
        if lo < 0:
            raise RuntimeError("Class values must be non-negative.")
        if hi >= num_classes:
            raise RuntimeError("Class values must be smaller than num_classes.")
    elif num_classes < 0:
        raise RuntimeError("Class values must be smaller than num_classes.")
    if a.__class__ is not np.ndarray:  # compare with the class numbers on the device
        from .creation import arange
        return (tensor.unsqueeze(-1) == arange(num_classes, device=tensor.device)).to(D.int64)
    out = np.zeros(a.shape + (num_classes,), dtype=I64)
    if a.size:
        np.put_along_axis(out, a[..., None], 1, axis=-1)
    return wrap(out, D.int64, tensor.device)
