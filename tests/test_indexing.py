"""Indexing: x[key], x[key] = v, gather/scatter/index_* ops, masks, take/put, triangles, diagonals, one_hot.

Each op is checked against NumPy float64 and PyTorch (when importable), across dtypes and
non-contiguous layouts, with gradients (finite differences and torch) and torch's error types.
"""
from __future__ import annotations

import numpy as np
import pytest
from helpers import (
    arr,
    assert_close,
    check_grad,
    check_op,
    keep,
    make,
    np_of,
    requires_torch,
    torch,
)

import jitorch
from jitorch.ops.indexing import one_hot

F32, F64, I64, B = jitorch.float32, jitorch.float64, jitorch.int64, jitorch.bool
FLOATS = (F32, F64)
MIXED = (F32, F64, I64, B)
LAYOUTS2 = ("contiguous", "transposed")

X = np.round(arr(3, 4, 5, lo=-4, hi=4, seed=3) * 2) / 2  # exact in every float dtype, mixed signs
MASK = arr(3, 4, 5, seed=4) > 0
X2 = arr(3, 4, seed=1)


def L(lib, v):
    """An index array for lib: a jitorch/torch int64 tensor or a NumPy array."""
    if lib is np:
        return np.asarray(v)
    return lib.tensor(np.asarray(v))


def _mask(lib, m):
    return np.asarray(m) if lib is np else lib.from_numpy(np.asarray(m).copy())


# (id, key builder, NumPy gives the same result as torch)
KEYS = [
    ("int", lambda lib: 1, True),
    ("neg_int", lambda lib: -1, True),
    ("slice", lambda lib: slice(1, None), True),
    ("step", lambda lib: (slice(None), slice(0, 4, 2), slice(None, None, 3)), True),
    ("wide_slice", lambda lib: slice(-10, 10), True),
    ("empty_slice", lambda lib: (slice(None), slice(3, 1)), True),
    ("none", lambda lib: (None, 1, None), True),
    ("ellipsis", lambda lib: (Ellipsis, 2), True),
    ("ellipsis_mid", lambda lib: (0, ..., 1), True),
    ("all_ints", lambda lib: (1, 2, 3), True),
    ("empty_tuple", lambda lib: (), True),
    ("true", lambda lib: True, True),
    ("false", lambda lib: False, True),
    ("tensor", lambda lib: L(lib, [0, 2, 2]), True),
    ("neg_tensor", lambda lib: L(lib, [-1, 0]), True),
    ("tensor_2d", lambda lib: L(lib, [[0, 1], [2, 0]]), True),
    ("list", lambda lib: [0, 2], True),
    ("empty_list", lambda lib: [], True),
    ("ndarray", lambda lib: np.array([1, 0]), True),
    ("mask", lambda lib: _mask(lib, MASK), True),
    ("mask_2d", lambda lib: _mask(lib, MASK[:, :, 0]), True),
    ("mask_after_slice", lambda lib: (slice(None), _mask(lib, MASK[0, :, 0])), True),
    ("mask_list", lambda lib: [True, False, True], True),
    ("adjacent", lambda lib: (slice(None), [0, 1], [2, 3]), True),
    ("separated", lambda lib: ([0, 1], slice(None), [2, 3]), True),
    ("broadcast", lambda lib: ([[0], [1]], slice(1, 3), [0, 1, 2]), True),
    ("none_between", lambda lib: ([0], None, [1]), True),
    ("ellipsis_adv", lambda lib: (Ellipsis, [0, 4]), True),
    ("slice_adv", lambda lib: (slice(0, 2), L(lib, [3, 1])), True),
    # torch selects ints first, so they do not separate the advanced indices (NumPy differs)
    ("int_then_adv", lambda lib: (0, slice(None), [1, 2]), False),
    ("bool_adv", lambda lib: (True, [0, 1]), False),
]
KEY_IDS = [k[0] for k in KEYS]


@requires_torch
@pytest.mark.parametrize("name,build,np_same", KEYS, ids=KEY_IDS)
def test_getitem_matches_torch_and_numpy(name, build, np_same):
    for dt in MIXED:
        for layout in LAYOUTS2:
            jx = make(jitorch, X, dt, layout)
            tx = make(torch, X, getattr(torch, dt.name), layout)
            j, t = jx[build(jitorch)], tx[build(torch)]
            assert tuple(j.shape) == tuple(t.shape), f"{name} {dt} {layout}: {j.shape} vs {t.shape}"
            assert j.dtype.name == str(t.dtype)[6:]
            assert_close(np_of(j), np_of(t), j.dtype.name, what=f"{name} {dt} {layout}: ")
    if np_same:
        key = build(np)
        key = tuple(key) if isinstance(key, list) and name == "mask_list" else key
        ref = X[key] if name != "mask_list" else X[np.array([True, False, True])]
        assert_close(np_of(jitorch.from_numpy(X.copy())[build(jitorch)]), ref, "float64", what=name)


@pytest.mark.parametrize("name,build,np_same", [k for k in KEYS if k[0] not in ("false", "empty_list",
                                                                                  "empty_slice")],
                         ids=[k for k in KEY_IDS if k not in ("false", "empty_list", "empty_slice")])
def test_getitem_gradients(name, build, np_same):
    x = X
    key = build(jitorch)
    if name == "mask":
        key = jitorch.from_numpy(MASK.copy())
    check_grad(lambda a: a[key] * 1.5, [x], (lambda a: a[build(torch)] * 1.5) if torch is not None else None)


def test_basic_index_is_a_view():
    x = jitorch.from_numpy(X.copy())
    for key in (1, (slice(None), 2), (0, slice(1, 3), slice(None, None, 2)), (1, 2, 3), (None, Ellipsis, 0), ()):
        v = x[key]
        assert v._base is x and np.shares_memory(v._data, x._data), key
    v = x[1, 2, 3]
    assert v.ndim == 0 and isinstance(v._data, np.ndarray)
    x[0, :, 1:3][1, 0] = 42.0  # a write through a view of a view lands in x
    assert x[0, 1, 1].item() == 42.0
    assert x[[0]]._base is None  # advanced indexing copies
    assert x[..., 0, ...].shape == (3, 4)  # like torch, a second Ellipsis stands for no dims


