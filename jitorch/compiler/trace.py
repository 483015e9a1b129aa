"""Capture: run the user's function eagerly while recording every primitive.

The recorder is installed in ``jitorch._dispatch`` so each elementwise or
kernel op reports (op, inputs, attributes, outputs).  Running for real gives
exact shapes and dtypes for free and keeps results identical to eager; the
graph then replaces the Python code on later calls while the guards hold.
A tensor the graph did not produce and that is not an input becomes a
constant.  Reading a concrete value of a traced tensor (``item()``,
``bool()``, ``tolist()``, ``numpy()``) is a graph break: it is recorded with
its reason and source line.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import numpy as np

from .. import _dispatch
from .._tensor import Tensor
from ..autograd import grad_mode
from .ir import Graph, Value

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _library_dirs() -> tuple:
    """jitorch itself, the standard library and every installed-packages folder."""
    import site
    import sysconfig
    dirs = {_PKG_DIR}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            dirs.add(os.path.abspath(path))
    for path in list(getattr(site, "getsitepackages", lambda: [])()) + [site.getusersitepackages()]:
        dirs.add(os.path.abspath(path))
    return tuple(sorted(dirs))


_LIBRARY_DIRS = _library_dirs()


@dataclass
class GraphBreak:
    reason: str
    category: str
    where: str
    hint: str
    at: int = -1  # index of the first graph node after the break

    def __str__(self) -> str:
        return f"{self.where}: {self.category}: {self.reason} ({self.hint})"


_HINTS = {
    ".item()": "keep the value as a 0-d tensor, or move the .item() call outside the compiled function",
    "data-dependent branch": "use jitorch.where(...) instead of an if on a tensor",
    "data-dependent shape": "the output shape depends on tensor values; compute it outside the compiled function",
    "conversion to Python/NumPy": "return the tensor and convert it outside the compiled function",
    "unsupported op": "this op has no graph lowering yet",
    "unsupported mutation": "this in-place write cannot be captured; the function runs eagerly",
    "random op": "random draws inside a compiled function are not captured yet; the function runs eagerly",
    "backward or optimizer call": "runs between two compiled graphs, as in eager mode",
}


def user_frame() -> str:
    """file:line of the innermost frame outside jitorch (the user's source line)."""
    f = sys._getframe(1)
    while f is not None:
        fn = f.f_code.co_filename
        if not os.path.abspath(fn).startswith(_PKG_DIR):
            return f"{os.path.relpath(fn) if not fn.startswith('<') else fn}:{f.f_lineno}"
        f = f.f_back
    return "<unknown>"


class Tracer:
    """Records ops into a :class:`Graph` while they run eagerly."""

    lazy = False  # True for tracers that defer ops instead of running them (compiler/segments.py)
    lift_grad_tensors = True  # outside tensors that require grad become graph inputs, not constants

    def __init__(self):
        self.graph = Graph()
        self._values: dict[int, tuple[Value, Tensor]] = {}
        self.breaks: list[GraphBreak] = []
        self._input_ids: set[int] = set()
        self._origins: dict[int, Value] = {}  # tensor id -> its value when it entered the graph
        self.effects: list = []  # deferred prints: (flatten spec, kwargs, [Values])
        self._versions: dict[int, int] = {}  # tensor id -> version when it entered the graph
        self._recorded_writes: dict[int, int] = {}  # tensor id -> in-place writes the graph recorded
        self.lifted: list = []  # outside tensors bound as extra inputs (see value_of)
        self.grad_values: set[int] = set()  # ids of the values whose tensors required grad when traced
        self.outside: list = []  # (constant value, tensor) for tensors the graph read but did not make
        self.layouts: dict[int, tuple] = {}  # value id -> (C-contiguous, F-contiguous, strides) when traced

    # -- values -------------------------------------------------------------------------------
    def bind_input(self, t: Tensor, name: str | None = None) -> Value:
        v = self.graph.add_input(t.shape, t.dtype, t.device, name=name)
        self._values[id(t)] = (v, t)
        if t._requires_grad:
            self.grad_values.add(v.id)
        self._input_ids.add(id(t))
        self._origins[id(t)] = v
        self._versions[id(t)] = t._version[0]
        return v

    def value_of(self, t: Tensor) -> Value:
        entry = self._values.get(id(t))
        if entry is not None and entry[1] is t:
            return entry[0]
        if t._requires_grad and self.lift_grad_tensors:
            # a closure's or global's tensor that needs gradients: an input, so the backward reaches it
            self.lifted.append(t)
            return self.bind_input(t, name="lifted")
        # a tensor made outside the graph (e.g. by a creation op): capture its current value
        v = self.graph.add_constant(t.detach())
        self.outside.append((v, t))
        self._values[id(t)] = (v, t)
        self._origins[id(t)] = v
        self._versions[id(t)] = t._version[0]
        return v

    def has(self, t: Tensor) -> bool:
        entry = self._values.get(id(t))
        return entry is not None and entry[1] is t

    def _operand(self, a):
        return self.value_of(a) if isinstance(a, Tensor) else a

    def _bind_result(self, t: Tensor, v: Value, op=None, args=()) -> None:
        self._values[id(t)] = (v, t)
        d = t._data
        if d.__class__ is np.ndarray or getattr(d, "is_cuda_array", False):
            # what a resumed replay reports before the value is computed
            self.layouts[v.id] = (d.flags.c_contiguous, d.flags.f_contiguous, tuple(d.strides))
        # hooks run before autograd records the op: whether it will is decided the same way here
        if t._requires_grad or (op is not None and op.differentiable and grad_mode._state.grad_enabled
                                and any(isinstance(a, Tensor) and a._requires_grad for a in args)):
            self.grad_values.add(v.id)

    def on_alias(self, src: Tensor, alias: Tensor) -> None:
        """``detach()``/``.data``: the same value under another tensor object."""
        entry = self._values.get(id(src))
        if entry is not None and entry[1] is src:
            self._values[id(alias)] = (entry[0], alias)

    # -- recording hooks (called from jitorch._dispatch) ---------------------------------------------
    def on_elementwise(self, op, args, result: Tensor, compute, mutates: Tensor | None = None) -> None:
        if mutates is not None and mutates._base is not None and self._is_view_of_graph_value(mutates):
            self.record_break("in-place write into a view", "unsupported mutation")
        ins = [self._operand(a) for a in args]
        node = self.graph.add_node(op, ins, {}, [(tuple(result.shape), result.dtype, result.device)],
                                   meta={"compute": compute, "where": user_frame()})
        if mutates is not None:
            self._count_write(mutates)
        self._bind_result(result, node.outputs[0], op, args)

    def _count_write(self, t: Tensor) -> None:
        self._recorded_writes[id(t)] = self._recorded_writes.get(id(t), 0) + 1

    def on_apply(self, op, inputs, attrs, outs, view_of) -> None:
        ins = [self._operand(t) if t is not None else None for t in inputs]
        node = self.graph.add_node(op, ins, attrs, [(tuple(o.shape), o.dtype, o.device) for o in outs],
                                   meta={"view": view_of is not None, "where": user_frame()})
        for o, v in zip(outs, node.outputs):
            self._bind_result(o, v, op, inputs)

    def on_random(self, fn, args, kwargs, result: Tensor, target: Tensor | None) -> None:
        """A random op ran: record a node that runs it again, drawing fresh numbers each call."""
        from ..ops.random import RANDOM_REPLAY
        attrs = {"fn": fn, "args": args, "kwargs": kwargs, "shape": tuple(result.shape), "dtype": result.dtype,
                 "fill": target is not None}
        node = self.graph.add_node(RANDOM_REPLAY, [], attrs, [(tuple(result.shape), result.dtype, result.device)],
                                   meta={"random": True, "effect": True, "where": user_frame()})
        if target is not None:
            self._count_write(target)
        self._bind_result(result, node.outputs[0])

    def on_copy(self, dst: Tensor, src: Tensor) -> None:
        """``dst.copy_(src)``: dst now holds src cast and broadcast to its shape."""
        from ..ops.conversion import TO_COPY
        if dst._base is not None and self._is_view_of_graph_value(dst):
            self.record_break("in-place copy into a view", "unsupported mutation")
        s = self._operand(src)
        if tuple(src.shape) != tuple(dst.shape):
            from ..ops.views import EXPAND
            n = self.graph.add_node(EXPAND, [s], {"shape": tuple(dst.shape)},
                                    [(tuple(dst.shape), src.dtype, src.device)], meta={"view": True})
            s = n.outputs[0]
        node = self.graph.add_node(TO_COPY, [s], {}, [(tuple(dst.shape), dst.dtype, dst.device)],
                                   meta={"compute": src.dtype, "where": user_frame()})
        self._count_write(dst)
        self._bind_result(dst, node.outputs[0], TO_COPY, (src, dst))

    def _is_view_of_graph_value(self, t: Tensor) -> bool:
        base = t._base
        return base is not None and (self.has(base) or id(base) in self._input_ids or self.has(t))

    def record_break(self, reason: str, category: str) -> None:
        self.breaks.append(GraphBreak(reason, category, user_frame(), _HINTS.get(category, ""),
                                      len(self.graph.nodes)))

    def run_opaque(self, what: str, fn, args, kwargs):
        """``loss.backward()``, ``optimizer.step()``...: a break; the call runs eagerly, unrecorded.

        Such a call may update graph inputs in place (an optimizer step writes the
        parameters): later nodes read the updated values, as eager code does.  Any other
        tensor of the graph that it modifies cannot be followed, and ends the capture.
        """
        self.record_break(what, "backward or optimizer call")
        before = {tid: self._values[tid][1]._version[0] for tid in self._versions}
        prev = _dispatch.set_tracer(None)
        try:
            return fn(*args, **kwargs)
        finally:
            _dispatch.set_tracer(prev)
            for tid, v0 in before.items():
                value, t = self._values[tid]
                delta = t._version[0] - v0
                if not delta:
                    continue
                if tid in self._input_ids and value is self._origins[tid]:
                    self._versions[tid] += delta  # an input updated in place: later reads see it
                else:
                    self.record_break(f"{what} modified a tensor of shape {list(t.shape)} that the graph computed",
                                      "unsupported mutation")

    def on_concrete(self, t: Tensor, what: str) -> None:
        """A traced tensor's value was read by Python: the graph cannot replace this code."""
        if not self.has(t):
            return
        v = self.value_of(t)
        if v.kind == "input" and what in ("shape",):
            return
        category = {"item": ".item()", "bool": "data-dependent branch", "tolist": "conversion to Python/NumPy",
                    "numpy": "conversion to Python/NumPy", "shape-dependent": "data-dependent shape"}.get(
            what, "conversion to Python/NumPy")
        self.record_break(f"{what}() of a traced tensor", category)

    def record_print(self, args, kwargs) -> None:
        from .api import _flatten
        leaves = []
        spec = _flatten(args, leaves)
        self.effects.append((spec, dict(kwargs), [self.value_of(t) for t in leaves]))

    # -- finishing ---------------------------------------------------------------------------------
    def finish(self, outputs) -> Graph:
        """Mark graph outputs and the in-place updates of inputs to write back."""
        g = self.graph
        g.outputs = [self._operand(o) for o in outputs]
        for tid, before in self._versions.items():
            t = self._values[tid][1]
            if t._version[0] - before > self._recorded_writes.get(tid, 0):
                # written by code the graph cannot see (e.g. a kernel called on ._data directly)
                self.record_break(f"a traced tensor of shape {list(t.shape)} was modified outside the "
                                  "recorded ops", "unsupported mutation")
                break
        for tid, origin in self._origins.items():
            current = self._values[tid][0]
            if current is not origin:
                if origin.kind == "const":
                    self._lift(origin, self._values[tid][1])
                g.mutations.append((origin, current))
        return g

    def _lift(self, v: Value, t: Tensor) -> None:
        """A constant the graph writes in place (a buffer of a module called inside the function)
        becomes an input: each call reads its storage, and the update is written back to it."""
        self.graph.constants.remove(v)
        v.kind, v.const, v.name = "input", None, "lifted"
        self.graph.inputs.append(v)
        self.lifted.append(t)
        self.outside = [(c, o) for c, o in self.outside if c is not v]

    def constant_guards(self) -> list:
        """(tensor, storage, version) of every outside tensor baked in as a constant: a later write
        to one of them (or new storage) makes the graph stale, so the caller checks them per call."""
        return [(t, t._data, t._version[0]) for _, t in self.outside]


class tracing:
    """Context manager installing a tracer in the dispatcher (and a recording ``print``)."""

    def __init__(self, tracer: Tracer):
        self.tracer = tracer

    def __enter__(self):
        import builtins
        self._prev = _dispatch.set_tracer(self.tracer)
        self._print = builtins.print
        tracer, real_print = self.tracer, builtins.print

        def recording_print(*args, **kwargs):
            # print runs now, and is replayed after the graph on later calls; only the user's
            # own prints are part of the function (not those of libraries it calls)
            real_print(*args, **kwargs)
            caller = os.path.abspath(sys._getframe(1).f_code.co_filename)
            if not caller.startswith(_LIBRARY_DIRS):
                tracer.record_print(args, kwargs)

        builtins.print = recording_print
        return self.tracer

    def __exit__(self, *exc):
        import builtins
        builtins.print = self._print
        _dispatch.set_tracer(self._prev)
        return False
