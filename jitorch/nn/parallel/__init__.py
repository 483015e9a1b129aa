"""``jitorch.nn.parallel``: DistributedDataParallel (over jitorch.distributed's MPI backend)."""
from .distributed import DistributedDataParallel

DDP = DistributedDataParallel

__all__ = ["DistributedDataParallel"]
