"""Dead-code elimination: drop nodes whose outputs nothing uses."""
from __future__ import annotations

from ..ir import Graph, Value


def dce(graph: Graph) -> Graph:
    live = {v.id for v in graph.outputs}
    live.update(v.id for pair in graph.mutations for v in pair)
    kept = []
    for node in reversed(graph.nodes):
        if any(o.id in live for o in node.outputs) or node.meta.get("effect"):
            kept.append(node)
            for i in node.inputs:
                if isinstance(i, Value):
                    live.add(i.id)
    graph.nodes = kept[::-1]
    graph.constants = [c for c in graph.constants if c.id in live]
    graph.rebuild_users()
    return graph
