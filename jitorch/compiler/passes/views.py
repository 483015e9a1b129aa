"""View simplification: drop identity reshapes/permutes, merge chains of reshapes and of permutes."""
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
        if src is not None and node.name == "permute" and src.producer is not None and _is(src.producer, "permute"):
            # a permute of a permute is one permute (an identity one vanishes)
            inner = tuple(src.producer.attrs["dims"])
            dims = tuple(inner[d] for d in node.attrs["dims"])
            base = src.producer.inputs[0]
            if dims == tuple(range(len(dims))):
                rename[node.outputs[0].id] = base
                continue
            node.inputs[0] = base
            node.attrs = dict(node.attrs, dims=dims)
        kept.append(node)
    graph.nodes = kept
    graph.outputs = [rename.get(v.id, v) for v in graph.outputs]
    graph.mutations = [(a, rename.get(b.id, b)) for a, b in graph.mutations]
    graph.rebuild_users()
    return graph
