"""Which leaf tensors the autograd graph behind some outputs reaches (for find_unused_parameters)."""
from __future__ import annotations


def output_tensors(obj, found=None) -> list:
    """The tensors inside a forward's return value (tensors, lists, tuples, dicts, nested)."""
    from ..._tensor import Tensor
    found = [] if found is None else found
    if isinstance(obj, Tensor):
        found.append(obj)
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            output_tensors(item, found)
    elif isinstance(obj, dict):
        for item in obj.values():
            output_tensors(item, found)
    return found


def reachable_leaf_ids(outputs) -> set[int]:
    """``id``s of the leaves whose gradient a backward from ``outputs`` would compute."""
    from ...autograd.graph import AccumulateGrad
    leaves: set[int] = set()
    stack = []
    for t in output_tensors(outputs):
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
