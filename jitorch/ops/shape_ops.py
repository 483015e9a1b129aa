"""Joining, splitting, flipping and repeating tensors.

Primitives (each with its derivative rule below it):
- ``cat``: NumPy's concatenate; backward narrows the gradient per input.
- ``split_with_sizes`` / ``unbind``: several views of one input at once, so
  backward is one ``cat``/``stack`` instead of one zero-filled buffer per piece.
- ``flip``, ``roll``: copies; each is its own adjoint (with negated shifts).
- ``gather_along_dim`` / ``scatter_add_along_dim``: pick elements along a dim
  by index, and its adjoint (accumulate back).  They are each other's
  derivative, so double backward works.  Sorting, selection and
  ``repeat_interleave`` take values through them.

Everything else (stack, hstack, chunk, repeat, tile, meshgrid, rot90...) is
a composite of these and of the view ops.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from itertools import pairwise

import numpy as np

from .. import _dtype as D
from .._dispatch import _type_word, apply
from .._dispatch import broadcast_shapes as _broadcast_shapes
from .._tensor import Size, Tensor, wrap_dim
from ..runtime import sort_scan_kernels as K
from . import views as V
from .registry import impl, kernel_op

__all__ = [
    "atleast_1d",
    "atleast_2d",
    "atleast_3d",
    "broadcast_shapes",
    "broadcast_tensors",
    "cat",
    "chunk",
    "column_stack",
    "concat",
    "concatenate",
    "dsplit",
    "dstack",
    "flip",
    "fliplr",
    "flipud",
    "hsplit",
    "hstack",
    "meshgrid",
    "repeat_interleave",
    "roll",
    "rot90",
    "row_stack",
    "split",
    "stack",
    "tensor_split",
    "tile",
    "unbind",
    "vsplit",
    "vstack",
]
TENSOR_METHODS = ["split", "tensor_split", "hsplit", "vsplit", "dsplit", "chunk", "unbind", "flip", "fliplr",
                  "flipud", "roll", "repeat", "repeat_interleave", "tile", "rot90"]


# -- helpers -----------------------------------------------------------------------------------------
def _need_tensor(name: str, x, arg: str = "input") -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}(): argument '{arg}' (position 1) must be Tensor, not {type(x).__name__}")


def _wrap_dim_strict(dim: int, ndim: int) -> int:
    """Like ``wrap_dim`` but a 0-d tensor has no dim to name (unbind, roll)."""
    if ndim == 0:
        raise IndexError(f"Dimension specified as {dim} but tensor has no dimensions")
    return wrap_dim(dim, ndim)


def _int_list(x) -> tuple:
    return tuple(int(v) for v in x) if isinstance(x, (tuple, list)) else (int(x),)


def _tensor_list(name: str, tensors) -> list:
    if isinstance(tensors, Tensor):
        raise TypeError(f"{name}(): argument 'tensors' (position 1) must be tuple of Tensors, not Tensor")
    tensors = list(tensors)
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"expected Tensor as element {i} in argument 0, but got {type(t).__name__}")
    return tensors


def _zeros(shape, dtype, device=None) -> Tensor:
    import jitorch
    return jitorch.zeros(tuple(shape), dtype=dtype, device=device)


def _index_at(dim: int, index) -> tuple:
    return (slice(None),) * dim + (index,)


def _fresh(out: Tensor, input: Tensor) -> Tensor:
    """``out`` itself unless it is still a view of ``input`` (repeat and friends always copy)."""
    a, b = out._data, input._data
    shared = np.may_share_memory(a, b) if a.__class__ is np.ndarray else a.storage is b.storage
    return out.clone() if shared else out


def _to_3d_shape(shape: tuple, dim: int) -> tuple:
    return math.prod(shape[:dim]), shape[dim], math.prod(shape[dim + 1:])


# -- cat ------------------------------------------------------------------------------------------------
def _is_legacy_empty(shape) -> bool:
    # torch still skips 1-D empty tensors in cat, whatever the other shapes are
    return len(shape) == 1 and shape[0] == 0


def _cat_vjp(c, g):
    dim = c.attrs["dim"]
    grads = []
    offset = 0
    for shape, dt in c.in_meta:
        if _is_legacy_empty(shape) and g.ndim != 1:
            grads.append(_zeros(shape, dt, g.device))
            continue
        grads.append(g.narrow(dim, offset, shape[dim]))
        offset += shape[dim]
    return tuple(grads)


CAT = kernel_op("cat", nin=-1, vjp=_cat_vjp, saves="none")


@impl("cat")
def _cat_cpu(*arrays, dim):
    kept = [a for a in arrays if not _is_legacy_empty(a.shape)] or [arrays[0]]
    return np.concatenate(kept, axis=dim)


def _promoted(tensors: list) -> list:
    """The tensors cast (differentiably) to their common dtype, as torch's cat/stack do."""
    first = tensors[0]._dtype
    if all(t._dtype is first for t in tensors):
        return tensors
    dt = first
    for t in tensors[1:]:
        dt = D.promote_types(dt, t._dtype)
    return [t if t._dtype is dt else t.to(dt) for t in tensors]


