"""Dtype/device conversion and copies: ``to``, ``clone``, ``copy_``, ``fill_``.

On the CPU the copies are the elementwise ops below run by the generated CPU
kernels; on CUDA they are the strided copy/cast kernel of
``runtime/cuda/copy.py`` (one kernel, any layout, any dtype pair).  Moving
between devices is :func:`transfer`, differentiable like torch's ``to``.
"""
from __future__ import annotations

import numpy as np

from .. import _dispatch
from .. import _dtype as D
from .._dispatch import _check_inplace, _record, _snapshot, _state, elementwise
from .._tensor import Tensor, wrap
from ..runtime import cpu
from ..runtime.device import CPU, Device, canonical
from .registry import elementwise as ew
from .registry import kernel_op

TO_COPY = ew("to_copy", 1, "{0}", lambda c, g: (g,), saves="none", node_name="ToCopyBackward0")
CLONE = ew("clone", 1, "{0}", lambda c, g: (g,), saves="none")
# history of ``dst.copy_(src)``: the overwritten value gets a zero gradient, src gets the gradient
COPY_INTO = ew("copy_into", 2, "{1}", lambda c, g: (g * 0, g), saves="none", node_name="CopyBackwards")
# a copy to another device: the gradient goes back to the source device (never run through dispatch)
TO_DEVICE = kernel_op("to_device", vjp=lambda c, g: (transfer(g, c.attrs["device"]),), saves="none",
                      node_name="ToCopyBackward0")


def _copy_as(op, x: Tensor, dt: D.dtype) -> Tensor:
    """A new contiguous tensor with ``x``'s values converted to ``dt``, recorded as ``op``."""
    tracer = _dispatch._tracer
    if tracer is not None and tracer.lazy:  # a resumed compiled graph defers the copy
        r = tracer.lazy_elementwise(op, (x,), None, None)
        if r is not NotImplemented:
            return r
    if x._device is CPU:
        out = cpu.run_elementwise(op, [x._data], x.dtype, dt.numpy_dtype, x._data.shape)
    else:
        from ..runtime.cuda import copy as cuda_copy
        out = cuda_copy.cast(x._data, dt.numpy_dtype)
    t = wrap(out, dt, x._device)
    if _dispatch._tracer is not None:
        _dispatch._tracer.on_elementwise(op, (x,), t, x.dtype)
    if _state.grad_enabled and x._requires_grad and dt.is_floating_point and op.differentiable:
        _record(op, (x,), (t,), None)
    return t


def _cast(x: Tensor, dt: D.dtype) -> Tensor:
    return _copy_as(TO_COPY, x, dt)


def transfer(x: Tensor, dev: Device, non_blocking: bool = False) -> Tensor:
    """A copy of ``x`` on device ``dev`` (canonical), same dtype, contiguous, with history.
    ``non_blocking``: asynchronous on the current CUDA stream from/into pinned host memory (as torch)."""
    src = x._device
    if dev is src:
        return x
    if _dispatch._tracer is not None:
        _dispatch._tracer.record_break(f"copy from {src} to {dev}", "device transfer")
    if src is CPU:
        from ..runtime.cuda import array
        arr = array.from_host(x._data, non_blocking)
    elif dev is CPU:
        arr = x._data.to_host(non_blocking)
    else:
        raise NotImplementedError(f"copies from {src} to {dev} are not supported")
    t = wrap(arr, x._dtype, dev)
    if _state.grad_enabled and x._requires_grad:
        _record(TO_DEVICE, (x,), (t,), {"device": src})
    return t


def _parse_to_args(args, kwargs):
    dtype = kwargs.pop("dtype", None)
    device = kwargs.pop("device", None)
    copy = kwargs.pop("copy", False)
    kwargs.pop("non_blocking", None)
    kwargs.pop("memory_format", None)
    flags = []  # positional bools: non_blocking, then copy
    for a in args:
        if isinstance(a, Tensor):  # first: `in` on a tensor would compare elementwise
            dtype, device = a.dtype, a.device
        elif isinstance(a, D.dtype) or a is float or a is int or a is bool:
            dtype = a
        elif isinstance(a, bool):
            flags.append(a)
        elif isinstance(a, (str, Device, int)):  # an int is a CUDA device index, as in torch
            device = a
        elif a is None:
            continue
        else:
            raise TypeError(f"to() received an invalid combination of arguments: {a!r}")
    if kwargs:
        raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
    if len(flags) > 1:
        copy = copy or flags[1]
    return dtype, device, copy


def _non_blocking_arg(args, kwargs) -> bool:
    """``to()``'s ``non_blocking``: the keyword, or the first positional bool."""
    return bool(kwargs.get("non_blocking", False) or next((a for a in args if isinstance(a, bool)), False))


def to(input: Tensor, *args, **kwargs) -> Tensor:
    """Convert dtype and/or device; returns ``input`` itself when nothing changes.  ``non_blocking``: an
    asynchronous copy on the current CUDA stream from or into pinned host memory, as in torch."""
    dtype, device, copy = _parse_to_args(args, dict(kwargs))
    if device is not None:
        dev = canonical(device)
        if dev is not input._device:
            input = transfer(input, dev, _non_blocking_arg(args, kwargs))
            copy = False
    dt = D.to_dtype(dtype) if dtype is not None else input.dtype
    if dt is input.dtype:
        return clone(input) if copy else input
    return _cast(input, dt)


def clone(input: Tensor, *, memory_format=None) -> Tensor:
    """A copy with its own storage (differentiable)."""
    if input._device is not CPU:
        return _copy_as(CLONE, input, input._dtype)
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
    if src._device is not self._device:
        # across devices: move src first (differentiably, so its gradient goes back to its device)
        src = transfer(src, self._device, non_blocking)
    if _dispatch._tracer is not None:
        _dispatch._tracer.on_copy(self, src)
    _write(self, src)
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
    if self._dtype is D.bfloat16:  # the value goes through float32, as torch's bfloat16 conversion does
        src = wrap(D.to_storage(full((), value, dtype=D.float32)._data, D.bfloat16), D.bfloat16)
    else:
        src = full((), value, dtype=self._dtype)  # converts (and checks) value as the CPU path does
    if _dispatch._tracer is not None:
        _dispatch._tracer.on_copy(self, src)
    if self._device is not CPU:
        if not self._data.flags.writeable:
            raise _overlap_error()
        self._data.fill(src._data[()])
        self._version[0] += 1
        return self
    _write(self, src)
    return self


def _write(dst: Tensor, src: Tensor) -> None:
    """``dst[...] = src`` (same device; src broadcast and cast), bumping dst's version."""
    if dst._device is CPU:
        cpu.run_elementwise(TO_COPY, [src._data], src.dtype, dst._dtype.numpy_dtype, dst._data.shape,
                            out=dst._data)
    else:
        if not dst._data.flags.writeable:
            raise _overlap_error()
        from ..runtime.cuda import copy as cuda_copy
        cuda_copy.copy_into(dst._data, src._data)
    dst._version[0] += 1


def _overlap_error() -> RuntimeError:
    return RuntimeError(
        "unsupported operation: more than one element of the written-to tensor refers to a single memory "
        "location. Please clone() the tensor before performing the operation.")


def zero_(self: Tensor) -> Tensor:
    return fill_(self, 0)


def set_(self: Tensor, source: Tensor) -> Tensor:
    self._data = source._data
    self._dtype = source._dtype
    self._device = source._device
    self._version[0] += 1
    return self
