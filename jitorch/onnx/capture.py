"""Run the model once under the compiler's tracer and return the graph ONNX lowering starts from.

Inputs of the graph are the tensors in ``args`` (in order, nested tuples,
lists and dicts flattened) followed by the module's parameters and persistent
buffers under their ``state_dict`` names.  The capture runs without autograd
and with ``is_in_onnx_export()`` true; convolutions are recorded as single
composite nodes (see ``composites``).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from .._tensor import Tensor
from ..utils._tree import tensor_leaves
from ..compiler.ir import Graph, Value
from ..compiler.trace import GraphBreak, Tracer, tracing, user_frame
from ._state import exporting
from .composites import composites_recorded


class ExportTracer(Tracer):
    """The compiler's tracer plus composite regions: ops recorded since a mark become one node."""

    def mark(self) -> int:
        return len(self.graph.nodes)

    def collapse_since(self, mark: int, op, inputs, attrs, out: Tensor) -> None:
        del self.graph.nodes[mark:]
        ins = [self._operand(t) if t is not None else None for t in inputs]
        node = self.graph.add_node(op, ins, attrs, [(tuple(out.shape), out.dtype, out.device)],
                                   meta={"where": user_frame()})
        self._bind_result(out, node.outputs[0])


@dataclass
class Capture:
    graph: Graph
    inputs: list  # graph input Values of the user's tensors, in argument order
    params: list  # (state_dict name, Value, tensor) of parameters and buffers
    breaks: list = field(default_factory=list)


def named_state(model) -> list:
    """(name, tensor) of each parameter and persistent buffer, shared tensors under their first name."""
    state = getattr(model, "state_dict", None)
    if state is None:
        return []
    seen, out = set(), []
    for name, t in state(keep_vars=True).items():
        if isinstance(t, Tensor) and id(t) not in seen:
            seen.add(id(t))
            out.append((name, t))
    return out


@contextlib.contextmanager
def compiled_code_runs_eagerly():
    """Within the block, ``jitorch.compile``d functions run their Python instead of their compiled graph.

    A compiled graph runs its kernels on arrays, out of the tracer's sight: its results would be
    captured as constants.  Running the original code lets the export tracer record every op.
    """
    from ..compiler import api
    switched = [c for c in getattr(api, "_ALL_COMPILED", ()) if not getattr(c, "_fallback", True)]
    for c in switched:
        c._fallback = True
    try:
        yield
    finally:
        for c in switched:
            c._fallback = False


def capture(model, args: tuple, kwargs: dict) -> Capture:
    from .. import no_grad
    tracer = ExportTracer()
    user = tensor_leaves((args, kwargs), [])
    inputs = [tracer.bind_input(t, name=f"input_{k}") for k, t in enumerate(user)]
    params = []
    for name, t in named_state(model):
        if not tracer.has(t):
            params.append((name, tracer.bind_input(t, name=name), t))
    with no_grad(), exporting(), compiled_code_runs_eagerly(), composites_recorded(), tracing(tracer):
        out = model(*args, **kwargs)
    leaves = tensor_leaves(out, [])
    if not leaves:
        raise ValueError("jitorch.onnx.export: the model returned no tensors to export")
    graph = tracer.finish(leaves)
    return Capture(graph, inputs, params, list(tracer.breaks))


def describe_break(b: GraphBreak) -> str:
    return f"{b.where}: {b.reason} ({b.category})"


def used_inputs(graph: Graph) -> set:
    """Ids of the input Values some node (or an output) reads."""
    used = {v.id for v in graph.outputs}
    for n in graph.nodes:
        used.update(i.id for i in n.inputs if isinstance(i, Value))
    return used
