"""Cheap kernel launches: compile once per signature, then launch without numba's dispatcher.

``kernel[grid, block](*args)`` makes numba-cuda resolve every argument's type,
look up the overload and marshal each array into 7+ launch parameters, about
30 us per launch on an H100.  A repeated eager op already knows all of that, so
this module keeps a table from a key ``(kind, op, dtypes, mode, rank...)`` to a
:class:`Launcher`: the kernel compiled once for an explicit signature (typed
pointers and int64 sizes, see ``codegen``), ready to launch.

Launch paths:

- GPU, ``direct`` (default): the compiled kernel's ``cuda.core`` handle is
  launched with ``cuda.core.launch(stream, config, kernel, *args)``; arrays are
  passed as raw device pointers (Python ints), sizes and strides as Python
  ints (int64 parameters), float scalars as NumPy scalars of the parameter's
  type.  Per call this costs the argument list (a few attribute reads per
  array) plus cuda.core's parameter packing and ``cuLaunchKernel`` (about 3 us
  for 16 parameters, cuda-python#1959): expected 4-8 us for a binary op,
  against ~30 us through the dispatcher.
- GPU, ``numba``: ``_Kernel.launch`` of the same compiled overload (skips type
  resolution, keeps numba's own marshalling); ``JITORCH_CUDA_LAUNCH=numba``
  selects it, and it is the fallback if the direct path cannot be set up.
- Simulator: ``dispatcher[grid, block](*args)`` with 1-D NumPy-backed device
  arrays standing for the pointers (the simulator takes no raw pointers).

Kernels run on the current stream (``streams``), in launch order, like every
copy and memset; nothing synchronizes until a value is read on the host.  A
launcher's ``stream`` attribute, when set, pins its launches to that stream
instead (the compiler's CUDA-graph capture sets it while recording).
"""
from __future__ import annotations

import os

import numpy as np

from .. import kernel_cache
from . import driver, streams

_TABLE: dict = {}


def get(key, build):
    """The launcher for ``key``; on a miss ``build()`` returns (source, function name, params)."""
    launcher = _TABLE.get(key)
    if launcher is None:
        source, name, params = build()
        from ...compiler import logs
        if logs.enabled("code"):
            logs.emit("code", f"cuda kernel {name}:\n{source}")
        dispatcher = kernel_cache.load_kernel(source, name)
        launcher = _TABLE[key] = make_launcher(dispatcher, params, name)
    return launcher


def make_launcher(dispatcher, params, name: str = "kernel"):
    """A launcher for ``dispatcher`` compiled for ``params`` (see ``codegen.elementwise_params``)."""
    if driver.simulated():
        from . import sim_fixes
        sim_fixes.install()
        return SimLauncher(dispatcher, params, name)
    return GpuLauncher(dispatcher, params, name)


def clear() -> None:
    """Forget every launcher (tests; kernels stay cached on disk)."""
    _TABLE.clear()


class SimLauncher:
    """Launches under Numba's simulator, which needs array objects where a GPU takes pointers."""

    __slots__ = ("dispatcher", "launches", "name", "params")

    def __init__(self, dispatcher, params, name):
        self.dispatcher = dispatcher
        self.params = tuple(params)
        self.name = name
        self.launches = 0

    def __call__(self, blocks: int, threads: int, *args) -> None:
        if len(args) != len(self.params):
            raise TypeError(f"{self.name}: {len(args)} launch arguments for {len(self.params)} parameters")
        conv = []
        for p, a in zip(self.params, args):
            kind = p[0]
            if kind == "ptr":
                conv.append(_sim_pointer(a, p[1]))
            elif kind == "i64":
                conv.append(int(a))
            else:
                conv.append(p[1].type(a))
        self.launches += 1
        self.dispatcher[blocks, threads](*conv)


def _sim_pointer(a, mem_dtype):
    """A 1-D array over ``a``'s storage from its first element to the end: what a pointer reaches."""
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray
    st = a.storage
    count = (st.size - a.offset) // mem_dtype.itemsize
    return FakeCUDAArray(np.ndarray((count,), dtype=mem_dtype, buffer=st.raw, offset=a.offset))


def _numba_type(p):
    from numba.cuda import types
    if p[0] == "i64":
        return types.int64
    from numba.cuda.np import numpy_support
    t = numpy_support.from_dtype(p[1])
    return types.CPointer(t) if p[0] == "ptr" else t


def _pointer(a) -> int:
    return a.data_ptr


class GpuLauncher:
    """Launches a kernel compiled for one explicit signature, bypassing the dispatcher."""

    __slots__ = (
        "configs",
        "convert",
        "direct",
        "fn",
        "kernel",
        "launch_fn",
        "launches",
        "name",
        "params",
        "stream",
    )

    def __init__(self, dispatcher, params, name):
        self.params = tuple(params)
        self.name = name
        self.launches = 0
        argtypes = tuple(_numba_type(p) for p in self.params)
        # compiles, or loads the cubin from numba-cuda's disk cache
        self.kernel = dispatcher.compile(argtypes)
        # one converter per parameter: pointers and int64 as Python ints (cuda.core passes a
        # Python int as an 8-byte value), other scalars as NumPy scalars of the exact type
        conv = []
        for p in self.params:
            if p[0] == "ptr":
                conv.append(_pointer)
            elif p[0] == "i64" or p[1] == np.dtype(np.int64):
                conv.append(int)
            else:
                conv.append(p[1].type)
        self.convert = tuple(conv)
        self.configs: dict = {}
        self.direct = False
        self.fn = self.launch_fn = None
        self.stream = None  # None: the current stream at each launch
        if os.environ.get("JITORCH_CUDA_LAUNCH", "direct") == "direct":
            try:
                from cuda.core import launch
                self.fn = self.kernel._codelibrary.get_cufunc().kernel
                self.launch_fn = launch
                self.direct = True
            except Exception:  # noqa: BLE001 - an older cuda.core: numba's own launch still works
                self.direct = False

    def __call__(self, blocks: int, threads: int, *args) -> None:
        packed = [c(a) for c, a in zip(self.convert, args)]
        self.launches += 1
        stream = self.stream
        if stream is None:
            stream = streams.current_core()
        if self.direct:
            cfg = self.configs.get((blocks, threads))
            if cfg is None:
                from cuda.core import LaunchConfig
                cfg = self.configs[(blocks, threads)] = LaunchConfig(grid=blocks, block=threads)
            self.launch_fn(stream, cfg, self.fn, *packed)
        else:
            self.kernel.launch(packed, (blocks, 1, 1), (threads, 1, 1), stream, 0)


def launches() -> dict:
    """Launch counts per kernel name (tests and ``explain``-style introspection)."""
    out: dict = {}
    for launcher in _TABLE.values():
        out[launcher.name] = out.get(launcher.name, 0) + launcher.launches
    return out
