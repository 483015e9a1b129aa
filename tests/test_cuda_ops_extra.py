"""Front-end ops that used to assume host arrays, on CUDA tensors (Numba's CUDA simulator):
einsum's repeated letters, equal/allclose/isclose, unique/unique_consecutive and the tensor-parameterized
random draws (normal, bernoulli, multinomial). CUDA results are compared with the CPU path; random ops are
checked for reproducibility per seed, agreement with the Philox host reference and distribution sanity."""
from __future__ import annotations

import numpy as np
import pytest
from _cuda_kernel_helpers import fast_sim_threads  # noqa: F401

import jitorch
from jitorch.runtime.cuda import array as A
from jitorch.runtime.cuda import philox as P

RNG = np.random.default_rng(11)


def cuda(a):
    return jitorch.from_numpy(np.array(a, order="C")).to("cuda")  # (ascontiguousarray makes 0-d arrays 1-d)


def assert_same_tensor(got, want):
    """``got`` (a CUDA tensor) equals the CPU tensor ``want``: device, shape, dtype and values (NaNs included)."""
    assert got.device.type == "cuda"
    assert tuple(got.shape) == tuple(want.shape) and got.dtype == want.dtype
    np.testing.assert_array_equal(got.cpu().numpy(), want.numpy())


# -- einsum ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("eq,shape", [("ii->i", (3, 3)), ("ii", (3, 3)), ("iij->ij", (2, 2, 3))])
def test_einsum_repeated_letters_on_cuda(eq, shape):
    x = RNG.standard_normal(shape).astype(np.float32)
    xc = cuda(x).requires_grad_(True)
    xh = jitorch.from_numpy(x).requires_grad_(True)
    out_c, out_h = jitorch.einsum(eq, xc), jitorch.einsum(eq, xh)
    np.testing.assert_allclose(out_c.detach().cpu().numpy(), out_h.detach().numpy(), rtol=1e-6)
    out_c.sum().backward()
    out_h.sum().backward()
    assert xc.grad.device.type == "cuda"
    np.testing.assert_array_equal(xc.grad.cpu().numpy(), xh.grad.numpy())


# -- equal / allclose / isclose -------------------------------------------------------------------------------
NAN, INF = float("nan"), float("inf")
CLOSE_CASES = [
    (np.array([1.0, NAN, INF, -INF, 2.0, 1e-9], np.float32), np.array([1.0 + 1e-6, NAN, INF, INF, 2.1, 0.0],
                                                                       np.float32)),
    (np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0])),
    (np.array([1, 2, 3], np.int64), np.array([1, 2, 4], np.int64)),
    (np.array([[True, False]]), np.array([[True, True]])),
]


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # the simulator's scalar math warns on inf - inf
@pytest.mark.parametrize("a,b", CLOSE_CASES)
@pytest.mark.parametrize("kw", [{}, {"equal_nan": True}, {"rtol": 0.0, "atol": 0.0}, {"rtol": 0.1, "atol": 0.5}])
def test_isclose_and_allclose_match_the_cpu(a, b, kw):
    ha, hb = jitorch.from_numpy(a), jitorch.from_numpy(b)
    assert_same_tensor(jitorch.isclose(cuda(a), cuda(b), **kw), jitorch.isclose(ha, hb, **kw))
    assert jitorch.allclose(cuda(a), cuda(b), **kw) is jitorch.allclose(ha, hb, **kw)
    assert jitorch.allclose(cuda(a), cuda(a), **kw) is jitorch.allclose(ha, ha, **kw)


def test_isclose_with_a_python_scalar():
    a = np.array([2.0, 2.00001, 3.0, NAN], np.float32)
    assert_same_tensor(jitorch.isclose(cuda(a), 2.0), jitorch.isclose(jitorch.from_numpy(a), 2.0))


@pytest.mark.parametrize("a,b", CLOSE_CASES + [(np.zeros((2, 3)), np.zeros((3, 2))), (np.zeros(0), np.zeros(0)),
                                               (np.array([1, 2]), np.array([1.0, 2.0]))])
def test_equal_matches_the_cpu(a, b):
    ha, hb = jitorch.from_numpy(a), jitorch.from_numpy(b)
    assert jitorch.equal(cuda(a), cuda(b)) is jitorch.equal(ha, hb)
    assert jitorch.equal(cuda(b), cuda(b)) is jitorch.equal(hb, hb)


