"""The tensors inside nested Python containers (tuples, lists, dicts), depth first."""
from __future__ import annotations


def tensor_leaves(obj, out: list | None = None) -> list:
    """Tensors in ``obj`` in depth-first order (the order torch.onnx gives graph inputs/outputs)."""
    from .._tensor import Tensor
    out = [] if out is None else out
    if isinstance(obj, Tensor):
        out.append(obj)
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            tensor_leaves(o, out)
    elif isinstance(obj, dict):
        for o in obj.values():
            tensor_leaves(o, out)
    return out
