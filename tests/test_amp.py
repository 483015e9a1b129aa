"""Half precision on CPU and CUDA: bfloat16 storage and math, autocast, GradScaler.

Oracles: PyTorch's CPU bfloat16/float16 kernels and its CPU autocast and
GradScaler (torch is the test oracle), and the jitorch CPU path for the CUDA
results (CUDA parts run on Numba's simulator, tests/conftest.py).
"""
from __future__ import annotations

import io
import pickle
import warnings

import numpy as np
import pytest
from _cuda_kernel_helpers import fast_sim_threads  # noqa: F401 - autouse fixture

import jitorch
import jitorch.nn.functional as F
from jitorch import _dtype as D
from jitorch.amp import policy

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflowing casts in special values
CUDA = jitorch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="numba.cuda (or its simulator) is missing")
HALF = {"bfloat16": (jitorch.bfloat16, torch.bfloat16), "float16": (jitorch.float16, torch.float16)}


def _rng(seed: int = 0) -> np.random.Generator:
    """A fresh generator per test: the data does not depend on which tests ran before on this worker."""
    return np.random.default_rng(seed)


def _bits(t) -> np.ndarray:
    """The bfloat16 bit patterns of a jitorch (any device) or torch tensor, as uint16."""
    if isinstance(t, torch.Tensor):
        return t.view(torch.int16).numpy().view(np.uint16)
    return t.cpu()._data.view(np.uint16)


def _values(t) -> np.ndarray:
    """A tensor's values as float64 (through float32 for the half types)."""
    if isinstance(t, torch.Tensor):
        return t.detach().to(torch.float64).numpy()
    return t.detach().cpu().to(jitorch.float64).numpy()


def _special_floats() -> np.ndarray:
    """float32 values that exercise bfloat16 rounding: ties both ways, overflow to inf, subnormals, NaN, +-0."""
    ties = np.array([0x3F808000, 0x3F818000, 0x3F80C000, 0x3F807FFF, 0x7F7FFFFF, 0x7F7F8000, 0x00008000,
                     0x00018000, 0x80018000, 0x00000001, 0x807FFFFF], dtype=np.uint32).view(np.float32)
    rng = _rng(1)
    wide = (rng.standard_normal(400) * 10.0 ** rng.integers(-40, 39, 400)).astype(np.float32)
    return np.concatenate([ties, wide, np.float32([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1e-45])])


# -- bfloat16: the dtype ----------------------------------------------------------------------------------------

def test_bfloat16_dtype_and_promotion_follow_torch():
    assert jitorch.bfloat16 is D.bfloat16 and jitorch.bfloat16.is_floating_point
    assert repr(jitorch.bfloat16) == "jitorch.bfloat16" and jitorch.bfloat16.itemsize == 2
    names = ["bfloat16", "float16", "float32", "float64", "int64", "int32", "uint8", "bool"]
    for a in names:
        for b in names:
            got = jitorch.promote_types(D.to_dtype(a), D.to_dtype(b))
            want = torch.promote_types(getattr(torch, a), getattr(torch, b))
            assert got.name == str(want).split(".")[1], (a, b)
    x = jitorch.zeros(3, dtype=jitorch.bfloat16)
    assert x.is_floating_point() and jitorch.is_floating_point(x) and x.element_size() == 2
    assert (x + 1).dtype is jitorch.bfloat16 and (x + jitorch.ones(3)).dtype is jitorch.float32
    assert (x + jitorch.ones(3, dtype=jitorch.float16)).dtype is jitorch.float32
    assert (x + jitorch.arange(3)).dtype is jitorch.bfloat16
    assert D.type_word(jitorch.bfloat16) == "BFloat16"


@pytest.mark.parametrize("name", ["bfloat16", "float16", "float32", "float64"])
def test_finfo_matches_torch(name):
    ours, theirs = jitorch.finfo(getattr(jitorch, name)), torch.finfo(getattr(torch, name))
    for attr in ("bits", "eps", "max", "min", "tiny", "smallest_normal", "resolution"):
        assert getattr(ours, attr) == pytest.approx(getattr(theirs, attr), rel=1e-6), attr
    assert repr(ours) == repr(theirs)
    assert jitorch.iinfo(jitorch.int16).max == torch.iinfo(torch.int16).max
    with pytest.raises(TypeError):
        jitorch.finfo(jitorch.int32)


def test_float32_to_bfloat16_rounds_bit_exactly_like_torch():
    x = _special_floats()
    want = _bits(torch.tensor(x).to(torch.bfloat16))
    nan = np.isnan(x)
    got_host = D.bf16_bits(x)
    got = _bits(jitorch.tensor(x).to(jitorch.bfloat16))  # the generated CPU kernel
    for g in (got_host, got):
        np.testing.assert_array_equal(g[~nan], want[~nan])
        assert np.isnan(D.bf16_values(g[nan])).all()  # NaN stays NaN (quiet, sign kept)
    np.testing.assert_array_equal(np.signbit(D.bf16_values(got[nan])), np.signbit(x[nan]))
    # and back: bits -> float32 is exact
    back = jitorch.tensor(x).to(jitorch.bfloat16).to(jitorch.float32).numpy()
    np.testing.assert_array_equal(back[~nan], torch.tensor(x).to(torch.bfloat16).float().numpy()[~nan])


@pytest.mark.parametrize("src", ["float64", "float16", "int64", "int32", "uint8", "bool"])
def test_casts_to_and_from_bfloat16_match_torch(src):
    rng = _rng(2)
    vals = {"float64": rng.standard_normal(40) * 300, "float16": rng.standard_normal(40).astype(np.float16),
            "int64": rng.integers(-70000, 70000, 40), "int32": rng.integers(-300, 300, 40).astype(np.int32),
            "uint8": rng.integers(0, 255, 40).astype(np.uint8), "bool": rng.integers(0, 2, 40).astype(bool)}[src]
    t = torch.tensor(vals).to(torch.bfloat16)
    j = jitorch.tensor(vals).to(jitorch.bfloat16)
    np.testing.assert_array_equal(_bits(j), _bits(t))
    back_t, back_j = t.to(getattr(torch, src)), j.to(getattr(jitorch, src))
    np.testing.assert_array_equal(back_j.numpy(), back_t.numpy())


@needs_cuda
@pytest.mark.parametrize("src", ["float32", "float64", "float16", "int64", "bool"])
def test_cuda_casts_to_and_from_bfloat16_match_the_cpu(src):
    vals = np.concatenate([_special_floats()[:30], [1.5, -2.25, 300.7]]).astype(np.float64)
    if src in ("int64", "bool"):
        vals = np.nan_to_num(vals, posinf=9, neginf=-9).clip(-1e6, 1e6)
    host = jitorch.tensor(vals).to(getattr(jitorch, src))
    cpu = host.to(jitorch.bfloat16)
    gpu = host.cuda().to(jitorch.bfloat16)
    np.testing.assert_array_equal(_bits(gpu), _bits(cpu))
    # strided (transposed) source and destination take the N-d copy kernel
    m = host[:32].reshape(4, 8)
    np.testing.assert_array_equal(_bits(m.cuda().t().to(jitorch.bfloat16)), _bits(m.t().to(jitorch.bfloat16)))
    for dst in ("float32", "float16", "int64", "bool"):
        if dst in ("int64", "bool") and src in ("float32", "float64", "float16"):
            continue  # NaN/inf to integers is undefined in torch
        np.testing.assert_array_equal(gpu.to(getattr(jitorch, dst)).cpu().numpy(),
                                      cpu.to(getattr(jitorch, dst)).numpy())