def _check_cat(tensors: list, dim: int) -> int:
    ref = next((t for t in tensors if not _is_legacy_empty(t.shape)), tensors[0])
    for i, t in enumerate(tensors):
        if t.ndim == 0:
            raise RuntimeError(f"zero-dimensional tensor (at position {i}) cannot be concatenated")
    d = wrap_dim(dim, ref.ndim)
    for i, t in enumerate(tensors):
        if _is_legacy_empty(t.shape) or t is ref:
            continue
        if t.ndim != ref.ndim:
            raise RuntimeError(f"Tensors must have same number of dimensions: got {ref.ndim} and {t.ndim}")
        for k in range(ref.ndim):
            if k != d and t.shape[k] != ref.shape[k]:
                raise RuntimeError(f"Sizes of tensors must match except in dimension {d}. Expected size "
                                   f"{ref.shape[k]} but got size {t.shape[k]} for tensor number {i} in the list.")
    return d


def cat(tensors: Sequence[Tensor], dim: int = 0, *, out: Tensor | None = None) -> Tensor:
    """Join tensors along an existing ``dim``; dtypes promote like torch.

    >>> jitorch.cat([jitorch.zeros(1, 2), jitorch.ones(2, 2)]).shape
    jitorch.Size([3, 2])
    """
    tensors = _tensor_list("cat", tensors)
    if not tensors:
        raise ValueError("torch.cat(): expected a non-empty list of Tensors")
    d = _check_cat(tensors, dim)
    r = apply(CAT, _promoted(tensors), {"dim": d})
    if out is not None:
        return out.copy_(r) if tuple(out.shape) == tuple(r.shape) else out.set_(r)
    return r


concat = concatenate = cat


STACK = kernel_op("stack", nin=-1, vjp=lambda c, g: unbind(g, c.attrs["dim"]), saves="none")


@impl("stack")
def _stack_cpu(*arrays, dim):
    return np.stack(arrays, axis=dim)


def stack(tensors: Sequence[Tensor], dim: int = 0, *, out: Tensor | None = None) -> Tensor:
    """Join equally shaped tensors along a new ``dim``."""
    tensors = _tensor_list("stack", tensors)
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    shape = tensors[0]._data.shape
    for i, t in enumerate(tensors[1:], 1):
        if t._data.shape != shape:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got {list(shape)} at entry 0 "
                               f"and {list(t.shape)} at entry {i}")
    d = wrap_dim(dim, len(shape) + 1)
    r = apply(STACK, _promoted(tensors), {"dim": d})
    if out is not None:
        return out.copy_(r) if tuple(out.shape) == tuple(r.shape) else out.set_(r)
    return r


def hstack(tensors: Sequence[Tensor], *, out=None) -> Tensor:
    """Concatenate column-wise (along dim 0 for 1-D inputs, dim 1 otherwise)."""
    ts = atleast_1d(_tensor_list("hstack", tensors))
    if not ts:
        raise RuntimeError("hstack expects a non-empty TensorList")
    return cat(ts, 0 if ts[0].ndim == 1 else 1, out=out)


def vstack(tensors: Sequence[Tensor], *, out=None) -> Tensor:
    """Concatenate row-wise after making every input at least 2-D."""
    ts = atleast_2d(_tensor_list("vstack", tensors))
    if not ts:
        raise RuntimeError("vstack expects a non-empty TensorList")
    return cat(ts, 0, out=out)


row_stack = vstack


