"""Elementwise ops and Tensor operators: values, dtypes, layouts, promotion, special values, grads."""
from __future__ import annotations

import math
import operator

import numpy as np
import pytest
from helpers import (
    ALL,
    FLOATS,
    INTS,
    LAYOUTS,
    arr,
    assert_close,
    check_grad,
    check_op,
    keep,
    make,
    np_of,
    requires_torch,
    tdtype,
    torch,
)

import jitorch

F16, F32, F64 = jitorch.float16, jitorch.float32, jitorch.float64
I8, I16, I32, I64, U8, B = jitorch.int8, jitorch.int16, jitorch.int32, jitorch.int64, jitorch.uint8, jitorch.bool
TF = torch.nn.functional if torch is not None else None

X = arr(2, 3, seed=1)                                   # general values in (-2, 2)
POS = arr(2, 3, lo=0.2, hi=3.0, seed=2)                 # strictly positive
UNIT = arr(2, 3, lo=-0.9, hi=0.9, seed=3)               # inside (-1, 1)
NZ = np.where(X >= 0, X + 0.4, X - 0.4)                 # away from zero (kinks, poles)
SMALL_INT = np.array([[-7, -3, 0], [2, 5, 9]], dtype=np.float64)
SPECIAL = np.array([[np.nan, np.inf, -np.inf, 0.0, -0.0], [1.0, -1.0, 0.5, 1e-30, 50.0]])  # 2-D: reuses kernels

_verf = np.vectorize(math.erf)
_verfc = np.vectorize(math.erfc)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _gelu(x):
    return 0.5 * x * (1.0 + _verf(x / math.sqrt(2.0)))


def _gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


# name, NumPy reference, input, differentiable
UNARY_FLOAT = [
    ("exp", np.exp, X, True),
    ("exp2", np.exp2, X, True),
    ("expm1", np.expm1, X, True),
    ("log", np.log, POS, True),
    ("log2", np.log2, POS, True),
    ("log10", np.log10, POS, True),
    ("log1p", np.log1p, UNIT, True),
    ("sqrt", np.sqrt, POS, True),
    ("rsqrt", lambda x: 1 / np.sqrt(x), POS, True),
    ("reciprocal", lambda x: 1 / x, NZ, True),
    ("sin", np.sin, X, True),
    ("cos", np.cos, X, True),
    ("tan", np.tan, UNIT, True),
    ("asin", np.arcsin, UNIT, True),
    ("acos", np.arccos, UNIT, True),
    ("atan", np.arctan, X, True),
    ("sinh", np.sinh, X, True),
    ("cosh", np.cosh, X, True),
    ("tanh", np.tanh, X, True),
    ("asinh", np.arcsinh, X, True),
    ("atanh", np.arctanh, UNIT, True),
    ("sigmoid", _sigmoid, X, True),
    ("erf", _verf, X, True),
    ("erfc", _verfc, X, True),
]
# ops whose result keeps the input dtype (integers included)
UNARY_SAME = [
    ("neg", np.negative, NZ, True),
    ("abs", np.abs, NZ, True),
    ("square", np.square, X, True),
    ("relu", lambda x: np.maximum(x, 0), NZ, True),
    ("sign", np.sign, NZ, True),
    ("floor", np.floor, NZ * 2.3, True),
    ("ceil", np.ceil, NZ * 2.3, True),
    ("trunc", np.trunc, NZ * 2.3, True),
    ("frac", lambda x: x - np.trunc(x), NZ * 2.3, True),
    ("round", np.round, NZ * 2.3, True),
]
ALIASES = [("negative", "neg"), ("absolute", "abs"), ("arcsin", "asin"), ("arccos", "acos"), ("arctan", "atan"),
           ("arcsinh", "asinh"), ("arctanh", "atanh"), ("sgn", "sign"), ("fix", "trunc"), ("clip", "clamp"),
           ("multiply", "mul"), ("subtract", "sub"), ("divide", "div"), ("true_divide", "div"),
           ("arctan2", "atan2"), ("greater", "gt"), ("less", "lt"), ("greater_equal", "ge"),
           ("less_equal", "le"), ("not_equal", "ne")]


def _ids(table):
    return [row[0] for row in table]


# -- unary ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,ref,x,diff", UNARY_FLOAT, ids=_ids(UNARY_FLOAT))
def test_unary_float(name, ref, x, diff):
    check_op(name, ref, x, dtypes=FLOATS, grad=diff)
    # the Tensor method is the same op
    t = make(jitorch, x, F32)
    assert jitorch.equal(getattr(t, name)(), getattr(jitorch, name)(t))


@pytest.mark.parametrize("name,ref,x,diff", UNARY_SAME, ids=_ids(UNARY_SAME))
def test_unary_same_dtype(name, ref, x, diff):
    check_op(name, ref, x, dtypes=FLOATS, grad=diff)


@pytest.mark.parametrize("name", ["neg", "abs", "square", "sign", "floor", "ceil", "trunc", "round"])
@pytest.mark.parametrize("dt", [I64, U8, pytest.param(I32, marks=pytest.mark.slow),
                                pytest.param(I8, marks=pytest.mark.slow)], ids=lambda d: d.name)
def test_unary_integer_keeps_dtype(name, dt):
    if dt is U8 and name == "neg":
        pytest.skip("negation of uint8 wraps; covered by test_uint8_wraparound")
    ref = {"neg": np.negative, "abs": np.abs, "square": np.square, "sign": np.sign}.get(name, lambda v: v)
    check_op(name, ref, SMALL_INT, dtypes=(dt,), grad=False)


def test_uint8_wraparound():
    x = jitorch.tensor([0, 1, 200, 255], dtype=U8)
    assert (-x).tolist() == [0, 255, 56, 1]
    assert (x + 100).tolist() == [100, 101, 44, 99]
    assert (x * 2).dtype is U8


@pytest.mark.parametrize("name", ["exp", "sqrt", "sin", "sigmoid", "log1p"])
@pytest.mark.parametrize("dt", [I64, B, pytest.param(I32, marks=pytest.mark.slow)], ids=lambda d: d.name)
def test_unary_float_op_on_integers_gives_default_float(name, dt):
    ref = {"exp": np.exp, "sqrt": np.sqrt, "sin": np.sin, "sigmoid": _sigmoid, "log1p": np.log1p}[name]
    x = np.abs(SMALL_INT) if dt is not B else SMALL_INT > 0
    check_op(name, lambda v: ref(v.astype(np.float64)), x if dt is not B else keep(x), dtypes=(dt,), grad=False,
             out_dtype=F32)


