"""Elementwise primitives: one line of scalar code and one derivative rule each.

Templates are ``str.format`` strings over the operands ``{0}``, ``{1}``... and
``{T}``, the NumPy type the expression computes in (so constants stay in
float32 for float32 tensors).  Extra scalar parameters of an op (a slope, a
clamp bound) are ordinary operands, so one compiled kernel serves all values.
Derivative rules take ``(ctx, grad)`` and return one gradient per operand,
built from jitorch ops; gradients of broadcast operands are reduced by the
registry.
"""
from __future__ import annotations

import math

import jitorch as J
from .registry import elementwise as ew


def _f32_or(fast: str, slow: str):
    """Use a vectorizable float32 helper, libm for float64."""
    return lambda d: fast if d.name == "float32" else slow


def _zero(ctx, g):
    return tuple(None for _ in ctx.in_meta)


# -- arithmetic -------------------------------------------------------------------
ADD = ew("add", 2, "({0} + {1})", lambda c, g: (g, g), saves="none")
SUB = ew("sub", 2, "({0} - {1})", lambda c, g: (g, -g), saves="none")
MUL = ew("mul", 2, "({0} * {1})", lambda c, g: (g * c.b if c.needs_input_grad[0] else None,
                                                 g * c.a if c.needs_input_grad[1] else None), saves="cross")
DIV = ew("div", 2, "({0} / {1})", lambda c, g: (g / c.b, -g * c.a / (c.b * c.b)), dtype_rule="float")
FLOOR_DIVIDE = ew("floor_divide", 2, "({0} // {1})")
REMAINDER = ew("remainder", 2, "({0} % {1})",
               lambda c, g: (g, -g * J.floor_divide(c.a, c.b)))
# numba has no math.fmod, and its integer np.fmod is wrong for negative operands: integers take
# Python's % (sign of the divisor) and move the result to the sign of the dividend
FMOD = ew("fmod", 2, "np.fmod({0}, {1})", lambda c, g: (g, -g * J.trunc(c.a / c.b)),
          int_expr="(({0} % {1}) - {1} if ({0} % {1}) != 0 and (({0} % {1}) < 0) != ({0} < 0) else ({0} % {1}))")


def _pow_vjp(c, g):
    a, b = c.a, c.b
    ga = g * b * a ** (b - 1) if c.needs_input_grad[0] else None
    gb = None
    if c.needs_input_grad[1]:
        gb = g * J.where(a > 0, c.a ** b * J.log(J.where(a > 0, a, 1.0)), 0.0) \
            if isinstance(a, J.Tensor) else g * (a ** b) * math.log(a)
    return ga, gb


POW = ew("pow", 2, "({0} ** {1})", _pow_vjp)
NEG = ew("neg", 1, "(-{0})", lambda c, g: (-g,), saves="none")
ABS = ew("abs", 1, "abs({0})", lambda c, g: (g * J.sign(c.a),))
RECIPROCAL = ew("reciprocal", 1, "({T}(1) / {0})", lambda c, g: (-g * c.out * c.out,),
                dtype_rule="float", saves="out")
SQUARE = ew("square", 1, "({0} * {0})", lambda c, g: (g * 2 * c.a,), dtype_rule="int_or_float")

# -- exponentials and logarithms -------------------------------------------------------
EXP = ew("exp", 1, _f32_or("exp32({0})", "math.exp({0})"), lambda c, g: (g * c.out,),
         dtype_rule="float", saves="out")
EXP2 = ew("exp2", 1, "({T}(2) ** {0})", lambda c, g: (g * c.out * math.log(2.0),),
          dtype_rule="float", saves="out")
EXPM1 = ew("expm1", 1, "math.expm1({0})", lambda c, g: (g * (c.out + 1),), dtype_rule="float", saves="out")
LOG = ew("log", 1, "math.log({0}) if {0} > 0 else (-math.inf if {0} == 0 else math.nan)",
         lambda c, g: (g / c.a,), dtype_rule="float")
LOG2 = ew("log2", 1, "math.log2({0}) if {0} > 0 else (-math.inf if {0} == 0 else math.nan)",
          lambda c, g: (g / (c.a * math.log(2.0)),), dtype_rule="float")
LOG10 = ew("log10", 1, "math.log10({0}) if {0} > 0 else (-math.inf if {0} == 0 else math.nan)",
           lambda c, g: (g / (c.a * math.log(10.0)),), dtype_rule="float")
