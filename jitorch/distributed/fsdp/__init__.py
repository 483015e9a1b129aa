"""``jitorch.distributed.fsdp``: FullyShardedDataParallel (ZeRO-3 style), as ``torch.distributed.fsdp``."""
from .api import (
                  BackwardPrefetch,
                  CPUOffload,
                  FullStateDictConfig,
                  LocalStateDictConfig,
                  MixedPrecision,
                  ShardedStateDictConfig,
                  ShardingStrategy,
                  StateDictConfig,
                  StateDictType,
)
from .fully_sharded_data_parallel import FullyShardedDataParallel
from .wrap import (
                  ModuleWrapPolicy,
                  always_wrap_policy,
                  lambda_auto_wrap_policy,
                  size_based_auto_wrap_policy,
)

__all__ = ["BackwardPrefetch", "CPUOffload", "FullStateDictConfig", "FullyShardedDataParallel",
           "LocalStateDictConfig", "MixedPrecision", "ModuleWrapPolicy", "ShardedStateDictConfig",
           "ShardingStrategy", "StateDictConfig", "StateDictType", "always_wrap_policy",
           "lambda_auto_wrap_policy", "size_based_auto_wrap_policy"]