def test_copy_fill_and_clone_keep_bfloat16_bits():
    b = jitorch.zeros(4, dtype=jitorch.bfloat16)
    b._data.view(np.uint16)[:] = [0x7F81, 0x8000, 0x3F80, 0xFF80]  # a NaN payload, -0, 1, -inf
    np.testing.assert_array_equal(_bits(b.clone()), _bits(b))
    dst = jitorch.zeros(2, 4, dtype=jitorch.bfloat16)
    dst.copy_(b)  # broadcast copy
    np.testing.assert_array_equal(_bits(dst), np.tile(_bits(b), (2, 1)))
    dst.fill_(1.01)
    np.testing.assert_array_equal(_bits(dst), _bits(torch.full((2, 4), 1.01, dtype=torch.bfloat16)))
    dst.copy_(jitorch.tensor([[1.5], [2.5]], dtype=jitorch.float64))
    assert dst.float().tolist() == [[1.5] * 4, [2.5] * 4]
    if CUDA:
        g = b.cuda()
        np.testing.assert_array_equal(_bits(g.clone()), _bits(b))
        g.fill_(-3.3)
        np.testing.assert_array_equal(_bits(g), _bits(torch.full((4,), -3.3, dtype=torch.bfloat16)))


def test_repr_matches_torch():
    x = np.array([[1.0, 2.5, -3.0], [1e-3, 1e30, 7.0]], dtype=np.float32)
    for vals in (x, x[:, :1] * 0 + 2, np.zeros((0, 2), np.float32)):
        got = repr(jitorch.tensor(vals).to(jitorch.bfloat16))
        assert got == repr(torch.tensor(vals).to(torch.bfloat16)).replace("torch.", "jitorch.")
    if CUDA:
        assert "device='cuda:0', dtype=jitorch.bfloat16" in repr(jitorch.tensor(x).cuda().to(jitorch.bfloat16))


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
def test_save_load_bfloat16(device):
    x = jitorch.tensor(_special_floats()[:24].reshape(4, 6)).to(jitorch.bfloat16).to(device)
    p = jitorch.nn.Parameter(jitorch.ones(3).to(jitorch.bfloat16))
    buf = io.BytesIO()
    jitorch.save({"x": x, "t": x.t(), "p": p, "dt": jitorch.bfloat16}, buf)
    buf.seek(0)
    y = jitorch.load(buf, map_location=device)
    assert y["x"].dtype is jitorch.bfloat16 and y["x"].device == x.device and y["dt"] is jitorch.bfloat16
    np.testing.assert_array_equal(_bits(y["x"]), _bits(x))
    np.testing.assert_array_equal(_bits(y["t"]), _bits(x).T)
    assert y["p"].requires_grad and y["p"].dtype is jitorch.bfloat16


def _tensor_item():
    return jitorch.tensor([2.5]).to(jitorch.bfloat16).item() == 2.5


def _tensor_tolist():
    return jitorch.tensor([2.5, -1.0]).to(jitorch.bfloat16).tolist() == [2.5, -1.0]


def _numpy_refused():
    with pytest.raises(TypeError, match="Got unsupported ScalarType BFloat16"):
        jitorch.zeros(2, dtype=jitorch.bfloat16).numpy()
    return True


# creation, conversion and host reads of bfloat16 tensors (the front end's side of the dtype)
_FRONT_END = {
    "creation: tensor(..., dtype=bfloat16)": lambda: _values(jitorch.tensor([1.5, 3.0], dtype=jitorch.bfloat16)
                                                             ).tolist() == [1.5, 3.0],
    "creation: ones/full/arange": lambda: _values(jitorch.ones(2, dtype=jitorch.bfloat16)).tolist() == [1.0, 1.0],
    "Tensor.item": _tensor_item,
    "Tensor.tolist": _tensor_tolist,
    "Tensor.numpy raises TypeError": _numpy_refused,
    "Tensor.bfloat16()": lambda: jitorch.ones(1).bfloat16().dtype is jitorch.bfloat16,
}


@pytest.mark.parametrize("what", sorted(_FRONT_END))
def test_bfloat16_front_end(what):
    assert _FRONT_END[what]()


# -- half math: elementwise, reductions, matmul --------------------------------------------------------------

_BINARY = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
           "div": lambda a, b: a / b, "maximum": lambda a, b: a.maximum(b) if hasattr(a, "maximum") else None,
           "scalar": lambda a, b: (a * 1.7) / 0.3, "gt": lambda a, b: a > b}
# (torch's CPU add/sub round a Python scalar to the tensor's half dtype first, while jitorch, like
# torch's CUDA kernels, adds it in float32: ``a - 0.3`` may differ in the last bit, so it is not listed)
_UNARY = {"exp": lambda a: a.exp(), "tanh": lambda a: a.tanh(), "sigmoid": lambda a: a.sigmoid(),
          "sqrt": lambda a: a.abs().sqrt(), "relu": lambda a: a.relu(), "neg": lambda a: -a}


def _pair(dt_name, shape=(3, 5)):
    rng = _rng(3)
    a = rng.standard_normal(shape).astype(np.float32) * 3
    b = rng.standard_normal(shape).astype(np.float32) + 0.5
    jd, td = HALF[dt_name]
    return (jitorch.tensor(a).to(jd), jitorch.tensor(b).to(jd)), (torch.tensor(a).to(td), torch.tensor(b).to(td))


@pytest.mark.parametrize("dt", ["bfloat16", "float16"])
@pytest.mark.parametrize("op", sorted(_BINARY) + sorted(_UNARY))
def test_half_elementwise_matches_torch_and_cuda_matches_cpu(dt, op):
    (ja, jb), (ta, tb) = _pair(dt)
    fn = _BINARY.get(op) or (lambda a, b, f=_UNARY[op]: f(a))
    got, want = fn(ja, jb), fn(ta, tb)
    assert got.dtype.name == str(want.dtype).split(".")[1]
    if op in ("add", "sub", "mul", "div", "maximum", "gt", "neg", "relu", "scalar"):
        np.testing.assert_array_equal(_values(got), _values(want))  # one float32 op, rounded once: exact
    else:  # float32 transcendental functions may differ in the last float32 bit
        np.testing.assert_allclose(_values(got), _values(want), rtol=1e-2 if dt == "bfloat16" else 1e-3)
    if CUDA:
        gpu = fn(ja.cuda(), jb.cuda())
        np.testing.assert_allclose(_values(gpu), _values(got), rtol=1e-2 if dt == "bfloat16" else 1e-3)
        if op in ("add", "mul", "div", "gt"):
            np.testing.assert_array_equal(_values(gpu), _values(got))


