"""Compile every hand-written CUDA kernel to PTX for sm_90 with the real numba.cuda compiler.

The simulator runs kernels as Python, so it never type-checks them; this
does, without a GPU (NVVM and NVRTC must load: ``nvidia-cuda-nvrtc`` or a CUDA
toolkit).  Run it directly (``python tests/_cuda_ptx_check.py``, without
NUMBA_ENABLE_CUDASIM) or through the slow test in test_cuda_kernels_compile.py.
Exit status 0: all compiled; 1: some failed (listed); 77: no compiler here.
"""
import sys
import traceback

import numpy as np
from numba import cuda
from numba.core import types as numba_types

from jitorch.runtime.cuda import typed_kernels as T
from jitorch.runtime.cuda.array import CudaArray


class FakeStorage:
    size = 1 << 30
    def pointer(self):
        return 1 << 20


def A(shape, dtype=np.float32, strides=None):
    return CudaArray(FakeStorage(), shape if isinstance(shape, tuple) else (shape,), dtype, strides=strides)


f32, f64, f16, i64, i32, b_ = np.float32, np.float64, np.float16, np.int64, np.int32, np.bool_
fails = []
count = 0


def _compiler_available() -> bool:
    def probe(a):
        a[0] = 1.0
    try:
        cuda.compile_ptx(probe, (T._numba_type(A(1)),), cc=(9, 0))
    except Exception as e:  # noqa: BLE001 - a missing NVRTC/NVVM library, whatever its exception
        print("no CUDA compiler:", type(e).__name__, str(e)[:300])
        return False
    return True


if not _compiler_available():
    sys.exit(77)

# Kernels that call device functions (the bfloat16 helpers, cuda_vmath's fma...) make numba-cuda compile
# those for "the current device", which needs a driver; without a GPU, say it is the sm_90 we target.
import numba.cuda.dispatcher as _nb_dispatcher  # noqa: E402


class _Sm90:
    compute_capability = (9, 0)


_nb_dispatcher.get_current_device = lambda: _Sm90()


def check(name, kernel, *args):
    global count
    count += 1
    fn = kernel.pyfunc if isinstance(kernel, T.Kernel) else kernel
    # (an argument may be given as its numba type already: generated kernels' launch parameters)
    argtypes = tuple(a if isinstance(a, numba_types.Type) else T._numba_type(a) for a in args)
    try:
        cuda.compile_ptx(fn, argtypes, cc=(9, 0))
    except Exception as e:  # noqa: BLE001
        fails.append((name, argtypes, "".join(traceback.format_exception_only(type(e), e))[-3000:]))


from jitorch.runtime.cuda import gemm
from jitorch.runtime.cuda import ops_conv as C
from jitorch.runtime.cuda import ops_index as I
from jitorch.runtime.cuda import ops_nn as NN
from jitorch.runtime.cuda import ops_pool as P
from jitorch.runtime.cuda import ops_random as R
from jitorch.runtime.cuda import ops_rnn as RN
from jitorch.runtime.cuda import ops_scan as SC
from jitorch.runtime.cuda import ops_sort as S

check("nz_bool", T._NZ_BOOL, A(8, i64), A(8, b_), 8)
for dt, acc in [(f32, "float32"), (f64, "float64"), (f16, "float32")]:
    k = gemm.gemm_kernel(gemm.GPU_TILES, acc)
    for bt in [(1,), (2, 3)]:
        z = (0,) * len(bt)
        check(f"gemm {dt.__name__} {bt}", k, A(100, dt), 0, z, 4, 1, A(100, dt), 0, z, 4, 1, A(100, dt), 3, 4, 5, bt, 6)
for dt in (f32, f16, f64, i64, b_):
    check(f"fill32 {dt.__name__}", R._K_FILL32, A(10, dt), 10, 1, 2, 3, 4, 0, 0.0, 1.0, A(1, f32))
check("fill64", R._K_FILL64, A(10, f64), 10, 1, 2, 3, 4, 0, 0.0, 1.0, A(1, f64))
for dt in (f32, f16):
    check(f"normal32 {dt.__name__}", R._K_NORMAL32, A(10, dt), 10, 1, 2, 3, 4, 0, 0.0, 1.0)
check("normal64", R._K_NORMAL64, A(10, f64), 10, 1, 2, 3, 4, 0, 0.0, 1.0)
for dt in (i64, f32, f64):
    check(f"integers {dt.__name__}", R._K_INTEGERS, A(10, dt), 10, 1, 2, 3, 4, -5, 10, 0)
