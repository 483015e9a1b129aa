"""Errors: the exception type torch raises for the same call, and messages that name what is wrong."""
from __future__ import annotations

import pytest
from helpers import torch

import jitorch

# id, call on a module (jitorch or torch), the exception type torch raises, a regex jitorch's message matches
CASES = [
    # shapes
    ("broadcast", lambda m: m.ones(2, 3) + m.ones(4), RuntimeError, r"\(3\).*\(4\)"),
    ("broadcast_3d", lambda m: m.ones(2, 3, 4) * m.ones(3, 3, 4), RuntimeError, r"\(2\).*\(3\)|\(3\).*\(2\)"),
    ("inplace_broadcast", lambda m: m.ones(2).add_(m.ones(2, 2)), RuntimeError, r"\[2\].*\[2, 2\]"),
    ("matmul", lambda m: m.ones(2, 3) @ m.ones(2, 3), RuntimeError, r"2x3"),
    ("matmul_1d", lambda m: m.matmul(m.ones(2), m.ones(3)), RuntimeError, None),
    ("mm_rank", lambda m: m.mm(m.ones(2), m.ones(2, 2)), RuntimeError, None),
    ("dot", lambda m: m.ones(2).dot(m.ones(3)), RuntimeError, None),
    ("view_numel", lambda m: m.zeros(2, 3).view(4), RuntimeError, r"\[4\].*size 6"),
    ("view_strides", lambda m: m.zeros(2, 3).t().view(6), RuntimeError, r"view size is not compatible"),
    ("view_two_infer", lambda m: m.zeros(2, 3).view(-1, -1), RuntimeError, r"only one dimension"),
    ("reshape_numel", lambda m: m.zeros(2, 3).reshape(5), RuntimeError, r"size 6"),
    ("expand", lambda m: m.ones(2, 3).expand(3, 3), RuntimeError, r"\(3\).*\(2\)"),
    ("expand_fewer", lambda m: m.ones(2, 3).expand(3), RuntimeError, None),
    ("expand_leading_-1", lambda m: m.ones(2).expand(-1, 2), RuntimeError, None),
    ("permute_len", lambda m: m.ones(2, 3).permute(0), RuntimeError, None),
    ("permute_dup", lambda m: m.ones(2, 3).permute(1, 1), RuntimeError, None),
    ("unflatten", lambda m: m.ones(2, 6).unflatten(1, (4, 2)), RuntimeError, None),
    ("narrow", lambda m: m.ones(3).narrow(0, 2, 5), RuntimeError, r"exceeds dimension size"),
    ("t_3d", lambda m: m.ones(2, 3, 4).t(), RuntimeError, r"<= 2 dimensions"),
    ("unfold_size", lambda m: m.ones(3).unfold(0, 4, 1), RuntimeError, None),
    ("tensor_ragged", lambda m: m.tensor([[1, 2], [3]]), ValueError, None),
    # dims
    ("sum_dim", lambda m: m.ones(2, 3).sum(2), IndexError, r"Dimension out of range"),
    ("sum_neg_dim", lambda m: m.ones(2, 3).sum(-3), IndexError, r"Dimension out of range"),
    ("amax_dim", lambda m: m.ones(2, 3).amax(5), IndexError, r"Dimension out of range"),
    ("softmax_dim", lambda m: m.ones(2, 3).softmax(2), IndexError, r"Dimension out of range"),
    ("transpose_dim", lambda m: m.ones(2, 3).transpose(0, 2), IndexError, r"Dimension out of range"),
    ("unsqueeze_dim", lambda m: m.ones(2, 3).unsqueeze(4), IndexError, r"Dimension out of range"),
    ("squeeze_dim", lambda m: m.ones(2, 3).squeeze(3), IndexError, r"Dimension out of range"),
    ("flatten_dim", lambda m: m.ones(2, 3).flatten(0, 3), IndexError, r"Dimension out of range"),
    ("size_dim", lambda m: m.ones(2, 3).size(2), IndexError, r"Dimension out of range"),
    ("narrow_dim", lambda m: m.ones(2, 3).narrow(2, 0, 1), IndexError, r"Dimension out of range"),
    ("select_index", lambda m: m.ones(2, 3).select(0, 2), IndexError, r"out of range"),
    ("dup_dims", lambda m: m.ones(2, 3).sum((0, -2)), RuntimeError, r"appears multiple times"),
    ("empty_amax", lambda m: m.empty(0).amax(), RuntimeError, None),
    ("empty_amax_dim", lambda m: m.empty(0, 2).amin(0), IndexError, None),
    # dtypes
    ("bitwise_float", lambda m: m.bitwise_and(m.ones(2), m.ones(2)), NotImplementedError, r"'Float'"),
    ("bitwise_int_float", lambda m: m.bitwise_or(m.tensor([1]), 1.5), NotImplementedError, r"'Float'"),
    ("shift_float", lambda m: m.bitwise_left_shift(m.ones(2), 1), NotImplementedError, r"'Float'"),
    ("bitwise_not_float", lambda m: m.bitwise_not(m.ones(2)), NotImplementedError, r"'Float'"),
    ("floordiv_bool", lambda m: m.tensor([True]) // m.tensor([True]), NotImplementedError, r"'Bool'"),
    ("remainder_bool", lambda m: m.remainder(m.tensor([True]), m.tensor([True])), NotImplementedError, r"'Bool'"),
    ("fmod_bool", lambda m: m.fmod(m.tensor([True]), m.tensor([True])), NotImplementedError, r"'Bool'"),
    ("pow_bool", lambda m: m.tensor([True]) ** m.tensor([True]), NotImplementedError, r"'Bool'"),
    ("mean_int", lambda m: m.tensor([1, 2]).mean(), RuntimeError, r"Long"),
    ("var_int", lambda m: m.tensor([1, 2]).var(), RuntimeError, None),
    ("norm_int", lambda m: m.tensor([1, 2]).norm(), RuntimeError, None),
    ("requires_grad_int", lambda m: m.tensor([1, 2]).requires_grad_(), RuntimeError, r"floating point"),
    ("inplace_downcast", lambda m: m.tensor([1, 2]).add_(1.5), RuntimeError, r"Float.*Long"),
    ("inplace_float_op_on_int", lambda m: m.tensor([1, 2]).exp_(), RuntimeError, r"Float.*Long"),
    ("out_downcast", lambda m: m.add(m.ones(2), 1, out=m.empty(2, dtype=m.int64)), RuntimeError, None),
    ("neg_pow_int", lambda m: m.tensor([1, 2]) ** -1, RuntimeError, r"negative integer powers"),
    ("int_div_zero", lambda m: m.tensor([1, 2]) // 0, RuntimeError, r"ZeroDivisionError"),
    ("int_remainder_zero", lambda m: m.remainder(m.tensor([1, 2]), 0), RuntimeError, r"ZeroDivisionError"),
    ("where_cond_float", lambda m: m.where(m.ones(2), m.ones(2), m.zeros(2)), RuntimeError, r"bool"),
    ("softmax_int", lambda m: m.tensor([1, 2]).softmax(0), NotImplementedError, r"'Long'"),
    ("log_softmax_bool", lambda m: m.tensor([[True]]).log_softmax(0), NotImplementedError, r"'Bool'"),
    ("randn_int", lambda m: m.randn(2, dtype=m.int64), NotImplementedError, r"'Long'"),
    ("rand_bool", lambda m: m.rand(2, dtype=m.bool), NotImplementedError, r"'Bool'"),
    ("matmul_dtypes", lambda m: m.ones(2, 2) @ m.ones(2, 2, dtype=m.float64), RuntimeError, r"dtype"),
    ("tensor_str", lambda m: m.tensor("abc"), TypeError, None),
    # bool arithmetic
    ("bool_sub", lambda m: m.tensor([True]) - m.tensor([False]), RuntimeError, r"two bool tensors"),
    ("bool_sub_scalar", lambda m: m.sub(m.ones(2), True), RuntimeError, r"bool tensor"),
    ("bool_rsub", lambda m: 1 - m.tensor([True]), RuntimeError, r"bool tensor"),
    ("bool_neg", lambda m: -m.tensor([True]), RuntimeError, r"Negation"),
    # conversions and Python protocols
    ("item_many", lambda m: m.ones(2).item(), RuntimeError, r"2 elements"),
    ("bool_many", lambda m: bool(m.ones(2)), RuntimeError, r"ambiguous"),
    ("len_0d", lambda m: len(m.tensor(1.0)), TypeError, None),
    ("iter_0d", lambda m: iter(m.tensor(1.0)), TypeError, None),
    ("index_float", lambda m: [1, 2][m.tensor(1.0)], TypeError, None),
    ("numpy_requires_grad", lambda m: m.ones(2, requires_grad=True).numpy(), RuntimeError, r"detach"),
    ("operand_str", lambda m: m.ones(2) + "a", TypeError, None),
    ("invert_float", lambda m: ~m.ones(2), TypeError, None),
    # creation
    ("zeros_negative", lambda m: m.zeros(-1), RuntimeError, r"negative dimension"),
    ("zeros_float_size", lambda m: m.zeros(2.5), TypeError, None),
    ("arange_step0", lambda m: m.arange(0, 5, 0), RuntimeError, None),
    ("arange_sign", lambda m: m.arange(0, 5, -1), RuntimeError, None),
    ("eye_negative", lambda m: m.eye(-1), RuntimeError, None),
    ("linspace_negative", lambda m: m.linspace(0, 1, -2), RuntimeError, None),
    ("randint_range", lambda m: m.randint(5, 3, (2,)), RuntimeError, None),
    ("randperm_negative", lambda m: m.randperm(-1), RuntimeError, None),
    ("clamp_no_bounds", lambda m: m.clamp(m.ones(2)), RuntimeError, r"At least one"),
    ("div_rounding_mode", lambda m: m.div(m.ones(2), 2, rounding_mode="round"), RuntimeError, None),
    ("gelu_approximate", lambda m: m.nn.functional.gelu(m.ones(2), approximate="x") if m is torch
     else m.gelu(m.ones(2), approximate="x"), RuntimeError, None),
    # autograd
    ("backward_no_grad", lambda m: m.ones(2).sum().backward(), RuntimeError, r"does not require grad"),
    ("backward_nonscalar", lambda m: m.ones(2, requires_grad=True).mul(2).backward(), RuntimeError,
     r"only for scalar outputs"),
    ("inplace_leaf", lambda m: m.ones(2, requires_grad=True).add_(1), RuntimeError, r"leaf Variable"),
    ("grad_unused", lambda m: m.autograd.grad(m.ones(1, requires_grad=True).sum(),
                                               [m.ones(1, requires_grad=True)]), RuntimeError, r"allow_unused"),
    ("nonleaf_requires_grad_false", lambda m: setattr(m.ones(1, requires_grad=True) * 2, "requires_grad", False),
     RuntimeError, r"leaf variables"),
]


@pytest.mark.parametrize("case,torch_type,match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_error_type_matches_torch(case, torch_type, match):
    if torch is not None:
        with pytest.raises(Exception) as expected:
            case(torch)
        assert type(expected.value) is torch_type, \
            f"torch raised {type(expected.value).__name__}: the table is out of date"
    with pytest.raises(Exception, match=match) as raised:
        case(jitorch)
    assert isinstance(raised.value, torch_type), f"raised {type(raised.value).__name__}, torch {torch_type.__name__}"


def test_bitwise_operator_on_float_raises_not_implemented():
    with pytest.raises(NotImplementedError, match="'Float'"):
        jitorch.ones(2) & jitorch.ones(2)


def test_inplace_on_expanded_view_raises_runtime_error():
    with pytest.raises(RuntimeError, match="single memory location"):
        jitorch.ones(2, 1).expand(2, 3).add_(1.0)


def test_no_numba_errors_reach_the_user():
    # typing errors from a kernel would be numba.core.errors.TypingError (not a RuntimeError/TypeError)
    import numba
    for call in (lambda: jitorch.ones(2) & jitorch.ones(2), lambda: jitorch.ones(2, dtype=jitorch.bool) ** -1,
                 lambda: jitorch.tensor([1, 2]) << jitorch.ones(2)):
        try:
            call()
        except numba.core.errors.TypingError as exc:  # pragma: no cover - the failure being tested
            pytest.fail(f"a Numba typing error escaped: {str(exc)[:200]}")
        except (RuntimeError, TypeError):
            pass
