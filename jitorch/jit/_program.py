"""A traced graph with what it takes to call it: argument binding, shape checks, compiled executors.

The same object serves a fresh trace and a loaded file. Without autograd, a call
runs the graph through the compiler's executor (fused Numba kernels), built once
per batch size from the batch-generic template (see ``_shapes``). When a result
needs gradients, the graph is instead interpreted op by op through the eager
dispatcher, whose derivative rules give autograd for free; that interpreter is
itself wrapped in ``jitorch.compile``, so training a traced model runs compiled
forward and backward graphs too.
"""
from __future__ import annotations

import numpy as np

from .. import _dispatch
from .._tensor import Tensor, wrap
from ..autograd import grad_mode
from ..compiler.ir import Graph, Value
from . import _shapes
from ._capture import describe_type, flatten, rebuild


class Signature:
    """The traced call: parameter names, the structure of each argument, the function's name."""

    def __init__(self, name: str, params: list, specs: dict, n_positional: int):
        self.name = name  # "forward" for modules
        self.params = params  # argument names, positional ones first
        self.specs = specs  # name -> structure spec ("T",), ("tuple", [...]) ...
        self.n_positional = n_positional
        self.is_method = name == "forward"

    def declaration(self) -> str:
        return f"Declaration: {self.name}({', '.join(_spec_type(self.specs[p]) + ' ' + p for p in self.params)})"

    def bind(self, args: tuple, kwargs: dict) -> list:
        """The call's tensors in graph-input order; RuntimeError (as torch) when they don't fit."""
        extra = 1 if self.is_method else 0
        if len(args) > len(self.params):
            raise RuntimeError(f"{self.name}() expected at most {len(self.params) + extra} argument(s) but received "
                               f"{len(args) + len(kwargs) + extra} argument(s). {self.declaration()}")
        values = dict(zip(self.params, args))
        for k, v in kwargs.items():
            if k not in self.specs:
                raise RuntimeError(f"{self.name}() got an unexpected keyword argument '{k}'. {self.declaration()}")
            if k in values:
                raise RuntimeError(f"{self.name}() got multiple values for argument '{k}'. {self.declaration()}")
            values[k] = v
        leaves: list = []
        for p in self.params:
            if p not in values:
                raise RuntimeError(f"{self.name}() is missing value for argument '{p}'. {self.declaration()}")
            spec, got = self.specs[p], []
            try:
                same = flatten(values[p], got) == spec
            except TypeError:
                same = False
            if not same:
                raise RuntimeError(f"{self.name}() Expected a value of type '{_spec_type(spec)}' for argument "
                                   f"'{p}' but instead found type '{describe_type(values[p])}'. {self.declaration()}")
            leaves += got
        return leaves

    def leaf_names(self) -> list:
        names = []
        for p in self.params:
            n = _count(self.specs[p])
            names += [p] if self.specs[p] == ("T",) else [f"{p}_{j}" for j in range(n)]
        return names


def _spec_type(spec) -> str:
    tag = spec[0]
    if tag == "T":
        return "Tensor"
    if tag == "dict":
        inner = {_spec_type(s) for _, s in spec[1]}
        return f"Dict[str, {inner.pop() if len(inner) == 1 else 'Any'}]"
    inner = ", ".join(_spec_type(s) for s in spec[1])
    return f"Tuple[{inner}]" if tag == "tuple" else f"List[{inner}]"


def _count(spec) -> int:
    if spec[0] == "T":
        return 1
    return sum(_count(s[1] if spec[0] == "dict" else s) for s in spec[1])


