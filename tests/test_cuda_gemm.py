"""CUDA matmul: the tiled numba GEMM under the simulator, and cuBLAS's argument mapping on the host."""
from __future__ import annotations

import numpy as np
import pytest
from _cuda_kernel_helpers import assert_same, fast_sim_threads  # noqa: F401

import jitorch
from jitorch.runtime.cuda import array as A
from jitorch.runtime.cuda import cublas, gemm

RNG = np.random.default_rng(0)


def _r(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (3, 5, 4), (9, 7, 11), (17, 3, 9), (2, 13, 1)])
def test_matmul_matches_cpu(m, k, n):
    assert_same("matmul", _r(m, k), _r(k, n), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float16, 2e-3)])
def test_matmul_dtypes(dtype, tol):
    assert_same("matmul", _r(6, 5, dtype=dtype), _r(5, 7, dtype=dtype), rtol=tol, atol=tol)


def test_batched_broadcast_and_transposed_views_without_copies():
    a, b = _r(2, 1, 5, 6), _r(3, 7, 6)
    da, db = A.from_host(a), A.from_host(b).transpose(0, 2, 1)  # b^T: a strided (column-major) operand
    got = gemm.matmul(da, db).to_host()
    np.testing.assert_allclose(got, a @ b.transpose(0, 2, 1), rtol=1e-5, atol=1e-5)
    # a sliced, transposed left operand and a right operand broadcast over the batch
    big = _r(8, 12)
    lhs = A.from_host(big)[1:7:2, ::3].T  # (4, 3) with strides (3, 24) elements
    rhs = A.from_host(_r(3, 5))
    np.testing.assert_allclose(gemm.matmul(lhs, rhs).to_host(), big[1:7:2, ::3].T @ rhs.to_host(), rtol=1e-5,
                               atol=1e-5)


def test_gpu_tile_configuration_runs_under_the_simulator():
    # the real GPU tiles (64x64x16, 256 threads, 4x4 micro-tiles) on one block with ragged edges
    a, b = _r(50, 33), _r(45, 33)
    out = A.empty((50, 45), np.float32)
    gemm._numba_matmul(A.from_host(a), A.from_host(b).T, out, tiles=gemm.GPU_TILES)
    np.testing.assert_allclose(out.to_host(), a @ b.T, rtol=1e-5, atol=1e-5)


def test_batches_beyond_the_grid_are_walked_by_each_block(monkeypatch):
    monkeypatch.setattr(gemm, "_MAX_GRID_Z", 2)  # 5 batches on a grid 2 deep: blocks loop over batches
    a, b = _r(5, 3, 4), _r(4, 6)
    np.testing.assert_allclose(gemm.matmul(A.from_host(a), A.from_host(b)).to_host(), a @ b, rtol=1e-5, atol=1e-5)


def test_empty_and_zero_inner_dimension():
    assert gemm.matmul(A.from_host(_r(0, 3)), A.from_host(_r(3, 4))).shape == (0, 4)
    z = gemm.matmul(A.from_host(_r(3, 0)), A.from_host(_r(0, 4))).to_host()
    np.testing.assert_array_equal(z, np.zeros((3, 4), np.float32))


def test_integer_matmul_is_rejected_like_torch():
    a = A.from_host(np.ones((2, 2), np.int64))
    with pytest.raises(RuntimeError, match="addmm_cuda.*Long"):
        gemm.matmul(a, a)


def test_backend_choice(monkeypatch):
    monkeypatch.delenv("JITORCH_CUDA_GEMM", raising=False)
    assert gemm.backend() == "numba"  # the simulator has no cuBLAS
    monkeypatch.setenv("JITORCH_CUDA_GEMM", "numba")
    assert gemm.backend() == "numba"
    monkeypatch.setenv("JITORCH_CUDA_GEMM", "cublas")
    with pytest.raises(RuntimeError, match="cublas"):
        gemm.backend()


