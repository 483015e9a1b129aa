"""Matrix products on the GPU: cuBLAS when it is there, else a tiled numba.cuda GEMM.

The numba kernel is the portable path (and the one the simulator runs).  Each
block computes a ``BM x BN`` tile of ``C``: per step of ``BK`` it stages an
``A`` tile and a ``B`` tile in shared memory (loaded along whichever of each
operand's two strides is 1, so transposed views are read coalesced without a
copy), then every thread accumulates a ``TM x TN`` register micro-tile from
them.  Its source is generated with the tile sizes and the micro-tile fully
unrolled into scalar locals (so the accumulators live in registers, not in
local memory), written to the kernel cache directory and disk-cached by
numba.  A thread's micro-tile is strided across the block tile (rows ``ty +
i*RY``, columns ``tx + j*RX``), which makes shared-memory reads conflict-free
and the stores of ``C`` coalesced.  Accumulation is in float32 for
float16/bfloat16/float32 and float64 for float64; bfloat16 operands are read as
uint16 bits and converted in the tile loads, and ``C`` is rounded once on store.

Batch dims broadcast (a stride of 0 for a broadcast operand) and are walked by
``blockIdx.z`` with a grid-stride loop.  ``JITORCH_CUDA_GEMM=numba|cublas``
forces one implementation.
"""
from __future__ import annotations

import math
import os

import numpy as np

from ..codegen_common import is_bf16
from . import cublas, driver
from .array import CudaArray, empty
from .typed_kernels import Kernel, contiguous, span

# (BM, BN, BK, TM, TN): 64x64 tiles of 256 threads with 4x4 micro-tiles on a GPU;
# tiny tiles under the simulator, which runs every CUDA thread as a Python thread
GPU_TILES = (64, 64, 16, 4, 4)
SIM_TILES = (8, 8, 4, 2, 2)
_MAX_GRID_Z = 65535
_U16 = np.dtype(np.uint16)


def gemm_source(bm: int, bn: int, bk: int, tm: int, tn: int, acc: str, bf16: bool = False) -> str:
    """The kernel's source for one tile configuration and accumulator type (float32/float64).

    With ``bf16`` the operands and ``C`` are bfloat16 bits (uint16 arrays).
    """
    assert bm % tm == 0 and bn % tn == 0
    ry, rx = bm // tm, bn // tn
    nt = rx * ry
    assert (bm * bk) % nt == 0 and (bn * bk) % nt == 0, "every thread loads the same number of tile elements"
    la, lb = bm * bk // nt, bn * bk // nt
    L = []
    w = L.append
    w("import math")
    w("from numba import cuda, float32, float64, int64")
    if bf16:
        from . import bf16 as bf16_helpers
        w(f"from jitorch.runtime.cuda.bf16 import bf16_to_f32, f32_to_bf16  # bf16 {bf16_helpers.source_version()}")
    w("")
    w("def gemm(A, a0, sa_b, sa_m, sa_k, B, b0, sb_b, sb_k, sb_n, C, M, N, K, bshape, nbatch):")
    w(f"    sA = cuda.shared.array(({bk}, {bm + 1}), {acc})")
    w(f"    sB = cuda.shared.array(({bk}, {bn + 1}), {acc})")
    w("    tid = int64(cuda.threadIdx.x)  # int64 throughout: mixing CUDA's unsigned indices with int64 gives floats")
    w(f"    tx = tid % {rx}")
    w(f"    ty = tid // {rx}")
    w(f"    m0 = int64(cuda.blockIdx.y) * {bm}")
    w(f"    n0 = int64(cuda.blockIdx.x) * {bn}")
    w(f"    zero = {acc}(0.0)")
    w("    z = int64(cuda.blockIdx.z)")
    w("    while z < nbatch:")
    w("        ao = a0")
    w("        bo = b0")
    w("        rem = z")
    w("        for d in range(len(bshape) - 1, -1, -1):")
    w("            c = rem % bshape[d]")
    w("            rem = rem // bshape[d]")
    w("            ao += c * sa_b[d]")
    w("            bo += c * sb_b[d]")
    for i in range(tm):
        for j in range(tn):
            w(f"        c{i}_{j} = zero")
    w("        for k0 in range(0, K, " + str(bk) + "):")
    # A tile: BM x BK, read along k when A's rows are contiguous, else along m
    w(f"            for t in range({la}):")
    w(f"                e = tid + t * {nt}")
    w("                if sa_k == 1:")
    w(f"                    kk = e % {bk}")
    w(f"                    mm = e // {bk}")
    w("                else:")
    w(f"                    mm = e % {bm}")
    w(f"                    kk = e // {bm}")
    w("                gm = m0 + mm")
    w("                gk = k0 + kk")
    w("                v = zero")
    w("                if gm < M and gk < K:")
    load = "bf16_to_f32({})" if bf16 else acc + "({})"
    w(f"                    v = {load.format('A[ao + gm * sa_m + gk * sa_k]')}")
    w("                sA[kk, mm] = v")
    w(f"            for t in range({lb}):")
    w(f"                e = tid + t * {nt}")
    w("                if sb_n == 1:")
    w(f"                    nn = e % {bn}")
    w(f"                    kk = e // {bn}")
    w("                else:")
    w(f"                    kk = e % {bk}")
    w(f"                    nn = e // {bk}")
    w("                gn = n0 + nn")
    w("                gk = k0 + kk")
    w("                v = zero")
    w("                if gn < N and gk < K:")
    w(f"                    v = {load.format('B[bo + gk * sb_k + gn * sb_n]')}")
    w("                sB[kk, nn] = v")
    w("            cuda.syncthreads()")
    w(f"            for kk in range({bk}):")
    for i in range(tm):
        w(f"                ra{i} = sA[kk, ty + {i * ry}]")
    for j in range(tn):
        w(f"                rb{j} = sB[kk, tx + {j * rx}]")
    for i in range(tm):
        for j in range(tn):
            w(f"                c{i}_{j} += ra{i} * rb{j}")
    w("            cuda.syncthreads()")
    w("        co = z * M * N")
    for i in range(tm):
        w(f"        gm = m0 + ty + {i * ry}")
        w("        if gm < M:")
        for j in range(tn):
            w(f"            gn = n0 + tx + {j * rx}")
            w("            if gn < N:")
            w(f"                C[co + gm * N + gn] = {f'f32_to_bf16(c{i}_{j})' if bf16 else f'c{i}_{j}'}")
    w("        z += int64(cuda.gridDim.z)")
    return "\n".join(L) + "\n"