@pytest.mark.parametrize("layout", LAYOUTS[1:])
@pytest.mark.parametrize("name", ["exp", "log", "tanh", "neg", "abs", "sigmoid", "sqrt", "floor"])
def test_unary_non_contiguous(name, layout):
    x = POS if name in ("log", "sqrt") else X * 1.7
    check_op(name, None, x, dtypes=(F32,), layouts=(layout,), grad=False)


@pytest.mark.parametrize("name", ["relu", "silu", "gelu", "gelu_tanh", "softplus", "elu", "leaky_relu",
                                  "hardtanh"])
def test_activations(name):
    refs = {"relu": lambda x: np.maximum(x, 0), "silu": lambda x: x * _sigmoid(x), "gelu": _gelu,
            "gelu_tanh": _gelu_tanh, "softplus": lambda x: np.log1p(np.exp(x)),
            "elu": lambda x: np.where(x > 0, x, np.expm1(x)), "leaky_relu": lambda x: np.where(x > 0, x, 0.01 * x),
            "hardtanh": lambda x: np.clip(x, -1, 1)}
    if name == "gelu_tanh":
        def jfn(x):
            return jitorch.gelu(x, approximate="tanh")

        def tfn(x):
            return TF.gelu(x, approximate="tanh")
    else:
        jfn = getattr(jitorch, name)
        tfn = getattr(TF, name) if TF is not None else None
    check_op(jfn, refs[name], NZ * 1.3, dtypes=FLOATS, torch_fn=tfn)


def test_activation_parameters():
    x = NZ * 3
    check_op(lambda t: jitorch.softplus(t, beta=2.0, threshold=3.0), None, x, dtypes=(F64,),
             torch_fn=TF and (lambda t: TF.softplus(t, beta=2.0, threshold=3.0)))
    check_op(lambda t: jitorch.elu(t, alpha=0.5), None, x, dtypes=(F32,),
             torch_fn=TF and (lambda t: TF.elu(t, alpha=0.5)))
    check_op(lambda t: jitorch.leaky_relu(t, 0.2), None, x, dtypes=(F32,),
             torch_fn=TF and (lambda t: TF.leaky_relu(t, 0.2)))
    check_op(lambda t: jitorch.hardtanh(t, -0.5, 2.0), lambda v: np.clip(v, -0.5, 2.0), x, dtypes=(F32,),
             torch_fn=TF and (lambda t: TF.hardtanh(t, -0.5, 2.0)))


def test_activation_inplace_flag():
    x = jitorch.tensor([-1.0, 2.0])
    y = jitorch.leaky_relu(x, 0.5, inplace=True)
    assert y is x and x.tolist() == [-0.5, 2.0]


@pytest.mark.parametrize("decimals", [0, 1, 2, -1])
def test_round_decimals_and_half_to_even(decimals):
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 1.25, 12.345, 155.0, -0.05])
    check_op(lambda t: t.round(decimals=decimals), lambda v: np.round(v, decimals), x, dtypes=(F64,), grad=False)


# -- predicates -------------------------------------------------------------------------------------
PREDICATES = [("isnan", np.isnan), ("isinf", np.isinf), ("isfinite", np.isfinite), ("isposinf", np.isposinf),
              ("isneginf", np.isneginf), ("signbit", np.signbit)]


@pytest.mark.parametrize("name,ref", PREDICATES, ids=_ids(PREDICATES))
def test_predicates(name, ref):
    check_op(name, ref, SPECIAL, dtypes=(F32, F64, F16), grad=False, out_dtype=B)
    check_op(name, ref, SMALL_INT, dtypes=(I64, U8), grad=False, out_dtype=B)


# -- special values ------------------------------------------------------------------------------------
SPECIAL_OPS = ["exp", "log", "sqrt", "rsqrt", "reciprocal", "tanh", "sigmoid", "neg", "abs", "sign", "floor",
               "ceil", "round", "trunc", "frac", "sin", "atan", "log1p", "expm1", "relu", "square", "erf",
               "atanh", "asin", "cosh"]


@requires_torch
@pytest.mark.parametrize("name", SPECIAL_OPS)
@pytest.mark.parametrize("dt", [F32, F64], ids=lambda d: d.name)
def test_special_values_match_torch(name, dt):
    j = getattr(jitorch, name)(make(jitorch, SPECIAL, dt))
    t = getattr(torch, name)(make(torch, SPECIAL, tdtype(dt)))
    assert_close(np_of(j), np_of(t), dt.name, what=f"{name}: ")
    # signed zeros must agree too
    jz, tz = np_of(j), np_of(t)
    zero = tz == 0
    np.testing.assert_array_equal(np.signbit(jz[zero]), np.signbit(tz[zero]), err_msg=f"{name}: sign of zero")


def test_nan_propagation_in_max_min():
    a = jitorch.tensor([np.nan, 1.0, 2.0])
    b = jitorch.tensor([0.0, np.nan, 1.0])
    assert np.isnan(np_of(jitorch.maximum(a, b))[:2]).all()
    assert np.isnan(np_of(jitorch.minimum(a, b))[:2]).all()
    # fmax/fmin ignore NaN
    assert jitorch.fmax(a, b).tolist() == [0.0, 1.0, 2.0]
    assert jitorch.fmin(a, b).tolist() == [0.0, 1.0, 1.0]


@pytest.mark.parametrize("name,ref", [("fmax", np.fmax), ("fmin", np.fmin)])
def test_fmax_fmin(name, ref):
    a = np.where(X > 1.0, np.nan, X)
    b = np.where(Y < -1.0, np.nan, Y)
    check_op(name, ref, a, b, dtypes=FLOATS, grad=False)
    check_op(name, ref, X, Y, dtypes=(F64,))
    check_op(name, ref, IA, IB, dtypes=(I64,), grad=False)


def test_unary_operators():
    check_op(lambda t: -t, np.negative, X, dtypes=(F32, F64, I64, I8))
    check_op(lambda t: abs(t), np.abs, NZ, dtypes=(F32, I32))
    check_op(lambda t: +t, lambda v: v, X, dtypes=(F32,), grad=False)
    with pytest.raises(RuntimeError, match="Negation"):
        -jitorch.tensor([True])


