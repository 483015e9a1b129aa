"""Attach the functional ops to ``Tensor`` as methods and operators.

Each op is written once as a function in ``jitorch.ops``; this module only
binds names, so ``x.exp()``, ``jitorch.exp(x)`` and ``x.exp_()`` share code.
"""
from __future__ import annotations

from ._dispatch import binary as _bin
from ._dispatch import elementwise as _ew
from ._dispatch import unary as _un
from ._tensor import Tensor
from .ops import conversion as C
from .ops import elementwise as E
from .ops import linalg as L
from .ops import pointwise_api as P
from .ops import reductions as R
from .ops import views as V


def _bind(name, fn):
    setattr(Tensor, name, fn)


# -- operators (the hot path: no extra Python layers for the common cases) ---------------------------
_BOOL = __import__("jitorch._dtype", fromlist=["bool_"]).bool_


def _scalar_or_tensor(x):
    return x if isinstance(x, (Tensor, int, float, bool)) else P._t(x)


def __add__(self, other):
    return _bin(E.ADD, self, other if isinstance(other, (Tensor, int, float)) else _scalar_or_tensor(other))


def __radd__(self, other):
    return _ew(E.ADD, other, self)


def __sub__(self, other):
    if self._dtype is _BOOL or other is True or other is False or (
            other.__class__ is Tensor and other._dtype is _BOOL):
        P._check_bool_sub(self, other)
    return _bin(E.SUB, self, _scalar_or_tensor(other))


def __rsub__(self, other):
    P._check_bool_sub(self, other)
    return _ew(E.SUB, other, self)


def __mul__(self, other):
    return _bin(E.MUL, self, other if isinstance(other, (Tensor, int, float)) else _scalar_or_tensor(other))


def __rmul__(self, other):
    return _ew(E.MUL, other, self)


def __truediv__(self, other):
    return _bin(E.DIV, self, _scalar_or_tensor(other))


def __rtruediv__(self, other):
    return _ew(E.DIV, other, self)


def __floordiv__(self, other):
    return P.floor_divide(self, other)


def __rfloordiv__(self, other):
    return P.floor_divide(other, self)


def __mod__(self, other):
    return P.remainder(self, other)


def __rmod__(self, other):
    return P.remainder(other, self)


def __pow__(self, other):
    return P.pow(self, other)


def __rpow__(self, other):
    return _ew(E.POW, other, self)


def __matmul__(self, other):
    return L.matmul(self, other)


def __rmatmul__(self, other):
    return L.matmul(P._t(other), self)


def __neg__(self):
    return P.neg(self)


def __pos__(self):
    return self


def __abs__(self):
    return _ew(E.ABS, self)


def __invert__(self):
    from . import _dtype as D
    if self.dtype.is_floating_point:
        raise TypeError("ufunc 'invert' not supported for the input types: bitwise_not is only for integer and bool tensors")
    return _ew(E.BITWISE_NOT, self) if self.dtype is not D.bool_ else _ew(E.LOGICAL_NOT, self)


for _name, _fn in list(globals().items()):
    if _name.startswith("__") and _name.endswith("__") and callable(_fn) and _name not in (
            "__builtins__", "__loader__", "__spec__", "__import__", "__build_class__"):
        if getattr(_fn, "__module__", None) == __name__:
            _bind(_name, _fn)


def _cmp(op):
    return lambda self, other: _bin(op, self, _scalar_or_tensor(other))


for _name, _op in (("__eq__", E.EQ), ("__ne__", E.NE), ("__lt__", E.LT), ("__le__", E.LE), ("__gt__", E.GT),
                   ("__ge__", E.GE), ("__and__", E.BITWISE_AND), ("__or__", E.BITWISE_OR),
                   ("__xor__", E.BITWISE_XOR), ("__lshift__", E.BITWISE_LEFT_SHIFT),
                   ("__rshift__", E.BITWISE_RIGHT_SHIFT)):
    _bind(_name, _cmp(_op))
for _name, _op in (("__rand__", E.BITWISE_AND), ("__ror__", E.BITWISE_OR), ("__rxor__", E.BITWISE_XOR)):
    _bind(_name, (lambda op: lambda self, other: _ew(op, other, self))(_op))
Tensor.__hash__ = object.__hash__  # identity hash (defining __eq__ removed it)


# -- in-place operators ------------------------------------------------------------------------------------
def _inplace(op, pre=None):
    def fn(self, other, *rest):
        if pre is not None:
            other = pre(other, *rest)
        return _ew(op, self, _scalar_or_tensor(other), inplace=self)
    return fn


