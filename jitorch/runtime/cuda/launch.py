"""Launch configurations: grid-stride loops over ``n`` elements.

On a GPU, enough blocks to fill every SM several times (extra work is taken by
the grid-stride loop); under the simulator, which runs every CUDA thread as a
Python thread, one small block, so a test kernel costs milliseconds.  Cheap
launches of compiled kernels are ``typed_kernels.Kernel``.
"""
from __future__ import annotations

from . import driver

THREADS = 256
_SIM_THREADS = 8
_state: dict = {}


def _max_blocks() -> int:
    m = _state.get("max_blocks")
    if m is None:
        if driver.simulated():
            m = 1
        else:
            dev = driver.cuda_module().get_current_device()
            m = dev.MULTIPROCESSOR_COUNT * 32
        _state["max_blocks"] = m
    return m


def config(n: int, threads: int = THREADS) -> tuple[int, int]:
    """(blocks, threads per block) for a grid-stride loop over ``n`` items."""
    if driver.simulated():
        return 1, min(_SIM_THREADS, max(n, 1))
    blocks = min((n + threads - 1) // threads, _max_blocks())
    return max(blocks, 1), threads

