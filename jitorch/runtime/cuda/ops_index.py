"""CUDA kernels of the indexing primitives: advanced indexing, gather/scatter, index_* and nonzero.

Advanced indexing (``index``, ``index_backward``, ``index_put``, ``index_select``,
``index_add/copy/fill``) shares one geometry: the indexed view of an array is
``(pre dims, B index positions, post dims)``, where the integer arrays on
``dims`` reduce to one element offset per position (``adv[b] = sum_k
idx_k[b] * stride[dims[k]]``, computed on the host when the indices are host
arrays, as the front end's attributes are).  A gather reads and a scatter
writes ``base + pre_offset + adv[b] + post_offset`` straight through the
view's strides, so no operand is ever copied to a contiguous layout.

Index values on the device are checked on the device (``device_checks``):
the pass that turns them into offsets wraps negatives where the op allows
them, and marks an out-of-range index with the offset ``BAD`` after reporting
it; gathers write 0 and scatters skip such positions, and the host raises
the error at its next synchronization.  ``gather``/``scatter`` along a dim
check each index as they read it.  Host index arrays were checked by the
front end.

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
from . import device_checks, driver
from .array import CudaArray, empty
from .copy import broadcast_to, copy_into, from_host
from .device_checks import report
from .typed_kernels import (
    AMAX,
    AMIN,
    cast,
    combine,
    contiguous,
    device,
    finish,
    flat,
    kernels,
    span,
    work_dtype,
    zeros,
)
from .typed_kernels import PROD as MULTIPLY
from .typed_kernels import SUM as ADD

I64 = np.dtype(np.int64)
ASSIGN = 0  # the scatter modes: a plain write, or one of typed_kernels' reductions
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


BAD = -(1 << 63)  # the offset of an out-of-range index: no valid index produces it


@cuda.jit(device=True, inline=True)
def _adv_offset(t, base, a, pre_shape, pre_str, post_shape, post_str, nb, npost):
    """Element offset of flat position ``t`` of an indexed view (pre dims, ``nb`` index positions, post dims),
    ``a`` being the index offset of its position."""
    return base + _unravel_offset(t // npost // nb, pre_shape, pre_str) + a + \
        _unravel_offset(t % npost, post_shape, post_str)


def _adv_gather(src, s0, adv, pre_shape, pre_str, post_shape, post_str, out, nb, npost, n):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < n:
        a = adv[(t // npost) % nb]
        if a == BAD:
            out[t] = 0
        else:
            out[t] = src[_adv_offset(t, s0, a, pre_shape, pre_str, post_shape, post_str, nb, npost)]
        t += step


# plain writes and atomic adds are separate kernels: bool and half arrays have no atomics to compile
def _adv_assign(dst, d0, adv, pre_shape, pre_str, post_shape, post_str, src, nb, npost, n):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < n:
        a = adv[(t // npost) % nb]
        if a != BAD:
            dst[_adv_offset(t, d0, a, pre_shape, pre_str, post_shape, post_str, nb, npost)] = src[t]
        t += step


def _adv_add(dst, d0, adv, pre_shape, pre_str, post_shape, post_str, src, nb, npost, n, alpha):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < n:
        a = adv[(t // npost) % nb]
        if a != BAD:
            cuda.atomic.add(dst, _adv_offset(t, d0, a, pre_shape, pre_str, post_shape, post_str, nb, npost),
                            src[t] * alpha)
        t += step


def _add_index(acc, idx, stride, size, allow_negative, first, claim, rec, report_code, n):
    """acc += idx * stride (``first``: acc = ...), checking each index against ``size`` on the way:
    negatives count from the end where allowed; an out-of-range index is reported and its offset is BAD."""
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < n:
        v = idx[t]
        w = v + size if allow_negative and v < 0 else v
        if w < 0 or w >= size:
            report(claim, rec, v, size, report_code)
            acc[t] = BAD
        elif first:
            acc[t] = w * stride
        else:
            a = acc[t]
            if a != BAD:
                acc[t] = a + w * stride
        t += step


def _wrap_negative(idx, size, out, n):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < n:
        v = idx[t]
        out[t] = v + size if -size <= v < 0 else v
        t += step


_K_ADV_GATHER, _K_ADV_ASSIGN, _K_ADV_ADD, _K_ADD_INDEX, _K_WRAP_NEGATIVE = kernels(
    _adv_gather, _adv_assign, _adv_add, _add_index, _wrap_negative)


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


@cuda.jit(device=True, inline=True)
def _suffix(shape, dim):
    p = 1
    for d in range(dim + 1, len(shape)):
        p *= shape[d]
    return p


def _gather_dim(src, s0, sstr, index, ishape, dim, bound, out, claim, rec, report_code, n):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < n:
        j = index[t]
        if j < 0 or j >= bound:
            report(claim, rec, j, bound, report_code)
            out[t] = 0
        else:
            off, _unused = _dim_offsets(t, ishape, dim, sstr, sstr)
            out[t] = src[s0 + off + j * sstr[dim]]
        t += step


@cuda.jit(device=True, inline=True)
def _scatter_dim_offsets(t, j, dstr, ishape, dim, s0, sstr):
    """(destination, source) offsets of index element ``t`` holding ``j``: its coordinates with ``j``
    (destination) or its own position (source) at ``dim``."""
    do, so = _dim_offsets(t, ishape, dim, dstr, sstr)
    p = (t // _suffix(ishape, dim)) % ishape[dim]
    return do + j * dstr[dim], s0 + so + p * sstr[dim]


def _scatter_dim_assign(dst, dstr, index, ishape, dim, bound, src, s0, sstr, claim, rec, report_code, n):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < n:
        j = index[t]
        if j < 0 or j >= bound:
            report(claim, rec, j, bound, report_code)
        else:
            d, s = _scatter_dim_offsets(t, j, dstr, ishape, dim, s0, sstr)
            dst[d] = src[s]
        t += step


def _scatter_dim_add(dst, dstr, index, ishape, dim, bound, src, s0, sstr, claim, rec, report_code, n):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < n:
        j = index[t]
        if j < 0 or j >= bound:
            report(claim, rec, j, bound, report_code)
        else:
            d, s = _scatter_dim_offsets(t, j, dstr, ishape, dim, s0, sstr)
            cuda.atomic.add(dst, d, src[s])
        t += step


@cuda.jit(device=True, inline=True)
def _combine(cur, v, mode):
    if mode == ASSIGN:
        return v
    return combine(cur, v, mode)


def _scatter_columns(dst, dstr, index, ishape, dim, bound, src, s0, sstr, ncols, mode, counts, init_first, claim,
                     rec, report_code):
    """One thread per index column (all coordinates but ``dim``), walking it in order."""
    q = cuda.grid(1)
    step = cuda.gridsize(1)
    inner = _suffix(ishape, dim)
    m = ishape[dim]
    while q < ncols:
        base = (q // inner) * m * inner + q % inner  # flat index of the column's first element
        do, so = _dim_offsets(base, ishape, dim, dstr, sstr)
        for j in range(m):
            i = index[base + j * inner]
            if i < 0 or i >= bound:
                report(claim, rec, i, bound, report_code)
                continue
            off = do + i * dstr[dim]
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


(_K_GATHER_DIM, _K_SCATTER_DIM_ASSIGN, _K_SCATTER_DIM_ADD, _K_SCATTER_COLUMNS, _K_MEAN_FINISH) = kernels(
    _gather_dim, _scatter_dim_assign, _scatter_dim_add, _scatter_columns, _mean_finish)
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


_K_NZ_COUNT, _K_NZ_WRITE = kernels(_nz_count, _nz_write)


# -- advanced-index geometry -----------------------------------------------------------------------------------
def _tuple(xs) -> tuple:
    """Shape/stride tuples for kernels are never empty (a size-1 dim of stride 0 stands in)."""
    xs = tuple(int(v) for v in xs)
    return xs if xs else (1,)


def _adjacent(dims: tuple) -> bool:
    return dims == tuple(range(dims[0], dims[0] + len(dims)))


def _offsets(idx, dims: tuple, sizes: list, strides: list, bshape: tuple, op: str, allow_negative: bool) -> CudaArray:
    """Device int64 offsets ``sum_k idx_k * strides[k]`` over the broadcast index shape.

    Host index arrays were checked by the front end; their negatives count from the end here (a gradient
    formula may pass them unwrapped, and NumPy's CPU kernels wrap them; an offset before the view would read
    or write outside it).  Device ones are checked here, on the device, against ``sizes`` (see the module
    doc): an out-of-range one is reported as ``op``'s and its offset is ``BAD``."""
    if all(not isinstance(a, CudaArray) for a in idx):
        arrs = np.broadcast_arrays(*[np.asarray(a, dtype=I64) for a in idx]) if idx else [np.zeros((), I64)]
        adv = np.zeros(bshape, dtype=I64)
        for a, s, size in zip(arrs, strides, sizes):
            adv += np.where(a < 0, a + size, a) * s
        return from_host(adv.reshape(-1))
    n = math.prod(bshape)
    acc = empty((n,), I64)
    claim, rec = device_checks.buffers()
    sid = device_checks.site(op)
    for k, (a, s) in enumerate(zip(idx, strides)):
        a = device(a, I64)
        a = contiguous(broadcast_to(a, bshape) if a.shape != tuple(bshape) else a).reshape(n)
        _K_ADD_INDEX.over(n, acc, a, int(s), int(sizes[k]), allow_negative, k == 0, claim, rec,
                          device_checks.code(sid, dims[k]), n)
    return acc


