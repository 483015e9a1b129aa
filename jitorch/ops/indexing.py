"""Indexing: ``Tensor.__getitem__``/``__setitem__`` and the index-driven ops.

``x[key]`` follows torch: ints and slices select a view (the SLICE primitive);
integer arrays, lists and boolean masks then pick elements with the ``index``
primitive (NumPy's advanced-indexing rules, applied after the ints were
selected away, as torch does).  The gather/scatter/index_* family lives in
``indexing_dim``, triangles and diagonals in ``indexing_diag``; this module
binds them all (``__all__``/``TENSOR_METHODS``).
"""
from __future__ import annotations

import numpy as np

from .. import _dtype as D
from .._dispatch import apply, broadcast_shapes
from .._dispatch import elementwise as _ew
from .._tensor import Tensor, wrap
from . import elementwise as E
from .indexing_base import (
    I64,
    INDEX,
    IndexPlan,
    as_tensor_arg,
    assign,
    broadcast_array,
    check_index_device,
    checked_index,
    host_array,
    index_as_bool,
    index_data,
    inplace,
    is_scalar,
    nonzero_columns,
    note_read,
    own_index,
    type_word,
)

# re-exported: bound as jitorch.<name> / Tensor.<name> through __all__ and TENSOR_METHODS
from .indexing_diag import (  # noqa: F401
    diag,
    diag_embed,
    diagonal_scatter,
    one_hot,
    tril,
    tril_,
    triu,
    triu_,
)
from .indexing_dim import (  # noqa: F401
    gather,
    index_add,
    index_add_,
    index_copy,
    index_copy_,
    index_fill,
    index_fill_,
    index_select,
    scatter,
    scatter_,
    scatter_add,
    scatter_add_,
    scatter_reduce,
    scatter_reduce_,
    take_along_dim,
)
from .registry import impl, kernel_op
from .views import basic_index, expand

__all__ = [
    "argwhere",
    "diag",
    "diag_embed",
    "diagonal_scatter",
    "gather",
    "index_add",
    "index_copy",
    "index_fill",
    "index_put",
    "index_select",
    "masked_fill",
    "masked_scatter",
    "masked_select",
    "nonzero",
    "put",
    "scatter",
    "scatter_add",
    "scatter_reduce",
    "take",
    "take_along_dim",
    "tril",
    "triu",
]
TENSOR_METHODS = __all__ + ["scatter_", "scatter_add_", "scatter_reduce_", "index_add_", "index_copy_",
                            "index_fill_", "index_put_", "masked_fill_", "masked_scatter_", "put_", "tril_",
                            "triu_"]

_ZERO_DIM_MSG = ("invalid index of a 0-dim tensor. Use `tensor.item()` in Python or `tensor.item<T>()` in C++ "
                 "to convert a 0-dim tensor to a number")
_MASKS = (D.bool_, D.uint8)


# -- parsing a key -----------------------------------------------------------------------------------------
def _items(key) -> tuple:
    if type(key) is tuple:
        return key
    if isinstance(key, list) and _sequence_as_tuple(key):
        return tuple(key)  # torch's legacy rule: x[[0, slice(None)]] means x[0, :]
    return (key,)


def _sequence_as_tuple(seq: list) -> bool:
    if len(seq) >= 32:
        return False
    return any(isinstance(k, (Tensor, list, tuple, np.ndarray, slice)) or k is None or k is Ellipsis
               for k in seq)


def _slice_part(v):
    if v is None or isinstance(v, int):
        return v
    return v.__index__()


def _classify(item):
    """(kind, payload) of one index item: int, slice, none, ellipsis, bool, array, mask."""
    if isinstance(item, (bool, np.bool_)):
        return "bool", bool(item)
    if isinstance(item, int):
        return "int", item
    if isinstance(item, slice):
        step = _slice_part(item.step)
        if step is not None and step <= 0:
            if step == 0:
                raise ValueError("slice step cannot be zero")
            raise ValueError("step must be greater than zero")
        return "slice", slice(_slice_part(item.start), _slice_part(item.stop), step)
    if item is None:
        return "none", None
    if item is Ellipsis:
        return "ellipsis", None
    if isinstance(item, Tensor):
        note_read(item, "shape-dependent" if item._dtype in _MASKS else "numpy")
        return _classify_array(item._data, item._dtype in _MASKS, item._dtype.is_floating_point)
    if isinstance(item, np.ndarray):
        return _classify_array(item, item.dtype in (np.bool_, np.uint8), item.dtype.kind not in "iub")
    if isinstance(item, (list, tuple)):
        return _classify_sequence(item)
    if isinstance(item, np.integer) or (hasattr(item, "__index__") and not isinstance(item, float)):
        return "int", item.__index__()
    name = type(item).__name__
    raise IndexError("only integers, slices (`:`), ellipsis (`...`), None and long or byte Variables are valid "
                     f"indices (got {name})")


