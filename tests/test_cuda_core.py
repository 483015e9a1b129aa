"""CUDA core: devices, transfers, views, dispatch, memory, events, save/load, modules, host fallback.

Runs on Numba's CUDA simulator (tests/conftest.py sets NUMBA_ENABLE_CUDASIM=1),
so every tensor is tiny.  Results on CUDA are compared with the same code on the
CPU.
"""
import copy
import importlib.util
import io
import pickle
import subprocess
import sys
import types

import numpy as np
import pytest

import jitorch
from jitorch import _dispatch, nn
from jitorch.runtime.cuda import driver

pytestmark = pytest.mark.skipif(not jitorch.cuda.is_available(), reason="numba.cuda (or its simulator) is missing")

DTYPES = [jitorch.float32, jitorch.float64, jitorch.float16, jitorch.int8, jitorch.int16, jitorch.int32,
          jitorch.int64, jitorch.uint8, jitorch.bool]


@pytest.fixture(autouse=True, scope="module")
def elementwise_backend():
    """Elementwise CUDA kernels come from runtime/cuda/elementwise.py (another engineer's module).

    Until it exists, a stand-in runs the CPU kernels on host copies, so the dispatch
    code here is tested against the real ``run_elementwise`` signature.
    """
    name = "jitorch.runtime.cuda.elementwise"
    if importlib.util.find_spec(name) is not None:
        yield
        return
    from jitorch.runtime import cpu
    from jitorch.runtime.cuda import copy as dcopy
    from jitorch.runtime.cuda.array import CudaArray

    def run_elementwise(op, operands, compute, out_np_dtype, shape, out=None):
        host = [o.to_host() if isinstance(o, CudaArray) else o for o in operands]
        res = cpu.run_elementwise(op, host, compute, out_np_dtype, shape)
        if out is None:
            return dcopy.from_host(res)
        dcopy.copy_into(out, dcopy.from_host(res))
        return out

    stand_in = types.ModuleType(name)
    stand_in.run_elementwise = run_elementwise
    sys.modules[name] = stand_in
    try:
        yield
    finally:
        del sys.modules[name]
        _dispatch._runners.pop("cuda", None)


def _values(dt, shape=(2, 3), seed=0):
    rng = np.random.default_rng(seed)
    if dt is jitorch.bool:
        return rng.random(shape) > 0.5
    if dt.is_floating_point:
        return (rng.standard_normal(shape) * 3).astype(dt.numpy_dtype)
    lo = 0 if dt is jitorch.uint8 else -50
    return rng.integers(lo, 50, shape).astype(dt.numpy_dtype)


def _host(t):
    return t.detach().cpu().numpy()


# -- devices ----------------------------------------------------------------------------------------------
def test_device_strings_and_tensor_devices():
    assert jitorch.device("cuda").index is None
    assert jitorch.device("cuda:0") == jitorch.device("cuda", 0) == jitorch.device(0)
    for spec in ("cuda", "cuda:0", jitorch.device("cuda"), 0):
        t = jitorch.zeros(2, device=spec)
        assert t.device == jitorch.device("cuda", 0)
        assert repr(t.device) == "device(type='cuda', index=0)"
        assert t.is_cuda and not t.is_cpu and t.get_device() == 0
    assert jitorch.zeros(2).get_device() == -1


def test_invalid_device_index():
    with pytest.raises(RuntimeError, match="invalid device ordinal"):
        jitorch.zeros(1, device=f"cuda:{jitorch.cuda.device_count()}")
    with pytest.raises(RuntimeError, match="invalid device ordinal"):
        jitorch.cuda.set_device(jitorch.cuda.device_count())


def test_no_cuda_error_is_helpful(monkeypatch):
    from jitorch.runtime import device as rdev
    monkeypatch.setitem(driver._state, "available", False)
    monkeypatch.setattr(rdev, "_CUDA_OK", {})
    assert not jitorch.cuda.is_available()
    assert jitorch.cuda.device_count() == 0
    with pytest.raises(RuntimeError, match="NUMBA_ENABLE_CUDASIM=1"):
        jitorch.ones(2).to("cuda")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        jitorch.zeros(2, device="cuda:0")


