"""The one place that imports mpi4py, and the NumPy <-> MPI type tables.

``from mpi4py import MPI`` initialises MPI, so it happens on first use
(``init_process_group``), never at ``import jitorch``.
"""
from __future__ import annotations

import importlib.util

import numpy as np

_MPI = None


def available() -> bool:
    """mpi4py can be imported (checked without importing it, so MPI is not initialised)."""
    return importlib.util.find_spec("mpi4py") is not None


def mpi():
    """The ``mpi4py.MPI`` module, imported (and MPI initialised) on the first call."""
    global _MPI
    if _MPI is None:
        if not available():
            raise RuntimeError("jitorch.distributed needs mpi4py and an MPI library: "
                               "pip install -e '.[distributed]'")
        from mpi4py import MPI
        _MPI = MPI
    return _MPI


_REDUCE_TYPES = {
    np.dtype(np.float32): "FLOAT", np.dtype(np.float64): "DOUBLE",
    np.dtype(np.int8): "INT8_T", np.dtype(np.int16): "INT16_T",
    np.dtype(np.int32): "INT32_T", np.dtype(np.int64): "INT64_T",
    np.dtype(np.uint8): "UINT8_T", np.dtype(np.bool_): "C_BOOL",
}


def reduce_type(dtype: np.dtype):
    """The MPI datatype used to reduce arrays of ``dtype`` (float16 is reduced as float32)."""
    return getattr(mpi(), _REDUCE_TYPES[np.dtype(dtype)])


def reduce_dtype(dtype: np.dtype) -> np.dtype:
    """The NumPy dtype an array must have to be reduced by MPI (MPICH has no float16 sum)."""
    dtype = np.dtype(dtype)
    return np.dtype(np.float32) if dtype == np.float16 else dtype


def raw(arr: np.ndarray):
    """A buffer spec that moves ``arr`` as bytes: gathers, scatters and broadcasts need no typing."""
    return [arr.reshape(-1).view(np.uint8), mpi().BYTE]


def typed(arr: np.ndarray):
    """A buffer spec that lets MPI reduce ``arr`` element-wise."""
    return [arr.reshape(-1), reduce_type(arr.dtype)]
