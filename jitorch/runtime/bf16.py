"""bfloat16 <-> float32 inside Numba CPU kernels, and running bfloat16-unaware kernels in float32.

bfloat16 tensors keep raw 16-bit patterns (``jitorch._dtype.BF16_STORAGE``);
kernels receive them as uint16 arrays.  A generated kernel loads an element as
``bf16_to_f32(a[i])`` (the bits become the upper half of a float32: exact) and
stores a result as ``f32_to_bf16(y)`` (round to nearest even, NaN kept as a
quiet NaN of the same sign), so bfloat16 math is float32 math rounded once per
op, as in torch.  Both helpers are a handful of integer instructions around a
bit cast, so LLVM inlines and vectorizes them in the kernels' loops.  The same
arithmetic, for numba.cuda kernels, is in ``runtime/cuda/bf16.py``.

:func:`run_via_float32` runs a kernel implementation that knows nothing about
bfloat16 on float32 copies of its bfloat16 operands (see its docstring).
"""
from __future__ import annotations

import hashlib

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic


@intrinsic
def _bits_as_f32(typingctx, bits):
    """The float32 whose bit pattern is the low 32 bits of integer ``bits``."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        v = args[0]
        i32 = ir.IntType(32)
        if bits.bitwidth > 32:
            v = builder.trunc(v, i32)
        elif bits.bitwidth < 32:
            v = builder.zext(v, i32)
        return builder.bitcast(v, ir.FloatType())

    return types.float32(bits), codegen


@intrinsic
def _f32_as_bits(typingctx, x):
    """The bit pattern of float32 ``x`` as a uint32."""
    if x != types.float32:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.uint32(x), codegen


@njit(cache=True, nogil=True)
def bf16_to_f32(h):
    """float32 value of bfloat16 bits ``h`` (exact)."""
    return _bits_as_f32(np.int64(h) << 16)


@njit(cache=True, nogil=True)
def f32_to_bf16(x):
    """bfloat16 bits (uint16) of ``x`` taken as float32, rounded to nearest even."""
    f = np.float32(x)
    u = np.int64(_f32_as_bits(f))  # int64 arithmetic: Numba turns uint64-with-int mixes into floats
    if f != f:  # noqa: PLR0124 - NaN: a quiet NaN of the same sign (rounding could carry it to inf)
        return np.uint16(((u >> 16) & 0x8000) | 0x7FC0)
    return np.uint16((u + 0x7FFF + ((u >> 16) & 1)) >> 16)


def source_version() -> str:
    """Content hash of this module, stamped into kernels that call the helpers (disk-cache invalidation)."""
    with open(__file__, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


# -- bfloat16-unaware implementations -----------------------------------------------------------------------

def run_via_float32(fn, arrays, attrs: dict):
    """``fn(*arrays, **attrs)`` with bfloat16 operands given to ``fn`` as float32 copies.

    For kernel ops whose implementation has no bfloat16 path: their kernels
    would see bit patterns they cannot compute with.  Float32 results come back
    as bfloat16 when no operand was float32 to begin with (bfloat16 in,
    bfloat16 out; integer results such as indices stay as they are).  Works on
    host arrays and CudaArrays.  Costs one conversion each way; ops that only
    move data (views, copies, indexing) do not need it.
    """
    from .._dtype import BF16_STORAGE
    f32 = np.dtype(np.float32)
    had_f32 = any(a is not None and a.dtype == f32 for a in arrays)
    res = fn(*[_to_f32(a) if a is not None and a.dtype == BF16_STORAGE else a for a in arrays], **attrs)
    if had_f32:
        return res
    if isinstance(res, tuple):
        return tuple(_to_bf16(r) if r is not None and r.dtype == f32 else r for r in res)
    return _to_bf16(res) if res is not None and res.dtype == f32 else res


def _to_f32(a):
    if isinstance(a, np.ndarray):
        from .._dtype import bf16_values
        return bf16_values(a)
    from .cuda.copy import cast
    return cast(a, np.float32)


def _to_bf16(a):
    from .._dtype import BF16_STORAGE
    if isinstance(a, np.ndarray):
        from .._dtype import bf16_bits
        return bf16_bits(a).view(BF16_STORAGE)
    from .cuda.copy import cast
    return cast(a, BF16_STORAGE)