def dstack(tensors: Sequence[Tensor], *, out=None) -> Tensor:
    """Concatenate depth-wise (dim 2) after making every input at least 3-D."""
    ts = atleast_3d(_tensor_list("dstack", tensors))
    if not ts:
        raise RuntimeError("dstack expects a non-empty TensorList")
    return cat(ts, 2, out=out)


def column_stack(tensors: Sequence[Tensor], *, out=None) -> Tensor:
    """Stack 0-D/1-D inputs as columns, and join 2-D inputs along dim 1."""
    ts = _tensor_list("column_stack", tensors)
    if not ts:
        raise RuntimeError("column_stack expects a non-empty TensorList")
    ts = [V.reshape(t, (t.numel(), 1)) if t.ndim <= 1 else t for t in ts]
    return cat(ts, 1, out=out)


# -- split / unbind -------------------------------------------------------------------------------------
def _pieces_or_zeros(g, shapes, dtype) -> list:
    if isinstance(g, Tensor):  # a single-output node hands over one tensor
        g = [g]
    device = next((gi.device for gi in g if gi is not None), None)
    return [gi if gi is not None else _zeros(s, dtype, device) for gi, s in zip(g, shapes)]


def _split_vjp(c, g):
    shape, dt = c.in_meta[0]
    d, sizes = c.attrs["dim"], c.attrs["sizes"]
    shapes = [shape[:d] + (s,) + shape[d + 1:] for s in sizes]
    return (cat(_pieces_or_zeros(g, shapes, dt), d),)


def _unbind_vjp(c, g):
    shape, dt = c.in_meta[0]
    d = c.attrs["dim"]
    piece = shape[:d] + shape[d + 1:]
    return (stack(_pieces_or_zeros(g, [piece] * shape[d], dt), d),)


SPLIT = kernel_op("split_with_sizes", vjp=_split_vjp, saves="none", node_name="SplitWithSizesBackward0")
UNBIND = kernel_op("unbind", vjp=_unbind_vjp, saves="none")


@impl("split_with_sizes")
def _split_cpu(x, dim, sizes):
    out = []
    start = 0
    for s in sizes:
        out.append(x[_index_at(dim, slice(start, start + s))])
        start += s
    return tuple(out)


@impl("unbind")
def _unbind_cpu(x, dim):
    return tuple(x[_index_at(dim, i)] for i in range(x.shape[dim]))


def _split_sizes(input: Tensor, sizes, d: int) -> tuple:
    sizes = tuple(int(s) for s in sizes)
    return apply(SPLIT, [input], {"dim": d, "sizes": sizes}, view_of=input)


def _need_dims(name: str, input: Tensor) -> None:
    if input.ndim == 0:
        raise RuntimeError(f"{name} expects at least a 1-dimensional tensor")