LOG1P = ew("log1p", 1, "math.log1p({0}) if {0} > -1 else (-math.inf if {0} == -1 else math.nan)",
           lambda c, g: (g / (c.a + 1),), dtype_rule="float")
SQRT = ew("sqrt", 1, "math.sqrt({0}) if {0} >= 0 else math.nan", lambda c, g: (g / (2 * c.out),),
          dtype_rule="float", saves="out")
RSQRT = ew("rsqrt", 1, "({T}(1) / math.sqrt({0}) if {0} >= 0 else math.nan)",
           lambda c, g: (-0.5 * g * c.out * c.out * c.out,), dtype_rule="float", saves="out")

# -- trigonometric and hyperbolic -------------------------------------------------------
SIN = ew("sin", 1, "math.sin({0})", lambda c, g: (g * J.cos(c.a),), dtype_rule="float")
COS = ew("cos", 1, "math.cos({0})", lambda c, g: (-g * J.sin(c.a),), dtype_rule="float")
TAN = ew("tan", 1, "math.tan({0})", lambda c, g: (g * (1 + c.out * c.out),), dtype_rule="float", saves="out")
ASIN = ew("asin", 1, "math.asin({0}) if abs({0}) <= 1 else math.nan",
          lambda c, g: (g * J.rsqrt(1 - c.a * c.a),), dtype_rule="float")
ACOS = ew("acos", 1, "math.acos({0}) if abs({0}) <= 1 else math.nan",
          lambda c, g: (-g * J.rsqrt(1 - c.a * c.a),), dtype_rule="float")
ATAN = ew("atan", 1, "math.atan({0})", lambda c, g: (g / (1 + c.a * c.a),), dtype_rule="float")
ATAN2 = ew("atan2", 2, "math.atan2({0}, {1})",
           lambda c, g: (g * c.b / (c.a * c.a + c.b * c.b), -g * c.a / (c.a * c.a + c.b * c.b)),
           dtype_rule="float")
SINH = ew("sinh", 1, "math.sinh({0})", lambda c, g: (g * J.cosh(c.a),), dtype_rule="float")
COSH = ew("cosh", 1, "math.cosh({0})", lambda c, g: (g * J.sinh(c.a),), dtype_rule="float")
# copysign: tanh32 loses the sign of -0.
TANH = ew("tanh", 1, _f32_or("math.copysign(tanh32({0}), {0})", "math.tanh({0})"), lambda c, g: (g * (1 - c.out * c.out),),
          dtype_rule="float", saves="out")
ASINH = ew("asinh", 1, "math.asinh({0})", lambda c, g: (g * J.rsqrt(c.a * c.a + 1),), dtype_rule="float")
ATANH = ew("atanh", 1, "math.atanh({0}) if abs({0}) < 1 else (math.copysign(math.inf, {0}) if abs({0}) == 1 else math.nan)",
           lambda c, g: (g / (1 - c.a * c.a),), dtype_rule="float")

# -- activations ------------------------------------------------------------------------
SIGMOID = ew("sigmoid", 1, _f32_or("sigmoid32({0})", "(1.0 / (1.0 + math.exp(-{0})))"),
             lambda c, g: (g * c.out * (1 - c.out),), dtype_rule="float", saves="out")
# keeps NaN and -0., like torch
RELU = ew("relu", 1, "({T}(0) if {0} < 0 else {0})", lambda c, g: (threshold_backward(g, c.out),), saves="out")
# relu's gradient in one pass: g where the output is positive (or NaN, as in torch), else 0
THRESHOLD_BACKWARD = ew("threshold_backward", 2, "({T}(0) if {1} <= 0 else {0})",
                        lambda c, g: (threshold_backward(g, c.b), None))
SILU = ew("silu", 1, _f32_or("({0} * sigmoid32({0}))", "({0} / (1.0 + math.exp(-{0})))"),
          lambda c, g: (g * _silu_grad(c.a),), dtype_rule="float")
GELU = ew("gelu", 1, "({T}(0.5) * {0} * ({T}(1) + math.erf({0} * {T}(0.7071067811865476))))",
          lambda c, g: (g * _gelu_grad(c.a),), dtype_rule="float")