_KERNELS: dict = {}


def gemm_kernel(tiles: tuple, acc: str, bf16: bool = False) -> Kernel:
    key = (tiles, acc, bf16)
    k = _KERNELS.get(key)
    if k is None:
        from ..kernel_cache import load_kernel
        k = _KERNELS[key] = Kernel(load_kernel(gemm_source(*tiles, acc, bf16), "gemm"),
                                   f"gemm_{'bfloat16' if bf16 else acc}")
    return k


def _tiles() -> tuple:
    return SIM_TILES if driver.simulated() else GPU_TILES


# -- the op ----------------------------------------------------------------------------------------------------
_TYPE_WORD = {"i": {1: "Char", 2: "Short", 4: "Int", 8: "Long"}, "u": {1: "Byte"}, "b": {1: "Bool"}}


def _check_dtype(dt: np.dtype) -> None:
    if dt.kind in "iub":
        raise RuntimeError(f"\"addmm_cuda\" not implemented for '{_TYPE_WORD[dt.kind][dt.itemsize]}'")
    if dt not in (np.float16, np.float32, np.float64) and not is_bf16(dt):
        raise TypeError(f"matmul: unsupported dtype {dt}")


def backend() -> str:
    """'cublas' or 'numba': JITORCH_CUDA_GEMM when set, else cuBLAS where it loads on a real GPU."""
    forced = os.environ.get("JITORCH_CUDA_GEMM", "").lower()
    if forced == "numba":
        return "numba"
    if forced == "cublas":
        if not cublas.available():
            raise RuntimeError("JITORCH_CUDA_GEMM=cublas but libcublas could not be loaded"
                               + (" (the CUDA simulator has no cuBLAS)" if driver.simulated() else ""))
        return "cublas"
    return "cublas" if cublas.available() else "numba"


def _elem_strides(a: CudaArray) -> tuple:
    return tuple(s // a.itemsize for s in a.strides)


def matmul(a: CudaArray, b: CudaArray, impl: str | None = None) -> CudaArray:
    """``a @ b`` for operands of rank >= 2 with broadcast batch dims (the ``matmul`` primitive)."""
    _check_dtype(a.dtype)
    if b.dtype != a.dtype:
        raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: {a.dtype} != {b.dtype}")
    m, k = a.shape[-2:]
    n = b.shape[-1]
    bshape = tuple(np.broadcast_shapes(tuple(a.shape[:-2]), tuple(b.shape[:-2])))
    out = empty(bshape + (m, n), a.dtype)
    if out.size == 0:
        return out
    if k == 0:
        out.fill(0)
        return out
    if (impl or backend()) == "cublas":
        _cublas_matmul(a, b, out)
    else:
        _numba_matmul(a, b, out)
    return out


def _cublas_matmul(a: CudaArray, b: CudaArray, out: CudaArray) -> None:
    p = cublas.plan(a.shape, _elem_strides(a), b.shape, _elem_strides(b))
    if p.copy_a or p.copy_b:
        a = contiguous(a) if p.copy_a else a
        b = contiguous(b) if p.copy_b else b
        p = cublas.plan(a.shape, _elem_strides(a), b.shape, _elem_strides(b))
    cublas.run(p, a.data_ptr, b.data_ptr, out.data_ptr, a.dtype)


def _numba_matmul(a: CudaArray, b: CudaArray, out: CudaArray, tiles: tuple | None = None) -> None:
    tiles = tiles or _tiles()
    m, k = a.shape[-2:]
    n = b.shape[-1]
    bshape = out.shape[:-2]
    abuf, a0, ast = span(a)
    bbuf, b0, bst = span(b)
    shape, (sa, sb) = cublas.collapse_batch(bshape, cublas.batch_strides(a.shape, ast, bshape),
                                            cublas.batch_strides(b.shape, bst, bshape))
    nbatch = math.prod(shape)
    acc = "float64" if a.dtype == np.float64 else "float32"
    bm, bn, _, tm, tn = tiles
    grid = ((n + bn - 1) // bn, (m + bm - 1) // bm, min(nbatch, _MAX_GRID_Z))
    threads = (bm // tm) * (bn // tn)
    flat_out = out.as_strided((out.size,), (out.itemsize,))
    bf16 = is_bf16(a.dtype)
    if bf16:  # the kernel reads and writes the bits as uint16
        abuf, bbuf, flat_out = abuf.view(_U16), bbuf.view(_U16), flat_out.view(_U16)
    gemm_kernel(tiles, acc, bf16)(grid, threads, abuf, a0, sa, ast[-2], ast[-1], bbuf, b0, sb, bst[-2], bst[-1],
                                  flat_out, m, n, k, shape, nbatch)
