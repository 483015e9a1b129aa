"""Elementwise ops on CUDA: every registry template, every dtype, every layout, against the CPU path.

Runs on Numba's CUDA simulator (tests/conftest.py), so arrays are a dozen
elements.  The reference is the CPU backend (``runtime/cpu.py``) on the same
values: both backends expand the same templates, so they must agree on values,
special values (nan, inf, -0.0) and integer semantics.  One test compiles every
generated kernel for a real GPU (sm_90) when a CUDA toolkit is available.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from _cuda_kernel_helpers import fast_sim_threads  # noqa: F401 - autouse fixture

import jitorch
from jitorch import _dispatch
from jitorch import _dtype as D
from jitorch.ops.registry import OPS
from jitorch.runtime import cpu

pytestmark = [pytest.mark.skipif(not jitorch.cuda.is_available(), reason="numba.cuda (or its simulator) is missing"),
              pytest.mark.filterwarnings("ignore::RuntimeWarning")]

if jitorch.cuda.is_available():
    from jitorch.runtime.cuda import array, dispatch_cache
    from jitorch.runtime.cuda import elementwise as cew

F16, F32, F64 = D.float16, D.float32, D.float64
I8, I16, I32, I64, U8, B = D.int8, D.int16, D.int32, D.int64, D.uint8, D.bool_
ALL = (F32, F64, F16, I8, I16, I32, I64, U8, B)
TOL = {"float16": (1e-3, 1e-3), "float32": (1e-5, 1e-6), "float64": (1e-12, 1e-300)}

# operands: a float value set with the special values, integer sets that avoid zero
# divisors, out-of-range shifts and negative integer powers (undefined or errors in torch)
FLOAT_A = np.array([[-1.75, -1.0, -0.5, -0.0, 0.0, 0.3], [0.5, 1.0, 1.5, 2.0, np.nan, np.inf]])
FLOAT_B = np.array([[0.5, -2.0, 1.5, 1.0, -0.25, 3.0], [-0.0, 0.7, np.nan, -1.5, 2.0, -np.inf]])
INT_A = np.array([[-7, -3, 0, 2, 5, 9], [1, -1, 4, -6, 8, 3]])
INT_B = np.array([[2, 3, 1, 4, 5, 2], [3, 1, 2, 5, 4, 1]])  # positive: divisors, shifts, exponents
BOOL_A = np.array([[True, False, True, True, False, False], [False, True, True, False, True, False]])
BOOL_B = np.array([[True, True, False, False, True, False], [False, False, True, True, True, False]])

# ops whose trailing operands are Python scalars (slopes, bounds, fill values)
SCALAR_TAIL = {"softplus": (2.0, 3.0), "elu": (0.5,), "leaky_relu": (0.2,), "hardtanh": (-0.5, 1.2),
               "nan_to_num": (0.0, 100.0, -100.0), "addcmul": (0.5,), "addcdiv": (0.5,)}


# arithmetic on bools is an error in torch except where it means or/and/select
BOOL_ARITHMETIC = {"add", "mul", "maximum", "minimum", "fmax", "fmin", "where", "copy", "clone", "to_copy",
                   "copy_into"}


# the default run covers each kind of code path once (float32/float64 templates differ, float16
# computes in float32, int64 and uint8 integer semantics, bool); the narrower signed integers
# repeat int64's code with another wraparound and run with -m slow (each dtype is another
# CPU reference kernel to compile, ~0.1-0.3 s cold)
DEFAULT_DTYPES = (F32, F64, F16, I64, U8, B)
EXTRA_DTYPES = (I8, I16, I32)


def _dtypes(op, choice):
    rule = op.dtype_rule
    if rule == "integral":
        allowed = (I8, I16, I32, I64, U8, B)
    elif rule in ("bool", "logical", "float") or op.name in BOOL_ARITHMETIC:
        allowed = ALL
    else:
        allowed = ALL[:-1]
    return [d for d in choice if d in allowed]


def _values(dt, second=False):
    if dt.is_floating_point:
        v = FLOAT_B if second else FLOAT_A
    elif dt is B:
        v = BOOL_B if second else BOOL_A
    else:
        v = INT_B if second else INT_A
        if dt is U8:
            v = np.abs(v)
    return v.astype(dt.numpy_dtype)


def _operands(op, dt):
    tail = SCALAR_TAIL.get(op.name, ())
    n_arrays = op.nin - len(tail)
    ops = []
    for k in range(n_arrays):
        if op.name == "where" and k == 0:
            ops.append(BOOL_A.copy())
        else:
            ops.append(_values(dt, second=k > 0))  # later operands: divisors, exponents, shifts
    return ops + list(tail)


def _run_cpu(op, operands, compute, out_dt, shape):
    return cpu.run_elementwise(op, operands, compute, out_dt, shape)


def _run_cuda(op, operands, compute, out_dt, shape, out=None):
    dev = [array.from_host(o) if isinstance(o, np.ndarray) else o for o in operands]
    res = cew.run_elementwise(op, dev, compute, out_dt, shape, out=out)
    return res.to_host()


def assert_match(got, want, dt):
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape
    if want.dtype.kind == "f":
        rtol, atol = TOL[str(want.dtype)]
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True)
        # signed zeros and infinities must agree too
        fin = np.isfinite(want) & (want == 0)
        assert np.array_equal(np.signbit(got[fin]), np.signbit(want[fin]))
    else:
        np.testing.assert_array_equal(got, want)


ELEMENTWISE = sorted(name for name, op in OPS.items() if op.kind == "elementwise")


def _check_op(name, dtypes):
    op = OPS[name]
    ran = 0
    for dt in _dtypes(op, dtypes):
        try:
            compute, odt = _dispatch._rule(op, dt)
        except NotImplementedError:
            continue
        operands = _operands(op, dt)
        try:
            want = _run_cpu(op, operands, compute, odt.numpy_dtype, (2, 6))
        except Exception:  # noqa: BLE001, S112 - a combination the CPU backend rejects is not a CUDA case
            continue
        got = _run_cuda(op, operands, compute, odt.numpy_dtype, (2, 6))
        assert_match(got, want, dt)
        ran += 1
    return ran


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_every_op_matches_cpu(name):
    assert _check_op(name, DEFAULT_DTYPES) > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_every_op_matches_cpu_on_narrow_integers(name):
    assert _check_op(name, EXTRA_DTYPES) > 0


def test_float16_computes_in_float32_and_rounds_once():
    # 2049 is not a float16; 2048 + 1 rounds to even (2048) in half, but a float32
    # intermediate keeps (2048 + 1) * 0.5 = 1024.5 exact before the single final rounding
    a = np.array([2048.0, 1.0, 3.0], np.float16)
    got = _run_cuda(OPS["lerp"], [a, np.ones(3, np.float16), 0.5], F32, np.dtype(np.float16), (3,))
    want = (a.astype(np.float32) + 0.5 * (1 - a.astype(np.float32))).astype(np.float16)
    assert np.array_equal(got, want)


# -- layouts ------------------------------------------------------------------------------------------

def _host_and_device(base: np.ndarray, view):
    d = array.from_host(base)
    return view(base), view(d)


@pytest.mark.parametrize("view", [
    lambda a: a.T,                       # transposed
    lambda a: a[:, ::2],                 # strided columns
    lambda a: a[1:, 1:4],                # offset window
    lambda a: a.reshape(2, 2, 6)[:, 1],  # interior of a 3-d array
], ids=["transposed", "step", "offset", "3d"])
def test_non_contiguous_inputs(view):
    base = np.arange(24, dtype=np.float32).reshape(4, 6) * 0.25 - 2
    hv, dv = _host_and_device(base, view)
    other = np.linspace(-1, 1, hv.size, dtype=np.float32).reshape(hv.shape)
    for name in ("mul", "maximum", "atan2"):
        op = OPS[name]
        want = _run_cpu(op, [np.ascontiguousarray(hv), other], F32, np.dtype(np.float32), hv.shape)
        got = cew.run_elementwise(op, [dv, array.from_host(other)], F32, np.dtype(np.float32), hv.shape).to_host()
        assert_match(got, want, F32)


def test_broadcasting_and_scalars():
    a = np.arange(6, dtype=np.float64).reshape(2, 1, 3) - 2.5
    b = np.array([[1.5], [-2.0], [0.25], [4.0]])  # (4, 1)
    shape = (2, 4, 3)
    for name in ("add", "sub", "div", "pow"):
        op = OPS[name]
        want = _run_cpu(op, [a, b], F64, np.dtype(np.float64), shape)
        got = _run_cuda(op, [a, b], F64, np.dtype(np.float64), shape)
        assert_match(got, want, F64)
        want = _run_cpu(op, [a, 3.0], F64, np.dtype(np.float64), a.shape)
        got = _run_cuda(op, [a, 3.0], F64, np.dtype(np.float64), a.shape)
        assert_match(got, want, F64)
    # a 0-d operand and a 0-d result
    z = np.array(2.0)
    assert_match(_run_cuda(OPS["mul"], [z, z], F64, np.dtype(np.float64), ()),
                 _run_cpu(OPS["mul"], [z, z], F64, np.dtype(np.float64), ()), F64)


def test_integer_scalars_wrap_like_torch():
    a = np.array([0, 1, 200, 255], np.uint8)
    got = _run_cuda(OPS["add"], [a, -1], U8, np.dtype(np.uint8), (4,))
    assert np.array_equal(got, (a.astype(np.int64) - 1).astype(np.uint8))
    i = np.array([-7, 7, -1, 6], np.int32)
    for name in ("floor_divide", "remainder", "fmod"):
        want = _run_cpu(OPS[name], [i, 3], I32, np.dtype(np.int32), (4,))
        assert np.array_equal(_run_cuda(OPS[name], [i, 3], I32, np.dtype(np.int32), (4,)), want)
        want = _run_cpu(OPS[name], [i, -3], I32, np.dtype(np.int32), (4,))
        assert np.array_equal(_run_cuda(OPS[name], [i, -3], I32, np.dtype(np.int32), (4,)), want)


@pytest.mark.parametrize("out_view", [lambda a: a, lambda a: a.T, lambda a: a[:, ::2]], ids=["contig", "T", "step"])
@pytest.mark.parametrize("out_dtype", [np.float32, np.float16, np.float64])
def test_output_views_and_dtypes(out_view, out_dtype):
    base = array.from_host(np.zeros((4, 6), out_dtype))
    target = out_view(base)
    x = np.linspace(-2, 2, target.size).reshape(target.shape).astype(np.float32)
    res = cew.run_elementwise(OPS["exp"], [array.from_host(x)], F32, np.dtype(out_dtype), x.shape, out=target)
    assert res is target
    want = _run_cpu(OPS["exp"], [x], F32, np.dtype(np.float32), x.shape).astype(out_dtype)
    got = target.to_host()
    assert got.dtype == want.dtype
    # computed in float32 (the CPU's exp32 and libdevice's expf may differ in the last bit)
    np.testing.assert_allclose(got, want, rtol=1e-3 if out_dtype == np.float16 else 1e-6)
    # elements outside the view are untouched
    mask = np.ones((4, 6), bool)
    out_view(mask)[...] = False
    assert np.all(base.to_host()[mask] == 0)


def test_in_place_reads_and_writes_same_elements():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    d = array.from_host(x)
    cew.run_elementwise(OPS["mul"], [d, d], F32, np.dtype(np.float32), x.shape, out=d)
    t = d.T
    cew.run_elementwise(OPS["add"], [t, 1.0], F32, np.dtype(np.float32), t.shape, out=t)
    assert np.array_equal(d.to_host(), x * x + 1)


def test_empty_and_large_rank():
    e = array.from_host(np.zeros((0, 3), np.float32))
    res = cew.run_elementwise(OPS["add"], [e, 1.0], F32, np.dtype(np.float32), (0, 3))
    assert res.shape == (0, 3)
    # rank 5 with every dim mergeable except where a broadcast breaks the run
    a = np.arange(2 * 3 * 2 * 2 * 3, dtype=np.float64).reshape(2, 3, 2, 2, 3)
    b = np.arange(3, dtype=np.float64).reshape(1, 3, 1, 1, 1)
    assert_match(_run_cuda(OPS["sub"], [a, b], F64, np.dtype(np.float64), a.shape),
                 _run_cpu(OPS["sub"], [a, b], F64, np.dtype(np.float64), a.shape), F64)


# -- layout classification and the launch table ---------------------------------------------------------

def test_coalesce_merges_dims_that_step_as_one():
    shape, st = cew.coalesce((64, 6, 28, 28), [(4704, 784, 28, 1), (0, 1, 0, 0)])
    assert shape == (64, 6, 784) and st == [(4704, 784, 1), (0, 1, 0)]
    shape, st = cew.coalesce((2, 1, 3), [(3, 3, 1)])
    assert shape == (6,) and st == [(1,)]


def test_repeated_calls_reuse_one_launcher():
    x = array.from_host(np.arange(6, dtype=np.float32))
    cew.run_elementwise(OPS["neg"], [x], F32, np.dtype(np.float32), (6,))
    before = dict(dispatch_cache.launches())
    n_table = len(dispatch_cache._TABLE)
    for _ in range(3):
        cew.run_elementwise(OPS["neg"], [x], F32, np.dtype(np.float32), (6,))
    after = dispatch_cache.launches()
    assert len(dispatch_cache._TABLE) == n_table
    assert after["cuda_neg_float32_float32_flat"] == before["cuda_neg_float32_float32_flat"] + 3


def test_generated_source_is_readable_and_named():
    src = cew.elementwise_source(OPS["add"], [np.dtype(np.float16), None], F32, np.dtype(np.float16), "nd2")
    assert "def cuda_add_float16_s_float16_nd2(n, s0, s1, a0, a0_0, a0_1, a1, out, out_0, out_1):" in src
    assert "np.float32(a0[c0 * a0_0 + c1 * a0_1])" in src
    assert "out[c0 * out_0 + c1 * out_1] = np.float16(y0)" in src


# -- tensors -------------------------------------------------------------------------------------------------

def _pair(a, dtype=jitorch.float32, requires_grad=False):
    c = jitorch.tensor(a, dtype=dtype, requires_grad=requires_grad)
    g = jitorch.tensor(a, dtype=dtype).to("cuda")
    if requires_grad:
        g.requires_grad_(True)
    return c, g


def test_tensor_ops_and_autograd_on_cuda():
    a = np.linspace(-1.5, 1.5, 12).reshape(3, 4)
    ca, ga = _pair(a, requires_grad=True)
    cb, gb = _pair(a[:, :1] * 2 + 0.5)
    outs = []
    for x, y in ((ca, cb), (ga, gb)):
        z = (x * y).sigmoid() + x.tanh() / (y + 3)
        z.backward(jitorch.ones_like(z))
        outs.append((z.detach(), x.grad))
    (cz, cg), (gz, gg) = outs
    assert gz.device.type == "cuda" and gg.device.type == "cuda"
    np.testing.assert_allclose(gz.cpu().numpy(), cz.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gg.cpu().numpy(), cg.numpy(), rtol=1e-5, atol=1e-6)


def test_tensor_in_place_out_and_comparisons():
    a = np.array([[1.0, -2.0, 3.5], [0.0, np.nan, -0.5]])
    c, g = _pair(a)
    c.mul_(2).add_(1)
    g.mul_(2).add_(1)
    np.testing.assert_allclose(g.cpu().numpy(), c.numpy(), equal_nan=True)
    gt = g.t()
    gt.clamp_(-1.0, 2.0)
    c.t().clamp_(-1.0, 2.0)
    np.testing.assert_allclose(g.cpu().numpy(), c.numpy(), equal_nan=True)
    assert np.array_equal((g > 0).cpu().numpy(), (c > 0).numpy())
    o = jitorch.empty((2, 3), device="cuda")
    jitorch.add(g, 1.0, out=o)
    np.testing.assert_allclose(o.cpu().numpy(), (c + 1).numpy(), equal_nan=True)
    h = jitorch.tensor(a, dtype=jitorch.float16).to("cuda")
    np.testing.assert_allclose((h * 3).cpu().numpy().astype(np.float64),
                               (jitorch.tensor(a, dtype=jitorch.float16) * 3).numpy().astype(np.float64),
                               equal_nan=True)


# -- every kernel compiles for a real GPU ----------------------------------------------------------------------

def _ptx_toolkit():
    """A CUDA_HOME with libNVVM, libdevice and NVRTC (JITORCH_PTX_CUDA_HOME, else CUDA_HOME), or None."""
    for home in (os.environ.get("JITORCH_PTX_CUDA_HOME"), os.environ.get("CUDA_HOME")):
        if not home:
            continue
        libs = os.listdir(os.path.join(home, "lib64")) if os.path.isdir(os.path.join(home, "lib64")) else []
        if any(n.startswith("libnvrtc.so") for n in libs) and os.path.isdir(os.path.join(home, "nvvm")):
            return home
    return None


_PTX_CHECK = r'''
import sys
import numba.cuda.dispatcher as _d

class _Device:  # device functions ask the current device for its compute capability
    compute_capability = (9, 0)
    id = 0

_d.get_current_device = lambda: _Device()
import numpy as np
from numba import cuda
import jitorch
from jitorch import _dispatch, _dtype as D
from jitorch.ops.registry import OPS
from jitorch.runtime import kernel_cache
from jitorch.runtime.cuda import codegen, elementwise as ew, optim_kernels, reduce as R
from jitorch.runtime.cuda.dispatch_cache import _numba_type

jobs = []
for op in OPS.values():
    if op.kind != "elementwise":
        continue
    for dt in (D.float32, D.float64, D.float16, D.int64, D.int8, D.uint8, D.bool_):
        try:
            compute, odt = _dispatch._rule(op, dt)
        except NotImplementedError:
            continue
        compute = D.float32 if compute is D.float16 else compute
        for mode in ("flat", "nd2"):
            in_dts = [dt.numpy_dtype] * op.nin
            if mode == "nd2" and op.nin > 1:
                in_dts[-1] = None
            jobs.append(ew._source(op, tuple(in_dts), compute, odt.numpy_dtype, mode))
for kind in ("sum", "prod", "amax", "amin", "all", "any", "norm2"):
    for dt in map(np.dtype, (np.float32, np.float64, np.float16, np.int64, np.int8, np.bool_)):
        if kind == "norm2" and dt.kind != "f":
            continue
        spec = R.spec_for(kind, dt)
        out = np.dtype(bool) if kind in ("all", "any") else dt
        for strategy, final, sp, nk, nr in (("rows", True, spec, 1, 1), ("rows", False, spec, 0, 2),
                                            ("rows", True, spec.second_pass(), 1, 1), ("cols", True, spec, 2, 1),
                                            ("cols", False, spec, 1, 1), ("cols", True, spec, 1, 2)):
            in_dt = dt if sp is spec else sp.acc_dt
            o = out if final else sp.acc_dt
            name = f"ptx_{kind}_{strategy}_{int(final)}_{dt}_{sp.kind}"
            src = codegen.render_reduce(name, in_dt, sp.acc_dt, o, sp.source_tuple(), nk, nr, strategy, 256, final,
                                        True, load_dt=sp.load_dt, fin_dt=sp.fin_dt)
            jobs.append((src, name, codegen.reduce_params(in_dt, o, nk, nr, strategy)))
for algo in ("sgd", "adam", "rmsprop", "adagrad"):
    for dt in (np.float32, np.float64, np.float16):
        jobs.append(optim_kernels.kernel_source(algo, dt))
bad = []
for src, name, params in jobs:
    disp = kernel_cache.load_kernel(src, name)
    try:
        ptx, _ = cuda.compile_ptx(disp.py_func, tuple(_numba_type(p) for p in params), cc=(9, 0))
        head = ptx[ptx.index(".entry"):]
        head = head[:head.index(")")]
        if head.count(".param ") != len(params):
            bad.append(f"{name}: {head.count('.param ')} PTX parameters for {len(params)} launch arguments")
    except Exception as e:
        bad.append(f"{name}: {type(e).__name__}: {str(e).splitlines()[0][:300]}")
print(f"{len(jobs)} kernels, {len(bad)} failed")
print("\n".join(bad))
sys.exit(1 if bad else 0)
'''


@pytest.mark.slow
@pytest.mark.skipif(_ptx_toolkit() is None, reason="no CUDA toolkit with NVVM and NVRTC (set JITORCH_PTX_CUDA_HOME)")
def test_every_generated_kernel_compiles_for_sm90():
    """Typing, lowering and PTX generation of every kernel for an H100, without a GPU (takes minutes)."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["CUDA_HOME"] = _ptx_toolkit()
    res = subprocess.run([sys.executable, "-c", _PTX_CHECK], env=env, capture_output=True, text=True, timeout=1800,
                         check=False)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]


def test_negative_strides_run_on_copies():
    x = np.arange(8, dtype=np.float32) - 3
    rev = array.from_host(x)[::-1]
    assert rev.strides[0] < 0
    got = cew.run_elementwise(OPS["mul"], [rev, 2.0], F32, np.dtype(np.float32), (8,)).to_host()
    assert np.array_equal(got, x[::-1] * 2)
    out = array.from_host(np.zeros(8, np.float32))
    cew.run_elementwise(OPS["add"], [array.from_host(x), 1.0], F32, np.dtype(np.float32), (8,), out=out[::-1])
    assert np.array_equal(out.to_host(), (x + 1)[::-1])
