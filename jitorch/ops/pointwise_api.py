"""Public pointwise functions (``jitorch.add``, ``jitorch.exp``...) over the primitives."""
from __future__ import annotations

import builtins
import math

import numpy as np

from .. import _dtype as D
from .._dispatch import elementwise as _ew
from .._dispatch import unary as _un
from .._tensor import Tensor
from ..amp.autocast_mode import state as _amp
from ..amp.policy import KNOWN as _AMP_OPS
from ..amp.policy import cast_inputs as _amp_cast
from . import elementwise as E


def _t(x, like=None):
    """Python scalars stay scalars; anything array-like becomes a tensor."""
    if isinstance(x, (Tensor, int, float, bool, np.generic)):
        return x
    from .creation import tensor
    return tensor(x)


def _need_tensor(name, x):
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}(): argument 'input' (position 1) must be Tensor, not {type(x).__name__}")


def add(input, other, *, alpha=1, out=None):
    """``input + alpha * other``."""
    if alpha != 1:
        other = _ew(E.MUL, _t(other), alpha) if isinstance(other, Tensor) else other * alpha
    if not isinstance(input, Tensor):
        return _ew(E.ADD, _t(input), other, out=out) if isinstance(_t(input), Tensor) else _ew(E.ADD, other, input, out=out)
    return _ew(E.ADD, input, _t(other), out=out)


def sub(input, other, *, alpha=1, out=None):
    """``input - alpha * other``."""
    _check_bool_sub(input, other)
    if alpha != 1:
        other = _ew(E.MUL, other, alpha) if isinstance(other, Tensor) else other * alpha
    return _ew(E.SUB, _t(input), _t(other), out=out)


def _check_bool_sub(a, b):
    # torch refuses any bool operand (tensor or Python bool) in a subtraction
    a_bool = isinstance(a, bool) or getattr(a, "dtype", None) is D.bool_
    b_bool = isinstance(b, bool) or getattr(b, "dtype", None) is D.bool_
    if a_bool and b_bool:
        raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not supported. "
                           "Use the `^` or `logical_xor()` operator instead.")
    if a_bool or b_bool:
        raise RuntimeError("Subtraction, the `-` operator, with a bool tensor is not supported. "
                           "If you are trying to invert a mask, use the `~` or `logical_not()` operator instead.")


def mul(input, other, *, out=None):
    return _ew(E.MUL, _t(input), _t(other), out=out)


def div(input, other, *, rounding_mode=None, out=None):
    """True division; ``rounding_mode`` 'trunc' or 'floor' as in torch."""
    if rounding_mode is None:
        return _ew(E.DIV, _t(input), _t(other), out=out)
    if rounding_mode == "floor":
        return floor_divide(input, other, out=out)
    if rounding_mode == "trunc":
        a, b = _t(input), _t(other)
        dt = D.result_type(a, b)
        if dt.is_floating_point:
            return trunc(_ew(E.DIV, a, b), out=out)
        q = _ew(E.FLOOR_DIVIDE, a, b)
        fix = _ew(E.LOGICAL_AND, _ew(E.NE, _ew(E.REMAINDER, a, b), 0), _ew(E.LT, _ew(E.MUL, a, b), 0))
        return _ew(E.ADD, q, fix.to(q.dtype), out=out)
    raise RuntimeError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found '{rounding_mode}'")


true_divide = divide = div
multiply = mul
subtract = sub


def _check_kernel_dtype(kernel, *operands, refuse):
    # torch has no kernel for these dtypes: same exception type and message as torch
    dt = D.result_type(*operands)
    if refuse(dt):
        raise NotImplementedError(f"\"{kernel}\" not implemented for '{D.type_word(dt)}'")


def _is_bool(dt):
    return dt is D.bool_


def _is_float(dt):
    return dt.is_floating_point


def floor_divide(input, other, *, out=None):
    b = _t(other)
    a = _t(input)
    _check_kernel_dtype("div_floor_cpu", a, b, refuse=_is_bool)
    _check_int_zero_division(a, b)
    return _ew(E.FLOOR_DIVIDE, a, b, out=out)


