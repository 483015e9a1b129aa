"""Hand-written CUDA kernels: compiled once per argument types, launched without numba's dispatch.

``numba.cuda``'s ``kernel[grid, block](*args)`` resolves the Numba type of every
argument and searches the overloads on every call (~30 µs on an H100, more
than a whole small torch op).  :class:`Kernel` keeps its own table from a cheap
key of the arguments (dtype, rank and contiguity of arrays, Python type of
scalars, length of tuples) to the compiled ``_Kernel``, marshals the launch
arguments itself straight from each :class:`CudaArray`'s pointer, shape and
strides (the same flattening numba's ``_Kernel._prepare_args`` does, without
building a ``DeviceNDArray``) and calls ``cuda.core.launch``.  Under the
simulator it simply calls the fake kernel with numba's simulated arrays.

Kernels read strided tensors through :func:`span`: a 1-D contiguous buffer
over every element the view can reach, an element offset into it and element
strides, so one compiled overload per dtype serves every layout and rank
(shapes and strides travel as tuples, which numba unrolls per tuple length).

Launches go to the current stream (``streams``).

``JITORCH_CUDA_LAUNCH=numba`` routes launches through numba's own
``_Kernel.launch`` instead of the raw path (a switch for debugging).
"""
from __future__ import annotations

import ctypes
import os

import numpy as np
from numba import cuda

from . import driver, launch, sim_fixes, streams
from .array import CudaArray, empty

if driver.simulated():
    sim_fixes.install()  # before any simulated launch: see sim_fixes

_F32 = np.float32
_F64 = np.float64


def simulated() -> bool:
    return driver.simulated()


# -- argument keys and Numba types -------------------------------------------------------------------------
class Fixed:
    """A kernel argument that never changes (an array at a fixed address, e.g. ``device_checks``' error
    record): its launch words are computed once instead of at every launch."""

    __slots__ = ("array", "key", "words")

    def __init__(self, array: CudaArray):
        self.array = array
        self.key = ("fixed", array.dtype.char, array.ndim, array.flags.c_contiguous)
        words: list = []
        _marshal((_W_ARRAY,), (array,), words)
        self.words = tuple(words)


def _key_of(v):
    if v.__class__ is Fixed:
        return v.key
    if isinstance(v, CudaArray):
        return (v.dtype.char, v.ndim, v.flags.c_contiguous)
    t = type(v)
    if t is tuple:
        return ("t", len(v), type(v[0]) if v else int)
    return t


def _numba_type(v):
    from numba.cuda import types
    from numba.cuda.np.numpy_support import from_dtype
    if isinstance(v, Fixed):
        v = v.array
    if isinstance(v, CudaArray):
        return types.Array(from_dtype(v.dtype), v.ndim, "C" if v.flags.c_contiguous else "A")
    if isinstance(v, (bool, np.bool_)):
        return types.boolean
    if isinstance(v, (int, np.integer)):
        return types.int64
    if isinstance(v, np.float32):
        return types.float32
    if isinstance(v, (float, np.floating)):
        return types.float64
    if isinstance(v, tuple):
        if not v:
            return types.UniTuple(types.int64, 0)
        return types.UniTuple(_numba_type(v[0]), len(v))
    raise TypeError(f"unsupported CUDA kernel argument {type(v).__name__}")


# how each argument becomes launch words, decided once per compiled overload
_W_ARRAY, _W_INT, _W_F64, _W_F32, _W_BOOL, _W_TUPLE, _W_FIXED = range(7)


def _kind(ty):
    from numba.cuda import types
    if isinstance(ty, types.Array):
        return _W_ARRAY
    if isinstance(ty, types.BaseTuple):
        return (_W_TUPLE, tuple(_kind(t) for t in ty))
    if ty == types.boolean:
        return _W_BOOL
    if isinstance(ty, types.Integer):
        return _W_INT
    if ty == types.float64:
        return _W_F64
    if ty == types.float32:
        return _W_F32
    raise NotImplementedError(ty)


def _marshal(kinds, args, out: list) -> None:
    """Append the launch words of ``args``: numba's own flattening (``_Kernel._prepare_args``)."""
    for k, v in zip(kinds, args):
        if k == _W_ARRAY:  # meminfo, parent, nitems, itemsize, data, shape..., strides...
            out.append(0)
            out.append(0)
            out.append(v.size)
            out.append(v.itemsize)
            out.append(v.data_ptr)
            out.extend(v.shape)
            out.extend(v.strides)
        elif k == _W_INT:
            out.append(ctypes.c_int64(int(v)))
        elif k == _W_F64:
            out.append(ctypes.c_double(float(v)))
        elif k == _W_F32:
            out.append(ctypes.c_float(float(v)))
        elif k == _W_BOOL:
            out.append(bool(v))
        elif k == _W_FIXED:
            out.extend(v.words)
        else:
            _marshal(k[1], v, out)