def wrap_negative(idx: CudaArray, size: int) -> CudaArray:
    """A copy of device index array ``idx`` with the entries in ``[-size, 0)`` counted from the end; other
    values are kept, so the kernel that reads them still reports the out-of-range ones.  No host sync."""
    src = contiguous(idx, I64)
    out = empty(src.shape, I64)
    _K_WRAP_NEGATIVE.over(src.size, flat(src), int(size), flat(out), src.size)
    return out


class _AdvView:
    """``view[...idx on dims...]`` as (pre dims, B positions, post dims) over ``view``'s storage.

    ``op`` names the op in a device-side index error; ``allow_negative``: whether negative device indices count
    from the end (``x[idx]``, ``index_put``, ``index_fill``) or are out of range (``index_select``, ...)."""

    def __init__(self, view: CudaArray, dims: tuple, idx: tuple, op: str = "index_put", allow_negative: bool = True):
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
        self.adv = _offsets(idx, dims, [view.shape[d] for d in dims], [est[d] for d in dims], bshape, op,
                            allow_negative) if dims else from_host(np.zeros(1, I64))

    def _run(self, kernel, other: CudaArray, *extra) -> None:
        """``kernel`` over the view's elements, ``other`` the contiguous array they are read into or from."""
        kernel.over(self.size, self.buf, self.base, self.adv, self.pre_shape, self.pre_str, self.post_shape,
                    self.post_str, flat(other), self.nb, max(self.npost, 1), self.size, *extra)

    def gather(self, out: CudaArray) -> None:
        self._run(_K_ADV_GATHER, out)

    def scatter(self, src: CudaArray, accumulate: bool, alpha=1) -> None:
        if accumulate:
            self._run(_K_ADV_ADD, src, alpha)
        else:
            self._run(_K_ADV_ASSIGN, src)


