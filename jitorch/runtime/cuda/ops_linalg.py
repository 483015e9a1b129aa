"""CUDA implementation of the ``matmul`` primitive (cuBLAS or the tiled numba GEMM, see ``gemm``)."""
from __future__ import annotations

from ...ops import linalg as _linalg  # noqa: F401 - the op must be registered before its impl
from ...ops.registry import impl
from . import gemm


@impl("matmul", "cuda")
def _matmul_cuda(a, b):
    return gemm.matmul(a, b)
