"""``jitorch.amp.GradScaler``: dynamic loss scaling for half-precision training, as torch's.

The loss is multiplied by ``scale`` before ``backward`` so small float16
gradients do not flush to zero; ``step`` divides the gradients by it again
and skips the optimizer step when any of them overflowed (inf/NaN), and
``update`` halves the scale after an overflow and doubles it after
``growth_interval`` clean steps.  Same algorithm, same state and the same
scale sequence as torch for the same pattern of overflows.

The scale, growth tracker and overflow flags are tensors on the loss's device;
on CUDA the check-and-unscale pass and the scale update are device kernels
(``runtime/cuda/amp_kernels.py``), so the only host synchronization is the
flag read in ``step``, as in torch.
"""
from __future__ import annotations

import warnings
from collections import abc, defaultdict
from enum import Enum
from typing import Any

from .. import _dtype as D


class OptState(Enum):
    READY = 0
    UNSCALED = 1
    STEPPED = 2


def _refresh_per_optimizer_state() -> dict:
    return {"stage": OptState.READY, "found_inf_per_device": {}}


class _MultiDeviceReplicator:
    """Copies of one tensor on the devices that ask for it (made once per device)."""

    def __init__(self, master):
        self.master = master
        self._per_device_tensors: dict = {}

    def get(self, device):
        t = self._per_device_tensors.get(device)
        if t is None:
            t = self._per_device_tensors[device] = self.master.to(device=device, copy=True)
        return t


