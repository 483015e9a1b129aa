"""User-defined differentiable functions (``jitorch.autograd.Function``)."""
from __future__ import annotations

import functools

from . import grad_mode
from .graph import Node, SavedTensor, edge_of


class FunctionCtx:
    """The ``ctx`` passed to ``forward`` and ``backward`` of a custom Function."""

    def save_for_backward(self, *tensors) -> None:
        self._to_save = tensors

    def mark_non_differentiable(self, *tensors) -> None:
        self._non_diff = {id(t) for t in tensors}

    def mark_dirty(self, *tensors) -> None:
        self._dirty = {id(t) for t in tensors}

    def set_materialize_grads(self, value: bool) -> None:
        self._materialize = value


class BackwardCFunction(Node, FunctionCtx):
    """The graph node of one call of a custom Function; it is also its ``ctx``."""

    __slots__ = ("_cls", "_saved", "_to_save", "_non_diff", "_dirty", "_materialize", "needs_input_grad",
                 "n_outputs", "_out_meta", "__dict__")

    def __init__(self, cls):
        Node.__init__(self)
        self._cls = cls
        self._saved = None
        self._to_save = ()
        self._non_diff = set()
        self._dirty = set()
        self._materialize = True
        self.n_outputs = 1

    def name(self) -> str:
        return f"{self._cls.__name__}Backward"

    @property
    def saved_tensors(self):
        if self._saved is None:
            raise RuntimeError("Trying to backward through the graph a second time (or directly access saved "
                               "tensors after they have already been freed). Specify retain_graph=True if you "
                               "need to backward through the graph a second time.")
        return tuple(s.unpack(self) if isinstance(s, SavedTensor) else s for s in self._saved)

    def apply(self, grads):
        import jitorch
        if self._materialize:
            grads = [g if g is not None else jitorch.zeros(shape, dtype=dt, device=dev)
                     for g, (shape, dt, dev) in zip(grads, self._out_meta)]
        res = self._cls.backward(self, *grads)
        if not isinstance(res, tuple):
            res = (res,)
        n_in = len(self.next_functions)
        if len(res) < n_in:
            raise RuntimeError(f"function {self.name()} returned an incorrect number of gradients (expected "
                               f"{n_in}, got {len(res)})")
        res = res[:n_in] if all(r is None for r in res[n_in:]) else res
        if len(res) != n_in:
            raise RuntimeError(f"function {self.name()} returned an incorrect number of gradients (expected "
                               f"{n_in}, got {len(res)})")
        out = []
        for r, nxt in zip(res, self.next_functions):
            if r is not None and nxt is None:
                r = None
            out.append(r)
        return out

    def release(self) -> None:
        self._saved = None


class FunctionMeta(type):
    pass


class Function(metaclass=FunctionMeta):
    """Subclass with static ``forward(ctx, ...)`` and ``backward(ctx, *grads)``; call ``.apply``."""

    @staticmethod
    def forward(ctx, *args, **kwargs):  # pragma: no cover - defined by subclasses
        raise NotImplementedError("You must implement the forward function for custom autograd.Function.")

    @staticmethod
    def backward(ctx, *grad_outputs):  # pragma: no cover - defined by subclasses
        raise NotImplementedError("You must implement either the backward or vjp method for your custom "
                                  "autograd.Function to use it with backward mode AD.")

    vjp = backward

    @classmethod
    def apply(cls, *args, **kwargs):
        from .._tensor import Tensor, _alias
        ctx = BackwardCFunction(cls)
        tensor_args = [a if isinstance(a, Tensor) else None for a in args]
        ctx.needs_input_grad = tuple(t is not None and t._requires_grad for t in tensor_args)
        with grad_mode.no_grad():
            outputs = cls.forward(ctx, *args, **kwargs)
        single = not isinstance(outputs, tuple)
        outs = (outputs,) if single else outputs
        record = grad_mode.is_grad_enabled() and any(ctx.needs_input_grad)
        if not record:
            return outputs
        ctx.next_functions = tuple(edge_of(t) if t is not None else None for t in tensor_args)
        ctx.n_outputs = len(outs)
        ctx._out_meta = tuple((tuple(o.shape), o.dtype, o.device) if isinstance(o, Tensor) else ((), None, None)
                              for o in outs)
        new_outs = []
        for k, o in enumerate(outs):
            if isinstance(o, Tensor):
                if any(o is a for a in tensor_args if a is not None) and id(o) not in ctx._dirty:
                    o = _alias(o)  # an input returned as is becomes a view with this node as history
                if id(o) not in ctx._non_diff and o.dtype.is_floating_point:
                    o._grad_fn = ctx
                    o._requires_grad = True
                    o._output_nr = k
            new_outs.append(o)
        ctx._saved = tuple(SavedTensor(t, is_output=any(t is o for o in new_outs)) if isinstance(t, Tensor) else t
                           for t in ctx._to_save)
        return new_outs[0] if single else tuple(new_outs)


def once_differentiable(fn):
    @functools.wraps(fn)
    def wrapper(ctx, *args):
        with grad_mode.no_grad():
            return fn(ctx, *args)
    return wrapper