class Program:
    """A batch-generic graph plus its call signature; builds and caches one executor per batch size."""

    def __init__(self, template: Graph, signature: Signature, out_spec, n_user: int, batch_inputs: list,
                 traced_batch: int | None, static_reason: str | None):
        self.template = template
        self.signature = signature
        self.out_spec = out_spec
        self.n_user = n_user  # the first n_user graph inputs are the call's tensors, the rest are weights
        self.batch_inputs = batch_inputs  # user inputs whose dim 0 is the batch size N
        self.traced_batch = traced_batch
        self.static_reason = static_reason  # why the graph only runs at its traced shapes (None: generic)
        self._executors: dict = {}
        self._graphs: dict = {}
        self._shapes_at: dict = {}  # batch size -> the input shapes a call must have
        self._leaf_names = signature.leaf_names()
        self._compiled_interpreter = None

    @property
    def batch_generic(self) -> bool:
        return self.static_reason is None and self.traced_batch is not None

    # -- checking a call --------------------------------------------------------------------------------
    def batch_size(self, leaves) -> int | None:
        """The batch size ``N`` of a call's tensors; RuntimeError naming the traced shape if they don't fit."""
        names = self._leaf_names
        n = None
        if self.batch_generic:
            first = self.batch_inputs[0]
            if leaves[first].ndim == 0:
                raise RuntimeError(self._shape_error(names[first], (), first))
            n = leaves[first].shape[0]
        shapes = self._shapes_at.get(n)
        if shapes is None:
            shapes = self._shapes_at[n] = [tuple(_shapes.evaluate(v.shape, n)) if n is not None else v.shape
                                           for v in self.template.inputs]
        for k, (t, v) in enumerate(zip(leaves, self.template.inputs)):
            if t.dtype is not v.dtype:
                raise RuntimeError(f"jitorch.jit: input '{names[k]}' has dtype {t.dtype}, but the trace was recorded "
                                   f"with dtype {v.dtype}; trace again with an input of that dtype")
            if t.shape != shapes[k]:
                raise RuntimeError(self._shape_error(names[k], tuple(t.shape), k))
        return n

    def _shape_error(self, name, got, k) -> str:
        traced = _shapes.evaluate(self.template.inputs[k].shape, self.traced_batch) \
            if self.traced_batch is not None else self.template.inputs[k].shape
        msg = f"jitorch.jit: input '{name}' has shape {list(got)}, but the trace was recorded with shape {list(traced)}"
        if self.batch_generic:
            return msg + " (only dim 0, the batch dimension, may differ, and by the same amount in every batched input)"
        if self.static_reason:
            return msg + f"; this trace only runs at its traced shapes because {self.static_reason}"
        return msg + "; this trace only runs at its traced shapes"

    # -- running ----------------------------------------------------------------------------------------
    def graph_at(self, n) -> Graph:
        g = self._graphs.get(n)
        if g is None:
            g = self._graphs[n] = _shapes.instantiate(self.template, n)
        return g

    def executor(self, n):
        ex = self._executors.get(n)
        if ex is None:
            from ..compiler.executor import Executor
            from ..compiler.passes import run_pipeline
            graph = run_pipeline(_shapes.instantiate(self.template, n))
            ex = self._executors[n] = Executor(graph)
            ex.copy_outputs = [v.kind == "const" for v in graph.outputs]  # never hand out a constant's memory
        return ex

    def __call__(self, leaves, weights):
        n = self.batch_size(leaves)
        tensors = list(leaves) + list(weights)
        if grad_mode.is_grad_enabled() and any(t.requires_grad for t in tensors):
            outs = self._run_with_autograd(tensors)
        else:
            ex = self.executor(n)
            res = ex([t._data for t in tensors])
            outs = [wrap(a.copy() if c else a, v.dtype, v.device)
                    for a, c, v in zip(res, ex.copy_outputs, ex.graph.outputs)]
        return rebuild(self.out_spec, iter(outs))

    def _run_with_autograd(self, tensors):
        if self._compiled_interpreter is None:
            from ..compiler import compile
            self._compiled_interpreter = compile(self.interpret)
        return list(self._compiled_interpreter(*tensors))

    def interpret(self, *tensors):
        """Run the graph op by op through the eager dispatcher (autograd and tracers see every op)."""
        from ..autograd import no_grad
        n = self.batch_size(tensors[:self.n_user])
        graph = self.graph_at(n)
        env = {v.id: t for v, t in zip(graph.inputs, tensors)}
        for c in graph.constants:
            env[c.id] = c.const
        for node in graph.nodes:
            args = [env[i.id] if isinstance(i, Value) else i for i in node.inputs]
            for o, t in zip(node.outputs, _run_node(node, args)):
                env[o.id] = t
        position = {v.id: k for k, v in enumerate(graph.inputs)}
        with no_grad():
            for src, dst in graph.mutations:
                tensors[position[src.id]].copy_(env[dst.id])
        return tuple(env[v.id] for v in graph.outputs)


def _run_node(node, args):
    from ..ops.random import RANDOM_REPLAY
    if node.kind == "elementwise":
        r = _dispatch.elementwise(node.op, *args)
        out = node.outputs[0]
        return (r if r.dtype is out.dtype else r.to(out.dtype),)
    if node.op is RANDOM_REPLAY:
        return (_replay_random(**node.attrs),)
    if not any(isinstance(a, Tensor) for a in args):
        res = node.op.impl["cpu"](*args, **node.attrs)
        res = res if isinstance(res, tuple) else (res,)
        return tuple(wrap(np.asarray(a), o.dtype, o.device) for a, o in zip(res, node.outputs))
    view_of = args[0] if node.meta.get("view") and isinstance(args[0], Tensor) else None
    res = _dispatch.apply(node.op, args, node.attrs, view_of=view_of)
    return res if isinstance(res, tuple) else (res,)


def _replay_random(fn, args, kwargs, shape, dtype, fill):
    """Draw again through the replayable wrapper, so that a tracer wrapping this interpreter records the draw."""
    from .. import empty
    draw = _dispatch.replayable_random(fn)
    if fill:
        target = empty(shape, dtype=dtype)
        draw(target, *args[1:], **kwargs)
        return target
    return draw(*args, **kwargs)
