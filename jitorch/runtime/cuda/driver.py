"""Is there a CUDA device, and is it real or Numba's simulator?"""
from __future__ import annotations

import os

_state: dict = {}


def cuda_module():
    """``numba.cuda``, imported on first use; None when numba-cuda is missing or broken."""
    if "cuda" not in _state:
        try:
            from numba import cuda
            _state["cuda"] = cuda
        except Exception as e:  # noqa: BLE001 - any import failure means "no backend"
            _state["cuda"] = None
            _state["import_error"] = f"{type(e).__name__}: {e}"
    return _state["cuda"]


def simulated() -> bool:
    """True when Numba's CUDA simulator stands in for the GPU (read once: numba reads it once too)."""
    s = _state.get("simulated")
    if s is None:
        s = _state["simulated"] = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")
    return s


def available() -> bool:
    if "available" not in _state:
        cuda = cuda_module()
        ok = False
        if cuda is not None:
            try:
                ok = bool(cuda.is_available())
            except Exception as e:  # noqa: BLE001 - a broken driver reads as no device
                _state["import_error"] = f"{type(e).__name__}: {e}"
        _state["available"] = ok
    return _state["available"]


def device_count() -> int:
    if not available():
        return 0
    return len(cuda_module().gpus)


def why_unavailable() -> str:
    if cuda_module() is None:
        return ("numba.cuda could not be imported (" + _state.get("import_error", "numba-cuda missing") +
                "); install the 'cuda' extra: pip install 'jitorch[cuda]'")
    return "no CUDA GPU was found (set NUMBA_ENABLE_CUDASIM=1 to run CUDA code on Numba's simulator)"


def require(index: int | None = None) -> None:
    """Raise torch's error when CUDA is unusable or ``index`` names no device."""
    if not available():
        raise RuntimeError("Found no NVIDIA driver on your system / CUDA is not available: " + why_unavailable())
    if index is not None and index >= device_count():
        raise RuntimeError(
            f"CUDA error: invalid device ordinal (device {index} requested, {device_count()} available)")
