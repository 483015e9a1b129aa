"""The CUDA Philox generator: known answers, bit-exact agreement with the host reference,
independence from the launch configuration, reproducibility and the generator API."""
from __future__ import annotations

import numpy as np
import pytest
from _cuda_kernel_helpers import fast_sim_threads  # noqa: F401

import jitorch
from jitorch.runtime.cuda import array as A
from jitorch.runtime.cuda import ops_random as R
from jitorch.runtime.cuda import philox as P

# Random123's kat_vectors for philox4x32-10: counter (4 words), key (2 words) -> output (4 words)
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("ctr,key,want", KAT)
def test_philox_known_answers(ctr, key, want):
    assert tuple(int(w) for w in P.philox4x32(*ctr, *key)) == want


def _gen(seed=1234):
    return P.PhiloxGenerator().manual_seed(seed)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_uniform_kernel_is_the_reference_bit_for_bit(dtype):
    out = A.empty((37,), dtype)
    R.uniform_(out, 0.0, 1.0, _gen())
    ref = P.uniform_reference(1234, 0, 37, dtype == np.float64).astype(dtype)
    np.testing.assert_array_equal(out.to_host(), ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normal_kernel_matches_the_reference(dtype):
    out = A.empty((23,), dtype)
    R.normal_(out, 0.0, 1.0, _gen())
    np.testing.assert_allclose(out.to_host(), P.normal_reference(1234, 0, 23, dtype == np.float64), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("low,high", [(-5, 7), (0, 1 << 40), (3, 4)])
def test_integer_kernel_matches_the_reference(low, high):
    out = A.empty((19,), np.int64)
    R.random_(out, low, high, _gen())
    got = out.to_host()
    np.testing.assert_array_equal(got, P.integer_reference(1234, 0, 19, low, high))
    assert got.min() >= low and got.max() < high


def test_values_do_not_depend_on_the_launch_configuration():
    n = 29
    outs = []
    for blocks, threads in [(1, 3), (2, 5), (4, 1)]:
        out = A.empty((n,), np.float32)
        R._K_FILL32(blocks, threads, out, n, 7, 0, 0, 0, R.UNIFORM, 0.0, 1.0, R._dummy(np.float32))
        outs.append(out.to_host())
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])


def test_statistics_of_the_reference_streams():
    # the kernels are the reference bit for bit (above), so large samples are checked on the host
    u = P.uniform_reference(99, 3, 20000, False)
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.005
    assert u.min() >= 0.0 and u.max() < 1.0
    z = P.normal_reference(99, 3, 20000, True)
    assert abs(z.mean()) < 0.03 and abs(z.var() - 1.0) < 0.05
    k = P.integer_reference(99, 3, 20000, 0, 10)
    counts = np.bincount(k, minlength=10)
    assert counts.min() > 1800 and counts.max() < 2200


def test_transforms_of_the_other_distributions():
    g = _gen(5)
    u = P.uniform_reference(5, 0, 16, False)
    out = A.empty((16,), np.float32)
    R.uniform_(out, -2.0, 3.0, g)
    np.testing.assert_allclose(out.to_host(), -2.0 + 5.0 * u, rtol=1e-6, atol=1e-6)
    u = P.uniform_reference(5, 1, 16, True)
    for fill, args, expect in [
        (R.exponential_, (2.0,), -np.log1p(-u) / 2.0),
        (R.cauchy_, (1.0, 0.5), 1.0 + 0.5 * np.tan(np.pi * (u - 0.5))),
    ]:
        g.set_offset(1)
        out = A.empty((16,), np.float64)
        fill(out, *args, generator=g)
        np.testing.assert_allclose(out.to_host(), expect, rtol=1e-9)
    g.set_offset(1)
    out = A.empty((16,), np.float64)
    R.bernoulli_(out, 0.3, g)
    np.testing.assert_array_equal(out.to_host(), (u < 0.3).astype(np.float64))
    g.set_offset(1)
    p = A.from_host(np.linspace(0, 1, 16))
    out = A.empty((16,), np.float64)
    R.bernoulli_(out, p, g)
    np.testing.assert_array_equal(out.to_host(), (u < np.linspace(0, 1, 16)).astype(np.float64))
    g.set_offset(1)
    out = A.empty((16,), np.float64)
    R.geometric_(out, 0.4, g)
    assert out.to_host().min() >= 1 and np.all(out.to_host() == np.round(out.to_host()))


def test_strided_target_gets_the_contiguous_draws_in_c_order():
    full = A.from_host(np.zeros((4, 6), np.float32))
    view = full[:, ::2]
    R.uniform_(view, 0.0, 1.0, _gen(8))
    ref = P.uniform_reference(8, 0, 12, False).astype(np.float32).reshape(4, 3)
    host = full.to_host()
    np.testing.assert_array_equal(host[:, ::2], ref)
    assert not host[:, 1::2].any()


def test_generator_state_seed_and_offsets():
    g = _gen(42)
    a = A.empty((8,), np.float32)
    b = A.empty((8,), np.float32)
    R.uniform_(a, generator=g)
    state = g.get_state()
    R.uniform_(b, generator=g)
    assert not np.array_equal(a.to_host(), b.to_host())  # every call takes a fresh offset
    g.set_state(state)
    c = A.empty((8,), np.float32)
    R.uniform_(c, generator=g)
    np.testing.assert_array_equal(b.to_host(), c.to_host())
    assert g.initial_seed() == 42 and g.get_offset() == 2
    assert state.numpy().dtype == np.uint8 and state.numel() == 16
    with pytest.raises(RuntimeError, match="wrong size"):
        g.set_state(jitorch.zeros(3, dtype=jitorch.uint8))
    assert P.PhiloxGenerator().manual_seed(-1).initial_seed() == 2 ** 64 - 1


def test_a_cpu_generator_is_refused_for_cuda_draws():
    with pytest.raises(RuntimeError, match="Expected a 'cuda' device type for generator"):
        R.uniform_(A.empty((3,), np.float32), generator=jitorch.Generator())


def test_randperm_is_a_permutation():
    perm = R.randperm(23, np.int64, _gen(3)).to_host()
    assert sorted(perm.tolist()) == list(range(23))


# -- tensor level ----------------------------------------------------------------------------------------------
def test_seeded_tensor_draws_are_reproducible():
    jitorch.cuda.manual_seed(11)
    x1, n1, i1 = (jitorch.rand(10, device="cuda"), jitorch.randn(6, device="cuda"),
                  jitorch.randint(2, 9, (7,), device="cuda"))
    jitorch.cuda.manual_seed(11)
    x2, n2, i2 = (jitorch.rand(10, device="cuda"), jitorch.randn(6, device="cuda"),
                  jitorch.randint(2, 9, (7,), device="cuda"))
    for a, b in [(x1, x2), (n1, n2), (i1, i2)]:
        assert a.device.type == "cuda"
        np.testing.assert_array_equal(a.cpu().numpy(), b.cpu().numpy())
    np.testing.assert_array_equal(x1.cpu().numpy(), P.uniform_reference(11, 0, 10, False).astype(np.float32))
    assert i1.cpu().numpy().min() >= 2 and i1.cpu().numpy().max() < 9
    assert sorted(jitorch.randperm(9, device="cuda").cpu().tolist()) == list(range(9))
    assert not jitorch.cuda._host_fallback_ops() & {"rand:uniform", "rand:normal", "rand:randint", "rand:randperm"}
