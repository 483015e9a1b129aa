"""cuBLAS, called through ctypes on the raw device pointers of CudaArrays.

cuBLAS is column-major and jitorch row-major.  A row-major ``C = A @ B``
(M x N) is, read column-major, ``C^T = B^T @ A^T`` (N x M): so the call passes
``B`` as cuBLAS's first operand and ``A`` as its second, with ``m = N`` and
``n = M``.  A row-major matrix with a unit column stride is a column-major
matrix of the transposed shape (``op = N``, leading dimension = its row
stride); one with a unit row stride (a transposed view) is already
column-major (``op = T``, leading dimension = its column stride).  Anything
else (both strides non-unit, negative, overlapping) must be copied first.
:func:`plan` does this mapping as a pure function of shapes and strides, so it
is tested on the host against NumPy without a GPU; :func:`run` only feeds a
plan to ``cublas<S|D>gemmStridedBatched`` / ``cublasGemmStridedBatchedEx``.

The library is found with ``cuda.pathfinder`` (nvidia-cublas wheels, conda,
CUDA_HOME), then ``ctypes.util.find_library`` and ``$CUDA_HOME/lib64``.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
from typing import NamedTuple

import numpy as np

OP_N, OP_T = 0, 1
_CUDA_R_32F, _CUDA_R_64F, _CUDA_R_16F, _CUDA_R_16BF = 0, 1, 2, 14
_COMPUTE_32F, _COMPUTE_32F_FAST_TF32 = 68, 77
_GEMM_DEFAULT = -1
_DEFAULT_MATH, _TF32_TENSOR_OP_MATH = 0, 3


class GemmCall(NamedTuple):
    """One ``gemmStridedBatched`` call in cuBLAS's terms (all offsets and strides in elements).

    cuBLAS's first operand is jitorch's ``b`` (at ``b_off``), its second is ``a``.
    """

    op_first: int
    op_second: int
    m: int
    n: int
    k: int
    ld_first: int
    ld_second: int
    ldc: int
    stride_first: int
    stride_second: int
    stride_c: int
    batch: int
    b_off: int
    a_off: int
    c_off: int


class Plan(NamedTuple):
    calls: tuple
    copy_a: bool  # the operand must be made contiguous first (then plan again)
    copy_b: bool


def _as_col_major(rows: int, cols: int, s_row: int, s_col: int):
    """(op, ld) that present a row-major ``rows x cols`` matrix with element strides
    (s_row, s_col) to cuBLAS as the column-major ``cols x rows`` matrix ``op(X)``;
    None when no op/ld pair describes the layout."""
    if cols == 1 or s_col == 1:  # rows are contiguous: column-major (cols x rows), ld = row stride
        ld = s_row if rows > 1 else cols
        if ld >= max(1, cols):
            return OP_N, ld
    if rows == 1 or s_row == 1:  # columns are contiguous: stored column-major (rows x cols), transposed
        ld = s_col if cols > 1 else rows
        if ld >= max(1, rows):
            return OP_T, ld
    return None


def collapse_batch(bshape: tuple, *stride_lists) -> tuple:
    """Merge adjacent batch dims that every operand steps through evenly; drop size-1 dims.

    Returns (shape, [strides per operand]) with at least one dim.
    """
    dims = [(n, [s[i] for s in stride_lists]) for i, n in enumerate(bshape) if n != 1]
    merged: list = []
    for n, st in dims:
        if merged:
            pn, pst = merged[-1]
            if all(ps == s * n for ps, s in zip(pst, st)):
                merged[-1] = (pn * n, st)
                continue
        merged.append((n, st))
    if not merged:
        merged = [(1, [0] * len(stride_lists))]
    shape = tuple(n for n, _ in merged)
    strides = [tuple(st[j] for _, st in merged) for j in range(len(stride_lists))]
    return shape, strides


def batch_strides(shape: tuple, strides: tuple, bshape: tuple) -> tuple:
    """Element strides of an operand's batch dims broadcast to ``bshape`` (0 where it is broadcast)."""
    nb = len(shape) - 2
    lead = len(bshape) - nb
    out = []
    for i in range(len(bshape)):
        j = i - lead
        out.append(0 if j < 0 or shape[j] == 1 else strides[j])
    return tuple(out)