def test_bool_arithmetic():
    a, b = X > 0, Y > 0
    for name, ref in (("add", np.logical_or), ("mul", np.logical_and), ("maximum", np.maximum),
                      ("minimum", np.minimum)):
        check_op(name, ref, keep(a), keep(b), dtypes=(B,), grad=False, out_dtype=B)
    check_op(lambda t: t + 1, lambda v: v.astype(np.int64) + 1, keep(a), dtypes=(B,), grad=False, out_dtype=I64)
    check_op(lambda t: t * 1.5, lambda v: v * 1.5, keep(a), dtypes=(B,), grad=False, out_dtype=F32)
    check_op(lambda t, u: t / u, np.divide, keep(a), keep(np.ones_like(b)), dtypes=(B,), grad=False,
             out_dtype=F32)


def test_clamp_keeps_nan():
    x = jitorch.tensor([np.nan, -5.0, 5.0])
    r = jitorch.clamp(x, -1, 1).tolist()
    assert np.isnan(r[0]) and r[1:] == [-1.0, 1.0]


# -- binary arithmetic -----------------------------------------------------------------------------
Y = arr(2, 3, seed=4)
YNZ = np.where(Y >= 0, Y + 0.5, Y - 0.5)
IA = np.array([[-7, -3, 0], [2, 5, 9]], dtype=np.float64)
IB = np.array([[2, -2, 3], [-4, 3, 2]], dtype=np.float64)

BINARY = [
    ("add", np.add, X, Y, True),
    ("sub", np.subtract, X, Y, True),
    ("mul", np.multiply, X, Y, True),
    ("div", np.divide, X, YNZ, True),
    ("pow", np.power, POS, Y, True),
    ("atan2", np.arctan2, X, YNZ, True),
    ("maximum", np.maximum, X, Y, True),
    ("minimum", np.minimum, X, Y, True),
    ("remainder", np.mod, X * 3, YNZ, True),
    ("fmod", np.fmod, X * 3, YNZ, True),
    ("floor_divide", np.floor_divide, X * 3, YNZ, False),
]


@pytest.mark.parametrize("name,ref,a,b,diff", BINARY, ids=_ids(BINARY))
def test_binary_float(name, ref, a, b, diff):
    check_op(name, ref, a, b, dtypes=FLOATS, grad=diff)


@pytest.mark.parametrize("name,ref,a,b,diff", BINARY, ids=_ids(BINARY))
def test_binary_broadcast(name, ref, a, b, diff):
    # (2, 3) with (3,) and (2, 1) operands, both orders
    check_op(name, ref, a, b[0], dtypes=(F32,), grad=diff)
    check_op(name, ref, a[:, :1], b, dtypes=(F64,), grad=diff)


@pytest.mark.parametrize("layout", LAYOUTS[1:])
@pytest.mark.parametrize("name", ["add", "mul", "div", "maximum", "pow"])
def test_binary_non_contiguous(name, layout):
    ref = {"add": np.add, "mul": np.multiply, "div": np.divide, "maximum": np.maximum, "pow": np.power}[name]
    a = POS if name == "pow" else X
    check_op(name, ref, a, YNZ, dtypes=(F32,), layouts=(layout,), grad=False)


def test_kernel_reuse_respects_memory_layout():
    # one op/dtype/rank called with operands in different layouts (C, F-ordered, strided, broadcast):
    # a compiled entry point must never be reused for another layout
    base = np.arange(24.0).reshape(2, 3, 4)
    views = [jitorch.from_numpy(base.copy()),
             jitorch.from_numpy(np.ascontiguousarray(base.transpose(2, 1, 0))).permute(2, 1, 0),
             jitorch.from_numpy(np.repeat(base, 2, axis=-1)[..., ::2]),
             jitorch.from_numpy(base[:, :1, :].copy()).expand(2, 3, 4)]
    for a in views:
        for b in views:
            assert_close(np_of(jitorch.atan2(a, b)), np.arctan2(np_of(a), np_of(b)), "float64")


def test_mixed_layouts():
    a = make(jitorch, X, F32, "transposed")
    b = make(jitorch, Y, F32, "sliced")
    assert_close(np_of(a + b), (X + Y).astype(np.float32), "float32")
    assert_close(np_of(a * b.select(0, 0)), (X * Y[0]).astype(np.float32), "float32")


INT_BINARY = [
    ("add", np.add), ("sub", np.subtract), ("mul", np.multiply), ("floor_divide", np.floor_divide),
    ("remainder", np.mod), ("fmod", np.fmod), ("maximum", np.maximum), ("minimum", np.minimum),
]


@pytest.mark.parametrize("name,ref", INT_BINARY, ids=_ids(INT_BINARY))
def test_binary_integer(name, ref):
    for dt in (I64, I8, U8) if name in ("add", "mul", "sub") else (I64, I32):
        a, b = (np.abs(IA), np.abs(IB)) if dt is U8 else (IA, IB)
        check_op(name, ref, a, b, dtypes=(dt,), grad=False)


def test_integer_pow_and_true_division():
    check_op("pow", np.power, np.abs(IA), np.abs(IB), dtypes=(I64, I32), grad=False)
    # int / int is true division into the default float dtype
    check_op("div", np.divide, IA, IB, dtypes=(I64, I16), grad=False, out_dtype=F32)


@pytest.mark.parametrize("mode", ["trunc", "floor"])
@pytest.mark.parametrize("dt", [F32, F64, I64, I32], ids=lambda d: d.name)
def test_div_rounding_mode(mode, dt):
    ref = (lambda a, b: np.trunc(a / b)) if mode == "trunc" else (lambda a, b: np.floor(a / b))
    if not dt.is_floating_point:
        ref = (lambda a, b: np.trunc(a / b).astype(a.dtype)) if mode == "trunc" else np.floor_divide
    check_op(lambda a, b: a.div(b, rounding_mode=mode), ref, IA * 1.5 if dt.is_floating_point else IA, IB,
             dtypes=(dt,), grad=False)


def test_add_sub_alpha():
    check_op(lambda a, b: jitorch.add(a, b, alpha=2), lambda a, b: a + 2 * b, X, Y, dtypes=(F32, F64),
             torch_fn=torch and (lambda a, b: torch.add(a, b, alpha=2)))
    check_op(lambda a, b: jitorch.sub(a, b, alpha=0.5), lambda a, b: a - 0.5 * b, X, Y, dtypes=(F64,),
             torch_fn=torch and (lambda a, b: torch.sub(a, b, alpha=0.5)))
    check_op(lambda a, b: a.add(b, alpha=3), lambda a, b: a + 3 * b, IA, IB, dtypes=(I64,), grad=False)


