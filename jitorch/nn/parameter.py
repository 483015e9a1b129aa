"""``nn.Parameter``: a Tensor that a Module registers as a learnable weight."""
from __future__ import annotations

import numpy as np

from .. import _dtype as D
from .._tensor import Tensor, _init


class Parameter(Tensor):
    """A tensor that ``Module.__setattr__`` registers as a parameter.

    ``Parameter(t)`` shares ``t``'s memory; ``requires_grad`` defaults to True.

    >>> import jitorch
    >>> p = jitorch.nn.Parameter(jitorch.zeros(2))
    >>> p.requires_grad
    True
    """

    def __new__(cls, data: Tensor | None = None, requires_grad: bool = True):
        if data is None:
            arr, dt, dev = np.empty((0,), dtype=np.float32), D.float32, None
        else:
            if not isinstance(data, Tensor):
                raise TypeError(f"Parameter(): expected a Tensor as data, got {type(data).__name__}")
            arr, dt, dev = data._data, data._dtype, data._device
        p = object.__new__(cls)
        if dev is None:
            _init(p, arr, dt)
        else:
            _init(p, arr, dt, dev)
        if data is not None:
            p._version = data._version  # shares storage with ``data``: share its version counter too
        if requires_grad:
            p.requires_grad_(True)
        return p

    def __init__(self, data=None, requires_grad: bool = True):
        pass


def is_lazy(param) -> bool:  # torch.nn.parameter.is_lazy: jitorch has no lazy parameters
    return False


class Buffer(Tensor):
    """``nn.Buffer(t, persistent=True)``: assigning one to a Module attribute registers a buffer."""

    def __new__(cls, data: Tensor | None = None, *, persistent: bool = True):
        if data is None:
            data = Tensor()
        b = object.__new__(cls)
        _init(b, data._data, data._dtype, data._device)
        b._version = data._version
        b.persistent = persistent
        return b

    def __init__(self, data=None, *, persistent: bool = True):
        pass