def test_comparisons_refuse_mixed_devices_and_negative_tolerances():
    x = jitorch.ones(3)
    for fn in (jitorch.equal, jitorch.allclose, jitorch.isclose):
        with pytest.raises(RuntimeError, match="same device"):
            fn(x.to("cuda"), x)
    with pytest.raises(RuntimeError, match="rtol must be greater than or equal to zero"):
        jitorch.isclose(x.to("cuda"), x.to("cuda"), rtol=-1.0)
    with pytest.raises(RuntimeError, match="atol must be greater than or equal to zero"):
        jitorch.allclose(x, x, atol=-1.0)


# -- unique / unique_consecutive ------------------------------------------------------------------------------
def _ties(shape, high=3, dtype=np.float32):
    return RNG.integers(0, high, shape).astype(dtype)


def _with_nans(x):
    x = x.copy()
    x.reshape(-1)[[1, 4, 5]] = np.nan
    return x


UNIQUE_CASES = [
    (_with_nans(_ties((3, 5))), None),
    (_ties((7,), 4, np.int32), None),
    (np.array([True, False, True, True]), None),
    (np.array(2.5, np.float32), None),
    (np.zeros((0, 2), np.float32), None),
    (_ties((5, 3), 2, np.int64), 0),
    (_ties((2, 5), 2, np.float32), 1),
    (_ties((4, 2, 3), 2, np.int64), 1),
    (np.zeros((0, 3), np.float32), 0),
    (np.zeros((3, 0), np.float32), 0),
]


@pytest.mark.parametrize("fn", ["unique", "unique_consecutive"])
@pytest.mark.parametrize("x,dim", UNIQUE_CASES)
def test_unique_matches_the_cpu(fn, x, dim):
    if fn == "unique" and dim == 0 and x.ndim == 2 and x.shape[0] == 5:
        x[3] = x[1]  # a repeated row that is not next to its twin
    f = getattr(jitorch, fn)
    got = f(cuda(x), return_inverse=True, return_counts=True, dim=dim)
    want = f(jitorch.from_numpy(x), return_inverse=True, return_counts=True, dim=dim)
    for g, w in zip(got, want):
        assert_same_tensor(g, w)
    # the single-output form is the values alone
    assert_same_tensor(f(cuda(x), dim=dim), want[0])


def test_unique_reads_back_only_its_output_size(monkeypatch):
    x = cuda(_with_nans(_ties((4, 3))))
    reads = []
    to_host = A.CudaArray.to_host

    def counting(self, *a, **k):
        reads.append(self.shape)
        return to_host(self, *a, **k)
    monkeypatch.setattr(A.CudaArray, "to_host", counting)
    jitorch.unique(x, return_inverse=True, return_counts=True)
    assert len(reads) == 1


def test_unique_of_a_grad_tensor_is_not_differentiable_and_checks_dim():
    x = cuda(np.array([2.0, 1.0, 2.0], np.float32)).requires_grad_(True)
    vals = jitorch.unique(x)
    assert not vals.requires_grad
    with pytest.raises(IndexError):
        jitorch.unique(cuda(np.array(1.0)), dim=0)


# -- random draws parameterized by tensors ------------------------------------------------------------------
def _cuda_gen(seed):
    return jitorch.Generator(device="cuda").manual_seed(seed)


def test_normal_with_tensor_parameters_draws_the_philox_normals():
    mean = cuda(np.arange(4, dtype=np.float32).reshape(4, 1))
    std = cuda(np.array([0.5, 1.0, 2.0], np.float32))
    out = jitorch.normal(mean, std, generator=_cuda_gen(7))
    assert out.device.type == "cuda" and tuple(out.shape) == (4, 3) and out.dtype == jitorch.float32
    z = P.normal_reference(7, 0, 12, False).reshape(4, 3)
    want = np.arange(4, dtype=np.float64).reshape(4, 1) + np.array([0.5, 1.0, 2.0]) * z
    np.testing.assert_allclose(out.cpu().numpy(), want, rtol=1e-5, atol=1e-5)
    assert jitorch.equal(out, jitorch.normal(mean, std, generator=_cuda_gen(7)))
    assert not jitorch.equal(out, jitorch.normal(mean, std, generator=_cuda_gen(8)))
    # one of them a float; scalar parameters with device='cuda'
    assert jitorch.normal(mean, 1.0, generator=_cuda_gen(1)).device.type == "cuda"
    s = jitorch.normal(3.0, 2.0, (256,), device="cuda", dtype=jitorch.float64, generator=_cuda_gen(2))
    assert s.device.type == "cuda" and s.dtype == jitorch.float64
    np.testing.assert_allclose(s.cpu().numpy(), 3.0 + 2.0 * P.normal_reference(2, 0, 256, True), rtol=1e-12)
    v = s.cpu().numpy()
    assert abs(v.mean() - 3.0) < 4 * 2.0 / 16 and 1.6 < v.std() < 2.4


