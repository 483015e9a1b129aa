"""CUDA kernels of the indexing primitives: advanced indexing, gather/scatter, index_* and nonzero.

Advanced indexing (``index``, ``index_backward``, ``index_put``, ``index_select``,
``index_add/copy/fill``) shares one geometry: the indexed view of an array is
``(pre dims, B index positions, post dims)``, where the integer arrays on
``dims`` reduce to one element offset per position (``adv[b] = sum_k
idx_k[b] * stride[dims[k]]``, computed on the host when the indices are host
arrays, as the front end's attributes are).  A gather reads and a scatter
writes ``base + pre_offset + adv[b] + post_offset`` straight through the
view's strides, so no operand is ever copied to a contiguous layout.
Accumulating scatters use atomics (float16 and bool accumulate in float32 and
int64, as the CPU kernels do); plain writes of repeated positions race, and
the winner is unspecified, as in torch.

``scatter_reduce``'s prod/amax/amin/mean and ``include_self=False`` give every
column of the index (all coordinates but ``dim``) to one thread, which walks
the column in order: no two threads touch the same output element, so those
modes need no atomics and give the CPU's results exactly.

``nonzero`` counts per block, reads the counts back (a synchronization, as in
torch: the result's size depends on the data) and writes each block's
coordinates at its offset with a shared-memory scan.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda

from ...ops import indexing as _indexing  # noqa: F401 - the ops must exist before their impls
from ...ops import indexing_diag as _indexing_diag  # noqa: F401
from ...ops import indexing_dim as _indexing_dim  # noqa: F401
from ...ops import shape_ops as _shape_ops  # noqa: F401
from ...ops.indexing_base import adv_result_shape
from ...ops.registry import impl
from . import driver
from .array import CudaArray, empty
from .copy import broadcast_to, copy_into, from_host
from .typed_kernels import (
    Kernel,
    cast,
    contiguous,
    device,
    finish,
    flat,
    grid,
    isnan,
    span,
    work_dtype,
    zeros,
)

I64 = np.dtype(np.int64)
ASSIGN, ADD, MULTIPLY, AMAX, AMIN = 0, 1, 2, 3, 4
_NEEDS_ATOMIC_WIDEN = (np.dtype(np.int8), np.dtype(np.int16), np.dtype(np.uint8), np.dtype(np.bool_),
                       np.dtype(np.float16))


# -- kernels -------------------------------------------------------------------------------------------------
@cuda.jit(device=True, inline=True)
def _unravel_offset(q, shape, strides):
    """Element offset of flat position ``q`` of a C-ordered ``shape`` walked with ``strides``."""
    off = 0
    for d in range(len(shape) - 1, -1, -1):
        n = shape[d]
        off += (q % n) * strides[d]
        q //= n
    return off


def _adv_gather(src, s0, adv, pre_shape, pre_str, post_shape, post_str, out, nb, npost, n):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < n:
        i = t % npost
        rest = t // npost
        b = rest % nb
        o = rest // nb
        out[t] = src[s0 + _unravel_offset(o, pre_shape, pre_str) + adv[b] + _unravel_offset(i, post_shape, post_str)]
        t += step


# plain writes and atomic adds are separate kernels: bool and half arrays have no atomics to compile
def _adv_assign(dst, d0, adv, pre_shape, pre_str, post_shape, post_str, src, nb, npost, n):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < n:
        i = t % npost
        rest = t // npost
        dst[d0 + _unravel_offset(rest // nb, pre_shape, pre_str) + adv[rest % nb]
            + _unravel_offset(i, post_shape, post_str)] = src[t]
        t += step


def _adv_add(dst, d0, adv, pre_shape, pre_str, post_shape, post_str, src, nb, npost, n, alpha):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < n:
        i = t % npost
        rest = t // npost
        off = d0 + _unravel_offset(rest // nb, pre_shape, pre_str) + adv[rest % nb] + \
            _unravel_offset(i, post_shape, post_str)
        cuda.atomic.add(dst, off, src[t] * alpha)
        t += step


def _add_scaled(acc, idx, stride, n):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < n:
        acc[t] += idx[t] * stride
        t += step


@cuda.jit(device=True, inline=True)
def _dim_offsets(k, ishape, dim, strides_a, strides_b):
    """Offsets of index element ``k``'s coordinates, leaving out ``dim``, under two stride sets."""
    oa = 0
    ob = 0
    for d in range(len(ishape) - 1, -1, -1):
        n = ishape[d]
        c = k % n
        k //= n
        if d != dim:
            oa += c * strides_a[d]
            ob += c * strides_b[d]
    return oa, ob