for dt in (f32, f16, i64, b_):
    for tl in (1, 2):
        t1 = (1,) * tl
        check(f"adv_gather {dt.__name__} {tl}", I._K_ADV_GATHER, A(10, dt), 0, A(3, i64), t1, t1, t1, t1, A(10, dt), 3, 1, 10)
for dt, alpha in [(f32, 1.0), (f64, 2.0), (i64, 1), (i32, 1)]:
    check(f"adv_add {dt.__name__}", I._K_ADV_ADD, A(10, dt), 0, A(3, i64), (1,), (1,), (2, 2), (1, 1), A(10, dt), 3, 1, 10, alpha)
for dt in (f32, f64, i64, b_, f16, np.int8):
    check(f"adv_assign {dt.__name__}", I._K_ADV_ASSIGN, A(10, dt), 0, A(3, i64), (1,), (1,), (2, 2), (1, 1), A(10, dt), 3, 1, 10)
check("add_index", I._K_ADD_INDEX, A(5, i64), A(5, i64), 3, 7, True, False, A(1, i64), A(4, i64), 5, 5)
check("wrap_negative", I._K_WRAP_NEGATIVE, A(5, i64), 7, A(5, i64), 5)
from jitorch.runtime.cuda import device_checks as DCK
check("check_range", DCK._check_range, A(5, i64), 0, 5, -100, True, A(1, i64), A(4, i64), 5, 5)
for dt in (f32, f16, b_):
    check(f"gather_dim {dt.__name__}", I._K_GATHER_DIM, A(10, dt), 0, (3, 1), A(4, i64), (2, 2), 0, 3, A(4, dt), A(1, i64), A(4, i64), 5, 4)
for dt in (f32, i64, b_, f64, f16):
    check(f"scatter_dim_assign {dt.__name__}", I._K_SCATTER_DIM_ASSIGN, A(10, dt), (3, 1), A(4, i64), (2, 2), 1, 3, A(10, dt), 0, (3, 1), A(1, i64), A(4, i64), 5, 4)
for dt in (f32, i64, f64):
    check(f"scatter_dim_add {dt.__name__}", I._K_SCATTER_DIM_ADD, A(10, dt), (3, 1), A(4, i64), (2, 2), 1, 3, A(10, dt), 0, (3, 1), A(1, i64), A(4, i64), 5, 4)
for dt in (f32, i64, f64):
    check(f"scatter_columns {dt.__name__}", I._K_SCATTER_COLUMNS, A(10, dt), (3, 1), A(4, i64), (2, 2), 1, 3, A(10, dt), 0, (3, 1), 2, 2, A(10, i64), True, A(1, i64), A(4, i64), 5)
    check(f"mean_finish {dt.__name__}", I._K_MEAN_FINISH, A(10, dt), A(10, i64), 10, True, dt == i64)
for dt in (b_, f32, f16, i64):
    check(f"nz_count {dt.__name__}", I._K_NZ_COUNT, A(10, dt), 10, 5, A(2, i64))
    check(f"nz_write {dt.__name__}", I._K_NZ_WRITE, A(10, dt), 10, 5, A(2, i64), (2, 5), A(20, i64))
for key in ("float32", "float64", "int64"):
    load, sp, gs = S._sort_kernels(key)
    dt = np.dtype(key)
    check(f"sort load {key}", load, A(10, dt), A(16, dt), A(16, i64), 1, 10, 16, 16)
    check(f"sort shared {key}", sp, A(16, dt), A(16, i64), 16, 16, 10, False, 2, 16)
    check(f"sort global {key}", gs, A(16, dt), A(16, i64), 16, 16, 10, True, 4096, 2048)
    check(f"kth {key}", S._K_KTH, A(10, dt), A(10, i64), 2, 5, 1, 0, A(2, i64))
    check(f"mode {key}", S._K_MODE, A(10, dt), A(10, i64), 2, 5, A(2, i64))
    check(f"median {key}", S._K_MEDIAN, A(10, dt), 10, True, A(1, f64 if key != "int64" else i64))
    check(f"search {key}", S._K_SEARCH, A(10, dt), A(4, dt), 1, 10, 4, True, A(4, i64))
    check(f"argext_seg {key}", S._K_ARGEXT_SEG, A(10, dt), 10, 1, 10, 10, 1, True, A(4, i64), False, A(1, i64))
    check(f"argext_col {key}", S._K_ARGEXT_COL, A(10, dt), 1, 5, 2, True, A(2, i64))