def _word_size(w) -> int:
    if isinstance(w, bool):
        return 1
    if isinstance(w, int):
        return ctypes.sizeof(ctypes.c_void_p)
    return ctypes.sizeof(w)


def _words_fit(cukernel, words: list) -> bool:
    """Do the marshalled words match the compiled kernel's parameters (count and sizes)?"""
    try:
        info = list(cukernel.arguments_info)
    except Exception:  # noqa: BLE001 - an older cuda.core: trust the count alone
        return cukernel.num_arguments == len(words)
    if len(info) != len(words):
        return False
    return all((getattr(p, "size", None) or p[1]) == _word_size(w) for p, w in zip(info, words))


def _sim_arg(v):
    if isinstance(v, CudaArray):
        return v.dev
    if v.__class__ is Fixed:
        return v.array.dev
    return v


_state: dict = {}


def _core_stream():
    """The stream launches go to: the current stream (``streams``), unless ``_state["stream"]`` pins one
    (the compiler's CUDA-graph capture sets it while recording)."""
    s = _state.get("stream")
    return s if s is not None else streams.current_core()


def _launch_config(grid, block, shared):
    key = (grid, block, shared)
    cfg = _CONFIGS.get(key)
    if cfg is None:
        from cuda.core import LaunchConfig
        if len(_CONFIGS) > 4096:
            _CONFIGS.clear()
        cfg = _CONFIGS[key] = LaunchConfig(grid=grid, block=block, shmem_size=shared)
    return cfg


_CONFIGS: dict = {}


class Kernel:
    """A ``cuda.jit`` kernel compiled per argument-type key and launched cheaply.

    ``Kernel(pyfunc)(grid, block, *args)``: ``args`` are CudaArrays, Python
    ints/floats/bools, ``np.float32`` scalars or tuples of ints.
    """

    def __init__(self, pyfunc, name: str | None = None):
        self.pyfunc = pyfunc
        self.name = name or pyfunc.__name__
        self._dispatcher = None
        self._compiled: dict = {}

    @property
    def dispatcher(self):
        d = self._dispatcher
        if d is None:
            d = self._dispatcher = cuda.jit(self.pyfunc) if simulated() else cuda.jit(cache=_cacheable(self.pyfunc))(
                self.pyfunc)
        return d

    def __call__(self, grid, block, *args, shared: int = 0):
        if simulated():
            self.dispatcher[grid, block](*[_sim_arg(a) for a in args])
            return
        key = tuple(_key_of(a) for a in args)
        entry = self._compiled.get(key)
        if entry is None:
            entry = self._compiled[key] = self._compile(args)
        kern, kinds, cukernel = entry
        if cukernel is None:
            kern.launch([a.dev if isinstance(a, CudaArray) else _sim_arg(a) for a in args], _dim3(grid),
                        _dim3(block), _core_stream(), shared)
            return
        words: list = []
        _marshal(kinds, args, words)
        from cuda.core import launch as core_launch
        core_launch(_core_stream(), _launch_config(grid, block, shared), cukernel, *words)

    def over(self, n: int, *args) -> None:
        """Launch a grid-stride kernel over ``n`` items (:func:`grid`); nothing to launch when ``n`` is 0."""
        if n:
            blocks, threads = launch.config(n)
            self(blocks, threads, *args)

    def _compile(self, args) -> tuple:
        """(numba ``_Kernel``, argument kinds, cuda.core kernel or None to launch through numba)."""
        argtypes = tuple(_numba_type(a) for a in args)
        kern = self.dispatcher.compile(argtypes)
        kinds = tuple(_W_FIXED if a.__class__ is Fixed else _kind(t) for a, t in zip(args, argtypes))
        cukernel = None if _numba_launch() else kern._codelibrary.get_cufunc().kernel
        if cukernel is not None:
            words: list = []
            _marshal(kinds, args, words)
            if not _words_fit(cukernel, words):  # numba changed its argument layout: use its own launch
                from ...compiler import logs
                logs.emit("cuda_launch", f"{self.name}: raw kernel arguments do not fit; launching through numba")
                cukernel = None
        return kern, kinds, cukernel


def _dim3(d):
    if isinstance(d, int):
        return (d, 1, 1)
    return tuple(d) + (1,) * (3 - len(d))


def _numba_launch() -> bool:
    v = _state.get("numba_launch")
    if v is None:
        v = _state["numba_launch"] = os.environ.get("JITORCH_CUDA_LAUNCH", "") == "numba"
    return v


