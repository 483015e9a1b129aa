"""Node attributes and scalar operands as JSON, for the traced-module file format.

Plain JSON carries ``None``, bools, ints, floats, strings and lists. Every other
value is a one-key object whose key starts with ``$`` (``{"$tuple": [...]}``); the
table is in ``docs/deployment.md``. Arrays and tensors inside attributes go to
the archive's tensor table and are referenced by index. Only jitorch's own
namedtuple classes and random-op functions can be named, so a file cannot make
the loader import or call anything else.
"""
from __future__ import annotations

import importlib
import math

import numpy as np

from .. import _dtype as D
from ._shapes import Sym

DTYPE_NAMES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")
MAX_DEPTH = 50


class EncodeError(TypeError):
    """An attribute of a type the format cannot describe."""


class FormatError(Exception):
    """The file's graph description is malformed (reported by ``jit.load`` as RuntimeError)."""


def _ref(obj) -> str:
    return f"{obj.__module__}:{obj.__qualname__}"


def _resolve(ref: str):
    """A jitorch module attribute named ``module:qualname``; FormatError for anything outside jitorch."""
    if not isinstance(ref, str) or ":" not in ref:
        raise FormatError(f"invalid reference {ref!r}")
    mod, qual = ref.split(":", 1)
    if not (mod == "jitorch" or mod.startswith("jitorch.")) or "<" in qual:
        raise FormatError(f"reference {ref!r} is outside jitorch")
    try:
        obj = importlib.import_module(mod)
        for part in qual.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        raise FormatError(f"reference {ref!r} does not exist in this jitorch") from None
    return obj


def _replay_wrapper_code():
    from .._dispatch import replayable_random
    return replayable_random(lambda: None).__code__


def _random_op_ref(fn) -> str | None:
    """``module:qualname`` of a replayable random op (the wrapper whose ``__wrapped__`` is ``fn``)."""
    try:
        wrapper = _resolve(_ref(fn))
    except (FormatError, AttributeError):
        return None
    if getattr(wrapper, "__wrapped__", None) is fn and wrapper.__code__ is _replay_wrapper_code():
        return _ref(fn)
    return None


class Encoder:
    """Values -> JSON; arrays and tensors are appended to ``self.tensors``."""

    def __init__(self):
        self.tensors: list = []

    def encode(self, v, where: str, depth: int = 0):
        from .._tensor import Size, Tensor
        from ..runtime.device import Device
        if depth > MAX_DEPTH:
            raise EncodeError(f"{where} is nested too deeply")
        cls = type(v)
        if v is None or cls in (bool, int, str):
            return v
        if cls is float:
            return v if math.isfinite(v) else {"$float": repr(v)}
        if isinstance(v, Sym):
            return {"$batch": [v.coef, v.offset]}
        if isinstance(v, np.integer):
            return {"$npint": [str(v.dtype), int(v)]}
        if isinstance(v, np.floating):
            return {"$npfloat": [str(v.dtype), float(v) if math.isfinite(v) else repr(float(v))]}
        if isinstance(v, np.bool_):
            return bool(v)
        if cls is list:
            return [self.encode(x, f"{where}[{k}]", depth + 1) for k, x in enumerate(v)]
        if cls is Size:
            return {"$size": [self.encode(x, f"{where}[{k}]", depth + 1) for k, x in enumerate(v)]}
        if cls is tuple:
            return {"$tuple": [self.encode(x, f"{where}[{k}]", depth + 1) for k, x in enumerate(v)]}
        if isinstance(v, tuple) and hasattr(cls, "_fields"):
            try:
                ok = cls.__module__.startswith("jitorch") and _resolve(_ref(cls)) is cls
            except FormatError:
                ok = False
            if not ok:
                raise EncodeError(f"{where} is a {cls.__qualname__} namedtuple from outside jitorch")
            return {"$namedtuple": [_ref(cls), [self.encode(x, f"{where}.{f}", depth + 1)
                                                for f, x in zip(cls._fields, v)]]}
        if cls is dict:
            return {"$dict": [[self.encode(k, f"{where} key", depth + 1), self.encode(x, f"{where}[{k!r}]", depth + 1)]
                              for k, x in v.items()]}
        if cls is slice:
            return {"$slice": [self.encode(p, f"{where}.slice", depth + 1) for p in (v.start, v.stop, v.step)]}
        if v is Ellipsis:
            return {"$ellipsis": True}
        if isinstance(v, D.dtype):
            return {"$dtype": v.name}
        if isinstance(v, np.dtype):
            if v.name not in DTYPE_NAMES:
                raise EncodeError(f"{where} is the NumPy dtype {v}, which the format does not support")
            return {"$npdtype": v.name}
        if isinstance(v, Device):
            return {"$device": str(v)}
        if isinstance(v, np.ndarray):
            if v.dtype.name not in DTYPE_NAMES:
                raise EncodeError(f"{where} is an array of dtype {v.dtype}, which the format does not support")
            self.tensors.append(np.ascontiguousarray(v))
            return {"$array": len(self.tensors) - 1}
        if isinstance(v, Tensor):
            self.tensors.append(np.ascontiguousarray(v._data))
            return {"$tensor": len(self.tensors) - 1}
        if callable(v):
            ref = _random_op_ref(v)
            if ref is not None:
                return {"$random_op": ref}
        raise EncodeError(f"{where} has type {cls.__module__}.{cls.__qualname__}, which jitorch.jit.save cannot "
                          "encode")