def plan(a_shape, a_strides, b_shape, b_strides) -> Plan:
    """The cuBLAS calls computing the contiguous ``C = A @ B`` (element strides, batch dims broadcast).

    C's layout is (batch..., M, N) C-contiguous; offsets are relative to each operand's first element.
    """
    m, k = a_shape[-2:]
    n = b_shape[-1]
    bshape = tuple(np.broadcast_shapes(tuple(a_shape[:-2]), tuple(b_shape[:-2])))
    sa_m, sa_k = a_strides[-2:]
    sb_k, sb_n = b_strides[-2:]
    first = _as_col_major(k, n, sb_k, sb_n)   # B (K x N) as cuBLAS's op(first): N x K
    second = _as_col_major(m, k, sa_m, sa_k)  # A (M x K) as cuBLAS's op(second): K x M
    copy_a = second is None or min(a_strides) < 0
    copy_b = first is None or min(b_strides) < 0
    if copy_a or copy_b:
        return Plan((), copy_a, copy_b)
    c_strides = []
    acc = m * n
    for s in reversed(bshape):
        c_strides.append(acc)
        acc *= s
    c_strides = tuple(reversed(c_strides))
    shape, (sa, sb, sc) = collapse_batch(bshape, batch_strides(a_shape, a_strides, bshape),
                                         batch_strides(b_shape, b_strides, bshape), c_strides)
    calls = []
    outer = shape[:-1]
    for pos in np.ndindex(*outer) if outer else [()]:
        a_off = sum(p * s for p, s in zip(pos, sa))
        b_off = sum(p * s for p, s in zip(pos, sb))
        c_off = sum(p * s for p, s in zip(pos, sc))
        calls.append(GemmCall(first[0], second[0], n, m, k, first[1], second[1], max(1, n),
                              sb[-1], sa[-1], sc[-1] if shape[-1] > 1 else m * n, shape[-1], b_off, a_off, c_off))
    return Plan(tuple(calls), False, False)


def emulate(call: GemmCall, a_buf: np.ndarray, b_buf: np.ndarray, c_buf: np.ndarray) -> None:
    """What cuBLAS computes for ``call`` on flat NumPy buffers (the host test of :func:`plan`)."""
    for i in range(call.batch):
        def mat(buf, off, op, ld, rows, cols):
            # op(X) is rows x cols; X is stored column-major with leading dimension ld
            r, c = (rows, cols) if op == OP_N else (cols, rows)
            x = np.lib.stride_tricks.as_strided(buf[off:], (r, c), (buf.itemsize, ld * buf.itemsize))
            return x if op == OP_N else x.T
        first = mat(b_buf, call.b_off + i * call.stride_first, call.op_first, call.ld_first, call.m, call.k)
        second = mat(a_buf, call.a_off + i * call.stride_second, call.op_second, call.ld_second, call.k, call.n)
        res = first.astype(np.float64) @ second.astype(np.float64)
        cv = np.lib.stride_tricks.as_strided(c_buf[call.c_off + i * call.stride_c:], (call.m, call.n),
                                             (c_buf.itemsize, call.ldc * c_buf.itemsize))
        cv[...] = res


# -- the library -------------------------------------------------------------------------------------------
_state: dict = {}