def _check_int_zero_division(a, b):
    # integer kernels cannot signal; torch raises for an integer division by zero
    if D.result_type(a, b).is_floating_point:
        return
    if (b._data == 0).any() if isinstance(b, Tensor) else b == 0:
        raise RuntimeError("ZeroDivisionError")


def remainder(input, other, *, out=None):
    """Python-style modulus: the result has the sign of ``other``."""
    a, b = _t(input), _t(other)
    _check_kernel_dtype("remainder_cpu", a, b, refuse=_is_bool)
    _check_int_zero_division(a, b)
    return _ew(E.REMAINDER, a, b, out=out)


def fmod(input, other, *, out=None):
    """C-style modulus: the result has the sign of ``input``."""
    a, b = _t(input), _t(other)
    _check_kernel_dtype("fmod_cpu", a, b, refuse=_is_bool)
    _check_int_zero_division(a, b)
    return _ew(E.FMOD, a, b, out=out)


def pow(input, exponent, *, out=None):
    """``input ** exponent``; small integer scalar exponents become multiplications."""
    if _amp.active and out is None:  # float32 under CUDA autocast (amp/policy.py); out= variants are not cast
        input, exponent = _amp_cast("pow", input, exponent)
    if isinstance(input, Tensor) and isinstance(exponent, (int, float)) and not isinstance(exponent, bool):
        if exponent == 1 and out is None:
            return _ew(E.COPY, input) if not input._requires_grad else input * 1
        if exponent == 2:
            if input._dtype is D.bool_:
                return _ew(E.POW, input, exponent, out=out)
            return _ew(E.MUL, input, input, out=out)
        if exponent == 0.5 and input._dtype.is_floating_point:
            return _ew(E.SQRT, input, out=out)
        if exponent == 3 and input._dtype.is_floating_point:
            return _ew(E.MUL, _ew(E.MUL, input, input), input, out=out)
        if isinstance(exponent, int) and exponent < 0 and not input._dtype.is_floating_point:
            raise RuntimeError("Integers to negative integer powers are not allowed.")
    _check_kernel_dtype("pow", _t(input), _t(exponent), refuse=_is_bool)
    return _ew(E.POW, _t(input), _t(exponent), out=out)


def float_power(input, exponent):
    """``input ** exponent`` computed in float64, like torch.float_power."""
    return pow(input.double() if isinstance(input, Tensor) else input,
               exponent.double() if isinstance(exponent, Tensor) else exponent)


def neg(input, *, out=None):
    if input.dtype is D.bool_:
        raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. "
                           "If you are trying to invert a mask, use the `~` or `logical_not()` operator instead.")
    return _ew(E.NEG, input, out=out)


negative = neg


def _unary(op):
    name = op.name
    if name in _AMP_OPS:  # exp, log, rsqrt...: float32 under CUDA autocast (amp/policy.py)
        def fn(input, *, out=None):
            if out is None:
                if _amp.active and isinstance(input, Tensor):
                    input = _amp_cast(name, input)
                if input.__class__ is Tensor:
                    return _un(op, input)
            _need_tensor(name, input)
            return _ew(op, input, out=out)
        return _named(fn, op)

    def fn(input, *, out=None):
        if out is None and input.__class__ is Tensor:
            return _un(op, input)
        _need_tensor(op.name, input)
        return _ew(op, input, out=out)
    return _named(fn, op)


def _named(fn, op):
    fn.__name__ = op.name
    fn.__doc__ = f"Elementwise ``{op.name}`` of ``input``."
    return fn