def _classify_array(arr, is_mask: bool, bad: bool):
    """``arr`` is a NumPy array or (from a CUDA index tensor) a device array, kept on its device."""
    if is_mask:
        if arr.ndim == 0:
            return "bool", bool(host_array(arr))
        return "mask", index_as_bool(arr)
    if bad:
        raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
    if arr.ndim == 0:
        return "int", int(host_array(arr))
    return "array", own_index(arr)  # a copy: the op keeps it, the caller may write into theirs


def _classify_sequence(seq):
    try:
        arr = np.array([np.asarray(s) if isinstance(s, Tensor) else s for s in seq])
    except ValueError:
        raise IndexError("too many indices: nested sequences must be rectangular") from None
    if arr.dtype == np.bool_:
        return "mask", arr
    if arr.size == 0:
        return "array", arr.astype(I64)
    if arr.dtype.kind not in "iuf":
        raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
    return "array", arr.astype(I64)  # like torch, floats in a list are truncated


def parse(shape: tuple, key) -> IndexPlan:
    """The plan of ``x[key]`` for a tensor of ``shape``; raises torch's errors."""
    kinds = [_classify(it) for it in _items(key)]
    ndim = len(shape)
    used = 0
    n_ellipsis = 0
    for k, p in kinds:
        if k in ("int", "slice", "array"):
            used += 1
        elif k == "mask":
            used += p.ndim
        elif k == "ellipsis":
            n_ellipsis += 1
    if used > ndim:
        if ndim == 0 and kinds[0][0] == "int":
            raise IndexError(_ZERO_DIM_MSG)
        raise IndexError(f"too many indices for tensor of dimension {ndim}")
    basic: list = []
    adv: list = []  # (dim of the basic result, index array)
    masks: list = []  # (mask, first dim of the basic result it covers), checked once the basic part is known
    src = out = 0
    for k, p in kinds:
        if k == "int":
            size = shape[src]
            if not -size <= p < size:
                raise IndexError(f"index {p} is out of bounds for dimension {src} with size {size}")
            basic.append(p)
            src += 1
        elif k == "slice":
            basic.append(p)
            src += 1
            out += 1
        elif k == "none":
            basic.append(None)
            out += 1
        elif k == "ellipsis":  # like torch, a second Ellipsis stands for no dims
            n = ndim - used if n_ellipsis else 0
            n_ellipsis = 0
            basic.extend([slice(None)] * n)
            src += n
            out += n
        elif k == "bool":  # a new dim of size 1, indexed by [0] (True) or [] (False)
            basic.append(None)
            adv.append((out, np.zeros(int(p), I64)))
            out += 1
        elif k == "array":
            size = shape[src]
            bad, p = checked_index(p, size, True)
            if bad is not None:
                raise IndexError(f"index {bad} is out of bounds for dimension {len(adv)} with size {size}")
            basic.append(slice(None))
            adv.append((out, p))
            src += 1
            out += 1
        else:  # mask: its true positions, one index array per dim it covers
            masks.append((p, out))
            nz = nonzero_columns(p)
            for j in range(p.ndim):
                basic.append(slice(None))
                adv.append((out + j, nz[j]))
            src += p.ndim
            out += p.ndim
    # a trailing Ellipsis makes NumPy return a 0-d view, not a scalar, when every dim gets an int
    plan_basic = None if all(b == slice(None) for b in basic) else tuple(basic) + (Ellipsis,)
    if masks:
        _check_masks(shape, plan_basic, masks)
    if not adv:
        return IndexPlan(tuple(basic) + (Ellipsis,))
    arrays = [a for _, a in adv]
    try:
        if any(a.shape != arrays[0].shape for a in arrays):
            bshape = np.broadcast_shapes(*[tuple(a.shape) for a in arrays])
            arrays = [broadcast_array(a, bshape) for a in arrays]
    except ValueError:
        raise IndexError("shape mismatch: indexing tensors could not be broadcast together with shapes "
                         + ", ".join(str(list(a.shape)) for a in arrays)) from None
    return IndexPlan(plan_basic, tuple(d for d, _ in adv), tuple(arrays))


