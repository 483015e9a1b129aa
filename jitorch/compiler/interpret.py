"""Run a captured graph as eager tensor ops, with autograd.

The executors run graphs over raw arrays, outside autograd.  A range of a
resumed capture that needs gradients is instead turned back into a Python
function of tensors: each node calls the dispatcher exactly as the eager op
did, so compiling that function (``jitorch.compile``) captures the same nodes
again and derives their backward from the ops' derivative rules.
"""
from __future__ import annotations

from .. import _dispatch
from ..ops.conversion import TO_COPY, _copy_as
from .ir import Graph, Value


class InterpretError(RuntimeError):
    """A node the interpreter cannot run as an eager op (the caller falls back to eager)."""


def as_function(graph: Graph, grad_ids=None):
    """``f(*tensors) -> tuple of tensors``: ``graph``'s outputs for its inputs, op by op.

    ``grad_ids``: the values that required grad in the capture.  Any other value is detached
    as soon as it is made, so what the captured code computed under ``no_grad`` (running
    statistics, a scale it treats as constant) carries no gradient here either.
    """

    def keep(v, t):
        if grad_ids is not None and t._requires_grad and v.id not in grad_ids:
            return t.detach()
        return t

    def run_graph(*tensors):
        env = {v.id: keep(v, t) for v, t in zip(graph.inputs, tensors)}

        def operand(x):
            if not isinstance(x, Value):
                return x
            return x.const if x.kind == "const" else env[x.id]

        for node in graph.nodes:
            ins = [operand(x) for x in node.inputs]
            outs = _run_node(node, ins)
            for v, t in zip(node.outputs, outs):
                if tuple(t.shape) != tuple(v.shape) or t.dtype is not v.dtype:
                    raise InterpretError(f"{node.name} gave {t.dtype} {list(t.shape)} where the capture had "
                                         f"{v.dtype} {list(v.shape)}")
                env[v.id] = keep(v, t)
        return tuple(operand(v) for v in graph.outputs)

    run_graph.__qualname__ = "resumed_graph"
    return run_graph


def _run_node(node, ins):
    op = node.op
    if node.meta.get("random"):
        raise InterpretError("random draws are not replayed here")
    if node.kind == "elementwise":
        if op is TO_COPY:
            return (_copy_as(TO_COPY, ins[0], node.outputs[0].dtype),)
        return (_dispatch.elementwise(op, *ins, dtype=node.meta.get("compute")),)
    view_of = ins[0] if node.meta.get("view") else None
    res = _dispatch.apply(op, ins, dict(node.attrs), view_of=view_of)
    return res if isinstance(res, tuple) else (res,)