def test_bfloat16_mixed_and_strided_operands():
    (ja, jb), (ta, tb) = _pair("bfloat16", (4, 6))
    f = jitorch.tensor(_rng(4).standard_normal(6).astype(np.float32))
    np.testing.assert_array_equal(_values(ja + f), _values(ta + torch.tensor(f.numpy())))  # -> float32
    np.testing.assert_array_equal(_values(ja.t() * jb.t()), _values(ta.t() * tb.t()))  # strided kernel
    np.testing.assert_array_equal(_values(ja[:, ::2] + jb[0, ::2]), _values(ta[:, ::2] + tb[0, ::2]))  # broadcast
    c = ja.clone()
    c.add_(f)  # in place: float32 math, stored as bfloat16
    t = ta.clone()
    t.add_(torch.tensor(f.numpy()))
    np.testing.assert_array_equal(_bits(c), _bits(t))


_NP_RED = {"sum": np.sum, "mean": np.mean, "amax": np.max, "amin": np.min, "prod": np.prod,
           "norm": lambda v, axis=None: np.sqrt(np.sum(v * v, axis=axis))}


@pytest.mark.parametrize("dt", ["bfloat16", "float16"])
@pytest.mark.parametrize("red", ["sum", "mean", "amax", "amin", "prod", "norm"])
def test_half_reductions_match_torch_and_cuda_matches_cpu(dt, red):
    x = _rng(5).uniform(0.5, 1.5, (3, 4, 5)).astype(np.float32)
    jd, td = HALF[dt]
    j, t = jitorch.tensor(x).to(jd), torch.tensor(x).to(td)
    ulp = 2.0 ** -8 if dt == "bfloat16" else 2.0 ** -11
    for dims in (None, 1, (0, 2)):
        if red in ("prod", "norm") and isinstance(dims, tuple):
            continue
        kw = {} if dims is None else {"dim": dims}
        got, want = getattr(j, red)(**kw), getattr(t, red)(**kw)
        assert got.dtype is jd
        # accumulated in float64 and rounded once: within one rounding of the exact result
        exact = _NP_RED[red](_values(j), axis=dims)
        np.testing.assert_allclose(_values(got), exact, rtol=ulp)
        if red != "prod":  # torch's CPU bfloat16 prod rounds at every step (2% off over 60 factors)
            np.testing.assert_allclose(_values(got), _values(want), rtol=2 * ulp)
        if CUDA:
            gpu = getattr(j.cuda(), red)(**kw)
            assert gpu.dtype is jd
            np.testing.assert_allclose(_values(gpu), _values(got), rtol=ulp)


@pytest.mark.parametrize("dt", ["bfloat16", "float16"])
def test_half_matmul_matches_torch_and_cuda_matches_cpu(dt):
    rng = _rng(6)
    a = rng.standard_normal((2, 5, 7)).astype(np.float32)
    b = rng.standard_normal((7, 6)).astype(np.float32)
    jd, td = HALF[dt]
    ja, jb = jitorch.tensor(a).to(jd), jitorch.tensor(b).to(jd)
    got = ja @ jb
    want = torch.tensor(a).to(td) @ torch.tensor(b).to(td)
    assert got.dtype is jd
    np.testing.assert_allclose(_values(got), _values(want), rtol=1e-2, atol=1e-2)
    if CUDA:
        gpu = ja.cuda() @ jb.cuda()
        np.testing.assert_array_equal(_values(gpu), _values(got))  # float32 accumulation, one rounding
        gt = ja.cuda().transpose(1, 2).contiguous().transpose(1, 2) @ jb.cuda().t().contiguous().t()
        np.testing.assert_array_equal(_values(gt), _values(got))  # transposed operand layouts


def test_bfloat16_gradients_flow():
    rng = _rng(7)
    x = jitorch.tensor(rng.standard_normal((3, 4)).astype(np.float32)).to(jitorch.bfloat16).requires_grad_()
    w = jitorch.tensor(rng.standard_normal((4, 2)).astype(np.float32)).to(jitorch.bfloat16).requires_grad_()
    tx = torch.tensor(x.float().detach().numpy()).bfloat16().requires_grad_()
    tw = torch.tensor(w.float().detach().numpy()).bfloat16().requires_grad_()
    (x @ w).tanh().float().sum().backward()  # (a bfloat16 ones_like for the implicit grad: change request)
    (tx @ tw).tanh().float().sum().backward()
    assert x.grad.dtype is jitorch.bfloat16
    np.testing.assert_allclose(_values(x.grad), _values(tx.grad), rtol=3e-2, atol=3e-2)
    np.testing.assert_allclose(_values(w.grad), _values(tw.grad), rtol=3e-2, atol=3e-2)


def test_kernel_ops_without_bfloat16_support_run_via_float32():
    from jitorch.runtime.bf16 import run_via_float32
    bits = jitorch.tensor([1.0, 4.0, 9.0]).to(jitorch.bfloat16)._data
    out = run_via_float32(lambda a, scale: np.sqrt(a) * scale, [bits], {"scale": np.float32(2)})
    assert out.dtype == D.BF16_STORAGE and D.bf16_values(out).tolist() == [2.0, 4.0, 6.0]
    mixed = run_via_float32(lambda a, b: a + b, [bits, np.ones(3, np.float32)], {})
    assert mixed.dtype == np.float32  # a float32 operand: the result is float32, as promotion says
    if CUDA:
        g = run_via_float32(lambda a: a, [jitorch.tensor([1.5]).to(jitorch.bfloat16).cuda()._data], {})
        assert D.is_bf16(g.dtype) and D.bf16_values(g.to_host()).tolist() == [1.5]


# -- autocast ----------------------------------------------------------------------------------------------

def _mats():
    rng = _rng(8)
    a = rng.standard_normal((3, 4)).astype(np.float32)
    w = rng.standard_normal((4, 5)).astype(np.float32)
    return a, w


_AUTOCAST_OPS = {
    "matmul": lambda m, a, w: a @ w, "mm": lambda m, a, w: m.mm(a, w),
    "bmm": lambda m, a, w: m.bmm(a[None], w[None]), "addmm": lambda m, a, w: m.addmm(w[0], a, w),
    "baddbmm": lambda m, a, w: m.baddbmm(w[None, :3], a[None], w[None]),
    "addbmm": lambda m, a, w: m.addbmm(w[:3], a[None], w[None]),
    "mv": lambda m, a, w: m.mv(a, w[:, 0]), "dot": lambda m, a, w: m.dot(a[0], w[:, 0]),
    "linear_nobias": lambda m, a, w: m.nn.functional.linear(a, w.t()),
    "conv2d_nobias": lambda m, a, w: m.nn.functional.conv2d(a[None, None], w[None, None, :2, :2]),
    "softmax": lambda m, a, w: (a @ w).softmax(-1), "log_softmax": lambda m, a, w: m.log_softmax(a @ w, 1),
    "sum": lambda m, a, w: (a @ w).sum(), "mean": lambda m, a, w: (a @ w).mean(),
    "prod": lambda m, a, w: (a @ w).prod(), "logsumexp": lambda m, a, w: m.logsumexp(a @ w, 1),
    "norm": lambda m, a, w: (a @ w).norm(), "relu": lambda m, a, w: (a @ w).relu(),
    "amax": lambda m, a, w: (a @ w).amax(),
}


