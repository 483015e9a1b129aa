"""FSDP's configuration types, with torch.distributed.fsdp's names."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, auto


class ShardingStrategy(Enum):
    FULL_SHARD = auto()      # shard parameters, gradients and optimizer state; free full parameters after forward
    SHARD_GRAD_OP = auto()   # same, but keep full parameters from forward until backward
    NO_SHARD = auto()
    HYBRID_SHARD = auto()
    _HYBRID_SHARD_ZERO2 = auto()


class BackwardPrefetch(Enum):
    BACKWARD_PRE = auto()
    BACKWARD_POST = auto()


class StateDictType(Enum):
    FULL_STATE_DICT = auto()
    LOCAL_STATE_DICT = auto()
    SHARDED_STATE_DICT = auto()


@dataclass
class StateDictConfig:
    offload_to_cpu: bool = False


@dataclass
class FullStateDictConfig(StateDictConfig):
    """``rank0_only``: only rank 0 builds the full state dict (the others get ``{}``), and loading
    takes the values from rank 0 and scatters them."""

    rank0_only: bool = False


@dataclass
class LocalStateDictConfig(StateDictConfig):
    pass


@dataclass
class ShardedStateDictConfig(StateDictConfig):
    pass


@dataclass
class CPUOffload:
    """Accepted for compatibility: jitorch tensors live in host memory already."""

    offload_params: bool = False


@dataclass
class MixedPrecision:
    """Not implemented by jitorch's FSDP: passing one raises NotImplementedError."""

    param_dtype: object = None
    reduce_dtype: object = None
    buffer_dtype: object = None
    keep_low_precision_grads: bool = False
    cast_forward_inputs: bool = False
    cast_root_forward_inputs: bool = True