def test_cuda_module_api():
    c = jitorch.cuda
    assert c.is_available() and c.device_count() >= 1 and c.is_initialized()
    assert c.current_device() == 0
    c.set_device(0)
    with c.device(0):
        assert c.current_device() == 0
    c.synchronize()
    props = c.get_device_properties(0)
    assert props.name == c.get_device_name() and props.total_memory > 0 and props.multi_processor_count >= 1
    assert c.get_device_capability() == (props.major, props.minor)
    c.init()
    assert issubclass(c.OutOfMemoryError, RuntimeError)
    free, total = c.mem_get_info()
    assert 0 <= free <= total


def test_seeding_is_accepted():
    jitorch.cuda.manual_seed(123)
    jitorch.cuda.manual_seed_all(123)
    assert jitorch.cuda.initial_seed() == 123


def test_import_does_not_load_numba_cuda():
    code = "import sys, jitorch, jitorch.cuda; print(any(m.startswith('numba.cuda') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- transfers ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dt", DTYPES, ids=lambda d: d.name)
def test_roundtrip_every_dtype(dt):
    a = _values(dt, (3, 4))
    x = jitorch.tensor(a)
    for src in (x, x.t(), x[:, 1:3], x[1], x[1, 2], x[:0]):  # contiguous, transposed, sliced, 1-d, 0-d, empty
        y = src.cuda()
        assert y.device.type == "cuda" and y.dtype is dt and y.shape == src.shape
        back = y.cpu()
        assert back.device.type == "cpu" and back.dtype is dt
        np.testing.assert_array_equal(back.numpy(), src.numpy())
    # a non-contiguous CUDA tensor back to the host
    yt = x.cuda().t()
    assert not yt.is_contiguous()
    np.testing.assert_array_equal(yt.cpu().numpy(), a.T)


def test_to_variants_and_copies():
    x = jitorch.arange(6.0).reshape(2, 3)
    y = x.to("cuda")
    assert y.to("cuda") is y and y.cuda() is y
    assert y.to("cuda", copy=True) is not y
    z = y.to("cuda", jitorch.float64)
    assert z.dtype is jitorch.float64 and z.is_cuda
    w = x.to(y)  # like another tensor
    assert w.is_cuda and w.dtype is y.dtype
    np.testing.assert_array_equal(_host(x.to(device="cuda", dtype=jitorch.int32)), x.numpy().astype(np.int32))
    assert y.cpu().to("cpu").device.type == "cpu"
    assert y.type() == "jitorch.cuda.FloatTensor" and x.type() == "jitorch.FloatTensor"
    assert x.type("torch.cuda.DoubleTensor").is_cuda and y.type("torch.LongTensor").device.type == "cpu"
    assert x.to(0).is_cuda and x.cuda(0).is_cuda
    assert y.data_ptr() != 0 and y.data_ptr() != x.data_ptr()


@pytest.mark.parametrize("dt", [jitorch.int32, jitorch.int64, jitorch.uint8, jitorch.int8, jitorch.bool,
                                jitorch.float16, jitorch.float64], ids=lambda d: d.name)
def test_casts_match_cpu(dt):
    # in-range values; NaN and out-of-range float->int casts are undefined in C and in torch's kernels
    vals = [1.7, -1.7, 0.5, 0.0, 100.0, -3.9, 2.5]
    x = jitorch.tensor(vals)
    np.testing.assert_array_equal(_host(x.cuda().to(dt)), x.to(dt).numpy())
    np.testing.assert_array_equal(_host(x.cuda().to(dt).to(jitorch.float32)), x.to(dt).to(jitorch.float32).numpy())


def test_nan_to_bool_is_true():
    x = jitorch.tensor([float("nan"), 0.0, -0.0, float("inf")])
    np.testing.assert_array_equal(_host(x.cuda().bool()), x.bool().numpy())