def split(tensor: Tensor, split_size_or_sections, dim: int = 0) -> tuple:
    """Views of consecutive pieces: of ``split_size`` each (last may be smaller), or of the listed sizes."""
    _need_tensor("split", tensor, "tensor")
    _need_dims("split", tensor)
    d = wrap_dim(dim, tensor.ndim)
    n = tensor.shape[d]
    if isinstance(split_size_or_sections, (list, tuple)):
        sizes = [int(s) for s in split_size_or_sections]
        if any(s < 0 for s in sizes):
            raise RuntimeError(f"split_with_sizes expects split_sizes have only non-negative entries, but got "
                               f"split_sizes={sizes}")
        if sum(sizes) != n:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} (input tensor's size "
                               f"at dimension {d}), but got split_sizes={sizes}")
        return _split_sizes(tensor, sizes, d)
    size = int(split_size_or_sections)
    if size < 0:
        raise RuntimeError(f"split expects split_size be non-negative, but got split_size={size}")
    if size == 0:
        if n != 0:
            raise RuntimeError(f"split_size can only be 0 if dimension size is 0, but got dimension size of {n}")
        return _split_sizes(tensor, [0], d)
    count = max((n + size - 1) // size, 1)
    sizes = [size] * (count - 1) + [n - size * (count - 1)]
    return _split_sizes(tensor, sizes, d)


def chunk(input: Tensor, chunks: int, dim: int = 0) -> tuple:
    """Up to ``chunks`` views of (nearly) equal size along ``dim``."""
    _need_tensor("chunk", input)
    _need_dims("chunk", input)
    if chunks <= 0:
        raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
    d = wrap_dim(dim, input.ndim)
    n = input.shape[d]
    size = (n + chunks - 1) // chunks
    if size == 0 and n == 0:
        return _split_sizes(input, [0] * chunks, d)
    return split(input, size, d)


def _tensor_split_spec(indices_or_sections):
    """(sections, None) or (None, indices) from an int, a sequence or an int64 tensor."""
    if isinstance(indices_or_sections, Tensor):
        t = indices_or_sections
        if t.dtype is not D.int64:
            raise RuntimeError("tensor_split expected tensor_indices_or_sections to have dtype of long, but got "
                               f"{_type_word(t.dtype)}")
        if t.ndim > 1:
            raise RuntimeError("tensor_split expected tensor_indices_or_sections to be a zero-dimensional or "
                               f"one-dimensional tensor, but got a tensor with {t.ndim} dims")
        return (int(t.item()), None) if t.ndim == 0 else (None, [int(v) for v in t.tolist()])
    if isinstance(indices_or_sections, (list, tuple)):
        return None, [int(v) for v in indices_or_sections]
    return int(indices_or_sections), None


def tensor_split(input: Tensor, indices_or_sections, dim: int = 0) -> tuple:
    """Views split into ``sections`` nearly equal parts, or at the given indices (like NumPy's array_split)."""
    _need_tensor("tensor_split", input)
    if input.ndim == 0:
        raise RuntimeError("tensor_split expected at least a 1-dimensional tensor, but got a tensor with 0 dims")
    d = wrap_dim(dim, input.ndim)
    n = input.shape[d]
    sections, indices = _tensor_split_spec(indices_or_sections)
    if indices is None:
        if sections <= 0:
            raise RuntimeError(f"number of sections must be larger than 0, got {sections}")
        base, extra = divmod(n, sections)
        return _split_sizes(input, [base + 1] * extra + [base] * (sections - extra), d)
    # pieces are Python slices [prev:idx] (clamped, possibly empty), so they may not tile the dim
    out = []
    bounds = [0] + indices + [None]
    for lo, hi in pairwise(bounds):
        start, stop, _ = slice(lo, hi).indices(n)
        out.append(V.narrow(input, d, start, max(stop - start, 0)))
    return tuple(out)


def _split_dir(name: str, input: Tensor, indices_or_sections, dim: int, min_dim: int) -> tuple:
    if input.ndim < min_dim:
        raise RuntimeError(f"torch.{name} requires a tensor with at least {min_dim} dimension, but got a tensor "
                           f"with {input.ndim} dimensions!")
    if isinstance(indices_or_sections, int) and not isinstance(indices_or_sections, bool):
        size = input.shape[dim]
        if indices_or_sections == 0 or size % indices_or_sections:
            raise RuntimeError(f"torch.{name} attempted to split along dimension {dim}, but the size of the "
                               f"dimension {size} is not divisible by the split_size {indices_or_sections}!")
    return tensor_split(input, indices_or_sections, dim)


def hsplit(input: Tensor, indices_or_sections) -> tuple:
    return _split_dir("hsplit", input, indices_or_sections, 0 if input.ndim == 1 else 1, 1)


def vsplit(input: Tensor, indices_or_sections) -> tuple:
    return _split_dir("vsplit", input, indices_or_sections, 0, 2)


def dsplit(input: Tensor, indices_or_sections) -> tuple:
    return _split_dir("dsplit", input, indices_or_sections, 2, 3)


def unbind(input: Tensor, dim: int = 0) -> tuple:
    """All slices along ``dim`` as views (the dim removed)."""
    _need_tensor("unbind", input)
    d = _wrap_dim_strict(dim, input.ndim)
    if input.shape[d] == 0:
        return ()
    return apply(UNBIND, [input], {"dim": d}, view_of=input)


# -- flip / roll --------------------------------------------------------------------------------------------
FLIP = kernel_op("flip", vjp=lambda c, g: (apply(FLIP, [g], dict(c.attrs)),), saves="none")
ROLL = kernel_op("roll", vjp=lambda c, g: (apply(ROLL, [g], {"shifts": tuple(-s for s in c.attrs["shifts"]),
                                                            "dims": c.attrs["dims"]}),), saves="none")


@impl("flip")
def _flip_cpu(x, dims):
    return np.ascontiguousarray(np.flip(x, dims)) if dims else x.copy()


@impl("roll")
def _roll_cpu(x, shifts, dims):
    return np.roll(x, shifts, axis=dims)


def flip(input: Tensor, *args, dims=None) -> Tensor:
    """A copy with the order of elements reversed along ``dims`` (``x.flip(0, 1)`` or ``flip(x, (0, 1))``)."""
    _need_tensor("flip", input)
    if dims is None:
        dims = args[0] if len(args) == 1 else args
    dims = [wrap_dim(d, input.ndim) for d in _int_list(dims)]
    if len(set(dims)) != len(dims):
        dup = next(d for d in dims if dims.count(d) > 1)
        raise RuntimeError(f"dim {dup} appears multiple times in the list of dims")
    if input.ndim == 0:
        dims = []
    return apply(FLIP, [input], {"dims": tuple(dims)})


def fliplr(input: Tensor) -> Tensor:
    if input.ndim < 2:
        raise RuntimeError("Input must be >= 2-d.")
    return flip(input, (1,))


def flipud(input: Tensor) -> Tensor:
    if input.ndim < 1:
        raise RuntimeError("Input must be >= 1-d.")
    return flip(input, (0,))


def roll(input: Tensor, shifts, dims=None) -> Tensor:
    """Rotate elements along ``dims`` by ``shifts``; without dims, over the flattened tensor."""
    _need_tensor("roll", input)
    shifts = _int_list(shifts)
    dims = () if dims is None else _int_list(dims)
    if not shifts:
        raise RuntimeError("`shifts` required")
    if not dims:
        if len(shifts) != 1:
            raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, dims:0")
        flat = V.reshape(input, (-1,))
        return V.reshape(apply(ROLL, [flat], {"shifts": shifts, "dims": (0,)}), tuple(input.shape))
    if len(shifts) != len(dims):
        raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, dims:{len(dims)}")
    dims = tuple(_wrap_dim_strict(d, input.ndim) for d in dims)
    return apply(ROLL, [input], {"shifts": shifts, "dims": dims})


def rot90(input: Tensor, k: int = 1, dims=(0, 1)) -> Tensor:
    """Rotate by 90 degrees ``k`` times in the plane of ``dims`` (from the first towards the second)."""
    dims = list(dims)
    if len(dims) != 2:
        raise RuntimeError(f"expected total rotation dims == 2, but got dims = {len(dims)}")
    if input.ndim < 2:
        raise RuntimeError(f"expected total dims >= 2, but got total dims = {input.ndim}")
    d0, d1 = wrap_dim(dims[0], input.ndim), wrap_dim(dims[1], input.ndim)
    if d0 == d1:
        raise RuntimeError(f"expected rotation dims to be different, but got dim0 = {d0} and dim1 = {d1}")
    k %= 4
    if k == 1:
        return V.transpose(flip(input, (d1,)), d0, d1)
    if k == 2:
        return flip(input, (d0, d1))
    if k == 3:
        return V.transpose(flip(input, (d0,)), d0, d1)
    return input.clone()


# -- gather / scatter-add along a dim -------------------------------------------------------------------
def _gather_vjp(c, g):
    x_shape = c.in_meta[0][0]
    return scatter_add_along(g, c.inputs[1], c.attrs["dim"], x_shape), None


def _scatter_vjp(c, g):
    return gather_along(g, c.inputs[1], c.attrs["dim"]), None


GATHER = kernel_op("gather_along_dim", nin=2, vjp=_gather_vjp, node_name="GatherBackward0")
SCATTER_ADD = kernel_op("scatter_add_along_dim", nin=2, vjp=_scatter_vjp, node_name="ScatterAddBackward0")


@impl("gather_along_dim")
def _gather_cpu(x, idx, dim):
    return np.take_along_axis(x, idx, axis=dim)


_SCATTER_ACC = {np.dtype(np.float32): np.float32, np.dtype(np.float64): np.float64}


@impl("scatter_add_along_dim")
def _scatter_add_cpu(src, idx, dim, shape):
    acc = _SCATTER_ACC.get(src.dtype, np.float64 if src.dtype.kind == "f" else np.int64)
    s = np.ascontiguousarray(src, dtype=acc)
    i = np.ascontiguousarray(idx, dtype=np.int64)
    out = np.zeros(_to_3d_shape(tuple(shape), dim), dtype=acc)
    if s.size:
        K.scatter_add_3d(s.reshape(_to_3d_shape(s.shape, dim)), i.reshape(_to_3d_shape(s.shape, dim)), out)
    out = out.reshape(shape)
    return out if out.dtype == src.dtype else out.astype(src.dtype)


def gather_along(x: Tensor, idx: Tensor, dim: int) -> Tensor:
    """``out[..., j, ...] = x[..., idx[..., j, ...], ...]`` along ``dim``; ``idx`` has ``x``'s ndim."""
    return apply(GATHER, [x, idx], {"dim": dim})


def scatter_add_along(src: Tensor, idx: Tensor, dim: int, shape) -> Tensor:
    """Zeros of ``shape`` with ``src`` added at ``idx`` along ``dim`` (the adjoint of ``gather_along``)."""
    return apply(SCATTER_ADD, [src, idx], {"dim": dim, "shape": tuple(shape)})


# -- repeat / tile / repeat_interleave -----------------------------------------------------------------------
def repeat(input: Tensor, *sizes) -> Tensor:
    """Tile ``input`` ``sizes[i]`` times along each dim (a copy), like ``Tensor.repeat``."""
    reps = _int_list(sizes[0] if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else sizes)
    if len(reps) < input.ndim:
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number of dimensions "
                           "of tensor")
    shape = (1,) * (len(reps) - input.ndim) + tuple(input.shape)
    final = [r * s for r, s in zip(reps, shape)]
    if any(r < 0 for r in reps):
        raise RuntimeError(f"Trying to create tensor with negative dimension {min(final)}: {final}")
    # (1, s0, 1, s1, ...) expanded to (r0, s0, r1, s1, ...) then merged: expand's rule gives the gradient
    inter = tuple(v for s in shape for v in (1, s))
    target = tuple(v for r, s in zip(reps, shape) for v in (r, s))
    return _fresh(V.reshape(V.expand(V.reshape(input, inter), target), tuple(final)), input)