def test_float_power_is_double():
    check_op("float_power", np.power, POS, Y, dtypes=(F32,), out_dtype=F64)
    check_op(lambda a: jitorch.float_power(a, 2) if isinstance(a, jitorch.Tensor) else torch.float_power(a, 2),
             np.square, IA, dtypes=(I64,), grad=False, out_dtype=F64)


def test_integer_division_by_zero_raises():
    a = jitorch.tensor([5, 3])
    for fn in (lambda: a // 0, lambda: a // jitorch.tensor([1, 0]), lambda: jitorch.floor_divide(a, 0),
               lambda: jitorch.remainder(a, 0), lambda: jitorch.remainder(a, jitorch.tensor([0, 1])),
               lambda: jitorch.fmod(a, 0), lambda: a.fmod(jitorch.tensor([1, 0]))):
        with pytest.raises(RuntimeError, match="ZeroDivisionError"):
            fn()


def test_integer_modulo_operator_by_zero_raises():
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        jitorch.tensor([5, 3]) % 0


def test_float_division_by_zero():
    a = jitorch.tensor([1.0, -1.0, 0.0])
    r = np_of(a / 0.0)
    assert r[0] == np.inf and r[1] == -np.inf and np.isnan(r[2])
    assert np.isnan(np_of(jitorch.remainder(a, 0.0))).all()


# -- Python scalars on both sides -----------------------------------------------------------------
SCALAR_OPS = [("+", operator.add), ("-", operator.sub), ("*", operator.mul), ("/", operator.truediv),
              ("//", operator.floordiv), ("%", operator.mod), ("**", operator.pow), ("<", operator.lt),
              ("<=", operator.le), (">", operator.gt), (">=", operator.ge), ("==", operator.eq), ("!=", operator.ne)]


@requires_torch
@pytest.mark.parametrize("sym,op", SCALAR_OPS, ids=[s for s, _ in SCALAR_OPS])
@pytest.mark.parametrize("scalar", [2, 2.5, True], ids=["int", "float", "bool"])
@pytest.mark.parametrize("dt", [F32, I64], ids=lambda d: d.name)
def test_scalar_operands_both_sides(sym, op, scalar, dt):
    base = POS * 2 + 0.5 if dt.is_floating_point else np.abs(IA) + 1
    jt, tt = make(jitorch, base, dt), make(torch, base, dt)
    for left in (False, True):
        if sym == "-" and scalar is True:
            continue  # bool subtraction raises: test_bool_subtraction_raises
        jr = op(scalar, jt) if left else op(jt, scalar)
        tr = op(scalar, tt) if left else op(tt, scalar)
        assert jr.dtype.name == str(tr.dtype)[6:], f"{scalar!r} {sym} (left={left})"
        assert_close(np_of(jr), np_of(tr), jr.dtype.name, what=f"{scalar!r} {sym} (left={left})")


@requires_torch
def test_scalar_operands_0d_and_float16():
    for dt in (F16, F64, I8, U8):
        base = np.array(3.0)
        jt, tt = make(jitorch, base, dt), make(torch, base, tdtype(dt))
        for s in (2, 1.5, True):
            for op in (operator.add, operator.mul, operator.truediv):
                jr, tr = op(jt, s), op(tt, s)
                assert jr.dtype.name == str(tr.dtype)[6:] and jr.shape == () and tr.shape == ()
                assert_close(np_of(jr), np_of(tr), jr.dtype.name)


def test_scalar_grads():
    check_op(lambda a: 2.5 - a, lambda a: 2.5 - a, X, dtypes=(F32,))
    check_op(lambda a: 3.0 / a, lambda a: 3.0 / a, NZ, dtypes=(F64,))
    check_op(lambda a: 2 ** a, lambda a: 2.0 ** a, X, dtypes=(F64,))
    check_op(lambda a: a ** 3, lambda a: a ** 3, X, dtypes=(F64,))
    check_op(lambda a: a ** 2.5, lambda a: a ** 2.5, POS, dtypes=(F64,))
    check_op(lambda a: a ** -1, lambda a: a ** -1.0, NZ, dtypes=(F64,))
    check_op(lambda a: a ** 0.5, np.sqrt, POS, dtypes=(F64,))
    check_op(lambda a: a ** 0, lambda a: a ** 0, X, dtypes=(F64,))
    check_op(lambda a: 5 % a, lambda a: np.mod(5, a), NZ, dtypes=(F64,), torch_fn=False)  # torch: no derivative
    check_op(lambda a: a * True, lambda a: a, X, dtypes=(F64,))


def test_bool_subtraction_raises():
    b, f = jitorch.tensor([True]), jitorch.tensor([1.0])
    for fn in (lambda: b - b, lambda: b - 1, lambda: 1 - b, lambda: True - f, lambda: jitorch.sub(f, True),
               lambda: jitorch.sub(b, f), lambda: b.sub(b)):
        with pytest.raises(RuntimeError, match="Subtraction, the `-` operator, with"):
            fn()


def test_bool_scalar_subtracted_from_tensor_raises():
    with pytest.raises(RuntimeError, match="with a bool tensor"):
        jitorch.tensor([1.0]) - True


def test_maximum_minimum_inplace():
    a, b = jitorch.tensor([1.0, 5.0]), jitorch.tensor([3.0, 2.0])
    assert a.clone().maximum_(b).tolist() == [3.0, 5.0] and a.clone().minimum_(b).tolist() == [1.0, 2.0]


def test_comparison_with_float_scalar_after_int_scalar():
    x = jitorch.tensor([[[1, 2, 3]]], dtype=I16)     # a dtype/rank no other test compares with scalars
    assert (x < 2).tolist() == [[[True, False, False]]]
    assert (x < 2.5).tolist() == [[[True, True, False]]]
    assert (x == 2.0).tolist() == [[[False, True, False]]]
    assert (x == 2.5).tolist() == [[[False, False, False]]]


def test_uint8_with_negative_scalar_wraps():
    x = jitorch.tensor([0, 5], dtype=U8)
    assert (x + -1).tolist() == [255, 4]
    assert (x < -1).tolist() == [True, True]          # torch compares with -1 wrapped to 255


def test_integer_negative_scalar_power_raises():
    with pytest.raises(RuntimeError, match="negative integer powers"):
        jitorch.tensor([2, 3]) ** -1


# -- type promotion --------------------------------------------------------------------------------
def _operand(lib, kind, dt):
    if kind == "dim":
        return lib.ones(2, dtype=getattr(lib, dt.name))
    return lib.ones((), dtype=getattr(lib, dt.name))


