"""Elementwise primitives -> ONNX.

Every operand is brought to the node's compute dtype (the registry's dtype
rule, recorded by the tracer), Python scalars become 0-d constants, the
formula runs, and the result is cast to the output dtype when it differs.
Each formula follows the scalar template in ``jitorch/ops/elementwise.py``
(NaN and infinity cases included), using ONNX's own op where it has one.
"""
from __future__ import annotations

import math

import numpy as np

from ...compiler.ir import Value
from ..builder import np_dtype
from . import lowers


class Operands:
    """The operands of one elementwise node, as ONNX names in the compute dtype."""

    def __init__(self, ctx, node, compute):
        self.ctx, self.node, self.b = ctx, node, ctx.b
        self.dtype = compute
        self.is_float = np_dtype(compute).kind == "f"
        self.is_bool = np_dtype(compute) == np.bool_

    def t(self, i: int) -> str:
        return self.ctx.scalar(self.node, i, self.dtype)

    def raw(self, i: int):
        """A Python scalar operand's value (None when the operand is a tensor)."""
        x = self.node.inputs[i]
        return None if isinstance(x, Value) else self.ctx.static_scalar(self.node, i)

    def c(self, value) -> str:
        return self.b.const(np.asarray(value).astype(np_dtype(self.dtype)))

    def op(self, op_type: str, *ins, **attrs) -> str:
        return self.b.op(op_type, list(ins), **attrs)


# -- formulas ------------------------------------------------------------------------------------------
def _unary(op_type):
    return lambda e: e.op(op_type, e.t(0))


def _binary(op_type):
    return lambda e: e.op(op_type, e.t(0), e.t(1))


def _add(e):
    return e.op("Or" if e.is_bool else "Add", e.t(0), e.t(1))


def _mul(e):
    return e.op("And" if e.is_bool else "Mul", e.t(0), e.t(1))


def _same(e):
    # copies and contiguous() have no ONNX meaning: the value itself (cast by the caller if needed)
    return e.t(0)


def _int_identity_else(op_type):
    return lambda e: e.op(op_type, e.t(0)) if e.is_float else e.t(0)


def _relu(e):
    return e.op("Relu", e.t(0)) if e.is_float else e.op("Max", e.t(0), e.c(0))


def _nan_first(e, op_type):
    """maximum/minimum: NaN in either operand gives NaN (ONNX Max/Min leave that unspecified)."""
    a, b = e.t(0), e.t(1)
    m = e.op(op_type, a, b)
    if not e.is_float:
        return m
    return e.op("Where", e.op("IsNaN", a), a, e.op("Where", e.op("IsNaN", b), b, m))


def _nan_ignoring(e, op_type):
    """fmax/fmin: a NaN operand yields the other one."""
    a, b = e.t(0), e.t(1)
    m = e.op(op_type, a, b)
    if not e.is_float:
        return m
    return e.op("Where", e.op("IsNaN", a), b, e.op("Where", e.op("IsNaN", b), a, m))


def _rsqrt(e):
    return e.op("Reciprocal", e.op("Sqrt", e.t(0)))


def _log_base(base):
    return lambda e: e.op("Div", e.op("Log", e.t(0)), e.c(math.log(base)))


def _log1p_of(e, x):
    # Kahan's trick: log(u) * x / (u - 1) with u = 1 + x keeps log1p's accuracy for tiny x
    u = e.op("Add", x, e.c(1))
    um1 = e.op("Sub", u, e.c(1))
    scaled = e.op("Mul", e.op("Log", u), e.op("Div", x, um1))
    return e.op("Where", e.op("Equal", um1, e.c(0)), x, scaled)


def _log1p(e):
    return _log1p_of(e, e.t(0))


def _expm1(e):
    x = e.t(0)
    u = e.op("Exp", x)
    um1 = e.op("Sub", u, e.c(1))
    scaled = e.op("Div", e.op("Mul", um1, x), e.op("Log", u))  # Kahan's trick again
    small = e.op("Equal", u, e.c(1))
    big = e.op("Or", e.op("IsInf", u), e.op("Equal", um1, e.c(-1)))
    return e.op("Where", small, x, e.op("Where", big, um1, scaled))


def _gelu(approximate):
    def lower(e):
        x = e.t(0)
        if e.ctx.opset >= 20:
            return e.op("Gelu", x, approximate=approximate)
        if approximate == "none":
            inner = e.op("Erf", e.op("Mul", x, e.c(0.7071067811865476)))
        else:
            cube = e.op("Mul", e.op("Mul", x, x), x)
            inner = e.op("Tanh", e.op("Mul", e.c(0.7978845608028654), e.op("Add", x, e.op("Mul", e.c(0.044715), cube))))
        return e.op("Mul", e.op("Mul", e.c(0.5), x), e.op("Add", e.c(1), inner))
    return lower


def _silu(e):
    x = e.t(0)
    return e.op("Mul", x, e.op("Sigmoid", x))