def _accumulator(dt: np.dtype, mode: int) -> np.dtype:
    """The dtype a scatter of ``mode`` works in: half and bool reductions widen (``work_dtype``), and atomic
    adds come in 32 and 64 bits, so narrow ints add in int64 and wrap back on the cast."""
    if mode == ASSIGN:
        return np.dtype(dt)
    work = work_dtype(dt, accumulate=True)
    return I64 if mode == ADD and work.kind in "iu" and work.itemsize < 4 else work


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
def gather_rows(x: CudaArray, dims: tuple, idx: tuple, op: str = "index", allow_negative: bool = True) -> CudaArray:
    """``x[...idx on dims...]`` as a new array (device indices checked on the device as ``op``'s)."""
    g = _AdvView(x, tuple(dims), tuple(idx), op, allow_negative)
    out = empty(g.shape, x.dtype)
    g.gather(out)
    return out


@impl("index", "cuda")
def _index_cuda(x, dims, idx):
    return gather_rows(x, dims, idx)


@impl("index_select", "cuda")
def _index_select_cuda(x, dims, idx):
    return gather_rows(x, dims, idx, "index_select", False)


@impl("index_backward", "cuda")
def _index_backward_cuda(g, shape, dims, idx):
    work = _accumulator(g.dtype, ADD)
    out = zeros(shape, work)
    view = _AdvView(out, tuple(dims), tuple(idx), "index")
    view.scatter(contiguous(g, work), True)
    return finish(out, g.dtype)


@impl("index_put", "cuda")
def _index_put_cuda(x, v, plan, value, accumulate):
    work = _accumulator(x.dtype, ADD if accumulate else ASSIGN)
    out = _fresh(x, work)
    region = plan.region(out)
    view = _AdvView(region, tuple(plan.dims), tuple(plan.idx))
    view.scatter(_values(v if v is not None else value, view.shape, work), accumulate)
    return finish(out, x.dtype)