SCALARS = [True, 3, 2.5]


@requires_torch
@pytest.mark.parametrize("kind_b", ["dim", "zero", "scalar"])
@pytest.mark.parametrize("kind_a", ["dim", "zero"])
def test_result_type_grid(kind_a, kind_b):
    for da in ALL:
        a_j, a_t = _operand(jitorch, kind_a, da), _operand(torch, kind_a, da)
        others = [(s, s) for s in SCALARS] if kind_b == "scalar" else \
            [(_operand(jitorch, kind_b, db), _operand(torch, kind_b, db)) for db in ALL]
        for b_j, b_t in others:
            want = str(torch.result_type(a_t, b_t))[6:]
            assert jitorch.result_type(a_j, b_j).name == want, (kind_a, da, kind_b, b_j)
            if kind_b != "scalar":
                assert jitorch.result_type(b_j, a_j).name == want
                assert jitorch.promote_types(da, b_j.dtype).name == str(torch.promote_types(a_t.dtype, b_t.dtype))[6:]


PAIRS = [(I8, U8), (I32, F16), (B, F64), (I64, F32)]
MORE_PAIRS = [(U8, I16), (F16, F32), (B, I8), (I16, F64), (U8, B)]


@requires_torch
@pytest.mark.parametrize("pair", PAIRS + [pytest.param(p, marks=pytest.mark.slow) for p in MORE_PAIRS],
                         ids=lambda p: f"{p[0].name}-{p[1].name}")
def test_promotion_in_ops(pair):
    a, b = pair
    ja, jb = make(jitorch, IB, a) if a is not B else make(jitorch, IB > 0), make(jitorch, IA[:, :1], b) \
        if b is not B else make(jitorch, IA[:, :1] > 0)
    ta, tb = torch.from_numpy(np_of(ja)), torch.from_numpy(np_of(jb))
    for op in (operator.add, operator.mul, operator.truediv, operator.lt, jitorch.maximum):
        top = torch.maximum if op is jitorch.maximum else op
        jr, tr = op(ja, jb), top(ta, tb)
        assert jr.dtype.name == str(tr.dtype)[6:], (op, a, b)
        assert_close(np_of(jr), np_of(tr), jr.dtype.name)


@requires_torch
def test_zero_dim_tensor_promotion_in_ops():
    i8 = jitorch.tensor([1, 2], dtype=I8)
    assert (i8 + jitorch.tensor(1000)).dtype is I8               # 0-d int does not widen an int tensor
    assert (i8 + jitorch.tensor(1.5)).dtype is F32               # 0-d float brings the float category
    assert (jitorch.tensor([1.0], dtype=F16) + jitorch.tensor(1.0, dtype=F64)).dtype is F16
    assert (jitorch.tensor(1, dtype=I8) + jitorch.tensor(1, dtype=I32)).dtype is I32
    assert (jitorch.tensor(True) + 1).dtype is I64
    assert (jitorch.tensor([True]) * 2.5).dtype is F32


# -- comparisons, logic, bits -------------------------------------------------------------------------
CMP = [("eq", np.equal), ("ne", np.not_equal), ("lt", np.less), ("le", np.less_equal), ("gt", np.greater),
       ("ge", np.greater_equal)]


@pytest.mark.parametrize("name,ref", CMP, ids=_ids(CMP))
def test_comparisons(name, ref):
    a, b = np.round(X), np.round(Y)  # ties included
    check_op(name, ref, a, b, dtypes=(F32, F64, I64, U8), grad=False, out_dtype=B)
    check_op(name, ref, keep(a > 0), keep(b > 0), dtypes=(B,), grad=False, out_dtype=B)
    check_op(name, ref, a, b[0], dtypes=(F32,), grad=False, layouts=LAYOUTS)


@pytest.mark.parametrize("sym,op", [("<", operator.lt), ("<=", operator.le), (">", operator.gt),
                                    (">=", operator.ge), ("==", operator.eq), ("!=", operator.ne)])
def test_comparison_operators_with_nan(sym, op):
    a = jitorch.tensor([np.nan, 1.0, 2.0])
    b = jitorch.tensor([np.nan, np.nan, 2.0])
    assert op(a, b).tolist() == [op(x, y) for x, y in zip([np.nan, 1.0, 2.0], [np.nan, np.nan, 2.0])]


LOGIC = [("logical_and", np.logical_and), ("logical_or", np.logical_or), ("logical_xor", np.logical_xor)]


@pytest.mark.slow
@pytest.mark.parametrize("name,ref", INT_BINARY, ids=_ids(INT_BINARY))
def test_binary_integer_all_dtypes(name, ref):
    check_op(name, ref, IA, IB, dtypes=(I16, I32) if name in ("add", "sub", "mul") else (I16, I8), grad=False)


@pytest.mark.slow
@pytest.mark.parametrize("name,ref", CMP, ids=_ids(CMP))
def test_comparisons_all_dtypes(name, ref):
    check_op(name, ref, np.round(X), np.round(Y), dtypes=(F16, I32, I16, I8), grad=False, out_dtype=B)


@pytest.mark.parametrize("name,ref", LOGIC, ids=_ids(LOGIC))
def test_logical(name, ref):
    a, b = np.round(X), np.round(Y)
    check_op(name, ref, a, b, dtypes=(F32, I64), grad=False, out_dtype=B)
    check_op(name, ref, keep(a > 0), keep(b > 0), dtypes=(B,), grad=False, out_dtype=B)


def test_logical_not():
    check_op("logical_not", np.logical_not, np.round(X), dtypes=(F32, I64, U8), grad=False, out_dtype=B)
    check_op("logical_not", np.logical_not, keep(X > 0), dtypes=(B,), grad=False, out_dtype=B)


BITS = [("bitwise_and", np.bitwise_and), ("bitwise_or", np.bitwise_or), ("bitwise_xor", np.bitwise_xor)]


@pytest.mark.parametrize("name,ref", BITS, ids=_ids(BITS))
def test_bitwise(name, ref):
    check_op(name, ref, IA, IB, dtypes=(I64, I32, I8), grad=False)
    check_op(name, ref, np.abs(IA), np.abs(IB), dtypes=(U8,), grad=False)
    check_op(name, ref, keep(IA > 0), keep(IB > 0), dtypes=(B,), grad=False, out_dtype=B)


