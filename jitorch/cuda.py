"""``jitorch.cuda``: device queries.  The numba.cuda backend is not built yet, so no CUDA device exists."""
from __future__ import annotations


def is_available() -> bool:
    """False: jitorch runs on the CPU only in this version."""
    return False


def device_count() -> int:
    return 0


def _no_cuda(*args, **kwargs):
    raise RuntimeError("Torch not compiled with CUDA enabled: jitorch has no CUDA backend in this build")


current_device = set_device = get_device_name = get_device_properties = _no_cuda
Event = Stream = _no_cuda


def manual_seed(seed) -> None:
    """Accepted for compatibility; there is no CUDA generator to seed."""


def manual_seed_all(seed) -> None:
    """Accepted for compatibility; there is no CUDA generator to seed."""


def synchronize(device=None) -> None:
    """Nothing runs asynchronously on the CPU."""


def is_initialized() -> bool:
    return False


def empty_cache() -> None:
    """No device memory is cached."""


def memory_allocated(device=None) -> int:
    return 0


def max_memory_allocated(device=None) -> int:
    return 0
