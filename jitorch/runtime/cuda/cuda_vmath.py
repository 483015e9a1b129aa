"""The math that generated CUDA kernels call, for the GPU and for Numba's simulator.

Op templates are written once, as Python scalar expressions (``math.exp(x)``,
``np.floor(x)``, ``exp32(x)``, ``np.float32(1)``), for the CPU code generator.
A CUDA kernel imports the names those templates use from here:

- ``math_ns`` (bound to ``math`` in kernels): on a GPU the real ``math`` module,
  which numba.cuda lowers to libdevice (``math.exp`` of a float32 is ``__nv_expf``);
  under the simulator NumPy ufuncs, because Python's ``math`` raises where a GPU
  returns inf or nan (``math.exp(1000.0)``, ``math.sin(inf)``);
- ``np_ns`` (bound to ``np``): NumPy's scalar types, plus device versions of the
  few NumPy ufuncs templates call (``floor``, ``ceil``, ``trunc``, ``rint``,
  ``fmod``), which numba.cuda has no lowering for;
- ``exp32``, ``tanh32``, ``sigmoid32``: the CPU's vectorizable float32 helpers
  (``runtime/vmath.py``) are LLVM bit tricks; on a GPU libdevice's ``expf``/
  ``tanhf`` are already fast, so these are thin wrappers;
- ``fma``: ``a * b + c`` rounded once (``cuda.fma``), and ``mul_rn``: a product
  that is never fused into a following add (NVVM contracts ``a * b + c`` into an
  fma by default, the CPU kernels do not); the fused optimizer kernels use both
  to reproduce the CPU's arithmetic bit for bit.

The content hash of this file is stamped into every generated kernel's source,
so editing it invalidates their disk caches.
"""
from __future__ import annotations

import math
import types as _pytypes
from fractions import Fraction

import numpy

from . import driver

_NP_TYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16",
             "uint32", "uint64", "bool_")


def _np_namespace() -> _pytypes.ModuleType:
    ns = _pytypes.ModuleType("jitorch_cuda_np")
    for name in _NP_TYPES:
        setattr(ns, name, getattr(numpy, name))
    return ns


np_ns = _np_namespace()

