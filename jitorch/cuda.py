"""``jitorch.cuda``: devices, synchronization, events, streams, memory statistics and seeding.

The CUDA backend is numba.cuda (the ``numba-cuda`` package, jitorch's ``cuda``
extra), imported on the first call that needs it, never by ``import jitorch``.
With ``NUMBA_ENABLE_CUDASIM=1`` Numba's simulator stands in for a GPU.

jitorch uses one GPU per process (``cuda:0``; pick another GPU with
``CUDA_VISIBLE_DEVICES``).  Kernels, copies and memsets go to the current
stream (``Stream``, ``stream``, ``set_stream``: ``runtime/cuda/streams.py``),
as in torch; the host waits for the device only where it reads a value or
synchronizes, and that is where errors found by device-side index checks are
raised (``DeviceIndexError``).

>>> import jitorch
>>> if jitorch.cuda.is_available():
...     x = jitorch.ones(3, device="cuda")
...     assert x.device == jitorch.device("cuda", 0)
"""
from __future__ import annotations

import os

from .runtime.cuda import driver
from .runtime.cuda import memory as _memory
from .runtime.cuda import streams as _streams
from .runtime.cuda.memory import OutOfMemoryError
from .runtime.cuda.streams import Event, ExternalStream, Stream, stream

StreamContext = stream  # torch's name for what ``stream(s)`` returns
from .runtime.device import Device, canonical, current_cuda, set_current_cuda

__all__ = [
    "Event",
    "ExternalStream",
    "OutOfMemoryError",
    "Stream",
    "StreamContext",
    "current_device",
    "current_stream",
    "default_stream",
    "device",
    "device_count",
    "empty_cache",
    "get_device_capability",
    "get_device_name",
    "get_device_properties",
    "init",
    "initial_seed",
    "is_available",
    "is_bf16_supported",
    "is_initialized",
    "manual_seed",
    "manual_seed_all",
    "max_memory_allocated",
    "max_memory_reserved",
    "mem_get_info",
    "memory_allocated",
    "memory_reserved",
    "memory_stats",
    "reset_peak_memory_stats",
    "seed",
    "seed_all",
    "set_device",
    "set_per_process_memory_fraction",
    "set_stream",
    "stream",
    "synchronize",
]


# -- devices ------------------------------------------------------------------------------------------------
def is_available() -> bool:
    """True when numba.cuda is installed and sees a GPU (or runs the simulator)."""
    return driver.available()


def device_count() -> int:
    return driver.device_count()


def is_initialized() -> bool:
    """True once CUDA has been used in this process (a CUDA device named or ``init()`` called)."""
    from .runtime.cuda import backend
    return backend.loaded()


def init() -> None:
    """Initialize CUDA now (it happens by itself on first use); raises when CUDA is unusable."""
    canonical("cuda")


def _index(device) -> int:
    """The device index a ``device=`` argument names (None: the current device)."""
    if device is None:
        return canonical("cuda").index
    if isinstance(device, int) and not isinstance(device, bool):
        return canonical(Device("cuda", device)).index
    d = Device(device)
    if d.type != "cuda":
        raise ValueError(f"Expected a cuda device, but got: {d}")
    return canonical(d).index


def current_device() -> int:
    driver.require()
    return current_cuda()


def set_device(device) -> None:
    """Make ``device`` the one a bare ``"cuda"`` means (a negative index is ignored, as in torch)."""
    if isinstance(device, int) and device < 0:
        return
    set_current_cuda(_index(device))


class device:
    """Context manager that changes the current device: ``with jitorch.cuda.device(0): ...``."""

    def __init__(self, device):
        self.idx = -1 if device is None else _index(device)
        self.prev_idx = -1

    def __enter__(self):
        if self.idx >= 0:
            self.prev_idx = current_cuda()
            set_current_cuda(self.idx)
        return self

    def __exit__(self, *exc):
        if self.prev_idx >= 0:
            set_current_cuda(self.prev_idx)
        return False


