"""BLAS GEMM callable from inside Numba kernels (``nogil`` loops that alternate GEMMs with
elementwise work, such as an LSTM's time loop).

A time loop that calls ``np.matmul`` from Python takes and drops the GIL a few
times per step, so two threads running halves of the batch would spend their
time handing the GIL back and forth.  Kernels that call ``gemm`` below run the
whole loop without it.  The BLAS is the one NumPy ships (found by
``runtime.blas``); its ``cblas_?gemm`` is registered with LLVM under a fixed
name, so cached machine code stays valid in a new process (the address is
looked up again at import).  ``AVAILABLE`` is False when NumPy's BLAS exports
no such symbols; callers then keep their NumPy path.
"""
from __future__ import annotations

import ctypes

from llvmlite import binding as llb
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from . import blas

_ROW_MAJOR, _NO_TRANS = 101, 111
_SYMBOLS = {"float32": "jitorch_cblas_sgemm", "float64": "jitorch_cblas_dgemm"}


def _register() -> tuple[bool, bool]:
    """Bind the BLAS's cblas gemm functions to our symbol names; returns (found, 64-bit ints)."""
    lib = blas.library()
    if lib is None:
        return False, False
    for names, ilp64 in ((("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_"), True),
                         (("cblas_sgemm64_", "cblas_dgemm64_"), True),
                         (("scipy_cblas_sgemm", "scipy_cblas_dgemm"), False),
                         (("cblas_sgemm", "cblas_dgemm"), False)):
        fns = [getattr(lib, n, None) for n in names]
        if all(f is not None for f in fns):
            for sym, f in zip(_SYMBOLS.values(), fns):
                llb.add_symbol(sym, ctypes.cast(f, ctypes.c_void_p).value)
            return True, ilp64
    return False, False


AVAILABLE, _ILP64 = _register()


@intrinsic
def _cblas_gemm(typingctx, m, n, k, a, lda, b, ldb, c, ldc):
    """c (m, n) = a (m, k) @ b (k, n) on raw row-major pointers with leading dimensions."""
    dt = a.dtype
    sig = types.void(types.intp, types.intp, types.intp, a, types.intp, b, types.intp, c, types.intp)

    def codegen(context, builder, signature, args):
        m_, n_, k_, va, lda_, vb, ldb_, vc, ldc_ = args
        pa, pb, pc = (context.make_array(ty)(context, builder, v).data
                      for ty, v in ((signature.args[3], va), (signature.args[5], vb), (signature.args[7], vc)))
        i32 = ir.IntType(32)
        ii = ir.IntType(64 if _ILP64 else 32)
        fl = ir.FloatType() if dt == types.float32 else ir.DoubleType()
        ptr = fl.as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, ii, ii, ii, fl, ptr, ii, ptr, ii, fl, ptr, ii])
        fn = cgutils.get_or_insert_function(builder.module, fnty, _SYMBOLS[str(dt)])

        def cast(v):
            return builder.trunc(v, ii) if ii.width < 64 else v

        builder.call(fn, [ir.Constant(i32, _ROW_MAJOR), ir.Constant(i32, _NO_TRANS), ir.Constant(i32, _NO_TRANS),
                          cast(m_), cast(n_), cast(k_), ir.Constant(fl, 1.0), pa, cast(lda_), pb, cast(ldb_),
                          ir.Constant(fl, 0.0), pc, cast(ldc_)])
        return context.get_dummy_value()

    return sig, codegen


def gemm(a, b, c):
    """c = a @ b for 2-D float32/float64 arrays whose rows are unit-stride (inside Numba kernels only)."""
    raise NotImplementedError("gemm is only callable from Numba kernels")


@overload(gemm, jit_options={"nogil": True})
def _gemm_impl(a, b, c):
    def impl(a, b, c):
        m, k, n = a.shape[0], a.shape[1], b.shape[1]
        if m == 0 or n == 0:
            return
        if k == 0:  # BLAS rejects the empty inner dimension's leading sizes: the product is zero
            c[:] = 0
            return
        isz = a.itemsize
        # leading dimensions as BLAS wants them (>= the row length, even for a single row)
        _cblas_gemm(m, n, k, a, max(a.strides[0] // isz, k), b, max(b.strides[0] // isz, n), c,
                    max(c.strides[0] // isz, n))
    return impl
