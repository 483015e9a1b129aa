"""The recorded history: backward nodes, saved tensors and hooks.

Every differentiable op applied to tensors that require grad creates one
:class:`OpNode`.  Its derivative rule lives with the op in the registry and is
written with jitorch ops, so running it under ``create_graph=True`` records a
graph of its own (higher-order gradients) and the compiler can trace it.
"""
from __future__ import annotations

import itertools
import weakref

from . import grad_mode

_sequence = itertools.count()
_METADATA: dict = {}


class RemovableHandle:
    """Returned by ``register_hook``; ``remove()`` takes the hook out again."""

    _ids = itertools.count()

    def __init__(self, hooks: dict):
        # a plain strong reference: built-in dicts cannot be weakly referenced, and the
        # handle keeps alive only the (small) hook table, never the tensor or node
        self._hooks = hooks
        self.id = next(RemovableHandle._ids)

    def remove(self) -> None:
        if self._hooks is not None:
            self._hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def _freed_error():
    return RuntimeError(
        "Trying to backward through the graph a second time (or directly access saved tensors "
        "after they have already been freed). Saved intermediate values of the graph are freed "
        "when you call .backward() or autograd.grad(). Specify retain_graph=True if you need to "
        "backward through the graph a second time or if you need to access saved tensors after "
        "calling backward."
    )


class SavedTensor:
    """A tensor kept for backward, with the version it had when saved.

    An op's own output is stored without its grad_fn (that would be a
    reference cycle output -> node -> output) and re-attached on unpack.
    """

    __slots__ = ("tensor", "version", "is_output", "output_nr")

    def __init__(self, t, is_output: bool = False, output_nr: int = 0):
        self.version = t._version[0]
        self.is_output = is_output
        self.output_nr = output_nr
        self.tensor = t._alias_without_history() if is_output else t

    def unpack(self, node):
        t = self.tensor
        if t is None:
            raise _freed_error()
        if t._version[0] != self.version:
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by an "
                f"inplace operation: [{t._type_name()} {list(t.shape)}], which is "
                f"{'output ' + str(self.output_nr) + ' of ' + node.name() if self.is_output else 'an input of ' + node.name()}, "
                f"is at version {t._version[0]}; expected version {self.version} instead. Hint: "
                "the operation that failed was an in-place change of a tensor needed for backward."
            )
        if self.is_output and grad_mode.is_grad_enabled():
            return t._alias_with_history(node, self.output_nr)
        return t


class Node:
    """A function in the backward graph (``tensor.grad_fn``)."""

    # hooks are rare: they live in one lazily created dict (``_ext``) so that
    # creating a node on the eager hot path sets as few attributes as possible
    __slots__ = ("next_functions", "_ext", "seq", "__weakref__")

    def __init__(self, next_functions=()):
        self.next_functions = next_functions
        self._ext = None
        self.seq = next(_sequence)

    def _extras(self) -> dict:
        if self._ext is None:
            self._ext = {"pre_hooks": None, "hooks": None, "tensor_pre_hooks": None, "retain": None}
        return self._ext

    @property
    def _pre_hooks(self):
        return self._ext["pre_hooks"] if self._ext else None

    @property
    def _hooks(self):
        return self._ext["hooks"] if self._ext else None

    @property
    def _tensor_pre_hooks(self):
        return self._ext["tensor_pre_hooks"] if self._ext else None

    @property
    def _retain(self):
        return self._ext["retain"] if self._ext else None

    @property
    def metadata(self) -> dict:
        return _METADATA.setdefault(id(self), {})

    def name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        return f"<{self.name()} object at {hex(id(self))}>"

    def __call__(self, *grads):
        return self.apply(list(grads))

    def apply(self, grads):  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def release(self) -> None:
        """Free saved tensors after a backward without retain_graph."""

    def register_hook(self, fn):
        """``fn(grad_inputs, grad_outputs)`` runs after this node; may return new grad_inputs."""
        ext = self._extras()
        if ext["hooks"] is None:
            ext["hooks"] = {}
        h = RemovableHandle(ext["hooks"])
        ext["hooks"][h.id] = fn
        return h

    def register_prehook(self, fn):
        """``fn(grad_outputs)`` runs before this node; may return new grad_outputs."""
        ext = self._extras()
        if ext["pre_hooks"] is None:
            ext["pre_hooks"] = {}
        h = RemovableHandle(ext["pre_hooks"])
        ext["pre_hooks"][h.id] = fn
        return h

    def _add_tensor_hook(self, output_nr: int, fn):
        ext = self._extras()
        if ext["tensor_pre_hooks"] is None:
            ext["tensor_pre_hooks"] = {}
        hooks = ext["tensor_pre_hooks"].setdefault(output_nr, {})
        h = RemovableHandle(hooks)
        hooks[h.id] = fn
        return h

    def _retain_output(self, output_nr: int, tensor) -> None:
        ext = self._extras()
        if ext["retain"] is None:
            ext["retain"] = {}
        ext["retain"][output_nr] = weakref.ref(tensor)


class OpNode(Node):
    """Backward of one registry op: calls the op's derivative rule."""

    __slots__ = ("op", "attrs", "saved", "in_meta", "needs_input_grad", "n_outputs", "out_meta")

    def __init__(self, op, next_functions, needs_input_grad, attrs, in_meta):
        self.next_functions = next_functions
        self._ext = None
        self.seq = next(_sequence)
        self.op = op
        self.attrs = attrs
        self.needs_input_grad = needs_input_grad
        self.in_meta = in_meta  # (shape, dtype) of each input, to reduce broadcast grads
        self.saved = ()
        self.n_outputs = 1
        self.out_meta = None

    def name(self) -> str:
        return self.op.node_name

    def saved_values(self):
        if self.saved is None:
            raise _freed_error()
        return [s.unpack(self) if s is not None else None for s in self.saved]

    def apply(self, grads):
        if self.saved is None:
            raise _freed_error()
        g = grads[0] if self.n_outputs == 1 else grads
        return self.op.backward(self, g)

    def release(self) -> None:
        # a node that saved nothing (add, sum, views) can run again, as in torch
        if self.saved:
            self.saved = None


class AccumulateGrad(Node):
    """Terminal node of a leaf tensor: adds the incoming gradient to ``.grad``."""

    __slots__ = ("variable",)

    def __init__(self, variable):
        super().__init__(())
        self.variable = variable

    def apply(self, grads):
        return ()


def grad_accumulator(t):
    """The (unique) AccumulateGrad node of a leaf tensor."""
    ref = t._grad_acc
    node = ref() if ref is not None else None
    if node is None:
        node = AccumulateGrad(t)
        t._grad_acc = weakref.ref(node)
    return node


def edge_of(t):
    """Where a gradient for tensor ``t`` flows: (node, output_nr) or None."""
    if not t._requires_grad:
        return None
    fn = t._grad_fn
    if fn is not None:
        return (fn, t._output_nr)
    return (grad_accumulator(t), 0)