for dt, acc in [(f32, 0.0), (f64, 0.0), (i64, 0)]:
    check(f"scan_cols {dt.__name__}", SC._K_SCAN_COLS, A(10, dt), A(10, dt), 1, 5, 2, 0, True, acc)
    kern = SC._K_SCAN_ROWS_I if dt == i64 else SC._K_SCAN_ROWS_F
    for op in (0, 2):
        check(f"scan_rows {dt.__name__}", kern, A(10, dt), A(10, dt), 2, 5, op, False, acc)
    check(f"cumext_cols {dt.__name__}", SC._K_CUMEXT_COLS, A(10, dt), A(10, i64), 1, 5, 2, True)
    check(f"cumext_rows {dt.__name__}", SC._K_CUMEXT_ROWS, A(10, dt), A(10, i64), 2, 5, False)
for dt in (f32, f16, f64):
    check(f"im2col {dt.__name__}", C._K_IM2COL, A(100, dt), 0, (30, 10, 5, 1), 1, 3, 2, 5, 3, 2, 1, 1, 0, 0, 1, 1, 4, 12, True, A(100, dt), 100)
for dt, acc in [(f32, np.float32(0)), (f16, np.float32(0)), (f64, 0.0)]:
    check(f"col2im {dt.__name__}", C._K_COL2IM, A(100, dt), 1, 3, 4, 5, 3, 2, 1, 1, 0, 0, 1, 1, 2, 4, False, acc, A(60, dt), 60)
for dt in (f32, f64):
    check(f"maxpool {dt.__name__}", P._K_MAXPOOL, A(100, dt), 2, 5, 6, 2, 2, 2, 2, 0, 0, 1, 1, 3, 3, A(18, dt), A(18, i64), 18)
    check(f"avgpool {dt.__name__}", P._K_AVGPOOL, A(100, dt), 5, 6, 2, 2, 2, 2, 1, 1, True, 0, 3, 3, A(18, dt), 18)
    check(f"avgpool_bwd {dt.__name__}", P._K_AVGPOOL_BWD, A(100, dt), 5, 6, 2, 2, 2, 2, 1, 1, False, 3, 3, 3, A(60, dt), 60)
    check(f"adaptive_avg {dt.__name__}", P._K_ADAPTIVE_AVG, A(100, dt), 5, 6, 3, 3, A(18, dt), 18)
    check(f"adaptive_avg_bwd {dt.__name__}", P._K_ADAPTIVE_AVG_BWD, A(100, dt), 5, 6, 3, 3, A(60, dt), 60)
    check(f"adaptive_max {dt.__name__}", P._K_ADAPTIVE_MAX, A(100, dt), 5, 6, 3, 3, A(18, dt), A(18, i64), 18)
    check(f"plane_gather {dt.__name__}", P._K_PLANE_GATHER, A(100, dt), 0, (30, 1), A(14, i64), 7, A(14, dt), 14)
    check(f"plane_scatter {dt.__name__}", P._K_PLANE_SCATTER, A(14, dt), A(14, i64), 7, 30, A(60, dt), 14)
    check(f"resample {dt.__name__}", P._K_RESAMPLE, A(60, dt), 5, 6, A(14, i64), A(14, dt), 2, A(8, i64), A(8, dt), 2, 7, 4, A(56, dt), 56)
    check(f"resample_adj {dt.__name__}", P._K_RESAMPLE_ADJ, A(56, dt), 5, 6, A(14, i64), A(14, dt), 2, A(8, i64), A(8, dt), 2, 7, 4, A(60, dt), 56)
