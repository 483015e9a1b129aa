"""Batch collation, mirroring ``torch.utils.data._utils.collate``.

``default_collate`` turns a list of samples into a batch: tensors are stacked
along a new first dimension, numbers become 1-D tensors, and containers
(mappings, named tuples, sequences) are collated field by field.
``default_convert`` converts numpy data to tensors without batching (used
when automatic batching is off, i.e. ``batch_size=None``).

``collate(batch, collate_fn_map=...)`` is the extensible engine: the map sends
an element type (or tuple of types) to a function ``fn(batch, *,
collate_fn_map)``; ``default_collate_fn_map`` is the map used by
``default_collate`` and may be extended in place.
"""

import collections.abc
import copy
import re

import numpy as np

from ._common import _jt

__all__ = ["collate", "default_collate", "default_convert", "default_collate_fn_map"]

# numpy dtype strings of strings (S, a, U) and objects (O) can't become tensors
_np_str_obj_pattern = re.compile(r"[SaUO]")

default_collate_err_msg_format = (
    "default_collate: batch must contain tensors, numpy arrays, numbers, "
    "dicts or lists; found {}"
)


def _stack_tensors(batch):
    """Stack same-shaped tensors along a new dim 0.

    Plain CPU tensors that don't need gradients are stacked with numpy (one
    copy, no per-op overhead); anything else goes through ``jitorch.stack``.
    """
    jt = _jt()
    first = batch[0]
    shape = tuple(first.shape)
    for i, t in enumerate(batch):
        if tuple(t.shape) != shape:
            raise RuntimeError(
                "stack expects each tensor to be equal size, but got "
                f"{list(shape)} at entry 0 and {list(t.shape)} at entry {i}"
            )
    dtype = first.dtype
    if all(t.dtype == dtype and not getattr(t, "requires_grad", False) for t in batch):
        try:
            arrays = [t.numpy() for t in batch]
        except Exception:
            arrays = None
        if arrays is not None:
            out = np.empty((len(arrays),) + shape, dtype=arrays[0].dtype)
            for i, a in enumerate(arrays):
                out[i] = a
            result = jt.from_numpy(out)
            if result.dtype == dtype:
                return result
    return jt.stack(list(batch), 0)


def collate_tensor_fn(batch, *, collate_fn_map=None):
    return _stack_tensors(batch)


def collate_numpy_array_fn(batch, *, collate_fn_map=None):
    elem = batch[0]
    if _np_str_obj_pattern.search(elem.dtype.str) is not None:
        raise TypeError(default_collate_err_msg_format.format(elem.dtype))
    shape = elem.shape
    for i, a in enumerate(batch):
        if a.shape != shape:
            raise RuntimeError(
                "stack expects each tensor to be equal size, but got "
                f"{list(shape)} at entry 0 and {list(a.shape)} at entry {i}"
            )
    return _jt().from_numpy(np.stack(batch, 0))


def collate_numpy_scalar_fn(batch, *, collate_fn_map=None):
    return _jt().from_numpy(np.array(batch))


def collate_float_fn(batch, *, collate_fn_map=None):
    jt = _jt()
    return jt.tensor(list(batch), dtype=jt.float64)


def collate_int_fn(batch, *, collate_fn_map=None):
    # bool is an int subclass: a batch of bools becomes a bool tensor, a batch
    # of ints an int64 tensor (a float among ints promotes to the default
    # float dtype, as torch.tensor does).
    return _jt().tensor(list(batch))


def collate_str_fn(batch, *, collate_fn_map=None):
    return batch


class _CollateMap(dict):
    """``default_collate_fn_map``; its tensor entry is filled in lazily because
    ``jitorch.Tensor`` may not exist yet when this module is imported."""

    _tensor_added = False

    def _ensure_tensor(self):
        if self._tensor_added:
            return
        try:
            tensor_cls = _jt().Tensor
        except Exception:
            return
        self._tensor_added = True
        # The tensor entry goes first, as in torch.
        items = [(k, v) for k, v in dict.items(self) if k is not tensor_cls]
        dict.clear(self)
        dict.__setitem__(self, tensor_cls, collate_tensor_fn)
        for k, v in items:
            dict.__setitem__(self, k, v)

    def __getitem__(self, key):
        self._ensure_tensor()
        return dict.__getitem__(self, key)

    def __contains__(self, key):
        self._ensure_tensor()
        return dict.__contains__(self, key)

    def __iter__(self):
        self._ensure_tensor()
        return dict.__iter__(self)

    def __len__(self):
        self._ensure_tensor()
        return dict.__len__(self)

    def get(self, key, default=None):
        self._ensure_tensor()
        return dict.get(self, key, default)

    def keys(self):
        self._ensure_tensor()
        return dict.keys(self)

    def values(self):
        self._ensure_tensor()
        return dict.values(self)

    def items(self):
        self._ensure_tensor()
        return dict.items(self)

    def copy(self):
        self._ensure_tensor()
        return dict(dict.items(self))