def tile(input: Tensor, dims) -> Tensor:
    """``repeat`` with ``dims`` padded by leading ones to the input's rank."""
    dims = _int_list(dims)
    dims = (1,) * (input.ndim - len(dims)) + dims
    return repeat(input, dims)


def _repeats_tensor(repeats: Tensor) -> Tensor:
    if repeats.dtype.is_floating_point or repeats.dtype is D.bool_:
        word = {"float32": "Float", "float64": "Double", "float16": "Half", "bool": "Bool"}[repeats.dtype.name]
        raise NotImplementedError(f"\"repeat_interleave_cpu\" not implemented for '{word}'")
    if repeats.ndim > 1:
        raise RuntimeError("repeats must be 0-dim or 1-dim tensor")
    return repeats


def repeat_interleave(input: Tensor, repeats=None, dim: int | None = None, *, output_size: int | None = None):
    """Repeat each element (or each slice along ``dim``) ``repeats`` times, keeping order.

    >>> jitorch.repeat_interleave(jitorch.tensor([1, 2]), 2)
    tensor([1, 1, 2, 2])
    """
    if repeats is None:  # repeat_interleave(repeats): indices repeated by their counts
        import jitorch
        reps = _repeats_tensor(input)
        return repeat_interleave(jitorch.arange(reps.numel(), device=reps.device), reps)
    if dim is None:
        input, d = V.reshape(input, (-1,)), 0
    else:
        d = wrap_dim(dim, input.ndim)
        if input.ndim == 0:
            input = V.reshape(input, (1,))
    n = input.shape[d]
    if isinstance(repeats, Tensor):
        reps = _repeats_tensor(repeats)
        if reps.numel() == 1:
            repeats = int(reps.reshape(()).item())
        else:
            if reps.numel() != n:
                raise RuntimeError(f"repeats must have the same size as input along dim, but got repeats.size(0) = "
                                   f"{reps.numel()} and input.size({d}) = {n}")
            counts = reps._host().reshape(-1).astype(np.int64)  # the output's size depends on them (a read)
            if (counts < 0).any():
                raise RuntimeError("repeats can not be negative")
            return _interleave_by_counts(input, counts, d)
    repeats = int(repeats)
    if repeats < 0:
        raise RuntimeError("Repeats must be non-negative")
    shape = tuple(input.shape)
    exp = shape[:d + 1] + (repeats,) + shape[d + 1:]
    out = V.expand(V.unsqueeze(input, d + 1), exp)
    return _fresh(V.reshape(out, shape[:d] + (n * repeats,) + shape[d + 1:]), input)