def test_copy_between_devices_broadcasts_and_casts():
    d = jitorch.zeros(2, 3, device="cuda")
    d.copy_(jitorch.tensor([1, 2, 3]))  # cpu int64 -> cuda float32, broadcast over rows
    np.testing.assert_array_equal(_host(d), [[1, 2, 3], [1, 2, 3]])
    h = jitorch.zeros(2, 3, dtype=jitorch.int32)
    h.copy_(d.t().t() * 2)
    np.testing.assert_array_equal(h.numpy(), [[2, 4, 6], [2, 4, 6]])
    d[0].copy_(jitorch.tensor([7.0, 8.0, 9.0], device="cuda"))
    np.testing.assert_array_equal(_host(d), [[7, 8, 9], [1, 2, 3]])


def test_host_reads():
    x = jitorch.tensor([[1.5, -2.0]], device="cuda")
    assert x[0, 0].item() == 1.5 and float(x[0, 1]) == -2.0 and int(x[0, 0]) == 1
    assert x.tolist() == [[1.5, -2.0]]
    assert bool(jitorch.tensor([True], device="cuda")) and not bool(jitorch.tensor(0, device="cuda"))
    assert f"{x[0, 0]:.2f}" == "1.50"
    with pytest.raises(RuntimeError, match="cannot be converted to Scalar"):
        x.item()


def test_numpy_on_cuda_raises_torch_error():
    x = jitorch.ones(2, device="cuda")
    msg = "can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the tensor to host memory first."
    with pytest.raises(TypeError) as e:
        x.numpy()
    assert str(e.value) == msg
    with pytest.raises(TypeError, match="can't convert cuda:0"):
        np.asarray(x)


def test_repr_has_device_suffix():
    x = jitorch.tensor([1.0, 2.5], device="cuda")
    assert repr(x) == "tensor([1.0000, 2.5000], device='cuda:0')"
    assert repr(jitorch.tensor([1, 2], device="cuda")) == "tensor([1, 2], device='cuda:0')"
    assert repr(jitorch.ones(2, device="cuda", dtype=jitorch.float64, requires_grad=True)) == \
        "tensor([1., 1.], device='cuda:0', dtype=jitorch.float64, requires_grad=True)"
    assert repr(jitorch.zeros(0, 2, device="cuda")) == "tensor([], device='cuda:0', size=(0, 2))"


def test_pickle_and_deepcopy_keep_device():
    x = jitorch.tensor([[1.0, 2.0], [3.0, 4.0]], device="cuda", requires_grad=True)
    y = pickle.loads(pickle.dumps(x))
    assert y.is_cuda and y.requires_grad and y.tolist() == x.tolist()
    z = copy.deepcopy(x)
    assert z.is_cuda and z.tolist() == x.tolist() and z.data_ptr() != x.data_ptr()
    p = nn.Parameter(jitorch.ones(2, device="cuda"))
    q = copy.deepcopy(p)
    assert isinstance(q, nn.Parameter) and q.is_cuda


# -- creation ------------------------------------------------------------------------------------------------
FACTORIES = [
    lambda d: jitorch.zeros(2, 3, device=d),
    lambda d: jitorch.ones(3, dtype=jitorch.int16, device=d),
    lambda d: jitorch.full((2, 2), 7.5, device=d),
    lambda d: jitorch.full((2,), True, device=d),
    lambda d: jitorch.arange(5, device=d),
    lambda d: jitorch.arange(0.0, 1.0, 0.25, device=d),
    lambda d: jitorch.linspace(-1, 1, 5, device=d),
    lambda d: jitorch.eye(3, 2, device=d),
    lambda d: jitorch.tensor([[1, 2], [3, 4]], dtype=jitorch.uint8, device=d),
    lambda d: jitorch.as_tensor(np.arange(4.0), device=d),
    lambda d: jitorch.zeros_like(jitorch.ones(2, 2), device=d),
    lambda d: jitorch.full_like(jitorch.ones(2, device=d), 3),
    lambda d: jitorch.ones_like(jitorch.ones(2, device=d), dtype=jitorch.float64),
    lambda d: jitorch.ones(2, device=d).new_zeros(3),
    lambda d: jitorch.ones(2, device=d).new_full((2,), 4.0),
    lambda d: jitorch.ones(2, device=d).new_tensor([5, 6]),
]


