"""Sums of ``slice_backward`` pieces that tile a tensor become one ``cat``.

The gradient of ``qkv[..., 0:256]``, ``qkv[..., 256:512]`` and ``qkv[..., 512:768]``
reaches the backward as three zero tensors of the full size, each with one
piece written in, added together: three allocations, three zero fills and two
additions of the full size.  When the pieces cover the tensor exactly once,
the sum is their concatenation, which writes every element once.
"""
from __future__ import annotations

from ..ir import Graph, Value
from .rewrite import make_node, only_user, protected_ids


def _piece(node, shape):
    """(dim, start, stop) of a slice_backward that slices one dim with step 1, else None."""
    index = node.attrs.get("index")
    if not isinstance(index, tuple) or len(index) != len(shape):
        return None
    cut = None
    for d, (s, n) in enumerate(zip(index, shape)):
        if not isinstance(s, slice):
            return None
        start, stop, step = s.indices(n)
        if step != 1:
            return None
        if (start, stop) != (0, n):
            if cut is not None:
                return None
            cut = (d, start, stop)
    return cut


def _leaves(v: Value, root, protected, out: list) -> bool:
    """Collect the slice_backward leaves of the add-tree under ``v``; False if it is not such a tree."""
    p = v.producer
    if p is None or not only_user(v, root, protected):
        return False
    if p.name == "add" and len(p.inputs) == 2 and all(isinstance(i, Value) for i in p.inputs):
        return all(_leaves(i, p, protected, out) for i in p.inputs)
    if p.name == "slice_backward":
        out.append(p)
        return True
    return False


def slices_to_cat(graph: Graph) -> Graph:
    graph.rebuild_users()
    protected = protected_ids(graph)
    kept = []
    for node in graph.nodes:
        cat = _as_cat(graph, node, protected) if node.name == "add" else None
        kept.append(cat or node)
    graph.nodes = kept
    graph.rebuild_users()
    return graph


def _as_cat(graph: Graph, node, protected):
    out = node.outputs[0]
    if len(node.inputs) != 2 or not all(isinstance(i, Value) and i.shape == out.shape for i in node.inputs):
        return None
    if any(u.name == "add" for u in out.users):
        return None  # not the root of the tree: the root will take it
    leaves: list = []
    if not all(_leaves(i, node, protected, leaves) for i in node.inputs):
        return None
    pieces = []
    for leaf in leaves:
        g = leaf.inputs[0]
        cut = _piece(leaf, out.shape) if tuple(leaf.attrs.get("shape", ())) == out.shape else None
        if cut is None or g.dtype is not out.dtype:
            return None
        pieces.append((cut, g))
    dims = {c[0] for c, _ in pieces}
    if len(dims) != 1:
        return None
    dim = dims.pop()
    pieces.sort(key=lambda p: p[0][1])
    pos = 0
    for (_, start, stop), _ in pieces:
        if start != pos:
            return None  # a gap or an overlap: not a plain concatenation
        pos = stop
    if pos != out.shape[dim]:
        return None
    cat = make_node(graph, "cat", [g for _, g in pieces], {"dim": dim}, out.shape, out)
    cat.outputs[0] = out  # keep the value (its readers stay as they are)
    out.producer = cat
    return cat
