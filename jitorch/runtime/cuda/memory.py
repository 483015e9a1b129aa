"""The caching allocator for device memory.

Freed blocks go back to a free list keyed by their rounded size instead of to
the driver, so a training step that allocates the same shapes every iteration
stops calling ``cuMemAlloc`` after the first one.  Every CUDA tensor's memory is
a :class:`Storage`; views share it, and the block returns to the pool when the
last ``Storage`` reference dies (CPython frees it at once by reference counting).

Blocks belong to the stream that was current when they were allocated (torch's
rule): a freed block goes back to that stream's free list and is reused only
by allocations on that stream, where the work that used it is ordered before
the new use without any synchronization.  A tensor used on another stream is
marked with ``record_stream(a, stream)``: when its block is freed, a marker
(an event) is recorded on each such stream, and the block waits in
``pending`` until those markers have passed before it can be reused.  The
default stream's free list is a plain dict, so the common path is as cheap as
it was with one stream.

Under the simulator a block is a NumPy byte array; on a GPU it is a numba
``MemoryPointer`` (freed by numba when ``empty_cache`` drops it).

Poisoning (a debugging switch, off by default): with ``JITORCH_CUDA_POISON=1``
in the environment, or after ``set_poison(True)``, every block handed out (new
or reused) is first filled with 0xFF bytes: NaN in every float dtype, -1 in
every signed integer.  A kernel that reads memory nothing wrote (an
accumulator that was never zeroed, an output element no thread writes) then
fails the same way every time instead of only when the allocator happens to
return a block with unlucky old contents.  Blocks are poisoned again when they
are freed (unless another stream may still use them), so a read through a
stale pointer after the tensor died reads garbage too.
"""
from __future__ import annotations

import os

import numpy as np

from . import driver, streams

_SMALL = 1 << 20  # blocks up to 1 MiB are rounded to 512 bytes, larger ones to 2 MiB
_SMALL_ROUND = 512
_LARGE_ROUND = 2 << 20
POISON_BYTE = 0xFF  # NaN as any float, -1 as any signed integer


class OutOfMemoryError(RuntimeError):
    """``jitorch.cuda.OutOfMemoryError``: a device allocation failed."""


def round_size(nbytes: int) -> int:
    if nbytes <= 0:
        return 0
    step = _SMALL_ROUND if nbytes <= _SMALL else _LARGE_ROUND
    return (nbytes + step - 1) // step * step


class _Pool:
    def __init__(self):
        self.free: dict[int, list] = {}  # rounded size -> raw blocks of the default stream ready for reuse
        self.stream_free: dict[int, dict] = {}  # stream handle -> (rounded size -> raw blocks) of other streams
        self.pending: list = []  # (markers, raw, size, stream handle): freed, still in use on other streams
        self.allocated = 0  # bytes in live Storage blocks (rounded)
        self.reserved = 0  # bytes obtained from the driver and not yet released
        self.peak_allocated = 0
        self.peak_reserved = 0
        self.num_alloc_retries = 0
        self.num_ooms = 0
        self.limit = None  # bytes: set_per_process_memory_fraction
        self.poison = os.environ.get("JITORCH_CUDA_POISON", "0") not in ("", "0")  # see the module doc

    def _raw(self, size: int):
        if self.limit is not None and self.reserved + size > self.limit:
            raise _Exhausted()
        if driver.simulated():
            return np.empty(size, dtype=np.uint8)
        cuda = driver.cuda_module()
        try:
            return cuda.current_context().memalloc(size)
        except Exception as e:
            if "OUT_OF_MEMORY" in str(e) or "out of memory" in str(e).lower():
                raise _Exhausted() from e
            raise

    def take(self, nbytes: int, stream: int = 0):
        size = round_size(nbytes)
        if self.pending:
            self.collect_pending()
        bucket = (self.free if stream == 0 else self.stream_free.get(stream, _NO_BLOCKS)).get(size)
        if bucket:
            raw = bucket.pop()
        else:
            try:
                raw = self._raw(size)
            except _Exhausted:
                self.num_alloc_retries += 1
                self.release_cached()
                try:
                    raw = self._raw(size)
                except _Exhausted:
                    self.num_ooms += 1
                    raise OutOfMemoryError(self._oom_message(nbytes)) from None
            self.reserved += size
            self.peak_reserved = max(self.peak_reserved, self.reserved)
        self.allocated += size
        if self.allocated > self.peak_allocated:  # noqa: PLR1730 - hot path: a compare is cheaper than max()
            self.peak_allocated = self.allocated
        if self.poison:
            _poison(raw, size, stream)
        return raw, size

    def give_back(self, raw, size: int) -> None:
        """Return a default-stream block used on no other stream."""
        self.allocated -= size
        if self.poison:  # a stale view that reads the block after this point reads garbage
            _poison(raw, size, 0)
        self.free.setdefault(size, []).append(raw)

    def give_back_on(self, raw, size: int, stream: int, uses) -> None:
        """Return a block of ``stream`` that ``uses`` (other streams, or None) may still be reading or writing."""
        if uses:
            self.allocated -= size
            self.pending.append(([streams.marker(s) for s in uses.values()], raw, size, stream))
            return
        self.allocated -= size
        if self.poison:
            _poison(raw, size, stream)
        self._to_free_list(raw, size, stream)

    def _to_free_list(self, raw, size: int, stream: int) -> None:
        lists = self.free if stream == 0 else self.stream_free.setdefault(stream, {})
        lists.setdefault(size, []).append(raw)

    def collect_pending(self) -> None:
        """Move pending blocks whose other-stream work has finished to their stream's free list."""
        still = []
        for entry in self.pending:
            if all(m.done() for m in entry[0]):
                self._to_free_list(entry[1], entry[2], entry[3])
            else:
                still.append(entry)
        self.pending = still

    def release_cached(self) -> None:
        for entry in self.pending:  # wait for the other streams, then the blocks are free too
            for m in entry[0]:
                m.wait()
            self._to_free_list(entry[1], entry[2], entry[3])
        self.pending = []
        for lists in [self.free, *self.stream_free.values()]:
            for size, blocks in lists.items():
                self.reserved -= size * len(blocks)
        self.free.clear()
        self.stream_free.clear()

    def _oom_message(self, nbytes: int) -> str:
        mib = 1 << 20
        total = ""
        if self.limit is not None:
            total = f" of the {self.limit / mib:.2f} MiB this process may use"
        return (f"CUDA out of memory. Tried to allocate {nbytes / mib:.2f} MiB. jitorch holds "
                f"{self.allocated / mib:.2f} MiB in tensors and {(self.reserved - self.allocated) / mib:.2f} MiB "
                f"cached (reserved {self.reserved / mib:.2f} MiB{total}). Free tensors you no longer need, or call "
                "jitorch.cuda.empty_cache().")


