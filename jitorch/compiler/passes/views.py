"""View simplification: drop identity reshapes/permutes, merge chains of reshapes."""
from __future__ import annotations

from ..ir import Graph, Value


def _is(node, name):
    return node.name == name


def simplify_views(graph: Graph) -> Graph:
    rename: dict[int, Value] = {}
    kept = []
    for node in graph.nodes:
        node.inputs = [rename.get(i.id, i) if isinstance(i, Value) else i for i in node.inputs]
        src = node.inputs[0] if node.inputs and isinstance(node.inputs[0], Value) else None
        if src is not None and node.name in ("reshape", "expand") and tuple(node.attrs.get("shape", ())) == src.shape:
            rename[node.outputs[0].id] = src
            continue
        if src is not None and node.name == "permute" and tuple(node.attrs["dims"]) == tuple(range(len(src.shape))):
            rename[node.outputs[0].id] = src
            continue
        if src is not None and node.name == "reshape" and src.producer is not None and _is(src.producer, "reshape"):
            node.inputs[0] = src.producer.inputs[0]  # reshape of a reshape is one reshape
        kept.append(node)
    graph.nodes = kept
    graph.outputs = [rename.get(v.id, v) for v in graph.outputs]
    graph.mutations = [(a, rename.get(b.id, b)) for a, b in graph.mutations]
    graph.rebuild_users()
    return graph