@pytest.mark.parametrize("make", FACTORIES, ids=range(len(FACTORIES)))
def test_factories_with_device(make):
    c, g = make("cpu"), make("cuda")
    assert g.is_cuda and g.dtype is c.dtype and g.shape == c.shape
    np.testing.assert_array_equal(_host(g), c.numpy())


def test_empty_and_random_factories_on_device():
    assert jitorch.empty(2, 3, device="cuda").is_cuda
    assert jitorch.empty_like(jitorch.ones(2, device="cuda")).is_cuda
    for t in (jitorch.rand(4, device="cuda"), jitorch.randn(4, device="cuda", dtype=jitorch.float64),
              jitorch.randint(0, 5, (4,), device="cuda"), jitorch.randperm(5, device="cuda"),
              jitorch.rand_like(jitorch.ones(3, device="cuda")), jitorch.randn_like(jitorch.ones(3, device="cuda"))):
        assert t.is_cuda
    u = _host(jitorch.rand(50, device="cuda"))
    assert ((u >= 0) & (u < 1)).all()
    assert sorted(_host(jitorch.randperm(6, device="cuda")).tolist()) == list(range(6))
    r = _host(jitorch.randint(2, 5, (40,), device="cuda"))
    assert r.min() >= 2 and r.max() < 5
    assert jitorch.rand(3, device="cuda", requires_grad=True).requires_grad
    jitorch.cuda.manual_seed(7)
    a = _host(jitorch.randn(6, device="cuda"))
    jitorch.cuda.manual_seed(7)
    np.testing.assert_array_equal(_host(jitorch.randn(6, device="cuda")), a)


def test_as_tensor_moves_tensors():
    x = jitorch.ones(2)
    assert jitorch.as_tensor(x, device="cuda").is_cuda
    y = jitorch.ones(2, device="cuda")
    assert jitorch.as_tensor(y) is y and jitorch.tensor(y).is_cuda


# -- views --------------------------------------------------------------------------------------------------
VIEWS = [
    lambda t: t.reshape(4, 3),
    lambda t: t.view(2, 2, 3),
    lambda t: t.permute(1, 0),
    lambda t: t.t(),
    lambda t: t[1],
    lambda t: t[:, 1:3],
    lambda t: t[::2, None, 1],
    lambda t: t[..., 2],
    lambda t: t.unsqueeze(0).expand(2, 3, 4),
    lambda t: t.diagonal(),
    lambda t: t.diagonal(1),
    lambda t: t.unfold(1, 2, 1),
    lambda t: t.as_strided((2, 2), (1, 4), 1),
    lambda t: t.narrow(1, 1, 2),
    lambda t: t.select(0, 2),
    lambda t: t.split(2, dim=1)[1],
    lambda t: t.unbind(1)[3],
    lambda t: t.flatten(),
    lambda t: t.squeeze().unsqueeze(-1),
]


@pytest.mark.parametrize("view", VIEWS, ids=range(len(VIEWS)))
def test_views_share_storage(view):
    base_cpu = jitorch.arange(12.0).reshape(3, 4)
    base = base_cpu.cuda()
    v = view(base)
    assert v.is_cuda and v._base is base
    assert v.untyped_storage() is base.untyped_storage()
    np.testing.assert_array_equal(_host(v), view(base_cpu).numpy())
    assert v.stride() == view(base_cpu).stride() and v.storage_offset() == view(base_cpu).storage_offset()


def test_write_through_view_reads_in_base():
    base = jitorch.zeros(3, 4, device="cuda")
    base[:, 1].fill_(5.0)
    base.t()[2].copy_(jitorch.tensor([1.0, 2.0, 3.0]))
    base.diagonal().add_(1)
    base[2, 3:] = 9
    expected = np.zeros((3, 4), np.float32)
    expected[:, 1] = 5
    expected[:, 2] = [1, 2, 3]
    expected[np.arange(3), np.arange(3)] += 1
    expected[2, 3] = 9
    np.testing.assert_array_equal(_host(base), expected)


