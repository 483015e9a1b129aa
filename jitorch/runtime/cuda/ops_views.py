"""View ops on CUDA: results are ``CudaArray`` views sharing the input's storage.

No kernel runs and nothing is copied: each view is new shape/strides/offset
arithmetic (``CudaArray`` does it on a NumPy ghost array).  The backward helpers
of views (slice, as_strided, unfold) make a zero-filled array and copy the
gradient into the viewed region with the strided copy kernel; where the viewed
elements overlap, the overlapping parts are added instead of copied.
"""
from __future__ import annotations

import numpy as np

from ...ops.registry import impl
from . import copy as dcopy
from .array import CudaArray, empty

_VIEW_ERROR = ("view size is not compatible with input tensor's size and stride (at least one dimension "
               "spans across two contiguous subspaces). Use .reshape(...) instead.")


@impl("reshape", "cuda")
def _reshape(x: CudaArray, shape):
    v = x.view_if_possible(shape)
    if v is None:
        raise RuntimeError(_VIEW_ERROR)
    return v


@impl("permute", "cuda")
def _permute(x: CudaArray, dims):
    return x.transpose(dims)


@impl("expand", "cuda")
def _expand(x: CudaArray, shape):
    return dcopy.broadcast_to(x, shape)


@impl("slice", "cuda")
def _slice(x: CudaArray, index):
    return x[index]


def _check_in_bounds(x: CudaArray, size, stride, offset_bytes: int) -> None:
    item = x.itemsize
    if any(n == 0 for n in size):
        return
    lo = offset_bytes + sum(min(0, (n - 1) * s) for n, s in zip(size, stride)) * item
    hi = offset_bytes + sum(max(0, (n - 1) * s) for n, s in zip(size, stride)) * item + item
    if lo < 0 or hi > x.storage.nbytes:
        raise RuntimeError(
            f"setStorage: sizes {list(size)}, strides {list(stride)}, storage offset {offset_bytes // item}, and "
            f"itemsize {item} requiring a storage size of {hi} are out of bounds for storage of size "
            f"{x.storage.nbytes}")


@impl("as_strided", "cuda")
def _as_strided(x: CudaArray, size, stride, storage_offset):
    item = x.itemsize
    off = x.offset if storage_offset is None else storage_offset * item
    _check_in_bounds(x, size, stride, off)
    return x.as_strided(tuple(size), tuple(s * item for s in stride), off)


@impl("diagonal", "cuda")
def _diagonal(x: CudaArray, offset, dim1, dim2):
    return x._from_ghost(np.diagonal(x._ghost(), offset, dim1, dim2))


@impl("unfold", "cuda")
def _unfold(x: CudaArray, dim, size, step):
    if x.ndim == 0:
        return x.reshape(1)
    shape, strides = _unfold_layout(x.shape, x.strides, dim, size, step)
    return x.as_strided(shape, strides)


def _unfold_layout(shape, strides, dim, size, step):
    n = (shape[dim] - size) // step + 1
    return (shape[:dim] + (n,) + shape[dim + 1:] + (size,),
            strides[:dim] + (strides[dim] * step,) + strides[dim + 1:] + (strides[dim],))


def _at(dim: int, index) -> tuple:
    return (slice(None),) * dim + (index,)


@impl("split_with_sizes", "cuda")
def _split(x: CudaArray, dim, sizes):
    out = []
    start = 0
    for s in sizes:
        out.append(x[_at(dim, slice(start, start + s))])
        start += s
    return tuple(out)


@impl("unbind", "cuda")
def _unbind(x: CudaArray, dim):
    return tuple(x[_at(dim, i)] for i in range(x.shape[dim]))


# -- backward helpers: new arrays --------------------------------------------------------------------------
def _zeros(shape, dtype) -> CudaArray:
    out = empty(shape, dtype)
    out.fill(0)
    return out


@impl("slice_backward", "cuda")
def _slice_backward(g: CudaArray, shape, index):
    out = _zeros(shape, g.dtype)
    dcopy.copy_into(out[index], g)
    return out


def _overlaps(size, stride) -> bool:
    """Can two different indices of a view with these sizes/element strides reach the same element?"""
    dims = sorted((abs(s), n) for n, s in zip(size, stride) if n > 1)
    reach = 0  # largest offset reachable with the dims seen so far
    for s, n in dims:
        if s <= reach:
            return True
        reach += (n - 1) * s
    return False


@impl("as_strided_backward", "cuda")
def _as_strided_backward(g: CudaArray, shape, size, stride, storage_offset):
    out = _zeros(shape, g.dtype)
    if _overlaps(size, stride):
        # elements reached more than once sum their gradients: done on the host (no CUDA scatter-add yet)
        from ...ops.registry import OPS
        from . import fallback
        cpu_impl = OPS["as_strided_backward"].impl["cpu"]
        fallback.note("as_strided_backward", "overlapping view: accumulating on the host")
        return dcopy.from_host(cpu_impl(g.to_host(), shape, size, stride, storage_offset))
    item = g.itemsize
    view = out.as_strided(tuple(size), tuple(s * item for s in stride), (storage_offset or 0) * item)
    dcopy.copy_into(view, g)
    return out


@impl("unfold_backward", "cuda")
def _unfold_backward(g: CudaArray, shape, dim, size, step):
    if len(shape) == 0:
        return g.reshape(())
    out = _zeros(shape, g.dtype)
    if g.size == 0:
        return out
    # windows k, k + passes, k + 2*passes... never overlap: each pass writes disjoint elements
    passes = -(-size // step)
    windows = _unfold_view(out, dim, size, step)
    for r in range(passes):
        sel = _at(dim, slice(r, None, passes))
        if passes == 1:
            dcopy.copy_into(windows[sel], g[sel])
        else:
            _add_into(windows[sel], g[sel])
    return out


def _unfold_view(out: CudaArray, dim, size, step) -> CudaArray:
    shape, strides = _unfold_layout(out.shape, out.strides, dim, size, step)
    return out.as_strided(shape, strides)


def _add_into(dst: CudaArray, src: CudaArray) -> None:
    """``dst += src`` with the elementwise add kernel (dst's elements are distinct)."""
    from ... import _dtype as D
    from ...ops.elementwise import ADD
    from .elementwise import run_elementwise
    run_elementwise(ADD, [dst, src], D.from_numpy(dst.dtype), dst.dtype, dst.shape, out=dst)
