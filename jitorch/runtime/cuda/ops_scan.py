"""CUDA scans along a dim: cumsum, cumprod, logcumsumexp and the running argmax/argmin of cummax/cummin.

The input is a contiguous ``(outer, n, inner)`` view.  When the scanned dim is
not innermost (``inner > 1``) one thread per ``(outer, inner)`` column walks
it in order: neighbouring threads read neighbouring addresses, so every step
is one coalesced access.  Short innermost rows (at most ``_SHORT_ROW``
elements) also get a thread each; longer ones get a block each, which scans
tiles of the row with a shared-memory (Hillis-Steele) scan and carries the
tile total into the next tile, so long rows run in parallel too.  Float scans
accumulate in float64 and integer scans in int64, like the CPU kernels;
``cumext_indices`` scans (value, index) pairs keeping only the index in
shared memory and reading values through it.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda, float64, int64

from ...ops import scan as _scan  # noqa: F401 - the ops must exist before their impls
from ...ops.registry import impl
from . import driver
from .array import empty
from .typed_kernels import (
    PROD,
    SUM,
    Kernel,
    cast,
    combine,
    contiguous,
    flat,
    grid,
    isnan,
)

LOGSUMEXP = 0  # the scan ops: SUM, PROD (typed_kernels' reduction codes) and this one
_TPB = 8 if driver.simulated() else 256
_SHORT_ROW = 16  # rows this short are scanned by one thread each (a block per row would idle)


@cuda.jit(device=True, inline=True)
def _log_add_exp(a, b):
    if isnan(a) or isnan(b):
        return math.nan
    hi = max(a, b)
    lo = min(a, b)
    if lo == hi and not math.isfinite(lo):
        return lo  # both +inf or both -inf: no inf - inf
    return hi + math.log1p(math.exp(lo - hi))


@cuda.jit(device=True, inline=True)
def _combine(a, b, op):
    if op == LOGSUMEXP:
        return _log_add_exp(a, b)
    return combine(a, b, op)


@cuda.jit(device=True, inline=True)
def _identity(acc0, op):
    if op == SUM:
        return acc0
    if op == PROD:
        return acc0 + 1
    return acc0 - math.inf


def _scan_columns(x, out, outer, n, inner, op, reverse, acc0):
    q = cuda.grid(1)
    step = cuda.gridsize(1)
    while q < outer * inner:
        base = (q // inner) * n * inner + q % inner
        acc = _identity(acc0, op)
        for jj in range(n):
            j = n - 1 - jj if reverse else jj
            acc = _combine(acc, acc0 + x[base + j * inner], op)
            out[base + j * inner] = acc
        q += step


@cuda.jit(device=True, inline=True)
def _tile_scan(sh, tid, v, op):
    """Inclusive scan of the block's values ``v`` in shared array ``sh``; returns this thread's prefix."""
    sh[tid] = v
    cuda.syncthreads()
    off = 1
    while off < _TPB:
        left = sh[tid - off] if tid >= off else sh[tid]
        cuda.syncthreads()
        if tid >= off:
            sh[tid] = _combine(left, sh[tid], op)
        cuda.syncthreads()
        off *= 2
    return sh[tid]


@cuda.jit(device=True, inline=True)
def _scan_rows_body(x, out, nrows, n, op, reverse, acc0, sh):
    tid = cuda.threadIdx.x
    row = cuda.blockIdx.x
    while row < nrows:
        base = row * n
        carry = _identity(acc0, op)
        t0 = 0
        while t0 < n:
            p = t0 + tid
            j = n - 1 - p if reverse else p
            v = _identity(acc0, op)
            if p < n:
                v = acc0 + x[base + j]
            r = _tile_scan(sh, tid, v, op)
            if p < n:
                out[base + j] = _combine(carry, r, op)
            carry = _combine(carry, sh[_TPB - 1], op)
            cuda.syncthreads()
            t0 += _TPB
        row += cuda.gridDim.x


# the shared scratch has the accumulator's type, so float and integer scans are separate kernels
def _scan_rows_float(x, out, nrows, n, op, reverse, acc0):
    _scan_rows_body(x, out, nrows, n, op, reverse, acc0, cuda.shared.array(_TPB, float64))


def _scan_rows_int(x, out, nrows, n, op, reverse, acc0):
    _scan_rows_body(x, out, nrows, n, op, reverse, acc0, cuda.shared.array(_TPB, int64))


@cuda.jit(device=True, inline=True)
def _takes(best, v, want_max):
    """Does a later value ``v`` replace the running extreme ``best``?  Ties move on; NaN stays, except to NaN."""
    if isnan(best):
        return isnan(v)
    if isnan(v):
        return True
    return v >= best if want_max else v <= best


def _cumext_columns(x, out, outer, n, inner, want_max):
    q = cuda.grid(1)
    step = cuda.gridsize(1)
    while q < outer * inner:
        base = (q // inner) * n * inner + q % inner
        best = x[base]
        bi = 0
        out[base] = 0
        for j in range(1, n):
            v = x[base + j * inner]
            if _takes(best, v, want_max):
                best = v
                bi = j
            out[base + j * inner] = bi
        q += step


def _cumext_rows(x, out, nrows, n, want_max):
    sh = cuda.shared.array(_TPB, int64)
    tid = cuda.threadIdx.x
    row = cuda.blockIdx.x
    while row < nrows:
        base = row * n
        carry = -1
        t0 = 0
        while t0 < n:
            p = t0 + tid
            sh[tid] = p if p < n else -1
            cuda.syncthreads()
            off = 1
            while off < _TPB:
                left = sh[tid - off] if tid >= off else -1
                cuda.syncthreads()
                cur = sh[tid]
                if left >= 0 and cur >= 0 and not _takes(x[base + left], x[base + cur], want_max):
                    sh[tid] = left
                cuda.syncthreads()
                off *= 2
            r = sh[tid]
            if p < n:
                if carry >= 0 and not _takes(x[base + carry], x[base + r], want_max):
                    r = carry
                out[base + p] = r
            last = sh[min(_TPB, n - t0) - 1]
            if carry < 0 or _takes(x[base + carry], x[base + last], want_max):
                carry = last
            cuda.syncthreads()
            t0 += _TPB
        row += cuda.gridDim.x


_K_SCAN_COLS = Kernel(_scan_columns)
_K_SCAN_ROWS_F = Kernel(_scan_rows_float)
_K_SCAN_ROWS_I = Kernel(_scan_rows_int)
_K_CUMEXT_COLS = Kernel(_cumext_columns)
_K_CUMEXT_ROWS = Kernel(_cumext_rows)


def _scan_types(dt: np.dtype) -> tuple:
    """(kernel input/output dtype, zero of the accumulator type), as the CPU's ``_scan_types``."""
    if dt == np.float64:
        return np.dtype(np.float64), 0.0
    if dt.kind == "f":
        return np.dtype(np.float32), 0.0
    return np.dtype(np.int64), 0


