"""``jitorch.autocast``: regions where matrix products run in half precision.

The state is per thread and per device type, as in torch: whether autocast is
on for ``"cuda"`` / ``"cpu"``, the lower-precision dtype of each (float16 on
CUDA, bfloat16 on the CPU by default), whether casts of weights are cached,
and how deeply autocast regions are nested (the cast cache is cleared when the
outermost region exits).  Which ops cast their inputs to what is decided in
:mod:`jitorch.amp.policy`; ops call ``policy.cast_inputs`` at their entry.
"""
from __future__ import annotations

import functools
import threading
import warnings

from .. import _dtype as D

DEVICE_TYPES = ("cuda", "cpu")
_SUPPORTED = (D.bfloat16, D.float16)


class _State(threading.local):
    def __init__(self):
        self.enabled = {"cuda": False, "cpu": False}
        self.dtype = {"cuda": D.float16, "cpu": D.bfloat16}
        self.active = False  # any device type enabled: the one test the ops' hot paths make
        self.cache_enabled = True
        self.nesting = 0
        self.cache: dict = {}  # see policy.cached_cast


state = _State()


def _device_type(device_type) -> str:
    if device_type not in DEVICE_TYPES:
        raise RuntimeError(f"User specified an unsupported autocast device_type '{device_type}'")
    return device_type


def is_autocast_available(device_type: str) -> bool:
    """Whether autocast supports ``device_type`` (``"cuda"`` and ``"cpu"``)."""
    return device_type in DEVICE_TYPES


def is_autocast_enabled(device_type: str | None = None) -> bool:
    """Is autocast on for ``device_type`` in this thread?  No argument means CUDA, as in torch."""
    return state.enabled[_device_type(device_type or "cuda")]


def set_autocast_enabled(device_type, enabled=None) -> None:
    """``set_autocast_enabled(device_type, enabled)`` (or the legacy ``set_autocast_enabled(enabled)`` for CUDA)."""
    if enabled is None:
        device_type, enabled = "cuda", device_type
    state.enabled[_device_type(device_type)] = bool(enabled)
    state.active = any(state.enabled.values())


def get_autocast_dtype(device_type: str) -> D.dtype:
    """The lower-precision dtype autocast uses on ``device_type``."""
    return state.dtype[_device_type(device_type)]


def set_autocast_dtype(device_type: str, dtype) -> None:
    state.dtype[_device_type(device_type)] = D.to_dtype(dtype)


def is_autocast_cpu_enabled() -> bool:
    return state.enabled["cpu"]


def set_autocast_cpu_enabled(enabled: bool) -> None:
    set_autocast_enabled("cpu", enabled)


def get_autocast_gpu_dtype() -> D.dtype:
    return state.dtype["cuda"]


def get_autocast_cpu_dtype() -> D.dtype:
    return state.dtype["cpu"]


def is_autocast_cache_enabled() -> bool:
    return state.cache_enabled


def set_autocast_cache_enabled(enabled: bool) -> None:
    state.cache_enabled = bool(enabled)


def clear_autocast_cache() -> None:
    state.cache.clear()


def autocast_increment_nesting() -> int:
    state.nesting += 1
    return state.nesting


def autocast_decrement_nesting() -> int:
    state.nesting -= 1
    return state.nesting


