"""``jitorch.autograd.Variable``: torch's legacy name for a tensor, and the handle on the autograd engine.

Code written for torch reaches the engine as ``Variable._execution_engine`` (DDP, FSDP and activation
checkpointing queue end-of-backward work with ``queue_callback``), so the same spelling works here.
"""
from __future__ import annotations

from . import engine


class ImperativeEngine:
    """The engine object torch exposes as ``Variable._execution_engine``."""

    def queue_callback(self, callback) -> None:
        """Run ``callback()`` after the backward pass now running; outside a backward pass this raises."""
        engine.queue_callback(callback)

    def is_checkpoint_valid(self) -> bool:
        return engine.is_checkpoint_valid()

    def run_backward(self, tensors, grad_tensors, keep_graph, create_graph, inputs=(), allow_unreachable=False,
                     accumulate_grad=True):
        """torch's low-level entry: accumulate into ``.grad`` or return the gradients of ``inputs``."""
        inputs = tuple(inputs) if inputs else None
        res = engine.run_backward(tuple(tensors), tuple(grad_tensors), keep_graph, create_graph, inputs=inputs,
                                  accumulate=accumulate_grad, allow_unused=allow_unreachable)
        return () if res is None else res


class _VariableMeta(type):
    def __instancecheck__(cls, other) -> bool:
        from .._tensor import Tensor
        return isinstance(other, Tensor)


class Variable(metaclass=_VariableMeta):
    """``Variable(t)`` is ``t.detach()`` (with ``requires_grad`` if asked): every tensor is a Variable."""

    _execution_engine = ImperativeEngine()

    def __new__(cls, data=None, requires_grad: bool = False, volatile: bool = False):
        import jitorch
        t = jitorch.empty(0) if data is None else data.detach()
        if requires_grad:
            t.requires_grad_(True)
        return t