def test_view_errors_like_cpu():
    x = jitorch.arange(6.0).reshape(2, 3).cuda().t()
    with pytest.raises(RuntimeError, match="view size is not compatible"):
        x.view(6)
    np.testing.assert_array_equal(_host(x.reshape(6)), np.arange(6.0).reshape(2, 3).T.reshape(6))
    with pytest.raises(RuntimeError, match="out of bounds for storage"):
        jitorch.zeros(4, device="cuda").as_strided((3,), (2,), 0)


def test_view_op_without_cuda_impl_never_falls_back():
    from jitorch.ops.registry import kernel_op
    op = _test_op("_test_view_op", kernel_op)
    x = jitorch.ones(2, device="cuda")
    with pytest.raises(NotImplementedError, match="view op"):
        _dispatch.apply(op, [x], view_of=x)


GRAD_VIEWS = [
    lambda t: t[1:, ::2],
    lambda t: t.unfold(1, 2, 1),  # overlapping windows: gradients add up
    lambda t: t.unfold(1, 2, 2),
    lambda t: t.as_strided((2, 2), (4, 1), 1),
    lambda t: t.as_strided((3, 3), (1, 1), 0),  # overlapping elements
    lambda t: t.diagonal(),
    lambda t: t.expand(2, 3, 4),
    lambda t: t.permute(1, 0).reshape(-1),
    lambda t: jitorch.cat(t.split([1, 2])[::-1]),
]


@pytest.mark.parametrize("view", GRAD_VIEWS, ids=range(len(GRAD_VIEWS)))
def test_view_gradients_match_cpu(view):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    xc = jitorch.tensor(a, requires_grad=True)
    xg = jitorch.tensor(a, device="cuda", requires_grad=True)
    w = np.random.default_rng(1).standard_normal(view(xc).shape).astype(np.float32)
    (view(xc) * jitorch.tensor(w)).sum().backward()
    (view(xg) * jitorch.tensor(w, device="cuda")).sum().backward()
    assert xg.grad.is_cuda
    np.testing.assert_allclose(_host(xg.grad), xc.grad.numpy(), rtol=1e-6)


# -- dispatch --------------------------------------------------------------------------------------------------
def test_mixed_devices_raise():
    c, g = jitorch.ones(2, 2), jitorch.ones(2, 2, device="cuda")
    msg = "Expected all tensors to be on the same device, but found at least two devices"
    with pytest.raises(RuntimeError, match=msg):
        c + g
    with pytest.raises(RuntimeError, match=msg):
        g * c
    with pytest.raises(RuntimeError, match=msg):
        g @ c  # a kernel op
    with pytest.raises(RuntimeError, match=msg):
        jitorch.add(c, c, out=jitorch.empty(2, 2, device="cuda"))
    with pytest.raises(RuntimeError, match=msg):
        jitorch.ones(2) + jitorch.tensor(1.0, device="cuda")  # only CPU 0-d tensors may join a CUDA op
    with pytest.raises(RuntimeError, match=msg):
        jitorch.tensor(1.0).add_(g.sum())  # ... and not as the written-to tensor


@pytest.mark.parametrize("dt0,dt1", [(jitorch.float32, jitorch.float64), (jitorch.int32, jitorch.float64),
                                     (jitorch.int64, jitorch.int8), (jitorch.float16, jitorch.int64)])
def test_cpu_scalar_tensor_joins_cuda_op(dt0, dt1):
    a = jitorch.tensor(_values(dt0, (3,)))
    s = jitorch.tensor(3, dtype=dt1)
    for res_cpu, res_gpu in ((a * s, a.cuda() * s), (s - a, s - a.cuda())):
        assert res_gpu.is_cuda and res_gpu.dtype is res_cpu.dtype
        np.testing.assert_array_equal(_host(res_gpu), res_cpu.numpy())
    c, g = a.clone(), a.cuda()
    try:
        c.add_(s)
    except RuntimeError as e:  # e.g. int32 += float64 scalar: same error on both devices
        with pytest.raises(RuntimeError, match=str(e)):
            g.add_(s)
        return
    g.add_(s)
    np.testing.assert_array_equal(_host(g), c.numpy())


