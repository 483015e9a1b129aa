"""Contiguous NumPy buffers for tensors handed to MPI.

MPI reads and writes flat memory: a contiguous tensor lends its own storage
(``t._data``), anything else goes through a contiguous copy that is written
back when the operation completes. No tensor is ever pickled.
"""
from __future__ import annotations

import numpy as np

from ._mpi import reduce_dtype


def check_tensor(t, name: str = "tensor") -> None:
    from .._tensor import Tensor
    if not isinstance(t, Tensor):
        raise TypeError(f"jitorch.distributed: `{name}` must be a Tensor, got {type(t).__name__}")
    if t.device.type != "cpu":
        raise RuntimeError(f"jitorch.distributed (MPI backend) works on CPU tensors only; `{name}` is on "
                           f"{t.device}. Move it with .cpu() first.")


def check_tensor_list(ts, name: str, length: int | None = None) -> None:
    if not isinstance(ts, (list, tuple)):
        raise TypeError(f"jitorch.distributed: `{name}` must be a list of tensors, got {type(ts).__name__}")
    if length is not None and len(ts) != length:
        raise ValueError(f"jitorch.distributed: `{name}` must hold {length} tensors (one per rank), "
                         f"got {len(ts)}")
    for i, t in enumerate(ts):
        check_tensor(t, f"{name}[{i}]")


def flat_input(t, reduce: bool = False) -> np.ndarray:
    """A contiguous 1-D array with the elements of ``t`` (its own storage when possible), for reading."""
    data = t._data
    dt = reduce_dtype(data.dtype) if reduce else data.dtype
    return np.ascontiguousarray(data, dtype=dt).reshape(-1)


def concat_inputs(ts, dtype, reduce: bool = False) -> np.ndarray:
    """The elements of several tensors back to back in one new contiguous array."""
    dt = reduce_dtype(dtype) if reduce else np.dtype(dtype)
    out = np.empty(sum(t.numel() for t in ts), dtype=dt)
    at = 0
    for t in ts:
        n = t.numel()
        out[at:at + n] = t._data.reshape(-1) if t._data.flags.c_contiguous else t._data.ravel()
        at += n
    return out


class Output:
    """Where MPI writes a tensor's new value: its storage, or a staging copy put back by ``commit``.

    Creating one bumps the tensor's version counter, as an in-place op would:
    autograd then refuses a backward through a value the collective replaced.
    """

    def __init__(self, t, reduce: bool = False, keep_values: bool = True):
        self.tensor = t
        data = t._data
        dt = reduce_dtype(data.dtype) if reduce else data.dtype
        if data.flags.c_contiguous and dt == data.dtype and data.flags.writeable:
            self.arr = data.reshape(-1)
            self.staged = False
        else:
            self.arr = (np.ascontiguousarray(data, dtype=dt) if keep_values else np.empty(data.size, dt)).reshape(-1)
            self.staged = True
        t._bump_version()

    def commit(self) -> None:
        if self.staged:
            self.tensor._data[...] = self.arr.reshape(self.tensor._data.shape)


def check_same_dtype(ts, dtype, name: str) -> None:
    for i, t in enumerate(ts):
        if t._data.dtype != dtype:
            raise ValueError(f"jitorch.distributed: `{name}[{i}]` has dtype {t.dtype}, expected the dtype of the "
                             "input tensor")