class GradScaler:
    """Scale the loss, unscale and check the gradients, skip steps that overflowed.

    >>> import jitorch
    >>> w = jitorch.nn.Parameter(jitorch.ones(2))
    >>> opt = jitorch.optim.SGD([w], lr=0.1)
    >>> scaler = jitorch.amp.GradScaler("cpu", init_scale=4.0)
    >>> scaler.scale((w * 3).sum()).backward()
    >>> w.grad.tolist()
    [12.0, 12.0]
    >>> scaler.step(opt); scaler.update()
    >>> w.grad.tolist(), scaler.get_scale()
    ([3.0, 3.0], 4.0)
    """

    def __init__(self, device: str = "cuda", init_scale: float = 2.0 ** 16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000, enabled: bool = True) -> None:
        self._device = device
        self._enabled = enabled
        if device == "cuda" and enabled and not _cuda_available():
            warnings.warn("torch.cuda.amp.GradScaler is enabled, but CUDA is not available.  Disabling.",
                          stacklevel=2)
            self._enabled = False
        if self._enabled:
            if growth_factor <= 1.0:
                raise AssertionError("The growth factor must be > 1.0.")
            if backoff_factor >= 1.0:
                raise AssertionError("The backoff factor must be < 1.0.")
            self._init_scale = init_scale
            self._scale = None
            self._growth_factor = growth_factor
            self._backoff_factor = backoff_factor
            self._growth_interval = growth_interval
            self._init_growth_tracker = 0
            self._growth_tracker = None
            self._per_optimizer_states: dict = defaultdict(_refresh_per_optimizer_state)

    # -- state ------------------------------------------------------------------------------------------
    def _check_scale_growth_tracker(self, funcname: str):
        fix = "This may indicate your script did not use scaler.scale(loss or outputs) earlier in the iteration."
        if self._scale is None:
            raise AssertionError(f"Attempted {funcname} but _scale is None.  " + fix)
        if self._growth_tracker is None:
            raise AssertionError(f"Attempted {funcname} but _growth_tracker is None.  " + fix)
        return self._scale, self._growth_tracker

    def _lazy_init_scale_growth_tracker(self, dev) -> None:
        import jitorch
        if self._growth_tracker is not None:
            raise AssertionError("_growth_tracker initialized before _scale")
        self._scale = jitorch.full((), self._init_scale, dtype=D.float32, device=dev)
        self._growth_tracker = jitorch.full((), self._init_growth_tracker, dtype=D.int32, device=dev)

    # -- scale ------------------------------------------------------------------------------------------
    def scale(self, outputs):
        """``outputs`` (a tensor or an iterable of tensors) multiplied by the current scale."""
        from .._tensor import Tensor
        if not self._enabled:
            return outputs
        if isinstance(outputs, Tensor):
            if self._scale is None:
                self._lazy_init_scale_growth_tracker(outputs.device)
            return outputs * self._scale.to(device=outputs.device)
        stash: list = []

        def apply_scale(val):
            if isinstance(val, Tensor):
                if not stash:
                    if self._scale is None:
                        self._lazy_init_scale_growth_tracker(val.device)
                    stash.append(_MultiDeviceReplicator(self._scale))
                return val * stash[0].get(val.device)
            if isinstance(val, abc.Iterable):
                it = map(apply_scale, val)
                return type(val)(it) if isinstance(val, (list, tuple)) else it
            raise ValueError("outputs must be a Tensor or an iterable of Tensors")

        return apply_scale(outputs)

    # -- unscale ------------------------------------------------------------------------------------------
    def _unscale_grads_(self, optimizer, inv_scale, found_inf, allow_fp16: bool) -> dict:
        from ..autograd import grad_mode
        per_device_inv_scale = _MultiDeviceReplicator(inv_scale)
        per_device_found_inf = _MultiDeviceReplicator(found_inf)
        with grad_mode.no_grad():
            for group in optimizer.param_groups:
                for param in group["params"]:
                    g = param.grad
                    if g is None:
                        continue
                    if not allow_fp16 and g.dtype is D.float16:
                        raise ValueError("Attempting to unscale FP16 gradients.")
                    dev = g.device
                    _check_and_unscale(g, per_device_found_inf.get(dev), per_device_inv_scale.get(dev))
        return per_device_found_inf._per_device_tensors

    def unscale_(self, optimizer) -> None:
        """Divide ``optimizer``'s gradients by the scale (once per step), recording whether any overflowed."""
        if not self._enabled:
            return
        self._check_scale_growth_tracker("unscale_")
        optimizer_state = self._per_optimizer_states[id(optimizer)]
        if optimizer_state["stage"] is OptState.UNSCALED:
            raise RuntimeError("unscale_() has already been called on this optimizer since the last update().")
        if optimizer_state["stage"] is OptState.STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        import jitorch
        inv_scale = self._scale.double().reciprocal().float()
        found_inf = jitorch.full((), 0.0, dtype=D.float32, device=self._scale.device)
        optimizer_state["found_inf_per_device"] = self._unscale_grads_(optimizer, inv_scale, found_inf, False)
        optimizer_state["stage"] = OptState.UNSCALED

    # -- step / update ------------------------------------------------------------------------------------
    def _maybe_opt_step(self, optimizer, optimizer_state, *args, **kwargs):
        retval = None
        if not sum(v.item() for v in optimizer_state["found_inf_per_device"].values()):
            retval = optimizer.step(*args, **kwargs)
        return retval

    def step(self, optimizer, *args, **kwargs):
        """Unscale (if not done yet) and run ``optimizer.step(*args, **kwargs)`` unless a gradient overflowed."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is enabled.")
        self._check_scale_growth_tracker("step")
        optimizer_state = self._per_optimizer_states[id(optimizer)]
        if optimizer_state["stage"] is OptState.STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if optimizer_state["stage"] is OptState.READY:
            self.unscale_(optimizer)
        if len(optimizer_state["found_inf_per_device"]) == 0:
            raise AssertionError("No inf checks were recorded for this optimizer.")
        retval = self._maybe_opt_step(optimizer, optimizer_state, *args, **kwargs)
        optimizer_state["stage"] = OptState.STEPPED
        return retval

    def update(self, new_scale=None) -> None:
        """Back off after an overflow, grow after ``growth_interval`` clean steps (or set ``new_scale``)."""
        if not self._enabled:
            return
        _scale, _growth_tracker = self._check_scale_growth_tracker("update")
        if new_scale is not None:
            if isinstance(new_scale, float):
                self._scale.fill_(new_scale)
            else:
                reason = ("new_scale should be a float or a 1-element torch.cuda.FloatTensor or "
                          "torch.FloatTensor with requires_grad=False.")
                if new_scale.device.type != self._device:
                    raise AssertionError(reason)
                if new_scale.numel() != 1:
                    raise AssertionError(reason)
                if new_scale.requires_grad is True:
                    raise AssertionError(reason)
                self._scale.copy_(new_scale)
        else:
            found_infs = [found_inf.to(device=_scale.device)
                          for state in self._per_optimizer_states.values()
                          for found_inf in state["found_inf_per_device"].values()]
            if len(found_infs) == 0:
                raise AssertionError("No inf checks were recorded prior to update.")
            found_inf_combined = found_infs[0]
            for extra in found_infs[1:]:
                found_inf_combined += extra
            _update_scale(_scale, _growth_tracker, found_inf_combined, self._growth_factor, self._backoff_factor,
                          self._growth_interval)
        self._per_optimizer_states = defaultdict(_refresh_per_optimizer_state)

    # -- accessors ----------------------------------------------------------------------------------------
    def _get_scale_async(self):
        return self._scale

    def get_scale(self) -> float:
        """The current scale as a Python float (1.0 when disabled); reads it from the device."""
        if self._enabled:
            return self._init_scale if self._scale is None else self._scale.item()
        return 1.0

    def get_growth_factor(self) -> float:
        return self._growth_factor

    def set_growth_factor(self, new_factor: float) -> None:
        self._growth_factor = new_factor

    def get_backoff_factor(self) -> float:
        return self._backoff_factor

    def set_backoff_factor(self, new_factor: float) -> None:
        self._backoff_factor = new_factor

    def get_growth_interval(self) -> int:
        return self._growth_interval

    def set_growth_interval(self, new_interval: int) -> None:
        self._growth_interval = new_interval

    def _get_growth_tracker(self) -> int:
        if self._enabled:
            return self._init_growth_tracker if self._growth_tracker is None else int(self._growth_tracker.item())
        return 0

    def is_enabled(self) -> bool:
        return self._enabled

    def state_dict(self) -> dict[str, Any]:
        """``scale``, ``growth_factor``, ``backoff_factor``, ``growth_interval``, ``_growth_tracker`` ({} if disabled)."""
        if self._enabled:
            return {"scale": self.get_scale(), "growth_factor": self._growth_factor,
                    "backoff_factor": self._backoff_factor, "growth_interval": self._growth_interval,
                    "_growth_tracker": self._get_growth_tracker()}
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError("The source state dict is empty, possibly because it was saved from a disabled "
                               "instance of GradScaler.")
        self._init_scale = float(state_dict["scale"])
        if self._scale is not None:
            self._scale.fill_(state_dict["scale"])
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._init_growth_tracker = int(state_dict["_growth_tracker"])
        if self._growth_tracker is not None:
            self._growth_tracker.fill_(state_dict["_growth_tracker"])

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if self._enabled:
            if len(self._per_optimizer_states) != 0:
                raise AssertionError("A GradScaler instance may only be pickled at the beginning of an iteration, "
                                     "or at the end after scaler.update().")
            # the tensors are rebuilt lazily from plain numbers
            state["_init_scale"] = self.get_scale()
            state["_init_growth_tracker"] = self._get_growth_tracker()
            state["_scale"] = None
            state["_growth_tracker"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def _check_inf_per_device(self, optimizer) -> dict:
        """Record overflow flags for ``optimizer``'s gradients without unscaling them (fp16 allowed)."""
        import jitorch
        scale, _ = self._check_scale_growth_tracker("_check_inf_per_device")
        dummy_inv_scale = jitorch.full((), 1.0, dtype=D.float32, device=scale.device)
        found_inf = jitorch.full((), 0.0, dtype=D.float32, device=scale.device)
        self._per_optimizer_states[id(optimizer)]["found_inf_per_device"] = self._unscale_grads_(
            optimizer, dummy_inv_scale, found_inf, True)
        return self._per_optimizer_states[id(optimizer)]["found_inf_per_device"]

    def _found_inf_per_device(self, optimizer) -> dict:
        return self._per_optimizer_states[id(optimizer)]["found_inf_per_device"]


