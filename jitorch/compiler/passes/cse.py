"""Common-subexpression elimination: one node per (op, inputs, attributes)."""
from __future__ import annotations

from ..ir import Graph, Value


def _key(node, rename):
    ins = tuple(("v", rename.get(i.id, i).id) if isinstance(i, Value) else ("c", type(i).__name__, i)
                for i in node.inputs)
    try:
        attrs = tuple(sorted((k, repr(v)) for k, v in node.attrs.items()))
    except TypeError:
        return None
    return (node.name, ins, attrs, repr(node.meta.get("compute")))


def cse(graph: Graph) -> Graph:
    seen = {}
    rename: dict[int, Value] = {}
    kept = []
    for node in graph.nodes:
        node.inputs = [rename.get(i.id, i) if isinstance(i, Value) else i for i in node.inputs]
        if node.meta.get("effect") or node.meta.get("random"):
            kept.append(node)
            continue
        k = _key(node, rename)
        prev = seen.get(k) if k is not None else None
        if prev is not None:
            for a, b in zip(node.outputs, prev.outputs):
                rename[a.id] = b
            continue
        if k is not None:
            seen[k] = node
        kept.append(node)
    graph.nodes = kept
    graph.outputs = [rename.get(v.id, v) for v in graph.outputs]
    graph.mutations = [(a, rename.get(b.id, b)) for a, b in graph.mutations]
    graph.rebuild_users()
    return graph
