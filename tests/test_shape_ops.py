"""Joining, splitting, flipping, repeating: values vs NumPy/torch, dtypes, views, errors, gradients."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import LAYOUTS, arr, check_grad, check_op, np_of, requires_torch, torch

import jitorch

F32, F64, I64, B = jitorch.float32, jitorch.float64, jitorch.int64, jitorch.bool
DTYPES = (F32, F64, I64, B)


def gradgrad(fn, x: jitorch.Tensor) -> bool:
    """Finite-difference check of the first gradient (core gradgradcheck runs it under no_grad)."""
    go = jitorch.randn(*fn(x).shape, dtype=jitorch.float64, generator=jitorch.Generator().manual_seed(0))

    def first(t, g):
        with jitorch.enable_grad():
            return jitorch.autograd.grad(fn(t), [t], g, create_graph=True)[0]
    return jitorch.autograd.gradcheck(first, (x, go.requires_grad_()))


def lib(t):
    """The module (jitorch or torch) a tensor belongs to, so one lambda serves both."""
    return jitorch if isinstance(t, jitorch.Tensor) else torch


A = arr(2, 3, seed=1)
Bm = arr(2, 3, seed=2)
C = arr(2, 4, seed=3)
V1 = arr(4, seed=4)
T3 = arr(2, 3, 2, seed=5)


# -- joining ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat_dims(dim):
    b = C if dim != 0 else arr(4, 3, seed=3)
    check_op(lambda a, c: lib(a).cat([a, c, a], dim), lambda a, c: np.concatenate([a, c, a], dim), A, b,
             dtypes=DTYPES, layouts=LAYOUTS)


def test_cat_promotes_and_skips_legacy_empty():
    j = jitorch.cat([jitorch.tensor([1, 2]), jitorch.tensor([1.5]), jitorch.tensor([True])])
    assert j.dtype is F32 and j.tolist() == [1.0, 2.0, 1.5, 1.0]
    assert jitorch.cat([jitorch.tensor([1, 2], dtype=jitorch.int8), jitorch.tensor([True])]).dtype is jitorch.int8
    r = jitorch.cat([jitorch.zeros(0), jitorch.ones(2, 3), jitorch.zeros(0)], 1)
    assert tuple(r.shape) == (2, 3)
    assert tuple(jitorch.cat([jitorch.zeros(0), jitorch.zeros(0)]).shape) == (0,)
    assert jitorch.concat is jitorch.cat and jitorch.concatenate is jitorch.cat


def test_cat_grad_with_promotion_and_empty():
    a = jitorch.tensor(A, dtype=F64, requires_grad=True)
    e = jitorch.zeros(0, dtype=F64, requires_grad=True)
    out = jitorch.cat([a, e, jitorch.tensor([[1, 2], [3, 4]])], 1)
    assert out.dtype is F64
    (out * jitorch.arange(10.0, dtype=F64).reshape(2, 5)).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), np.arange(10.0).reshape(2, 5)[:, :3])
    assert tuple(e.grad.shape) == (0,)


@pytest.mark.parametrize("args, exc, msg", [
    (([],), ValueError, "expected a non-empty list of Tensors"),
    (([np.zeros((2, 3)), np.zeros((3, 4))], 1), RuntimeError,
     "Sizes of tensors must match except in dimension 1. Expected size 2 but got size 3 for tensor number 1"),
    (([np.zeros((2, 3)), np.zeros(3)],), RuntimeError, "Tensors must have same number of dimensions: got 2 and 1"),
    (([np.zeros(()), np.zeros(())],), RuntimeError, "zero-dimensional tensor (at position 0) cannot be concatenated"),
    (([np.zeros((2, 3))], 2), IndexError, "Dimension out of range (expected to be in range of [-2, 1], but got 2)"),
])
def test_cat_errors(args, exc, msg):
    tensors = [jitorch.tensor(a) for a in args[0]]
    with pytest.raises(exc, match=__import__("re").escape(msg)):
        jitorch.cat(tensors, *args[1:])


def test_cat_type_errors():
    with pytest.raises(TypeError, match="expected Tensor as element 1"):
        jitorch.cat([jitorch.zeros(2), 3])
    with pytest.raises(TypeError, match="must be tuple of Tensors, not Tensor"):
        jitorch.cat(jitorch.zeros(2, 3))


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_stack(dim):
    check_op(lambda a, b: lib(a).stack([a, b], dim), lambda a, b: np.stack([a, b], dim), A, Bm,
             dtypes=DTYPES, layouts=LAYOUTS)


def test_stack_errors_and_0d():
    assert jitorch.stack([jitorch.tensor(1.0), jitorch.tensor(2)]).tolist() == [1.0, 2.0]
    with pytest.raises(RuntimeError, match="stack expects a non-empty TensorList"):
        jitorch.stack([])
    with pytest.raises(RuntimeError, match=r"stack expects each tensor to be equal size, but got \[2, 3\] at "
                                           r"entry 0 and \[2, 4\] at entry 1"):
        jitorch.stack([jitorch.zeros(2, 3), jitorch.zeros(2, 4)])
    with pytest.raises(IndexError, match="Dimension out of range"):
        jitorch.stack([jitorch.zeros(2, 3)], 3)


@pytest.mark.parametrize("name, np_fn", [("hstack", np.hstack), ("vstack", np.vstack), ("dstack", np.dstack),
                                         ("column_stack", np.column_stack), ("row_stack", np.vstack)])
@pytest.mark.parametrize("shapes", [((3,), (3,)), ((2, 3), (2, 3)), ((), ())])
def test_directional_stacks(name, np_fn, shapes):
    a, b = arr(*shapes[0], seed=1), arr(*shapes[1], seed=2)
    tname = name if name != "row_stack" else "vstack"
    check_op(lambda x, y: getattr(jitorch, name)([x, y]) if isinstance(x, jitorch.Tensor)
             else getattr(torch, tname)([x, y]), lambda x, y: np_fn([x, y]), a, b, dtypes=(F64, I64))


def test_column_stack_mixed():
    check_op(lambda x, y: lib(x).column_stack([x, y]), lambda x, y: np.column_stack([x, y]), V1[:2],
             arr(2, 2, seed=3), dtypes=(F32,))


# -- splitting ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec, dim", [(2, 0), (2, 1), (4, 1), ([1, 2], 1), ([2, 0], 0), (1, -1)])
def test_split(spec, dim):
    def np_split(a):
        n = a.shape[dim]
        bounds = np.cumsum(spec)[:-1] if isinstance(spec, list) else np.arange(spec, n, spec)
        return tuple(np.split(a, bounds, axis=dim))
    check_op(lambda a: lib(a).split(a, spec, dim), np_split, A, dtypes=DTYPES, layouts=LAYOUTS)


def test_split_shapes_and_errors():
    assert [tuple(p.shape) for p in jitorch.split(jitorch.zeros(5), 2)] == [(2,), (2,), (1,)]
    assert [tuple(p.shape) for p in jitorch.split(jitorch.zeros(5), 7)] == [(5,)]
    assert [tuple(p.shape) for p in jitorch.split(jitorch.zeros(0), 0)] == [(0,)]
    with pytest.raises(RuntimeError, match=r"split_with_sizes expects split_sizes to sum exactly to 5 \(input "
                                           r"tensor's size at dimension 0\), but got split_sizes=\[2, 2\]"):
        jitorch.split(jitorch.zeros(5), [2, 2])
    with pytest.raises(RuntimeError, match="split_size can only be 0 if dimension size is 0"):
        jitorch.split(jitorch.zeros(5), 0)
    with pytest.raises(RuntimeError, match="split expects split_size be non-negative"):
        jitorch.split(jitorch.zeros(5), -1)
    with pytest.raises(RuntimeError, match="split expects at least a 1-dimensional tensor"):
        jitorch.split(jitorch.tensor(1.0), 1)


def test_split_pieces_are_views():
    x = jitorch.arange(6.0).reshape(2, 3)
    a, b = x.split([1, 2], 1)
    x.add_(10)
    assert a.tolist() == [[10.0], [13.0]] and b._base is not None
    parts = x.unbind(1)
    x.mul_(0)
    assert all(p.tolist() == [0.0, 0.0] for p in parts)


@pytest.mark.parametrize("chunks, dim, n", [(4, 0, 6), (3, 0, 7), (2, 1, 3), (5, 0, 3)])
def test_chunk(chunks, dim, n):
    a = arr(n, 3, seed=1) if dim == 0 else arr(2, n, seed=1)
    check_op(lambda x: lib(x).chunk(x, chunks, dim), None, a, dtypes=(F32, I64), layouts=LAYOUTS)


def test_chunk_errors_and_empty():
    assert [tuple(p.shape) for p in jitorch.chunk(jitorch.zeros(0), 3)] == [(0,)] * 3
    with pytest.raises(RuntimeError, match="chunk expects `chunks` to be greater than 0, got: 0"):
        jitorch.chunk(jitorch.zeros(5), 0)
    with pytest.raises(RuntimeError, match="chunk expects at least a 1-dimensional tensor"):
        jitorch.chunk(jitorch.tensor(1.0), 1)


@pytest.mark.parametrize("spec", [3, 5, [1, 5, 9, 3], [-2], (2,), "tensor_idx", "tensor_sections"])
def test_tensor_split(spec):
    a = arr(7, 2, seed=1)
    def fn(x):
        s = spec
        if spec == "tensor_idx":
            s = lib(x).tensor([1, 5])
        elif spec == "tensor_sections":
            s = lib(x).tensor(3)
        return lib(x).tensor_split(x, s, 0)
    np_spec = {"tensor_idx": [1, 5], "tensor_sections": 3}.get(spec, spec) if isinstance(spec, str) else spec
    check_op(fn, lambda x: tuple(np.array_split(x, np_spec if isinstance(np_spec, int) else list(np_spec), 0)),
             a, dtypes=(F64, I64))


def test_tensor_split_errors():
    with pytest.raises(RuntimeError, match="number of sections must be larger than 0, got 0"):
        jitorch.tensor_split(jitorch.zeros(7), 0)
    with pytest.raises(RuntimeError, match="to have dtype of long, but got Float"):
        jitorch.tensor_split(jitorch.zeros(7), jitorch.tensor([1.0]))
    with pytest.raises(RuntimeError, match="expected at least a 1-dimensional tensor"):
        jitorch.tensor_split(jitorch.tensor(1.0), 2)


@pytest.mark.parametrize("name", ["hsplit", "vsplit", "dsplit"])
def test_hvd_split(name):
    a = arr(2, 4, 2, seed=1)
    check_op(lambda x: getattr(lib(x), name)(x, 2), lambda x: tuple(getattr(np, name)(x, 2)), a, dtypes=(F64,))


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_unbind(dim):
    check_op(lambda x: lib(x).unbind(x, dim), lambda x: tuple(np.moveaxis(x, dim, 0)), T3, dtypes=DTYPES,
             layouts=LAYOUTS)


def test_unbind_errors_and_empty():
    assert jitorch.unbind(jitorch.zeros(0, 3)) == ()
    with pytest.raises(IndexError, match="Dimension specified as 0 but tensor has no dimensions"):
        jitorch.unbind(jitorch.tensor(1.0))
    assert [t.tolist() for t in jitorch.tensor([[1, 2], [3, 4]])] == [[1, 2], [3, 4]]  # Tensor.__iter__


def test_split_grad_uses_unused_pieces_as_zero():
    x = jitorch.tensor(arr(5, 2, seed=3), requires_grad=True)
    *_, c = x.split([2, 1, 2])
    (c * 3).sum().backward()
    expect = np.zeros((5, 2))
    expect[3:] = 3
    np.testing.assert_allclose(x.grad.numpy(), expect)


# -- flip / roll / rot90 ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("dims", [(0,), (1,), (0, 1), (-1, 0), ()])
def test_flip(dims):
    check_op(lambda x: lib(x).flip(x, dims), lambda x: np.flip(x, dims) if dims else x, A, dtypes=DTYPES,
             layouts=LAYOUTS)


def test_flip_forms_and_errors():
    x = jitorch.arange(6).reshape(2, 3)
    assert x.flip(0, 1).tolist() == x.flip((0, 1)).tolist() == jitorch.flip(x, dims=[0, 1]).tolist()
    assert x.flip(0).is_contiguous()
    assert jitorch.flip(jitorch.tensor(1.0), (0,)).item() == 1.0
    with pytest.raises(RuntimeError, match="dim 0 appears multiple times in the list of dims"):
        jitorch.flip(x, (0, 0))
    with pytest.raises(RuntimeError, match=r"Input must be >= 2-d\."):
        jitorch.fliplr(jitorch.zeros(3))
    with pytest.raises(RuntimeError, match=r"Input must be >= 1-d\."):
        jitorch.flipud(jitorch.tensor(1.0))


@pytest.mark.parametrize("name, np_fn", [("fliplr", np.fliplr), ("flipud", np.flipud)])
def test_fliplr_ud(name, np_fn):
    check_op(lambda x: getattr(lib(x), name)(x), np_fn, A, dtypes=(F32, I64))


@pytest.mark.parametrize("shifts, dims", [(1, None), (-4, None), (1, 0), ((1, 2), (0, 1)), ((5, -1), (1, 1))])
def test_roll(shifts, dims):
    check_op(lambda x: lib(x).roll(x, shifts, dims), lambda x: np.roll(x, shifts, dims), A, dtypes=DTYPES,
             layouts=LAYOUTS)


def test_roll_edge_cases():
    assert jitorch.roll(jitorch.tensor(3.0), 1).item() == 3.0
    assert tuple(jitorch.roll(jitorch.zeros(0, 3), 1, 0).shape) == (0, 3)
    with pytest.raises(RuntimeError, match="shifts and dimensions must align. shifts: 2, dims:1"):
        jitorch.roll(jitorch.zeros(2, 3), (1, 2), (0,))
    with pytest.raises(RuntimeError, match="shifts and dimensions must align. shifts: 2, dims:0"):
        jitorch.roll(jitorch.zeros(2, 3), (1, 2))
    with pytest.raises(IndexError, match="Dimension specified as 0 but tensor has no dimensions"):
        jitorch.roll(jitorch.tensor(3.0), 1, 0)


@pytest.mark.parametrize("k, dims", [(1, (0, 1)), (2, (0, 1)), (3, (0, 1)), (-1, (0, 1)), (0, (0, 1)),
                                     (1, (1, 0)), (5, (0, 2))])
def test_rot90(k, dims):
    check_op(lambda x: lib(x).rot90(x, k, dims), lambda x: np.rot90(x, k, dims), T3, dtypes=(F64, I64))


def test_rot90_errors():
    with pytest.raises(RuntimeError, match="expected total rotation dims == 2, but got dims = 3"):
        jitorch.rot90(jitorch.zeros(2, 2), 1, [0, 1, 2])
    with pytest.raises(RuntimeError, match="expected total dims >= 2, but got total dims = 1"):
        jitorch.rot90(jitorch.zeros(2), 1, [0, 1])
    with pytest.raises(RuntimeError, match="expected rotation dims to be different, but got dim0 = 0 and dim1 = 0"):
        jitorch.rot90(jitorch.zeros(2, 2), 1, [0, 0])


# -- repeat / tile / repeat_interleave ------------------------------------------------------------------------------
@pytest.mark.parametrize("reps", [(2, 1), (1, 3), (2, 2, 2), (3, 1, 1), (0, 2)])
def test_repeat(reps):
    check_op(lambda x: x.repeat(*reps), lambda x: np.tile(x, reps), A, dtypes=DTYPES, layouts=LAYOUTS)


def test_repeat_copies_and_errors():
    x = jitorch.arange(3.0)
    y = x.repeat(1)
    x.add_(1)
    assert y.tolist() == [0.0, 1.0, 2.0]
    assert tuple(jitorch.tensor(1.0).repeat(2, 3).shape) == (2, 3)
    with pytest.raises(RuntimeError, match="Number of dimensions of repeat dims can not be smaller"):
        jitorch.zeros(2, 3).repeat(2)
    with pytest.raises(RuntimeError, match="negative dimension"):
        jitorch.zeros(2).repeat(-1)


@pytest.mark.parametrize("reps", [(2,), (2, 1), (1, 2, 3), ()])
def test_tile(reps):
    check_op(lambda x: lib(x).tile(x, reps), lambda x: np.tile(x, reps), A, dtypes=(F32, B))


@pytest.mark.parametrize("case", ["int", "int_dim0", "int_dim1", "tensor_dim0", "tensor_1elem", "zero"])
def test_repeat_interleave(case):
    def fn(x):
        L = lib(x)
        return {"int": lambda: L.repeat_interleave(x, 2),
                "int_dim0": lambda: L.repeat_interleave(x, 3, dim=0),
                "int_dim1": lambda: x.repeat_interleave(2, dim=-1),
                "tensor_dim0": lambda: L.repeat_interleave(x, L.tensor([1, 0]), dim=0),
                "tensor_1elem": lambda: L.repeat_interleave(x, L.tensor([2])),
                "zero": lambda: L.repeat_interleave(x, 0, dim=1)}[case]()
    ref = {"int": lambda a: np.repeat(a, 2), "int_dim0": lambda a: np.repeat(a, 3, 0),
           "int_dim1": lambda a: np.repeat(a, 2, -1), "tensor_dim0": lambda a: np.repeat(a, [1, 0], 0),
           "tensor_1elem": lambda a: np.repeat(a, 2), "zero": lambda a: np.repeat(a, 0, 1)}[case]
    check_op(fn, ref, A, dtypes=(F32, I64, B), layouts=LAYOUTS)


def test_repeat_interleave_tensor_grad_and_forms():
    check_grad(lambda x: jitorch.repeat_interleave(x, jitorch.tensor([2, 0, 3]), dim=1), [A],
               (lambda x: torch.repeat_interleave(x, torch.tensor([2, 0, 3]), dim=1)) if torch else None)
    assert jitorch.repeat_interleave(jitorch.tensor([1, 2, 3])).tolist() == [0, 1, 1, 2, 2, 2]
    assert jitorch.repeat_interleave(jitorch.tensor(5.0), 3).tolist() == [5.0, 5.0, 5.0]


@pytest.mark.parametrize("reps, exc, msg", [
    ([1, 2, 3], RuntimeError, ("repeats must have the same size as input along dim, but got repeats.size(0) = 3 "
                               "and input.size(0) = 2")),
    ([1, -2], RuntimeError, "repeats can not be negative"),
    (-1, RuntimeError, "Repeats must be non-negative"),
    ([[1, 2]], RuntimeError, "repeats must be 0-dim or 1-dim tensor"),
    ([1.0, 2.0], NotImplementedError, "\"repeat_interleave_cpu\" not implemented for 'Float'"),
])
def test_repeat_interleave_errors(reps, exc, msg):
    r = reps if isinstance(reps, int) else jitorch.tensor(reps)
    with pytest.raises(exc, match=__import__("re").escape(msg)):
        jitorch.repeat_interleave(jitorch.tensor([[1, 2], [3, 4]]), r, dim=0)


# -- broadcasting, meshgrid, atleast ----------------------------------------------------------------------------------
def test_broadcast_tensors():
    check_op(lambda a, b, c: lib(a).broadcast_tensors(a, b, c), lambda a, b, c: tuple(np.broadcast_arrays(a, b, c)),
             arr(2, 1, 3, seed=1), arr(4, 1, seed=2), arr(3, seed=3), dtypes=(F32, I64))
    assert tuple(jitorch.broadcast_shapes((2, 1), (3,), 1)) == (2, 3)
    with pytest.raises(RuntimeError, match=r"The size of tensor a \(2\) must match the size of tensor b \(4\) at "
                                           r"non-singleton dimension 0"):
        jitorch.broadcast_tensors(jitorch.zeros(2, 3), jitorch.zeros(4, 3))


@pytest.mark.parametrize("indexing", ["ij", "xy"])
def test_meshgrid(indexing):
    check_op(lambda a, b, c: lib(a).meshgrid(a, b, c, indexing=indexing),
             lambda a, b, c: tuple(np.meshgrid(a, b, c, indexing=indexing)),
             arr(2, seed=1), arr(3, seed=2), arr(4, seed=3), dtypes=(F64, I64))


def test_meshgrid_forms_and_errors():
    a, b = jitorch.tensor([1, 2]), jitorch.tensor([1, 2, 3])
    with pytest.warns(UserWarning, match="indexing argument"):
        g = jitorch.meshgrid(a, b)
    assert [tuple(t.shape) for t in g] == [(2, 3), (2, 3)]
    assert [tuple(t.shape) for t in jitorch.meshgrid([a, b], indexing="ij")] == [(2, 3), (2, 3)]
    assert [tuple(t.shape) for t in jitorch.meshgrid(jitorch.tensor(1), b, indexing="ij")] == [(1, 3), (1, 3)]
    with pytest.raises(RuntimeError, match='indexing must be one of "xy" or "ij", but received: foo'):
        jitorch.meshgrid(a, indexing="foo")
    with pytest.raises(RuntimeError, match="meshgrid expects all tensors to have the same dtype"):
        jitorch.meshgrid(a, b.float(), indexing="ij")
    with pytest.raises(RuntimeError, match="Expected 0D or 1D tensor in the tensor list"):
        jitorch.meshgrid(jitorch.zeros(2, 2), indexing="ij")
    with pytest.raises(RuntimeError, match="meshgrid expects a non-empty TensorList"):
        jitorch.meshgrid(indexing="ij")


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("shape", [(), (3,), (2, 3), (2, 3, 2)])
def test_atleast(n, shape):
    x = jitorch.tensor(arr(*shape, seed=1))
    out = getattr(jitorch, f"atleast_{n}d")(x)
    ref = getattr(np, f"atleast_{n}d")(arr(*shape, seed=1))
    np.testing.assert_array_equal(out.numpy(), ref)
    both = getattr(jitorch, f"atleast_{n}d")(x, x)
    assert isinstance(both, tuple) and len(both) == 2
    assert isinstance(getattr(jitorch, f"atleast_{n}d")([x]), tuple)
    if x.ndim >= n:
        assert out is x


# -- gradients (float64 gradcheck and vs torch) ---------------------------------------------------------------------
GRAD_CASES = [
    ("cat", lambda a, b: lib(a).cat([a, b, a], 1), (A, C)),
    ("stack", lambda a, b: lib(a).stack([a, b], 1), (A, Bm)),
    ("hstack", lambda a, b: lib(a).hstack([a, b]), (A, C)),
    ("split", lambda a: lib(a).split(a, [1, 2], 1)[1] * 2 + lib(a).split(a, [1, 2], 1)[0], (A,)),
    ("chunk", lambda a: lib(a).chunk(a, 2, 1)[0], (C,)),
    ("tensor_split", lambda a: lib(a).tensor_split(a, [1, 3], 1)[1], (C,)),
    ("unbind", lambda a: lib(a).unbind(a, 1)[0] * lib(a).unbind(a, 1)[2], (A,)),
    ("flip", lambda a: lib(a).flip(a, (0, 1)), (A,)),
    ("roll", lambda a: lib(a).roll(a, (1, -1), (0, 1)), (A,)),
    ("roll_flat", lambda a: lib(a).roll(a, 2), (A,)),
    ("rot90", lambda a: lib(a).rot90(a, 1, (0, 1)), (A,)),
    ("repeat", lambda a: a.repeat(2, 1, 2), (A,)),
    ("tile", lambda a: lib(a).tile(a, (2,)), (A,)),
    ("repeat_interleave", lambda a: lib(a).repeat_interleave(a, 2, dim=0), (A,)),
    ("broadcast_tensors", lambda a, b: lib(a).broadcast_tensors(a, b)[0] * 2, (arr(2, 1, seed=1), arr(3, seed=2))),
    ("meshgrid", lambda a, b: lib(a).meshgrid(a, b, indexing="xy")[0], (arr(2, seed=1), arr(3, seed=2))),
    ("column_stack", lambda a, b: lib(a).column_stack([a, b]), (arr(2, seed=1), arr(2, 2, seed=2))),
]


@pytest.mark.parametrize("name, fn, inputs", GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_grads(name, fn, inputs):
    check_grad(fn, list(inputs), fn if torch is not None else None)


@pytest.mark.parametrize("fn", [lambda a: jitorch.cat([a, a * a], 0), lambda a: jitorch.flip(a * a, (1,)),
                                lambda a: jitorch.roll(a * a, 1, 1), lambda a: jitorch.split(a * a, 1, 1)[2],
                                lambda a: jitorch.unbind(a * a, 0)[1]])
def test_double_backward(fn):
    x = jitorch.tensor(A, dtype=F64, requires_grad=True)
    assert gradgrad(fn, x)


def test_gather_scatter_primitives_are_adjoint():
    from jitorch.ops.shape_ops import gather_along, scatter_add_along
    x = jitorch.tensor(arr(3, 4, seed=7), requires_grad=True)
    idx = jitorch.tensor([[0, 0, 2, 1], [2, 2, 2, 0]])
    assert gradgrad(lambda t: gather_along(t, idx, 0) ** 2, x)
    s = jitorch.tensor(arr(2, 4, seed=8), requires_grad=True)
    out = scatter_add_along(s, idx, 0, (3, 4))
    expect = np.zeros((3, 4))
    np.add.at(expect, (idx.numpy(), np.arange(4)[None, :].repeat(2, 0)), s.detach().numpy())
    np.testing.assert_allclose(out.detach().numpy(), expect)
    assert gradgrad(lambda t: scatter_add_along(t, idx, 0, (3, 4)) ** 2, s)


@requires_torch
def test_non_contiguous_inputs_match_torch():
    base = np.arange(24.0).reshape(4, 6)
    j = jitorch.as_strided(jitorch.tensor(base), (2, 3), (12, 2), 1)  # rows 0, 2; columns 1, 3, 5
    t = torch.tensor(base)[::2, 1::2]
    for fj, ft in [(lambda x: jitorch.cat([x, x.t().t()], 1), lambda x: torch.cat([x, x], 1)),
                   (lambda x: x.flip(1), lambda x: x.flip(1)), (lambda x: x.roll(1, 1), lambda x: x.roll(1, 1)),
                   (lambda x: x.repeat(2, 1), lambda x: x.repeat(2, 1))]:
        np.testing.assert_array_equal(np_of(fj(j)), np_of(ft(t)))
