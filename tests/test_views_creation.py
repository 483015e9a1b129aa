"""Views (shared storage, strides, version counters), tensor creation, conversion and repr."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import arr, assert_close, check_op, make, np_of, requires_torch, torch

import jitorch

F16, F32, F64 = jitorch.float16, jitorch.float32, jitorch.float64
I8, I16, I32, I64, U8, B = jitorch.int8, jitorch.int16, jitorch.int32, jitorch.int64, jitorch.uint8, jitorch.bool

A234 = np.arange(24, dtype=np.float64).reshape(2, 3, 4)

# (name, fn) applied to the same (2, 3, 4) tensor in jitorch and torch
VIEWS = [
    ("view", lambda t: t.view(6, 4)),
    ("view-1", lambda t: t.view(-1)),
    ("view_infer", lambda t: t.view(2, -1, 2)),
    ("view_as", lambda t: t.view_as(t.view(4, 6))),
    ("reshape", lambda t: t.reshape(4, 3, 2)),
    ("reshape_tuple", lambda t: t.reshape((3, -1))),
    ("flatten", lambda t: t.flatten()),
    ("flatten_1", lambda t: t.flatten(1)),
    ("flatten_0_1", lambda t: t.flatten(0, 1)),
    ("unflatten", lambda t: t.unflatten(2, (2, 2))),
    ("unflatten_neg", lambda t: t.unflatten(-1, (-1, 1))),
    ("permute", lambda t: t.permute(2, 0, 1)),
    ("permute_neg", lambda t: t.permute((-1, -3, -2))),
    ("transpose", lambda t: t.transpose(0, 2)),
    ("transpose_neg", lambda t: t.transpose(-1, -2)),
    ("swapaxes", lambda t: t.swapaxes(0, 1)),
    ("T", lambda t: t.T if t.ndim == 2 else t.flatten(1).T),
    ("mT", lambda t: t.mT),
    ("t", lambda t: t.flatten(1).t()),
    ("squeeze_noop", lambda t: t.squeeze()),
    ("unsqueeze", lambda t: t.unsqueeze(1)),
    ("unsqueeze_neg", lambda t: t.unsqueeze(-1)),
    ("unsqueeze_squeeze", lambda t: t.unsqueeze(0).unsqueeze(3).squeeze(0)),
    ("squeeze_dim", lambda t: t.unsqueeze(2).squeeze(2)),
    ("squeeze_other_dim", lambda t: t.unsqueeze(2).squeeze(1)),
    ("expand", lambda t: t.unsqueeze(0).expand(3, 2, 3, 4)),
    ("expand_neg", lambda t: t.unsqueeze(1).expand(-1, 5, -1, -1)),
    ("expand_as", lambda t: t.flatten(0, 1).narrow(0, 0, 1).expand_as(t.flatten(0, 1))),
    ("narrow", lambda t: t.narrow(1, 1, 2)),
    ("narrow_neg_start", lambda t: t.narrow(-1, -3, 2)),
    ("unfold", lambda t: t.unfold(2, 2, 1)),
    ("unfold_step", lambda t: t.unfold(1, 2, 2)),
    ("movedim", lambda t: t.movedim(0, -1)),
    ("select", lambda t: t.select(1, -1)),
    ("diagonal", lambda t: t.diagonal(0, 1, 2)),
]


@requires_torch
@pytest.mark.parametrize("name,fn", VIEWS, ids=[n for n, _ in VIEWS])
def test_view_values_and_metadata(name, fn):
    j, t = fn(make(jitorch, A234, F32)), fn(make(torch, A234, F32))
    assert tuple(j.shape) == tuple(t.shape)
    assert np.array_equal(np_of(j), np_of(t))
    assert j.stride() == t.stride(), f"stride {j.stride()} != torch {t.stride()}"
    assert j.storage_offset() == t.storage_offset()
    assert j.is_contiguous() == t.is_contiguous()


@pytest.mark.parametrize("name,fn", [v for v in VIEWS if not v[0].startswith(("expand", "unfold"))],
                         ids=[n for n, _ in VIEWS if not n.startswith(("expand", "unfold"))])
def test_views_share_storage_and_version(name, fn):
    base = make(jitorch, A234, F32)
    v = fn(base)
    assert v._base is base or v._base is base._base or v is base
    v.mul_(2.0)                                   # write through the view...
    assert base.sum().item() == A234.sum() + np_of(v).sum() / 2, "write through the view not visible in base"
    assert v._version_counter == base._version_counter > 0      # ...one shared version counter
    base.add_(1.0)
    assert v._version_counter == base._version_counter


def test_view_chain_shares_storage():
    base = jitorch.zeros(4, 6)
    v = base.view(2, 12).transpose(0, 1).narrow(0, 3, 4)
    v.fill_(7.0)
    assert base.sum().item() == 7.0 * 8
    assert base.view(-1).untyped_storage() is base.untyped_storage() or \
        np.shares_memory(np_of(base), np_of(v))


def test_expand_is_a_zero_stride_view():
    x = jitorch.tensor([[1.0], [2.0]])
    e = x.expand(2, 3)
    assert e.stride() == (1, 0) and not e.is_contiguous()
    x.mul_(10.0)
    assert e.tolist() == [[10.0] * 3, [20.0] * 3]


def test_unfold_windows():
    x = jitorch.arange(7.0)
    w = x.unfold(0, 3, 2)
    assert w.tolist() == [[0.0, 1.0, 2.0], [2.0, 3.0, 4.0], [4.0, 5.0, 6.0]]
    assert w.stride() == (2, 1)
    assert jitorch.tensor(5.0).unfold(0, 1, 1).tolist() == [5.0]


def test_contiguous():
    x = make(jitorch, A234, F32)
    assert x.contiguous() is x
    t = x.transpose(0, 2)
    c = t.contiguous()
    assert c.is_contiguous() and c.stride() == (6, 2, 1) and np.array_equal(np_of(c), np_of(t))
    assert not np.shares_memory(np_of(c), np_of(x))
    s = jitorch.from_numpy(np.repeat(A234, 2, axis=-1)[..., ::2])
    assert np.array_equal(np_of(s.contiguous()), A234)


def test_is_contiguous_edge_cases():
    assert jitorch.zeros(3, 1).t().is_contiguous()             # size-1 dims do not matter
    assert jitorch.zeros(0, 3).t().is_contiguous()
    assert jitorch.zeros(()).is_contiguous()
    assert not jitorch.zeros(2, 3).t().is_contiguous()


def test_view_errors():
    x = jitorch.zeros(2, 3)
    with pytest.raises(RuntimeError, match="invalid for input of size 6"):
        x.view(4, 2)
    with pytest.raises(RuntimeError, match="only one dimension can be inferred"):
        x.view(-1, -1)
    with pytest.raises(RuntimeError, match="view size is not compatible"):
        x.t().view(6)
    assert x.t().reshape(6).shape == (6,)                     # reshape copies instead
    with pytest.raises(RuntimeError):
        x.expand(3, 3)
    with pytest.raises(RuntimeError):
        x.narrow(1, 2, 2)
    with pytest.raises(RuntimeError):
        x.permute(0, 0)
    with pytest.raises(RuntimeError):
        x.unflatten(1, (2, 2))
    with pytest.raises(IndexError):
        x.transpose(0, 2)
    with pytest.raises(IndexError):
        x.unsqueeze(3)


def test_views_of_0d_and_empty():
    s = jitorch.tensor(3.0)
    assert s.view(1).tolist() == [3.0] and s.reshape(()).shape == () and s.flatten().shape == (1,)
    assert s.unsqueeze(0).shape == (1,) and s.t().shape == () and s.squeeze().shape == ()
    e = jitorch.zeros(0, 3)
    assert e.view(3, 0).shape == (3, 0) and e.reshape(-1).shape == (0,) and e.t().shape == (3, 0)
    assert e.unsqueeze(1).expand(0, 2, 3).shape == (0, 2, 3)
    with pytest.raises(RuntimeError):
        e.view(-1, 0)


def test_view_gradients():
    x = arr(2, 3, 4, seed=21)
    check_op(lambda t: t.transpose(0, 2).reshape(4, 6) * 2, None, x, dtypes=(F64,))
    check_op(lambda t: t.unsqueeze(0).expand(3, 2, 3, 4) * 1.5, None, x, dtypes=(F64,))
    check_op(lambda t: t.narrow(1, 1, 2).unfold(2, 2, 2) ** 2, None, x, dtypes=(F64,))
    check_op(lambda t: t.permute(2, 0, 1).flatten(1).mT.unflatten(0, (3, 2)) - 1, None, x, dtypes=(F64,))
    check_op(lambda t: t.select(0, 1).diagonal() * 3, None, x, dtypes=(F64,))


# -- creation ---------------------------------------------------------------------------------------
@requires_torch
@pytest.mark.parametrize("data", [
    [1, 2, 3], [1.0, 2.0], [True, False], [1, 2.5], [True, 1], [True, 1.5], [[1, 2], [3, 4]], 3, 2.5, True, [],
    [[]], np.array([1, 2], dtype=np.int16), np.array([1.0], dtype=np.float64), np.float64(1.5), np.int32(3),
    [np.float32(1.0), 2], (1, 2), [[1.0], [2.0]], np.array(7, dtype=np.uint8), np.bool_(True),
], ids=lambda d: repr(d)[:30])
def test_tensor_dtype_inference(data):
    j, t = jitorch.tensor(data), torch.tensor(data)
    assert j.dtype.name == str(t.dtype)[6:], f"{data!r}: {j.dtype} vs {t.dtype}"
    assert tuple(j.shape) == tuple(t.shape) and j.tolist() == t.tolist()


@requires_torch
def test_tensor_dtype_inference_under_default_float64():
    jitorch.set_default_dtype(F64)
    try:
        assert jitorch.tensor([1.5]).dtype is F64 and jitorch.tensor([1]).dtype is I64
        assert jitorch.zeros(2).dtype is F64 and jitorch.arange(0.5, 2).dtype is F64
        assert (jitorch.tensor([1, 2]) / 2).dtype is F64
    finally:
        jitorch.set_default_dtype(F32)
    assert jitorch.tensor([1.5]).dtype is F32


def test_tensor_from_tensor_copies_and_dtype_argument():
    src = jitorch.tensor([1.0, 2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c = jitorch.tensor(src)
    c.add_(1.0)
    assert src.tolist() == [1.0, 2.0]
    assert jitorch.tensor([1, 2], dtype=F16).dtype is F16
    assert jitorch.tensor([1.7, -1.7], dtype=I32).tolist() == [1, -1]
    assert jitorch.tensor([1.0], requires_grad=True).requires_grad
    with pytest.raises((ValueError, TypeError)):
        jitorch.tensor([[1, 2], [3]])
    with pytest.raises(RuntimeError):
        jitorch.tensor([1], requires_grad=True)          # only floating point tensors can require grad


def test_as_tensor_and_from_numpy_share_memory():
    a = np.array([1.0, 2.0, 3.0])
    for make_t in (jitorch.from_numpy, jitorch.as_tensor, jitorch.asarray):
        t = make_t(a)
        assert t.dtype is F64
        t.mul_(2.0)
        assert a.tolist() == [2.0, 4.0, 6.0], make_t.__name__
        a /= 2.0
        assert t.tolist() == [1.0, 2.0, 3.0]
    copied = jitorch.as_tensor(a, dtype=F32)
    copied.add_(1.0)
    assert a.tolist() == [1.0, 2.0, 3.0]
    t = jitorch.tensor([1.0])
    assert jitorch.as_tensor(t) is t
    strided = jitorch.from_numpy(np.arange(10.0)[::3])
    assert strided.stride() == (3,) and strided.tolist() == [0.0, 3.0, 6.0, 9.0]
    with pytest.raises(TypeError):
        jitorch.from_numpy(np.array([1 + 2j]))
    with pytest.raises(ValueError):
        jitorch.from_numpy(np.arange(3.0)[::-1])


@requires_torch
@pytest.mark.parametrize("name,args", [
    ("zeros", (2, 3)), ("zeros", ((2, 3),)), ("ones", ([4],)), ("empty", (0, 2)),
    ("full", ((2, 2), 1.5)), ("full", ((2,), 7)), ("full", ((2,), True)), ("eye", (3,)), ("eye", (2, 4)),
    ("arange", (5,)), ("arange", (1, 4)), ("arange", (0, 1, 0.25)), ("arange", (5, 0, -2)), ("arange", (0.5, 3)),
    ("arange", (1, 2.5, 0.5)), ("linspace", (0, 1, 5)), ("linspace", (-1, 1, 1)), ("linspace", (2, 3, 0)),
    ("logspace", (0, 2, 3)),
])
def test_creation_matches_torch(name, args):
    j, t = getattr(jitorch, name)(*args), getattr(torch, name)(*args)
    assert j.dtype.name == str(t.dtype)[6:] and tuple(j.shape) == tuple(t.shape)
    if name != "empty":
        assert_close(np_of(j), np_of(t), j.dtype.name)


@requires_torch
@pytest.mark.parametrize("dt", [F64, I32, B, U8, F16], ids=lambda d: d.name)
def test_creation_dtype_argument(dt):
    td = getattr(torch, dt.name)
    for name, args in (("zeros", (2,)), ("ones", (2, 1)), ("full", ((3,), 1)), ("eye", (2,)), ("arange", (3,))):
        if name == "arange" and dt is B:
            continue
        j, t = getattr(jitorch, name)(*args, dtype=dt), getattr(torch, name)(*args, dtype=td)
        assert j.dtype is dt and j.tolist() == t.tolist()


def test_like_functions():
    x = jitorch.tensor([[1, 2, 3]], dtype=I16)
    for fn, val in ((jitorch.zeros_like, 0), (jitorch.ones_like, 1)):
        r = fn(x)
        assert r.dtype is I16 and r.shape == (1, 3) and r.tolist() == [[val] * 3]
    assert jitorch.full_like(x, 7).tolist() == [[7, 7, 7]]
    assert jitorch.empty_like(x, dtype=F64).dtype is F64
    assert jitorch.zeros_like(x, dtype=F32, requires_grad=True).requires_grad
    y = jitorch.ones(2)
    assert y.new_zeros(3).dtype is F32 and y.new_ones((2, 2)).shape == (2, 2)
    assert y.new_full((2,), 4.0).tolist() == [4.0, 4.0] and y.new_tensor([1, 2]).dtype is F32
    assert jitorch.zeros(2, 3, requires_grad=True).requires_grad


def test_creation_errors():
    with pytest.raises(RuntimeError, match="negative dimension"):
        jitorch.zeros(-1)
    with pytest.raises(TypeError):
        jitorch.zeros(2.5)
    with pytest.raises(RuntimeError):
        jitorch.arange(0, 5, 0)
    with pytest.raises(RuntimeError):
        jitorch.arange(0, 5, -1)
    with pytest.raises(RuntimeError):
        jitorch.linspace(0, 1, -1)
    with pytest.raises(RuntimeError):
        jitorch.randn(2, dtype=I64)


# -- random ---------------------------------------------------------------------------------------
RANDOM = [
    ("rand", lambda g: jitorch.rand(3, 4, generator=g)),
    ("randn", lambda g: jitorch.randn(2, 5, generator=g, dtype=F64)),
    ("randint", lambda g: jitorch.randint(0, 10, (6,), generator=g)),
    ("randint_high", lambda g: jitorch.randint(5, (3, 2), generator=g)),
    ("randperm", lambda g: jitorch.randperm(8, generator=g)),
    ("normal", lambda g: jitorch.normal(1.0, 2.0, (4,), generator=g)),
    ("normal_tensor", lambda g: jitorch.normal(jitorch.zeros(3), jitorch.ones(3), generator=g)),
    ("bernoulli", lambda g: jitorch.bernoulli(jitorch.full((8,), 0.5), generator=g)),
    ("normal_", lambda g: jitorch.empty(5).normal_(0.0, 1.0, generator=g)),
    ("uniform_", lambda g: jitorch.empty(5).uniform_(-1.0, 1.0, generator=g)),
    ("bernoulli_", lambda g: jitorch.empty(6).bernoulli_(0.3, generator=g)),
]


@pytest.mark.parametrize("name,draw", RANDOM, ids=[n for n, _ in RANDOM])
def test_random_reproducible(name, draw):
    # the global generator under manual_seed
    jitorch.manual_seed(123)
    a = draw(None)
    jitorch.manual_seed(123)
    b = draw(None)
    assert a.tolist() == b.tolist()
    c = draw(None)
    assert a.numel() < 5 or a.tolist() != c.tolist(), "consecutive draws must differ"
    # a private Generator: independent of the global state
    g1, g2 = jitorch.Generator().manual_seed(7), jitorch.Generator().manual_seed(7)
    jitorch.manual_seed(999)
    x = draw(g1)
    draw(None)
    assert x.tolist() == draw(g2).tolist()


def test_random_ranges_and_dtypes():
    jitorch.manual_seed(0)
    u = np_of(jitorch.rand(1000))
    assert u.min() >= 0.0 and u.max() < 1.0 and 0.4 < u.mean() < 0.6
    n = np_of(jitorch.randn(4000, dtype=F64))
    assert abs(n.mean()) < 0.1 and 0.9 < n.std() < 1.1
    r = jitorch.randint(-3, 3, (500,))
    assert r.dtype is I64 and r.amin().item() == -3 and r.amax().item() == 2
    assert sorted(jitorch.randperm(10).tolist()) == list(range(10))
    assert jitorch.randperm(5, dtype=I32).dtype is I32
    bern = jitorch.bernoulli(jitorch.tensor([0.0, 1.0, 0.0, 1.0]))
    assert bern.tolist() == [0.0, 1.0, 0.0, 1.0]
    assert jitorch.rand(2, dtype=F16).dtype is F16 and jitorch.rand(()).shape == ()


def test_rng_state_roundtrip():
    jitorch.manual_seed(5)
    state = jitorch.get_rng_state()
    a = jitorch.rand(4)
    jitorch.set_rng_state(state)
    assert jitorch.rand(4).tolist() == a.tolist()
    assert jitorch.initial_seed() == 5


# -- conversion -------------------------------------------------------------------------------------
def test_numpy_shares_memory():
    t = jitorch.zeros(3)
    a = t.numpy()
    a[1] = 5.0
    assert t.tolist() == [0.0, 5.0, 0.0]
    t.add_(1.0)
    assert a.tolist() == [1.0, 6.0, 1.0]
    with pytest.raises(RuntimeError, match="requires grad"):
        jitorch.zeros(2, requires_grad=True).numpy()
    assert jitorch.zeros(2, requires_grad=True).detach().numpy().shape == (2,)


def test_item_tolist_and_python_conversions():
    assert jitorch.tensor(2.5).item() == 2.5 and isinstance(jitorch.tensor(3).item(), int)
    assert isinstance(jitorch.tensor(True).item(), bool)
    assert jitorch.tensor([[4]]).item() == 4
    with pytest.raises(RuntimeError, match="cannot be converted to Scalar"):
        jitorch.tensor([1, 2]).item()
    assert jitorch.tensor([[1, 2], [3, 4]]).tolist() == [[1, 2], [3, 4]]
    assert jitorch.tensor(1.5).tolist() == 1.5
    assert float(jitorch.tensor([2.0])) == 2.0 and int(jitorch.tensor(7.9)) == 7
    assert [10, 20, 30][jitorch.tensor(1)] == 20
    with pytest.raises(TypeError):
        [10, 20][jitorch.tensor(1.0)]


def test_len_bool_iter():
    x = jitorch.tensor([[1, 2], [3, 4], [5, 6]])
    assert len(x) == 3
    with pytest.raises(TypeError):
        len(jitorch.tensor(1))
    assert bool(jitorch.tensor([1.0])) and not bool(jitorch.tensor(0))
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(jitorch.tensor([1, 2]))
    rows = [r.tolist() for r in x]
    assert rows == [[1, 2], [3, 4], [5, 6]]
    with pytest.raises(TypeError):
        iter(jitorch.tensor(1.0))


@requires_torch
@pytest.mark.parametrize("method", ["float", "double", "half", "long", "int", "short", "char", "byte", "bool"])
def test_conversion_methods(method):
    x = np.array([-1.7, 0.0, 0.5, 2.0, 300.0])
    for src in (F32, F64, I64):
        j, t = getattr(make(jitorch, x, src), method)(), getattr(make(torch, x, src), method)()
        assert j.dtype.name == str(t.dtype)[6:]
        if method in ("byte", "char") and src.is_floating_point:
            continue  # out-of-range float -> small int casts are undefined behaviour in C++
        assert_close(np_of(j), np_of(t), j.dtype.name)


def test_to_and_clone():
    x = jitorch.tensor([1.5, -2.5])
    assert x.to(F32) is x and x.to("cpu") is x and x.to(x) is x
    assert x.to(F32, copy=True) is not x
    y = x.to(F64)
    assert y.dtype is F64 and y.tolist() == [1.5, -2.5]
    assert x.to(dtype=I64).tolist() == [1, -2] and x.to(jitorch.device("cpu"), I32).dtype is I32
    assert x.type(F64).dtype is F64 and x.type() == "jitorch.FloatTensor"
    assert x.type_as(jitorch.tensor([1])).dtype is I64
    c = x.clone()
    c.add_(1.0)
    assert x.tolist() == [1.5, -2.5] and c.tolist() == [2.5, -1.5]
    cg = jitorch.tensor([1.0, 2.0], requires_grad=True)
    (cg.clone() * 3).sum().backward()
    assert cg.grad.tolist() == [3.0, 3.0]
    h = jitorch.tensor([1.0, 2.0], requires_grad=True)
    (h.to(F64) * h.to(F64)).sum().backward()
    assert h.grad.dtype is F32 and h.grad.tolist() == [2.0, 4.0]


def test_clone_and_cast_of_non_contiguous():
    t = make(jitorch, A234, F32, "transposed")
    s = make(jitorch, A234, F32, "sliced")
    for v in (t, s):
        assert np.array_equal(np_of(v.clone()), A234) and np.array_equal(np_of(v.to(F64)), A234)
        assert np.array_equal(np_of(v.reshape(-1)), A234.reshape(-1))


# -- repr -------------------------------------------------------------------------------------------
REPRS = [
    lambda m: m.tensor([1, 2, 3]),
    lambda m: m.tensor([[1, -20], [300, 4]]),
    lambda m: m.tensor([1.0, 2.0, 3.0]),
    lambda m: m.tensor([1.5, -2.25, 3.125]),
    lambda m: m.tensor([[0.1234, 12.5], [-3.0, 100.0]]),
    lambda m: m.tensor([1e-5, 1.0, 1000.0]),
    lambda m: m.tensor([1e10, 1.0]),
    lambda m: m.tensor([123456789.0]),
    lambda m: m.tensor([0.0, -0.0, 1.0]),
    lambda m: m.tensor([float("nan"), float("inf"), -float("inf"), 1.5]),
    lambda m: m.tensor([True, False]),
    lambda m: m.tensor(3.5),
    lambda m: m.tensor(7),
    lambda m: m.tensor(True),
    lambda m: m.tensor([]),
    lambda m: m.zeros(0, 3),
    lambda m: m.zeros(2, 0, dtype=m.int64),
    lambda m: m.tensor([1, 2], dtype=m.int32),
    lambda m: m.tensor([1.0, 2.0], dtype=m.float64),
    lambda m: m.tensor([1.0, 2.5], dtype=m.float16),
    lambda m: m.tensor([1, 2], dtype=m.uint8),
    lambda m: m.tensor([1.0, 2.0], requires_grad=True),
    lambda m: m.tensor([1.0, 2.0], requires_grad=True) * 2,
    lambda m: m.tensor([1.0, 2.0], requires_grad=True).sum(),
    lambda m: m.tensor([[1.0, 2.0]], requires_grad=True).exp(),
    lambda m: m.arange(12.0).reshape(3, 4),
    lambda m: m.arange(24).reshape(2, 3, 4),
    lambda m: m.arange(2000.0),
    lambda m: m.arange(3000).reshape(50, 60),
    lambda m: m.arange(40.0) / 3,
]


@requires_torch
@pytest.mark.parametrize("case", REPRS, ids=[str(i) for i in range(len(REPRS))])
def test_repr_matches_torch(case):
    j, t = case(jitorch), case(torch)
    assert repr(j).replace("jitorch.", "torch.") == repr(t)
    assert str(j).replace("jitorch.", "torch.") == str(t)


def test_repr_of_size_and_dtype():
    assert repr(jitorch.zeros(2, 3).shape) == "jitorch.Size([2, 3])"
    assert repr(jitorch.float16) == "jitorch.float16"
    assert f"{jitorch.tensor(2.5):.2f}" == "2.50"
