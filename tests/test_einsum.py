"""einsum: equations vs NumPy/torch, ellipsis and broadcasting, the lowering onto matmul, errors, gradients."""
from __future__ import annotations

import re

import numpy as np
import pytest
from helpers import arr, check_grad, check_op, torch

import jitorch

F32, F64, I64 = jitorch.float32, jitorch.float64, jitorch.int64


def lib(t):
    return jitorch if isinstance(t, jitorch.Tensor) else torch


def gradgrad(fn, *xs) -> bool:
    """Finite-difference check of the first gradient (core gradgradcheck runs it under no_grad)."""
    go = jitorch.randn(*fn(*xs).shape, dtype=jitorch.float64, generator=jitorch.Generator().manual_seed(0))

    def first(*args):
        ts, g = args[:-1], args[-1]
        with jitorch.enable_grad():
            return jitorch.autograd.grad(fn(*ts), list(ts), g, create_graph=True)
    return jitorch.autograd.gradcheck(first, (*xs, go.requires_grad_()))


# equation, operand shapes
CASES = [
    ("bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]),    # attention scores
    ("bhqk,bhkd->bhqd", [(2, 2, 3, 5), (2, 2, 5, 4)]),    # attention output
    ("bi,oij,bj->bo", [(2, 3), (4, 3, 5), (2, 5)]),      # bilinear
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("ii->i", [(3, 3)]),
    ("ii", [(3, 3)]),
    ("i,j->ij", [(3,), (4,)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("...ij,...jk->...ik", [(2, 3, 4), (4, 5)]),
    ("ij->ji", [(2, 3)]),
    ("ij->", [(2, 3)]),
    ("ij,ij->ij", [(2, 3), (2, 3)]),
    ("ij,ij->", [(2, 3), (2, 3)]),
    ("i,i->", [(4,), (4,)]),
    ("ijk->kji", [(2, 3, 4)]),
    ("iij->ij", [(3, 3, 2)]),
    ("iji->j", [(3, 2, 3)]),
    ("ba,bc", [(2, 3), (2, 4)]),                          # implicit output
    ("Ba,bc", [(2, 3), (5, 4)]),                          # implicit: upper case sorts first
    ("i...->...", [(4, 2, 3)]),
    ("...i->i", [(4, 2, 3)]),
    ("...ij,...jk", [(5, 2, 3), (3, 4)]),
    ("...ij,...jk->...ik", [(5, 1, 2, 3), (7, 3, 4)]),   # ellipsis broadcasting
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
    ("ab,cd->", [(2, 3), (4, 5)]),                        # independent sums
    ("bn,anm,bm->ba", [(2, 3), (4, 3, 5), (2, 5)]),
    ("ij,jk->ik", [(2, 1), (3, 4)]),                      # a size-1 subscript broadcasts
    ("ij,jk->ik", [(2, 0), (0, 4)]),                      # empty contraction
    (",->", [(), ()]),
    ("", [()]),
]


def _inputs(shapes, seed=0):
    return [arr(*s, seed=seed + k) for k, s in enumerate(shapes)]


def _np_einsum(eq):
    if eq == "...i->i":  # NumPy will not sum an ellipsis away
        return lambda a: a.sum((0, 1))

    def ref(*ops):
        if "," in eq or "->" in eq or not eq:
            shapes = [o.shape for o in ops]
            # NumPy does not broadcast a size-1 subscript against another size; expand it like torch does
            if eq == "ij,jk->ik" and shapes[0][1] == 1 and shapes[1][0] != 1:
                ops = (np.broadcast_to(ops[0], (shapes[0][0], shapes[1][0])), ops[1])
        return np.einsum(eq, *ops)
    return ref


@pytest.mark.parametrize("eq, shapes", CASES, ids=[c[0] or "empty" for c in CASES])
def test_einsum_matches_numpy_and_torch(eq, shapes):
    check_op(lambda *ops: lib(ops[0]).einsum(eq, *ops), _np_einsum(eq), *_inputs(shapes), dtypes=(F32, F64),
             grad=False)


@pytest.mark.parametrize("eq, shapes", [CASES[0], CASES[2], CASES[4], CASES[5], CASES[7], CASES[15], CASES[22]],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_einsum_grads(eq, shapes):
    check_grad(lambda *ops: lib(ops[0]).einsum(eq, *ops), _inputs(shapes, seed=3),
               (lambda *ops: torch.einsum(eq, *ops)) if torch is not None else None)


def test_einsum_int_and_non_contiguous():
    a, b = np.arange(6).reshape(2, 3), np.arange(12).reshape(3, 4)
    r = jitorch.einsum("ij,jk->ik", jitorch.tensor(a), jitorch.tensor(b))
    assert r.dtype is I64 and r.tolist() == (a @ b).tolist()
    assert jitorch.einsum("ii", jitorch.tensor(np.arange(9).reshape(3, 3))).item() == 12
    at = jitorch.tensor(arr(4, 3, seed=1)).t()   # (3, 4) transposed view
    bt = jitorch.tensor(arr(5, 4, seed=2)).t()   # (4, 5)
    np.testing.assert_allclose(jitorch.einsum("ij,jk->ik", at, bt).numpy(), at.numpy() @ bt.numpy(), rtol=1e-6)


def test_einsum_argument_forms():
    a, b = jitorch.tensor(arr(2, 3, seed=1)), jitorch.tensor(arr(3, 4, seed=2))
    ref = (a @ b).numpy()
    for r in (jitorch.einsum("ij,jk", [a, b]), jitorch.einsum(" i j , j k -> i k ", a, b),
              jitorch.einsum(a, [0, 1], b, [1, 2], [0, 2]), jitorch.einsum(a, [0, 1], b, [1, 2])):
        np.testing.assert_allclose(r.numpy(), ref, rtol=1e-6)
    e = jitorch.einsum(jitorch.tensor(arr(2, 3, 4, seed=3)), [Ellipsis, 1], [1])
    np.testing.assert_allclose(e.numpy(), arr(2, 3, 4, seed=3).sum((0, 1)), rtol=1e-6)


def test_einsum_diagonal_ignores_off_diagonal_inf():
    x = jitorch.tensor([[1.0, float("inf")], [float("nan"), 2.0]])
    assert jitorch.einsum("ii->i", x).tolist() == [1.0, 2.0]


def test_einsum_uses_matmul():
    from jitorch.ops import linalg
    calls = []
    orig = linalg.MATMUL.impl["cpu"]
    linalg.MATMUL.impl["cpu"] = lambda a, b: calls.append((a.shape, b.shape)) or orig(a, b)
    try:
        q, k = jitorch.randn(2, 3, 5, 4), jitorch.randn(2, 3, 6, 4)
        jitorch.einsum("bhqd,bhkd->bhqk", q, k)
    finally:
        linalg.MATMUL.impl["cpu"] = orig
    assert calls == [((6, 5, 4), (6, 4, 6))]


@pytest.mark.parametrize("eq, shapes, exc, msg", [
    ("ij,jk->ik", [(2, 3), (3, 4), (3, 4)], RuntimeError, "more operands were provided than specified"),
    ("ij,jk->ik", [(2, 3)], RuntimeError, "fewer operands were provided than specified"),
    ("ijk,jk->ik", [(2, 3), (3, 4)], RuntimeError, ("the number of subscripts in the equation (3) does not match "
                                                    "the number of dimensions (2) for operand 0 and no ellipsis")),
    ("ij,ik->jk", [(2, 3), (3, 4)], RuntimeError, ("subscript i has size 3 for operand 1 which does not broadcast "
                                                  "with previously seen size 2")),
    ("i1,jk->ik", [(2, 3), (3, 4)], RuntimeError, "invalid subscript given at index 1 in the equation string"),
    ("ij,jk-ik", [(2, 3), (3, 4)], RuntimeError, "invalid subscript given at index 5"),
    ("ij,jk->ii", [(2, 3), (3, 4)], RuntimeError, "output subscript i appears more than once in the output"),
    ("ij,jk->iz", [(2, 3), (3, 4)], RuntimeError, "output subscript z does not appear in the equation for any input"),
    ("ii->i", [(2, 3)], RuntimeError, "subscript i is repeated for operand 0 but the sizes don't match, 3 != 2"),
    ("......", [(5, 2)], RuntimeError, "found '.' for operand 0 for which an ellipsis was already found"),
    ("...ij,...jk->ik", [(5, 2, 3), (2, 3, 4)], RuntimeError,
     ("dimension 0 covered by ellipsis in operand 1has size 2 which does not broadcast with previously seen ellipsis "
     "with size 5")),
])
def test_einsum_errors(eq, shapes, exc, msg):
    ops = [jitorch.zeros(*s) for s in shapes]
    with pytest.raises(exc, match=re.escape(msg)):
        jitorch.einsum(eq, *ops)
    if torch is not None:
        with pytest.raises(exc, match=re.escape(msg)):
            torch.einsum(eq, *[torch.zeros(*s) for s in shapes])


def test_einsum_type_errors():
    with pytest.raises(ValueError, match="must specify the equation string and at least one operand"):
        jitorch.einsum("i->i")
    with pytest.raises(RuntimeError, match="expected scalar type Float but found Double"):
        jitorch.einsum("ij,jk->ik", jitorch.zeros(2, 3), jitorch.zeros(3, 4, dtype=F64))
    with pytest.raises(NotImplementedError, match="\"bmm\" not implemented for 'Bool'"):
        jitorch.einsum("ij,jk->ik", jitorch.zeros(2, 3) > 0, jitorch.zeros(3, 4) > 0)


def test_einsum_double_backward():
    a, b = (jitorch.tensor(arr(2, 3, seed=1), requires_grad=True), jitorch.tensor(arr(3, 2, seed=2),
                                                                                  requires_grad=True))
    assert gradgrad(lambda x, y: jitorch.einsum("ij,jk->ik", x * x, y), a, b)
    c = jitorch.tensor(arr(3, 3, seed=3), requires_grad=True)
    assert gradgrad(lambda x: jitorch.einsum("ii->i", x * x), c)