def _check_masks(shape, basic, masks) -> None:
    if basic is None:
        indexed = list(shape)
    else:
        indexed = list(np.broadcast_to(np.zeros((), np.bool_), shape)[basic].shape)
    for mask, first in masks:
        for j, n in enumerate(mask.shape):
            if indexed[first + j] != n:
                raise IndexError(f"The shape of the mask {list(mask.shape)} at index {j} does not match the shape "
                                 f"of the indexed tensor {indexed} at index {first + j}")


# -- __getitem__ / __setitem__ -------------------------------------------------------------------------------
def _getitem(self: Tensor, key) -> Tensor:
    """``x[key]``: a view for ints/slices/None/Ellipsis, a copy when arrays or masks are involved.

    >>> import jitorch
    >>> x = jitorch.arange(6).reshape(2, 3)
    >>> x[1, [0, 2]]
    tensor([3, 5])
    """
    basic = _basic_key(self._data.shape, key)
    if basic is not None:
        return basic_index(self, basic)
    if key.__class__ is Tensor and key._dtype is D.int64 and key._data.ndim:  # x[index_tensor]
        if key._device is not self._device:
            check_index_device(self, key)
        return _take_rows(self, key)
    _check_key_devices(self, key)
    plan = parse(self._data.shape, key)
    if not plan.dims:
        return basic_index(self, plan.basic)
    return plan.get(self)


def _basic_key(shape: tuple, key) -> tuple | None:
    """The NumPy index of a key made only of ints, int slices, None and one Ellipsis; else None
    (the general parser then handles it, errors included)."""
    items = key if key.__class__ is tuple else (key,)
    used = 0
    ellipsis = False
    for it in items:
        c = it.__class__
        if c is int:
            used += 1
        elif c is slice:
            if not ((it.start is None or it.start.__class__ is int) and (it.stop is None or it.stop.__class__ is int)
                    and (it.step is None or (it.step.__class__ is int and it.step > 0))):
                return None
            used += 1
        elif it is Ellipsis:
            if ellipsis:
                return None
            ellipsis = True
        elif it is not None:
            return None
    if used > len(shape):
        return None
    dim = 0
    for it in items:  # bounds of the ints, counting dims as the parser does
        if it is Ellipsis:
            dim += len(shape) - used
        elif it.__class__ is int:
            size = shape[dim]
            if not -size <= it < size:
                raise IndexError(f"index {it} is out of bounds for dimension {dim} with size {size}")
            dim += 1
        elif it is not None:
            dim += 1
    # a trailing Ellipsis keeps an all-int index a 0-d view (NumPy would return a scalar)
    return items if ellipsis else items + (Ellipsis,)


def _take_rows(self: Tensor, key: Tensor) -> Tensor:
    """``x[index]`` for an int64 index tensor: the hot path of embedding-style lookups."""
    note_read(key)
    idx = key._data
    shape = self._data.shape
    if not shape:
        raise IndexError("too many indices for tensor of dimension 0")
    bad, idx = checked_index(idx, shape[0], True)
    if bad is not None:
        raise IndexError(f"index {bad} is out of bounds for dimension 0 with size {shape[0]}")
    if idx is key._data and self._requires_grad:  # backward must not see later writes into key
        idx = idx.copy()
    return apply(INDEX, [self], {"dims": (0,), "idx": (idx,)})


def _check_key_devices(self: Tensor, key) -> None:
    for it in (key if key.__class__ in (tuple, list) else (key,)):
        if it.__class__ is Tensor or isinstance(it, Tensor):
            check_index_device(self, it)


def _setitem(self: Tensor, key, value) -> None:
    """``x[key] = value``: writes in place (value cast to x's dtype, broadcast to the region)."""
    basic = _basic_key(self._data.shape, key)
    if basic is None:
        _check_key_devices(self, key)
    plan = IndexPlan(basic) if basic is not None else parse(self._data.shape, key)
    if isinstance(value, Tensor):
        region = plan.result_shape(self._data.shape)
        value = _fit_value(value, region, bool(plan.dims))
        if value._device is not self._device:  # torch copies a value from another device (a CPU scalar...)
            value = value.to(self._device)
    elif not is_scalar(value):
        mod = type(value).__module__
        name = type(value).__name__ if mod == "builtins" else f"{mod}.{type(value).__name__}"
        raise TypeError(f"can't assign a {name} to a {self.type()}")
    assign(self, plan, value)