# -- index_add / index_copy / index_fill -------------------------------------------------------------------------
def _nd(shape) -> tuple:
    return tuple(shape) if len(shape) else (1,)


def _index_reduce(x, src, dim, index, alpha, accumulate):
    work = _accumulator(x.dtype, ADD if accumulate else ASSIGN)
    out = _fresh(x, work).reshape(_nd(x.shape))
    view = _AdvView(out, (dim,), (index,), "index_add" if accumulate else "index_copy", False)
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
    view = _AdvView(out, (dim,), (index,), "index_fill")
    view.scatter(_values(v if v is not None else value, view.shape, x.dtype), False)
    return out.reshape(x.shape)


# -- gather / scatter along a dim -------------------------------------------------------------------------------
def _gather(x: CudaArray, dim: int, index: CudaArray, out_shape: tuple, op: str = "gather") -> CudaArray:
    """out[k] = x[coords of k with index[k] at ``dim``] for an ``index`` of ``out_shape``."""
    out = empty(out_shape, x.dtype)
    buf, base, est = span(x)
    claim, rec = device_checks.buffers()
    _K_GATHER_DIM.over(out.size, buf, base, _tuple(est), flat(index), _tuple(_nd(out_shape)), dim, int(x.shape[dim]),
                       flat(out), claim, rec, device_checks.code(device_checks.site(op), dim), out.size)
    return out


@impl("gather", "cuda")
def _gather_cuda(x, dim, index):
    xs = x.reshape(_nd(x.shape)) if x.ndim == 0 else x
    idx = device(index, I64)
    return _gather(xs, dim, idx.reshape(_nd(idx.shape)), _nd(idx.shape)).reshape(idx.shape)


def _scatter_run(x, src, dim, index, mode, value=None, include_self=True, mean=False, op="scatter"):
    shape = _nd(x.shape)
    work = _accumulator(x.dtype, mode)
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
    bound = int(shape[dim])
    claim, rec = device_checks.buffers()
    report_code = device_checks.code(device_checks.site(op), dim)
    if n and (mode in (ASSIGN, ADD) and include_self and not mean):
        kern = _K_SCATTER_DIM_ADD if mode == ADD else _K_SCATTER_DIM_ASSIGN
        kern.over(n, oflat, _tuple(dstr), flat(idx), _tuple(ishape), dim, bound, sbuf, s0, _tuple(sst), claim, rec,
                  report_code, n)
    elif n or mean:
        counts = zeros((out.size,), I64)
        ncols = n // ishape[dim] if ishape[dim] else 0
        _K_SCATTER_COLUMNS.over(ncols, oflat, _tuple(dstr), flat(idx), _tuple(ishape), dim, bound, sbuf, s0,
                                _tuple(sst), ncols, mode, counts, not include_self, claim, rec, report_code)
        if mean:
            _K_MEAN_FINISH.over(out.size, oflat, counts, out.size, include_self, out.dtype.kind in "iub")
    return finish(out, x.dtype).reshape(x.shape)


_MODES = {"sum": ADD, "prod": MULTIPLY, "mean": ADD, "amax": AMAX, "amin": AMIN}


@impl("scatter", "cuda")
def _scatter_cuda(x, src, dim, index, value):
    return _scatter_run(x, src, dim, index, ASSIGN, value)


@impl("scatter_add", "cuda")
def _scatter_add_cuda(x, src, dim, index):
    return _scatter_run(x, src, dim, index, ADD, op="scatter_add")


@impl("scatter_reduce", "cuda")
def _scatter_reduce_cuda(x, src, dim, index, reduce, include_self):
    return _scatter_run(x, src, dim, index, _MODES[reduce], None, include_self, mean=reduce == "mean",
                        op="scatter_reduce")


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
    return _gather(xv, dim, iv, tuple(out_shape), "take_along_dim")


@impl("scatter_add_along_dim", "cuda")
def _scatter_add_along_cuda(src, idx, dim, shape):
    work = src.dtype if src.dtype in (np.float32, np.float64) else (
        np.dtype(np.float32) if src.dtype == np.float16 else I64)
    out = zeros(tuple(shape), work)
    return finish(_scatter_run(out, cast(src, work), dim, idx, ADD, op="scatter_add"), src.dtype)


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