def _candidates() -> list:
    paths = []
    try:
        from cuda import pathfinder
        paths.append(pathfinder.load_nvidia_dynamic_lib("cublas").abs_path)
    except Exception:  # noqa: BLE001, S110 - not installed, or no cuBLAS where it looks: try the others
        pass
    found = ctypes.util.find_library("cublas")
    if found:
        paths.append(found)
    for root in filter(None, (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda")):
        paths += sorted(glob.glob(os.path.join(root, "lib64", "libcublas.so*")), reverse=True)
    return paths


def library():
    """The loaded libcublas (ctypes.CDLL), or None."""
    if "lib" not in _state:
        lib = None
        for p in _candidates():
            try:
                lib = ctypes.CDLL(p)
                lib.cublasCreate_v2  # noqa: B018 - make sure it really is cuBLAS
                break
            except (OSError, AttributeError):
                lib = None
        _state["lib"] = lib
    return _state["lib"]


def available() -> bool:
    from . import driver
    return not driver.simulated() and library() is not None


class CublasError(RuntimeError):
    pass


def _check(status: int, what: str) -> None:
    if status != 0:
        raise CublasError(f"CUDA error: {what} failed with cuBLAS status {status}")


def _handle():
    h = _state.get("handle")
    if h is None:
        lib = library()
        h = ctypes.c_void_p()
        _check(lib.cublasCreate_v2(ctypes.byref(h)), "cublasCreate")
        _state["handle"] = h
        _state["stream"] = None
        _state["math"] = None
    return h


def _set_stream(h, stream_handle: int) -> None:
    if _state.get("stream") != stream_handle:
        _check(library().cublasSetStream_v2(h, ctypes.c_void_p(stream_handle)), "cublasSetStream")
        _state["stream"] = stream_handle


def _allow_tf32() -> bool:
    try:
        from ... import backends
        return bool(backends.cuda.matmul.allow_tf32)
    except Exception:  # noqa: BLE001
        return False


def run(p: Plan, a_ptr: int, b_ptr: int, c_ptr: int, dtype: np.dtype, stream_handle: int | None = None) -> None:
    """Issue the calls of plan ``p`` on the given stream (None: the current stream; 0: the default stream)."""
    lib = library()
    h = _handle()
    if stream_handle is None:
        from . import streams
        stream_handle = streams.current_handle()
    _set_stream(h, stream_handle)
    dtype = np.dtype(dtype)
    isz = dtype.itemsize
    tf32 = dtype == np.float32 and _allow_tf32()
    mode = _TF32_TENSOR_OP_MATH if tf32 else _DEFAULT_MATH
    if _state.get("math") != mode:
        _check(lib.cublasSetMathMode(h, ctypes.c_int(mode)), "cublasSetMathMode")
        _state["math"] = mode
    i32, i64, vp = ctypes.c_int, ctypes.c_longlong, ctypes.c_void_p
    for c in p.calls:
        A = vp(b_ptr + c.b_off * isz)
        B = vp(a_ptr + c.a_off * isz)
        C = vp(c_ptr + c.c_off * isz)
        dims = (i32(c.op_first), i32(c.op_second), i32(c.m), i32(c.n), i32(c.k))
        if dtype == np.float32 or dtype == np.float64:
            scal = ctypes.c_float if dtype == np.float32 else ctypes.c_double
            fn = lib.cublasSgemmStridedBatched if dtype == np.float32 else lib.cublasDgemmStridedBatched
            one, zero = scal(1.0), scal(0.0)
            st = fn(h, *dims, ctypes.byref(one), A, i32(c.ld_first), i64(c.stride_first), B, i32(c.ld_second),
                    i64(c.stride_second), ctypes.byref(zero), C, i32(c.ldc), i64(c.stride_c), i32(c.batch))
            _check(st, fn.__name__)
        elif dtype == np.float16 or dtype.names == ("bfloat16",):
            # half and bfloat16 operands, float32 accumulation (CUBLAS_COMPUTE_32F), one rounding of C
            dt = i32(_CUDA_R_16F if dtype == np.float16 else _CUDA_R_16BF)
            one, zero = ctypes.c_float(1.0), ctypes.c_float(0.0)
            st = lib.cublasGemmStridedBatchedEx(
                h, *dims, ctypes.byref(one), A, dt, i32(c.ld_first), i64(c.stride_first), B,
                dt, i32(c.ld_second), i64(c.stride_second), ctypes.byref(zero), C, dt,
                i32(c.ldc), i64(c.stride_c), i32(c.batch), i32(_COMPUTE_32F), i32(_GEMM_DEFAULT))
            _check(st, "cublasGemmStridedBatchedEx")
        else:
            raise TypeError(f"cuBLAS gemm does not take {dtype}")