def _cacheable(fn) -> bool:
    # numba can disk-cache only functions that live in a real file (generated ones are loaded from one)
    code = getattr(fn, "__code__", None)
    return bool(code) and os.path.isfile(code.co_filename)


def kernel(fn) -> Kernel:
    """Decorator form of :class:`Kernel`."""
    return Kernel(fn)


def kernels(*fns) -> tuple:
    """The :class:`Kernel` of each kernel function (a module section's launch table in one statement)."""
    return tuple(Kernel(f) for f in fns)


# -- argument helpers ----------------------------------------------------------------------------------------
def span(a: CudaArray) -> tuple:
    """(1-D contiguous buffer, element offset, element strides) covering every element ``a`` can reach."""
    isz = a.itemsize
    est = tuple(s // isz for s in a.strides)
    lo = hi = 0
    for n, s in zip(a.shape, est):
        if n == 0:
            return a.as_strided((0,), (isz,)), 0, est
        if s < 0:
            lo += (n - 1) * s
        else:
            hi += (n - 1) * s
    start = a.offset + lo * isz
    buf = a.as_strided((hi - lo + 1,), (isz,), offset_bytes=start)
    return buf, -lo, est


def flat(a: CudaArray) -> CudaArray:
    """A 1-D view of a C-contiguous array."""
    if a.ndim == 1:
        return a
    return a.as_strided((a.size,), (a.itemsize,))


def contiguous(a: CudaArray, dtype=None) -> CudaArray:
    """``a`` itself when already C-contiguous (and of ``dtype``), else a contiguous (cast) copy."""
    dtype = a.dtype if dtype is None else np.dtype(dtype)
    if a.flags.c_contiguous and a.dtype == dtype:
        return a
    from .copy import copy_into
    out = empty(a.shape, dtype)
    if a.size:
        copy_into(out, a)
    return out


def cast(a: CudaArray, dtype) -> CudaArray:
    """``a`` converted to ``dtype`` (a new contiguous array unless nothing changes)."""
    return contiguous(a, dtype)


def zeros(shape, dtype) -> CudaArray:
    out = empty(shape, dtype)
    if out.size:
        out.fill(0)
    return out


def device(x, dtype=None) -> CudaArray:
    """A host array (an op's attribute, e.g. an index) as a contiguous device array; CudaArrays pass through."""
    if isinstance(x, CudaArray):
        return contiguous(x, dtype)
    from .copy import from_host
    return from_host(np.ascontiguousarray(x, dtype=dtype))


def grid(n: int, threads: int = launch.THREADS) -> tuple[int, int]:
    """(blocks, threads) for a grid-stride loop over ``n`` items."""
    return launch.config(n, threads)


def work_dtype(dt: np.dtype, accumulate: bool = False) -> np.dtype:
    """The dtype a kernel computes in: half in float32 (no half atomics or arithmetic everywhere),
    bool sums in int64 (they must saturate to True, not wrap)."""
    dt = np.dtype(dt)
    if dt == np.float16:
        return np.dtype(_F32)
    if accumulate and dt == np.bool_:
        return np.dtype(np.int64)
    return dt


def finish(a: CudaArray, dtype) -> CudaArray:
    """Turn a work-dtype result back into ``dtype`` (bool sums: nonzero means True)."""
    dtype = np.dtype(dtype)
    if a.dtype == dtype:
        return a
    if dtype == np.bool_ and a.dtype.kind in "iu":
        return _nonzero_to_bool(a)
    return cast(a, dtype)


def _nonzero_to_bool(a: CudaArray) -> CudaArray:
    out = empty(a.shape, np.bool_)
    if a.size:
        b, t = grid(a.size)
        _NZ_BOOL(b, t, flat(contiguous(a)), flat(out), a.size)
    return out


def _nz_bool(src, out, n):
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    while i < n:
        out[i] = src[i] != 0
        i += step


_NZ_BOOL = Kernel(_nz_bool)


@cuda.jit(device=True, inline=True)
def isnan(v):
    """A NaN test for kernels that also compiles for integer values (where it is always False)."""
    return v != v  # noqa: PLR0124 - the comparison is the test


# op codes of :func:`combine`, the binary reductions kernels take as a run-time argument
SUM, PROD, AMAX, AMIN = 1, 2, 3, 4


@cuda.jit(device=True, inline=True)
def combine(acc, v, op):
    """``acc`` combined with a new value ``v`` by reduction ``op``; amax/amin propagate NaN (which then stays)."""
    if op == SUM:
        return acc + v
    if op == PROD:
        return acc * v
    if op == AMAX:
        return v if (v > acc or isnan(v)) and not isnan(acc) else acc
    return v if (v < acc or isnan(v)) and not isnan(acc) else acc
