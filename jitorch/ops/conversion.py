"""Dtype/device conversion and copies: ``to``, ``clone``, ``copy_``, ``fill_``."""
from __future__ import annotations

import numpy as np

from .. import _dispatch
from .. import _dtype as D
from .._dispatch import _check_inplace, _record, _snapshot, _state, elementwise
from .._tensor import Tensor, wrap
from ..runtime import cpu
from ..runtime.device import Device, canonical
from .registry import elementwise as ew

TO_COPY = ew("to_copy", 1, "{0}", lambda c, g: (g,), saves="none", node_name="ToCopyBackward0")
CLONE = ew("clone", 1, "{0}", lambda c, g: (g,), saves="none")
# history of ``dst.copy_(src)``: the overwritten value gets a zero gradient, src gets the gradient
COPY_INTO = ew("copy_into", 2, "{1}", lambda c, g: (g * 0, g), saves="none", node_name="CopyBackwards")


def _cast(x: Tensor, dt: D.dtype) -> Tensor:
    out = cpu.run_elementwise(TO_COPY, [x._data], x.dtype, dt.numpy_dtype, x._data.shape)
    t = wrap(out, dt, x.device)
    if _dispatch._tracer is not None:
        _dispatch._tracer.on_elementwise(TO_COPY, (x,), t, x.dtype)
    if _state.grad_enabled and x._requires_grad and dt.is_floating_point:
        _record(TO_COPY, (x,), (t,), None)
    return t


def _parse_to_args(args, kwargs):
    dtype = kwargs.pop("dtype", None)
    device = kwargs.pop("device", None)
    copy = kwargs.pop("copy", False)
    kwargs.pop("non_blocking", None)
    kwargs.pop("memory_format", None)
    for a in args:
        if isinstance(a, Tensor):  # first: `in` on a tensor would compare elementwise
            dtype, device = a.dtype, a.device
        elif isinstance(a, D.dtype) or a is float or a is int or a is bool:
            dtype = a
        elif isinstance(a, (str, Device)):
            device = a
        elif isinstance(a, bool):
            copy = a
        elif a is None:
            continue
        else:
            raise TypeError(f"to() received an invalid combination of arguments: {a!r}")
    if kwargs:
        raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
    return dtype, device, copy


def to(input: Tensor, *args, **kwargs) -> Tensor:
    """Convert dtype and/or device; returns ``input`` itself when nothing changes."""
    dtype, device, copy = _parse_to_args(args, dict(kwargs))
    if device is not None:
        dev = canonical(device)
        if dev != input.device:
            from ..runtime.device import transfer
            input = transfer(input, dev)
            copy = False
    dt = D.to_dtype(dtype) if dtype is not None else input.dtype
    if dt is input.dtype:
        return clone(input) if copy else input
    return _cast(input, dt)


def clone(input: Tensor, *, memory_format=None) -> Tensor:
    """A copy with its own storage (differentiable)."""
    return elementwise(CLONE, input)


def copy_(self: Tensor, src, non_blocking: bool = False) -> Tensor:
    """Copy ``src`` (broadcast, any dtype) into ``self``."""
    if not isinstance(src, Tensor):
        from .creation import tensor
        src = tensor(src)
    try:
        np.broadcast_shapes(src._data.shape, self._data.shape)
        if np.broadcast_shapes(src._data.shape, self._data.shape) != self._data.shape:
            raise ValueError
    except ValueError:
        raise RuntimeError(f"The size of tensor a ({self.shape[-1] if self.ndim else 1}) must match the size of "
                           f"tensor b ({src.shape[-1] if src.ndim else 1}) at non-singleton dimension "
                           f"{self.ndim - 1 if self.ndim else 0}: cannot copy {list(src.shape)} into "
                           f"{list(self.shape)}") from None
    needs = _state.grad_enabled and (src._requires_grad or self._requires_grad)
    if needs:
        _check_inplace(self)
        old = _snapshot(self)
    if _dispatch._tracer is not None:
        _dispatch._tracer.on_copy(self, src)
    cpu.run_elementwise(TO_COPY, [src._data], src.dtype, self._dtype.numpy_dtype, self._data.shape,
                        out=self._data)
    self._version[0] += 1
    if needs and self._dtype.is_floating_point:
        _record(COPY_INTO, (old, src), (self,), None, in_place=True)
    return self


def fill_(self: Tensor, value) -> Tensor:
    """Fill with a scalar (or a one-element tensor) in place."""
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise RuntimeError(f"fill_ only supports 0-dimension value tensor but got tensor with {value.ndim} dimensions.")
        return copy_(self, value.expand(self.shape))
    if _state.grad_enabled:
        _check_inplace(self)
    from .creation import full
    src = full((), value, dtype=self._dtype)
    if _dispatch._tracer is not None:
        _dispatch._tracer.on_copy(self, src)
    cpu.run_elementwise(TO_COPY, [src._data], src.dtype, self._dtype.numpy_dtype, self._data.shape,
                        out=self._data)
    self._version[0] += 1
    return self


def zero_(self: Tensor) -> Tensor:
    return fill_(self, 0)


def set_(self: Tensor, source: Tensor) -> Tensor:
    self._data = source._data
    self._dtype = source._dtype
    self._version[0] += 1
    return self
