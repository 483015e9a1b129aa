"""CUDA implementations of the joining and reordering primitives: cat, stack, split, unbind, flip, roll.

All of them are strided copies (``copy.copy_into``) between views: ``cat`` and
``stack`` copy each input into its slice of the output, ``flip`` copies from a
negative-stride view, ``roll`` copies the two halves of every rolled dim (four
pieces for two dims, ...).  ``split_with_sizes`` and ``unbind`` return views,
as on the CPU, so their CPU implementations (basic indexing) serve CUDA arrays
unchanged.
"""
from __future__ import annotations

import itertools

import numpy as np

from ...ops import shape_ops as S
from ...ops.registry import impl
from .array import CudaArray, empty
from .copy import copy_into


def _at(dim: int, index) -> tuple:
    return (slice(None),) * dim + (index,)


@impl("cat", "cuda")
def _cat_cuda(*arrays, dim):
    kept = [a for a in arrays if not S._is_legacy_empty(a.shape)] or [arrays[0]]
    dtype = np.result_type(*[a.dtype for a in kept])
    shape = list(kept[0].shape)
    shape[dim] = sum(a.shape[dim] for a in kept)
    out = empty(tuple(shape), dtype)
    start = 0
    for a in kept:
        n = a.shape[dim]
        if n and a.size:
            copy_into(out[_at(dim, slice(start, start + n))], a)
        start += n
    return out


@impl("stack", "cuda")
def _stack_cuda(*arrays, dim):
    dtype = np.result_type(*[a.dtype for a in arrays])
    shape = list(arrays[0].shape)
    shape.insert(dim, len(arrays))
    out = empty(tuple(shape), dtype)
    for i, a in enumerate(arrays):
        if a.size:
            copy_into(out[_at(dim, i)], a)
    return out


impl("split_with_sizes", "cuda")(S._split_cpu)
impl("unbind", "cuda")(S._unbind_cpu)


@impl("flip", "cuda")
def _flip_cuda(x, dims):
    view = x._from_ghost(np.flip(x._ghost(), tuple(dims))) if dims else x
    out = empty(x.shape, x.dtype)
    if out.size:
        copy_into(out, view)
    return out


@impl("roll", "cuda")
def _roll_cuda(x, shifts, dims):
    total: dict = {}
    for s, d in zip(shifts, dims):  # repeated dims add up, as in np.roll
        total[d] = total.get(d, 0) + int(s)
    out = empty(x.shape, x.dtype)
    if out.size == 0:
        return out
    # along each rolled dim, source [0, n - s) lands at [s, n) and [n - s, n) at [0, s)
    pieces = []
    for d, s in total.items():
        n = x.shape[d]
        s %= n
        pieces.append([(d, slice(0, n - s), slice(s, n)), (d, slice(n - s, n), slice(0, s))])
    for combo in itertools.product(*pieces):
        src = [slice(None)] * x.ndim
        dst = [slice(None)] * x.ndim
        for d, sl_src, sl_dst in combo:
            src[d], dst[d] = sl_src, sl_dst
        part = x[tuple(src)]
        if part.size:
            copy_into(out[tuple(dst)], part)
    return out


def cat_arrays(arrays: list[CudaArray], dim: int) -> CudaArray:
    """``cat`` for callers inside the CUDA backend."""
    return _cat_cuda(*arrays, dim=dim)
