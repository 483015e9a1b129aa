"""CUDA implementations of the reduction primitives of ``ops/reductions.py``.

Same attributes and results as the CPU implementations: ``dims`` (sorted,
distinct), ``keepdim``, ``out_dtype`` (NumPy dtype of the result).
"""
from __future__ import annotations

from ...ops import reductions  # noqa: F401 - registers the ops this module implements
from ...ops.registry import impl
from . import reduce


def _reduction(kind: str):
    def run(x, dims, keepdim, out_dtype):
        return reduce.reduce(kind, x, dims, keepdim, out_dtype)
    run.__name__ = f"{kind}_cuda"
    return run


for _kind in ("sum", "prod", "amax", "amin", "all", "any", "norm2"):
    impl(_kind, "cuda")(_reduction(_kind))