abs = _unary(E.ABS)
absolute = abs
exp = _unary(E.EXP)
exp2 = _unary(E.EXP2)
expm1 = _unary(E.EXPM1)
log = _unary(E.LOG)
log2 = _unary(E.LOG2)
log10 = _unary(E.LOG10)
log1p = _unary(E.LOG1P)
sqrt = _unary(E.SQRT)
rsqrt = _unary(E.RSQRT)
reciprocal = _unary(E.RECIPROCAL)
square = _unary(E.SQUARE)
sin = _unary(E.SIN)
cos = _unary(E.COS)
tan = _unary(E.TAN)
asin = arcsin = _unary(E.ASIN)
acos = arccos = _unary(E.ACOS)
atan = arctan = _unary(E.ATAN)
sinh = _unary(E.SINH)
cosh = _unary(E.COSH)
tanh = _unary(E.TANH)
asinh = arcsinh = _unary(E.ASINH)
atanh = arctanh = _unary(E.ATANH)
sigmoid = _unary(E.SIGMOID)
relu = _unary(E.RELU)
silu = _unary(E.SILU)
erf = _unary(E.ERF)
erfc = _unary(E.ERFC)
sign = _unary(E.SIGN)
sgn = sign
frac = _unary(E.FRAC)
isnan = _unary(E.ISNAN)
isinf = _unary(E.ISINF)
isfinite = _unary(E.ISFINITE)
isposinf = _unary(E.ISPOSINF)
isneginf = _unary(E.ISNEGINF)
signbit = _unary(E.SIGNBIT)
logical_not = _unary(E.LOGICAL_NOT)
_bitwise_not = _unary(E.BITWISE_NOT)


def bitwise_not(input, *, out=None):
    """``~input`` for integer and bool tensors."""
    _need_tensor("bitwise_not", input)
    _check_kernel_dtype("bitwise_not_cpu", input, refuse=_is_float)
    return _bitwise_not(input, out=out)


def _keep_int(op):
    # floor/ceil/trunc of integer tensors are the identity (and keep the dtype)
    def fn(input, *, out=None):
        _need_tensor(op.name, input)
        return _ew(op, input, out=out)
    fn.__name__ = op.name
    return fn


floor = _keep_int(E.FLOOR)
ceil = _keep_int(E.CEIL)
trunc = _keep_int(E.TRUNC)
fix = trunc


def round(input, *, decimals=0, out=None):
    """Round half to even, like torch.round."""
    if decimals == 0:
        return _ew(E.ROUND, input, out=out)
    scale = 10.0 ** decimals
    return _ew(E.ROUND, input * scale, out=out) / scale


def atan2(input, other, *, out=None):
    return _ew(E.ATAN2, _t(input), _t(other), out=out)


arctan2 = atan2


def gelu(input, approximate="none"):
    """GELU: exact (erf) or ``approximate='tanh'``."""
    if approximate == "tanh":
        return _ew(E.GELU_TANH, input)
    if approximate != "none":
        raise RuntimeError(f"approximate argument must be either none or tanh, got {approximate}")
    return _ew(E.GELU, input)


def softplus(input, beta=1.0, threshold=20.0):
    return _ew(E.SOFTPLUS, input, float(beta), float(threshold))


def elu(input, alpha=1.0, inplace=False):
    return _ew(E.ELU, input, float(alpha), inplace=input if inplace else None)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    return _ew(E.LEAKY_RELU, input, float(negative_slope), inplace=input if inplace else None)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    return _ew(E.HARDTANH, input, min_val, max_val, inplace=input if inplace else None)


def _bound(x, dt, default):
    return default if x is None else _t(x)


def clamp(input, min=None, max=None, *, out=None):
    """Limit values to ``[min, max]`` (either may be None; tensors broadcast)."""
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    dt = input.dtype
    if dt.is_floating_point:
        lo, hi = -math.inf, math.inf
    elif dt is D.bool_:
        lo, hi = False, True
    else:
        info = np.iinfo(dt.numpy_dtype)
        lo, hi = int(info.min), int(info.max)
    lo = _bound(min, dt, lo)
    hi = _bound(max, dt, hi)
    if isinstance(lo, float) and not dt.is_floating_point and min is not None or \
       isinstance(hi, float) and not dt.is_floating_point and max is not None:
        return _ew(E.CLAMP, input, lo, hi, out=out)
    return _ew(E.CLAMP, input, lo, hi, out=out, dtype=D.result_type(input, *(v for v in (min, max) if isinstance(v, Tensor))))


