"""Data types and torch's type-promotion rules.

A :class:`dtype` wraps a NumPy dtype; tensors on the CPU store their elements
in NumPy arrays of exactly that dtype.  Promotion follows torch: operands are
ranked dimensioned tensor > zero-dim tensor > Python scalar, and a lower rank
only changes the result when it brings a higher category (bool < int < float).

NumPy has no bfloat16, so ``bfloat16`` tensors store the raw 16-bit patterns
(the upper half of a float32) in arrays of :data:`BF16_STORAGE`, a one-field
structured dtype.  Structured rather than plain uint16 on purpose: NumPy and
Numba refuse arithmetic on it, so a code path that is not bfloat16-aware fails
loudly instead of computing with bit patterns, while copies, views, indexing
and concatenation (pure data movement) work unchanged.  Every path that
computes converts: :func:`bf16_bits` (float32 -> bits, round to nearest even)
and :func:`bf16_values` (bits -> float32) on the host; the kernel helpers in
``runtime/bf16.py`` and ``runtime/cuda/bf16.py`` inside generated kernels.
"""
from __future__ import annotations

import numpy as np

_BOOL, _INT, _FLOAT = 0, 1, 2


class dtype:
    """A tensor element type (``jitorch.float32``...).  Singletons: compare with ``is``."""

    __slots__ = ("name", "numpy_dtype", "itemsize", "is_floating_point", "is_signed", "category", "__weakref__")

    def __init__(self, name: str, np_dtype, category: int):
        self.name = name
        self.numpy_dtype = np.dtype(np_dtype)
        self.itemsize = self.numpy_dtype.itemsize
        self.category = category
        self.is_floating_point = category == _FLOAT
        self.is_signed = category == _FLOAT or self.numpy_dtype.kind == "i"

    @property
    def is_complex(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"jitorch.{self.name}"

    def __reduce__(self):
        # dtypes are singletons: unpickle to the same object
        return (_by_name, (self.name,))

    def to_real(self) -> "dtype":
        return self


# bfloat16 bit patterns (see the module docstring); kernels read them as uint16
BF16_STORAGE = np.dtype([("bfloat16", "<u2")])
_U16 = np.dtype(np.uint16)

float16 = dtype("float16", np.float16, _FLOAT)
bfloat16 = dtype("bfloat16", BF16_STORAGE, _FLOAT)
float32 = dtype("float32", np.float32, _FLOAT)
float64 = dtype("float64", np.float64, _FLOAT)
int8 = dtype("int8", np.int8, _INT)
int16 = dtype("int16", np.int16, _INT)
int32 = dtype("int32", np.int32, _INT)
int64 = dtype("int64", np.int64, _INT)
uint8 = dtype("uint8", np.uint8, _INT)
bool_ = dtype("bool", np.bool_, _BOOL)

ALL_DTYPES = (float32, float64, float16, bfloat16, int8, int16, int32, int64, uint8, bool_)
FLOAT_DTYPES = (float16, bfloat16, float32, float64)
INT_DTYPES = (uint8, int8, int16, int32, int64)

ALIASES = {
    "float": float32, "double": float64, "half": float16, "short": int16,
    "int": int32, "long": int64, "bool": bool_,
}

_BY_NAME = {d.name: d for d in ALL_DTYPES}
_BY_NUMPY = {d.numpy_dtype: d for d in ALL_DTYPES}
# bfloat16's scalar type is np.void, which names no dtype: not in this table
_BY_NUMPY_TYPE = {d.numpy_dtype.type: d for d in ALL_DTYPES if d is not bfloat16}


def _by_name(name: str) -> dtype:
    return _BY_NAME[name]


def from_numpy(np_dtype) -> dtype:
    """The jitorch dtype for a NumPy dtype; TypeError for unsupported ones."""
    try:
        return _BY_NUMPY[np_dtype]
    except (KeyError, TypeError):
        pass
    try:
        return _BY_NUMPY[np.dtype(np_dtype)]
    except (KeyError, TypeError):
        raise TypeError(
            f"can't convert np.ndarray of type {np.dtype(np_dtype)}. The only supported types are: "
            "float64, float32, float16, int64, int32, int16, int8, uint8, and bool."
        ) from None


_default_float = float32


def get_default_dtype() -> dtype:
    return _default_float


def set_default_dtype(d: dtype) -> None:
    global _default_float
    if not isinstance(d, dtype) or not d.is_floating_point:
        raise TypeError(f"only floating-point types are supported as the default type, got {d}")
    _default_float = d


def to_dtype(d) -> dtype:
    """Accept jitorch dtypes, NumPy dtypes and Python types (float, int, bool)."""
    if isinstance(d, dtype):
        return d
    if d is float:
        return float64
    if d is int:
        return int64
    if d is bool:
        return bool_
    if isinstance(d, str):
        key = d.replace("jitorch.", "").replace("torch.", "")
        if key in _BY_NAME:
            return _BY_NAME[key]
        if key in ALIASES:
            return ALIASES[key]
        raise TypeError(f"unknown dtype name '{d}'")
    return from_numpy(d)


def _promote_pair(a: dtype, b: dtype) -> dtype:
    if a is b:
        return a
    if a.category != b.category:
        hi, lo = (a, b) if a.category > b.category else (b, a)
        return hi
    if a.category == _FLOAT:
        if a.itemsize == b.itemsize:  # float16 with bfloat16: neither holds the other, as in torch
            return float32
        return a if a.itemsize > b.itemsize else b
    if a.category == _BOOL:
        return a
    return _BY_NUMPY[np.promote_types(a.numpy_dtype, b.numpy_dtype)]


_PROMOTE = {(a, b): _promote_pair(a, b) for a in ALL_DTYPES for b in ALL_DTYPES}


def promote_types(a: dtype, b: dtype) -> dtype:
    """torch.promote_types: the smallest dtype both can be cast to safely."""
    return _PROMOTE[a, b]


def scalar_dtype(value) -> dtype:
    """The dtype a Python scalar would get as a tensor (default float for floats)."""
    if isinstance(value, bool):
        return bool_
    if isinstance(value, int):
        return int64
    if isinstance(value, float):
        return _default_float
    if isinstance(value, np.generic):
        return from_numpy(value.dtype)
    raise TypeError(f"unsupported scalar type {type(value).__name__}")


def _combine(higher, lower):
    # torch's combine_categories: the lower-priority result matters only when it
    # brings a higher category than what the higher-priority operands have.
    if higher is None:
        return lower
    if lower is None:
        return higher
    if higher.is_floating_point:
        return higher
    if higher is bool_ or lower.is_floating_point:
        return _PROMOTE[higher, lower]
    return higher


def result_type(*operands) -> dtype:
    """Promote a mix of tensors and Python scalars the way torch.result_type does."""
    dim = zero = wrapped = None
    for x in operands:
        d = getattr(x, "dtype", None)
        if isinstance(d, dtype):
            if x.ndim > 0:
                dim = d if dim is None else _PROMOTE[dim, d]
            else:
                zero = d if zero is None else _PROMOTE[zero, d]
        else:
            if isinstance(x, bool):
                s = bool_
            elif isinstance(x, int):
                s = int64
            elif isinstance(x, float):
                s = _default_float
            else:
                s = scalar_dtype(x)
                if s.is_floating_point:
                    s = _default_float
            wrapped = s if wrapped is None else _PROMOTE[wrapped, s]
    out = _combine(dim, _combine(zero, wrapped))
    if out is None:
        raise TypeError("result_type needs at least one operand")
    return out


_TYPE_WORDS = {"float32": "Float", "float64": "Double", "float16": "Half", "bfloat16": "BFloat16", "int64": "Long",
               "int32": "Int", "int16": "Short", "int8": "Char", "uint8": "Byte", "bool": "Bool"}


def type_word(d: dtype) -> str:
    """The name torch's error messages use for a dtype (``Long`` for int64...)."""
    return _TYPE_WORDS[d.name]


def can_cast(from_: dtype, to: dtype) -> bool:
    """torch.can_cast: same-kind rule (no float->int, no non-bool->bool)."""
    return from_.category <= to.category


# -- bfloat16 on the host ------------------------------------------------------------------------------------

def is_bf16(np_dtype) -> bool:
    """Is ``np_dtype`` the storage dtype of bfloat16 arrays?"""
    return np_dtype == BF16_STORAGE


def bf16_bits(values) -> np.ndarray:
    """bfloat16 bit patterns (uint16) of ``values``, rounded to nearest even like torch.

    Values are first converted to float32 (a float64 goes float64 -> float32 ->
    bfloat16, as torch's cast does).  NaNs become the quiet NaN of their sign
    (0x7FC0 / 0xFFC0), never an infinity.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        f = np.asarray(values, dtype=np.float32)
    u = np.ascontiguousarray(f).view(np.uint32)
    rounded = ((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)).astype(_U16)
    nan = f != f  # noqa: PLR0124 - NaN test
    if nan.any():
        rounded = np.where(nan, ((u >> np.uint32(16)) & np.uint32(0x8000)) | np.uint32(0x7FC0), rounded).astype(_U16)
    return rounded.reshape(f.shape)


def bf16_values(bits) -> np.ndarray:
    """float32 values of bfloat16 bit patterns (uint16 or :data:`BF16_STORAGE` arrays): exact."""
    b = np.asarray(bits)
    if b.dtype == BF16_STORAGE:
        b = b.view(_U16)
    return (np.ascontiguousarray(b).astype(np.uint32) << np.uint32(16)).view(np.float32).reshape(b.shape)


def to_storage(values, d: dtype) -> np.ndarray:
    """A host array of ``d``'s storage dtype holding ``values`` converted to ``d``."""
    if d is bfloat16:
        return bf16_bits(values).view(BF16_STORAGE)
    return np.asarray(values).astype(d.numpy_dtype)


def host_values(arr: np.ndarray) -> np.ndarray:
    """The elements of a host storage array as NumPy numbers (bfloat16 as float32; others unchanged)."""
    if arr.dtype == BF16_STORAGE:
        return bf16_values(arr)
    return arr


# -- finfo / iinfo -----------------------------------------------------------------------------------------

_BF16_MAX = float(bf16_values(np.uint16(0x7F7F)))  # 0x7F7F: the largest finite bfloat16


class finfo:
    """Machine limits of a floating dtype, like ``torch.finfo`` (default: the default dtype)."""

    def __init__(self, type=None):  # torch's parameter name
        d = get_default_dtype() if type is None else to_dtype(type)
        if not d.is_floating_point:
            raise TypeError(f"torch.finfo() requires a floating point input type. Use torch.iinfo to handle "
                            f"'{d!r}'")
        self.dtype = d.name
        if d is bfloat16:  # float32's exponent range with 8 significant bits
            self.bits, self.eps, self.max = 16, 2.0 ** -7, _BF16_MAX
            self.tiny = self.smallest_normal = 2.0 ** -126
            self.resolution = 0.01
        else:
            info = np.finfo(d.numpy_dtype)
            self.bits = info.bits
            self.eps, self.max = float(info.eps), float(info.max)
            self.tiny = self.smallest_normal = float(info.tiny)
            self.resolution = 10.0 ** -int(info.precision)
        self.min = -self.max

    def __repr__(self) -> str:
        return (f"finfo(resolution={self.resolution:g}, min={self.min:g}, max={self.max:g}, eps={self.eps:g}, "
                f"smallest_normal={self.smallest_normal:g}, tiny={self.tiny:g}, dtype={self.dtype})")


class iinfo:
    """Machine limits of an integer (or bool) dtype, like ``torch.iinfo``."""

    def __init__(self, type):  # torch's parameter name
        d = to_dtype(type)
        if d.is_floating_point:
            raise TypeError(f"torch.iinfo() requires an integer input type. Use torch.finfo to handle '{d!r}'")
        if d is bool_:
            raise TypeError("torch.bool is not supported by torch.iinfo")
        info = np.iinfo(d.numpy_dtype)
        self.dtype = d.name
        self.bits = 8 * d.itemsize
        self.min, self.max = int(info.min), int(info.max)

    def __repr__(self) -> str:
        return f"iinfo(min={self.min}, max={self.max}, dtype={self.dtype})"