@pytest.mark.parametrize("op", sorted(_AUTOCAST_OPS))
@pytest.mark.parametrize("in_dtype", ["float32", "bfloat16"])
def test_cpu_autocast_dtypes_match_torch(op, in_dtype):
    a, w = _mats()
    fn = _AUTOCAST_OPS[op]
    ja, jw = jitorch.tensor(a).to(getattr(jitorch, in_dtype)), jitorch.tensor(w)
    ta, tw = torch.tensor(a).to(getattr(torch, in_dtype)), torch.tensor(w)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        try:
            want = fn(torch, ta, tw)
        except RuntimeError:
            want = None  # torch refuses mixed dtypes here (mv, dot on the CPU)
    with jitorch.autocast("cpu", dtype=jitorch.bfloat16):
        if want is None:
            with pytest.raises(RuntimeError):
                fn(jitorch, ja, jw)
            return
        got = fn(jitorch, ja, jw)
    assert got.dtype.name == str(want.dtype).split(".")[1]
    np.testing.assert_allclose(_values(got), _values(want), rtol=5e-2, atol=5e-2)


# what torch's CUDA autocast gives for float32 inputs (aten/src/ATen/autocast_mode.h's lists)
_CUDA_AUTOCAST_DTYPES = {"matmul": "float16", "mm": "float16", "bmm": "float16", "addmm": "float16",
                         "baddbmm": "float16", "addbmm": "float16", "mv": "float16", "dot": "float32",
                         "linear_nobias": "float16", "conv2d_nobias": "float16", "softmax": "float32",
                         "log_softmax": "float32", "sum": "float32", "mean": "float16", "prod": "float32",
                         "logsumexp": "float32", "norm": "float32", "relu": "float16", "amax": "float16"}


@needs_cuda
@pytest.mark.parametrize("op", sorted(_AUTOCAST_OPS))
def test_cuda_autocast_dtypes_follow_torchs_lists(op):
    a, w = _mats()
    fn = _AUTOCAST_OPS[op]
    ja, jw = jitorch.tensor(a, device="cuda"), jitorch.tensor(w, device="cuda")
    with jitorch.autocast("cuda"):
        got = fn(jitorch, ja, jw)
    assert got.dtype.name == _CUDA_AUTOCAST_DTYPES[op]
    ref = fn(jitorch, jitorch.tensor(a), jitorch.tensor(w))  # float32 on the CPU, no autocast
    np.testing.assert_allclose(_values(got), _values(ref), rtol=2e-2, atol=2e-2)
    with jitorch.autocast("cpu"):  # a CPU region leaves CUDA tensors alone
        assert fn(jitorch, ja, jw).dtype is jitorch.float32


def _linear_conv_layers(lib, device):
    """A Linear and a Conv2d (both with bias) holding the same float32 parameters in ``lib``."""
    rng = _rng(12)
    lin, conv = lib.nn.Linear(4, 5), lib.nn.Conv2d(2, 3, 2)
    for p in list(lin.parameters()) + list(conv.parameters()):
        with lib.no_grad():
            p.copy_(lib.tensor(rng.standard_normal(tuple(p.shape)).astype(np.float32)))
    return lin.to(device), conv.to(device)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
@pytest.mark.parametrize("dt", ["bfloat16", "float16"])
def test_linear_and_conv_with_bias_follow_torch_under_autocast(device, dt):
    a, _ = _mats()
    img = _rng(13).standard_normal((1, 2, 4, 4)).astype(np.float32)
    (jl, jc), (tl, tc) = _linear_conv_layers(jitorch, device), _linear_conv_layers(torch, "cpu")
    with torch.autocast("cpu", dtype=HALF[dt][1]):
        t_out = (tl(torch.tensor(a)), tc(torch.tensor(img)))
    with jitorch.autocast(device, dtype=HALF[dt][0]):
        j_out = (jl(jitorch.tensor(a, device=device)), jc(jitorch.tensor(img, device=device)))
    for got, want in zip(j_out, t_out):
        assert got.dtype.name == str(want.dtype).split(".")[1] == dt
        np.testing.assert_allclose(_values(got), _values(want), rtol=2e-2, atol=2e-2)
    # backward outside the region: the float32 parameters get float32 gradients, as in torch
    for out in j_out:
        out.float().pow(2).sum().backward()
    for out in t_out:
        out.float().pow(2).sum().backward()
    for jp, tp in zip(list(jl.parameters()) + list(jc.parameters()), list(tl.parameters()) + list(tc.parameters())):
        assert jp.dtype is jitorch.float32 and jp.grad.dtype is jitorch.float32
        # (gradients of sums of rounded products: compared relative to the largest one)
        np.testing.assert_allclose(_values(jp.grad), tp.grad.numpy(), rtol=2e-2,
                                   atol=2e-2 * np.abs(tp.grad.numpy()).max())


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
def test_gradients_through_autocast_reach_float32_parameters(device):
    a, w = _mats()
    x = jitorch.tensor(a, device=device)
    W = jitorch.tensor(w, device=device, requires_grad=True)
    with jitorch.autocast(device, dtype=jitorch.float16):
        y = (x @ W).relu() @ W.t()
        assert y.dtype is jitorch.float16
        loss = y.float().pow(2).sum()
    loss.backward()
    assert W.grad.dtype is jitorch.float32
    tW = torch.tensor(w, requires_grad=True)
    ((torch.tensor(a) @ tW).relu() @ tW.t()).pow(2).sum().backward()
    np.testing.assert_allclose(_values(W.grad), tW.grad.numpy(), rtol=2e-2, atol=2e-2)