default_collate_fn_map = _CollateMap()
default_collate_fn_map[np.ndarray] = collate_numpy_array_fn
default_collate_fn_map[(np.bool_, np.number, np.object_)] = collate_numpy_scalar_fn
default_collate_fn_map[float] = collate_float_fn
default_collate_fn_map[int] = collate_int_fn
default_collate_fn_map[str] = collate_str_fn
default_collate_fn_map[bytes] = collate_str_fn


def collate(batch, *, collate_fn_map=None):
    """Collate ``batch`` (a list of samples), dispatching on the type of its
    first element through ``collate_fn_map`` and recursing into containers."""
    elem = batch[0]
    elem_type = type(elem)

    if collate_fn_map is not None:
        fn = collate_fn_map.get(elem_type)
        if fn is not None:
            return fn(batch, collate_fn_map=collate_fn_map)
        for key, fn in collate_fn_map.items():
            if isinstance(elem, key):
                return fn(batch, collate_fn_map=collate_fn_map)

    if isinstance(elem, collections.abc.Mapping):
        def fields():
            return {k: collate([d[k] for d in batch], collate_fn_map=collate_fn_map) for k in elem}

        try:
            if isinstance(elem, collections.abc.MutableMapping):
                # copy keeps the mapping's own type and any extra attributes
                out = copy.copy(elem)
                out.update(fields())
                return out
            return elem_type(fields())
        except TypeError:
            return fields()

    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # namedtuple
        return elem_type(*(collate(s, collate_fn_map=collate_fn_map) for s in zip(*batch)))

    if isinstance(elem, collections.abc.Sequence):
        size = len(elem)
        if any(len(e) != size for e in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        columns = [collate(s, collate_fn_map=collate_fn_map) for s in zip(*batch)]
        if isinstance(elem, tuple):
            return columns  # tuples become lists, as in torch
        try:
            if isinstance(elem, collections.abc.MutableSequence):
                out = copy.copy(elem)
                for i, c in enumerate(columns):
                    out[i] = c
                return out
            return elem_type(columns)
        except TypeError:
            return columns

    raise TypeError(default_collate_err_msg_format.format(elem_type))


def default_collate(batch):
    """Put a list of samples into a batch with a leading batch dimension.

    * tensor -> tensor stacked along a new dim 0
    * numpy array -> tensor (stacked); numpy scalar -> 1-D tensor
    * int -> int64 tensor, float -> float64 tensor, bool -> bool tensor
    * str / bytes -> left as a list
    * Mapping -> same mapping with each value collated
    * namedtuple -> same namedtuple with each field collated
    * tuple -> list of collated fields; other sequences keep their type
    """
    return collate(batch, collate_fn_map=default_collate_fn_map)


def default_convert(data):
    """Convert numpy arrays (and numpy scalars) inside ``data`` into tensors,
    recursing into containers, without adding a batch dimension."""
    jt = _jt()
    elem_type = type(data)
    if isinstance(data, jt.Tensor):
        return data
    if elem_type.__module__ == "numpy" and elem_type.__name__ not in ("str_", "string_", "bytes_"):
        if isinstance(data, np.ndarray):
            if _np_str_obj_pattern.search(data.dtype.str) is not None:
                return data
            return jt.from_numpy(data)
        if isinstance(data, np.generic):
            return jt.from_numpy(np.array(data))
        return jt.as_tensor(data)
    if isinstance(data, collections.abc.Mapping):
        try:
            if isinstance(data, collections.abc.MutableMapping):
                out = copy.copy(data)
                out.update({k: default_convert(data[k]) for k in data})
                return out
            return elem_type({k: default_convert(data[k]) for k in data})
        except TypeError:
            return {k: default_convert(data[k]) for k in data}
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return elem_type(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        try:
            if isinstance(data, collections.abc.MutableSequence):
                out = copy.copy(data)
                for i, d in enumerate(data):
                    out[i] = default_convert(d)
                return out
            return elem_type([default_convert(d) for d in data])
        except TypeError:
            return [default_convert(d) for d in data]
    return data