def _fit_value(value: Tensor, region: tuple, advanced: bool) -> Tensor:
    """Check ``value`` broadcasts to the written region (leading 1-dims are dropped, like torch)."""
    shape = tuple(value.shape)
    while len(shape) > len(region) and shape[0] == 1:
        shape = shape[1:]
    try:
        ok = broadcast_shapes(shape, region) == tuple(region)
    except RuntimeError:
        ok = False
    if not ok:
        if advanced:
            raise RuntimeError(f"shape mismatch: value tensor of shape {list(value.shape)} cannot be broadcast to "
                               f"indexing result of shape {list(region)}")
        expand(value.reshape(shape), region)  # raises torch's expand error
    return value


Tensor.__getitem__ = _getitem
Tensor.__setitem__ = _setitem


def index_put(input: Tensor, indices, values, accumulate: bool = False) -> Tensor:
    """``out = input.clone(); out[indices] = values`` (``+=`` with ``accumulate``)."""
    out = input.clone()
    return index_put_(out, indices, values, accumulate)


def index_put_(self: Tensor, indices, values, accumulate: bool = False) -> Tensor:
    if not isinstance(indices, (tuple, list)):
        raise TypeError("index_put_(): argument 'indices' must be tuple of Tensors")
    values = as_tensor_arg(values)
    if values._dtype is not self._dtype:
        raise RuntimeError("Index put requires the source and destination dtypes match, got "
                           f"{type_word(self._dtype)} for the destination and {type_word(values._dtype)} "
                           "for the source.")
    _check_key_devices(self, tuple(indices))
    plan = parse(self._data.shape, tuple(indices))
    values = _fit_value(values, plan.result_shape(self._data.shape), True)
    if values._device is not self._device:
        values = values.to(self._device)
    assign(self, plan, values, accumulate=accumulate, as_view=False)
    return self


# -- masks -------------------------------------------------------------------------------------------------
def _mask_arg(mask, op: str, word_style: str = "c") -> Tensor:
    mask = as_tensor_arg(mask)
    if mask._dtype is not D.bool_:
        if word_style == "c":
            words = {"float32": "float", "float64": "double", "float16": "c10::Half", "int64": "long int",
                     "int32": "int", "int16": "short int", "int8": "signed char", "uint8": "unsigned char"}
            raise RuntimeError(f"{op} only supports boolean masks, but got mask with dtype {words[mask._dtype.name]}")
        raise RuntimeError(f"{op} only supports boolean masks, but got mask with dtype "
                           f"{type_word(mask._dtype)}")
    return mask


def _fill_value(value, op: str, dtype) -> object:
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise RuntimeError(f"{op} only supports a 0-dimensional value tensor, but got tensor with "
                               f"{value.ndim} dimension(s).")
        return value.to(dtype) if value._dtype is not dtype else value
    if not is_scalar(value):
        raise TypeError(f"{op}(): argument 'value' must be Number or Tensor, not {type(value).__name__}")
    return value


def masked_fill(input: Tensor, mask, value) -> Tensor:
    """``value`` where ``mask`` is True, else ``input`` (mask broadcasts; dtype stays input's)."""
    mask = _mask_arg(mask, "masked_fill_")
    value = _fill_value(value, "masked_fill_", input._dtype)
    return _ew(E.WHERE, mask, value, input, dtype=input._dtype)


def masked_fill_(self: Tensor, mask, value) -> Tensor:
    mask = _mask_arg(mask, "masked_fill_")
    value = _fill_value(value, "masked_fill_", self._dtype)
    return inplace(self, lambda s: _ew(E.WHERE, mask, value, s, dtype=s._dtype), value)


def masked_select(input: Tensor, mask) -> Tensor:
    """The elements of ``input`` where ``mask`` is True (both broadcast), as a 1-D tensor."""
    mask = as_tensor_arg(mask)
    if mask._dtype is not D.bool_:
        raise RuntimeError("masked_select: expected BoolTensor for mask")
    note_read(mask, "shape-dependent")
    shape = broadcast_shapes(input._data.shape, mask._data.shape)
    x = input if tuple(input.shape) == shape else expand(input, shape)
    if not shape:  # 0-d: select from a 1-element vector
        x, shape = x.reshape(1), (1,)
    _check_same_device(input, mask, "masked_select")
    m = broadcast_array(mask._data, shape)
    return IndexPlan(None, tuple(range(len(shape))), nonzero_columns(m)).get(x)