def test_autocast_state_nesting_decorator_and_cache():
    assert not jitorch.is_autocast_enabled("cpu") and jitorch.get_autocast_dtype("cpu") is jitorch.bfloat16
    assert jitorch.get_autocast_dtype("cuda") is jitorch.float16 and not jitorch.is_autocast_enabled()
    w = jitorch.nn.Parameter(jitorch.ones(3, 3))
    x = jitorch.ones(2, 3)
    with jitorch.autocast("cpu", dtype=jitorch.float16):
        assert jitorch.is_autocast_enabled("cpu") and jitorch.get_autocast_dtype("cpu") is jitorch.float16
        c1 = policy.cast_inputs("linear", w)
        assert c1.dtype is jitorch.float16 and policy.cast_inputs("mm", w) is c1  # one cast per region
        assert policy.cast_inputs("mm", x) is not policy.cast_inputs("mm", x)  # non-parameters: not cached
        with jitorch.autocast("cpu", enabled=False):
            assert not jitorch.is_autocast_enabled("cpu") and (x @ w).dtype is jitorch.float32
        with jitorch.no_grad():
            w.add_(1)  # an in-place update: the cached cast is stale
        assert policy.cast_inputs("mm", w) is not c1
        assert (x @ w).dtype is jitorch.float16
    assert not jitorch.is_autocast_enabled("cpu") and jitorch.get_autocast_dtype("cpu") is jitorch.bfloat16
    assert not jitorch.amp.autocast_mode.state.cache  # cleared when the outermost region exits

    @jitorch.autocast("cpu")
    def f(a):
        return a @ a.t()

    assert f(x).dtype is jitorch.bfloat16 and (x @ x.t()).dtype is jitorch.float32
    assert jitorch.amp.autocast is jitorch.autocast


def test_autocast_errors_and_policy_table():
    with pytest.raises(RuntimeError, match="unsupported autocast device_type 'xpu'"):
        jitorch.autocast("xpu")
    with pytest.raises(ValueError):
        jitorch.autocast(0)
    with pytest.warns(UserWarning, match="target dtype is not supported"):
        ac = jitorch.autocast("cpu", dtype=jitorch.float64)
    with ac:
        assert not jitorch.is_autocast_enabled("cpu")
    with pytest.raises(TypeError):
        jitorch.autocast("cpu")(3)
    assert policy.category("softmax", "cuda") == "fp32" and policy.category("softmax", "cpu") is None
    assert policy.category("linear", "cpu") == "lower" and policy.category("mse_loss", "cpu") == "fp32"
    assert policy.category("dot", "cuda") == "promote" and policy.category("add", "cuda") is None
    x = jitorch.ones(2)
    assert policy.cast_inputs("softmax", x) is x and policy.cast_inputs("linear", x, None, 3) == (x, None, 3)
    with jitorch.autocast("cpu"):
        with pytest.raises(ValueError, match="no op named"):
            policy.cast_inputs("softmaxx", x)
        h = jitorch.ones(2, dtype=jitorch.bfloat16)
        d = jitorch.ones(2, dtype=jitorch.float64)
        assert policy.cast_inputs("mse_loss", h).dtype is jitorch.float32
        assert policy.cast_inputs("linear", d).dtype is jitorch.float64  # float64 is never lowered
        assert [t.dtype for t in policy.cast_inputs("cat", h, x)] == [jitorch.float32] * 2  # promote
    if CUDA:
        with jitorch.autocast("cuda"), pytest.raises(RuntimeError, match="unsafe to autocast"):
            policy.cast_inputs("binary_cross_entropy", x.cuda())


@needs_cuda
def test_deprecated_cuda_amp_spellings():
    import jitorch.cuda.amp as cuda_amp  # (the attribute jitorch.cuda.amp needs a hook in cuda.py: change request)
    with pytest.warns(FutureWarning, match="torch.amp.autocast\\('cuda'"):
        ac = cuda_amp.autocast()
    with ac:
        assert jitorch.is_autocast_enabled() and jitorch.get_autocast_dtype("cuda") is jitorch.float16
    with pytest.warns(FutureWarning, match="GradScaler\\('cuda'"):
        s = cuda_amp.GradScaler(init_scale=8.0)
    assert s.is_enabled() and s.get_scale() == 8.0


def test_custom_fwd_casts_inputs_and_disables_autocast():
    seen = {}

    class Square(jitorch.autograd.Function):
        @staticmethod
        @jitorch.amp.custom_fwd(device_type="cpu", cast_inputs=jitorch.float32)
        def forward(ctx, x):
            seen["fwd"] = (x.dtype, jitorch.is_autocast_enabled("cpu"))
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        @jitorch.amp.custom_bwd(device_type="cpu")
        def backward(ctx, g):
            seen["bwd"] = jitorch.is_autocast_enabled("cpu")
            (x,) = ctx.saved_tensors
            return 2 * x * g

    x = jitorch.tensor([1.0, 1.0, 1.0]).to(jitorch.bfloat16).requires_grad_()
    with jitorch.autocast("cpu"):
        y = Square.apply(x)
    y.sum().backward()
    assert seen == {"fwd": (jitorch.float32, False), "bwd": False}
    assert x.grad.dtype is jitorch.bfloat16 and x.grad.float().tolist() == [2.0] * 3


# -- GradScaler --------------------------------------------------------------------------------------------

def _scaler_run(lib, device, pattern, **kw):
    """Scale sequence, growth trackers and parameters of a GradScaler over steps; ``pattern`` marks the
    steps whose gradient gets an inf (True) or NaN ('nan')."""
    w0 = np.array([1.0, -2.0, 0.5], dtype=np.float32)
    w = lib.nn.Parameter(lib.tensor(w0, device=device))
    opt = lib.optim.SGD([w], lr=0.1)
    scaler = lib.amp.GradScaler(device, **kw)
    log = []
    for bad in pattern:
        opt.zero_grad()
        loss = (w * w).sum() * 3.0
        if bad:
            loss = loss * float("inf" if bad is True else "nan")
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        log.append((scaler.get_scale(), scaler._get_growth_tracker(), w.detach().cpu().numpy().tolist()))
    return log, scaler.state_dict()


_PATTERN = [False, False, True, False, False, False, "nan", False, False, False]


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
def test_grad_scaler_matches_torch(device):
    kw = {"init_scale": 2.0 ** 8, "growth_factor": 3.0, "backoff_factor": 0.3, "growth_interval": 2}
    ours, our_state = _scaler_run(jitorch, device, _PATTERN, **kw)
    theirs, their_state = _scaler_run(torch, "cpu", _PATTERN, **kw)
    for (s, g, w), (ts, tg, tw) in zip(ours, theirs):
        assert s == ts and g == tg
        np.testing.assert_allclose(w, tw, rtol=1e-6)
    assert our_state == their_state