clip = clamp


def clamp_min(input, min):
    return clamp(input, min=min)


def clamp_max(input, max):
    return clamp(input, max=max)


def where(condition, input=None, other=None, *, out=None):
    """``input`` where ``condition`` else ``other``; one-argument form is ``nonzero(as_tuple=True)``."""
    if input is None and other is None:
        from .indexing import nonzero
        return nonzero(condition, as_tuple=True)
    if not isinstance(condition, Tensor):
        condition = _t(condition)
    if condition.dtype is not D.bool_:
        if condition.dtype is D.uint8:
            condition = condition.to(D.bool_)
        else:
            raise RuntimeError(f"where expected condition to be a boolean tensor, but got a tensor with dtype {D.type_word(condition.dtype)}")
    input, other = _t(input), _t(other)
    return _ew(E.WHERE, condition, input, other, out=out, dtype=D.result_type(input, other))


def lerp(input, end, weight, *, out=None):
    return _ew(E.LERP, input, _t(end), _t(weight), out=out)


def addcmul(input, tensor1, tensor2, *, value=1, out=None):
    return _ew(E.ADDCMUL, input, tensor1, tensor2, value, out=out)


def addcdiv(input, tensor1, tensor2, *, value=1, out=None):
    if not (tensor1.dtype.is_floating_point or tensor2.dtype.is_floating_point):
        raise RuntimeError("Integer division with addcdiv is no longer supported, and in a future release "
                           "addcdiv will perform a true division of tensor1 and tensor2.")
    return _ew(E.ADDCDIV, input, tensor1, tensor2, value, out=out)


def maximum(input, other, *, out=None):
    return _ew(E.MAXIMUM, input, _t(other), out=out)


def minimum(input, other, *, out=None):
    return _ew(E.MINIMUM, input, _t(other), out=out)


def fmax(input, other, *, out=None):
    """Elementwise maximum that ignores NaN (NaN only where both are NaN)."""
    return _ew(E.FMAX, input, _t(other), out=out)


def fmin(input, other, *, out=None):
    """Elementwise minimum that ignores NaN (NaN only where both are NaN)."""
    return _ew(E.FMIN, input, _t(other), out=out)


def nan_to_num(input, nan=0.0, posinf=None, neginf=None, *, out=None):
    if not input.dtype.is_floating_point:
        return input.clone()
    info = np.finfo(input.dtype.numpy_dtype)
    pos = float(info.max) if posinf is None else posinf
    negv = float(info.min) if neginf is None else neginf
    return _ew(E.NAN_TO_NUM, input, float(nan), float(pos), float(negv), out=out)


def _cmp(op):
    def fn(input, other, *, out=None):
        return _ew(op, _t(input), _t(other), out=out)
    fn.__name__ = op.name
    return fn


eq = _cmp(E.EQ)
ne = not_equal = _cmp(E.NE)
lt = less = _cmp(E.LT)
le = less_equal = _cmp(E.LE)
gt = greater = _cmp(E.GT)
ge = greater_equal = _cmp(E.GE)
logical_and = _cmp(E.LOGICAL_AND)
logical_or = _cmp(E.LOGICAL_OR)
logical_xor = _cmp(E.LOGICAL_XOR)


def _bitwise(op, kernel):
    def fn(input, other, *, out=None):
        a, b = _t(input), _t(other)
        _check_kernel_dtype(kernel, a, b, refuse=_is_float)
        return _ew(op, a, b, out=out)
    fn.__name__ = op.name
    fn.__doc__ = f"Elementwise ``{op.name}`` of integer or bool operands."
    return fn