@pytest.mark.parametrize("key,exc,msg", [
    (5, IndexError, "index 5 is out of bounds for dimension 0 with size 3"),
    (-4, IndexError, "index -4 is out of bounds for dimension 0 with size 3"),
    ((0, 9), IndexError, "index 9 is out of bounds for dimension 1 with size 4"),
    ((0, 0, 0, 0), IndexError, "too many indices for tensor of dimension 3"),
    (slice(None, None, -1), ValueError, "step must be greater than zero"),
    (slice(None, None, 0), ValueError, "slice step cannot be zero"),
    ([5], IndexError, "index 5 is out of bounds for dimension 0 with size 3"),
    ((slice(None), [0, 7]), IndexError, "index 7 is out of bounds for dimension 0 with size 4"),
    (([0], [0, 7]), IndexError, "index 7 is out of bounds for dimension 1 with size 4"),
    (([0, 1], [0, 1, 2]), IndexError, "shape mismatch: indexing tensors could not be broadcast together"),
    (1.5, IndexError, "only integers, slices"),
    ("a", IndexError, "only integers, slices"),
])
def test_getitem_errors(key, exc, msg):
    x = jitorch.zeros(3, 4, 5)
    with pytest.raises(exc, match=msg.replace("[", r"\[").replace("(", r"\(").replace(".", r"\.")):
        x[key]
    if torch is not None and not isinstance(key, str):
        with pytest.raises(exc):
            torch.zeros(3, 4, 5)[key]


def test_getitem_tensor_errors():
    x = jitorch.zeros(3, 4)
    with pytest.raises(IndexError, match="tensors used as indices must be long, int, byte or bool tensors"):
        x[jitorch.tensor([1.0])]
    with pytest.raises(IndexError, match=r"The shape of the mask \[2\] at index 0 does not match the shape of the "
                                         r"indexed tensor \[3, 4\] at index 0"):
        x[jitorch.tensor([True, False])]
    with pytest.raises(IndexError, match="invalid index of a 0-dim tensor"):
        jitorch.tensor(1.0)[0]
    s = jitorch.tensor(3.0)
    assert s[None].shape == (1,) and s[...].shape == () and s[True].shape == (1,) and s[False].shape == (0,)


def test_getitem_int_like_and_special_indices():
    x = jitorch.from_numpy(X.copy())
    assert x[jitorch.tensor(1)]._base is x  # a 0-d integer tensor selects, like an int
    assert np.array_equal(np_of(x[np.int64(2)]), X[2])
    assert np.array_equal(np_of(x[jitorch.tensor(2):]), X[2:])
    assert np.array_equal(np_of(x[jitorch.tensor([0, 1], dtype=jitorch.int32)]), X[[0, 1]])
    assert np.array_equal(np_of(x[jitorch.tensor([1, 0, 1], dtype=jitorch.uint8)]), X[[0, 2]])  # byte mask
    assert np.array_equal(np_of(x[[[0, 1], [1, 2]]]), X[[0, 1], [1, 2]])  # torch's legacy list-as-tuple
    assert x[x > 100].shape == (0,)
    e = jitorch.zeros(0, 3)
    assert e[:, 1].shape == (0,) and e[[]].shape == (0, 3) and e[e > 0].shape == (0,)


# -- __setitem__ ----------------------------------------------------------------------------------------------
SET_CASES = [
    ("int_scalar", lambda lib: 1, 7.0),
    ("slice_row", lambda lib: (slice(None), 2), "row"),
    ("int_bcast_value", lambda lib: 0, "row_lead1"),
    ("step", lambda lib: (slice(None, None, 2), 1, slice(1, None, 2)), -3.0),
    ("ellipsis", lambda lib: (Ellipsis, 0), "col"),
    ("list", lambda lib: [0, 2], "row"),
    ("tensor_dups", lambda lib: L(lib, [2, 0]), 5),
    ("mask", lambda lib: _mask(lib, MASK), 2.5),
    ("mask_values", lambda lib: _mask(lib, MASK), "masked"),
    ("separated", lambda lib: ([0, 1], slice(None), [2, 3]), "sep"),
    ("bool", lambda lib: True, 1.0),
    ("full", lambda lib: Ellipsis, "full"),
]


def _value(lib, kind, dt):
    shapes = {"row": (5,), "row_lead1": (1, 1, 5), "col": (3, 4), "masked": (int(MASK.sum()),), "sep": (2, 4),
              "full": (3, 4, 5)}
    if not isinstance(kind, str):
        return kind
    v = np.round(arr(*shapes[kind], lo=-9, hi=9, seed=8))
    return lib.from_numpy(v.astype(np.float64 if dt != "bool" else bool))


@requires_torch
@pytest.mark.parametrize("name,build,value", SET_CASES, ids=[c[0] for c in SET_CASES])
def test_setitem_matches_torch(name, build, value):
    for dt in MIXED:
        for layout in LAYOUTS2:
            jx = make(jitorch, X, dt, layout)
            tx = make(torch, X, getattr(torch, dt.name), layout)
            v0 = jx._version_counter
            jx[build(jitorch)] = _value(jitorch, value, dt.name)  # float64 values are cast to x's dtype
            tv = _value(torch, value, dt.name)
            # torch refuses a value of another dtype with advanced indices; jitorch casts it (as it
            # does for basic indices)
            tx[build(torch)] = tv.to(tx.dtype) if isinstance(tv, torch.Tensor) else tv
            assert jx._version_counter == v0 + 1
            assert jx.dtype is dt
            assert_close(np_of(jx), np_of(tx), dt.name, what=f"{name} {dt} {layout}: ")


def test_setitem_numpy_reference_and_views():
    x = jitorch.from_numpy(X.copy())
    ref = X.copy()
    x[1:, ::2, 0] = 9.0
    ref[1:, ::2, 0] = 9.0
    x[[0, 2], :, [1, 3]] = jitorch.arange(4.0)
    ref[[0, 2], :, [1, 3]] = np.arange(4.0)
    x[x > 3] = -1.0
    ref[ref > 3] = -1.0
    assert np.array_equal(np_of(x), ref)
    t = x.transpose(0, 2)  # a non-contiguous view: writes reach x
    t[0] = 0.0
    assert np.all(np_of(x)[:, :, 0] == 0.0)


