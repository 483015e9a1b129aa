"""Creating device arrays: filled ones and random draws (for ``jitorch.zeros(..., device='cuda')`` & co.).

Random draws use the CUDA Philox generator (``runtime/cuda/philox.py``) when
it provides the draw: a function ``philox.<kind>(shape, np_dtype,
generator=None, **params)`` returning a new ``CudaArray``, with kinds

- ``uniform``: U[0, 1); ``normal``: N(0, 1);
- ``randint`` (params ``low``, ``high``): integers in [low, high);
- ``randperm``: a permutation of ``0..shape[0]-1``.

Without it the numbers are drawn on the host from the CPU generator and copied
over, which counts as a host fallback (``jitorch.cuda._host_fallback_ops()``
lists ``rand:<kind>``).
"""
from __future__ import annotations

import importlib

import numpy as np

from . import array, fallback


def full(shape, np_dtype, value) -> array.CudaArray:
    """A new array of ``shape``; every element ``value`` (a NumPy scalar of ``np_dtype``), or unset for None."""
    out = array.empty(shape, np_dtype)
    if value is not None:
        out.fill(value)
    return out


def _philox():
    try:
        return importlib.import_module(f"{__package__}.philox")
    except ModuleNotFoundError as e:
        if e.name != f"{__package__}.philox":
            raise  # a broken philox module must not read as "no device generator"
        return None


def random(kind: str, shape: tuple, np_dtype, generator, host_draw, **params) -> array.CudaArray:
    """Random draws of ``kind`` (see the module docstring); ``host_draw()`` gives the same draw on the host."""
    philox = _philox()
    draw = getattr(philox, kind, None) if philox is not None else None
    if draw is not None:
        return draw(shape, np.dtype(np_dtype), generator=generator, **params)
    fallback.note(f"rand:{kind}", "no CUDA random generator; drawing on the host and copying")
    return array.from_host(host_draw())
