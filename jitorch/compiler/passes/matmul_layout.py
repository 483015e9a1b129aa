"""Transposed matrix products: compute ``(a @ b).T`` as ``b.T @ a.T``.

A weight gradient comes out of the backward as ``permute(matmul(x.T, g), (1, 0))``:
a transposed view of the product.  Whoever keeps it (a leaf's ``.grad``, the
optimizer) then copies it into a contiguous array, a strided copy that cost more
than the product itself for a 128x784 weight.  BLAS takes transposed operands
for free, so the pass asks it for the transposed product directly: the result is
a fresh contiguous array and no view of the old one is left.  Only 2-D products
qualify (a batched product with a strided operand is copied before BLAS runs).
"""
from __future__ import annotations

from ..ir import Graph, Node
from .rewrite import make_node, only_user, permute_dims, protected_ids

_SWAP = (1, 0)


def _transposed(graph: Graph, v, new_nodes: list):
    """``v.T`` as a value: the source of a transposing permute, or a new permute view."""
    if permute_dims(v) == _SWAP:
        return v.producer.inputs[0]
    node = make_node(graph, "permute", [v], {"dims": _SWAP}, v.shape[::-1], v)
    new_nodes.append(node)
    return node.outputs[0]


def transpose_matmul_outputs(graph: Graph) -> Graph:
    graph.rebuild_users()
    protected = protected_ids(graph)
    kept = []
    for node in graph.nodes:
        if node.name == "permute" and tuple(node.attrs["dims"]) == _SWAP:
            src = node.inputs[0]
            mm = src.producer
            if (mm is not None and mm.name == "matmul" and len(src.shape) == 2
                    and all(len(i.shape) == 2 for i in mm.inputs) and only_user(src, node, protected)):
                a, b = mm.inputs
                new_nodes: list = []
                bt = _transposed(graph, b, new_nodes)
                at = _transposed(graph, a, new_nodes)
                prod = Node(mm.op, [bt, at], dict(mm.attrs), meta=dict(mm.meta))
                res = node.outputs[0]  # the same value, now made contiguous by the product itself
                res.producer = prod
                prod.outputs.append(res)
                kept += new_nodes + [prod]
                continue  # the old product is left without readers: dce drops it
        kept.append(node)
    graph.nodes = kept
    graph.rebuild_users()
    return graph