@pytest.mark.parametrize("key,value,exc,msg", [
    (5, 1.0, IndexError, "index 5 is out of bounds for dimension 0 with size 3"),
    (slice(None, None, -1), 1.0, ValueError, "step must be greater than zero"),
    ([0, 1], "ones34", RuntimeError, (r"shape mismatch: value tensor of shape \[3, 4\] cannot be broadcast to "
                                     r"indexing result of shape \[2, 4\]")),
    (0, "ones24", RuntimeError, "expand"),
    (0, [1.0], TypeError, "can't assign a list to a jitorch.FloatTensor"),
    (0, np.array(1.0), TypeError, "can't assign a numpy.ndarray"),
])
def test_setitem_errors(key, value, exc, msg):
    x = jitorch.zeros(3, 4)
    value = {"ones34": jitorch.ones(3, 4), "ones24": jitorch.ones(2, 4)}.get(value, value) \
        if isinstance(value, str) else value
    with pytest.raises(exc, match=msg):
        x[key] = value


def test_setitem_leaf_and_no_grad():
    leaf = jitorch.zeros(3, requires_grad=True)
    msg = "a view of a leaf Variable that requires grad is being used in an in-place operation."
    with pytest.raises(RuntimeError, match=msg):
        leaf[0] = 1.0
    with pytest.raises(RuntimeError, match=msg):
        leaf[0:2][0] = 1.0
    with jitorch.no_grad():
        leaf[0] = 1.0
    assert leaf.tolist() == [1.0, 0.0, 0.0] and leaf.grad_fn is None
    d = leaf.detach()  # a detached alias may be written (and has its own history)
    d[1] = 2.0
    assert leaf[1].item() == 2.0
    e = jitorch.zeros(3).expand(2, 3)
    with pytest.raises(RuntimeError, match="more than one element of the written-to tensor"):
        e[0] = 1.0


def _set_fn(kind):
    def f(x, v, lib):
        y = x * 2
        if kind == "basic":
            y[1, :, 1:3] = v[:2] * 3
        elif kind == "advanced":
            y[[0, 2], 1] = v[0] * 3
        elif kind == "mask":
            y[lib.from_numpy(MASK[:, :4, :4].copy())] = v.sum()
        elif kind == "view":  # through a view: the base's history is rewritten (CopySlices)
            r = y[1]
            r[2, [0, 3]] = v[:2] * 3
        elif kind == "twice":
            y[0] = v
            y[:, 1] = (y[:, 2] + 1) * v[0]
        return y * y
    return f


@pytest.mark.parametrize("kind", ["basic", "advanced", "mask", "view", "twice"])
def test_setitem_gradients(kind):
    f = _set_fn(kind)
    xs = [X[:, :4, :4], np.round(arr(4, seed=2), 2)]
    check_grad(lambda x, v: f(x, v, jitorch), xs,
               (lambda x, v: f(x, v, torch)) if torch is not None else None)


@requires_torch
def test_setitem_duplicate_indices_gradient_like_torch():
    # the last write wins; like torch, every named copy passes the gradient to the value
    grads = []
    for lib in (jitorch, torch):
        v = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
        y = lib.zeros(4, 3)
        y[[0, 2, 0]] = v * 2
        (y * lib.arange(12.0).reshape(4, 3)).sum().backward()
        grads.append(np_of(v.grad))
    assert np.allclose(grads[0], grads[1])


def test_setitem_into_plain_tensor_with_grad_value():
    w = jitorch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    z = jitorch.zeros(2, 3)
    z[1] = w * 2
    assert z.requires_grad and z.grad_fn is not None
    (z * jitorch.arange(6.0).reshape(2, 3)).sum().backward()
    assert w.grad.tolist() == [6.0, 8.0, 10.0]
    z = jitorch.zeros(2, 3)
    row = z[0]
    row[1:] = w[:2]  # through a view of a plain tensor: z itself joins the graph
    assert z.requires_grad
    z.sum().backward()
    assert w.grad.tolist() == [7.0, 9.0, 10.0]


def _double_backward(f, *xs):
    """gradcheck of the first derivative (torch's gradgradcheck); grad mode is forced on inside,
    since jitorch's gradcheck evaluates the finite differences under no_grad."""
    gos = f(*xs)
    go = jitorch.from_numpy(np.random.default_rng(5).standard_normal(tuple(gos.shape))).requires_grad_()

    def first(*args):
        with jitorch.enable_grad():
            return jitorch.autograd.grad(f(*args[:-1]), args[:-1], args[-1], create_graph=True)
    assert jitorch.autograd.gradcheck(first, tuple(xs) + (go,))


def _f64(a):
    return jitorch.from_numpy(np.array(a, dtype=np.float64)).requires_grad_()


IDX = jitorch.tensor([[0, 1, 3], [2, 2, 0]])


@pytest.mark.parametrize("name", ["getitem", "setitem_view", "gather", "scatter", "scatter_add", "prod", "amax",
                                  "index_add", "index_fill", "masked_scatter", "put", "diag", "diagonal_scatter"])
def test_double_backward(name):
    fns = {
        "getitem": lambda x: x[[0, 2, 0], 1:] ** 2,
        "setitem_view": lambda x: _set_fn("view")(x ** 2, x[0, 0], jitorch) * x,
        "gather": lambda x: x.gather(1, IDX) ** 2,
        "scatter": lambda x: (x ** 2).scatter(1, IDX, x[:, :3] ** 3),
        "scatter_add": lambda x: (x ** 2).scatter_add(1, IDX, x[:, :3] ** 3),
        "prod": lambda x: (x ** 2).scatter_reduce(1, IDX, x[:, :3] ** 3, "prod"),
        "amax": lambda x: (x ** 2).scatter_reduce(1, IDX, x[:, 1:] ** 3, "amax", include_self=False),
        "index_add": lambda x: (x ** 2).index_add(0, jitorch.tensor([1, 1]), x[:2] ** 3, alpha=2),
        "index_fill": lambda x: (x ** 2).index_fill(1, jitorch.tensor([3, 0]), x[0, 0] ** 2),
        "masked_scatter": lambda x: (x ** 2).masked_scatter(x > 0, x.reshape(-1) ** 3),
        "put": lambda x: (x ** 2).put(jitorch.tensor([0, 0, 5]), x[0, :3] ** 3, accumulate=True),
        "diag": lambda x: (x[0] ** 2).diag(1) * 2,
        "diagonal_scatter": lambda x: (x ** 2).diagonal_scatter(x[0, :3] ** 3, 1),
    }
    x = X2[:, :4] if name != "setitem_view" else X[:, :4, :4]
    _double_backward(fns[name], _f64(x))


