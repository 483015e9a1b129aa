"""bfloat16 <-> float32 inside numba.cuda kernels (the GPU and the simulator).

The CUDA counterpart of ``runtime/bf16.py``, with the same arithmetic, so CPU
and CUDA round identically: a kernel reads bfloat16 bits as uint16 and calls
``bf16_to_f32`` (the bits become the upper half of a float32, exact), and
stores ``f32_to_bf16(y)`` (round to nearest even; a NaN becomes the quiet NaN
of its sign, never an infinity).  On a GPU the bit casts are libdevice's
``__int_as_float``/``__float_as_int`` (free: a register reinterpretation) and
the rounding is four integer instructions, negligible in memory-bound kernels.
Under the simulator the helpers are plain Python over NumPy scalars.

Generated kernels import these names only when they use them, stamped with
this file's hash (see ``codegen.header_for``).
"""
from __future__ import annotations

import hashlib

import numpy

from . import driver

if driver.simulated():
    def bf16_to_f32(h):
        return numpy.uint32(int(h) << 16).view(numpy.float32)

    def f32_to_bf16(x):
        with numpy.errstate(over="ignore"):
            f = numpy.float32(x)
        u = int(f.view(numpy.uint32))
        if f != f:  # noqa: PLR0124 - NaN test
            return numpy.uint16(((u >> 16) & 0x8000) | 0x7FC0)
        return numpy.uint16((u + 0x7FFF + ((u >> 16) & 1)) >> 16)

else:
    from numba.cuda import libdevice
    from numba.cuda.extending import register_jitable

    @register_jitable
    def bf16_to_f32(h):
        # int64 -> int32 truncates, so bits 0x8000.. land in the sign bit as they should
        return libdevice.int_as_float(numpy.int32(numpy.int64(h) << 16))

    @register_jitable
    def f32_to_bf16(x):
        f = numpy.float32(x)
        u = numpy.int64(libdevice.float_as_int(f)) & 0xFFFFFFFF
        if f != f:  # noqa: PLR0124 - NaN test
            return numpy.uint16(((u >> 16) & 0x8000) | 0x7FC0)
        return numpy.uint16((u + 0x7FFF + ((u >> 16) & 1)) >> 16)


def source_version() -> str:
    """Content hash of this module (stamped into the kernels that import it)."""
    with open(__file__, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]
