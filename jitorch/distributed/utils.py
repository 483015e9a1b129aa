"""Helpers the data-parallel wrappers share: coalesced broadcasts and model checks across ranks."""
from __future__ import annotations

import zlib

import numpy as np

from ._mpi import mpi, raw
from .work import Work


def broadcast_coalesced(tensors, pg, src: int = 0, op: str = "broadcast_coalesced") -> None:
    """Overwrite ``tensors`` on every rank with group rank ``src``'s values: one broadcast per dtype."""
    by_dtype: dict = {}
    for t in tensors:
        by_dtype.setdefault(t._data.dtype, []).append(t)
    me = pg.rank()
    for dtype, group in by_dtype.items():
        flat = np.empty(sum(t.numel() for t in group), dtype=dtype)
        if me == src:
            at = 0
            for t in group:
                flat[at:at + t.numel()] = t._data.reshape(-1)
                at += t.numel()
        Work([pg.comm.Ibcast(raw(flat), root=src)], op, pg).wait()
        if me == src:
            continue
        at = 0
        for t in group:
            t._data[...] = flat[at:at + t.numel()].reshape(t._data.shape)
            t._bump_version()
            at += t.numel()


def sync_module_states(module, pg, src: int = 0) -> None:
    """Give every rank group rank ``src``'s parameters and buffers."""
    states = [p for p in module.parameters()] + [b for b in module.buffers()]
    broadcast_coalesced(states, pg, src, "sync_module_states")


def verify_same_parameters(params, pg, who: str = "DDP") -> None:
    """Raise on every rank when the ranks' models differ in parameter count, shapes or dtypes."""
    signature = zlib.crc32(repr([(tuple(p.shape), str(p.dtype)) for p in params]).encode())
    mine = np.array([len(params), sum(p.numel() for p in params), signature], dtype=np.int64)
    every = np.empty((pg.size(), 3), dtype=np.int64)
    MPI = mpi()
    Work([pg.comm.Iallgather([mine, MPI.INT64_T], [every, MPI.INT64_T])], "verify_params", pg).wait()
    for r in range(pg.size()):
        if not np.array_equal(every[r], every[0]):
            raise RuntimeError(
                f"{who} expects same model across all ranks, but Rank {pg.global_rank(r)} has {every[r, 0]} params "
                f"({every[r, 1]} elements), while rank {pg.global_rank(0)} has {every[0, 0]} params "
                f"({every[0, 1]} elements), or their shapes/dtypes differ.")
