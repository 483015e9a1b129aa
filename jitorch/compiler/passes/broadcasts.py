"""Elementwise ops read broadcast operands directly instead of through ``expand``.

An ``expand`` in front of an elementwise op is a view the op's own broadcasting
does anyway.  As a separate step it also splits fusion: the fused group that
computes a per-row value (layer_norm's backward) cannot read it back through a
view step, so the ops after the view started a new kernel.  Dropping the
expand (when broadcasting the original operand gives the same output shape)
lets the kernel read the per-row value as a per-row operand.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Value


def _broadcast(shapes):
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        return None


def fold_expands(graph: Graph) -> Graph:
    for node in graph.nodes:
        if node.kind != "elementwise" or node.meta.get("random"):
            continue
        out_shape = node.outputs[0].shape
        for k, i in enumerate(node.inputs):
            if not (isinstance(i, Value) and i.producer is not None and i.producer.name == "expand"):
                continue
            src = i.producer.inputs[0]
            trial = node.inputs[:k] + [src] + node.inputs[k + 1:]
            if _broadcast([v.shape for v in trial if isinstance(v, Value)]) == out_shape:
                node.inputs = trial
    graph.rebuild_users()
    return graph