def synchronize(device=None) -> None:
    """Wait for all work issued so far, on every stream, to finish (raises errors found by device-side checks)."""
    _index(device)
    _streams.synchronize()


class _DeviceProperties:
    """What ``get_device_properties`` returns (the fields torch's ``_CudaDeviceProperties`` has that matter)."""

    def __init__(self, name, major, minor, total_memory, multi_processor_count):
        self.name = name
        self.major = major
        self.minor = minor
        self.total_memory = total_memory
        self.multi_processor_count = multi_processor_count
        self.is_integrated = False
        self.is_multi_gpu_board = False

    def __repr__(self) -> str:
        return (f"_CudaDeviceProperties(name='{self.name}', major={self.major}, minor={self.minor}, "
                f"total_memory={self.total_memory // (1 << 20)}MB, "
                f"multi_processor_count={self.multi_processor_count})")


_props: dict = {}


def get_device_properties(device=None) -> _DeviceProperties:
    idx = _index(device)
    p = _props.get(idx)
    if p is None:
        cuda = driver.cuda_module()
        if driver.simulated():
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")  # the simulator's "device" is RAM
            major, minor = cuda.get_current_device().compute_capability
            p = _DeviceProperties("Numba CUDA Simulator", major, minor, total, 1)
        else:
            dev = cuda.get_current_device()
            name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
            major, minor = dev.compute_capability
            total = int(cuda.current_context().get_memory_info().total)
            p = _DeviceProperties(name, major, minor, total, int(dev.MULTIPROCESSOR_COUNT))
        _props[idx] = p
    return p


def get_device_name(device=None) -> str:
    return get_device_properties(device).name


def get_device_capability(device=None) -> tuple[int, int]:
    p = get_device_properties(device)
    return p.major, p.minor


def is_bf16_supported(including_emulation: bool = True) -> bool:
    """Can this device compute in bfloat16?  Natively from compute capability 8.0 (Ampere); with
    ``including_emulation`` on any GPU, since jitorch's kernels widen bfloat16 to float32 to compute."""
    if not is_available():
        return False
    return including_emulation or get_device_capability() >= (8, 0)


# -- streams and events ---------------------------------------------------------------------------------------
# Stream, ExternalStream, Event and the `stream` context manager live in runtime/cuda/streams.py.
def default_stream(device=None) -> Stream:
    """The default stream (handle 0, the legacy default stream), where work goes unless another is current."""
    _index(device)
    return _streams.default()


def current_stream(device=None) -> Stream:
    """This thread's current stream."""
    _index(device)
    return _streams.current()


def set_stream(s: Stream) -> None:
    """Make ``s`` this thread's current stream (prefer ``with jitorch.cuda.stream(s):``)."""
    if s is not None:
        _streams.set_current(s)


def __getattr__(name: str):
    # the error classes of device-side checks live with numba.cuda code: loaded on first use
    if name in ("DeviceAssertError", "DeviceIndexError"):
        from .runtime.cuda import device_checks
        return getattr(device_checks, name)
    # ``jitorch.cuda.amp`` (torch's deprecated spelling of ``jitorch.amp`` for CUDA) loads on first use
    if name == "amp":
        from .amp import _cuda_amp
        return _cuda_amp
    raise AttributeError(f"module 'jitorch.cuda' has no attribute '{name}'")


# -- memory -------------------------------------------------------------------------------------------------------
def memory_allocated(device=None) -> int:
    """Bytes held by live CUDA tensors (rounded to the allocator's block sizes)."""
    return _memory.memory_allocated()


def max_memory_allocated(device=None) -> int:
    return _memory.max_memory_allocated()


def memory_reserved(device=None) -> int:
    """Bytes obtained from the driver: live tensors plus the caching allocator's free blocks."""
    return _memory.memory_reserved()


def max_memory_reserved(device=None) -> int:
    return _memory.max_memory_reserved()


