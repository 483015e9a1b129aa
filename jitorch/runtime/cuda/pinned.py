"""Page-locked ("pinned") host memory: ``Tensor.pin_memory()``, ``is_pinned()``, ``non_blocking`` copies.

The GPU copies pinned memory by DMA while the host goes on, so a
``non_blocking`` copy from or to a pinned array is issued on the current
stream and returns at once; a copy from pageable memory cannot be
asynchronous and behaves like a blocking one, as in torch.

Page-locking is slow (``cuMemHostAlloc`` takes tens of microseconds to
milliseconds), and a ``DataLoader(pin_memory=True)`` pins every batch, so
blocks are cached like device memory: sizes round up to a power of two, and
a block returns to the free list when the last NumPy array over it dies.  A
block that an asynchronous copy may still be reading or writing carries a
marker per copy (``record_use``) and is reused only once they have passed.

A pinned array is a NumPy view of a *root* array over the block (NumPy
points every view's ``base`` at the root), so ``is_pinned`` walks ``base`` to
the root and looks it up: slices and reshapes of a pinned array are pinned
too, copies are not.  Under the simulator the blocks are ordinary host
memory with the same bookkeeping.  Importing this module imports no numba.
"""
from __future__ import annotations

import weakref

import numpy as np

from . import driver

_MIN_BLOCK = 512


class _Block:
    __slots__ = ("buf", "markers", "size")

    def __init__(self, buf, size: int):
        self.buf = buf  # the page-locked allocation (kept alive by the cache)
        self.size = size
        self.markers: list = []  # async copies that may still use the block


class _SimBuffer(bytearray):
    """Stand-in for page-locked memory under the simulator (a subclass, so it can be told apart)."""


_free: dict = {}  # size -> [blocks]
_pending: list = []  # blocks whose arrays died while async copies may still use them
_roots: dict = {}  # id(root array) -> block, for blocks handed out
_stats = {"allocated": 0, "cached": 0, "allocations": 0}


def _round(nbytes: int) -> int:
    size = _MIN_BLOCK
    while size < nbytes:
        size *= 2
    return size


def _new_block(size: int) -> _Block:
    if driver.simulated():
        buf = _SimBuffer(size)
    else:
        driver.require()
        buf = driver.cuda_module().current_context().memhostalloc(size)
    _stats["allocations"] += 1
    _stats["cached"] += size
    return _Block(buf, size)


def _collect() -> None:
    keep = []
    for b in _pending:
        if all(m.done() for m in b.markers):
            b.markers = []
            _free.setdefault(b.size, []).append(b)
        else:
            keep.append(b)
    _pending[:] = keep


def _release(root_id: int, block: _Block) -> None:
    """The last array over ``block`` died: back to the free list (or to pending while copies may use it)."""
    _roots.pop(root_id, None)
    _stats["allocated"] -= block.size
    block.markers = [m for m in block.markers if not m.done()]
    if block.markers:
        _pending.append(block)
    else:
        _free.setdefault(block.size, []).append(block)


def empty(shape, dtype) -> np.ndarray:
    """An uninitialized C-contiguous array in pinned host memory."""
    dtype = np.dtype(dtype)
    shape = tuple(int(s) for s in shape)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    size = _round(max(nbytes, 1))
    if _pending:
        _collect()
    bucket = _free.get(size)
    block = bucket.pop() if bucket else _new_block(size)
    root = np.ndarray((size,), np.uint8, buffer=block.buf)
    _roots[id(root)] = block
    _stats["allocated"] += size
    weakref.finalize(root, _release, id(root), block)
    return root[:nbytes].view(dtype).reshape(shape)


def pin(arr: np.ndarray) -> np.ndarray:
    """A pinned copy of host array ``arr`` (same shape and dtype, C-contiguous)."""
    arr = np.asarray(arr)
    out = empty(arr.shape, arr.dtype)
    out[...] = arr
    return out


def _block_of(arr):
    b = arr
    while isinstance(b, np.ndarray) and isinstance(b.base, np.ndarray):
        b = b.base
    block = _roots.get(id(b))
    if block is None or not isinstance(b.base, type(block.buf)) or b.base is not block.buf:
        return None
    return block


def is_pinned(arr) -> bool:
    """Does host array ``arr`` live in pinned memory handed out by :func:`empty` / :func:`pin`?"""
    return isinstance(arr, np.ndarray) and bool(_roots) and _block_of(arr) is not None


def record_use(arr: np.ndarray, stream) -> None:
    """An asynchronous copy on ``stream`` (a ``Stream``) reads or writes pinned ``arr``: keep its block from
    being reused before the copy has finished."""
    block = _block_of(arr)
    if block is not None:
        from . import streams
        block.markers.append(streams.marker(stream))


def empty_cache() -> None:
    """Give the cached (unused) pinned blocks back to the driver."""
    _collect()
    for blocks in _free.values():
        for b in blocks:
            _stats["cached"] -= b.size
    _free.clear()


def stats() -> dict:
    """Bytes of pinned blocks handed out, cached in total, and how many were ever allocated."""
    return dict(_stats)