def _interleave_by_counts(input: Tensor, counts: np.ndarray, d: int) -> Tensor:
    from .creation import from_numpy
    index = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
    view_shape = [1] * input.ndim
    view_shape[d] = index.size
    out_shape = list(input.shape)
    out_shape[d] = index.size
    idx = from_numpy(np.ascontiguousarray(np.broadcast_to(index.reshape(view_shape), out_shape))).to(input.device)
    return gather_along(input, idx, d)


# -- broadcasting, meshgrid, atleast_nd -------------------------------------------------------------------
def broadcast_shapes(*shapes) -> Size:
    """The shape all ``shapes`` broadcast to (RuntimeError if they don't)."""
    norm = [(int(s),) if isinstance(s, (int, np.integer)) else tuple(int(v) for v in s) for s in shapes]
    return Size(_broadcast_shapes(*norm)) if norm else Size(())


def broadcast_tensors(*tensors) -> tuple:
    """Expand all tensors (views) to their common broadcast shape."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    tensors = _tensor_list("broadcast_tensors", tensors)
    shape = tuple(_broadcast_shapes(*[tuple(t.shape) for t in tensors])) if tensors else ()
    return tuple(t if tuple(t.shape) == shape else V.expand(t, shape) for t in tensors)


def meshgrid(*tensors, indexing: str | None = None) -> tuple:
    """Coordinate grids from 1-D tensors: 'ij' (matrix) or 'xy' (Cartesian) indexing."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    tensors = _tensor_list("meshgrid", tensors)
    if indexing is None:
        warnings.warn("torch.meshgrid: in an upcoming release, it will be required to pass the indexing argument.",
                      UserWarning, stacklevel=2)
        indexing = "ij"
    if indexing not in ("ij", "xy"):
        raise RuntimeError(f"torch.meshgrid: indexing must be one of \"xy\" or \"ij\", but received: {indexing}")
    if not tensors:
        raise RuntimeError("meshgrid expects a non-empty TensorList")
    for t in tensors:
        if t.dtype is not tensors[0].dtype:
            raise RuntimeError("meshgrid expects all tensors to have the same dtype")
        if t.ndim > 1:
            raise RuntimeError(f"torch.meshgrid: Expected 0D or 1D tensor in the tensor list but got: {t}")
    order = list(range(len(tensors)))
    if indexing == "xy" and len(tensors) >= 2:
        order[0], order[1] = 1, 0  # Cartesian: the first input varies along columns
    shape = tuple(tensors[i].numel() for i in order)
    out = []
    for i, t in enumerate(tensors):
        view = [1] * len(tensors)
        view[order.index(i)] = t.numel()
        out.append(V.expand(V.reshape(t, tuple(view)), shape))
    return tuple(out)


def _atleast(args, fn):
    if len(args) == 1 and isinstance(args[0], Tensor):
        return fn(args[0])
    seq = args[0] if len(args) == 1 and isinstance(args[0], (list, tuple)) else args
    return tuple(fn(t) for t in _tensor_list("atleast", seq))


def atleast_1d(*tensors):
    """Tensors with at least one dim (0-d become shape (1,))."""
    return _atleast(tensors, lambda t: V.reshape(t, (1,)) if t.ndim == 0 else t)


def atleast_2d(*tensors):
    """Tensors with at least two dims (new dims in front)."""
    return _atleast(tensors, lambda t: V.reshape(t, (1,) * (2 - t.ndim) + tuple(t.shape)) if t.ndim < 2 else t)


def _to_3d(t: Tensor) -> Tensor:
    if t.ndim == 0:
        return V.reshape(t, (1, 1, 1))
    if t.ndim == 1:
        return V.reshape(t, (1, t.shape[0], 1))
    if t.ndim == 2:
        return V.unsqueeze(t, -1)
    return t


def atleast_3d(*tensors):
    """Tensors with at least three dims ((n,) -> (1, n, 1), (m, n) -> (m, n, 1))."""
    return _atleast(tensors, _to_3d)
