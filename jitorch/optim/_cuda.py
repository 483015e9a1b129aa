"""The CUDA path of the optimizers: parameters whose data lives on a CUDA device.

Each optimizer's ``_update_group`` keeps one loop over its parameters and
hands a CUDA parameter to :func:`step`, which launches the fused kernel of
``runtime/cuda/optim_kernels.py`` (the twin of the CPU kernel in
``_fused.py``) on the parameter, its gradient and its state buffers, all on
the parameter's device.  numba.cuda is imported only when a CUDA parameter
is seen.
"""
from __future__ import annotations


def is_cuda(p) -> bool:
    """True when tensor ``p`` keeps its data on a CUDA device."""
    return getattr(p._data, "is_cuda_array", False)


def step(algo: str, p, grad, state: dict, scalars: dict, flags: dict) -> None:
    """One fused ``algo`` update of parameter tensor ``p`` with gradient tensor ``grad``.

    ``state`` maps the kernel's buffer names to state tensors (or None when
    the options do not use them); every tensor must be on ``p``'s device.
    """
    from ..runtime.cuda import optim_kernels
    if not is_cuda(grad):
        raise RuntimeError(f"Expected all tensors to be on the same device, but found at least two devices, "
                           f"{p.device} and {grad.device}!")
    arrays = {}
    for name, t in state.items():
        if t is not None and not is_cuda(t):
            raise RuntimeError(f"optimizer state '{name}' is on {t.device} but its parameter is on {p.device}; "
                               "load_state_dict moves state to the parameter's device")
        arrays[name] = t._data if t is not None else None
    optim_kernels.step(algo, p._data, grad._data, arrays, scalars, flags)
