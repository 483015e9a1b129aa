"""Full state dicts of FSDP models: original names and full values, gathered or scattered.

The keys are those of the unwrapped model (no ``_fsdp_wrapped_module.``, no
flat parameters), in the order its own ``state_dict()`` would list them.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ..._tensor import Tensor, wrap
from ...autograd import grad_mode
from ..objects import broadcast_object_list
from ..utils import broadcast_coalesced


def _entries(mod, prefix: str):
    """(key, kind, payload): kind "flat" (payload: (handle, info)), "tensor" or "extra" (payload: module)."""
    from .fully_sharded_data_parallel import (
        FSDP_WRAPPED_MODULE,
        FullyShardedDataParallel,
    )
    if isinstance(mod, FullyShardedDataParallel):
        yield from _entries(mod._modules[FSDP_WRAPPED_MODULE], prefix)
        return
    slots = mod.__dict__.get("_fsdp_slots", {})
    for name, p in mod._parameters.items():
        if p is None:
            if name in slots:
                yield prefix + name, "flat", slots[name]
        elif not getattr(p, "_fsdp_flat", False):
            yield prefix + name, "tensor", p
    for name, b in mod._buffers.items():
        if b is not None and name not in mod._non_persistent_buffers_set:
            yield prefix + name, "tensor", b
    if mod._has_extra_state():
        yield prefix + "_extra_state", "extra", mod
    for name, child in mod._modules.items():
        if child is not None:
            yield from _entries(child, prefix + name + ".")


def _units_with_handles(root):
    from .fully_sharded_data_parallel import FullyShardedDataParallel
    return [u for u in FullyShardedDataParallel.fsdp_modules(root) if u._handle is not None]


def full_state_dict(root, prefix: str, destination, rank0_only: bool):
    """Every rank takes part in the all-gathers; with ``rank0_only`` only rank 0 fills the dict."""
    fulls = {id(u._handle): u._handle.gathered_copy() for u in _units_with_handles(root)}
    if destination is None:
        destination = OrderedDict()
    if rank0_only and root.process_group.rank() != 0:
        return destination
    for key, kind, payload in _entries(root, prefix):
        if kind == "flat":
            handle, info = payload
            arr = fulls[id(handle)][info.offset:info.offset + info.numel].reshape(info.shape)
            destination[key] = wrap(arr.copy(), handle.flat_param.dtype)
        elif kind == "tensor":
            destination[key] = payload.detach().clone()
        else:
            destination[key] = payload.get_extra_state()
    return destination


def _as_array(value) -> np.ndarray:
    return value._data if isinstance(value, Tensor) else np.asarray(value)


def _check(entries, state_dict, strict: bool):
    expected = [key for key, _, _ in entries]
    known = set(expected)
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in known]
    errors = []
    for key, kind, payload in entries:
        if key not in state_dict or kind == "extra":
            continue
        value = state_dict[key]
        if not isinstance(value, Tensor):
            errors.append(f'While copying the parameter named "{key}", expected torch.Tensor or Tensor-like object '
                          f"from checkpoint but received {type(value)}")
            continue
        want = payload[1].shape if kind == "flat" else tuple(payload.shape)
        if tuple(value.shape) != tuple(want):
            errors.append(f"size mismatch for {key}: copying a param with shape {tuple(value.shape)} from "
                          f"checkpoint, the shape in current model is {tuple(want)}.")
    if strict:
        if unexpected:
            errors.insert(0, "Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + ". ")
        if missing:
            errors.insert(0, "Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ". ")
    return missing, unexpected, errors


def load_full_state_dict(root, state_dict, strict: bool, rank0_only: bool):
    """Load a full state dict; with ``rank0_only`` only rank 0's dict is read and its values are scattered."""
    from ...nn.module import _IncompatibleKeys
    pg = root.process_group
    has_data = not rank0_only or pg.rank() == 0
    entries = list(_entries(root, ""))
    status = list(_check(entries, state_dict, strict)) if has_data else [None, None, None]
    if rank0_only:  # every rank must raise, or none
        broadcast_object_list(status, src=pg.global_rank(0), group=pg)
    missing, unexpected, errors = status
    if errors:
        raise RuntimeError("Error(s) in loading state_dict for FullyShardedDataParallel:\n\t" + "\n\t".join(errors))

    keys_of: dict = {}
    for key, kind, payload in entries:
        if kind == "flat":
            keys_of.setdefault(id(payload[1]), []).append(key)
    for unit in _units_with_handles(root):
        handle = unit._handle
        full = handle.gathered_copy()  # the current values stand in for keys a non-strict load lacks
        if has_data:
            for info in handle.infos:
                key = next((k for k in keys_of.get(id(info), ()) if k in state_dict), None)
                if key is not None:
                    full[info.offset:info.offset + info.numel] = _as_array(state_dict[key]).reshape(-1)
        handle.load_full(full if has_data else None, scatter_from=0 if rank0_only else None)

    tensors = [(key, t) for key, kind, t in entries if kind == "tensor"]
    with grad_mode.no_grad():
        if has_data:
            for key, t in tensors:
                if key in state_dict:
                    t._data[...] = _as_array(state_dict[key]).reshape(t._data.shape)
                    t._bump_version()
        if rank0_only and tensors:
            broadcast_coalesced([t for _, t in tensors], pg, 0, "FSDP load_state_dict broadcast")
    extras = [(key, mod) for key, kind, mod in entries if kind == "extra"]
    if extras:
        values = [state_dict.get(key) if has_data else None for key, _ in extras]
        if rank0_only:
            broadcast_object_list(values, src=pg.global_rank(0), group=pg)
        for (key, mod), value in zip(extras, values):
            if value is not None:
                mod.set_extra_state(value)
    return _IncompatibleKeys(missing, unexpected)