def reset_peak_memory_stats(device=None) -> None:
    _memory.reset_peak_memory_stats()


def reset_max_memory_allocated(device=None) -> None:
    _memory.reset_peak_memory_stats()


def empty_cache() -> None:
    """Give the allocator's cached free blocks back to the driver."""
    _memory.empty_cache()


def memory_stats(device=None) -> dict:
    return _memory.memory_stats()


def memory_summary(device=None, abbreviated: bool = False) -> str:
    mib = 1 << 20
    s = _memory.memory_stats()
    return (f"jitorch CUDA memory: allocated {s['allocated_bytes.all.current'] / mib:.2f} MiB "
            f"(peak {s['allocated_bytes.all.peak'] / mib:.2f} MiB), reserved "
            f"{s['reserved_bytes.all.current'] / mib:.2f} MiB (peak {s['reserved_bytes.all.peak'] / mib:.2f} MiB), "
            f"{s['num_ooms']} out-of-memory errors")


def set_per_process_memory_fraction(fraction: float, device=None) -> None:
    """Limit this process's reserved device memory to ``fraction`` of the device's total memory."""
    if not isinstance(fraction, (int, float)) or isinstance(fraction, bool):
        raise TypeError("Invalid type for fraction argument, must be `float`")
    if fraction < 0 or fraction > 1:
        raise ValueError(f"Invalid fraction value: {fraction}. Allowed range: 0~1")
    total = get_device_properties(device).total_memory
    _memory.set_limit(int(total * fraction))


def mem_get_info(device=None) -> tuple[int, int]:
    """(free, total) device memory in bytes."""
    total = get_device_properties(device).total_memory
    if driver.simulated():
        return total - _memory.memory_reserved(), total
    info = driver.cuda_module().current_context().get_memory_info()
    return int(info.free), int(info.total)


# -- random numbers --------------------------------------------------------------------------------------------------
_seed_state = {"initial": None}  # used only when the backend has no Philox generator module


def _philox():
    """The CUDA Philox generator module (it imports no numba), or None when the backend has none."""
    import importlib
    try:
        return importlib.import_module("jitorch.runtime.cuda.philox")
    except ModuleNotFoundError as e:
        if e.name != "jitorch.runtime.cuda.philox":
            raise
        return None


def manual_seed(seed) -> None:
    """Seed the CUDA generator (works, and is remembered, before CUDA is first used)."""
    seed = int(seed)
    ph = _philox()
    if ph is not None:
        ph.manual_seed(seed)
    else:
        _seed_state["initial"] = seed


manual_seed_all = manual_seed


def seed() -> None:
    """Seed the CUDA generator with a non-deterministic random number."""
    manual_seed(int.from_bytes(os.urandom(8), "little") >> 1)


seed_all = seed


def initial_seed() -> int:
    ph = _philox()
    if ph is not None:
        return ph.initial_seed()
    if _seed_state["initial"] is None:
        seed()
    return _seed_state["initial"]


def get_rng_state():
    ph = _philox()
    if ph is None:
        raise RuntimeError("the CUDA backend has no random number generator")
    return ph.get_rng_state()


def set_rng_state(state) -> None:
    ph = _philox()
    if ph is None:
        raise RuntimeError("the CUDA backend has no random number generator")
    ph.set_rng_state(state)


# -- diagnostics ------------------------------------------------------------------------------------------------
def _host_fallback_ops() -> set[str]:
    """Names of the ops that ran on the host for lack of a CUDA kernel in this process
    (see ``jitorch/runtime/cuda/fallback.py``)."""
    from .runtime.cuda import fallback
    return fallback.ops_that_fell_back()


def _host_syncs() -> int:
    """How many times the host has waited for the device in this process (value reads, synchronize calls):
    a diagnostic for "does this code synchronize?" (``runtime/cuda/device_checks.py``)."""
    if not driver.available():
        return 0
    from .runtime.cuda import device_checks
    return device_checks.host_syncs()
