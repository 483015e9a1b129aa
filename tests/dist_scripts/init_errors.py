"""Error paths around init_process_group; run with ``mpiexec -genv WORLD_SIZE 3 -n 2``."""
from __future__ import annotations

import os
import sys

from _common import mpi_rank, save_json

import jitorch
import jitorch.distributed as dist
import jitorch.distributed.fsdp
import jitorch.utils.data
from jitorch import nn
from jitorch.nn.parallel import DistributedDataParallel

MPI4PY_IMPORTED_BY_JITORCH = "mpi4py" in sys.modules  # importing must not initialise MPI


def error_of(fn) -> list | None:
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - the test checks type and message
        return [type(exc).__name__, str(exc)]
    return None


def main() -> None:
    rank = mpi_rank()
    info = {
        "mpi4py_imported_by_import": MPI4PY_IMPORTED_BY_JITORCH,
        "modules": [jitorch.distributed.fsdp.__name__, jitorch.utils.data.DistributedSampler.__name__,
                    DistributedDataParallel.__name__],
        "all_reduce_before_init": error_of(lambda: dist.all_reduce(jitorch.ones(2))),
        "get_world_size_before_init": error_of(dist.get_world_size),
        "ddp_before_init": error_of(lambda: DistributedDataParallel(nn.Linear(2, 2))),
        "gloo_backend": error_of(lambda: dist.init_process_group("gloo")),
        "env_world_size": error_of(lambda: dist.init_process_group("mpi")),
    }
    os.environ["WORLD_SIZE"] = "2"
    os.environ["RANK"] = str(1 - rank)
    info["env_rank"] = error_of(lambda: dist.init_process_group("mpi"))
    os.environ["RANK"] = str(rank)
    info["rank_argument"] = error_of(lambda: dist.init_process_group("mpi", rank=rank + 5))
    info["consistent_init"] = error_of(lambda: dist.init_process_group("mpi", world_size=2, rank=rank))
    info["init_twice"] = error_of(lambda: dist.init_process_group("mpi"))
    info["initialized"] = dist.is_initialized()
    dist.barrier()
    dist.destroy_process_group()
    save_json("init_errors", rank, info)


if __name__ == "__main__":
    main()
