"""A job in which one rank fails: ``raise`` (an uncaught exception) or ``hang`` (it never joins).

Either way the job must end with a non-zero exit status instead of hanging:
in ``raise`` mode the excepthook installed by init_process_group aborts the
MPI job; in ``hang`` mode rank 0's collectives time out (the first timeout is
caught and recorded, the second is not and aborts the job).
"""
from __future__ import annotations

import sys
import time
from datetime import timedelta

from _common import save_json

import jitorch
import jitorch.distributed as dist


def main() -> None:
    mode = sys.argv[2]
    timeout = timedelta(seconds=60 if mode == "raise" else 1.0)
    dist.init_process_group("mpi", timeout=timeout)
    rank = dist.get_rank()
    if rank == 1:
        if mode == "raise":
            raise ValueError("rank 1 fails on purpose")
        time.sleep(600)  # never reaches the collective; mpiexec kills it when rank 0 aborts
    x = jitorch.ones(4)
    if mode == "hang":
        try:
            dist.all_reduce(x)
        except RuntimeError as exc:
            save_json("failure", rank, {"timeout_error": str(exc)})
    work = dist.all_reduce(x, async_op=True)
    work.wait()  # "raise": aborted by rank 1's excepthook; "hang": times out, uncaught
    save_json("failure", rank, {"finished": True})


if __name__ == "__main__":
    main()
