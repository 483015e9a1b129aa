"""In-place random fills: ``Tensor.uniform_``, ``normal_``, ``bernoulli_``, ``random_``...

Draws come from a ``jitorch.Generator`` (the default one unless given), so
``jitorch.manual_seed`` makes them reproducible.  They are not differentiable:
like torch, filling a tensor replaces its values, so no history is recorded.
A CUDA tensor is filled on its device by the Philox kernels (from the CUDA
default generator, or a ``Generator(device="cuda")``): no host numbers, no copy.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _dtype as D
from .._dispatch import _check_inplace, _state, replayable_random
from .._tensor import Tensor
from .random import host_rng

__all__: list[str] = []
TENSOR_METHODS = ("uniform_", "normal_", "bernoulli_", "random_", "exponential_", "geometric_", "log_normal_",
                  "cauchy_")


def _rng(generator):
    from .._dispatch import note_random_draw
    note_random_draw()
    return host_rng(generator)


def _on_device(t: Tensor) -> bool:
    return t._device.type != "cpu"


def _fill_device(t: Tensor, kind: str, *params, generator=None) -> Tensor:
    """Fill a device tensor in place with the Philox draws of ``kind`` (a fill: its history ends here)."""
    from .._dispatch import note_random_draw
    from ..runtime.cuda import philox
    note_random_draw()
    if _state.grad_enabled:
        _check_inplace(t)
    if _state.grad_enabled and t._grad_fn is not None:  # drawn into a fresh array, then copied with history
        from .creation import empty
        fresh = empty(tuple(t.shape), dtype=t._dtype, device=t._device)
        philox.fill_(kind, fresh._data, *params, generator=generator)
        return t.copy_(fresh)
    philox.fill_(kind, t._data, *params, generator=generator)
    t._version[0] += 1
    return t


def _draw_dtype(t: Tensor):
    # float64 tensors get float64 draws; everything else draws in float32 (like jitorch.rand)
    return np.float64 if t._dtype is D.float64 else np.float32


def _write(t: Tensor, values: np.ndarray) -> Tensor:
    """Store ``values`` into ``t`` in place (a fill: any history of ``t`` ends here)."""
    if _state.grad_enabled:
        _check_inplace(t)
    if t._dtype is D.bfloat16:
        values = D.to_storage(np.asarray(values, dtype=np.float32), t._dtype)  # bit patterns, rounded once
    if _state.grad_enabled and t._grad_fn is not None:
        from .creation import from_numpy
        return t.copy_(from_numpy(np.ascontiguousarray(values)))
    t._data[...] = values
    t._version[0] += 1
    return t


def _need_float(t: Tensor, name: str) -> None:
    if not t._dtype.is_floating_point:
        raise RuntimeError(f"\"{name}\" not implemented for '{t._type_name().replace('Tensor', '')}'")


@replayable_random
def uniform_(self: Tensor, a: float = 0.0, b: float = 1.0, *, generator=None) -> Tensor:
    """Fill with samples from U(a, b).

    >>> import jitorch
    >>> x = jitorch.empty(3).uniform_(-1, 1)
    >>> bool(((x >= -1) & (x < 1)).all())
    True
    """
    _need_float(self, "check_uniform_bounds")
    a, b = float(a), float(b)
    if a > b:
        raise RuntimeError(f"uniform_ expects to return a [from, to) range, but found from={a} > to={b}")
    if _on_device(self):
        return _fill_device(self, "uniform_", a, b, generator=generator)
    u = _rng(generator).random(self.shape, dtype=_draw_dtype(self))
    return _write(self, a + (b - a) * u)


@replayable_random
def normal_(self: Tensor, mean: float = 0.0, std: float = 1.0, *, generator=None) -> Tensor:
    """Fill with samples from N(mean, std**2)."""
    _need_float(self, "normal_kernel_cpu")
    if std < 0:
        raise RuntimeError(f"normal expects std >= 0.0, but found std {std}")
    if _on_device(self):
        return _fill_device(self, "normal_", float(mean), float(std), generator=generator)
    z = _rng(generator).standard_normal(self.shape, dtype=_draw_dtype(self))
    return _write(self, float(mean) + float(std) * z)


@replayable_random
def bernoulli_(self: Tensor, p=0.5, *, generator=None) -> Tensor:
    """Fill with 1 with probability ``p`` (a float or a broadcastable tensor), else 0."""
    if _on_device(self):
        if isinstance(p, Tensor):
            p = p.to(self._device)
            if p.numel() and bool(((p < 0) | (p > 1)).any()):
                raise RuntimeError(f"bernoulli_ expects p to be in [0, 1], but got p={p}")
            return _fill_device(self, "bernoulli_", p.detach()._data, generator=generator)
        if not 0 <= float(p) <= 1:
            raise RuntimeError(f"bernoulli_ expects p to be in [0, 1], but got p={p}")
        return _fill_device(self, "bernoulli_", float(p), generator=generator)
    probs = D.host_values(p._host()) if isinstance(p, Tensor) else float(p)
    if np.any((np.asarray(probs) < 0) | (np.asarray(probs) > 1)):
        raise RuntimeError(f"bernoulli_ expects p to be in [0, 1], but got p={p}")
    u = _rng(generator).random(self.shape)
    hit = u < probs
    return _write(self, hit.astype(np.float32) if self._dtype is D.bfloat16 else hit.astype(self._dtype.numpy_dtype))


@replayable_random
def random_(self: Tensor, from_: int = 0, to: int | None = None, *, generator=None, **kwargs) -> Tensor:
    """Fill with integers uniform on [from, to); ``random_(to)`` means [0, to)."""
    if "from" in kwargs:
        from_ = kwargs.pop("from")
    if kwargs:
        raise TypeError(f"random_() got unexpected keyword arguments {sorted(kwargs)}")
    if to is None and from_ != 0:
        from_, to = 0, from_
    if to is None:
        if self._dtype.is_floating_point:
            to = 2 ** (D.finfo(self._dtype).nmant + 1) + 1
        elif self._dtype is D.bool_:
            to = 2
        else:
            to = int(np.iinfo(self._dtype.numpy_dtype).max) + 1
    if from_ >= to:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={from_} >= to={to}")
    if _on_device(self):
        return _fill_device(self, "random_", int(from_), int(to), generator=generator)
    vals = _rng(generator).integers(from_, to, size=self.shape, dtype=np.int64)
    return _write(self, vals.astype(self._dtype.numpy_dtype))


@replayable_random
def exponential_(self: Tensor, lambd: float = 1.0, *, generator=None) -> Tensor:
    """Fill with samples from the exponential distribution with rate ``lambd``."""
    _need_float(self, "exponential_cpu")
    if lambd <= 0:
        raise RuntimeError(f"exponential_ expects lambda > 0.0, but found lambda={lambd}")
    if _on_device(self):
        return _fill_device(self, "exponential_", float(lambd), generator=generator)
    e = _rng(generator).standard_exponential(self.shape, dtype=_draw_dtype(self))
    return _write(self, e / float(lambd))


@replayable_random
def geometric_(self: Tensor, p: float, *, generator=None) -> Tensor:
    """Fill with the number of Bernoulli(p) trials up to the first success (>= 1)."""
    if not 0 < p < 1:
        raise RuntimeError(f"geometric_ expects p to be in (0, 1), but got p={p}")
    if _on_device(self):
        return _fill_device(self, "geometric_", float(p), generator=generator)
    return _write(self, _rng(generator).geometric(p, size=self.shape).astype(self._dtype.numpy_dtype))


@replayable_random
def log_normal_(self: Tensor, mean: float = 1.0, std: float = 2.0, *, generator=None) -> Tensor:
    """Fill with ``exp(N(mean, std**2))`` samples."""
    _need_float(self, "log_normal_cpu")
    if std <= 0:
        raise RuntimeError(f"log_normal_ expects std > 0.0, but found std={std}")
    if _on_device(self):
        return _fill_device(self, "log_normal_", float(mean), float(std), generator=generator)
    z = _rng(generator).standard_normal(self.shape)
    return _write(self, np.exp(float(mean) + float(std) * z))


@replayable_random
def cauchy_(self: Tensor, median: float = 0.0, sigma: float = 1.0, *, generator=None) -> Tensor:
    """Fill with samples from the Cauchy distribution."""
    _need_float(self, "cauchy_cpu")
    if _on_device(self):
        return _fill_device(self, "cauchy_", float(median), float(sigma), generator=generator)
    u = _rng(generator).random(self.shape)
    return _write(self, float(median) + float(sigma) * np.tan(math.pi * (u - 0.5)))
