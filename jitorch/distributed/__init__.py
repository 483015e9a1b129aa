"""``jitorch.distributed``: torch.distributed's API over MPI (mpi4py).

Start one process per rank with ``mpiexec -n N python train.py`` and call
``init_process_group("mpi")``. Importing this package does not import mpi4py:
MPI is initialised by ``init_process_group``. See ``docs/distributed.md``.
"""
from __future__ import annotations

from datetime import timedelta  # noqa: F401  (torch.distributed re-exports it too)

from ._mpi import available as _available
from .collectives import (
    all_gather,
    all_gather_into_tensor,
    all_reduce,
    all_to_all,
    all_to_all_single,
    barrier,
    broadcast,
    gather,
    monitored_barrier,
    reduce,
    reduce_scatter,
    reduce_scatter_tensor,
    scatter,
)
from .objects import all_gather_object, broadcast_object_list
from .p2p import P2POp, batch_isend_irecv, irecv, isend, recv, send
from .process_group import (
    Backend,
    GroupMember,
    ProcessGroup,
    default_pg_timeout,
    destroy_process_group,
    get_backend,
    get_global_rank,
    get_group_rank,
    get_process_group_ranks,
    get_rank,
    get_world_size,
    group,
    init_process_group,
    is_initialized,
    new_group,
)
from .reduce_op import ReduceOp
from .work import Work

# torch's older spelling
all_gather_base = _all_gather_base = all_gather_into_tensor
reduce_scatter_base = _reduce_scatter_base = reduce_scatter_tensor


def is_available() -> bool:
    """True when mpi4py (and so an MPI library) can be imported."""
    return _available()


def is_mpi_available() -> bool:
    return _available()


def is_gloo_available() -> bool:
    return False


def is_nccl_available() -> bool:
    return False


def is_torchelastic_launched() -> bool:
    return False


__all__ = [
    "Backend", "GroupMember", "P2POp", "ProcessGroup", "ReduceOp", "Work", "all_gather", "all_gather_into_tensor",
    "all_gather_object", "all_reduce", "all_to_all", "all_to_all_single", "barrier", "batch_isend_irecv",
    "broadcast", "broadcast_object_list", "default_pg_timeout", "destroy_process_group", "gather", "get_backend",
    "get_global_rank", "get_group_rank", "get_process_group_ranks", "get_rank", "get_world_size", "group",
    "init_process_group", "irecv", "is_available", "is_initialized", "is_mpi_available", "isend",
    "monitored_barrier", "new_group", "recv", "reduce", "reduce_scatter", "reduce_scatter_tensor", "scatter",
    "send",
]
