"""LLVM intrinsics that generated CPU kernels call where plain Python would not vectorize.

A running maximum written as ``a if a > b else b`` is a compare and a select,
and LLVM turns a loop of those into vector code only when the whole function
promises no NaNs, which Numba's per-instruction fastmath flags do not say.
``llvm.maximum``/``llvm.minimum`` are the IEEE 754-2019 operations (a NaN
operand gives NaN; -0 < +0), which LLVM knows how to reduce in vector lanes:
a max-reduction over a row then runs ~6x faster and needs no separate NaN flag.

Kernels import these from here; the import line carries :func:`source_version`
so that editing this file changes every dependent kernel's source text (and
so its disk-cache key).
"""
from __future__ import annotations

import hashlib

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

_SUFFIX = {"float32": "f32", "float64": "f64"}


def _binary_float_intrinsic(llvm_name: str):
    @intrinsic
    def fn(typingctx, a, b):
        if not (isinstance(a, types.Float) and a == b and str(a) in _SUFFIX):
            return None
        sig = a(a, b)

        def codegen(context, builder, signature, args):
            full = f"{llvm_name}.{_SUFFIX[str(signature.return_type)]}"
            ty = args[0].type
            mod = builder.module
            f = mod.globals.get(full) or ir.Function(mod, ir.FunctionType(ty, [ty, ty]), name=full)
            return builder.call(f, args)

        return sig, codegen

    return fn


fmaximum = _binary_float_intrinsic("llvm.maximum")  # NaN-propagating max of two floats of one type
fminimum = _binary_float_intrinsic("llvm.minimum")  # NaN-propagating min


def source_version() -> str:
    """A short hash of this file, stamped into the source of kernels that import it."""
    with open(__file__, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


IMPORT_LINE = f"from jitorch.compiler.codegen.intrinsics import fmaximum, fminimum  # intrinsics {source_version()}\n"
