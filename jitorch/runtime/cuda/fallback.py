"""Host fallback: a kernel op without a CUDA implementation runs on host copies.

When ``op.impl["cuda"]`` is missing, ``jitorch._dispatch.apply`` calls
:func:`run`: every ``CudaArray`` input is copied to the host, the op's CPU
implementation runs on the copies, and every result is copied back to a fresh
device array.  So every kernel op works on CUDA tensors from the start, and CUDA
kernels replace the fallback op by op (registering ``impl["cuda"]`` in an
``ops_*.py`` module is all it takes).

It is slow (two transfers and a host synchronization per call) and therefore
visible:

- ``JITORCH_LOGS=cuda_fallback`` prints one line the first time each op falls back;
- ``jitorch.cuda._host_fallback_ops()`` returns the names of the ops that fell
  back in this process, so a test or a benchmark can assert that none did.

Never used for
- view ops (results alias their input's memory: a host copy would break the
  aliasing, so a view op without a CUDA implementation is an error), and
- elementwise ops (they always run as generated CUDA kernels).

The fallback assumes the kernel-op contract: implementations read their input
arrays and return new arrays (or views of inputs, which are copied back like any
result); an implementation that wrote into an input would write into the host copy.
"""
from __future__ import annotations

import numpy as np

from . import array

_fell_back: set[str] = set()


def run(op, cpu_fn, arrays, attrs: dict):
    """``cpu_fn(*host copies of arrays, **attrs)`` with the results copied back to the device."""
    if op.name not in _fell_back:
        note(op.name, "no CUDA kernel; running its CPU implementation on host copies")
    host = [a.to_host() if a is not None else None for a in arrays]
    res = cpu_fn(*host, **attrs)
    if isinstance(res, tuple):
        return tuple(_to_device(r) for r in res)
    return _to_device(res)


def note(name: str, what: str) -> None:
    """Record (and log, the first time) that ``name`` ran on the host instead of the device."""
    if name in _fell_back:
        return
    _fell_back.add(name)
    from ...compiler import logs
    logs.emit("cuda_fallback", f"{name}: {what}")


def _to_device(r):
    if r is None:
        return None
    return array.from_host(np.asarray(r))


def ops_that_fell_back() -> set[str]:
    return set(_fell_back)
