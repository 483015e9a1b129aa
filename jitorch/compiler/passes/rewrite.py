"""Small helpers the rewriting passes share: make a node, swap a value for another."""
from __future__ import annotations

from ...ops.registry import OPS
from ..ir import Graph, Node, Value


def make_node(graph: Graph, op_name: str, inputs, attrs, shape, like: Value, meta=None) -> Node:
    """A new node applying registry op ``op_name``, with one output shaped ``shape`` (dtype and device of
    ``like``); not yet placed in ``graph.nodes``."""
    node = Node(OPS[op_name], list(inputs), dict(attrs), meta=dict(meta or {}))
    node.outputs.append(graph.new_value(tuple(shape), like.dtype, like.device, producer=node))
    return node


def protected_ids(graph: Graph) -> set:
    """Values the caller sees (outputs, in-place write-backs): their identity and layout must stay."""
    ids = {v.id for v in graph.outputs}
    ids.update(v.id for pair in graph.mutations for v in pair)
    return ids


def only_user(v: Value, node: Node, protected: set) -> bool:
    """Is ``node`` the single reader of ``v`` (and ``v`` invisible to the caller)?"""
    return v.id not in protected and len(v.users) == 1 and v.users[0] is node


def permute_dims(v: Value):
    """The dims of ``v``'s producing permute, or None."""
    p = v.producer
    return tuple(p.attrs["dims"]) if p is not None and p.name == "permute" else None