# -- gather / scatter ------------------------------------------------------------------------------------------
GI = keep(np.array([[0, 1, 3], [2, 2, 0]]))  # smaller than X2 in dim 0: only the leading block is used
GU = keep(np.array([[0, 1, 3], [2, 1, 0]]))  # no repeats within a row: plain scatter's gradient is exact
SRC = arr(2, 3, seed=5)


def test_gather():
    check_op(lambda x, i: x.gather(1, i), lambda x, i: np.take_along_axis(x[:2], i, 1), X2, GI, dtypes=MIXED,
             layouts=LAYOUTS2)
    check_op(lambda x, i: x.gather(0, i), lambda x, i: np.take_along_axis(x[:, :3], i, 0), X2,
             keep(np.array([[2, 0, 1], [1, 1, 1]])), dtypes=FLOATS)
    big = keep(np.zeros((2, 9), np.int64))  # the index may be longer than input along dim
    check_op(lambda x, i: x.gather(1, i), lambda x, i: np.take_along_axis(x[:2], i, 1), X2, big, dtypes=FLOATS,
             grad=False)
    s = jitorch.tensor(5.0)
    assert jitorch.gather(s, 0, jitorch.tensor(0)).item() == 5.0
    assert jitorch.gather(s, 0, jitorch.tensor([0, 0])).tolist() == [5.0, 5.0]
    assert jitorch.gather(jitorch.zeros(3, 4), 1, jitorch.zeros(0, 2, dtype=jitorch.int64)).shape == (0, 2)
    assert jitorch.gather(jitorch.tensor(X2), 1, jitorch.tensor([[1]], dtype=jitorch.int32)).item() == X2[0, 1]


def _np_scatter(x, i, s, dim, fn):
    out = x.copy()
    for pos in np.ndindex(*i.shape):
        tgt = list(pos)
        tgt[dim] = i[pos]
        out[tuple(tgt)] = fn(out[tuple(tgt)], s[pos] if np.ndim(s) else s)
    return out


@pytest.mark.filterwarnings("ignore:The reduce argument of torch.scatter")
def test_scatter_and_scatter_add():
    check_op(lambda x, i, s: x.scatter(1, i, s), lambda x, i, s: _np_scatter(x, i, s, 1, lambda a, b: b),
             X2, GU, SRC, dtypes=MIXED, layouts=LAYOUTS2)
    check_op(lambda x, i: x.scatter(1, i, 2.5), lambda x, i: _np_scatter(x, i, 2.5, 1, lambda a, b: b),
             X2, GI, dtypes=(F32, F64, I64))
    check_op(lambda x, i, s: x.scatter_add(1, i, s), lambda x, i, s: _np_scatter(x, i, s, 1, np.add),
             X2, GI, SRC, dtypes=(F32, F64, I64), layouts=LAYOUTS2)
    wide = arr(3, 5, seed=6)  # src larger than index: only its leading block is read
    check_op(lambda x, i, s: x.scatter_add(1, i, s), lambda x, i, s: _np_scatter(x, i, s, 1, np.add),
             X2, GI, wide, dtypes=FLOATS, grad=False)
    # torch's backward fails here (a gradient shaped like index); jitorch pads it with zeros
    check_grad(lambda x, i, s: x.scatter_add(1, i, s), [X2, GI, wide])
    check_op(lambda x, i, s: x.scatter(1, i, s, reduce="multiply"),
             lambda x, i, s: _np_scatter(x, i, s, 1, np.multiply), X2, GI, SRC, dtypes=FLOATS, grad=False)
    assert jitorch.tensor(1.0).scatter(0, jitorch.tensor(0), 5.0).item() == 5.0


REDUCE_IDX = keep(np.array([[0, 0, 1], [2, 2, 2], [0, 3, 0]]))


@pytest.mark.parametrize("include_self", [True, False], ids=["self", "noself"])
@pytest.mark.parametrize("reduce", ["sum", "prod", "mean", "amax", "amin"])
def test_scatter_reduce(reduce, include_self):
    fns = {"sum": np.add, "prod": np.multiply, "amax": np.maximum, "amin": np.minimum}

    def ref(x, i, s):
        if reduce == "mean":
            total = _np_scatter(x if include_self else x * 0, i, s, 1, np.add)
            n = _np_scatter(np.full(x.shape, 1 if include_self else 0), i, 1, 1, np.add)
            hit = _np_scatter(np.zeros(x.shape, bool), i, True, 1, lambda a, b: b)
            m = total / np.maximum(n, 1) if x.dtype.kind == "f" else total // np.maximum(n, 1)
            return np.where(hit, m, x)
        if include_self:
            return _np_scatter(x, i, s, 1, fns[reduce])
        hit = _np_scatter(np.zeros(x.shape, bool), i, True, 1, lambda a, b: b)
        first = _np_scatter(np.zeros(x.shape, bool), i, True, 1, lambda a, b: b)
        out = x.copy()
        seen = ~first
        for pos in np.ndindex(*i.shape):
            tgt = (pos[0], i[pos])
            out[tgt] = s[pos] if not seen[tgt] else fns[reduce](out[tgt], s[pos])
            seen[tgt] = True
        return np.where(hit, out, x)
    check_op(lambda x, i, s: x.scatter_reduce(1, i, s, reduce, include_self=include_self), ref,
             X2, REDUCE_IDX, arr(3, 3, seed=3), dtypes=(F32, F64, I64))


def test_scatter_reduce_nan_and_int_mean():
    x = jitorch.tensor([1.0, 2.0, 3.0])
    r = x.scatter_reduce(0, jitorch.tensor([0, 0, 1]), jitorch.tensor([float("nan"), -6.0, -7.0]), "amax")
    assert np.isnan(r[0].item()) and r[1:].tolist() == [2.0, 3.0]
    m = jitorch.tensor([1, 2, 3]).scatter_reduce(0, jitorch.tensor([0, 0, 1]), jitorch.tensor([-4, -5, -7]), "mean",
                                                 include_self=False)
    assert m.tolist() == [-5, -7, 3]  # integer means round toward -inf, like torch


