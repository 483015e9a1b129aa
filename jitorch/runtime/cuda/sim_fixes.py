"""Corrections to Numba's CUDA simulator that the CUDA tests depend on (simulator only).

The simulator runs every CUDA thread of a block as a Python thread.  Its
``cuda.shared.array`` looks up the block's array for the calling source line
in a dict and, when it is missing, creates and stores it: a check-then-act
without a lock.  When the interpreter switches threads between the check and
the store, two threads of one block each create an array and work on different
"shared" memory: a block reduction then reads elements nobody wrote (a garbage
``nonzero`` count, a wrong sum).  It happens in a few launches out of
thousands, so a test suite that launches many small kernels failed at random.
:func:`install` replaces the method with one that does the same under a lock.

With allocator poisoning on (``memory.set_poison``, ``JITORCH_CUDA_POISON=1``)
simulated shared and local arrays are poisoned too, so a kernel that reads
on-chip memory it did not write fails as deterministically as one that reads
an unwritten global buffer.
"""
from __future__ import annotations

import sys
import threading

import numpy as np

from .memory import POISON_BYTE, POOL

_installed: list = []


def install() -> None:
    """Patch the simulator (once; a no-op when its internals are not the ones this module knows)."""
    if _installed:
        return
    _installed.append(True)
    try:
        from numba.cuda.np import numpy_support
        from numba.cuda.simulator import kernelapi
        from numba.cuda.types import Type
    except ImportError:
        return
    shared_cls, local_cls = kernelapi.FakeCUDAShared, kernelapi.FakeCUDALocal
    if not hasattr(shared_cls, "array") or not hasattr(local_cls, "array"):
        return
    lock = threading.Lock()
    original_shared = shared_cls.array
    original_local = local_cls.array

    def shared_array(self, shape, dtype, alignment=None):
        allocations = getattr(self, "_allocations", None)
        if shape == 0 or allocations is None:  # dynamic shared memory: one preallocated buffer, no race
            return original_shared(self, shape, dtype, alignment)
        if alignment is not None:
            raise RuntimeError("Array alignment is not supported in cudasim")
        if isinstance(dtype, Type):
            dtype = numpy_support.as_dtype(dtype)
        caller = sys._getframe(1)
        key = (caller.f_code.co_filename, caller.f_lineno)  # one array per source line, as the simulator keys them
        with lock:
            res = allocations.get(key)
            if res is None:
                res = allocations[key] = np.empty(shape, dtype)
                if POOL.poison:
                    res.view(np.uint8).fill(POISON_BYTE)
        return res

    def local_array(self, shape, dtype, alignment=None):
        res = original_local(self, shape, dtype, alignment)
        if POOL.poison:
            res.view(np.uint8).fill(POISON_BYTE)
        return res

    shared_cls.array = shared_array
    local_cls.array = local_array