if driver.simulated():
    def _quiet():
        return numpy.errstate(all="ignore")  # a fresh one per call: simulated threads enter it concurrently

    def _ufunc(f):
        def call(*args):
            with _quiet():
                return f(*args)
        call.__name__ = f.__name__
        return call

    def _same_type(f):
        """A Python ``math`` function whose result keeps a NumPy argument's float type (float32 stays float32)."""
        def call(x):
            r = f(x)
            return x.dtype.type(r) if isinstance(x, numpy.floating) else r
        call.__name__ = f.__name__
        return call

    # Python's math module, with NumPy's IEEE behaviour where Python raises
    math_ns = _pytypes.ModuleType("jitorch_cuda_sim_math")
    for _k in dir(math):
        if not _k.startswith("_"):
            setattr(math_ns, _k, getattr(math, _k))
    for _k, _f in {"exp": numpy.exp, "expm1": numpy.expm1, "log": numpy.log, "log2": numpy.log2,
                   "log10": numpy.log10, "log1p": numpy.log1p, "sqrt": numpy.sqrt, "sin": numpy.sin,
                   "cos": numpy.cos, "tan": numpy.tan, "asin": numpy.arcsin, "acos": numpy.arccos,
                   "atan": numpy.arctan, "atan2": numpy.arctan2, "sinh": numpy.sinh, "cosh": numpy.cosh,
                   "tanh": numpy.tanh, "asinh": numpy.arcsinh, "acosh": numpy.arccosh, "atanh": numpy.arctanh,
                   "copysign": numpy.copysign, "fmod": numpy.fmod, "floor": numpy.floor, "ceil": numpy.ceil,
                   "trunc": numpy.trunc, "fabs": numpy.fabs, "pow": numpy.power, "isnan": numpy.isnan,
                   "isinf": numpy.isinf, "isfinite": numpy.isfinite}.items():
        setattr(math_ns, _k, _ufunc(_f))
    math_ns.erf = _same_type(math.erf)  # bounded: Python's erf never raises
    math_ns.erfc = _same_type(math.erfc)

    np_ns.floor = _ufunc(numpy.floor)
    np_ns.ceil = _ufunc(numpy.ceil)
    np_ns.trunc = _ufunc(numpy.trunc)
    np_ns.rint = _ufunc(numpy.rint)
    np_ns.fmod = _ufunc(numpy.fmod)

    _F32 = numpy.float32

    def exp32(x):
        with _quiet():
            return numpy.exp(_F32(x))

    def tanh32(x):
        return numpy.tanh(_F32(x))

    def sigmoid32(x):
        with _quiet():
            return _F32(1) / (_F32(1) + numpy.exp(-_F32(x)))

    def fma(a, b, c):
        """``a * b + c`` with one rounding, in the type of ``a`` (the simulator's ``cuda.fma`` rounds twice)."""
        t = type(a)
        if not (math.isfinite(a) and math.isfinite(b) and math.isfinite(c)):
            return t(a * b + c)
        exact = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
        if t is not numpy.float32:
            return t(float(exact))  # Fraction -> float rounds correctly
        # exact -> float64 -> float32 may round twice: pick the nearest float32 around it
        r = numpy.float32(float(exact))
        if not math.isfinite(r):
            return r
        best = None
        for cand in (numpy.nextafter(r, _F32(-math.inf)), r, numpy.nextafter(r, _F32(math.inf))):
            err = abs(Fraction(float(cand)) - exact)
            even = int(numpy.array(cand).view(numpy.uint32)) % 2 == 0
            if best is None or err < best[0] or (err == best[0] and even):
                best = (err, cand)
        return best[1]

    def mul_rn(a, b):
        return a * b

else:
    from numba import cuda, types
    from numba.cuda import libdevice
    from numba.cuda.extending import overload, register_jitable

    math_ns = math  # numba.cuda maps math.* to libdevice, in the argument's precision

    @register_jitable
    def _floor(x):
        return math.floor(x)  # on CUDA, float in, same float out (not an int as on the CPU)

    @register_jitable
    def _ceil(x):
        return math.ceil(x)

    @register_jitable
    def _trunc(x):
        return math.trunc(x)

    @register_jitable
    def _fmod(x, y):
        return math.fmod(x, y)

    def _rint(x):
        return numpy.rint(x)

    @overload(_rint)
    def _rint_impl(x):
        if x == types.float32:
            return lambda x: libdevice.rintf(x)
        return lambda x: libdevice.rint(x)

    np_ns.floor = _floor
    np_ns.ceil = _ceil
    np_ns.trunc = _trunc
    np_ns.fmod = _fmod
    np_ns.rint = _rint

    @register_jitable
    def exp32(x):
        return math.exp(x)

    @register_jitable
    def tanh32(x):
        return math.tanh(x)

    @register_jitable
    def sigmoid32(x):
        one = numpy.float32(1)
        return one / (one + math.exp(-x))

    def fma(a, b, c):
        return a * b + c

    @overload(fma)
    def _fma_impl(a, b, c):
        # cuda.fma is typed only as an attribute of the cuda module, not through an alias
        return lambda a, b, c: cuda.fma(a, b, c)

    def mul_rn(a, b):
        return a * b

    @overload(mul_rn)
    def _mul_rn_impl(a, b):
        if a == types.float32:
            return lambda a, b: libdevice.fmul_rn(a, b)
        if a == types.float64:
            return lambda a, b: libdevice.dmul_rn(a, b)
        return lambda a, b: a * b


def source_version() -> str:
    """Content hash of this module (stamped into generated kernels)."""
    import hashlib
    with open(__file__, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]