class Decoder:
    """JSON -> values, validating as it goes; ``arrays`` is the archive's attribute tensor table."""

    def __init__(self, arrays: list):
        self.arrays = arrays

    def decode(self, v, depth: int = 0):
        if depth > MAX_DEPTH:
            raise FormatError("attribute nested too deeply")
        if v is None or type(v) in (bool, int, str, float):
            return v
        if type(v) is list:
            return [self.decode(x, depth + 1) for x in v]
        if type(v) is not dict or len(v) != 1:
            raise FormatError(f"invalid attribute value {str(v)[:80]}")
        (tag, x), = v.items()
        handler = getattr(self, "_" + tag[1:], None) if isinstance(tag, str) and tag.startswith("$") else None
        if handler is None:
            raise FormatError(f"unknown attribute tag {tag!r}")
        return handler(x, depth + 1)

    def _items(self, x, depth, n=None):
        if type(x) is not list or (n is not None and len(x) != n):
            raise FormatError(f"invalid attribute payload {str(x)[:80]}")
        return [self.decode(i, depth) for i in x]

    def _float(self, x, depth):
        if x not in ("nan", "inf", "-inf"):
            raise FormatError(f"invalid float {x!r}")
        return float(x)

    def _batch(self, x, depth):
        if type(x) is not list or len(x) != 2 or any(type(i) is not int for i in x):
            raise FormatError(f"invalid batch expression {x!r}")
        return Sym(x[0], x[1])

    def _npint(self, x, depth):
        if type(x) is not list or len(x) != 2 or x[0] not in DTYPE_NAMES or type(x[1]) is not int:
            raise FormatError(f"invalid NumPy integer {x!r}")
        return np.dtype(x[0]).type(x[1])

    def _npfloat(self, x, depth):
        if type(x) is not list or len(x) != 2 or x[0] not in DTYPE_NAMES:
            raise FormatError(f"invalid NumPy float {x!r}")
        return np.dtype(x[0]).type(float(x[1]))

    def _tuple(self, x, depth):
        return tuple(self._items(x, depth))

    def _size(self, x, depth):
        from .._tensor import Size
        items = self._items(x, depth)
        if any(type(i) is not int and not isinstance(i, Sym) for i in items):
            raise FormatError("invalid Size")
        return Size(items)

    def _namedtuple(self, x, depth):
        if type(x) is not list or len(x) != 2:
            raise FormatError("invalid namedtuple")
        cls = _resolve(x[0])
        if not (isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields")):
            raise FormatError(f"{x[0]} is not a namedtuple")
        fields = self._items(x[1], depth, len(cls._fields))
        return cls._make(fields)

    def _dict(self, x, depth):
        if type(x) is not list or any(type(p) is not list or len(p) != 2 for p in x):
            raise FormatError("invalid dict attribute")
        out = {}
        for k, val in x:
            key = self.decode(k, depth)
            try:
                out[key] = self.decode(val, depth)
            except TypeError:
                raise FormatError("unhashable dict key") from None
        return out

    def _slice(self, x, depth):
        parts = self._items(x, depth, 3)
        if any(p is not None and type(p) is not int and not isinstance(p, Sym) for p in parts):
            raise FormatError("invalid slice")
        return slice(*parts)

    def _ellipsis(self, x, depth):
        return Ellipsis

    def _dtype(self, x, depth):
        if x not in DTYPE_NAMES:
            raise FormatError(f"unknown dtype {x!r}")
        return D._by_name(x)

    def _npdtype(self, x, depth):
        if x not in DTYPE_NAMES:
            raise FormatError(f"unknown dtype {x!r}")
        return np.dtype(x)

    def _device(self, x, depth):
        from ..runtime.device import Device
        if not isinstance(x, str):
            raise FormatError("invalid device")
        return Device(x)

    def _array(self, x, depth):
        if type(x) is not int or not 0 <= x < len(self.arrays):
            raise FormatError(f"array index {x!r} out of range")
        return self.arrays[x]._data

    def _tensor(self, x, depth):
        if type(x) is not int or not 0 <= x < len(self.arrays):
            raise FormatError(f"tensor index {x!r} out of range")
        return self.arrays[x]

    def _random_op(self, x, depth):
        wrapper = _resolve(x)
        if getattr(wrapper, "__code__", None) is not _replay_wrapper_code():
            raise FormatError(f"{x} is not a replayable random op")
        return wrapper.__wrapped__