def _as_3d(x, dim: int, dtype):
    shape = x.shape
    return contiguous(x, dtype), math.prod(shape[:dim]), shape[dim], math.prod(shape[dim + 1:])


def _row_blocks(nrows: int) -> int:
    return min(nrows, 2 if driver.simulated() else 65535)


def _run(x, dim: int, op: int, reverse: bool):
    kdt, acc0 = _scan_types(x.dtype)
    if op == LOGSUMEXP:
        acc0 = 0.0
    xc, outer, n, inner = _as_3d(x, dim, kdt)
    out = empty(x.shape, kdt)
    if out.size:
        if inner == 1 and n > _SHORT_ROW:
            kern = _K_SCAN_ROWS_F if kdt.kind == "f" else _K_SCAN_ROWS_I
            kern(_row_blocks(outer), _TPB, flat(xc), flat(out), outer, n, op, bool(reverse), acc0)
        else:
            b, t = grid(outer * inner)
            _K_SCAN_COLS(b, t, flat(xc), flat(out), outer, n, inner, op, bool(reverse), acc0)
    return cast(out, x.dtype) if x.dtype.kind == "f" else out


@impl("cumsum", "cuda")
def _cumsum_cuda(x, dim, reverse):
    return _run(x, dim, SUM, reverse)


@impl("cumprod", "cuda")
def _cumprod_cuda(x, dim):
    return _run(x, dim, PROD, False)


@impl("logcumsumexp", "cuda")
def _logcumsumexp_cuda(x, dim, reverse):
    return _run(x, dim, LOGSUMEXP, reverse)


@impl("cumext_indices", "cuda")
def _cumext_cuda(x, dim, want_max):
    kdt = _scan_types(x.dtype)[0]
    xc, outer, n, inner = _as_3d(x, dim, kdt)
    out = empty(x.shape, np.int64)
    if out.size:
        if inner == 1 and n > _SHORT_ROW:
            _K_CUMEXT_ROWS(_row_blocks(outer), _TPB, flat(xc), flat(out), outer, n, bool(want_max))
        else:
            b, t = grid(outer * inner)
            _K_CUMEXT_COLS(b, t, flat(xc), flat(out), outer, n, inner, bool(want_max))
    return out
