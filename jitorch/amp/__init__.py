"""Automatic mixed precision: ``autocast`` regions and ``GradScaler``, like ``torch.amp``.

>>> import jitorch
>>> with jitorch.autocast("cpu", dtype=jitorch.bfloat16):
...     y = jitorch.ones(2, 2) @ jitorch.ones(2, 2)
>>> y.dtype
jitorch.bfloat16
"""
from __future__ import annotations

# every autocast function is exported here and, through jitorch's lazy __getattr__, as jitorch.<name>
from .autocast_mode import (  # noqa: F401
    autocast,
    autocast_decrement_nesting,
    autocast_increment_nesting,
    clear_autocast_cache,
    custom_bwd,
    custom_fwd,
    get_autocast_cpu_dtype,
    get_autocast_dtype,
    get_autocast_gpu_dtype,
    is_autocast_available,
    is_autocast_cache_enabled,
    is_autocast_cpu_enabled,
    is_autocast_enabled,
    set_autocast_cache_enabled,
    set_autocast_cpu_enabled,
    set_autocast_dtype,
    set_autocast_enabled,
)

__all__ = ["GradScaler", "autocast", "custom_bwd", "custom_fwd", "is_autocast_available"]

# what ``jitorch.<name>`` resolves to through jitorch's lazy ``__getattr__``
_TOP_LEVEL = ("autocast", "is_autocast_enabled", "set_autocast_enabled", "get_autocast_dtype", "set_autocast_dtype",
              "get_autocast_gpu_dtype", "get_autocast_cpu_dtype", "is_autocast_cpu_enabled",
              "set_autocast_cpu_enabled", "is_autocast_cache_enabled", "set_autocast_cache_enabled",
              "clear_autocast_cache", "autocast_increment_nesting", "autocast_decrement_nesting",
              "is_autocast_available")


def __getattr__(name: str):
    # GradScaler loads on first use: ``import jitorch`` (whose products import this package) stays lean
    if name in ("GradScaler", "OptState"):
        from . import grad_scaler
        return getattr(grad_scaler, name)
    raise AttributeError(f"module 'jitorch.amp' has no attribute '{name}'")


def _export(name: str):
    """The object ``jitorch.<name>`` stands for: this package, a dtype, finfo/iinfo, or an autocast function."""
    from .. import _dtype
    if name == "amp":
        import sys
        return sys.modules[__name__]
    if name in ("bfloat16", "finfo", "iinfo"):
        return getattr(_dtype, name)
    if name in _TOP_LEVEL:
        return globals()[name]
    raise AttributeError(f"module 'jitorch' has no attribute '{name}'")




def _register_cuda_amp() -> None:
    """Make ``import jitorch.cuda.amp`` (torch's deprecated spelling) work; ``jitorch.cuda`` is a module, not a
    package.  The attribute ``jitorch.cuda.amp`` is set here only if ``jitorch.cuda`` is already loaded."""
    import sys

    from . import _cuda_amp
    sys.modules.setdefault("jitorch.cuda.amp", _cuda_amp)
    cuda = sys.modules.get("jitorch.cuda")
    if cuda is not None and not hasattr(cuda, "amp"):
        cuda.amp = _cuda_amp


_register_cuda_amp()