bitwise_and = _bitwise(E.BITWISE_AND, "bitwise_and_cpu")
bitwise_or = _bitwise(E.BITWISE_OR, "bitwise_or_cpu")
bitwise_xor = _bitwise(E.BITWISE_XOR, "bitwise_xor_cpu")
bitwise_left_shift = _bitwise(E.BITWISE_LEFT_SHIFT, "lshift_cpu")
bitwise_right_shift = _bitwise(E.BITWISE_RIGHT_SHIFT, "rshift_cpu")


def _host_only(*xs) -> bool:
    """Do all tensors among ``xs`` keep NumPy arrays (the CPU fast path)?"""
    return all(x._data.__class__ is np.ndarray for x in xs if isinstance(x, Tensor))


def _same_device(name: str, a: Tensor, b) -> None:
    if isinstance(b, Tensor) and a._device != b._device:
        raise RuntimeError(f"Expected all tensors to be on the same device, but found at least two devices, "
                           f"{a._device} and {b._device}! (when checking argument for argument other in "
                           f"method {name})")


def _check_tolerances(rtol, atol) -> None:
    if rtol < 0:
        raise RuntimeError(f"rtol must be greater than or equal to zero, but got {rtol}")
    if atol < 0:
        raise RuntimeError(f"atol must be greater than or equal to zero, but got {atol}")


def equal(input, other) -> bool:
    """True if both have the same shape and elements (values compared after type promotion)."""
    if _host_only(input, other):
        return tuple(input.shape) == tuple(other.shape) and bool(np.array_equal(input._data, other._data))
    _same_device("equal", input, other)
    if tuple(input.shape) != tuple(other.shape):
        return False
    from .reductions import all as _all
    return bool(_all(eq(input, other)).item())  # one read of a device flag, as torch syncs here too


def _isclose_tensors(a: Tensor, b, rtol, atol, equal_nan) -> Tensor:
    """torch's isclose from tensor ops, so it runs on the tensors' device:
    ``a == b``, or (NaN with NaN when ``equal_nan``), or a finite ``|a - b| <= atol + |rtol * b|``."""
    from ..autograd import grad_mode
    with grad_mode.no_grad():
        close = eq(a, b)
        floating = a.dtype.is_floating_point or (isinstance(b, Tensor) and b.dtype.is_floating_point)
        if equal_nan and floating:
            close = logical_or(close, logical_and(isnan(a), isnan(b) if isinstance(b, Tensor) else
                                                  math.isnan(b)))
        if rtol == 0 and atol == 0:
            return close
        if not a.dtype.is_floating_point:  # integer and bool operands compare in the default float dtype
            a = a.to(D.get_default_dtype())
        if isinstance(b, Tensor) and not b.dtype.is_floating_point:
            b = b.to(D.get_default_dtype())
        actual = abs(sub(a, b))
        allowed = add(abs(mul(b, rtol)), atol) if isinstance(b, Tensor) else atol + builtins.abs(rtol * b)
        return logical_or(close, logical_and(isfinite(actual), le(actual, allowed)))


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool:
    """True if every element of ``input`` is close to ``other`` (see ``isclose``)."""
    _check_tolerances(rtol, atol)
    if _host_only(input, other):
        return bool(np.allclose(input._data, other._data, rtol=rtol, atol=atol, equal_nan=equal_nan))
    _same_device("allclose", input, other)
    from .reductions import all as _all
    return bool(_all(_isclose_tensors(input, other, rtol, atol, equal_nan)).item())


def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """Elementwise ``|input - other| <= atol + rtol * |other|`` (and exact equality, e.g. of infinities)."""
    _check_tolerances(rtol, atol)
    if _host_only(input, other):
        from .creation import from_numpy
        b = other._data if isinstance(other, Tensor) else other
        return from_numpy(np.isclose(input._data, b, rtol=rtol, atol=atol, equal_nan=equal_nan))
    _same_device("isclose", input, other)
    return _isclose_tensors(input, other, rtol, atol, equal_nan)


def result_type(tensor, other):
    """The dtype an elementwise op on ``tensor`` and ``other`` computes in (``torch.result_type``)."""
    return D.result_type(tensor, other)