def test_normal_refuses_negative_std_and_foreign_generators():
    with pytest.raises(RuntimeError, match="std >= 0.0"):
        jitorch.normal(cuda(np.zeros(2, np.float32)), cuda(np.array([1.0, -1.0], np.float32)))
    with pytest.raises(RuntimeError, match="std >= 0.0"):
        jitorch.normal(0.0, -1.0, (2,))
    with pytest.raises(RuntimeError, match="'cuda' device type"):
        jitorch.normal(jitorch.zeros(2, device="cuda"), 1.0, generator=jitorch.Generator())
    with pytest.raises(RuntimeError, match="'cpu' device type"):
        jitorch.normal(jitorch.zeros(2), 1.0, generator=_cuda_gen(0))
    with pytest.raises(RuntimeError, match="'cpu' device type"):
        jitorch.rand(2, generator=_cuda_gen(0))


def test_bernoulli_on_cuda_compares_philox_uniforms_with_p():
    p = RNG.random(64).astype(np.float32)
    p[:4] = [0.0, 1.0, 0.0, 1.0]
    out = jitorch.bernoulli(cuda(p), generator=_cuda_gen(5))
    assert out.device.type == "cuda" and out.dtype == jitorch.float32
    np.testing.assert_array_equal(out.cpu().numpy(), (P.uniform_reference(5, 0, 64, False) < p).astype(np.float32))
    assert jitorch.equal(out, jitorch.bernoulli(cuda(p), generator=_cuda_gen(5)))
    half = jitorch.bernoulli(jitorch.zeros(256, device="cuda", dtype=jitorch.float64), 0.5, generator=_cuda_gen(6))
    assert half.dtype == jitorch.float64 and set(np.unique(half.cpu().numpy())) <= {0.0, 1.0}
    assert 128 - 4 * 8 < half.sum().item() < 128 + 4 * 8  # 4 sigma of Binomial(256, 1/2)
    with pytest.raises(RuntimeError):
        jitorch.bernoulli(jitorch.zeros(2, device="cuda"), 1.5)


def test_multinomial_without_replacement_on_cuda():
    w = np.array([[0.0, 1.0, 3.0, 0.0, 2.0], [1.0, 1.0, 1.0, 1.0, 1.0]], np.float32)
    out = jitorch.multinomial(cuda(w), 3, generator=_cuda_gen(3))
    assert out.device.type == "cuda" and out.dtype == jitorch.int64 and tuple(out.shape) == (2, 3)
    got = out.cpu().numpy()
    assert set(got[0]) == {1, 2, 4}  # exactly the three categories with weight
    assert len(set(got[1])) == 3
    assert jitorch.equal(out, jitorch.multinomial(cuda(w), 3, generator=_cuda_gen(3)))
    one = jitorch.multinomial(cuda(w[0]), 1, generator=_cuda_gen(4))
    assert tuple(one.shape) == (1,) and one.item() in (1, 2, 4)


def test_multinomial_with_replacement_on_cuda_follows_the_weights():
    w = np.array([1.0, 0.0, 3.0], np.float32)
    out = jitorch.multinomial(cuda(w), 200, replacement=True, generator=_cuda_gen(9))
    assert out.device.type == "cuda" and tuple(out.shape) == (200,)
    counts = np.bincount(out.cpu().numpy(), minlength=3)
    assert counts[1] == 0
    assert abs(counts[2] - 150) < 4 * np.sqrt(200 * 0.75 * 0.25)
    assert jitorch.equal(out, jitorch.multinomial(cuda(w), 200, replacement=True, generator=_cuda_gen(9)))


@pytest.mark.parametrize("w,n,replacement,match", [
    ([0.5, -0.1, 0.6], 1, False, "element < 0"),
    ([0.5, float("nan")], 1, True, "element < 0"),
    ([[0.0, 0.0], [1.0, 1.0]], 1, True, "sum of probabilities"),
    ([1.0, 0.0, 1.0], 3, False, "without replacement"),
    ([1.0, 1.0], 0, True, "n_sample <= 0"),
])
def test_multinomial_refuses_bad_distributions_on_cuda(w, n, replacement, match):
    with pytest.raises(RuntimeError, match=match):
        jitorch.multinomial(jitorch.tensor(w, device="cuda"), n, replacement=replacement)


def test_data_helpers_draw_from_cpu_generators_only():
    from jitorch.utils.data._common import np_rng
    assert np_rng(jitorch.Generator().manual_seed(1)).integers(0, 100) == \
        np_rng(jitorch.Generator().manual_seed(1)).integers(0, 100)
    with pytest.raises(RuntimeError, match="'cpu' device type"):
        np_rng(_cuda_gen(0))
