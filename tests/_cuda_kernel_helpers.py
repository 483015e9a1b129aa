"""Shared pieces of the CUDA kernel tests (tests/test_cuda_<family>.py).

They run under Numba's CUDA simulator (tests/conftest.py), where every CUDA
thread is a Python thread and the simulator's scheduler busy-waits between
``syncthreads`` rounds: with CPython's default 5 ms switch interval each round
costs ~5 ms, so the ``fast_sim_threads`` fixture shortens the interval for the
duration of a test module (about 10x faster block-level kernels).
"""
from __future__ import annotations

import sys

import numpy as np
import pytest

from jitorch.ops.registry import OPS


@pytest.fixture(autouse=True, scope="module")
def fast_sim_threads():
    old = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    yield
    sys.setswitchinterval(old)


def on_device(a):
    from jitorch.runtime.cuda import array
    return array.from_host(a) if isinstance(a, np.ndarray) else a


def run_both(name: str, *args, **attrs):
    """(CPU result, CUDA result as host arrays) of op ``name`` on the same host inputs."""
    from jitorch.runtime.cuda import backend
    backend.load()
    cpu = OPS[name].impl["cpu"](*args, **attrs)
    gpu = OPS[name].impl["cuda"](*[on_device(a) for a in args], **attrs)
    if isinstance(cpu, tuple):
        return cpu, tuple(g.to_host() for g in gpu)
    return cpu, gpu.to_host()


def assert_same(name: str, *args, exact: bool = False, rtol: float = 1e-5, atol: float = 1e-6, **attrs):
    """The CUDA implementation of ``name`` gives the CPU one's shape, dtype and values."""
    cpu, gpu = run_both(name, *args, **attrs)
    pairs = zip(cpu, gpu) if isinstance(cpu, tuple) else [(cpu, gpu)]
    for c, g in pairs:
        c = np.asarray(c)
        assert g.shape == c.shape, (name, attrs, g.shape, c.shape)
        assert g.dtype == c.dtype, (name, attrs, g.dtype, c.dtype)
        if exact:
            np.testing.assert_array_equal(g, c, err_msg=f"{name} {attrs}")
        else:
            np.testing.assert_allclose(g.astype(np.float64), c.astype(np.float64), rtol=rtol, atol=atol,
                                       equal_nan=True, err_msg=f"{name} {attrs}")
    return cpu, gpu