def test_grad_scaler_api_and_errors():
    w = jitorch.nn.Parameter(jitorch.ones(2))
    opt = jitorch.optim.SGD([w], lr=0.1)
    scaler = jitorch.amp.GradScaler("cpu", init_scale=4.0, growth_interval=3)
    assert scaler.get_scale() == 4.0 and scaler.is_enabled()
    with pytest.raises(AssertionError, match="did not use scaler.scale"):
        scaler.step(opt)
    outs = scaler.scale([jitorch.ones(1), (jitorch.ones(1) * 2,)])
    assert outs[0].item() == 4.0 and outs[1][0].item() == 8.0 and isinstance(outs[1], tuple)
    scaler.scale((w * w).sum()).backward()
    scaler.unscale_(opt)
    assert w.grad.tolist() == [2.0, 2.0]  # unscaled in place
    with pytest.raises(RuntimeError, match="already been called"):
        scaler.unscale_(opt)
    scaler.step(opt)
    with pytest.raises(RuntimeError, match="step\\(\\) has already been called"):
        scaler.step(opt)
    with pytest.raises(RuntimeError, match="Closure use"):
        scaler.step(opt, closure=lambda: 0)
    scaler.update(new_scale=32.0)
    assert scaler.get_scale() == 32.0
    state = scaler.state_dict()
    other = jitorch.amp.GradScaler("cpu")
    other.load_state_dict(state)
    assert other.state_dict() == state == {"scale": 32.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                                           "growth_interval": 3, "_growth_tracker": 0}
    clone = pickle.loads(pickle.dumps(scaler))
    assert clone.get_scale() == 32.0
    with pytest.raises(RuntimeError, match="source state dict is empty"):
        other.load_state_dict({})
    half = jitorch.nn.Parameter(jitorch.ones(2, dtype=jitorch.float16))
    half_opt = jitorch.optim.SGD([half], lr=0.1)
    scaler.scale(half.float().sum()).backward()
    with pytest.raises(ValueError, match="Attempting to unscale FP16 gradients"):
        scaler.unscale_(half_opt)
    with pytest.raises(AssertionError, match="growth factor"):
        jitorch.amp.GradScaler("cpu", growth_factor=1.0)
    off = jitorch.amp.GradScaler("cpu", enabled=False)
    x = jitorch.ones(1)
    assert off.scale(x) is x and off.get_scale() == 1.0 and off.state_dict() == {}


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
def test_grad_scaler_unscales_bfloat16_gradients(device):
    # bfloat16 gradients take the tensor-op path of the check (no host read either)
    w = jitorch.nn.Parameter(jitorch.tensor([1.0, 2.0, 3.0]).to(jitorch.bfloat16).to(device))
    opt = jitorch.optim.SGD([w], lr=0.5)
    scaler = jitorch.amp.GradScaler(device, init_scale=64.0)
    for bad, scale in ((False, 64.0), (True, 32.0)):
        opt.zero_grad()
        loss = (w * w).float().sum()
        scaler.scale(loss * float("inf") if bad else loss).backward()
        scaler.unscale_(opt)
        found = scaler._found_inf_per_device(opt)
        assert sum(v.item() for v in found.values()) == float(bad)
        if not bad:
            assert w.grad.dtype is jitorch.bfloat16 and w.grad.float().cpu().tolist() == [2.0, 4.0, 6.0]
        scaler.update()
        assert scaler.get_scale() == scale