def test_cpu_scalar_tensor_gradient_stays_on_cpu():
    s = jitorch.tensor(2.0, requires_grad=True)
    x = jitorch.tensor([1.0, 2.0, 3.0], device="cuda", requires_grad=True)
    (x * s).sum().backward()
    assert s.grad.device.type == "cpu" and s.grad.item() == 6.0
    assert x.grad.is_cuda and x.grad.tolist() == [2.0, 2.0, 2.0]


def test_inplace_out_and_views_on_cuda():
    x = jitorch.arange(6.0).reshape(2, 3)
    g = x.cuda()
    g[:, 1].mul_(10)
    x[:, 1].mul_(10)
    np.testing.assert_array_equal(_host(g), x.numpy())
    out = jitorch.empty(2, 3, device="cuda")
    r = jitorch.add(g, 1, out=out)
    assert r is out
    np.testing.assert_array_equal(_host(out), x.numpy() + 1)
    resized = jitorch.empty(0, device="cuda")
    jitorch.mul(g, g, out=resized)
    assert resized.is_cuda and resized.shape == (2, 3)
    v = g._version
    g.add_(1)
    assert g._version is v and v[0] > 0


def test_contiguous_and_clone():
    g = jitorch.arange(6.0).reshape(2, 3).cuda()
    assert g.contiguous() is g
    t = g.t()
    c = t.contiguous()
    assert c.is_contiguous() and c.data_ptr() != t.data_ptr()
    np.testing.assert_array_equal(_host(c), np.arange(6.0).reshape(2, 3).T)
    k = g.clone()
    k.fill_(0)
    assert g.sum().item() == 15


# -- autograd -----------------------------------------------------------------------------------------------------
def test_autograd_on_cuda_matches_cpu():
    a = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    xc = jitorch.tensor(a, requires_grad=True)
    xg = jitorch.tensor(a, device="cuda", requires_grad=True)
    for x in (xc, xg):
        y = (x * x + 2 * x).t().contiguous()
        (y[1:] * 3).sum().backward()
        (x.clone() * 0.5).sum().backward()  # accumulates
    assert xg.grad.is_cuda and xg.is_leaf
    np.testing.assert_allclose(_host(xg.grad), xc.grad.numpy(), rtol=1e-6)


def test_gradient_flows_back_through_transfers():
    x = jitorch.tensor([1.0, 2.0], requires_grad=True)
    y = x.cuda() * 3
    assert y.grad_fn is not None
    y.cpu().sum().backward()
    assert x.grad.device.type == "cpu" and x.grad.tolist() == [3.0, 3.0]
    g = jitorch.tensor([1.0, 2.0], device="cuda", requires_grad=True)
    (g.to("cpu", jitorch.float64) ** 2).sum().backward()
    assert g.grad.is_cuda and g.grad.tolist() == [2.0, 4.0]


def test_grad_assignment_checks_device():
    p = jitorch.zeros(2, device="cuda", requires_grad=True)
    with pytest.raises(RuntimeError, match="different type"):
        p.grad = jitorch.zeros(2)
    p.grad = jitorch.ones(2, device="cuda")
    assert p.grad.is_cuda


# -- save / load --------------------------------------------------------------------------------------------------
def _save_bytes(obj):
    buf = io.BytesIO()
    jitorch.save(obj, buf)
    return buf.getvalue()


def test_save_load_map_location():
    x = jitorch.arange(4.0, device="cuda").reshape(2, 2)
    data = _save_bytes({"x": x, "c": jitorch.ones(2)})
    out = jitorch.load(io.BytesIO(data))
    assert out["x"].is_cuda and out["c"].device.type == "cpu"
    np.testing.assert_array_equal(_host(out["x"]), _host(x))
    assert jitorch.load(io.BytesIO(data), map_location="cpu")["x"].device.type == "cpu"
    assert jitorch.load(io.BytesIO(data), map_location={"cuda:0": "cpu"})["x"].device.type == "cpu"
    moved = jitorch.load(io.BytesIO(data), map_location=jitorch.device("cuda"))
    assert moved["c"].is_cuda and moved["x"].is_cuda
    seen = []
    hook = jitorch.load(io.BytesIO(data), map_location=lambda t, loc: seen.append(loc) or t.cuda())
    assert sorted(seen) == ["cpu", "cuda:0"] and hook["c"].is_cuda