def _cuda_available() -> bool:
    from .. import cuda
    return cuda.is_available()


# -- the two primitives, per device -----------------------------------------------------------------------

def _check_and_unscale(g, found_inf, inv_scale) -> None:
    """``g *= inv_scale`` in place; ``found_inf`` becomes 1 if ``g`` had an inf or NaN (no host sync on CUDA)."""
    if g._device.type == "cuda":
        from ..runtime.cuda import amp_kernels
        if amp_kernels.supports(g._data):
            amp_kernels.check_and_unscale(g._data, found_inf._data, inv_scale._data)
            g._version[0] += 1
            return
    elif g._dtype is D.float32 or g._dtype is D.float64:
        import numpy as np
        arr = g._data
        if not np.isfinite(arr).all():
            found_inf._data[...] = 1.0
        arr *= inv_scale._data.astype(arr.dtype)
        g._version[0] += 1
        return
    # half/bfloat16 or strided gradients: the same with tensor ops (still no host read)
    import jitorch
    bad = (~jitorch.isfinite(g)).any().to(D.float32)
    found_inf.copy_(jitorch.maximum(found_inf, bad))
    g.mul_(inv_scale)


def _update_scale(scale, tracker, found_inf, growth: float, backoff: float, interval: int) -> None:
    """torch's ``_amp_update_scale_``: scale and tracker updated in place from the overflow flag."""
    if scale._device.type == "cuda":
        from ..runtime.cuda import amp_kernels
        amp_kernels.update_scale(scale._data, tracker._data, found_inf._data, growth, backoff, interval)
    else:
        import numpy as np
        s = scale._data
        if float(found_inf._data) != 0:
            s[...] = np.float32(float(s) * backoff)
            tracker._data[...] = 0
        else:
            t = int(tracker._data) + 1
            if t == interval:
                new = np.float32(float(s) * growth)
                if np.isfinite(new):
                    s[...] = new
                tracker._data[...] = 0
            else:
                tracker._data[...] = t
    scale._version[0] += 1
    tracker._version[0] += 1
