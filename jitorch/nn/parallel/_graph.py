"""Which leaf tensors the autograd graph behind some outputs reaches (for find_unused_parameters)."""
from __future__ import annotations

from ...utils._tree import tensor_leaves


def reachable_leaf_ids(outputs) -> set[int]:
    """``id``s of the leaves whose gradient a backward from ``outputs`` would compute."""
    from ...autograd.graph import AccumulateGrad
    leaves: set[int] = set()
    stack = []
    for t in tensor_leaves(outputs):
        if not t.requires_grad:
            continue
        if t.grad_fn is None:
            leaves.add(id(t))
        else:
            stack.append(t.grad_fn)
    seen = {id(n) for n in stack}
    while stack:
        node = stack.pop()
        if isinstance(node, AccumulateGrad):
            leaves.add(id(node.variable))
            continue
        for edge in node.next_functions or ():
            if edge is not None and id(edge[0]) not in seen:
                seen.add(id(edge[0]))
                stack.append(edge[0])
    return leaves