def _leaky_relu(e):
    slope = e.raw(1)
    if slope is not None:
        return e.op("LeakyRelu", e.t(0), alpha=float(slope))
    x = e.t(0)
    return e.op("Where", e.op("Greater", x, e.c(0)), x, e.op("Mul", x, e.t(1)))


def _elu(e):
    alpha = e.raw(1)
    if alpha is not None:
        return e.op("Elu", e.t(0), alpha=float(alpha))
    x = e.t(0)
    return e.op("Where", e.op("Greater", x, e.c(0)), x, e.op("Mul", e.t(1), e.op("Sub", e.op("Exp", x), e.c(1))))


def _softplus(e):
    # x if x*beta > threshold else log1p(exp(x*beta)) / beta; ONNX Softplus is the stable log(1 + exp)
    x, beta = e.t(0), e.raw(1)
    z = x if beta == 1 else e.op("Mul", x, e.t(1))
    sp = e.op("Softplus", z)
    if beta != 1:
        sp = e.op("Div", sp, e.t(1))
    return e.op("Where", e.op("Greater", z, e.t(2)), x, sp)


def _clip(e):
    lo, hi = e.raw(1), e.raw(2)
    if lo is not None and hi is not None:
        return e.op("Clip", e.t(0), e.t(1), e.t(2))
    return e.op("Min", e.op("Max", e.t(0), e.t(1)), e.t(2))


def _where(e):
    cond = e.ctx.scalar(e.node, 0, np.bool_)
    return e.op("Where", cond, e.t(1), e.t(2))


def _lerp(e):
    a = e.t(0)
    return e.op("Add", a, e.op("Mul", e.t(2), e.op("Sub", e.t(1), a)))


def _addcmul(e):
    return e.op("Add", e.t(0), e.op("Mul", e.op("Mul", e.t(3), e.t(1)), e.t(2)))


def _addcdiv(e):
    return e.op("Add", e.t(0), e.op("Div", e.op("Mul", e.t(3), e.t(1)), e.t(2)))


def _remainder(e):
    a, b = e.t(0), e.t(1)
    if not e.is_float:
        return e.op("Mod", a, b, fmod=0)  # integer Mod takes the divisor's sign, like Python's %
    return e.op("Sub", a, e.op("Mul", e.op("Floor", e.op("Div", a, b)), b))


def _floor_divide(e):
    a, b = e.t(0), e.t(1)
    if e.is_float:
        return e.op("Floor", e.op("Div", a, b))
    q = e.op("Div", a, b)  # truncates toward zero; step down when the signs differ and it was inexact
    inexact = e.op("Not", e.op("Equal", e.op("Mod", a, b, fmod=1), e.c(0)))
    signs = e.op("Xor", e.op("Less", a, e.c(0)), e.op("Less", b, e.c(0)))
    return e.op("Sub", q, e.b.cast(e.op("And", inexact, signs), e.dtype))


def _trunc_of(e, x):
    if not e.is_float:
        return x
    return e.op("Where", e.op("Less", x, e.c(0)), e.op("Ceil", x), e.op("Floor", x))


def _frac(e):
    x = e.t(0)
    return e.op("Sub", x, _trunc_of(e, x))


def _square(e):
    x = e.t(0)
    return e.op("Mul", x, x)


def _isnan(e):
    x = e.t(0)
    return e.op("IsNaN", x) if e.is_float else e.op("Not", e.op("Equal", x, x))


def _isinf(pos, neg):
    def lower(e):
        x = e.t(0)
        if not e.is_float:
            return e.op("Not", e.op("Equal", x, x))
        return e.op("IsInf", x, detect_positive=int(pos), detect_negative=int(neg))
    return lower


def _isfinite(e):
    x = e.t(0)
    if not e.is_float:
        return e.op("Equal", x, x)
    return e.op("Not", e.op("Or", e.op("IsNaN", x), e.op("IsInf", x)))


def _signbit(e):
    x = e.t(0)
    if not e.is_float:
        return e.op("Less", x, e.c(0))
    neg_zero = e.op("And", e.op("Equal", x, e.c(0)), e.op("Less", e.op("Reciprocal", x), e.c(0)))
    return e.op("Or", e.op("Less", x, e.c(0)), neg_zero)


def _nan_to_num(e):
    x = e.t(0)
    out = e.op("Where", e.op("IsInf", x, detect_positive=0), e.t(3), x)
    out = e.op("Where", e.op("IsInf", x, detect_negative=0), e.t(2), out)
    return e.op("Where", e.op("IsNaN", x), e.t(1), out)


def _atan2(e):
    y, x = e.t(0), e.t(1)
    base = e.op("Atan", e.op("Div", y, x))
    pi = math.pi
    left = e.op("Where", e.op("GreaterOrEqual", y, e.c(0)), e.op("Add", base, e.c(pi)), e.op("Sub", base, e.c(pi)))
    axis = e.op("Where", e.op("Greater", y, e.c(0)), e.c(pi / 2),
                e.op("Where", e.op("Less", y, e.c(0)), e.c(-pi / 2), e.c(0)))
    return e.op("Where", e.op("Greater", x, e.c(0)), base, e.op("Where", e.op("Less", x, e.c(0)), left, axis))