class _Exhausted(Exception):
    pass


def _poison(raw, size: int, stream: int) -> None:
    """Fill a block with ``POISON_BYTE`` (on ``stream``, so it is ordered before the block's new use)."""
    if driver.simulated():
        raw.fill(POISON_BYTE)
        return
    from numba.cuda.cudadrv.driver import driver as drv
    drv.cuMemsetD8Async(int(raw.device_pointer_value), POISON_BYTE, size, stream)


_NO_BLOCKS: dict = {}


POOL = _Pool()


class Storage:
    """One allocation; every CudaArray over it keeps it alive."""

    __slots__ = ("__weakref__", "_ptr", "nbytes", "raw", "size", "stream", "uses")

    def __init__(self, nbytes: int):
        self.nbytes = nbytes
        self.size = 0  # set before allocating: __del__ runs even when the allocation raises
        self._ptr = None
        self.stream = stream = streams.current_handle()  # the stream this block is ordered on
        self.uses = None  # other streams the block is used on (record_stream)
        if nbytes == 0:
            self.raw, self.size = (np.empty(0, np.uint8) if driver.simulated() else None), 0
        else:
            self.raw, self.size = POOL.take(nbytes, stream)

    def __del__(self):
        if self.size:
            try:
                if self.stream == 0 and self.uses is None:
                    POOL.give_back(self.raw, self.size)
                else:
                    POOL.give_back_on(self.raw, self.size, self.stream, self.uses)
            except Exception:  # noqa: BLE001, S110 - at interpreter shutdown the pool may be gone
                pass

    def record_stream(self, s) -> None:
        """Mark this block as used by work on stream ``s`` (a ``Stream``): see the module doc."""
        if s.handle != self.stream:
            if self.uses is None:
                self.uses = {}
            self.uses[s.handle] = s

    def pointer(self) -> int:
        """The block's address (device address on a GPU; host address of the NumPy block under the simulator)."""
        p = self._ptr
        if p is None:
            if self.raw is None:
                p = 0
            elif driver.simulated():
                p = self.raw.ctypes.data
            else:
                p = int(self.raw.device_pointer_value or 0)
            self._ptr = p
        return p


# -- statistics (jitorch.cuda.memory_allocated & co.) ---------------------------------------------

def memory_allocated() -> int:
    return POOL.allocated


def max_memory_allocated() -> int:
    return POOL.peak_allocated


def memory_reserved() -> int:
    return POOL.reserved


def max_memory_reserved() -> int:
    return POOL.peak_reserved


def reset_peak_memory_stats() -> None:
    POOL.peak_allocated = POOL.allocated
    POOL.peak_reserved = POOL.reserved


def empty_cache() -> None:
    POOL.release_cached()


def set_limit(nbytes: int | None) -> None:
    POOL.limit = nbytes


def set_poison(enabled: bool) -> bool:
    """Turn block poisoning (see the module doc) on or off; returns the previous setting."""
    previous = POOL.poison
    POOL.poison = bool(enabled)
    return previous


def poison_enabled() -> bool:
    return POOL.poison


def record_stream(a, s) -> None:
    """``Tensor.record_stream(s)`` for the device array ``a`` (a ``CudaArray``) and a ``Stream`` ``s``."""
    a.storage.record_stream(s)


def memory_stats() -> dict:
    return {
        "allocated_bytes.all.current": POOL.allocated,
        "allocated_bytes.all.peak": POOL.peak_allocated,
        "reserved_bytes.all.current": POOL.reserved,
        "reserved_bytes.all.peak": POOL.peak_reserved,
        "num_alloc_retries": POOL.num_alloc_retries,
        "num_ooms": POOL.num_ooms,
        "num_blocks_awaiting_other_streams": len(POOL.pending),
    }
