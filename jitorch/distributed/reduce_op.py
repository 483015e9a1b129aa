"""``ReduceOp``: how collectives combine the ranks' values, and its MPI translation."""
from __future__ import annotations

import enum

import numpy as np

from ._mpi import mpi


class RedOpType(enum.IntEnum):
    SUM = 0
    AVG = 1
    PRODUCT = 2
    MIN = 3
    MAX = 4
    BAND = 5
    BOR = 6
    BXOR = 7


class ReduceOp:
    """The reductions of ``all_reduce``, ``reduce`` and ``reduce_scatter`` (``ReduceOp.SUM``...)."""

    SUM = RedOpType.SUM
    AVG = RedOpType.AVG
    PRODUCT = RedOpType.PRODUCT
    MIN = RedOpType.MIN
    MAX = RedOpType.MAX
    BAND = RedOpType.BAND
    BOR = RedOpType.BOR
    BXOR = RedOpType.BXOR
    RedOpType = RedOpType


_MPI_OPS = {RedOpType.SUM: "SUM", RedOpType.AVG: "SUM", RedOpType.PRODUCT: "PROD", RedOpType.MIN: "MIN",
            RedOpType.MAX: "MAX", RedOpType.BAND: "BAND", RedOpType.BOR: "BOR", RedOpType.BXOR: "BXOR"}
# MPI reduces C booleans only with the logical ops
_BOOL_OPS = {RedOpType.SUM: "LOR", RedOpType.AVG: "LOR", RedOpType.MAX: "LOR", RedOpType.BOR: "LOR",
             RedOpType.PRODUCT: "LAND", RedOpType.MIN: "LAND", RedOpType.BAND: "LAND", RedOpType.BXOR: "LXOR"}


def check(op) -> RedOpType:
    try:
        return RedOpType(op)
    except (ValueError, TypeError):
        raise ValueError(f"unknown reduce op {op!r}; use jitorch.distributed.ReduceOp") from None


def to_mpi(op: RedOpType, dtype: np.dtype):
    """The MPI operation for ``op`` on arrays of ``dtype`` (AVG is a SUM, divided afterwards)."""
    table = _BOOL_OPS if np.dtype(dtype) == np.bool_ else _MPI_OPS
    if op in (RedOpType.BAND, RedOpType.BOR, RedOpType.BXOR) and np.dtype(dtype).kind == "f":
        raise RuntimeError(f"ReduceOp.{op.name} needs an integer or bool tensor, got {np.dtype(dtype)}")
    return getattr(mpi(), table[op])


def finish_average(arr: np.ndarray, op: RedOpType, n: int) -> None:
    """Turn the SUM that MPI computed for ``AVG`` into the mean, in place."""
    if op is not RedOpType.AVG or arr.dtype == np.bool_:
        return
    if arr.dtype.kind == "f":
        np.divide(arr, n, out=arr)
    else:
        np.floor_divide(arr, n, out=arr)