def _scaled(other, alpha=1):
    return other if alpha == 1 else other * alpha


def _add_(self, other, *, alpha=1):
    return _ew(E.ADD, self, _scalar_or_tensor(_scaled(other, alpha)), inplace=self)


def _sub_(self, other, *, alpha=1):
    return _ew(E.SUB, self, _scalar_or_tensor(_scaled(other, alpha)), inplace=self)


_bind("add_", _add_)
_bind("sub_", _sub_)
_bind("subtract_", _sub_)
_bind("__iadd__", lambda self, other: _ew(E.ADD, self, _scalar_or_tensor(other), inplace=self))
_bind("__isub__", lambda self, other: _ew(E.SUB, self, _scalar_or_tensor(other), inplace=self))
for _name, _op in (("mul_", E.MUL), ("__imul__", E.MUL), ("multiply_", E.MUL), ("div_", E.DIV),
                   ("__itruediv__", E.DIV), ("divide_", E.DIV), ("true_divide_", E.DIV), ("pow_", E.POW),
                   ("__ipow__", E.POW), ("remainder_", E.REMAINDER), ("__imod__", E.REMAINDER),
                   ("fmod_", E.FMOD), ("floor_divide_", E.FLOOR_DIVIDE), ("__ifloordiv__", E.FLOOR_DIVIDE),
                   ("maximum_", E.MAXIMUM), ("minimum_", E.MINIMUM), ("atan2_", E.ATAN2),
                   ("bitwise_and_", E.BITWISE_AND), ("__iand__", E.BITWISE_AND), ("bitwise_or_", E.BITWISE_OR),
                   ("__ior__", E.BITWISE_OR), ("bitwise_xor_", E.BITWISE_XOR), ("__ixor__", E.BITWISE_XOR),
                   ("logical_and_", E.LOGICAL_AND), ("logical_or_", E.LOGICAL_OR),
                   ("eq_", E.EQ), ("ne_", E.NE), ("lt_", E.LT), ("le_", E.LE), ("gt_", E.GT), ("ge_", E.GE)):
    _bind(_name, _inplace(_op))

_UNARY = ("abs", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sqrt", "rsqrt", "reciprocal",
          "square", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "atanh",
          "sigmoid", "relu", "erf", "erfc", "sign", "frac", "floor", "ceil", "trunc", "neg", "logical_not",
          "bitwise_not")
for _name in _UNARY:
    _f = getattr(P, _name)
    _bind(_name, (lambda f: lambda self: f(self))(_f))
    _op = getattr(E, _name.upper())
    _bind(_name + "_", (lambda op: lambda self: _ew(op, self, inplace=self))(_op))
for _name in ("isnan", "isinf", "isfinite", "isposinf", "isneginf", "signbit", "silu"):
    _bind(_name, (lambda f: lambda self: f(self))(getattr(P, _name)))
_bind("negative", Tensor.neg)
_bind("negative_", Tensor.neg_)
_bind("absolute", Tensor.abs)
_bind("absolute_", Tensor.abs_)
_bind("fix", Tensor.trunc)
_bind("fix_", Tensor.trunc_)
_bind("arcsin", Tensor.asin)
_bind("arccos", Tensor.acos)
_bind("arctan", Tensor.atan)
_bind("sgn", Tensor.sign)
_bind("round", lambda self, *, decimals=0: P.round(self, decimals=decimals))
_bind("round_", lambda self, *, decimals=0: _ew(E.ROUND, self, inplace=self) if decimals == 0 else
      self.copy_(P.round(self, decimals=decimals)))

for _name in ("add", "sub", "subtract", "mul", "multiply", "div", "divide", "true_divide", "floor_divide",
              "remainder", "fmod", "pow", "float_power", "atan2", "arctan2", "maximum", "minimum", "fmax", "fmin",
              "eq", "ne", "lt", "le", "gt", "ge", "greater", "greater_equal", "less", "less_equal", "not_equal",
              "logical_and", "logical_or", "logical_xor", "bitwise_and", "bitwise_or", "bitwise_xor",
              "bitwise_left_shift", "bitwise_right_shift", "lerp", "addcmul", "addcdiv", "clamp", "clip",
              "clamp_min", "clamp_max", "nan_to_num", "equal", "allclose", "isclose"):
    _bind(_name, getattr(P, _name))


def _clamp_(self, min=None, max=None):
    return self.copy_(P.clamp(self, min, max)) if self._requires_grad else _clamp_inplace(self, min, max)


