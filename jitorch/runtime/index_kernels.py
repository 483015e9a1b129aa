"""Numba kernels behind the indexing ops (gather, scatter, index_add, put...).

Every kernel takes flat or 3-D C-contiguous arrays plus shapes/strides as
int64 arrays, so one compiled overload per dtype serves every rank and
layout.  Callers (``jitorch.ops.indexing``) validate index values and dtypes
first: these loops do no bounds checks of their own.
"""
from __future__ import annotations

import numpy as np
from numba import njit

# scatter combine modes
ASSIGN, ADD, MULTIPLY, AMAX, AMIN = 0, 1, 2, 3, 4

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}


@njit(**_JIT)
def _combine(cur, v, mode):
    if mode == 1:
        return cur + v
    if mode == 2:
        return cur * v
    if mode == 3:
        # NaN wins (and then stays): torch propagates NaN through amax/amin
        return v if (v > cur or v != v) and cur == cur else cur  # noqa: PLR0124
    if mode == 4:
        return v if (v < cur or v != v) and cur == cur else cur  # noqa: PLR0124
    return v


@njit(**_JIT)
def gather_nd(src, src_strides, index, index_shape, dim, out):
    """``out[k] = src[offset of (multi-index of k with index[k] at dim)]``.

    ``index``/``out`` are the flat C-order elements of the index tensor;
    ``src`` is a flat buffer addressed with ``src_strides`` (in elements).
    """
    nd = index_shape.shape[0]
    counter = np.zeros(nd, np.int64)
    for k in range(index.shape[0]):
        off = index[k] * src_strides[dim]
        for d in range(nd):
            if d != dim:
                off += counter[d] * src_strides[d]
        out[k] = src[off]
        d = nd - 1
        while d >= 0:
            counter[d] += 1
            if counter[d] < index_shape[d]:
                break
            counter[d] = 0
            d -= 1


@njit(**_JIT)
def scatter_nd(out, out_strides, index, index_shape, dim, src, src_strides, mode, counts, init_first):
    """Combine ``src`` into ``out`` at the positions named by ``index`` along ``dim``.

    ``counts`` (one slot per element of ``out``, or empty) counts the writes;
    with ``init_first`` the first write to a slot replaces its value instead of
    combining with it (``scatter_reduce(include_self=False)``).
    """
    nd = index_shape.shape[0]
    counter = np.zeros(nd, np.int64)
    use_counts = counts.shape[0] > 0
    for k in range(index.shape[0]):
        off = index[k] * out_strides[dim]
        soff = 0
        for d in range(nd):
            soff += counter[d] * src_strides[d]
            if d != dim:
                off += counter[d] * out_strides[d]
        v = src[soff]
        if use_counts:
            c = counts[off]
            if c == 0 and init_first:
                out[off] = v
            else:
                out[off] = _combine(out[off], v, mode)
            counts[off] = c + 1
        else:
            out[off] = _combine(out[off], v, mode)
        d = nd - 1
        while d >= 0:
            counter[d] += 1
            if counter[d] < index_shape[d]:
                break
            counter[d] = 0
            d -= 1


@njit(**_JIT)
def index_reduce_3d(out, index, src, accumulate):
    """``out[o, index[j], i] (+)= src[o, j, i]`` for 3-D (outer, n, inner) arrays."""
    for o in range(src.shape[0]):
        for j in range(index.shape[0]):
            r = index[j]
            if accumulate:
                for i in range(src.shape[2]):
                    out[o, r, i] += src[o, j, i]
            else:
                for i in range(src.shape[2]):
                    out[o, r, i] = src[o, j, i]