def _check_same_device(x: Tensor, mask: Tensor, op: str) -> None:
    if mask._device is not x._device:
        raise RuntimeError(f"Expected all tensors to be on the same device, but found at least two devices, "
                           f"{x._device} and {mask._device}! ({op})")


def masked_scatter(input: Tensor, mask, source: Tensor) -> Tensor:
    """``input`` with the True positions of ``mask`` (row-major) filled from ``source`` in order."""
    mask = _mask_arg(mask, "masked_scatter_", word_style="torch")
    shape = broadcast_shapes(input._data.shape, mask._data.shape)
    out = (input if tuple(input.shape) == shape else expand(input, shape)).clone()
    return _masked_scatter_into(out, mask, source)


def masked_scatter_(self: Tensor, mask, source: Tensor) -> Tensor:
    mask = _mask_arg(mask, "masked_scatter_", word_style="torch")
    return inplace(self, lambda s: _masked_scatter_into(s.clone(), mask, source), source)


def _masked_scatter_into(out: Tensor, mask: Tensor, source: Tensor) -> Tensor:
    if source._dtype is not out._dtype:
        raise RuntimeError("masked_scatter: expected self and source to have same dtypes but got"
                           f"{type_word(out._dtype)} and {type_word(source._dtype)}")
    note_read(mask, "shape-dependent")
    if broadcast_shapes(mask._data.shape, out._data.shape) != out._data.shape:
        raise RuntimeError(f"masked_scatter_: expected mask of shape {list(mask.shape)} to broadcast to the "
                           f"shape of self {list(out.shape)}")
    _check_same_device(out, mask, "masked_scatter_")
    m = broadcast_array(mask._data, out._data.shape)
    lin = nonzero_columns(m.reshape(-1))[0]
    if source.numel() < lin.size:
        raise RuntimeError("Number of elements of source < number of ones in mask")
    part = source.reshape(-1)[:lin.size]
    assign(out, IndexPlan.positions(lin), part, as_view=False)
    return out


# -- nonzero, take, put ------------------------------------------------------------------------------------
NONZERO = kernel_op("nonzero", differentiable=False)


@impl("nonzero")
def _nonzero_impl(x):
    return np.argwhere(x).astype(I64, copy=False)


def nonzero(input: Tensor, *, as_tuple: bool = False):
    """Indices of the non-zero elements: an (n, ndim) int64 tensor, or one 1-D tensor per dim."""
    note_read(input, "shape-dependent")
    if as_tuple:
        arr = input._data if input.ndim else input._data.reshape(1)
        return tuple(wrap(own_index(a), D.int64, input._device) for a in nonzero_columns(arr))
    return apply(NONZERO, [input])


def argwhere(input: Tensor) -> Tensor:
    return nonzero(input)


def _flat_index(index, op: str, numel: int) -> np.ndarray:
    idx = index_data(index, (D.int64,))
    if idx is None:
        raise RuntimeError(f"{op}(): Expected a long tensor for index, but got {type_word(index._dtype)}")
    bad, idx = checked_index(idx, numel, True)
    if bad is not None:
        raise IndexError(f"out of range: tried to access index {bad} on a tensor of {numel} elements.")
    return idx


def take(input: Tensor, index: Tensor) -> Tensor:
    """``input.flatten()[index]``, shaped like ``index``."""
    idx = _flat_index(index, "take", input.numel())
    check_index_device(input, index)
    return IndexPlan.positions(idx).get(input)


def put(input: Tensor, index: Tensor, source: Tensor, accumulate: bool = False) -> Tensor:
    return put_(input.clone(), index, source, accumulate)


def put_(self: Tensor, index: Tensor, source: Tensor, accumulate: bool = False) -> Tensor:
    """``self.flatten()[index] = source`` in place (``+=`` with ``accumulate``)."""
    if source._dtype is not self._dtype:
        raise RuntimeError(f"put_(): self and source expected to have the same dtype, but got self.dtype = "
                           f"{type_word(self._dtype)} and source.dtype = {type_word(source._dtype)}")
    if source.numel() != index.numel():
        raise IndexError(f"put_(): Expected source and index to have the same number of elements, but got "
                         f"source.numel() = {source.numel()}, index.numel() = {index.numel()}")
    idx = _flat_index(index, "put_", self.numel())
    if not self._data.flags.c_contiguous:  # positions are row-major: write through a contiguous copy
        return inplace(self, lambda s: put_(s.contiguous().clone(), index, source, accumulate), source)
    assign(self, IndexPlan.positions(idx), source.reshape(idx.shape), accumulate=accumulate, as_view=False)
    return self