# -- cuBLAS argument mapping, checked on the host ----------------------------------------------------------------
def _layout(arr: np.ndarray, base: np.ndarray):
    """(shape, element strides, element offset into ``base``) of a view ``arr`` of ``base``."""
    isz = arr.itemsize
    off = (arr.__array_interface__["data"][0] - base.__array_interface__["data"][0]) // isz
    return arr.shape, tuple(s // isz for s in arr.strides), off


def _emulate(a: np.ndarray, a_base: np.ndarray, b: np.ndarray, b_base: np.ndarray) -> np.ndarray:
    a_shape, a_st, a_off = _layout(a, a_base)
    b_shape, b_st, b_off = _layout(b, b_base)
    p = cublas.plan(a_shape, a_st, b_shape, b_st)
    assert not (p.copy_a or p.copy_b)
    bshape = np.broadcast_shapes(a_shape[:-2], b_shape[:-2])
    c = np.full(int(np.prod(bshape, dtype=int)) * a_shape[-2] * b_shape[-1], np.nan)
    for call in p.calls:
        call = call._replace(a_off=call.a_off + a_off, b_off=call.b_off + b_off)
        cublas.emulate(call, a_base.reshape(-1), b_base.reshape(-1), c)
    return c.reshape(tuple(bshape) + (a_shape[-2], b_shape[-1]))


def _views():
    """Pairs of (view, base) covering the layouts cuBLAS can read in place."""
    base_a = RNG.standard_normal((2, 3, 9, 8))
    base_b = RNG.standard_normal((3, 8, 10))
    yield base_a[0, :, :4, :5], base_a, base_b[:, :5, :6], base_b  # row-major, ld > cols
    yield base_a[1, 1, :5, :4].T, base_a, base_b[0, :5, :7], base_b  # transposed a
    yield base_a[:, :, 2, :3], base_a, base_b[0, :7, :3].T, base_b  # transposed b, 2 batch dims of a
    yield base_a[:, :1, :2, :3], base_a, base_b[:, :3, :4], base_b  # a broadcast over b's batch
    yield base_a[0, 0, :1, :3], base_a, base_b[1, :3, :1], base_b  # 1 x k @ k x 1
    yield np.broadcast_to(base_a[0, 0, :4, :3], (3, 4, 3)), base_a, base_b[:, :3, :2], base_b  # stride-0 batch


@pytest.mark.parametrize("case", range(6))
def test_cublas_plan_matches_numpy(case):
    a, a_base, b, b_base = list(_views())[case]
    np.testing.assert_allclose(_emulate(a, a_base, b, b_base), np.matmul(a, b), rtol=1e-12, atol=1e-12)


def test_cublas_plan_asks_for_copies_of_unreadable_layouts():
    st = cublas.plan((4, 3), (2, 6), (3, 5), (5, 1))  # a: neither stride is 1
    assert st.copy_a and not st.copy_b
    st = cublas.plan((4, 3), (3, 1), (3, 5), (0, 1))  # b broadcast along k: ld 0 is not allowed
    assert st.copy_b
    st = cublas.plan((4, 3), (3, -1), (3, 5), (5, 1))  # negative strides
    assert st.copy_a


def test_collapse_batch_merges_even_dims_and_keeps_broadcasts():
    shape, (sa, sb) = cublas.collapse_batch((2, 3, 1, 4), (12, 4, 0, 1), (0, 0, 0, 1))
    assert shape == (6, 4) and sa == (4, 1) and sb == (0, 1)


# -- tensor level ----------------------------------------------------------------------------------------------
def test_matmul_tensor_forward_and_backward_match_cpu():
    a, b = jitorch.randn(2, 4, 3), jitorch.randn(3, 5)
    ac, bc = a.detach().to("cuda").requires_grad_(), b.detach().to("cuda").requires_grad_()
    a.requires_grad_()
    b.requires_grad_()
    (a @ b).pow(2).sum().backward()
    out = ac @ bc
    out.pow(2).sum().backward()
    assert out.device.type == "cuda"
    np.testing.assert_allclose(out.detach().cpu().numpy(), (a @ b).detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ac.grad.cpu().numpy(), a.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bc.grad.cpu().numpy(), b.grad.numpy(), rtol=1e-4, atol=1e-5)


# -- the raw launch path's argument words, checked against numba's own kernel-argument layout ----------------------
_LAYOUT_SCRIPT = r"""
import numpy as np
from numba.cuda import types
from numba.cuda.descriptor import cuda_target
from jitorch.runtime.cuda import typed_kernels as T
from jitorch.runtime.cuda.array import CudaArray

class FakeStorage:  # no device here: only the pointer is read
    size = 1 << 20
    def pointer(self):
        return 4096

arr = CudaArray(FakeStorage(), (3, 4), np.float32, strides=(32, 4), offset=8)
flat = CudaArray(FakeStorage(), (5,), np.int64)
args = [arr, 7, 2.5, np.float32(1.5), True, (1, 2, 3), flat]
argtypes = tuple(T._numba_type(a) for a in args)
words = []
T._marshal(tuple(T._kind(t) for t in argtypes), args, words)
llvm = cuda_target.target_context.get_arg_packer(argtypes).argument_types

def size(t):
    s = str(t)
    if s.endswith("*"):
        return 8
    return {"double": 8, "float": 4}.get(s) or int(s[1:]) // 8

assert len(words) == len(llvm), (len(words), len(llvm))
assert [T._word_size(w) for w in words] == [size(t) for t in llvm], ([T._word_size(w) for w in words], llvm)
assert words[2:5] == [12, 4, 4096 + 8] and words[5:9] == [3, 4, 32, 4]
print("layout ok")
"""


def test_raw_launch_words_match_numbas_argument_layout():
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}  # the real target's data model
    res = subprocess.run([sys.executable, "-c", _LAYOUT_SCRIPT], capture_output=True, text=True, env=env, timeout=120,
                         check=False)
    assert res.returncode == 0 and "layout ok" in res.stdout, res.stderr[-2000:]
