"""Reductions on CUDA arrays: one strided kernel per layout class, deterministic, no atomics.

The input is never copied (unless it has negative strides): its dims are split
into kept and reduced groups, each coalesced (see ``elementwise.coalesce``),
and the kernel indexes the original storage with element strides.

- reduction over the contiguous dims (``x.sum(-1)``, a whole contiguous tensor):
  ``rows``: one block per output, its threads stride over the reduced index
  (coalesced reads) and combine through a shared-memory tree; when there are
  too few outputs to fill the GPU, each output's range is split across ``S``
  blocks that write partials, and a second launch reduces the partials;
- reduction over outer dims (``x.sum(0)`` of a row-major matrix): ``cols``:
  one thread per output column, adjacent threads reading adjacent elements;
  few long columns are split across threads the same way, with partials.

Accumulators follow the CPU kernels (``ops/reductions.py``), so CUDA and CPU
results agree: sums and products of floats accumulate in float64 and of
integers/bools in int64; float16 and bfloat16 are read as float32; max/min
propagate NaN.
"""
from __future__ import annotations

import math

import numpy as np

from ..codegen_common import dtype_name, is_bf16
from . import array, codegen, dispatch_cache, driver, launch
from .array import CudaArray
from .elementwise import coalesce

_F16 = np.dtype(np.float16)
_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_I32 = np.dtype(np.int32)
_I64 = np.dtype(np.int64)
_BOOL = np.dtype(bool)

_NAN_MAX = "{v} if ({v} > {acc} or {v} != {v}) and {acc} == {acc} else {acc}"
_NAN_MIN = "{v} if ({v} < {acc} or {v} != {v}) and {acc} == {acc} else {acc}"


class Spec:
    """How one reduction accumulates.

    ``init``/``combine``/``pre``/``finalize`` are source templates (``{acc}``,
    ``{v}``, ``{x}``); each element is loaded as ``load_dt``, mapped by ``pre``
    to the accumulator type ``acc_dt`` and merged with ``combine``;
    ``finalize`` maps the accumulator to a ``fin_dt`` value that is stored.
    """

    __slots__ = ("acc_dt", "combine", "fin_dt", "finalize", "init", "kind", "load_dt", "pre")

    def __init__(self, kind, init, combine, pre, finalize, load_dt, acc_dt, fin_dt=None):
        self.kind = kind
        self.init, self.combine, self.pre, self.finalize = init, combine, pre, finalize
        self.load_dt, self.acc_dt = np.dtype(load_dt), np.dtype(acc_dt)
        self.fin_dt = np.dtype(fin_dt) if fin_dt is not None else self.acc_dt

    def key(self) -> tuple:
        return (self.kind, self.init, self.combine, self.pre, self.finalize, self.load_dt, self.acc_dt, self.fin_dt)

    def second_pass(self) -> Spec:
        """The spec that reduces this spec's per-split partials (already accumulated values)."""
        return Spec(self.kind + "_partials", self.init, self.combine, "{x}", self.finalize, self.acc_dt,
                    self.acc_dt, self.fin_dt)

    def source_tuple(self) -> tuple:
        return (self.init, self.combine, self.pre, self.finalize)


def _int_init(v: int) -> str:
    # the int64 minimum cannot be written as one literal (its magnitude overflows int64)
    return f"({v + 1} - 1)" if v == np.iinfo(np.int64).min else str(v)


def spec_for(kind: str, in_dt) -> Spec:
    """The accumulation rule of reduction ``kind`` for input dtype ``in_dt``."""
    in_dt = np.dtype(in_dt)
    half = in_dt == _F16 or is_bf16(in_dt)
    is_float = half or in_dt.kind == "f"
    wide = _F32 if half else in_dt  # what an element is read as
    if kind in ("sum", "prod"):
        acc = _F64 if is_float else _I64
        op = "+" if kind == "sum" else "*"
        return Spec(kind, "0" if kind == "sum" else "1", f"{{acc}} {op} {{v}}", "{x}", "{acc}", acc, acc)
    if kind in ("amax", "amin"):
        if is_float:
            acc = _F64 if in_dt == _F64 else _F32
            init = "-math.inf" if kind == "amax" else "math.inf"
            return Spec(kind, init, _NAN_MAX if kind == "amax" else _NAN_MIN, "{x}", "{acc}", acc, acc)
        if in_dt == _BOOL:
            lo, hi = 0, 1
        else:
            info = np.iinfo(in_dt)
            lo, hi = int(info.min), int(info.max)
        # int64 accumulators for every integer type: warp shuffles move 32/64-bit values only
        init = _int_init(lo if kind == "amax" else hi)
        comb = "{v} if {v} > {acc} else {acc}" if kind == "amax" else "{v} if {v} < {acc} else {acc}"
        return Spec(kind, init, comb, "{x}", "{acc}", _I64, _I64)
    if kind in ("all", "any"):
        comb = "{acc} & {v}" if kind == "all" else "{acc} | {v}"
        return Spec(kind, "1" if kind == "all" else "0", comb, "np.int32({x} != 0)", "({acc} != 0)", wide, _I32,
                    _BOOL)
    if kind == "norm2":
        return Spec(kind, "0", "{acc} + {v}", "({x} * {x})", "math.sqrt({acc})", _F64, _F64)
    raise ValueError(f"unknown reduction {kind}")


def out_shape(shape, dims, keepdim) -> tuple:
    if keepdim:
        return tuple(1 if d in dims else s for d, s in enumerate(shape))
    return tuple(s for d, s in enumerate(shape) if d not in dims)


# -- launch geometry ------------------------------------------------------------------------------

def _threads() -> int:
    return 8 if driver.simulated() else 256


def _warp_shuffle() -> bool:
    return not driver.simulated()  # the simulator has no shfl_down_sync


