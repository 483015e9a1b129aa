"""The autograd pieces of an FSDP unit's forward and backward.

``UnshardParams`` turns the local shard into the full parameters (views of
the gathered vector); its backward receives their gradients once the unit's
whole backward is done, reduce-scatters them (average over ranks) into the
shard's gradient and frees the full vector. ``PreBackward`` is an identity on
the unit's outputs whose backward runs before any of the unit's backward ops
and gathers the parameters again if they were freed after forward.
"""
from __future__ import annotations

from ..._tensor import wrap
from ...autograd.function import Function


class UnshardParams(Function):
    @staticmethod
    def forward(ctx, flat_param, handle):
        ctx.handle = handle
        return tuple(wrap(v, flat_param.dtype) for v in handle.full_views())

    @staticmethod
    def backward(ctx, *grads):
        handle = ctx.handle
        shard_grad = handle.reduce_scatter_grads(grads)
        handle.pending_backward -= 1
        if handle.pending_backward <= 0:
            handle.pending_backward = 0
            handle.reshard()
        return wrap(shard_grad, handle.flat_param.dtype), None


class PreBackward(Function):
    @staticmethod
    def forward(ctx, handle, *tensors):
        ctx.handle = handle
        ctx.set_materialize_grads(False)
        return tensors

    @staticmethod
    def backward(ctx, *grads):
        ctx.handle.unshard_if_freed()
        return (None, *grads)


def rebuild_outputs(obj, handle):
    """``obj`` with every tensor that requires grad routed through one ``PreBackward``."""
    from ..._tensor import Tensor
    found = []

    def collect(o):
        if isinstance(o, Tensor):
            if o.requires_grad:
                found.append(o)
        elif isinstance(o, (list, tuple)):
            for x in o:
                collect(x)
        elif isinstance(o, dict):
            for x in o.values():
                collect(x)
    collect(obj)
    if not found:
        return obj, False
    routed = PreBackward.apply(handle, *found)
    routed = routed if isinstance(routed, tuple) else (routed,)
    swap = {id(a): b for a, b in zip(found, routed)}

    def rebuild(o):
        if isinstance(o, Tensor):
            return swap.get(id(o), o)
        if isinstance(o, tuple) and hasattr(o, "_fields"):
            return type(o)(*(rebuild(x) for x in o))
        if isinstance(o, (list, tuple)):
            return type(o)(rebuild(x) for x in o)
        if isinstance(o, dict):
            return type(o)((k, rebuild(v)) for k, v in o.items())
        return o
    return rebuild(obj), True