def test_bitwise_not_and_shifts():
    check_op("bitwise_not", np.invert, IA, dtypes=(I64, I8), grad=False)
    check_op("bitwise_not", np.invert, keep(IA > 0), dtypes=(B,), grad=False, out_dtype=B)
    sh = np.array([[1, 2, 3], [0, 4, 1]], dtype=np.float64)
    check_op("bitwise_left_shift", np.left_shift, IA, sh, dtypes=(I64, I32), grad=False)
    check_op("bitwise_right_shift", np.right_shift, IA, sh, dtypes=(I64, I32), grad=False)


@requires_torch
def test_bitwise_operators():
    a, b = jitorch.tensor([12, 10, -3]), jitorch.tensor([10, 3, 5])
    ta, tb = torch.tensor([12, 10, -3]), torch.tensor([10, 3, 5])
    for op in (operator.and_, operator.or_, operator.xor, operator.lshift, operator.rshift):
        assert op(a, b).tolist() == op(ta, tb).tolist()
        assert op(a, 3).tolist() == op(ta, 3).tolist()
    for op in (operator.and_, operator.or_, operator.xor):
        assert op(6, a).tolist() == op(6, ta).tolist()
    assert (~a).tolist() == (~ta).tolist()
    m = jitorch.tensor([True, False])
    assert (~m).tolist() == [False, True] and (m & True).tolist() == [True, False]
    assert (m | jitorch.tensor([False, False])).dtype is B


def test_bitwise_on_float_raises():
    x = jitorch.tensor([1.0])
    with pytest.raises(NotImplementedError):
        jitorch.bitwise_and(x, x)
    with pytest.raises(TypeError):
        _ = ~x


def test_equal_allclose_isclose():
    a = jitorch.tensor([1.0, 2.0, np.nan])
    a2 = a.narrow(0, 0, 2)
    assert jitorch.equal(a2, jitorch.tensor([1.0, 2.0]))
    assert not jitorch.equal(a2, jitorch.tensor([1.0, 2.0, 3.0]))
    assert jitorch.allclose(a2, a2 + 1e-9) and not jitorch.allclose(a, a)
    assert jitorch.allclose(a, a, equal_nan=True)
    assert jitorch.isclose(a, a).tolist() == [True, True, False]
    assert a2.allclose(a2) and a2.equal(a2)


# -- selection ops -----------------------------------------------------------------------------------------
def test_clamp():
    check_op(lambda t: t.clamp(-0.5, 0.7), lambda v: np.clip(v, -0.5, 0.7), X, dtypes=FLOATS)
    check_op(lambda t: t.clamp(min=0.1), lambda v: np.maximum(v, 0.1), X, dtypes=(F32,))
    check_op(lambda t: t.clamp(max=0.1), lambda v: np.minimum(v, 0.1), X, dtypes=(F32,))
    check_op(lambda t: t.clamp(-2, 4), lambda v: np.clip(v, -2, 4), IA, dtypes=(I64, I8), grad=False)
    check_op(lambda t: t.clamp(1, 4), lambda v: np.clip(v, 1, 4), np.abs(IA), dtypes=(U8,), grad=False)
    check_op(lambda t, lo, hi: t.clamp(lo, hi), lambda v, lo, hi: np.minimum(np.maximum(v, lo), hi),
             X, Y[0] - 0.5, Y[0] + 0.5, dtypes=(F64,))
    check_op(lambda t: jitorch.clip(t, -1, 1) if isinstance(t, jitorch.Tensor) else torch.clip(t, -1, 1),
             lambda v: np.clip(v, -1, 1), X, dtypes=(F32,), grad=False)
    check_op(lambda t: t.clamp_min(0.2), lambda v: np.maximum(v, 0.2), X, dtypes=(F32,), grad=False)
    check_op(lambda t: t.clamp_max(0.2), lambda v: np.minimum(v, 0.2), X, dtypes=(F32,), grad=False)


@requires_torch
def test_clamp_promotion():
    for dt in (I64, U8):
        jr = jitorch.tensor([1, 5], dtype=dt).clamp(min=2.5)
        tr = torch.tensor([1, 5], dtype=tdtype(dt)).clamp(min=2.5)
        assert jr.dtype.name == str(tr.dtype)[6:] and jr.tolist() == tr.tolist()


def test_clamp_needs_a_bound():
    with pytest.raises(RuntimeError, match="At least one"):
        jitorch.tensor([1.0]).clamp()


def test_where():
    m = X > 0
    check_op(lambda c, a, b: jitorch.where(c, a, b) if isinstance(a, jitorch.Tensor) else torch.where(c, a, b),
             np.where, m, X, Y, dtypes=(F32, F64, I64, F16), grad=(1, 2))
    check_op(lambda c, a: jitorch.where(c, a, 0.0) if isinstance(a, jitorch.Tensor) else torch.where(c, a, 0.0),
             lambda c, a: np.where(c, a, 0.0), m, X, dtypes=(F32, F64), grad=(1,))
    check_op(lambda c, a, b: jitorch.where(c, a, b) if isinstance(a, jitorch.Tensor) else torch.where(c, a, b),
             np.where, m[0], X, Y[:, :1], dtypes=(F32,), grad=(1, 2))


def test_where_method_takes_self_as_input():
    t = jitorch.tensor([1.0, -1.0])
    assert t.where(t > 0, jitorch.tensor(0.0)).tolist() == [1.0, 0.0]


@requires_torch
def test_where_promotes_values():
    c = jitorch.tensor([True, False])
    r = jitorch.where(c, jitorch.tensor([1, 2]), jitorch.tensor([0.5, 1.5], dtype=F64))
    assert r.dtype is F64 and r.tolist() == [1.0, 1.5]
    assert jitorch.where(c, jitorch.tensor([1, 2], dtype=I32), 7).dtype is I32
    assert jitorch.where(c, 1.0, 0.0).dtype is F32


def test_lerp_addcmul_addcdiv():
    w = arr(2, 3, lo=0, hi=1, seed=7)
    check_op("lerp", lambda a, b, t: a + t * (b - a), X, Y, w, dtypes=(F32, F64))
    check_op(lambda a, b: a.lerp(b, 0.3), lambda a, b: a + 0.3 * (b - a), X, Y, dtypes=(F32,))
    check_op(lambda a, b, c: jitorch.addcmul(a, b, c, value=0.5) if isinstance(a, jitorch.Tensor)
             else torch.addcmul(a, b, c, value=0.5), lambda a, b, c: a + 0.5 * b * c, X, Y, w, dtypes=(F32, F64))
    check_op(lambda a, b, c: jitorch.addcdiv(a, b, c, value=2) if isinstance(a, jitorch.Tensor)
             else torch.addcdiv(a, b, c, value=2), lambda a, b, c: a + 2 * b / c, X, Y, POS, dtypes=(F32, F64))