def test_load_to_cuda_without_cuda_explains(monkeypatch):
    data = _save_bytes([jitorch.ones(1, device="cuda")])
    monkeypatch.setitem(driver._state, "available", False)
    with pytest.raises(RuntimeError, match="map_location=jitorch.device\\('cpu'\\)"):
        jitorch.load(io.BytesIO(data))
    assert jitorch.load(io.BytesIO(data), map_location="cpu")[0].device.type == "cpu"


# -- modules ----------------------------------------------------------------------------------------------------
def test_module_to_cuda_and_back_keeps_parameters():
    jitorch.manual_seed(0)
    m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    params = list(m.parameters())
    m(jitorch.randn(5, 3)).sum().backward()
    before = {k: v.detach().clone() for k, v in m.state_dict().items()}
    grads = [p.grad.clone() for p in params]
    assert m.cuda() is m
    assert all(a is b for a, b in zip(params, m.parameters()))
    assert all(p.is_cuda and p.grad.is_cuda for p in m.parameters())
    assert all(b.is_cuda for b in m.buffers())
    for g, p in zip(grads, m.parameters()):
        np.testing.assert_array_equal(_host(p.grad), g.numpy())
    m.to("cpu")
    assert all(a is b for a, b in zip(params, m.parameters()))
    for k, v in m.state_dict().items():
        assert v.device.type == "cpu"
        np.testing.assert_array_equal(v.numpy(), before[k].numpy())
    m.to(jitorch.ones(1, device="cuda"))
    assert all(p.is_cuda for p in m.parameters())
    sd = {k: v.cpu() for k, v in m.state_dict().items()}
    m.load_state_dict(sd)  # copies CPU tensors into CUDA parameters
    assert all(p.is_cuda for p in m.parameters())


