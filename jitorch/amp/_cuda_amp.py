"""``jitorch.cuda.amp``: torch's deprecated CUDA-only spellings of autocast and GradScaler.

Each warns (FutureWarning, torch's text) and forwards to :mod:`jitorch.amp` with ``device_type="cuda"``.
"""
from __future__ import annotations

import warnings

from .. import _dtype as D
from . import autocast_mode

__all__ = ["GradScaler", "autocast", "custom_bwd", "custom_fwd"]  # noqa: F822 - GradScaler: module __getattr__


class autocast(autocast_mode.autocast):
    """``jitorch.cuda.amp.autocast(...)``: deprecated, use ``jitorch.amp.autocast("cuda", ...)``."""

    def __init__(self, enabled: bool = True, dtype=D.float16, cache_enabled: bool = True):
        warnings.warn("`torch.cuda.amp.autocast(args...)` is deprecated. Please use "
                      "`torch.amp.autocast('cuda', args...)` instead.", FutureWarning, stacklevel=2)
        super().__init__("cuda", enabled=enabled, dtype=dtype, cache_enabled=cache_enabled)


def _grad_scaler_class():
    from .grad_scaler import GradScaler as _GradScaler

    class GradScaler(_GradScaler):
        """``jitorch.cuda.amp.GradScaler(...)``: deprecated, use ``jitorch.amp.GradScaler("cuda", ...)``."""

        def __init__(self, init_scale: float = 2.0 ** 16, growth_factor: float = 2.0, backoff_factor: float = 0.5,
                     growth_interval: int = 2000, enabled: bool = True) -> None:
            warnings.warn("`torch.cuda.amp.GradScaler(args...)` is deprecated. Please use "
                          "`torch.amp.GradScaler('cuda', args...)` instead.", FutureWarning, stacklevel=2)
            super().__init__("cuda", init_scale=init_scale, growth_factor=growth_factor,
                             backoff_factor=backoff_factor, growth_interval=growth_interval, enabled=enabled)

    GradScaler.__module__ = __name__
    GradScaler.__qualname__ = "GradScaler"
    return GradScaler


def __getattr__(name: str):
    # the GradScaler subclass is made on first use, so importing this module stays cheap
    if name == "GradScaler":
        cls = globals()["GradScaler"] = _grad_scaler_class()
        return cls
    if name == "OptState":
        from .grad_scaler import OptState
        return OptState
    raise AttributeError(f"module 'jitorch.cuda.amp' has no attribute '{name}'")


def custom_fwd(fwd=None, *, cast_inputs=None):
    """Deprecated: ``jitorch.amp.custom_fwd(device_type="cuda", ...)``."""
    warnings.warn("`torch.cuda.amp.custom_fwd(args...)` is deprecated. Please use "
                  "`torch.amp.custom_fwd(args..., device_type='cuda')` instead.", FutureWarning, stacklevel=2)
    return autocast_mode.custom_fwd(fwd, device_type="cuda", cast_inputs=cast_inputs)


def custom_bwd(bwd=None):
    """Deprecated: ``jitorch.amp.custom_bwd(device_type="cuda")``."""
    warnings.warn("`torch.cuda.amp.custom_bwd(args...)` is deprecated. Please use "
                  "`torch.amp.custom_bwd(args..., device_type='cuda')` instead.", FutureWarning, stacklevel=2)
    return autocast_mode.custom_bwd(bwd, device_type="cuda")