@pytest.mark.parametrize("call,exc,msg", [
    (lambda x: x.gather(1, jitorch.tensor([[7]])), RuntimeError, "index 7 is out of bounds for dimension 1 with size 4"),
    (lambda x: x.gather(1, jitorch.tensor([[-1]])), RuntimeError, "index -1 is out of bounds for dimension 1"),
    (lambda x: x.gather(1, jitorch.tensor([[1.0]])), RuntimeError, "Expected dtype int32/int64 for index"),
    (lambda x: x.gather(1, jitorch.zeros(4, 2, dtype=jitorch.int64)), RuntimeError, "Size does not match at dimension 0"),
    (lambda x: x.gather(1, jitorch.zeros(4, dtype=jitorch.int64)), RuntimeError, "same number of dimensions"),
    (lambda x: x.gather(2, jitorch.zeros(1, 1, dtype=jitorch.int64)), IndexError, "Dimension out of range"),
    (lambda x: x.scatter(1, jitorch.tensor([[9]]), 1.0), RuntimeError, "index 9 is out of bounds for dimension 1"),
    (lambda x: x.scatter(1, jitorch.tensor([[0, 1]]), jitorch.ones(1, 1)), RuntimeError,
     "to be no larger size than src"),
    (lambda x: x.scatter(1, jitorch.tensor([[0]]), jitorch.ones(1, 1, dtype=jitorch.float64)), RuntimeError,
     "Expected self.dtype to be equal to src.dtype"),
    (lambda x: x.scatter(1, jitorch.tensor([[0]]), 1.0, reduce="max"), RuntimeError, "either add or multiply"),
    (lambda x: x.scatter_add(1, jitorch.tensor([[4]]), jitorch.ones(1, 1)), RuntimeError, "out of bounds"),
    (lambda x: x.scatter_reduce(1, jitorch.tensor([[0]]), jitorch.ones(1, 1), "max"), RuntimeError,
     "reduce argument must be either sum, prod, mean, amax or amin"),
])
def test_gather_scatter_errors(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call(jitorch.zeros(3, 4))


# -- index_select / index_add / index_copy / index_fill --------------------------------------------------------
def test_index_select():
    check_op(lambda x, i: x.index_select(1, i), lambda x, i: np.take(x, i, 1), X2, keep(np.array([3, 0, 3])),
             dtypes=MIXED, layouts=LAYOUTS2)
    check_op(lambda x, i: x.index_select(0, i), lambda x, i: np.take(x, [i], 0), X2, keep(np.array(2)),
             dtypes=FLOATS)
    assert jitorch.tensor(4.0).index_select(0, jitorch.tensor([0])).shape == ()
    assert jitorch.zeros(3, 4).index_select(1, jitorch.tensor([], dtype=jitorch.int64)).shape == (3, 0)


def _np_index_op(x, dim, i, s, fn):
    out = np.moveaxis(x.copy(), dim, 0)
    src = np.moveaxis(s, dim, 0)
    for j, k in enumerate(np.atleast_1d(i)):
        out[k] = fn(out[k], src[j])
    return np.moveaxis(out, 0, dim)


def test_index_add_copy_fill():
    check_op(lambda x, i, s: x.index_add(0, i, s, alpha=2),
             lambda x, i, s: _np_index_op(x, 0, i, s, lambda a, b: a + 2 * b), X2, keep(np.array([2, 0, 2])),
             arr(3, 4, seed=5), dtypes=(F32, F64, I64), layouts=LAYOUTS2)
    check_op(lambda x, i, s: x.index_add(1, i, s), lambda x, i, s: _np_index_op(x, 1, i, s, np.add), X2,
             keep(np.array([1, 1])), arr(3, 2, seed=5), dtypes=FLOATS)
    check_op(lambda x, i, s: x.index_copy(1, i, s), lambda x, i, s: _np_index_op(x, 1, i, s, lambda a, b: b),
             X2, keep(np.array([3, 0])), arr(3, 2, seed=5), dtypes=MIXED, layouts=LAYOUTS2)
    check_op(lambda x, i: x.index_fill(1, i, -2.0), lambda x, i: _np_index_op(x, 1, i, np.zeros((3, 2)) - 2,
                                                                               lambda a, b: b),
             X2, keep(np.array([-1, 0])), dtypes=(F32, F64, I64))
    check_op(lambda x, i, v: x.index_fill(0, i, v), None, X2, keep(np.array([1, 1])), np.array(3.0),
             dtypes=FLOATS)
    assert jitorch.tensor(4.0).index_add(0, jitorch.tensor([0]), jitorch.tensor(2.0)).item() == 6.0


@pytest.mark.parametrize("call,exc,msg", [
    (lambda x: x.index_select(1, jitorch.tensor([4])), RuntimeError, "INDICES element is out of DATA bounds, id=4"),
    (lambda x: x.index_select(1, jitorch.tensor([-1])), RuntimeError, "out of DATA bounds, id=-1"),
    (lambda x: x.index_select(1, jitorch.tensor([[1]])), IndexError, "Index is supposed to be a vector"),
    (lambda x: x.index_select(1, jitorch.tensor([1.0])), RuntimeError, "Expected dtype int32 or int64 for index"),
    (lambda x: x.index_add(0, jitorch.tensor([0, 0, 5]), jitorch.ones(3, 4)), RuntimeError,
     "index 5 is out of bounds for dimension 0 with size 3"),
    (lambda x: x.index_add(0, jitorch.tensor([0, 0]), jitorch.ones(3, 4)), RuntimeError,
     r"Number of indices \(2\) should be equal to source.size\(dim\): \(3\)"),
    (lambda x: x.index_add(0, jitorch.tensor([0]), jitorch.ones(1, 3)), RuntimeError,
     "source tensor shape must match self tensor shape"),
    (lambda x: x.index_add(0, jitorch.tensor([0]), jitorch.ones(1, 4, dtype=jitorch.float64)), RuntimeError,
     r"self \(Float\) and source \(Double\) must have the same scalar type"),
    (lambda x: x.index_copy(0, jitorch.tensor([3]), jitorch.ones(1, 4)), IndexError,
     "index_copy_\\(\\): index 3 is out of bounds for dimension 0 with size 3"),
    (lambda x: x.index_copy(0, jitorch.tensor([0], dtype=jitorch.int32), jitorch.ones(1, 4)), RuntimeError,
     "Expected a long tensor for index, but got Int"),
    (lambda x: x.index_fill(1, jitorch.tensor([4]), 1.0), IndexError, "index 4 is out of bounds for dimension 1"),
    (lambda x: x.index_fill(1, jitorch.tensor([0]), jitorch.tensor([1.0])), RuntimeError,
     "only supports a 0-dimensional value tensor"),
    (lambda x: x.index_fill(1, jitorch.tensor([0], dtype=jitorch.int32), 1.0), IndexError,
     "Expected dtype int64 for index"),
])
def test_index_op_errors(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call(jitorch.zeros(3, 4))


# -- masks, nonzero, take, put ---------------------------------------------------------------------------------
M2 = X2 > 0


def test_masked_fill_select_scatter():
    check_op(lambda x, m: x.masked_fill(m, 3.5), lambda x, m: np.where(m, np.asarray(3.5).astype(x.dtype), x),
             X2, M2, dtypes=MIXED, layouts=LAYOUTS2)
    check_op(lambda x, m, v: x.masked_fill(m, v), lambda x, m, v: np.where(m, v, x), X2, M2, np.array(-1.5),
             dtypes=FLOATS)
    row = np.array([True, False, True, False])  # the mask broadcasts
    check_op(lambda x, m: x.masked_fill(m, 0.0), lambda x, m: np.where(m, 0.0, x), X2, row, dtypes=FLOATS)
    check_op(lambda x, m: x.masked_select(m), lambda x, m: x[m], X2, M2, dtypes=MIXED, layouts=LAYOUTS2)
    check_op(lambda x, m: x.masked_select(m), lambda x, m: np.broadcast_to(x, m.shape)[m], arr(4, seed=2),
             M2, dtypes=FLOATS)
    src = arr(12, seed=9)

    def ms_ref(x, m, s):
        out = x.copy()
        out[m] = s[:m.sum()]
        return out
    check_op(lambda x, m, s: x.masked_scatter(m, s), ms_ref, X2, M2, src, dtypes=(F32, F64, I64),
             layouts=LAYOUTS2)
    assert jitorch.tensor(2.0).masked_select(jitorch.tensor(True)).tolist() == [2.0]
    assert jitorch.tensor(2).masked_fill(jitorch.tensor(True), 2.7).item() == 2  # the value is cast


@pytest.mark.parametrize("call,exc,msg", [
    (lambda x: x.masked_fill(x, 1.0), RuntimeError, ("masked_fill_ only supports boolean masks, but got mask with "
                                                    "dtype float")),
    (lambda x: x.masked_fill(x.long(), 1.0), RuntimeError, "dtype long int"),
    (lambda x: x.masked_fill(x > 0, jitorch.tensor([1.0])), RuntimeError, "0-dimensional value tensor"),
    (lambda x: x.masked_select(x), RuntimeError, "masked_select: expected BoolTensor for mask"),
    (lambda x: x.masked_scatter(x > -1, jitorch.ones(2)), RuntimeError,
     "Number of elements of source < number of ones in mask"),
    (lambda x: x.masked_scatter(x > -1, jitorch.ones(20, dtype=jitorch.int64)), RuntimeError,
     "expected self and source to have same dtypes"),
    (lambda x: x.masked_scatter(x, jitorch.ones(20)), RuntimeError, "masked_scatter_ only supports boolean masks"),
    (lambda x: jitorch.zeros(4).masked_fill_(x > 0, 1.0), RuntimeError,
     r"output with shape \[4\] doesn't match the broadcast shape \[3, 4\]"),
])
def test_mask_errors(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call(jitorch.zeros(3, 4))


@pytest.mark.parametrize("dt", MIXED, ids=lambda d: d.name)
def test_nonzero_argwhere(dt):
    a = np.array([[0, 1.5, 0], [-2, 0, float("nan")]]) if dt.is_floating_point else np.array([[0, 1, 0], [2, 0, 3]])
    x = jitorch.from_numpy(a.astype(dt.numpy_dtype))
    ref = np.argwhere(a.astype(dt.numpy_dtype))
    assert x.nonzero().dtype is I64 and np.array_equal(np_of(x.nonzero()), ref)
    assert np.array_equal(np_of(jitorch.argwhere(x)), ref)
    rows, cols = jitorch.nonzero(x, as_tuple=True)
    assert np.array_equal(np_of(rows), ref[:, 0]) and np.array_equal(np_of(cols), ref[:, 1])
    if torch is not None:
        assert np.array_equal(np_of(torch.nonzero(torch.from_numpy(a.astype(dt.numpy_dtype)))), ref)
    assert jitorch.nonzero(jitorch.tensor(3)).shape == (1, 0)
    assert jitorch.nonzero(jitorch.tensor(0)).shape == (0, 0)
    assert [t.tolist() for t in jitorch.nonzero(jitorch.tensor(3), as_tuple=True)] == [[0]]
    assert jitorch.where(jitorch.tensor([0, 2, 3]))[0].tolist() == [1, 2]


def test_take_put_take_along_dim():
    ti = keep(np.array([[0, 11], [-1, 5]]))
    check_op(lambda x, i: x.take(i), lambda x, i: x.reshape(-1)[i], X2, ti, dtypes=MIXED, layouts=LAYOUTS2)
    check_op(lambda x, i: x.take_along_dim(i, 1), lambda x, i: np.take_along_axis(x, i % 4, 1), X2,
             keep(np.array([[0, -1]])), dtypes=MIXED)
    check_op(lambda x, i: x.take_along_dim(i), lambda x, i: x.reshape(-1)[i.reshape(-1)], X2,
             keep(np.array([0, 11, 3])), dtypes=FLOATS)

    def put_ref(x, i, s, acc):
        out = x.reshape(-1).copy()
        if acc:
            np.add.at(out, i, s)
        else:
            out[i] = s
        return out.reshape(x.shape)
    check_op(lambda x, i, s: x.put(i, s, accumulate=True), lambda x, i, s: put_ref(x, i, s, True), X2,
             keep(np.array([0, 0, -1])), arr(3, seed=3), dtypes=(F32, F64, I64), layouts=LAYOUTS2)
    check_op(lambda x, i, s: x.put(i, s), lambda x, i, s: put_ref(x, i, s, False), X2,
             keep(np.array([[0, 7], [5, 11]])), arr(2, 2, seed=3), dtypes=MIXED, layouts=LAYOUTS2)


@pytest.mark.parametrize("call,exc,msg", [
    (lambda x: x.take(jitorch.tensor([12])), IndexError, ("out of range: tried to access index 12 on a tensor of "
                                                        "12 elements.")),
    (lambda x: x.take(jitorch.tensor([-13])), IndexError, "tried to access index -13"),
    (lambda x: x.take(jitorch.tensor([1], dtype=jitorch.int32)), RuntimeError, "Expected a long tensor for index"),
    (lambda x: x.put(jitorch.tensor([0, 12]), jitorch.ones(2)), IndexError, "tried to access index 12"),
    (lambda x: x.put(jitorch.tensor([0, 1]), jitorch.ones(3)), IndexError,
     "Expected source and index to have the same number of elements"),
    (lambda x: x.put(jitorch.tensor([0, 1]), jitorch.ones(2, dtype=jitorch.int64)), RuntimeError,
     "self and source expected to have the same dtype"),
    (lambda x: x.take_along_dim(jitorch.tensor([0, 1]), 1), RuntimeError,
     "input and indices should have the same number of dimensions"),
])
def test_take_put_errors(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call(jitorch.zeros(3, 4))


def test_index_put():
    x = jitorch.zeros(3, 4)
    r = jitorch.index_put(x, (jitorch.tensor([0, 0, 2]), jitorch.tensor([1, 1, 3])), jitorch.tensor([1.0, 2.0, 3.0]),
                          accumulate=True)
    ref = np.zeros((3, 4))
    np.add.at(ref, ([0, 0, 2], [1, 1, 3]), [1.0, 2.0, 3.0])
    assert np.array_equal(np_of(r), ref) and not x.any()
    x.index_put_((x == 0,), jitorch.tensor(5.0))
    assert x.eq(5).all()
    with pytest.raises(RuntimeError, match="Index put requires the source and destination dtypes match"):
        x.index_put_((jitorch.tensor([0]),), jitorch.tensor([1.0], dtype=jitorch.float64))


# -- triangles, diagonals, one_hot -----------------------------------------------------------------------------
@pytest.mark.parametrize("k", [-1, 0, 2])
def test_tril_triu(k):
    x3 = arr(2, 3, 4, seed=7)
    check_op(lambda x: x.tril(k), lambda x: np.tril(x, k), x3, dtypes=MIXED, layouts=LAYOUTS2)
    check_op(lambda x: jitorch.triu(x, k) if isinstance(x, jitorch.Tensor) else torch.triu(x, k),
             lambda x: np.triu(x, k), X2, dtypes=MIXED)


def test_diag_diag_embed_diagonal_scatter():
    for k in (-1, 0, 2, 7):
        check_op(lambda x, k=k: x.diag(k), lambda x, k=k: np.diag(x, k), X2, dtypes=MIXED, grad=k != 7)
        check_op(lambda x, k=k: x.diag(k), lambda x, k=k: np.diag(x, k), arr(3, seed=2), dtypes=MIXED,
                 grad=k != 7)
    te = (lambda *a: torch.diag_embed(*a)) if torch is not None else None

    def embed_ref(x, off, d1, d2):
        n = x.shape[-1] + abs(off)
        out = np.zeros(x.shape[:-1] + (n, n), x.dtype)
        idx = np.arange(x.shape[-1])
        out[..., idx + max(-off, 0), idx + max(off, 0)] = x
        return np.moveaxis(out, (-2, -1), (d1, d2))
    check_op(lambda x: jitorch.diag_embed(x, 1) if isinstance(x, jitorch.Tensor) else te(x, 1),
             lambda x: embed_ref(x, 1, -2, -1), X2, dtypes=MIXED)
    check_op(lambda x: jitorch.diag_embed(x, -1, 0, 2) if isinstance(x, jitorch.Tensor) else te(x, -1, 0, 2),
             lambda x: embed_ref(x, -1, 0, 2), X2, dtypes=FLOATS)

    def ds_ref(x, s, off):
        out = x.copy()
        idx = np.arange(s.shape[-1])
        out[idx + max(-off, 0), idx + max(off, 0)] = s
        return out
    check_op(lambda x, s: x.diagonal_scatter(s, 1), lambda x, s: ds_ref(x, s, 1), X2, arr(3, seed=2),
             dtypes=MIXED, layouts=LAYOUTS2)
    check_op(lambda x, s: x.diagonal_scatter(s, -1), lambda x, s: ds_ref(x, s, -1), X2, arr(2, seed=2),
             dtypes=FLOATS)


@pytest.mark.parametrize("call,exc,msg", [
    (lambda: jitorch.tril(jitorch.ones(3)), RuntimeError, "tril: input tensor must have at least 2 dimensions"),
    (lambda: jitorch.triu(jitorch.tensor(1.0)), RuntimeError, "triu: input tensor must have at least 2 dimensions"),
    (lambda: jitorch.diag(jitorch.ones(2, 2, 2)), RuntimeError, r"diag\(\): Supports 1D or 2D tensors. Got 3D"),
    (lambda: jitorch.diag_embed(jitorch.ones(2), 0, 0, 0), RuntimeError, "diagonal dimensions cannot be identical"),
    (lambda: jitorch.diag_embed(jitorch.tensor(1.0)), IndexError, "Dimension out of range"),
    (lambda: jitorch.diagonal_scatter(jitorch.zeros(3, 3), jitorch.ones(3), 1), RuntimeError,
     r"expected src to have a size equal to the slice of self. src size = \[3\], slice size = \[2\]"),
    (lambda: one_hot(jitorch.tensor([-1, 2]), 4), RuntimeError, "Class values must be non-negative."),
    (lambda: one_hot(jitorch.tensor([5, 2]), 4), RuntimeError, "Class values must be smaller than num_classes."),
    (lambda: one_hot(jitorch.tensor([1.0]), 4), RuntimeError, "one_hot is only applicable to index tensor"),
    (lambda: one_hot(jitorch.tensor([1], dtype=jitorch.int32), 4), RuntimeError, "type LongTensor"),
    (lambda: one_hot(jitorch.tensor([], dtype=jitorch.int64)), RuntimeError,
     "Can not infer total number of classes from empty tensor."),
])
def test_triangle_diag_one_hot_errors(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()


def test_one_hot():
    labels = np.array([[0, 2], [3, 1]])
    out = one_hot(jitorch.tensor(labels))
    assert out.dtype is I64 and np.array_equal(np_of(out), np.eye(4, dtype=np.int64)[labels])
    assert np_of(one_hot(jitorch.tensor(2), 4)).tolist() == [0, 0, 1, 0]
    assert one_hot(jitorch.tensor([], dtype=jitorch.int64), 3).shape == (0, 3)
    if torch is not None:
        tf = torch.nn.functional.one_hot(torch.tensor(labels), 6)
        assert np.array_equal(np_of(one_hot(jitorch.tensor(labels), 6)), np_of(tf))


# -- in-place forms ---------------------------------------------------------------------------------------------
INPLACE = [
    ("scatter_", lambda x, lib: x.scatter_(1, L(lib, [[0, 1], [2, 0]]), 7.0)),
    ("scatter_src", lambda x, lib: x.scatter_(1, L(lib, [[0, 1], [2, 0]]), x[:2, :2] + 1.5)),
    ("scatter_add_", lambda x, lib: x.scatter_add_(0, L(lib, [[0, 1, 0, 2]]), lib.ones(1, 4, dtype=x.dtype))),
    ("scatter_reduce_", lambda x, lib: x.scatter_reduce_(1, L(lib, [[0, 0]]), lib.ones(1, 2, dtype=x.dtype) * 3,
                                                         "amax")),
    ("index_add_", lambda x, lib: x.index_add_(0, L(lib, [2, 2]), lib.ones(2, 4, dtype=x.dtype), alpha=2)),
    ("index_copy_", lambda x, lib: x.index_copy_(1, L(lib, [3, 0]), lib.zeros(3, 2, dtype=x.dtype))),
    ("index_fill_", lambda x, lib: x.index_fill_(1, L(lib, [1]), -1.0)),
    ("masked_fill_", lambda x, lib: x.masked_fill_(x > 0, 0.5)),
    ("masked_scatter_", lambda x, lib: x.masked_scatter_(x > 0, lib.arange(12, dtype=x.dtype))),
    ("put_", lambda x, lib: x.put_(L(lib, [0, 5]), lib.ones(2, dtype=x.dtype), accumulate=True)),
    ("index_put_", lambda x, lib: x.index_put_((L(lib, [1]), L(lib, [2])), lib.ones(1, dtype=x.dtype))),
    ("tril_", lambda x, lib: x.tril_(1)),
    ("triu_", lambda x, lib: x.triu_()),
]


@pytest.mark.parametrize("name,fn", INPLACE, ids=[c[0] for c in INPLACE])
def test_inplace_forms(name, fn):
    for layout in LAYOUTS2:
        x = make(jitorch, X2, F32, layout)
        v0 = x._version_counter
        out = fn(x, jitorch)
        assert out is x and x._version_counter > v0
        if torch is not None:
            t = make(torch, X2, torch.float32, layout)
            fn(t, torch)
            assert_close(np_of(x), np_of(t), "float32", what=f"{name} {layout}: ")
    # autograd through the in-place op on a non-leaf, and on a view of one
    def graph(a, lib, via_view):
        y = a * 1.0
        fn(y[:, :] if via_view else y, lib)
        return y * a
    for via_view in (False, True):
        check_grad(lambda a, v=via_view: graph(a, jitorch, v), [X2],
                   (lambda a, v=via_view: graph(a, torch, v)) if torch is not None else None)
    leaf = jitorch.tensor(X2, requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place"):
        fn(leaf, jitorch)
    with pytest.raises(RuntimeError, match="a view of a leaf Variable that requires grad"):
        fn(leaf[:, :], jitorch)


def test_grad_fn_names():
    x = jitorch.tensor(X2, requires_grad=True)
    assert x[[0, 1]].grad_fn.name() == "IndexBackward0"
    assert x.gather(1, jitorch.tensor([[0]])).grad_fn.name() == "GatherBackward0"
    assert x.index_select(0, jitorch.tensor([0])).grad_fn.name() == "IndexSelectBackward0"
    assert x.scatter(1, jitorch.tensor([[0]]), 1.0).grad_fn.name() == "ScatterBackward0"
    y = x * 1
    y[0] = 1.0
    assert y.grad_fn.name() == "IndexPutBackward0"


def test_compile_falls_back_on_data_dependent_indexing():
    compile_fn = getattr(jitorch, "compile", None)
    if compile_fn is None:
        pytest.skip("jitorch.compile not available")

    def f(x):
        y = x * 2
        y[0] = 5.0
        return y[y > 1].sum() + x[:, 1:3].sum()
    cf = compile_fn(f)
    for seed in (0, 1):
        x = jitorch.from_numpy(arr(3, 4, seed=seed).astype(np.float32))
        assert abs(cf(x).item() - f(x).item()) < 1e-5


@requires_torch
def test_augmented_assignment_through_indexing():
    out = []
    for lib in (jitorch, torch):
        a = lib.tensor(np.arange(12.0).reshape(3, 4), dtype=lib.float64, requires_grad=True)
        w = lib.tensor([1.0, 2.0, 3.0, 4.0], dtype=lib.float64, requires_grad=True)
        y = a * 2
        y[0] += w  # getitem view, in-place add, then setitem writes it back
        y[[1, 2]] *= 3
        y[y > 20] -= w[0]
        (y * lib.arange(12.0, dtype=lib.float64).reshape(3, 4)).sum().backward()
        out.append((np_of(y), np_of(a.grad), np_of(w.grad)))
    for j, t in zip(out[0], out[1]):
        assert_close(j, t, "float64")


@requires_torch
def test_float16_ops_match_torch():
    x16 = X2.astype(np.float16)
    for fn in (lambda x, lib: x.gather(1, lib.tensor([[0, 1], [2, 2]])),
               lambda x, lib: x.scatter_add(1, lib.tensor([[0, 1], [2, 2]]), x[:2, :2]),
               lambda x, lib: x.index_add(0, lib.tensor([0, 0]), x[:2]),
               lambda x, lib: x.scatter_reduce(1, lib.tensor([[0, 0]]), x[:1, :2], "mean"),
               lambda x, lib: x[[0, 0], 1:]):
        j, t = fn(jitorch.from_numpy(x16.copy()), jitorch), fn(torch.from_numpy(x16.copy()), torch)
        assert j.dtype is jitorch.float16
        assert_close(np_of(j), np_of(t), "float16")


def test_bindings():
    from jitorch.ops import indexing
    assert jitorch.Tensor.__getitem__ is indexing._getitem and jitorch.Tensor.__setitem__ is indexing._setitem
    for name in indexing.__all__:
        assert getattr(jitorch, name) is getattr(indexing, name)
    for name in indexing.TENSOR_METHODS:
        assert getattr(jitorch.Tensor, name) is getattr(indexing, name)
    assert jitorch.zeros(0, 3).nonzero().shape == (0, 2)