def test_tiny_mlp_training_step_matches_cpu():
    jitorch.manual_seed(0)
    cpu_model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    gpu_model = copy.deepcopy(cpu_model).cuda()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    y = rng.standard_normal((5, 2)).astype(np.float32)
    losses = []
    for model, dev in ((cpu_model, "cpu"), (gpu_model, "cuda")):
        xb, yb = jitorch.tensor(x, device=dev), jitorch.tensor(y, device=dev)
        opt = jitorch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for _ in range(2):
            opt.zero_grad()
            loss = ((model(xb) - yb) ** 2).mean()
            loss.backward()
            opt.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    for pc, pg in zip(cpu_model.parameters(), gpu_model.parameters()):
        assert pg.is_cuda and pg.grad.is_cuda
        np.testing.assert_allclose(_host(pg), pc.detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(_host(pg.grad), pc.grad.numpy(), rtol=1e-5, atol=1e-6)


# -- memory ----------------------------------------------------------------------------------------------------
def test_memory_stats_and_block_reuse():
    from jitorch.runtime.cuda.memory import round_size
    c = jitorch.cuda
    base = c.memory_allocated()
    x = jitorch.empty(1000, device="cuda")  # 4000 bytes -> one 4096-byte block
    assert c.memory_allocated() - base == round_size(4000)
    assert c.max_memory_allocated() >= c.memory_allocated()
    assert c.memory_reserved() >= c.memory_allocated()
    ptr = x.data_ptr()
    reserved = c.memory_reserved()
    del x
    assert c.memory_allocated() == base
    assert c.memory_reserved() == reserved  # the block stays cached
    y = jitorch.empty(1000, device="cuda")
    assert y.data_ptr() == ptr and c.memory_reserved() == reserved  # ... and is reused
    view = y[10:]
    del y
    assert c.memory_allocated() - base == round_size(4000)  # a view keeps its storage alive
    del view
    stats = c.memory_stats()
    assert stats["allocated_bytes.all.current"] == c.memory_allocated()
    c.reset_peak_memory_stats()
    assert c.max_memory_allocated() == c.memory_allocated()
    c.empty_cache()
    assert c.memory_reserved() == c.memory_allocated()


def test_out_of_memory_error():
    c = jitorch.cuda
    total = c.get_device_properties().total_memory
    c.empty_cache()
    try:
        c.set_per_process_memory_fraction((c.memory_reserved() + 65536) / total)
        small = jitorch.empty(1024, device="cuda")  # fits
        with pytest.raises(c.OutOfMemoryError, match="CUDA out of memory. Tried to allocate 4.00 MiB"):
            jitorch.empty(1 << 20, device="cuda")
        assert c.memory_stats()["num_ooms"] >= 1
        del small
    finally:
        c.set_per_process_memory_fraction(1.0)
    assert jitorch.empty(1 << 20, device="cuda").numel() == 1 << 20
    with pytest.raises(ValueError, match="Allowed range"):
        c.set_per_process_memory_fraction(1.5)


# -- events and streams -----------------------------------------------------------------------------------------
def test_events_time_work():
    start, end = jitorch.cuda.Event(enable_timing=True), jitorch.cuda.Event(enable_timing=True)
    with pytest.raises(RuntimeError, match="recorded"):
        start.elapsed_time(end)
    start.record()
    jitorch.ones(4, device="cuda").sum()
    end.record()
    end.synchronize()
    assert end.query() and start.elapsed_time(end) >= 0
    plain = jitorch.cuda.Event()
    plain.record()
    plain.wait()
    with pytest.raises(RuntimeError, match="enable_timing=True"):
        plain.elapsed_time(end)


def test_streams():
    c = jitorch.cuda
    s = c.Stream()
    assert c.current_stream() == c.default_stream()
    with c.stream(s):
        assert c.current_stream() is s
        y = jitorch.ones(3, device="cuda") * 2
        ev = s.record_event()
    assert c.current_stream() == c.default_stream()
    c.default_stream().wait_stream(s)
    ev.synchronize()
    s.synchronize()
    assert s.query() and y.tolist() == [2.0, 2.0, 2.0]


# -- host fallback --------------------------------------------------------------------------------------------------
def _test_op(name, kernel_op):
    from jitorch.ops.registry import OPS
    return OPS[name] if name in OPS else kernel_op(name, differentiable=False)


def test_kernel_op_without_cuda_impl_falls_back_visibly(monkeypatch, capsys):
    from jitorch.compiler import logs
    from jitorch.ops.registry import impl, kernel_op
    op = _test_op("_test_host_only_op", kernel_op)

    @impl("_test_host_only_op", "cpu")
    def _cpu(x, scale):
        return x.cumsum(axis=-1) * scale, x.max(axis=-1)

    monkeypatch.setattr(logs, "_enabled", {"cuda_fallback"})
    x = jitorch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    gc, mc = _dispatch.apply(op, [x], {"scale": 2.0})
    gg, mg = _dispatch.apply(op, [x.cuda().t().t()], {"scale": 2.0})
    _dispatch.apply(op, [x.cuda()], {"scale": 1.0})
    assert gg.is_cuda and mg.is_cuda
    np.testing.assert_array_equal(_host(gg), gc.numpy())
    np.testing.assert_array_equal(_host(mg), mc.numpy())
    assert "_test_host_only_op" in jitorch.cuda._host_fallback_ops()
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "_test_host_only_op" in ln]
    assert len(lines) <= 1 and all(ln.startswith("[jitorch:cuda_fallback]") for ln in lines)


def test_fallback_is_logged_once_per_op(monkeypatch, capsys):
    from jitorch.compiler import logs
    from jitorch.ops.registry import impl, kernel_op
    from jitorch.runtime.cuda import fallback
    op = _test_op("_test_logged_op", kernel_op)
    impl("_test_logged_op", "cpu")(lambda x: x + 1)
    monkeypatch.setattr(logs, "_enabled", {"cuda_fallback"})
    monkeypatch.setattr(fallback, "_fell_back", set())
    x = jitorch.ones(2, device="cuda")
    for _ in range(3):
        assert _dispatch.apply(op, [x]).tolist() == [2.0, 2.0]
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "_test_logged_op" in ln]
    assert lines == [("[jitorch:cuda_fallback] _test_logged_op: no CUDA kernel; running its CPU implementation "
                      "on host copies")]
