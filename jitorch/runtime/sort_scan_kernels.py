"""Numba kernels behind sorting, selection, scans and index scatter (CPU).

Layouts: a kernel that works along one dim of an N-d array sees it either as
``(rows, n)`` (the dim moved last and made contiguous: sorts, searches) or as
``(outer, n, inner)`` (a free reshape of a C-contiguous array: scans, arg
reductions, scatter), which keeps the innermost loop over contiguous memory.

NaN rules follow torch: NaN counts as the largest value in sorts and wins
max/min selections; ``searchsorted`` uses plain comparisons (no NaN case).

All functions are static ``njit(cache=True)`` functions compiled lazily per
dtype and cached on disk by Numba.  Callers validate arguments, normalize
dtypes (so only a few specializations exist) and pass C-contiguous arrays.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}


# -- sorting -------------------------------------------------------------------------------------
@njit(**_JIT)
def argsort_rows(x, descending, out):
    """Stable argsort of each row of ``x`` (rows, n) into ``out`` (int64).

    Descending order sorts the reversed row ascending and reverses the result,
    which keeps equal elements in their original order and NaNs first.
    """
    rows, n = x.shape
    for r in range(rows):
        if descending:
            rev = x[r, ::-1].copy()
            order = np.argsort(rev, kind="mergesort")
            for j in range(n):
                out[r, j] = n - 1 - order[n - 1 - j]
        else:
            order = np.argsort(x[r].copy(), kind="mergesort")
            for j in range(n):
                out[r, j] = order[j]


@njit(**_JIT)
def _before(a, ia, b, ib, largest):
    """Does (a, ia) come first in a stable sort that is descending when ``largest`` (NaN is the largest)?"""
    an = math.isnan(a)
    bn = math.isnan(b)
    if an != bn:
        return an if largest else bn
    if not an and a != b:
        return a > b if largest else a < b
    return ia < ib


@njit(**_JIT)
def _sift_down(vals, idx, k, pos, largest):
    # heap of the k best so far, the worst at the root: children must not come after their parent
    while True:
        child = 2 * pos + 1
        if child >= k:
            return
        if child + 1 < k and _before(vals[child], idx[child], vals[child + 1], idx[child + 1], largest):
            child += 1
        if _before(vals[child], idx[child], vals[pos], idx[pos], largest):
            return
        vals[pos], vals[child] = vals[child], vals[pos]
        idx[pos], idx[child] = idx[child], idx[pos]
        pos = child


@njit(**_JIT)
def topk_rows(x, k, largest, out):
    """Indices of the ``k`` first elements of each row in stable (descending if ``largest``) order.

    A size-k heap keeps the running selection (O(n log k)); the k winners are
    then ordered exactly as the full stable sort would order them.
    """
    rows, n = x.shape
    vals = np.empty(k, dtype=x.dtype)
    idx = np.empty(k, dtype=np.int64)
    for r in range(rows):
        for j in range(k):
            vals[j] = x[r, j]
            idx[j] = j
        for p in range(k // 2 - 1, -1, -1):
            _sift_down(vals, idx, k, p, largest)
        for j in range(k, n):
            v = x[r, j]
            if _before(v, j, vals[0], idx[0], largest):
                vals[0] = v
                idx[0] = j
                _sift_down(vals, idx, k, 0, largest)
        # pop the worst to the back: the array ends up best-first
        for end in range(k - 1, 0, -1):
            vals[0], vals[end] = vals[end], vals[0]
            idx[0], idx[end] = idx[end], idx[0]
            _sift_down(vals, idx, end, 0, largest)
        for j in range(k):
            out[r, j] = idx[j]


@njit(**_JIT)
def mode_rows(x, out):
    """Index of the most frequent value of each row (smallest value on ties, its last index)."""
    rows, n = x.shape
    for r in range(rows):
        order = np.argsort(x[r].copy(), kind="mergesort")
        best_count = 0
        best_idx = 0
        j = 0
        while j < n:
            v = x[r, order[j]]
            k = j + 1
            while k < n and (x[r, order[k]] == v or (math.isnan(v) and math.isnan(x[r, order[k]]))):
                k += 1
            if k - j > best_count:
                best_count = k - j
                best_idx = order[k - 1]  # stable sort: the last occurrence ends the run
            j = k
        out[r] = best_idx


@njit(**_JIT)
def searchsorted_rows(seq, vals, right, out):
    """Insertion points of ``vals`` (rows, m) in ``seq`` (1 or rows, n).

    Mirrors torch's binary search: left finds the first ``seq[i] >= v``,
    right the first ``seq[i] > v``, with plain (NaN-unaware) comparisons.
    """
    rows, m = vals.shape
    n = seq.shape[1]
    for r in range(rows):
        sr = r if seq.shape[0] > 1 else 0
        for j in range(m):
            v = vals[r, j]
            lo = 0
            hi = n
            while lo < hi:
                mid = lo + ((hi - lo) >> 1)
                s = seq[sr, mid]
                if right:
                    go_right = not (s > v)
                else:
                    go_right = not (s >= v)
                if go_right:
                    lo = mid + 1
                else:
                    hi = mid
            out[r, j] = lo


# -- arg reductions --------------------------------------------------------------------------------
@njit(**_JIT)
def _argext_row(x, o, want_max):
    # inner == 1: a plain scan of one contiguous row
    best = x[o, 0, 0]
    if math.isnan(best):
        return 0
    bi = 0
    for j in range(1, x.shape[1]):
        v = x[o, j, 0]
        if math.isnan(v):
            return j
        if (want_max and v > best) or (not want_max and v < best):
            best = v
            bi = j
    return bi


@njit(**_JIT)
def argext_3d(x, want_max, out):
    """First index of the max (or min) along axis 1 of ``x`` (outer, n, inner); the first NaN wins."""
    outer, n, inner = x.shape
    if inner == 1:
        for o in range(outer):
            out[o, 0] = _argext_row(x, o, want_max)
        return
    best = np.empty(inner, dtype=x.dtype)
    done = np.zeros(inner, dtype=np.bool_)
    for o in range(outer):
        for i in range(inner):
            v = x[o, 0, i]
            best[i] = v
            out[o, i] = 0
            done[i] = math.isnan(v)
        for j in range(1, n):
            for i in range(inner):
                if done[i]:
                    continue
                v = x[o, j, i]
                if math.isnan(v):
                    out[o, i] = j
                    done[i] = True
                elif (want_max and v > best[i]) or (not want_max and v < best[i]):
                    best[i] = v
                    out[o, i] = j


# -- scans ---------------------------------------------------------------------------------------------
@njit(**_JIT)
def cumsum_3d(x, reverse, acc, out):
    """Running sum along axis 1; ``acc`` (inner,) sets the accumulator type."""
    outer, n, inner = x.shape
    for o in range(outer):
        acc[:] = 0
        if inner == 1:  # one contiguous row: keep the running sum in a register
            a = acc[0]
            for jj in range(n):
                j = n - 1 - jj if reverse else jj
                a += x[o, j, 0]
                out[o, j, 0] = a
            continue
        for jj in range(n):
            j = n - 1 - jj if reverse else jj
            for i in range(inner):
                acc[i] += x[o, j, i]
                out[o, j, i] = acc[i]


@njit(**_JIT)
def cumprod_3d(x, acc, out):
    """Running product along axis 1; ``acc`` (inner,) sets the accumulator type."""
    outer, n, inner = x.shape
    for o in range(outer):
        acc[:] = 1
        if inner == 1:
            a = acc[0]
            for j in range(n):
                a *= x[o, j, 0]
                out[o, j, 0] = a
            continue
        for j in range(n):
            for i in range(inner):
                acc[i] *= x[o, j, i]
                out[o, j, i] = acc[i]


@njit(**_JIT)
def _log_add_exp(a, b):
    if math.isnan(a) or math.isnan(b):
        return math.nan
    hi = max(a, b)
    lo = min(a, b)
    if lo == hi and not math.isfinite(lo):
        return lo  # both +inf or both -inf: avoid inf - inf
    return hi + math.log1p(math.exp(lo - hi))


@njit(**_JIT)
def logcumsumexp_3d(x, reverse, out):
    """Running ``log(sum(exp(x)))`` along axis 1, accumulated in float64."""
    outer, n, inner = x.shape
    acc = np.empty(inner, dtype=np.float64)
    for o in range(outer):
        acc[:] = -math.inf
        for jj in range(n):
            j = n - 1 - jj if reverse else jj
            for i in range(inner):
                acc[i] = _log_add_exp(acc[i], np.float64(x[o, j, i]))
                out[o, j, i] = acc[i]


@njit(**_JIT)
def cumext_indices_3d(x, want_max, out):
    """Indices of the running max (min) along axis 1: ties move to the later index,
    and once a NaN is seen only later NaNs replace it (torch's cummax/cummin)."""
    outer, n, inner = x.shape
    best = np.empty(inner, dtype=x.dtype)
    for o in range(outer):
        for i in range(inner):
            best[i] = x[o, 0, i]
            out[o, 0, i] = 0
        for j in range(1, n):
            for i in range(inner):
                v = x[o, j, i]
                b = best[i]
                if math.isnan(b):
                    take = math.isnan(v)
                elif math.isnan(v):
                    take = True
                elif want_max:
                    take = v >= b
                else:
                    take = v <= b
                if take:
                    best[i] = v
                    out[o, j, i] = j
                else:
                    out[o, j, i] = out[o, j - 1, i]


# -- index scatter -----------------------------------------------------------------------------------------
@njit(**_JIT)
def scatter_add_3d(src, idx, out):
    """``out[o, idx[o, j, i], i] += src[o, j, i]`` (the adjoint of a gather along axis 1)."""
    outer, m, inner = src.shape
    for o in range(outer):
        for j in range(m):
            for i in range(inner):
                out[o, idx[o, j, i], i] += src[o, j, i]