def _clamp_inplace(self, min, max):
    r = P.clamp(self, min, max)
    self._data[...] = r._data
    self._version[0] += 1
    return self


_bind("where", lambda self, condition, other: P.where(condition, self, other))
_bind("clamp_", _clamp_)
_bind("clip_", _clamp_)
_bind("lerp_", lambda self, end, weight: _ew(E.LERP, self, P._t(end), P._t(weight), inplace=self))
_bind("addcmul_", lambda self, t1, t2, *, value=1: _ew(E.ADDCMUL, self, t1, t2, value, inplace=self))
_bind("addcdiv_", lambda self, t1, t2, *, value=1: _ew(E.ADDCDIV, self, t1, t2, value, inplace=self))
_bind("nan_to_num_", lambda self, nan=0.0, posinf=None, neginf=None: self.copy_(P.nan_to_num(self, nan, posinf, neginf)))

# -- reductions ------------------------------------------------------------------------------------------
for _name in ("sum", "prod", "mean", "amax", "amin", "all", "any", "var", "std", "var_mean", "std_mean",
              "logsumexp", "softmax", "log_softmax", "norm", "sum_to_size"):
    _bind(_name, getattr(R, _name))

# -- views and shape ---------------------------------------------------------------------------------------
for _name in ("view", "reshape", "flatten", "unflatten", "permute", "transpose", "swapaxes", "swapdims", "t",
              "adjoint", "movedim", "moveaxis", "squeeze", "unsqueeze", "expand", "expand_as", "broadcast_to",
              "narrow", "select", "unfold", "as_strided", "diagonal", "contiguous"):
    _bind(_name, getattr(V, _name))
_bind("view_as", lambda self, other: V.view(self, tuple(other.shape)))
_bind("reshape_as", lambda self, other: V.reshape(self, tuple(other.shape)))
_bind("squeeze_", lambda self, dim=None: self.set_(V.squeeze(self, dim)))
_bind("unsqueeze_", lambda self, dim: self.set_(V.unsqueeze(self, dim)))
_bind("t_", lambda self: self.set_(V.t(self)))
_bind("transpose_", lambda self, d0, d1: self.set_(V.transpose(self, d0, d1)))
Tensor.T = property(lambda self: V.permute(self, tuple(reversed(range(self.ndim)))))
Tensor.mT = property(lambda self: V.transpose(self, -2, -1))
Tensor.H = property(lambda self: V.t(self) if self.ndim == 2 else self)
Tensor.mH = Tensor.mT

# -- linear algebra ----------------------------------------------------------------------------------------
for _name in ("matmul", "mm", "bmm", "mv", "dot", "inner", "vdot", "outer", "ger", "addmm", "addmv", "baddbmm",
              "addbmm"):
    _bind(_name, getattr(L, _name))

# -- conversion --------------------------------------------------------------------------------------------
for _name in ("to", "clone", "copy_", "fill_", "zero_", "set_"):
    _bind(_name, getattr(C, _name))


def _as(dt_name):
    from . import _dtype as D
    dt = getattr(D, dt_name)
    return lambda self, memory_format=None: C.to(self, dt)


for _name, _dt in (("float", "float32"), ("double", "float64"), ("half", "float16"), ("bfloat16", "bfloat16"),
                   ("long", "int64"), ("int", "int32"), ("short", "int16"), ("char", "int8"), ("byte", "uint8"),
                   ("bool", "bool_")):
    _bind(_name, _as(_dt))
_bind("type_as", lambda self, other: C.to(self, other.dtype))
_bind("cpu", lambda self, memory_format=None: C.to(self, "cpu"))
# new_* tensors take this tensor's dtype and device unless told otherwise, as in torch
_bind("new_tensor", lambda self, data, dtype=None, device=None, requires_grad=False: __import__(
    "jitorch").tensor(data, dtype=dtype or self.dtype, device=device if device is not None else self._device,
                      requires_grad=requires_grad))


def _new(kind):
    def fn(self, *size, dtype=None, device=None, requires_grad=False):
        import jitorch as J
        return getattr(J, kind)(*size, dtype=dtype or self.dtype,
                                device=device if device is not None else self._device, requires_grad=requires_grad)
    return fn


_bind("new_zeros", _new("zeros"))
_bind("new_ones", _new("ones"))
_bind("new_empty", _new("empty"))
_bind("new_full", lambda self, size, fill_value, *, dtype=None, device=None, requires_grad=False: __import__(
    "jitorch").full(size, fill_value, dtype=dtype or self.dtype, device=device if device is not None else self._device,
                    requires_grad=requires_grad))
