"""``FullyShardedDataParallel``: ZeRO-3 style sharding of parameters, gradients and optimizer state."""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from ..._tensor import wrap
from ...autograd import grad_mode
from ...nn.module import Module
from ...nn.parameter import Parameter
from .. import process_group as pgs
from ..utils import broadcast_coalesced
from . import _state_dict
from ._flat_param import FlatParamHandle, owned_parameters
from ._runtime import UnshardParams, rebuild_outputs
from .api import (
    FullStateDictConfig,
    LocalStateDictConfig,
    ShardingStrategy,
    StateDictType,
)
from .wrap import recursive_wrap

FSDP_WRAPPED_MODULE = "_fsdp_wrapped_module"
FLAT_PARAM = "_flat_param"


class FullyShardedDataParallel(Module):
    """Shard ``module``'s parameters over the ranks of ``process_group``.

    Each rank keeps ``1/world_size`` of the unit's parameters as one flat
    vector (``parameters()`` yields these shards, so an optimizer built on them
    keeps state for its shard only). Before the unit's forward the shards are
    all-gathered into full parameters; they are freed again after forward
    (``FULL_SHARD``, not for the root unit) and re-gathered before the unit's
    backward; after its backward the gradients are reduce-scattered (averaged)
    into the shard's ``.grad`` and the full parameters freed. Nested units
    (``auto_wrap_policy``, or wrapping submodules by hand first) each gather
    only their own parameters.

    >>> model = FSDP(Net(), auto_wrap_policy=ModuleWrapPolicy({Block}))   # doctest: +SKIP
    >>> opt = jitorch.optim.Adam(model.parameters())                      # doctest: +SKIP
    """

    def __init__(self, module, process_group=None, sharding_strategy=None, cpu_offload=None, auto_wrap_policy=None,
                 backward_prefetch=None, mixed_precision=None, ignored_modules=None, param_init_fn=None,
                 device_id=None, sync_module_states: bool = False, forward_prefetch: bool = False,
                 limit_all_gathers: bool = True, use_orig_params: bool = False, ignored_states=None,
                 device_mesh=None):
        super().__init__()
        pg = pgs.resolve(process_group)
        if pg is None:
            raise RuntimeError("FullyShardedDataParallel: this rank is not a member of the process group")
        strategy = sharding_strategy or ShardingStrategy.FULL_SHARD
        if strategy not in (ShardingStrategy.FULL_SHARD, ShardingStrategy.SHARD_GRAD_OP):
            raise NotImplementedError(f"jitorch FSDP implements FULL_SHARD and SHARD_GRAD_OP, not {strategy}; "
                                      "use DistributedDataParallel for NO_SHARD")
        if mixed_precision is not None or use_orig_params or ignored_modules or ignored_states or device_mesh:
            raise NotImplementedError("jitorch FSDP does not implement mixed_precision, use_orig_params, "
                                      "ignored_modules/ignored_states or device_mesh (see docs/distributed.md)")
        if auto_wrap_policy is not None:
            recursive_wrap(module, auto_wrap_policy, FullyShardedDataParallel, only_wrap_children=True,
                           process_group=process_group, sharding_strategy=sharding_strategy,
                           sync_module_states=sync_module_states)
        self._modules[FSDP_WRAPPED_MODULE] = module
        self.process_group = pg
        self.sharding_strategy = strategy
        self._state_dict_type = StateDictType.FULL_STATE_DICT
        self._state_dict_config = FullStateDictConfig()
        for sub in module.modules():
            if isinstance(sub, FullyShardedDataParallel):
                sub._is_root = False
        self._is_root = True
        entries = owned_parameters(module, lambda m: isinstance(m, FullyShardedDataParallel))
        if sync_module_states:
            own_buffers = [b for m in _own_modules(module) for b in m._buffers.values() if b is not None]
            broadcast_coalesced([p for _, _, _, p in entries] + own_buffers, pg, 0, "FSDP sync_module_states")
        self._handle = FlatParamHandle(entries, pg, Parameter) if entries else None
        if self._handle is not None:
            module.register_parameter(FLAT_PARAM, self._handle.flat_param)

    # -- access --------------------------------------------------------------------------------------
    @property
    def module(self) -> Module:
        """The wrapped module."""
        return self._modules[FSDP_WRAPPED_MODULE]

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            inner = self.__dict__.get("_modules", {}).get(FSDP_WRAPPED_MODULE)
            if inner is None:
                raise
            return getattr(inner, name)

    def __getitem__(self, key):
        return self._modules[FSDP_WRAPPED_MODULE].__getitem__(key)

    @staticmethod
    def fsdp_modules(module, root_only: bool = False) -> list:
        """The FSDP units in ``module``'s tree (only the outermost ones with ``root_only``)."""
        units = [m for m in module.modules() if isinstance(m, FullyShardedDataParallel)]
        return [u for u in units if u._is_root] if root_only else units

    # -- forward -------------------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        handle = self._handle
        inner = self._modules[FSDP_WRAPPED_MODULE]
        if handle is None:
            return inner(*args, **kwargs)
        handle.unshard()
        if grad_mode.is_grad_enabled() and handle.flat_param.requires_grad:
            full = UnshardParams.apply(handle.flat_param, handle)
            handle.pending_backward += 1
        else:
            full = tuple(wrap(v, handle.flat_param.dtype) for v in handle.full_views())
        handle.install(full)
        try:
            out = inner(*args, **kwargs)
        finally:
            handle.uninstall()
        needs_backward = False
        if grad_mode.is_grad_enabled():
            out, needs_backward = rebuild_outputs(out, handle)
        keep = needs_backward and (self._is_root or self.sharding_strategy is ShardingStrategy.SHARD_GRAD_OP)
        if not keep:
            handle.reshard()
        return out

    # -- whole-model helpers -------------------------------------------------------------------------
    @staticmethod
    @contextmanager
    def summon_full_params(module, recurse: bool = True, writeback: bool = True, rank0_only: bool = False,
                           offload_to_cpu: bool = False, with_grads: bool = False):
        """Inside the context the original parameters of every unit under ``module`` are full tensors.

        With ``writeback`` (default) changes made to them are kept (each rank keeps its shard's part).
        """
        units = FullyShardedDataParallel.fsdp_modules(module) if recurse else [module]
        handles = [u._handle for u in units if u._handle is not None]
        tensors = []
        for h in handles:
            h.unshard()
            ts = tuple(wrap(v, h.flat_param.dtype) for v in h.full_views())
            h.install(ts)
            tensors.append(ts)
        try:
            yield
        finally:
            for h in handles:
                h.uninstall()
                if writeback:
                    full = h._full_buffer()
                    start = h.rank * h.shard_numel
                    h.flat_param._data[...] = full[start:start + h.shard_numel]
                    h.flat_param._bump_version()
                h.reshard()

    def clip_grad_norm_(self, max_norm: float, norm_type: float = 2.0):
        """Scale the sharded gradients so that the norm of the whole (unsharded) gradient is ``max_norm``."""
        from ..collectives import all_reduce
        from ..reduce_op import ReduceOp
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        norm_type = float(norm_type)
        if norm_type == float("inf"):
            local = max((float(np.abs(g._data).max()) for g in grads), default=0.0)
            total = wrap(np.array([local], dtype=np.float64), _f64())
            all_reduce(total, ReduceOp.MAX, self.process_group)
            norm = float(total._data[0])
        else:
            local = sum(float((np.abs(g._data.astype(np.float64)) ** norm_type).sum()) for g in grads)
            total = wrap(np.array([local], dtype=np.float64), _f64())
            all_reduce(total, ReduceOp.SUM, self.process_group)
            norm = float(total._data[0]) ** (1.0 / norm_type)
        coef = max_norm / (norm + 1e-6)
        if coef < 1:
            for g in grads:
                g._data *= coef
                g._bump_version()
        return wrap(np.array(norm, dtype=np.float64), _f64())

    # -- state dicts ---------------------------------------------------------------------------------
    @staticmethod
    @contextmanager
    def state_dict_type(module, state_dict_type: StateDictType, state_dict_config=None,
                        optim_state_dict_config=None):
        """Choose what ``state_dict()``/``load_state_dict()`` of every unit under ``module`` do."""
        units = FullyShardedDataParallel.fsdp_modules(module)
        previous = [(u._state_dict_type, u._state_dict_config) for u in units]
        FullyShardedDataParallel.set_state_dict_type(module, state_dict_type, state_dict_config)
        try:
            yield
        finally:
            for u, (kind, cfg) in zip(units, previous):
                u._state_dict_type, u._state_dict_config = kind, cfg

    @staticmethod
    def set_state_dict_type(module, state_dict_type: StateDictType, state_dict_config=None,
                            optim_state_dict_config=None):
        if state_dict_type is StateDictType.SHARDED_STATE_DICT:
            raise NotImplementedError("jitorch FSDP implements FULL_STATE_DICT and LOCAL_STATE_DICT")
        if state_dict_config is None:
            state_dict_config = (FullStateDictConfig() if state_dict_type is StateDictType.FULL_STATE_DICT
                                 else LocalStateDictConfig())
        for u in FullyShardedDataParallel.fsdp_modules(module):
            u._state_dict_type, u._state_dict_config = state_dict_type, state_dict_config

    def state_dict(self, *args, destination=None, prefix: str = "", keep_vars: bool = False):
        """FULL_STATE_DICT (default): the original parameter names and full values, gathered on every rank
        (or only rank 0 with ``FullStateDictConfig(rank0_only=True)``); LOCAL: the flat shards."""
        if args:
            destination = args[0]
            prefix = args[1] if len(args) > 1 else prefix
        if self._state_dict_type is StateDictType.LOCAL_STATE_DICT:
            return super().state_dict(destination=destination, prefix=prefix, keep_vars=keep_vars)
        return _state_dict.full_state_dict(self, prefix, destination,
                                           getattr(self._state_dict_config, "rank0_only", False))

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        if self._state_dict_type is StateDictType.LOCAL_STATE_DICT:
            result = super().load_state_dict(state_dict, strict=strict)
            for u in self.fsdp_modules(self):
                if u._handle is not None:
                    u._handle.reshard()
            return result
        return _state_dict.load_full_state_dict(self, state_dict, strict,
                                                getattr(self._state_dict_config, "rank0_only", False))

    def extra_repr(self) -> str:
        h = self._handle
        if h is None:
            return ""
        return f"shard={h.shard_numel} of {h.numel} elements ({len(h.infos)} parameters)"


def _f64():
    from ... import float64
    return float64


def _own_modules(module):
    """``module`` and its submodules, not descending into nested FSDP units."""
    yield module
    for child in module.children():
        if not isinstance(child, FullyShardedDataParallel):
            yield from _own_modules(child)