for dt in (f32, f64):
    check(f"embedding_bwd {dt.__name__}", NN._K_EMBEDDING_BWD, A(12, dt), A(3, i64), 4, -1, 6, A(24, dt), A(1, i64), A(4, i64), 5, 12)
    check(f"nll_gather {dt.__name__}", NN._K_NLL_GATHER, A(30, dt), A(6, i64), A(5, dt), True, 5, 2, -100, A(6, dt), A(1, i64), A(4, i64), 5, 6)
    check(f"nll_scatter {dt.__name__}", NN._K_NLL_SCATTER, A(6, dt), A(6, i64), A(1, dt), False, 5, 2, -100, A(30, dt), A(1, i64), A(4, i64), 5, 6)
    check(f"lstm_step {dt.__name__}", RN._K_LSTM_STEP, A(32, dt), A(32, dt), A(8, dt), A(8, dt), 4, 8)
    check(f"lstm_states {dt.__name__}", RN._K_LSTM_STATES, A(96, dt), A(96, dt), A(8, dt), True, A(96, dt), A(24, dt), 3, 2, 4)
    check(f"lstm_bwd {dt.__name__}", RN._K_LSTM_BWD, A(8, dt), A(8, dt), True, A(8, dt), A(32, dt), A(8, dt), A(8, dt), A(32, dt), 4, 8)
    check(f"gru_step {dt.__name__}", RN._K_GRU_STEP, A(24, dt), A(24, dt), A(12, dt), True, A(8, dt), A(8, dt), 4, 8)
    check(f"add_bias {dt.__name__}", RN._K_ADD_BIAS, A(24, dt), A(12, dt), 12, 24)
    check(f"gru_bwd {dt.__name__}", RN._K_GRU_BWD, A(8, dt), A(8, dt), A(8, dt), False, A(24, dt), A(24, dt), A(8, dt), A(24, dt), A(24, dt), A(8, dt), 4, 8)
    check(f"add2 {dt.__name__}", RN._K_ADD2, A(8, dt), A(8, dt), A(8, dt), 8)
    check(f"colsum {dt.__name__}", RN._K_COLSUM, A(24, dt), 2, 12, A(12, dt))
    check(f"rnn_step {dt.__name__}", RN._K_RNN_STEP, A(8, dt), A(8, dt), A(8, dt), True, 8)
    check(f"rnn_bwd {dt.__name__}", RN._K_RNN_BWD, A(8, dt), A(8, dt), True, A(8, dt), A(8, dt), False, 8)

# mixed precision: GradScaler's kernels, the bfloat16 GEMM (uint16 bit buffers), the bfloat16 copy/cast kernels
from jitorch._dtype import BF16_STORAGE
from jitorch.runtime.cuda import amp_kernels as AK
from jitorch.runtime.cuda import copy as CP
from jitorch.runtime.cuda import dispatch_cache as DC
from jitorch.runtime.cuda import optim_kernels as OK

u16 = np.uint16
for dt in (f32, f64):
    check(f"amp check_and_unscale {dt.__name__}", AK._CHECK, A(10, dt), 10, A(1, f32), A(1, f32))
check("amp update_scale", AK._UPDATE, A(1, f32), A(1, i32), A(1, f32), 2.0, 0.5, 2000)
k = gemm.gemm_kernel(gemm.GPU_TILES, "float32", True)
for bt in [(1,), (2, 3)]:
    z = (0,) * len(bt)
    check(f"gemm bfloat16 {bt}", k, A(100, u16), 0, z, 4, 1, A(100, u16), 0, z, 4, 1, A(100, u16), 3, 4, 5, bt, 6)
for ndim in (1, 2):
    st, shape = (1,) * ndim, (10,) if ndim == 1 else (5, 2)
    for kind, dst, srcs in [("from_bf16", (f32, f64, f16), (u16,)), ("from_bf16_via_int64", (i64, i32, np.uint8), (u16,)),
                            ("to_bf16", (u16,), (f32, f64, f16, i64, b_)), ("copy", (u16,), (u16,))]:
        for d in dst:
            for sdt in srcs:
                check(f"copy {kind} {np.dtype(sdt)}->{np.dtype(d)} nd{ndim}", CP._kernel(kind, ndim),
                      A(10, d), 0, st, A(10, sdt), 0, st, shape, 10)


def check_generated(name, source, fname, params):
    """A kernel generated as source with ``dispatch_cache`` launch parameters."""
    from jitorch.runtime import kernel_cache
    check(name, kernel_cache.load_kernel(source, fname).py_func, *[DC._numba_type(p) for p in params])

for algo in ("sgd", "adam", "rmsprop", "adagrad"):
    for dt in (BF16_STORAGE, np.dtype(f16)):
        check_generated(f"optim {algo} {dt}", *OK.kernel_source(algo, dt))

for name, argtypes, err in fails:
    print("FAIL", name, argtypes, "\n", err, "\n")
print(f"compiled {count - len(fails)}/{count} kernel signatures")
sys.exit(1 if fails else 0)