def test_nan_to_num():
    x = np.array([np.nan, np.inf, -np.inf, 1.5])
    check_op("nan_to_num", None, x, dtypes=(F32, F64, F16), grad=False)
    check_op(lambda t: t.nan_to_num(nan=1.0, posinf=2.0, neginf=-2.0), lambda v: np.nan_to_num(v, nan=1.0,
             posinf=2.0, neginf=-2.0), x, dtypes=(F64,), grad=False)
    check_op("nan_to_num", lambda v: v, IA, dtypes=(I64,), grad=False)
    check_op("nan_to_num", np.nan_to_num, X, dtypes=(F64,))


# -- 0-d, empty ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name,ref", [("exp", np.exp), ("neg", np.negative), ("abs", np.abs)])
def test_unary_0d(name, ref):
    check_op(name, ref, np.array(0.7), dtypes=(F32, F64))


def test_binary_0d():
    a, b = np.array(1.5), np.array(-0.5)
    for name, ref in (("add", np.add), ("mul", np.multiply), ("div", np.divide)):
        check_op(name, ref, a, b, dtypes=(F32, F64))
        check_op(name, ref, X, b, dtypes=(F32,))        # 0-d broadcasts against 2-d
        check_op(name, ref, a, X, dtypes=(F32,))
    r = jitorch.tensor(2.0) + jitorch.tensor(3.0)
    assert r.shape == () and r.item() == 5.0


@pytest.mark.parametrize("shape", [(0,), (2, 0), (0, 3)])
def test_empty_inputs(shape):
    e = np.zeros(shape)
    check_op("exp", np.exp, e, dtypes=(F32,), grad=False)
    check_op("add", np.add, e, e, dtypes=(F32, I64), grad=False)
    check_op("lt", np.less, e, e, dtypes=(F32,), grad=False)
    r = jitorch.zeros(shape) + jitorch.zeros(shape[-1:])   # broadcasting with an empty dim
    assert r.shape == shape


def test_empty_broadcast_with_one():
    r = jitorch.zeros(0, 3) * jitorch.ones(1, 3)
    assert tuple(r.shape) == (0, 3)
    x = jitorch.zeros(0, requires_grad=True)
    (x * 2).sum().backward()
    assert x.grad.shape == (0,)


def test_broadcast_shapes_3d():
    a, b = arr(2, 1, 4, seed=8), arr(3, 1, seed=9)
    check_op("add", np.add, a, b, dtypes=(F32,))
    check_op("mul", np.multiply, a, b, dtypes=(F64,))


def test_broadcast_mismatch_message():
    with pytest.raises(RuntimeError, match=r"size of tensor a \(3\) must match the size of tensor b \(4\)"):
        jitorch.ones(2, 3) + jitorch.ones(4)


# -- in-place forms --------------------------------------------------------------------------------
INPLACE_BINARY = ["add_", "sub_", "mul_", "div_", "pow_", "remainder_", "fmod_", "atan2_", "floor_divide_"]


@requires_torch
@pytest.mark.parametrize("name", INPLACE_BINARY)
def test_inplace_binary_methods(name):
    a = POS + 0.5 if name == "pow_" else X * 2
    for other in (make(jitorch, YNZ, F32), 1.5, make(jitorch, YNZ[0], F32)):
        if name == "atan2_" and not isinstance(other, jitorch.Tensor):
            continue  # torch's atan2_ takes tensors only
        tother = torch.from_numpy(np_of(other)) if isinstance(other, jitorch.Tensor) else other
        j, t = make(jitorch, a, F32), make(torch, a, F32)
        ver = j._version_counter
        r = getattr(j, name)(other)
        getattr(t, name)(tother)
        assert r is j and j._version_counter > ver
        assert_close(np_of(j), np_of(t), "float32", what=name)


@requires_torch
@pytest.mark.parametrize("name", ["exp_", "log_", "sqrt_", "sin_", "tanh_", "sigmoid_", "abs_", "neg_",
                                  "floor_", "ceil_", "round_", "trunc_", "frac_", "reciprocal_", "square_",
                                  "relu_", "sign_", "clamp_", "nan_to_num_", "rsqrt_", "erf_", "expm1_"])
def test_inplace_unary_methods(name):
    x = POS * 1.7
    j, t = make(jitorch, x, F32), make(torch, x, torch.float32)
    args = (0.5, 2.0) if name == "clamp_" else ()
    r = getattr(j, name)(*args)
    getattr(t, name)(*args)
    assert r is j
    assert_close(np_of(j), np_of(t), "float32", what=name)


AUGMENTED = [("+=", operator.iadd), ("-=", operator.isub), ("*=", operator.imul), ("/=", operator.itruediv),
             ("//=", operator.ifloordiv), ("%=", operator.imod), ("**=", operator.ipow), ("&=", operator.iand),
             ("|=", operator.ior), ("^=", operator.ixor)]


@requires_torch
@pytest.mark.parametrize("sym,op", AUGMENTED, ids=[s for s, _ in AUGMENTED])
def test_augmented_assignment(sym, op):
    dt = I64 if sym in ("&=", "|=", "^=", "//=", "%=") else F32
    base = np.abs(IA) + 1 if dt is I64 else POS
    j, t = make(jitorch, base, dt), make(torch, base, tdtype(dt))
    r = op(j, 2)                      # what `j op= 2` does
    op(t, 2)
    assert r is j, "augmented assignment must update in place"
    assert_close(np_of(j), np_of(t), dt.name, what=sym)


def test_inplace_through_views_and_broadcast():
    buf = np.zeros((2, 3), dtype=np.float32)
    x = jitorch.from_numpy(buf)
    x.select(0, 0).add_(1.0)
    x.t().select(0, 1).mul_(5.0)                 # a non-contiguous view, written through
    jitorch.from_numpy(buf[:, ::2]).add_(jitorch.tensor([10.0, 20.0]).unsqueeze(1))  # strided, broadcast
    assert x.tolist() == [[11.0, 5.0, 11.0], [20.0, 0.0, 20.0]]