class autocast:
    """Context manager and decorator: run the region's ops in mixed precision.

    Inside, products (``matmul``, ``mm``, ``bmm``, ``addmm``, ``linear``,
    convolutions) cast floating inputs on ``device_type`` to ``dtype``
    (default float16 on CUDA, bfloat16 on the CPU) and return that dtype; ops
    that need range (softmax, log_softmax, layer_norm, losses, sums on CUDA)
    run in float32.  The casts are differentiable: gradients reach float32
    parameters in float32.  Regions nest; ``enabled=False`` turns autocast off
    inside a region.

    >>> import jitorch
    >>> a = jitorch.ones(2, 3)
    >>> with jitorch.autocast("cpu"):
    ...     (a @ a.t()).dtype
    jitorch.bfloat16
    """

    def __init__(self, device_type: str, dtype=None, enabled: bool = True, cache_enabled: bool | None = None):
        if not isinstance(device_type, str):
            raise ValueError(f"Expected `device_type` of type `str`, got: `{type(device_type)}`")  # noqa: TRY004 - torch
        self.device = _device_type(device_type)
        self.fast_dtype = get_autocast_dtype(device_type) if dtype is None else D.to_dtype(dtype)
        self._cache_enabled = is_autocast_cache_enabled() if cache_enabled is None else bool(cache_enabled)
        if enabled:
            name = device_type.upper()
            if device_type == "cuda" and not _cuda_available():
                warnings.warn("CUDA is not available or torch_xla is imported. Disabling autocast.", stacklevel=2)
                enabled = False
            elif self.fast_dtype not in _SUPPORTED:
                warnings.warn(f"In {name} autocast, but the target dtype is not supported. Disabling autocast.\n"
                              f"{name} Autocast only supports dtypes of jitorch.bfloat16, jitorch.float16 currently.",
                              stacklevel=2)
                enabled = False
        self._enabled = bool(enabled)

    def __enter__(self):
        self.prev_cache_enabled = state.cache_enabled
        self.prev = state.enabled[self.device]
        self.prev_fastdtype = state.dtype[self.device]
        set_autocast_enabled(self.device, self._enabled)
        state.dtype[self.device] = self.fast_dtype
        autocast_increment_nesting()
        state.cache_enabled = self._cache_enabled
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        if autocast_decrement_nesting() == 0:
            clear_autocast_cache()  # cached weight casts live for one forward pass
        set_autocast_enabled(self.device, self.prev)
        state.dtype[self.device] = self.prev_fastdtype
        state.cache_enabled = self.prev_cache_enabled
        return False

    def __call__(self, func):
        if not callable(func):
            raise TypeError(f"autocast()(func) requires a callable, but got {type(func).__name__}. Did you mean "
                            "to use autocast as a context manager? For example:\n"
                            "    with jitorch.autocast(device_type=...):\n"
                            "        output = model(input)")

        @functools.wraps(func)
        def decorate_autocast(*args, **kwargs):
            with self:
                return func(*args, **kwargs)

        return decorate_autocast


def _cuda_available() -> bool:
    from .. import cuda
    return cuda.is_available()


# -- custom autograd Functions ------------------------------------------------------------------------------

def _cast(value, device_type: str, dtype):
    """``value`` with every eligible floating tensor inside it cast to ``dtype`` (containers walked)."""
    from .._tensor import Tensor
    if isinstance(value, Tensor):
        eligible = value.is_floating_point() and value.device.type == device_type and value.dtype is not D.float64
        return value.to(dtype) if eligible else value
    if isinstance(value, (str, bytes)):
        return value
    if isinstance(value, dict):
        return {_cast(k, device_type, dtype): _cast(v, device_type, dtype) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        out = [_cast(v, device_type, dtype) for v in value]
        return type(value)(out) if isinstance(value, list) else tuple(out)
    return value


def custom_fwd(fwd=None, *, device_type: str, cast_inputs=None):
    """Decorate a custom Function's ``forward``: with ``cast_inputs``, it runs with autocast off on inputs
    cast to that dtype (when called in an autocast region); without, it runs under the caller's state."""
    if not isinstance(device_type, str):
        raise ValueError(f"Expected `device_type` of type `str`, got: `{type(device_type)}`")  # noqa: TRY004 - torch
    if fwd is None:
        return functools.partial(custom_fwd, device_type=device_type, cast_inputs=cast_inputs)

    @functools.wraps(fwd)
    def decorate_fwd(*args, **kwargs):
        ctx = args[0]
        ctx._dtype = get_autocast_dtype(device_type)
        if cast_inputs is None:
            ctx._fwd_used_autocast = is_autocast_enabled(device_type)
            return fwd(*args, **kwargs)
        ctx._fwd_used_autocast = False
        if is_autocast_enabled(device_type):
            with autocast(device_type=device_type, enabled=False):
                return fwd(*_cast(args, device_type, cast_inputs), **_cast(kwargs, device_type, cast_inputs))
        return fwd(*args, **kwargs)

    return decorate_fwd


def custom_bwd(bwd=None, *, device_type: str):
    """Decorate a custom Function's ``backward``: it runs under the autocast state its forward saw."""
    if not isinstance(device_type, str):
        raise ValueError(f"Expected `device_type` of type `str`, got: `{type(device_type)}`")  # noqa: TRY004 - torch
    if bwd is None:
        return functools.partial(custom_bwd, device_type=device_type)

    @functools.wraps(bwd)
    def decorate_bwd(*args, **kwargs):
        ctx = args[0]
        with autocast(device_type=device_type, enabled=ctx._fwd_used_autocast, dtype=ctx._dtype):
            return bwd(*args, **kwargs)

    return decorate_bwd