def _target_blocks() -> int:
    """Blocks that fill the device a few times over (simulator: 2, to exercise the split path)."""
    if driver.simulated():
        return 2
    return 4 * launch._max_blocks() // 32  # 4 blocks per SM


def _max_grid() -> int:
    return 4 if driver.simulated() else launch._max_blocks()


def _splits(m: int, k: int, threads: int) -> int:
    """How many blocks share one output's reduced range."""
    target = _target_blocks()
    if m >= target or k <= threads * 2:
        return 1
    return max(1, min(-(-target // m), -(-k // (threads * 8)) if not driver.simulated() else -(-k // (threads * 2))))


_COLS_MIN_OUTPUTS = 2048  # on a GPU: below this a thread per output leaves most of the device idle


# -- running ---------------------------------------------------------------------------------------

def _kernel(spec: Spec, in_dt, out_dt, nkept: int, nred: int, strategy: str, final: bool):
    threads = _threads()
    shuffle = _warp_shuffle() and strategy == "rows"
    key = ("red", spec.key(), np.dtype(in_dt), np.dtype(out_dt), nkept, nred, strategy, final, threads, shuffle)

    def build():
        name = (f"cuda_reduce_{spec.kind}_{dtype_name(in_dt)}_{spec.acc_dt}_{dtype_name(out_dt)}_"
                f"{strategy}{'' if final else '_partial'}_k{nkept}r{nred}")
        src = codegen.render_reduce(name, in_dt, spec.acc_dt, out_dt, spec.source_tuple(), nkept, nred, strategy,
                                    threads, final, shuffle, load_dt=spec.load_dt, fin_dt=spec.fin_dt)
        return src, name, codegen.reduce_params(in_dt, out_dt, nkept, nred, strategy)

    return dispatch_cache.get(key, build), threads


def reduce(kind: str, x: CudaArray, dims, keepdim: bool, out_dtype, spec: Spec | None = None) -> CudaArray:
    """Reduce ``x`` over ``dims`` (sorted, distinct) with reduction ``kind``; a fresh CudaArray."""
    out_dtype = np.dtype(out_dtype)
    dims = tuple(dims)
    shape = x.shape
    k = 1
    for d in dims:
        k *= shape[d]
    if k == 0 and kind in ("amax", "amin"):
        raise IndexError(f"{kind}(): Expected reduction dim {dims[0] if dims else 0} to have non-zero size.")
    out = array.empty(out_shape(shape, dims, keepdim), out_dtype)
    m = out.size
    if m == 0:
        return out
    if any(s < 0 for s in x.strides):
        x = x.copy()
    spec = spec or spec_for(kind, x.dtype)
    isz = x.dtype.itemsize
    st = [s // isz for s in x.strides]
    keep = [d for d in range(x.ndim) if d not in dims]
    ksh, (kst,) = coalesce([shape[d] for d in keep], [[st[d] for d in keep]])
    rsh, (rst,) = coalesce([shape[d] for d in dims], [[st[d] for d in dims]])
    run(spec, x, ksh, kst, rsh, rst, out)
    return out


def run(spec: Spec, x: CudaArray, ksh, kst, rsh, rst, out: CudaArray) -> None:
    """Reduce strided ``x`` (kept dims ``ksh``/``kst``, reduced ``rsh``/``rst``, element strides) into ``out``."""
    m = math.prod(ksh)
    k = math.prod(rsh)
    unit_red = min(map(abs, rst), default=None)
    unit_kept = min(map(abs, kst), default=None)
    rows = bool(rsh) and k > 1 and (unit_kept is None or unit_red <= unit_kept or
                                    (len(rsh) > 1 and not driver.simulated() and m < _COLS_MIN_OUTPUTS))
    threads = _threads()
    if rows:
        s = _splits(m, k, threads)
        final_out = out if s == 1 else array.empty((m * s,), spec.acc_dt)
        _launch("rows", spec, x, ksh, kst, rsh, rst, final_out, m, k, s, s == 1)
        if s > 1:  # partials: an (m, s) row-major matrix reduced along its rows
            pk, (pst,) = coalesce((m,), [(s,)])
            _launch("rows", spec.second_pass(), final_out, pk, pst, (s,), (1,), out, m, s, 1, True)
        return
    s = _col_splits(m, k) if len(rsh) == 1 else 1
    final_out = out if s == 1 else array.empty((m * s,), spec.acc_dt)
    _launch("cols", spec, x, ksh, kst, rsh, rst, final_out, m, k, s, s == 1)
    if s > 1:  # partials: an (s, m) row-major matrix reduced along its columns
        pk, (pst,) = coalesce((m,), [(1,)])
        _launch("cols", spec.second_pass(), final_out, pk, pst, (s,), (m,), out, m, s, 1, True)


def _col_splits(m: int, k: int) -> int:
    """How many threads share one output's reduced range in the ``cols`` strategy."""
    target = 32 if driver.simulated() else _target_blocks() * 256  # threads that fill the device
    per_thread = 8 if driver.simulated() else 64  # at least this many elements per thread
    if m >= target or k < 2 * per_thread:
        return 1
    return max(1, min(-(-target // m), k // per_thread))


def _launch(strategy, spec, x, ksh, kst, rsh, rst, out, m, k, s, final):
    launcher, threads = _kernel(spec, x.dtype, out.dtype, len(ksh), len(rsh), strategy, final)
    chunk = -(-k // s) if s else 0
    if strategy == "rows":
        blocks = min(m * s, _max_grid())
    else:
        blocks, threads = launch.config(m * s)
    launcher(blocks, threads, m * s if strategy == "rows" else m, k, s, chunk, *ksh, *rsh, x, *kst, *rst, out)