GELU_TANH = ew("gelu_tanh", 1, _f32_or(
    "({T}(0.5) * {0} * ({T}(1) + tanh32({T}(0.7978845608028654) * ({0} + {T}(0.044715) * {0} * {0} * {0}))))",
    "(0.5 * {0} * (1.0 + math.tanh(0.7978845608028654 * ({0} + 0.044715 * {0} * {0} * {0}))))"),
    lambda c, g: (g * _gelu_tanh_grad(c.a),), dtype_rule="float", node_name="GeluBackward0")
SOFTPLUS = ew("softplus", 3, "({0} if {0} * {1} > {2} else math.log1p(math.exp({0} * {1})) / {1})",
              lambda c, g: (J.where(c.a * c.b > c.inputs[2], g, g * J.sigmoid(c.a * c.b)), None, None),
              dtype_rule="float")
ELU = ew("elu", 2, "({0} if {0} > 0 else {1} * math.expm1({0}))",
         lambda c, g: (J.where(c.a > 0, g, g * c.b * J.exp(c.a)), None), dtype_rule="float")
LEAKY_RELU = ew("leaky_relu", 2, "({0} if {0} > 0 else {0} * {1})",
                lambda c, g: (J.where(c.a > 0, g, g * c.b), None), dtype_rule="float")
HARDTANH = ew("hardtanh", 3, "min(max({0}, {1}), {2})",
              lambda c, g: (g * ((c.a > c.b) & (c.a < c.inputs[2])), None, None))
ERF = ew("erf", 1, "math.erf({0})", lambda c, g: (g * (2 / math.sqrt(math.pi)) * J.exp(-c.a * c.a),),
         dtype_rule="float")
ERFC = ew("erfc", 1, "math.erfc({0})", lambda c, g: (-g * (2 / math.sqrt(math.pi)) * J.exp(-c.a * c.a),),
          dtype_rule="float")


def threshold_backward(g, out):
    """``g`` where ``out > 0`` (or NaN), else 0: relu's derivative rule as one elementwise op."""
    from .._dispatch import binary
    return binary(THRESHOLD_BACKWARD, g, out)


def _silu_grad(x):
    s = J.sigmoid(x)
    return s * (1 + x * (1 - s))


def _gelu_grad(x):
    cdf = 0.5 * (1 + J.erf(x * 0.7071067811865476))
    pdf = J.exp(-0.5 * x * x) * 0.3989422804014327
    return cdf + x * pdf


def _gelu_tanh_grad(x):
    k = 0.7978845608028654
    inner = k * (x + 0.044715 * x * x * x)
    t = J.tanh(inner)
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x)


# -- rounding and sign ----------------------------------------------------------------------
# torch: sign(nan) == 0 and sign(-0.) == +0.
SIGN = ew("sign", 1, "({T}(1) if {0} > 0 else ({T}(-1) if {0} < 0 else {T}(0)))", _zero,
          int_expr="((1 if {0} > 0 else (-1 if {0} < 0 else 0)))")
# np.floor & co. stay floating point; math.floor returns an int64 (garbage for nan and inf)
FLOOR = ew("floor", 1, "np.floor({0})", _zero, int_expr="{0}")
CEIL = ew("ceil", 1, "np.ceil({0})", _zero, int_expr="{0}")
ROUND = ew("round", 1, "np.rint({0})", _zero, int_expr="{0}")
TRUNC = ew("trunc", 1, "np.trunc({0})", _zero, int_expr="{0}")
FRAC = ew("frac", 1, "({0} - np.trunc({0}))", lambda c, g: (g,), saves="none")

# -- selection ------------------------------------------------------------------------------
MAXIMUM = ew("maximum", 2, "({0} if {0} > {1} or {0} != {0} else {1})",
             lambda c, g: _minmax_grad(c, g, c.a > c.b))
MINIMUM = ew("minimum", 2, "({0} if {0} < {1} or {0} != {0} else {1})",
             lambda c, g: _minmax_grad(c, g, c.a < c.b))
# fmax/fmin ignore a NaN operand; at ties the whole gradient goes to the first operand (as in torch)
FMAX = ew("fmax", 2, "({1} if {0} != {0} or {1} > {0} else {0})",
          lambda c, g: _fminmax_grad(g, (c.a >= c.b) | J.isnan(c.b)))
FMIN = ew("fmin", 2, "({1} if {0} != {0} or {1} < {0} else {0})",
          lambda c, g: _fminmax_grad(g, (c.a <= c.b) | J.isnan(c.b)))
