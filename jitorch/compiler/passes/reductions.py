"""``reshape(sum(x, keepdim=True))`` that only drops the kept 1-dims becomes ``sum(x, keepdim=False)``.

A bias gradient is a batch sum kept as ``(1, C)`` and then reshaped to ``(C,)``;
the reshape is a view of the sum's result, which a leaf's ``.grad`` then has to
copy (a view may alias).  Reducing straight to ``(C,)`` drops the view step.
"""
from __future__ import annotations

from ..ir import Graph
from .rewrite import only_user, protected_ids

_REDUCTIONS = ("sum", "amax", "amin", "prod")


def squeeze_reductions(graph: Graph) -> Graph:
    graph.rebuild_users()
    protected = protected_ids(graph)
    kept = []
    for node in graph.nodes:
        red = node.inputs[0].producer if node.name == "reshape" and node.inputs else None
        if (red is not None and red.name in _REDUCTIONS and red.attrs.get("keepdim")
                and only_user(red.outputs[0], node, protected)):
            x = red.inputs[0]
            dims = set(red.attrs["dims"])
            squeezed = tuple(s for d, s in enumerate(x.shape) if d not in dims)
            if squeezed == tuple(node.outputs[0].shape):
                red.attrs = dict(red.attrs, keepdim=False)
                out = node.outputs[0]
                old = red.outputs[0]
                red.outputs[0] = out
                out.producer = red
                old.producer = None
                continue  # the reshape is gone: the reduction writes its value directly
        kept.append(node)
    graph.nodes = kept
    graph.rebuild_users()
    return graph