def _bitwise(bool_op, int_op):
    def lower(e):
        ins = [e.t(i) for i in range(len(e.node.inputs))]
        if e.is_bool:
            return e.op(bool_op, *ins)
        if e.ctx.opset < 18:
            raise e.ctx.unsupported("Integer bitwise ops need opset 18 or newer", )
        return e.op(int_op, *ins)
    return lower


def _ne(e):
    return e.op("Not", e.op("Equal", e.t(0), e.t(1)))


def _binary_cross_entropy(e):
    # (t - 1) * max(log1p(-x), -100) - t * max(log(x), -100)
    x, t = e.t(0), e.t(1)
    lo = e.c(-100)
    log_1mx = e.op("Max", _log1p_of(e, e.op("Neg", x)), lo)
    log_x = e.op("Max", e.op("Log", x), lo)
    return e.op("Sub", e.op("Mul", e.op("Sub", t, e.c(1)), log_1mx), e.op("Mul", t, log_x))


FORMULAS = {
    "abs": _unary("Abs"), "neg": _unary("Neg"), "exp": _unary("Exp"), "log": _unary("Log"),
    "sqrt": _unary("Sqrt"), "sin": _unary("Sin"), "cos": _unary("Cos"), "tan": _unary("Tan"),
    "asin": _unary("Asin"), "acos": _unary("Acos"), "atan": _unary("Atan"), "sinh": _unary("Sinh"),
    "cosh": _unary("Cosh"), "asinh": _unary("Asinh"), "atanh": _unary("Atanh"), "erf": _unary("Erf"),
    "sigmoid": _unary("Sigmoid"), "tanh": _unary("Tanh"), "reciprocal": _unary("Reciprocal"),
    "sign": _unary("Sign"), "ceil": _int_identity_else("Ceil"), "floor": _int_identity_else("Floor"),
    "round": _int_identity_else("Round"), "trunc": lambda e: _trunc_of(e, e.t(0)), "frac": _frac,
    "relu": _relu, "rsqrt": _rsqrt, "log2": _log_base(2), "log10": _log_base(10), "log1p": _log1p,
    "expm1": _expm1, "erfc": lambda e: e.op("Sub", e.c(1), e.op("Erf", e.t(0))),
    "exp2": lambda e: e.op("Pow", e.c(2), e.t(0)), "square": _square,
    "gelu": _gelu("none"), "gelu_tanh": _gelu("tanh"), "silu": _silu, "leaky_relu": _leaky_relu,
    "elu": _elu, "softplus": _softplus, "hardtanh": _clip, "clamp": _clip,
    "add": _add, "sub": _binary("Sub"), "mul": _mul, "div": _binary("Div"), "pow": _binary("Pow"),
    "maximum": lambda e: _nan_first(e, "Max"), "minimum": lambda e: _nan_first(e, "Min"),
    "fmax": lambda e: _nan_ignoring(e, "Max"), "fmin": lambda e: _nan_ignoring(e, "Min"),
    "remainder": _remainder, "fmod": lambda e: e.op("Mod", e.t(0), e.t(1), fmod=1),
    "floor_divide": _floor_divide, "atan2": _atan2,
    "eq": _binary("Equal"), "ne": _ne, "lt": _binary("Less"), "le": _binary("LessOrEqual"),
    "gt": _binary("Greater"), "ge": _binary("GreaterOrEqual"),
    "logical_and": _binary("And"), "logical_or": _binary("Or"), "logical_xor": _binary("Xor"),
    "logical_not": _unary("Not"),
    "bitwise_and": _bitwise("And", "BitwiseAnd"), "bitwise_or": _bitwise("Or", "BitwiseOr"),
    "bitwise_xor": _bitwise("Xor", "BitwiseXor"), "bitwise_not": _bitwise("Not", "BitwiseNot"),
    "isnan": _isnan, "isinf": _isinf(True, True), "isposinf": _isinf(True, False),
    "isneginf": _isinf(False, True), "isfinite": _isfinite, "signbit": _signbit,
    "where": _where, "lerp": _lerp, "addcmul": _addcmul, "addcdiv": _addcdiv, "nan_to_num": _nan_to_num,
    "copy": _same, "clone": _same, "to_copy": _same, "copy_into": lambda e: e.t(1),
    "binary_cross_entropy": _binary_cross_entropy,
}

# ops whose formula yields bool whatever the compute dtype
BOOL_RESULT = frozenset({"eq", "ne", "lt", "le", "gt", "ge", "isnan", "isinf", "isposinf", "isneginf",
                         "isfinite", "signbit", "logical_and", "logical_or", "logical_xor", "logical_not"})


@lowers(*FORMULAS)
def lower_elementwise(ctx, node):
    out = node.outputs[0]
    compute = node.meta.get("compute") or out.dtype
    result = FORMULAS[node.name](Operands(ctx, node, compute))
    produced = np.bool_ if node.name in BOOL_RESULT else compute
    if np_dtype(produced) != np_dtype(out.dtype):
        result = ctx.b.cast(result, out.dtype)
    return result