def _train(device, steps=3):
    jitorch.manual_seed(0)
    model = jitorch.nn.Sequential(jitorch.nn.Linear(3, 6), jitorch.nn.ReLU(), jitorch.nn.Linear(6, 2)).to(device)
    opt = jitorch.optim.SGD(model.parameters(), lr=0.2, momentum=0.5)
    scaler = jitorch.amp.GradScaler(device, init_scale=2.0 ** 14, growth_interval=2)
    rng = np.random.default_rng(1)
    x = jitorch.tensor(rng.standard_normal((5, 3)).astype(np.float32), device=device)
    y = jitorch.tensor(rng.integers(0, 2, 5), device=device)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        with jitorch.autocast(device, dtype=jitorch.float16):
            logits = model(x)
            loss = F.cross_entropy(logits.float(), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        losses.append(loss.item())
    return losses, scaler.get_scale(), [p.detach().cpu().numpy() for p in model.parameters()]


@needs_cuda
def test_autocast_grad_scaler_training_on_cuda_matches_the_cpu():
    cpu_losses, cpu_scale, cpu_params = _train("cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        gpu_losses, gpu_scale, gpu_params = _train("cuda")
    assert gpu_scale == cpu_scale
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-3, atol=1e-4)
    for p, q in zip(gpu_params, cpu_params):
        np.testing.assert_allclose(p, q, rtol=1e-3, atol=1e-4)
    assert cpu_losses[-1] < cpu_losses[0]
    assert "matmul" not in jitorch.cuda._host_fallback_ops()


# -- the front end's autocast hooks: nn.functional, pointwise math, scans -------------------------------------

def _act(rng_seed=14):
    a = _rng(rng_seed).standard_normal((2, 3, 4)).astype(np.float32)
    return a


_NN_AUTOCAST_OPS = {
    "exp": lambda m, F_, y: y.exp(), "log": lambda m, F_, y: (y.abs() + 1).log(), "pow": lambda m, F_, y: y.pow(2),
    "pow_op": lambda m, F_, y: y ** 3, "rsqrt": lambda m, F_, y: (y.abs() + 1).rsqrt(),
    "cumsum": lambda m, F_, y: y.cumsum(1), "softplus": lambda m, F_, y: F_.softplus(y),
    "layer_norm": lambda m, F_, y: F_.layer_norm(y, (4,)), "group_norm": lambda m, F_, y: F_.group_norm(y, 1),
    "softmin": lambda m, F_, y: F_.softmin(y, 1), "interpolate": lambda m, F_, y: F_.interpolate(y, scale_factor=2),
    "sdpa": lambda m, F_, y: F_.scaled_dot_product_attention(y, y, y),
    "prelu": lambda m, F_, y: F_.prelu(y, y.new_ones(3) * 0.25),
    "mse_loss": lambda m, F_, y: F_.mse_loss(y, y * 0.5), "l1_loss": lambda m, F_, y: F_.l1_loss(y, y * 0.5),
    "smooth_l1_loss": lambda m, F_, y: F_.smooth_l1_loss(y, y * 0.5),
    "huber_loss": lambda m, F_, y: F_.huber_loss(y, y * 0.5),
    "cross_entropy": lambda m, F_, y: F_.cross_entropy(y, m.tensor([[0, 1, 2, 0], [2, 2, 1, 0]], device=y.device)),
    "nll_loss": lambda m, F_, y: F_.nll_loss(y, m.tensor([[0, 1, 2, 0], [2, 2, 1, 0]], device=y.device)),
    "bce_with_logits": lambda m, F_, y: F_.binary_cross_entropy_with_logits(y, (y > 0).to(y.dtype)),
    "kl_div": lambda m, F_, y: F_.kl_div(y, y.abs(), reduction="batchmean"),
    "soft_margin_loss": lambda m, F_, y: F_.soft_margin_loss(y, y.sign()),
    "cosine_similarity": lambda m, F_, y: F_.cosine_similarity(y, y + 1),
}
# torch's CUDA lists (aten/src/ATen/autocast_mode.h) for a float16 input
_CUDA_NN_DTYPES = {"sdpa": "float16", "prelu": "float16"}


def _lowered(lib, device):
    """A float16/bfloat16 activation as autocast makes it: the product of float32 operands."""
    a = _act()
    x = lib.tensor(a, device=device)
    return x @ lib.eye(4, device=device)


@pytest.mark.parametrize("op", sorted(_NN_AUTOCAST_OPS))
def test_cpu_autocast_functional_dtypes_match_torch(op):
    fn = _NN_AUTOCAST_OPS[op]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want = fn(torch, torch.nn.functional, _lowered(torch, "cpu"))
    with jitorch.autocast("cpu", dtype=jitorch.bfloat16):
        got = fn(jitorch, F, _lowered(jitorch, "cpu"))
    assert got.dtype.name == str(want.dtype).split(".")[1]
    np.testing.assert_allclose(_values(got), _values(want), rtol=5e-2, atol=5e-2)


@needs_cuda
@pytest.mark.parametrize("op", sorted(_NN_AUTOCAST_OPS))
def test_cuda_autocast_functional_dtypes_follow_torchs_lists(op):
    fn = _NN_AUTOCAST_OPS[op]
    with jitorch.autocast("cuda"):
        y = _lowered(jitorch, "cuda")
        assert y.dtype is jitorch.float16
        got = fn(jitorch, F, y)
    assert got.dtype.name == _CUDA_NN_DTYPES.get(op, "float32")
    ref = fn(jitorch, F, jitorch.tensor(_act()).half().float())  # float32 on the CPU from the same values
    np.testing.assert_allclose(_values(got), _values(ref), rtol=2e-2, atol=2e-2)


@needs_cuda
def test_cuda_autocast_refuses_binary_cross_entropy_and_leaves_out_variants_alone():
    p = jitorch.tensor([0.2, 0.7], device="cuda")
    with jitorch.autocast("cuda"):
        with pytest.raises(RuntimeError, match="unsafe to autocast"):
            F.binary_cross_entropy(p, p)
        h = p.half()
        out = jitorch.empty(2, dtype=jitorch.float16, device="cuda")
        assert jitorch.exp(h, out=out) is out and out.dtype is jitorch.float16  # out= variants are not cast
        assert h.exp_().dtype is jitorch.float16  # nor in-place ones
        assert h.cumsum(0, dtype=jitorch.float64).dtype is jitorch.float64  # an explicit dtype wins
    F.binary_cross_entropy(p, p)  # fine outside the region


# -- compiled functions and autocast ---------------------------------------------------------------------------

def test_compiled_function_retraces_when_the_autocast_state_changes():
    jitorch.manual_seed(0)
    lin = jitorch.nn.Linear(4, 3)
    x = jitorch.tensor(_mats()[0])

    def fn(v):
        return lin(v).relu() * 2.0

    f = jitorch.compile(fn)
    runs = {}
    for mode in ("off", "bfloat16", "float16", "off again"):
        dt = {"bfloat16": jitorch.bfloat16, "float16": jitorch.float16}.get(mode)
        with jitorch.autocast("cpu", dtype=dt or jitorch.bfloat16, enabled=dt is not None):
            got, want = f(x), fn(x)
        assert got.dtype is want.dtype is (dt or jitorch.float32), mode
        np.testing.assert_array_equal(_values(got), _values(want))
        runs[mode] = got
    assert len(f.entries) == 3  # off, bfloat16, float16: the second "off" call reuses the first trace


# -- bfloat16 models and optimizers ------------------------------------------------------------------------------

def _bf16_model(lib):
    rng = _rng(15)
    model = lib.nn.Sequential(lib.nn.Linear(4, 6), lib.nn.LayerNorm(6), lib.nn.ReLU(), lib.nn.Linear(6, 3))
    with lib.no_grad():
        for p in model.parameters():
            p.copy_(lib.tensor(rng.standard_normal(tuple(p.shape)).astype(np.float32)))
    return model.bfloat16()


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
def test_bfloat16_module_forward_backward_and_step(device):
    x = _rng(16).standard_normal((5, 4)).astype(np.float32)
    target = [0, 2, 1, 1, 0]
    outs = {}
    for lib, dev in ((torch, "cpu"), (jitorch, device)):
        model = _bf16_model(lib).to(dev)
        assert all(p.dtype is lib.bfloat16 for p in model.parameters())
        opt = lib.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for _ in range(2):
            opt.zero_grad()
            out = model(lib.tensor(x, device=dev).bfloat16())
            loss = lib.nn.functional.cross_entropy(out.float(), lib.tensor(target, device=dev))
            loss.backward()
            opt.step()
        assert out.dtype is lib.bfloat16
        assert all(p.dtype is lib.bfloat16 and p.grad.dtype is lib.bfloat16 for p in model.parameters())
        outs[lib] = (out, [p.detach() for p in model.parameters()])
    np.testing.assert_allclose(_values(outs[jitorch][0]), _values(outs[torch][0]), rtol=5e-2, atol=5e-2)
    for p, q in zip(outs[jitorch][1], outs[torch][1]):
        np.testing.assert_allclose(_values(p), _values(q), rtol=5e-2, atol=5e-2)


_OPTIMIZERS = {"SGD": {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01, "nesterov": True},
               "Adam": {"lr": 0.05, "amsgrad": True}, "AdamW": {"lr": 0.05, "weight_decay": 0.1},
               "RMSprop": {"lr": 0.01, "momentum": 0.5, "centered": True}, "Adagrad": {"lr": 0.1}}


def _round_bf16(t):
    return t.to(jitorch.bfloat16).float()


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
@pytest.mark.parametrize("name", sorted(_OPTIMIZERS))
def test_bfloat16_parameters_update_in_float32_rounded_once(device, name):
    """A bfloat16 parameter (and its bfloat16 state) steps exactly like a float32 one whose parameter and
    state are rounded to bfloat16 after every step; torch (which rounds after every op) is close."""
    rng = _rng(17)
    w0 = jitorch.tensor(rng.standard_normal(6).astype(np.float32)).bfloat16()
    cls, kw = getattr(jitorch.optim, name), _OPTIMIZERS[name]
    p = jitorch.nn.Parameter(w0.to(device))
    ref = jitorch.nn.Parameter(w0.float().to(device))
    tp = torch.nn.Parameter(torch.tensor(w0.float().numpy()).bfloat16())
    opt, ref_opt, t_opt = cls([p], **kw), cls([ref], **kw), getattr(torch.optim, name)([tp], **kw)
    for _ in range(3):
        g = jitorch.tensor(rng.standard_normal(6).astype(np.float32)).bfloat16()
        p.grad, ref.grad = g.to(device), g.float().to(device)
        tp.grad = torch.tensor(g.float().numpy()).bfloat16()
        opt.step(), ref_opt.step(), t_opt.step()
        with jitorch.no_grad():
            ref.copy_(_round_bf16(ref))
            for v in ref_opt.state[ref].values():
                if isinstance(v, jitorch.Tensor) and v.shape == ref.shape:
                    v.copy_(_round_bf16(v))
        np.testing.assert_array_equal(_bits(p), _bits(ref.bfloat16()))
    assert p.dtype is jitorch.bfloat16
    assert all(v.dtype is jitorch.bfloat16 for v in opt.state[p].values()
               if isinstance(v, jitorch.Tensor) and v.shape == p.shape)
    np.testing.assert_allclose(_values(p), _values(tp), rtol=3e-2, atol=3e-2)


# -- the rest of the front end: kernel ops, creation, names, host reads ----------------------------------------

_KERNEL_OPS = {"cumsum": lambda m, x: x.cumsum(1), "cumprod": lambda m, x: x.cumprod(0),
               "sort": lambda m, x: x.sort(1)[0], "topk": lambda m, x: x.topk(2, 1)[0],
               "cat": lambda m, x: m.cat([x, x]), "index_select": lambda m, x: x[:, [2, 0]],
               "max_pool": lambda m, x: m.nn.functional.max_pool1d(x[None], 2),
               "conv1d": lambda m, x: m.nn.functional.conv1d(x[None], x[None, :, :2])}


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
@pytest.mark.parametrize("op", sorted(_KERNEL_OPS))
def test_bfloat16_kernel_ops_match_torch(device, op):
    x = _rng(18).uniform(0.5, 1.5, (3, 4)).astype(np.float32)
    got = _KERNEL_OPS[op](jitorch, jitorch.tensor(x, device=device).bfloat16())
    want = _KERNEL_OPS[op](torch, torch.tensor(x).bfloat16())
    assert got.dtype is jitorch.bfloat16 and want.dtype is torch.bfloat16
    np.testing.assert_allclose(_values(got), _values(want), rtol=1e-2, atol=1e-2)


_CREATION = {
    "tensor": lambda m, d: m.tensor([[1.01, -3.3], [1e30, 7.0]], dtype=m.bfloat16, device=d),
    "ones": lambda m, d: m.ones(2, 3, dtype=m.bfloat16, device=d),
    "zeros_like": lambda m, d: m.zeros_like(m.ones(2, device=d), dtype=m.bfloat16),
    "full": lambda m, d: m.full((2, 2), 1.01, dtype=m.bfloat16, device=d),
    "arange": lambda m, d: m.arange(0, 3, 0.3, dtype=m.bfloat16, device=d),
    "eye": lambda m, d: m.eye(3, 2, dtype=m.bfloat16, device=d),
    "from_float_tensor": lambda m, d: m.tensor(m.tensor([0.1, 2.7, 1e-3], device=d), dtype=m.bfloat16),
}


@pytest.mark.filterwarnings("ignore:To copy construct")  # torch's advice for tensor(tensor)
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
@pytest.mark.parametrize("what", sorted(_CREATION))
def test_bfloat16_creation_is_bit_exact_with_torch(device, what):
    got, want = _CREATION[what](jitorch, device), _CREATION[what](torch, "cpu")
    assert got.dtype is jitorch.bfloat16 and got.device.type == device
    np.testing.assert_array_equal(_bits(got), _bits(want))


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
def test_bfloat16_linspace_rounds_the_exact_points_once(device):
    # (torch steps in bfloat16 arithmetic, for float16 too; jitorch rounds the float64 points once)
    got = jitorch.linspace(-1, 1.3, 7, dtype=jitorch.bfloat16, device=device)
    np.testing.assert_array_equal(_bits(got), D.bf16_bits(np.linspace(-1, 1.3, 7)))
    want = torch.linspace(-1, 1.3, 7, dtype=torch.bfloat16)
    np.testing.assert_allclose(_values(got), _values(want), rtol=2 ** -7, atol=2 ** -8)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
def test_bfloat16_random_creation(device):
    jitorch.manual_seed(3)
    for t in (jitorch.rand(50, dtype=jitorch.bfloat16, device=device),
              jitorch.randn(50, dtype=jitorch.bfloat16, device=device),
              jitorch.randint(0, 5, (50,), dtype=jitorch.bfloat16, device=device)):
        assert t.dtype is jitorch.bfloat16
        v = _values(t)
        assert np.isfinite(v).all() and (np.asarray(D.bf16_bits(v)) == _bits(t)).all()  # proper bfloat16 values
    assert 0 <= _values(jitorch.rand(50, dtype=jitorch.bfloat16, device=device)).min()


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
def test_bfloat16_host_reads_names_and_numpy_refusal(device):
    x = jitorch.tensor([2.5, -1.0], device=device).bfloat16()
    tx = torch.tensor([2.5, -1.0]).bfloat16()
    assert x.tolist() == tx.tolist() and x[0].item() == tx[0].item() and isinstance(x[0].item(), float)
    assert bool(x[0]) and not bool(x[0] * 0) and float(x[1]) == -1.0
    assert x.type() == ("jitorch.cuda." if device == "cuda" else "jitorch.") + "BFloat16Tensor"
    assert jitorch.ones(2).type("torch.BFloat16Tensor").dtype is jitorch.bfloat16
    assert jitorch.ones(1).bfloat16().dtype is jitorch.bfloat16
    if device == "cpu":
        for call in (lambda: x.numpy(), lambda: np.asarray(x), lambda: x.numpy(force=True)):
            with pytest.raises(TypeError, match="Got unsupported ScalarType BFloat16"):
                call()
        with pytest.raises(TypeError, match="Got unsupported ScalarType BFloat16"):
            tx.numpy()  # (torch agrees)
    a = jitorch.tensor([1.0, 2.0], device=device).bfloat16()
    jitorch.testing.assert_close(a, (a.float() * 1.01).bfloat16())  # torch's bfloat16 tolerance: rtol 1.6e-2
    with pytest.raises(AssertionError):
        jitorch.testing.assert_close(a, (a.float() * 1.05).bfloat16())
    if device == "cuda":  # a CPU 0-d bfloat16 tensor is a scalar operand of a CUDA op
        assert (x + jitorch.tensor(1.5).bfloat16()).tolist() == [4.0, 0.5]


@needs_cuda
def test_cuda_amp_attribute_and_bf16_support():
    assert jitorch.cuda.amp.autocast is __import__("jitorch.amp._cuda_amp", fromlist=["x"]).autocast
    assert jitorch.cuda.is_bf16_supported() is True
    assert jitorch.cuda.is_bf16_supported(including_emulation=False) == (jitorch.cuda.get_device_capability() >= (8, 0))


@needs_cuda
@pytest.mark.parametrize("src", ["int64", "int32", "float32", "bfloat16", "int8"])
def test_cuda_narrowing_integer_casts_wrap_like_the_cpu(src):
    vals = np.array([300, -1, 70000, -129, 2 ** 40 + 5, 255, 128], dtype=np.int64)
    if src in ("float32", "bfloat16"):  # (a float beyond int32's range cast to a narrower integer is undefined)
        vals = np.delete(vals, 4) + (0.5 if src == "float32" else 0)
    host = jitorch.tensor(vals).to(getattr(jitorch, src))
    for dst in ("uint8", "int8", "int16", "int32"):
        want = host.to(getattr(jitorch, dst)).numpy()
        np.testing.assert_array_equal(host.cuda().to(getattr(jitorch, dst)).cpu().numpy(), want)
        np.testing.assert_array_equal(host.cuda()[::2].to(getattr(jitorch, dst)).cpu().numpy(), want[::2])