def test_inplace_dtype_rules():
    i = jitorch.tensor([1, 2, 3])
    i.add_(2)
    i.mul_(jitorch.tensor([1, 2, 3], dtype=I8))
    assert i.dtype is I64 and i.tolist() == [3, 8, 15]
    with pytest.raises(RuntimeError, match="can't be cast to the desired output type Long"):
        i.add_(1.5)
    with pytest.raises(RuntimeError, match="can't be cast"):
        i.div_(2)
    f = jitorch.tensor([1.0, 2.0], dtype=F16)
    f.add_(jitorch.tensor([1.0, 1.0], dtype=F64))      # the higher type is cast down into self
    assert f.dtype is F16 and f.tolist() == [2.0, 3.0]
    with pytest.raises(RuntimeError, match=r"output with shape \[3\] doesn't match the broadcast shape \[2, 3\]"):
        jitorch.zeros(3).add_(jitorch.zeros(2, 3))


def test_inplace_comparison_methods_keep_dtype():
    x = jitorch.tensor([1.0, 5.0])
    x.lt_(3.0)
    assert x.dtype is F32 and x.tolist() == [1.0, 0.0]


# -- out= ------------------------------------------------------------------------------------------------
def test_out_argument():
    a, b = jitorch.tensor([1.0, 2.0]), jitorch.tensor([3.0, 4.0])
    out = jitorch.empty(2)
    r = jitorch.add(a, b, out=out)
    assert r is out and out.tolist() == [4.0, 6.0]
    o64 = jitorch.empty(2, dtype=F64)
    jitorch.mul(a, b, out=o64)
    assert o64.dtype is F64 and o64.tolist() == [3.0, 8.0]
    ob = jitorch.empty(2, dtype=B)
    jitorch.lt(a, b, out=ob)
    assert ob.tolist() == [True, True]
    oe = jitorch.empty(2)
    jitorch.exp(a, out=oe)
    assert_close(np_of(oe), np.exp([1.0, 2.0]).astype(np.float32), "float32")
    ov = jitorch.zeros(2, 2)
    jitorch.sub(a, b, out=ov.t().select(0, 0))           # a strided out view
    assert ov.tolist() == [[-2.0, 0.0], [-2.0, 0.0]]


def test_out_resized_and_cast_errors():
    a = jitorch.tensor([1.0, 2.0])
    out = jitorch.empty(0)
    jitorch.add(a, a, out=out)
    assert out.tolist() == [2.0, 4.0]
    with pytest.raises(RuntimeError, match="can't be cast to the desired output type Long"):
        jitorch.add(a, a, out=jitorch.empty(2, dtype=I64))
    with pytest.raises(RuntimeError, match="can't be cast"):
        jitorch.div(jitorch.tensor([1, 2]), 2, out=jitorch.empty(2, dtype=I64))


# -- aliases and method/function agreement ---------------------------------------------------------
@pytest.mark.parametrize("alias,name", ALIASES, ids=[a for a, _ in ALIASES])
def test_aliases(alias, name):
    x, y = make(jitorch, POS * 0.3, F32), make(jitorch, YNZ, F32)
    fa, fn = getattr(jitorch, alias), getattr(jitorch, name)
    nargs = 1 if name in ("neg", "abs", "asin", "acos", "atan", "asinh", "atanh", "sign", "trunc") else 2
    args = (x,) if nargs == 1 else (x, y)
    if name == "clamp":
        args = (x, 0.1, 0.5)
    assert jitorch.equal(fa(*args), fn(*args))
    if hasattr(jitorch.Tensor, alias):
        assert jitorch.equal(getattr(args[0], alias)(*args[1:]), fn(*args))


def test_unary_functions_reject_non_tensors():
    with pytest.raises(TypeError):
        jitorch.exp([1.0, 2.0])
    with pytest.raises(TypeError):
        jitorch.exp(1.0)


# -- gradients: broadcasting, dtype handling, second order ------------------------------------------
def test_broadcast_gradient_reduction():
    check_grad(lambda a, b: a * b + a, (X, Y[:, :1]), torch and (lambda a, b: a * b + a))
    check_grad(lambda a, b: a / b, (X[0], YNZ), torch and (lambda a, b: a / b))
    check_grad(lambda a, b: a - b, (np.array(0.3), X), torch and (lambda a, b: a - b))


def test_grad_of_mixed_dtype_binary():
    a = jitorch.tensor([1.0, 2.0], requires_grad=True)
    b = jitorch.tensor([3.0, 4.0], dtype=F64, requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.dtype is F32 and b.grad.dtype is F64
    assert a.grad.tolist() == [3.0, 4.0] and b.grad.tolist() == [1.0, 2.0]


def test_grad_through_integer_operand():
    a = jitorch.tensor([1.0, 2.0], requires_grad=True)
    (a * jitorch.tensor([2, 3])).sum().backward()
    assert a.grad.tolist() == [2.0, 3.0]


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_max_min_tie_gradient_splits(name):
    a = jitorch.tensor([1.0, 2.0], requires_grad=True)
    b = jitorch.tensor([1.0, 0.0], requires_grad=True)
    getattr(jitorch, name)(a, b).sum().backward()
    if torch is not None:
        ta = torch.tensor([1.0, 2.0], requires_grad=True)
        tb = torch.tensor([1.0, 0.0], requires_grad=True)
        getattr(torch, name)(ta, tb).sum().backward()
        assert a.grad.tolist() == ta.grad.tolist() and b.grad.tolist() == tb.grad.tolist()


def test_second_order_elementwise():
    for fn in (lambda t: t.sin() * t.exp(), lambda t: t.tanh() ** 2, lambda t: t.sigmoid() / (1 + t * t)):
        x = make(jitorch, X[0], F64, requires_grad=True)
        assert jitorch.autograd.gradgradcheck(fn, (x,))


def test_pow_grad_at_zero_base():
    x = jitorch.tensor([0.0, 2.0], dtype=F64, requires_grad=True)
    e = jitorch.tensor([2.0, 2.0], dtype=F64, requires_grad=True)
    (x ** e).sum().backward()
    assert x.grad.tolist() == [0.0, 4.0]
    ge = e.grad.tolist()
    assert ge[0] == 0.0 and abs(ge[1] - 4 * math.log(2)) < 1e-12


# -- larger inputs (parallel kernels) -------------------------------------------------------------------
@pytest.mark.slow
def test_large_parallel_kernels():
    n = (1 << 17) + 3
    x = np.random.default_rng(0).standard_normal(n)
    check_op("exp", np.exp, x, dtypes=(F32, F64), grad=False)
    check_op("add", np.add, x, x[::-1].copy(), dtypes=(F32,), grad=False)
