"""CUDA sorting and selection: argsort, topk, argmax/argmin, kthvalue, mode, searchsorted, median.

Rows are sorted with a bitonic network over (value, original index) keys.
Comparing the index when values tie makes every key distinct, so the
(unstable) network yields exactly the stable order torch's ``stable=True``
gives, and NaN sorts as the largest value (last ascending, first descending).
Rows are padded to a power of two ``P`` with keys that sort after everything.
Stages up to the shared-memory chunk ``CH`` run in one kernel per chunk in
shared memory (several short rows share a chunk); longer rows add one global
kernel per step ``j >= CH`` of each stage and finish each stage's small steps
in shared memory again.  The sort kernels are generated per key type
(float32, float64, int64: the CPU's kernel dtypes) and cached on disk.

``argmax``/``argmin`` are reductions of (value, index) pairs with the CPU's
rules (the first NaN wins, ties keep the first index): a block per row
segment with a shared-memory tree, then one more pass over the segments'
winners for long rows; a thread per column when the reduced dim is not
innermost.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda

from ...ops import sorting as _sorting  # noqa: F401 - the ops must exist before their impls
from ...ops.registry import impl
from . import driver
from .array import CudaArray, empty
from .copy import copy_into
from .typed_kernels import Kernel, cast, contiguous, flat, grid, isnan

I64 = np.dtype(np.int64)
_SIM = driver.simulated()
CH = 16 if _SIM else 2048  # elements per shared-memory sort chunk
SORT_TPB = 8 if _SIM else 1024
_RED_TPB = 8 if _SIM else 256

_SORT_SOURCE = '''
from numba import cuda, int64, {key}

CH = {ch}
TPB = {tpb}


@cuda.jit(device=True, inline=True)
def before(va, ia, vb, ib, n, desc):
    """Does key (va, ia) come first?  Padding (index >= n) goes last; NaN is the largest value."""
    if ia >= n or ib >= n:
        if ia >= n and ib >= n:
            return ia < ib
        return ib >= n
    an = va != va
    bn = vb != vb
    if an != bn:
        return an if desc else bn
    if (not an) and va != vb:
        return va > vb if desc else va < vb
    return ia < ib


@cuda.jit(device=True, inline=True)
def order_pair(keys, idx, i, ixj, n, desc, up):
    """Bitonic compare-exchange of keys ``i`` < ``ixj``: ascending order where ``up``, else descending."""
    if before(keys[ixj], idx[ixj], keys[i], idx[i], n, desc) == up:
        tk = keys[i]
        keys[i] = keys[ixj]
        keys[ixj] = tk
        ti = idx[i]
        idx[i] = idx[ixj]
        idx[ixj] = ti


def load(src, keys, idx, nrows, n, P, total):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < total:
        r = t // P
        p = t - r * P
        if r < nrows and p < n:
            keys[t] = src[r * n + p]
        else:
            keys[t] = {key}(0)
        idx[t] = p
        t += step


def shared_pass(keys, idx, total, P, n, desc, k_lo, k_hi):
    """Bitonic stages k_lo..k_hi of every CH-chunk in shared memory, steps j < CH only."""
    sk = cuda.shared.array(CH, {key})
    si = cuda.shared.array(CH, int64)
    tid = cuda.threadIdx.x
    chunk = cuda.blockIdx.x
    while chunk * CH < total:
        base = chunk * CH
        for i in range(tid, CH, TPB):
            sk[i] = keys[base + i]
            si[i] = idx[base + i]
        cuda.syncthreads()
        k = k_lo
        while k <= k_hi:
            j = min(k // 2, CH // 2)
            while j > 0:
                for i in range(tid, CH, TPB):
                    ixj = i ^ j
                    if ixj > i:
                        order_pair(sk, si, i, ixj, n, desc, ((base + i) & (P - 1) & k) == 0)
                cuda.syncthreads()
                j //= 2
            k *= 2
        for i in range(tid, CH, TPB):
            keys[base + i] = sk[i]
            idx[base + i] = si[i]
        cuda.syncthreads()
        chunk += cuda.gridDim.x


def global_step(keys, idx, total, P, n, desc, k, j):
    """One bitonic step with partners j >= CH apart, straight in global memory."""
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    half = total // 2
    while t < half:
        i = (t // j) * 2 * j + t % j
        order_pair(keys, idx, i, i + j, n, desc, (i & (P - 1) & k) == 0)
        t += step
'''

_SORT_KERNELS: dict = {}


def _sort_kernels(key: str):
    ks = _SORT_KERNELS.get(key)
    if ks is None:
        from ..kernel_cache import load_module
        mod = load_module(_SORT_SOURCE.format(key=key, ch=CH, tpb=SORT_TPB))
        ks = _SORT_KERNELS[key] = (Kernel(mod.load), Kernel(mod.shared_pass), Kernel(mod.global_step))
    return ks


def kernel_dtype(dt: np.dtype) -> np.dtype:
    """float32/float64 stay, other floats -> float32, integers and bool -> int64 (the CPU's rule)."""
    dt = np.dtype(dt)
    if dt in (np.float32, np.float64):
        return dt
    return np.dtype(np.float32) if dt.kind == "f" else I64


def sort_rows(rows: CudaArray, descending: bool = False) -> tuple[CudaArray, CudaArray]:
    """Stable sort of each row of a 2-D array: (sorted keys in the kernel dtype, int64 original indices)."""
    nrows, n = rows.shape
    kdt = kernel_dtype(rows.dtype)
    src = contiguous(rows, kdt)
    if rows.size == 0:
        return empty(rows.shape, kdt), empty(rows.shape, I64)
    P = 1 << max(n - 1, 0).bit_length()
    total = nrows * P
    total = (total + CH - 1) // CH * CH
    keys = empty((total,), kdt)
    idx = empty((total,), I64)
    load, shared_pass, global_step = _sort_kernels(kdt.name)
    blocks, threads = grid(total)
    load(blocks, threads, flat(src), keys, idx, nrows, n, P, total)
    chunks = total // CH
    sblocks = 1 if _SIM else min(chunks, 65535)  # the simulator pays per block: one block walks the chunks
    desc = bool(descending)
    shared_pass(sblocks, SORT_TPB, keys, idx, total, P, n, desc, 2, min(P, CH))
    k = 2 * CH
    while k <= P:
        j = k // 2
        while j >= CH:
            b, t = grid(total // 2)
            global_step(b, t, keys, idx, total, P, n, desc, k, j)
            j //= 2
        shared_pass(sblocks, SORT_TPB, keys, idx, total, P, n, desc, k, k)
        k *= 2
    used = nrows * P
    ksort = empty((nrows, n), kdt)
    order = empty((nrows, n), I64)
    copy_into(ksort, keys[:used].reshape(nrows, P)[:, :n])
    copy_into(order, idx[:used].reshape(nrows, P)[:, :n])
    return ksort, order


def argsort_rows(rows: CudaArray, descending: bool = False) -> CudaArray:
    return sort_rows(rows, descending)[1]


# -- moving the dim last and back --------------------------------------------------------------------------
def _rows(x: CudaArray, dim: int) -> CudaArray:
    """``x`` with ``dim`` moved last as a contiguous (rows, n) array in the kernel dtype."""
    if x.ndim == 0:
        return contiguous(x.reshape(1), kernel_dtype(x.dtype)).reshape(1, 1)
    order = [d for d in range(x.ndim) if d != dim] + [dim]
    y = contiguous(x.transpose(order), kernel_dtype(x.dtype))
    return y.reshape(math.prod(y.shape[:-1]), y.shape[-1])


def _unrows(res: CudaArray, x_shape: tuple, dim: int, last: int) -> CudaArray:
    if len(x_shape) == 0:
        return res.reshape(())
    moved = tuple(s for i, s in enumerate(x_shape) if i != dim) + (last,)
    r = res.reshape(moved)
    nd = len(x_shape)
    back = list(range(nd - 1))
    back.insert(dim, nd - 1)
    return contiguous(r.transpose(back))


@impl("argsort", "cuda")
def _argsort_cuda(x, dim, descending):
    return _unrows(argsort_rows(_rows(x, dim), descending), x.shape, dim, x.shape[dim] if x.ndim else 1)


@impl("topk_indices", "cuda")
def _topk_cuda(x, dim, k, largest):
    order = argsort_rows(_rows(x, dim), largest)
    return _unrows(contiguous(order[:, :k]), x.shape, dim, k)


# -- kth value, mode, median ----------------------------------------------------------------------------------
@cuda.jit(device=True, inline=True)
def _first_nan(keys, base, n):
    """Position of the first NaN in an ascending sorted row (NaNs are last); n when there is none."""
    lo = 0
    hi = n
    while lo < hi:
        mid = (lo + hi) // 2
        v = keys[base + mid]
        if isnan(v):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _kth_pick(keys, order, nrows, n, k, rule, out):
    r = cuda.grid(1)
    step = cuda.gridsize(1)
    while r < nrows:
        base = r * n
        first = _first_nan(keys, base, n)
        if rule == 0:
            pos = k
        elif rule == 1:
            pos = first if first < n else k
        else:
            pos = max((first - 1) // 2, 0)
        out[r] = order[base + pos]
        r += step


def _mode_pick(keys, order, nrows, n, out):
    r = cuda.grid(1)
    step = cuda.gridsize(1)
    while r < nrows:
        base = r * n
        best_count = 0
        best = 0
        j = 0
        while j < n:
            v = keys[base + j]
            e = j + 1
            while e < n and (keys[base + e] == v or (isnan(v) and isnan(keys[base + e]))):
                e += 1
            if e - j > best_count:
                best_count = e - j
                best = order[base + e - 1]  # the stable sort ends each run with its last index
            j = e
        out[r] = best
        r += step


def _median_pick(keys, n, ignore_nan, out):
    if cuda.grid(1) == 0:
        first = _first_nan(keys, 0, n)
        valid = first if ignore_nan else n
        if valid == 0 or (not ignore_nan and first < n):
            out[0] = math.nan
        else:
            out[0] = keys[(valid - 1) // 2]


_K_KTH = Kernel(_kth_pick)
_K_MODE = Kernel(_mode_pick)
_K_MEDIAN = Kernel(_median_pick)
_NAN_RULES = {"none": 0, "propagate": 1, "ignore": 2}


@impl("kth_indices", "cuda")
def _kth_cuda(x, dim, k, nan_rule):
    keys, order = sort_rows(_rows(x, dim))
    nrows, n = keys.shape
    out = empty((nrows,), I64)
    if nrows and n:
        b, t = grid(nrows)
        _K_KTH(b, t, flat(keys), flat(order), nrows, n, int(k), _NAN_RULES[nan_rule], out)
    return _unrows(out, x.shape, dim, 1)


@impl("mode_indices", "cuda")
def _mode_cuda(x, dim):
    keys, order = sort_rows(_rows(x, dim))
    nrows, n = keys.shape
    out = empty((nrows,), I64)
    if nrows and n:
        b, t = grid(nrows)
        _K_MODE(b, t, flat(keys), flat(order), nrows, n, out)
    return _unrows(out, x.shape, dim, 1)


def _median(x: CudaArray, ignore_nan: bool) -> CudaArray:
    n = x.size
    kdt = kernel_dtype(x.dtype)
    out = empty((1,), np.float64 if kdt.kind == "f" else kdt)
    if n == 0:
        out.fill(np.nan if kdt.kind == "f" else 0)
    else:
        keys, _ = sort_rows(contiguous(x).reshape(1, n))
        _K_MEDIAN(1, 1, flat(keys), n, bool(ignore_nan), out)
    return cast(out, x.dtype).reshape(())


@impl("median_all", "cuda")
def _median_all_cuda(x):
    return _median(x, False)


@impl("nanmedian_all", "cuda")
def _nanmedian_all_cuda(x):
    return _median(x, True)


# -- searchsorted ---------------------------------------------------------------------------------------------
def _search(seq, vals, nseq, n, m, right, out):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    total = out.shape[0]
    while t < total:
        r = t // m
        base = (r if nseq > 1 else 0) * n
        v = vals[t]
        lo = 0
        hi = n
        while lo < hi:
            mid = lo + ((hi - lo) >> 1)
            s = seq[base + mid]
            go_right = not (s > v) if right else not (s >= v)
            if go_right:
                lo = mid + 1
            else:
                hi = mid
        out[t] = lo
        t += step


_K_SEARCH = Kernel(_search)


@impl("searchsorted", "cuda")
def _searchsorted_cuda(seq, vals, sorter, right, int32):
    common = np.result_type(seq.dtype, vals.dtype)
    if sorter is not None:
        from .ops_index import _gather_along_cuda
        seq = _gather_along_cuda(seq, sorter, seq.ndim - 1)
    kdt = kernel_dtype(common)
    if seq.dtype.kind != vals.dtype.kind and (seq.dtype.kind == "f" or vals.dtype.kind == "f"):
        kdt = np.dtype(np.float64)  # int boundaries and float values (or the reverse): compare as float64
    n = seq.shape[-1]
    s2 = contiguous(seq, kdt).reshape(-1, n)
    nseq = s2.shape[0]
    v2 = contiguous(vals, kdt)
    total = v2.size
    out = empty((total,), I64)
    if total:
        m = total // nseq if nseq > 1 else total
        b, t = grid(total)
        _K_SEARCH(b, t, flat(s2), flat(v2), nseq, n, m, bool(right), out)
    out = out.reshape(vals.shape)
    return cast(out, np.int32) if int32 else out


# -- argmax / argmin ------------------------------------------------------------------------------------------
@cuda.jit(device=True, inline=True)
def _better(va, ia, vb, ib, want_max):
    """Is (vb, ib) the better pick than (va, ia)?  The first NaN wins, then the max (min), then the first index."""
    an = isnan(va)
    bn = isnan(vb)
    if an or bn:
        if an and bn:
            return ib < ia
        return bn
    if vb == va:
        return ib < ia
    return vb > va if want_max else vb < va


def _argext_segments(x, nx, nrows, m, seg, nseg, want_max, cand, use_cand, out):
    """Block b reduces segment b % nseg of row b // nseg; a row's m items are the indices 0..m-1 of
    its x row (length nx), or the candidate indices ``cand[row * m:(row + 1) * m]`` with ``use_cand``."""
    si = cuda.shared.array(_RED_TPB, np.int64)
    tid = cuda.threadIdx.x
    b = cuda.blockIdx.x
    while b < nrows * nseg:
        row = b // nseg
        start = (b % nseg) * seg
        stop = min(start + seg, m)
        xb = row * nx
        best = -1
        bv = x[xb]
        for j in range(start + tid, stop, _RED_TPB):
            c = cand[row * m + j] if use_cand else j
            v = x[xb + c]
            if best < 0 or _better(bv, best, v, c, want_max):
                best = c
                bv = v
        si[tid] = best
        cuda.syncthreads()
        s = _RED_TPB // 2
        while s > 0:
            if tid < s:
                a = si[tid]
                c = si[tid + s]
                if c >= 0 and (a < 0 or _better(x[xb + a], a, x[xb + c], c, want_max)):
                    si[tid] = c
            cuda.syncthreads()
            s //= 2
        if tid == 0:
            out[b] = si[0]
        cuda.syncthreads()
        b += cuda.gridDim.x


def _argext_columns(x, outer, n, inner, want_max, out):
    q = cuda.grid(1)
    step = cuda.gridsize(1)
    while q < outer * inner:
        o = q // inner
        i = q % inner
        base = o * n * inner + i
        best = 0
        bv = x[base]
        for j in range(1, n):
            v = x[base + j * inner]
            if _better(bv, best, v, j, want_max):
                best = j
                bv = v
        out[q] = best
        q += step


_K_ARGEXT_SEG = Kernel(_argext_segments)
_K_ARGEXT_COL = Kernel(_argext_columns)


def argext_rows(x: CudaArray, want_max: bool) -> CudaArray:
    """First index of the max (min) of each row of a contiguous (rows, n) array; n > 0.

    Long rows are cut into segments, so a few rows still fill the GPU: the
    segments' winners are then reduced once more per row.
    """
    nrows, n = x.shape
    xf = flat(x)
    out = empty((nrows,), I64)
    seg = max(_RED_TPB * 8, -(-n // max(1, 4096 // max(nrows, 1))))
    nseg = -(-n // seg)
    if nseg == 1:
        _K_ARGEXT_SEG(_blocks(nrows), _RED_TPB, xf, n, nrows, n, n, 1, bool(want_max), out, False, out)
        return out
    part = empty((nrows * nseg,), I64)
    _K_ARGEXT_SEG(_blocks(nrows * nseg), _RED_TPB, xf, n, nrows, n, seg, nseg, bool(want_max), part, False, part)
    _K_ARGEXT_SEG(_blocks(nrows), _RED_TPB, xf, n, nrows, nseg, nseg, 1, bool(want_max), part, True, out)
    return out


def _blocks(n: int) -> int:
    return min(n, 2 if _SIM else 65535)


@impl("argext", "cuda")
def _argext_cuda(x, dim, want_max, keepdim):
    shape = x.shape
    kdt = kernel_dtype(x.dtype)
    xc = contiguous(x, kdt)
    if dim is None:
        out = argext_rows(xc.reshape(1, x.size), want_max)
        return out.reshape((1,) * len(shape) if keepdim else ())
    outer, n, inner = math.prod(shape[:dim]), shape[dim], math.prod(shape[dim + 1:])
    if inner == 1:
        out = argext_rows(xc.reshape(outer, n), want_max)
    else:
        out = empty((outer * inner,), I64)
        if out.size:
            b, t = grid(out.size)
            _K_ARGEXT_COL(b, t, flat(xc), outer, n, inner, bool(want_max), out)
    kept = tuple(1 if i == dim else s for i, s in enumerate(shape))
    return out.reshape(kept if keepdim else shape[:dim] + shape[dim + 1:])