def _gather_dim(src, s0, sstr, index, ishape, dim, out, n):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < n:
        off, _unused = _dim_offsets(t, ishape, dim, sstr, sstr)
        out[t] = src[s0 + off + index[t] * sstr[dim]]
        t += step


def _scatter_dim_assign(dst, dstr, index, ishape, dim, src, s0, sstr, n):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < n:
        do, so = _dim_offsets(t, ishape, dim, dstr, sstr)
        j = (t // _suffix(ishape, dim)) % ishape[dim]
        dst[do + index[t] * dstr[dim]] = src[s0 + so + j * sstr[dim]]
        t += step


def _scatter_dim_add(dst, dstr, index, ishape, dim, src, s0, sstr, n):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < n:
        do, so = _dim_offsets(t, ishape, dim, dstr, sstr)
        j = (t // _suffix(ishape, dim)) % ishape[dim]
        cuda.atomic.add(dst, do + index[t] * dstr[dim], src[s0 + so + j * sstr[dim]])
        t += step


@cuda.jit(device=True, inline=True)
def _suffix(shape, dim):
    p = 1
    for d in range(dim + 1, len(shape)):
        p *= shape[d]
    return p


@cuda.jit(device=True, inline=True)
def _combine(cur, v, mode):
    if mode == ADD:
        return cur + v
    if mode == MULTIPLY:
        return cur * v
    if mode == AMAX:  # NaN wins (and then stays)
        return v if (v > cur or isnan(v)) and not isnan(cur) else cur
    if mode == AMIN:
        return v if (v < cur or isnan(v)) and not isnan(cur) else cur
    return v


def _scatter_columns(dst, dstr, index, ishape, dim, src, s0, sstr, ncols, mode, counts, init_first):
    """One thread per index column (all coordinates but ``dim``), walking it in order."""
    q = cuda.grid(1)
    step = cuda.gridsize(1)
    inner = _suffix(ishape, dim)
    m = ishape[dim]
    while q < ncols:
        base = (q // inner) * m * inner + q % inner  # flat index of the column's first element
        do, so = _dim_offsets(base, ishape, dim, dstr, sstr)
        for j in range(m):
            k = base + j * inner
            off = do + index[k] * dstr[dim]
            v = src[s0 + so + j * sstr[dim]]
            c = counts[off]
            if c == 0 and init_first:
                dst[off] = v
            else:
                dst[off] = _combine(dst[off], v, mode)
            counts[off] = c + 1
        q += step


def _mean_finish(out, counts, n, include_self, integral):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < n:
        c = counts[t]
        d = c + 1 if include_self else max(c, 1)
        if integral:
            out[t] = out[t] // d
        else:
            out[t] = out[t] / d
        t += step


_TPB = 8 if driver.simulated() else 256  # threads of the nonzero kernels (shared-memory scan width)


def _nz_count(x, n, chunk, counts):
    sh = cuda.shared.array(_TPB, np.int64)
    tid = cuda.threadIdx.x
    start = cuda.blockIdx.x * chunk
    stop = min(start + chunk, n)
    c = 0
    i = start + tid
    while i < stop:
        if x[i] != 0:
            c += 1
        i += _TPB
    sh[tid] = c
    cuda.syncthreads()
    s = _TPB // 2
    while s > 0:
        if tid < s:
            sh[tid] += sh[tid + s]
        cuda.syncthreads()
        s //= 2
    if tid == 0:
        counts[cuda.blockIdx.x] = sh[0]


def _nz_write(x, n, chunk, offsets, shape, out):
    sh = cuda.shared.array(_TPB, np.int64)
    tid = cuda.threadIdx.x
    start = cuda.blockIdx.x * chunk
    stop = min(start + chunk, n)
    base = offsets[cuda.blockIdx.x]
    nd = len(shape)
    t0 = start
    while t0 < stop:
        i = t0 + tid
        flag = 1 if i < stop and x[i] != 0 else 0
        sh[tid] = flag
        cuda.syncthreads()
        off = 1
        while off < _TPB:  # Hillis-Steele inclusive scan of the tile's flags
            v = sh[tid - off] if tid >= off else 0
            cuda.syncthreads()
            sh[tid] += v
            cuda.syncthreads()
            off *= 2
        if flag:
            row = base + sh[tid] - 1
            q = i
            for d in range(nd - 1, -1, -1):
                out[row * nd + d] = q % shape[d]
                q //= shape[d]
        base += sh[_TPB - 1]
        cuda.syncthreads()
        t0 += _TPB


_K_ADV_GATHER = Kernel(_adv_gather)
_K_ADV_ASSIGN = Kernel(_adv_assign)
_K_ADV_ADD = Kernel(_adv_add)
_K_ADD_SCALED = Kernel(_add_scaled)
_K_GATHER_DIM = Kernel(_gather_dim)
_K_SCATTER_DIM_ASSIGN = Kernel(_scatter_dim_assign)
_K_SCATTER_DIM_ADD = Kernel(_scatter_dim_add)
_K_SCATTER_COLUMNS = Kernel(_scatter_columns)
_K_MEAN_FINISH = Kernel(_mean_finish)
_K_NZ_COUNT = Kernel(_nz_count)
_K_NZ_WRITE = Kernel(_nz_write)


# -- advanced-index geometry -----------------------------------------------------------------------------------
def _tuple(xs) -> tuple:
    """Shape/stride tuples for kernels are never empty (a size-1 dim of stride 0 stands in)."""
    xs = tuple(int(v) for v in xs)
    return xs if xs else (1,)


def _adjacent(dims: tuple) -> bool:
    return dims == tuple(range(dims[0], dims[0] + len(dims)))


def _offsets(idx, strides: list, bshape: tuple) -> CudaArray:
    """Device int64 offsets ``sum_k idx_k * strides[k]`` over the broadcast index shape."""
    if all(not isinstance(a, CudaArray) for a in idx):
        arrs = np.broadcast_arrays(*[np.asarray(a, dtype=I64) for a in idx]) if idx else [np.zeros((), I64)]
        adv = np.zeros(bshape, dtype=I64)
        for a, s in zip(arrs, strides):
            adv += a * s
        return from_host(adv.reshape(-1))
    n = math.prod(bshape)
    acc = zeros((n,), I64)
    for a, s in zip(idx, strides):
        a = device(a, I64)
        a = contiguous(broadcast_to(a, bshape) if a.shape != tuple(bshape) else a).reshape(n)
        if n:
            blocks, threads = grid(n)
            _K_ADD_SCALED(blocks, threads, acc, a, int(s), n)
    return acc


class _AdvView:
    """``view[...idx on dims...]`` as (pre dims, B positions, post dims) over ``view``'s storage."""

    def __init__(self, view: CudaArray, dims: tuple, idx: tuple):
        bshape = tuple(np.broadcast_shapes(*[tuple(a.shape) for a in idx])) if idx else ()
        self.buf, self.base, est = span(view)
        nd = view.ndim
        if not dims:
            pre, post = list(range(nd)), []
        elif _adjacent(dims):
            pre, post = list(range(dims[0])), list(range(dims[-1] + 1, nd))
        else:
            pre, post = [], [d for d in range(nd) if d not in dims]
        self.pre_shape = _tuple(view.shape[d] for d in pre)
        self.pre_str = _tuple(est[d] for d in pre) if pre else (0,)
        self.post_shape = _tuple(view.shape[d] for d in post)
        self.post_str = _tuple(est[d] for d in post) if post else (0,)
        self.nb = math.prod(bshape)
        self.npost = math.prod(view.shape[d] for d in post)
        self.shape = adv_result_shape(view.shape, dims, bshape) if dims else tuple(view.shape)
        self.size = math.prod(self.shape)
        self.adv = _offsets(idx, [est[d] for d in dims], bshape) if dims else from_host(np.zeros(1, I64))

    def gather(self, out: CudaArray) -> None:
        if self.size:
            blocks, threads = grid(self.size)
            _K_ADV_GATHER(blocks, threads, self.buf, self.base, self.adv, self.pre_shape, self.pre_str,
                          self.post_shape, self.post_str, flat(out), self.nb, max(self.npost, 1), self.size)

    def scatter(self, src: CudaArray, accumulate: bool, alpha=1) -> None:
        if self.size:
            blocks, threads = grid(self.size)
            args = (self.buf, self.base, self.adv, self.pre_shape, self.pre_str, self.post_shape, self.post_str,
                    flat(src), self.nb, max(self.npost, 1), self.size)
            if accumulate:
                _K_ADV_ADD(blocks, threads, *args, alpha)
            else:
                _K_ADV_ASSIGN(blocks, threads, *args)


def _scalar_for(dt: np.dtype, v):
    return float(v) if dt.kind == "f" else int(v)


def _fresh(x: CudaArray, dtype=None) -> CudaArray:
    """A new C-contiguous copy of ``x`` (cast to ``dtype``)."""
    out = empty(x.shape, x.dtype if dtype is None else dtype)
    if out.size:
        copy_into(out, x)
    return out


def _values(src, shape: tuple, dtype) -> CudaArray:
    """``src`` (a CudaArray or a scalar) broadcast to ``shape`` as a contiguous ``dtype`` array."""
    if not isinstance(src, CudaArray):  # a scalar: filled by a kernel that takes it as an argument
        out = empty(shape, dtype)
        out.fill(src)
        return out
    while src.ndim > len(shape) and src.shape[0] == 1:  # torch drops leading 1-dims of the value
        src = src[0]
    if tuple(src.shape) != tuple(shape):
        src = broadcast_to(src, shape)
    return contiguous(src, dtype)


# -- index / index_backward / index_put / index_select ---------------------------------------------------------
@impl("index", "cuda")
def _index_cuda(x, dims, idx):
    g = _AdvView(x, tuple(dims), tuple(idx))
    out = empty(g.shape, x.dtype)
    g.gather(out)
    return out


impl("index_select", "cuda")(_index_cuda)


@impl("index_backward", "cuda")
def _index_backward_cuda(g, shape, dims, idx):
    work = work_dtype(g.dtype, accumulate=True)
    out = zeros(shape, work)
    view = _AdvView(out, tuple(dims), tuple(idx))
    view.scatter(contiguous(g, work), True)
    return finish(out, g.dtype)


@impl("index_put", "cuda")
def _index_put_cuda(x, v, plan, value, accumulate):
    work = work_dtype(x.dtype, accumulate=True) if accumulate else x.dtype
    out = _fresh(x, work)
    region = plan.region(out)
    view = _AdvView(region, tuple(plan.dims), tuple(plan.idx))
    view.scatter(_values(v if v is not None else value, view.shape, work), accumulate)
    return finish(out, x.dtype)


# -- index_add / index_copy / index_fill -------------------------------------------------------------------------
def _nd(shape) -> tuple:
    return tuple(shape) if len(shape) else (1,)


def _index_reduce(x, src, dim, index, alpha, accumulate):
    work = work_dtype(x.dtype, accumulate=True) if accumulate else x.dtype
    if accumulate and work.kind in "iu" and work.itemsize < 4:
        work = I64  # atomics come in 32 and 64 bits: narrow ints add in int64 and wrap back on the cast
    out = _fresh(x, work).reshape(_nd(x.shape))
    view = _AdvView(out, (dim,), (index,))
    view.scatter(_values(src.reshape(view.shape) if src.size == view.size else src, view.shape, work), accumulate,
                 _scalar_for(work, alpha))
    return finish(out, x.dtype).reshape(x.shape)


@impl("index_add", "cuda")
def _index_add_cuda(x, src, dim, index, alpha):
    return _index_reduce(x, src, dim, index, alpha, True)


@impl("index_copy", "cuda")
def _index_copy_cuda(x, src, dim, index):
    return _index_reduce(x, src, dim, index, 1, False)


@impl("index_fill", "cuda")
def _index_fill_cuda(x, v, dim, index, value):
    out = _fresh(x).reshape(_nd(x.shape))
    view = _AdvView(out, (dim,), (index,))
    view.scatter(_values(v if v is not None else value, view.shape, x.dtype), False)
    return out.reshape(x.shape)


# -- gather / scatter along a dim -------------------------------------------------------------------------------
def _gather(x: CudaArray, dim: int, index: CudaArray, out_shape: tuple) -> CudaArray:
    """out[k] = x[coords of k with index[k] at ``dim``] for an ``index`` of ``out_shape``."""
    out = empty(out_shape, x.dtype)
    n = out.size
    if n:
        buf, base, est = span(x)
        blocks, threads = grid(n)
        _K_GATHER_DIM(blocks, threads, buf, base, _tuple(est), flat(index), _tuple(_nd(out_shape)), dim, flat(out),
                      n)
    return out


@impl("gather", "cuda")
def _gather_cuda(x, dim, index):
    xs = x.reshape(_nd(x.shape)) if x.ndim == 0 else x
    idx = device(index, I64)
    return _gather(xs, dim, idx.reshape(_nd(idx.shape)), _nd(idx.shape)).reshape(idx.shape)


def _scatter_run(x, src, dim, index, mode, value=None, include_self=True, mean=False):
    shape = _nd(x.shape)
    if mode == ASSIGN:
        work = x.dtype
    else:
        work = work_dtype(x.dtype, accumulate=True)
        if mode == ADD and work.kind in "iu" and work.itemsize < 4:
            work = I64
    out = _fresh(x, work).reshape(shape)
    idx = device(index, I64)
    ishape = _nd(idx.shape)
    n = idx.size
    if src is None:
        src = empty((1,), work)
        src.fill(value)
        sbuf, s0, sst = src, 0, (0,) * len(shape)
    else:
        s = src.reshape(_nd(src.shape)) if src.ndim == 0 else src
        if s.dtype != work:
            s = cast(s, work)
        sbuf, s0, sst = span(s)
    dstr = tuple(st // out.itemsize for st in out.strides)
    oflat = flat(out)
    if n and (mode in (ASSIGN, ADD) and include_self and not mean):
        blocks, threads = grid(n)
        kern = _K_SCATTER_DIM_ADD if mode == ADD else _K_SCATTER_DIM_ASSIGN
        kern(blocks, threads, oflat, _tuple(dstr), flat(idx), _tuple(ishape), dim, sbuf, s0, _tuple(sst), n)
    elif n or mean:
        counts = zeros((out.size,), I64)
        ncols = n // ishape[dim] if ishape[dim] else 0
        if ncols:
            blocks, threads = grid(ncols)
            _K_SCATTER_COLUMNS(blocks, threads, oflat, _tuple(dstr), flat(idx), _tuple(ishape), dim, sbuf, s0,
                               _tuple(sst), ncols, mode, counts, not include_self)
        if mean and out.size:
            blocks, threads = grid(out.size)
            _K_MEAN_FINISH(blocks, threads, oflat, counts, out.size, include_self, out.dtype.kind in "iub")
    return finish(out, x.dtype).reshape(x.shape)


_MODES = {"sum": ADD, "prod": MULTIPLY, "mean": ADD, "amax": AMAX, "amin": AMIN}


@impl("scatter", "cuda")
def _scatter_cuda(x, src, dim, index, value):
    return _scatter_run(x, src, dim, index, ASSIGN, value)


@impl("scatter_add", "cuda")
def _scatter_add_cuda(x, src, dim, index):
    return _scatter_run(x, src, dim, index, ADD)


@impl("scatter_reduce", "cuda")
def _scatter_reduce_cuda(x, src, dim, index, reduce, include_self):
    return _scatter_run(x, src, dim, index, _MODES[reduce], None, include_self, mean=reduce == "mean")


@impl("gather_along_dim", "cuda")
def _gather_along_cuda(x, idx, dim):
    # np.take_along_axis: every dim but ``dim`` broadcasts between x and idx
    xs, js = list(x.shape), list(idx.shape)
    xs[dim] = js[dim] = 1
    common = list(np.broadcast_shapes(tuple(xs), tuple(js)))
    xshape = common.copy()
    xshape[dim] = x.shape[dim]
    out_shape = common.copy()
    out_shape[dim] = idx.shape[dim]
    xv = broadcast_to(x, tuple(xshape)) if tuple(xshape) != x.shape else x
    iv = device(idx, I64)
    if tuple(out_shape) != iv.shape:
        iv = contiguous(broadcast_to(iv, tuple(out_shape)))
    return _gather(xv, dim, iv, tuple(out_shape))


@impl("scatter_add_along_dim", "cuda")
def _scatter_add_along_cuda(src, idx, dim, shape):
    work = src.dtype if src.dtype in (np.float32, np.float64) else (
        np.dtype(np.float32) if src.dtype == np.float16 else I64)
    out = zeros(tuple(shape), work)
    return finish(_scatter_run(out, cast(src, work), dim, idx, ADD), src.dtype)


# -- nonzero ------------------------------------------------------------------------------------------------------
def nonzero(x: CudaArray) -> CudaArray:
    """(count, ndim) int64 coordinates of the nonzero elements, in C order (a host sync for the count)."""
    shape = tuple(x.shape)
    xs = flat(contiguous(x)) if x.ndim else contiguous(x).reshape(1)
    n = xs.size
    if n == 0:
        return empty((0, len(shape)), I64)
    nblocks = min((n + _TPB - 1) // _TPB, 1 if driver.simulated() else 1024)
    chunk = (n + nblocks - 1) // nblocks
    counts = empty((nblocks,), I64)
    _K_NZ_COUNT(nblocks, _TPB, xs, n, chunk, counts)
    c = counts.to_host()
    total = int(c.sum())
    out = empty((total, len(shape)), I64)
    if total and shape:
        offsets = from_host(np.concatenate([[0], np.cumsum(c)[:-1]]).astype(I64))
        _K_NZ_WRITE(nblocks, _TPB, xs, n, chunk, offsets, _tuple(shape), flat(out))
    return out


impl("nonzero", "cuda")(nonzero)


# -- diagonal_scatter ---------------------------------------------------------------------------------------------
@impl("diagonal_scatter", "cuda")
def _diagonal_scatter_cuda(x, src, offset, dim1, dim2):
    out = _fresh(x)
    diag = out._from_ghost(np.diagonal(out._ghost(), offset, dim1, dim2), writeable=True)
    if diag.size:
        copy_into(diag, src)
    return out
