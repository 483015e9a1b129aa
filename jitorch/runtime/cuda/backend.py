"""Loads the CUDA op implementations on first CUDA use.

Every ``ops_<family>.py`` module in this package registers ``op.impl["cuda"]``
functions when imported.  They are imported here, all at once, the first time a
CUDA device is named (``runtime.device.canonical``) or a CUDA op is dispatched,
so ``import jitorch`` never imports numba.cuda and adding an op family means
only adding a module.
"""
from __future__ import annotations

import importlib
import pkgutil

_loaded: list = []


def load() -> None:
    """Import every ``ops_*`` module of this package (once)."""
    if _loaded:
        return
    _loaded.append(True)  # set first: an ops module may name a CUDA device while importing
    from . import __path__ as pkg_path
    names = sorted(m.name for m in pkgutil.iter_modules(pkg_path) if m.name.startswith("ops_"))
    try:
        for name in names:
            importlib.import_module(f"{__package__}.{name}")
    except BaseException:
        _loaded.clear()  # let the next CUDA call retry (and report) instead of running half-registered
        raise


def loaded() -> bool:
    return bool(_loaded)
