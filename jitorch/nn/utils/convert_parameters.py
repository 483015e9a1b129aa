"""Flatten parameters into one vector and back."""
from __future__ import annotations

from collections.abc import Iterable

import jitorch as J

from ..._tensor import Tensor

__all__ = ["parameters_to_vector", "vector_to_parameters"]


def _check_same_device(param: Tensor, old) -> object:
    if old is not None and param.device != old:
        raise TypeError("Found two parameters on different devices, this is currently not supported.")
    return param.device


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """All parameters flattened and concatenated into one (differentiable) 1-D tensor."""
    device = None
    flats = []
    for p in parameters:
        device = _check_same_device(p, device)
        flats.append(p.reshape(-1))
    return J.cat(flats)


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """Point each parameter's data at its slice of ``vec`` (they share memory afterwards, as in torch)."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected torch.Tensor, but got: {type(vec).__name__}")
    device = None
    offset = 0
    for p in parameters:
        device = _check_same_device(p, device)
        n = p.numel()
        p.data = vec.narrow(0, offset, n).view_as(p).data
        offset += n