CLAMP = ew("clamp", 3, "(min(max({0}, {1}), {2}) if {0} == {0} else {0})",
           lambda c, g: (g * ((c.a >= c.b) & (c.a <= c.inputs[2])),
                         g * (c.a < c.b) if c.needs_input_grad[1] else None,
                         g * (c.a > c.inputs[2]) if c.needs_input_grad[2] else None))
WHERE = ew("where", 3, "({1} if {0} else {2})",
           lambda c, g: (None, J.where(c.a, g, 0.0), J.where(c.a, 0.0, g)))
LERP = ew("lerp", 3, "({0} + {2} * ({1} - {0}))",
          lambda c, g: (g * (1 - c.inputs[2]), g * c.inputs[2], g * (c.b - c.a)), dtype_rule="float")
ADDCMUL = ew("addcmul", 4, "({0} + {3} * {1} * {2})",
             lambda c, g: (g, g * c.inputs[2] * c.inputs[3], g * c.b * c.inputs[3], None))
ADDCDIV = ew("addcdiv", 4, "({0} + {3} * {1} / {2})",
             lambda c, g: (g, g * c.inputs[3] / c.inputs[2],
                           -g * c.inputs[3] * c.b / (c.inputs[2] * c.inputs[2]), None))
NAN_TO_NUM = ew("nan_to_num", 4, "({1} if {0} != {0} else ({2} if {0} == math.inf else ({3} if {0} == -math.inf else {0})))",
                lambda c, g: (g * J.isfinite(c.a), None, None, None), int_expr="{0}")
COPY = ew("copy", 1, "{0}", lambda c, g: (g,), saves="none", node_name="CloneBackward0")


def _fminmax_grad(g, first):
    return J.where(first, g, 0.0), J.where(first, 0.0, g)


def _minmax_grad(c, g, wins):
    tie = c.a == c.b
    half = g * 0.5
    ga = J.where(wins, g, J.where(tie, half, 0.0))
    gb = J.where(wins, 0.0, J.where(tie, half, g))
    return ga, gb


# -- comparisons, logic, bits (not differentiable) -----------------------------------------------
EQ = ew("eq", 2, "({0} == {1})", dtype_rule="bool")
NE = ew("ne", 2, "({0} != {1})", dtype_rule="bool")
LT = ew("lt", 2, "({0} < {1})", dtype_rule="bool")
LE = ew("le", 2, "({0} <= {1})", dtype_rule="bool")
GT = ew("gt", 2, "({0} > {1})", dtype_rule="bool")
GE = ew("ge", 2, "({0} >= {1})", dtype_rule="bool")
ISNAN = ew("isnan", 1, "({0} != {0})", dtype_rule="bool", int_expr="False")
ISINF = ew("isinf", 1, "(abs({0}) == math.inf)", dtype_rule="bool", int_expr="False")
ISFINITE = ew("isfinite", 1, "(abs({0}) < math.inf)", dtype_rule="bool", int_expr="True")
ISPOSINF = ew("isposinf", 1, "({0} == math.inf)", dtype_rule="bool", int_expr="False")
ISNEGINF = ew("isneginf", 1, "({0} == -math.inf)", dtype_rule="bool", int_expr="False")
SIGNBIT = ew("signbit", 1, "(math.copysign(1.0, {0}) < 0)", dtype_rule="bool", int_expr="({0} < 0)")
LOGICAL_NOT = ew("logical_not", 1, "(not {0})", dtype_rule="logical")
LOGICAL_AND = ew("logical_and", 2, "({0} and {1})", dtype_rule="logical")
LOGICAL_OR = ew("logical_or", 2, "({0} or {1})", dtype_rule="logical")
LOGICAL_XOR = ew("logical_xor", 2, "({0} != {1})", dtype_rule="logical")
BITWISE_NOT = ew("bitwise_not", 1, lambda d: "(not {0})" if d.name == "bool" else "(~{0})", dtype_rule="integral")
BITWISE_AND = ew("bitwise_and", 2, "({0} & {1})", dtype_rule="integral")
BITWISE_OR = ew("bitwise_or", 2, "({0} | {1})", dtype_rule="integral")
BITWISE_XOR = ew("bitwise_xor", 2, "({0} ^ {1})", dtype_rule="integral")
BITWISE_LEFT_SHIFT = ew("bitwise_left_shift", 2, "({0} << {1})", dtype_rule="integral")
BITWISE_RIGHT_SHIFT = ew("bitwise_right_shift", 2, "({0} >> {1})", dtype_rule="integral")
