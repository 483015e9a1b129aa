"""Time DDP's communication under ``mpiexec -n 2 python bench/dist_step.py``; rank 0 prints JSON.

Per sample, interleaved so that machine noise hits every measure alike:

* ``allreduce_s``: back-to-back blocking mpi4py ``Allreduce``s of as many float32 bytes as the
  model's gradients;
* ``step_local_s`` / ``step_allreduce_s`` / ``step_ddp_s``: one training step (zero_grad, forward,
  loss, backward, SGD step) of the plain model, of the plain model with a blocking ``Allreduce`` of
  the gradient bytes after backward (the bare-MPI reference), and of the DDP-wrapped model
  (``_view``: with ``gradient_as_bucket_view=True``, which saves copying the averaged gradients back);
* ``backward_local_s`` / ``backward_allreduce_s`` / ``backward_ddp_s``: the same for
  ``loss.backward()`` alone (the ranks meet at a barrier first).

Each value is the slowest rank's mean over ``--iters`` repetitions. ``step_ddp - step_local`` is the
communication overhead DDP adds to a step, ``step_allreduce - step_local`` what a bare Allreduce
adds to the same step. Measuring the Allreduce inside the step (not only in a tight loop) matters
on a busy machine: right after computing, ranks are often descheduled for a while, and a
collective pays for it; a loop of collectives alone does not.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from mpi4py import MPI

import jitorch
import jitorch.distributed as dist
from jitorch import nn
from jitorch.nn.parallel import DistributedDataParallel as DDP

MODELS = {
    # name: (layer widths, batch per rank)
    "mlp": ((784, 128, 64, 10), 64),        # bench/workloads/training.py's MLP: 0.4 MB of gradients
    "wide": ((1024, 1024, 1024, 10), 64),   # 8.4 MB of gradients in two buckets
}


def make_model(widths):
    jitorch.manual_seed(0)
    layers = []
    for a, b in itertools.pairwise(widths):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def mean_time(fn, iters: int, comm) -> float:
    """The slowest rank's mean seconds per call of ``fn`` (which may return its own measured time)."""
    comm.Barrier()
    total = 0.0
    for _ in range(iters):
        t0 = time.perf_counter()
        own = fn()
        total += own if own is not None else time.perf_counter() - t0
    return comm.allreduce(total / iters, op=MPI.MAX)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", choices=MODELS, default="mlp")
    p.add_argument("--samples", type=int, default=15)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--bucket-cap-mb", type=float, default=None)
    args = p.parse_args()

    dist.init_process_group("mpi")
    comm = MPI.COMM_WORLD
    widths, batch = MODELS[args.model]
    local = make_model(widths)
    ddp = DDP(make_model(widths), bucket_cap_mb=args.bucket_cap_mb)
    ddp_view = DDP(make_model(widths), bucket_cap_mb=args.bucket_cap_mb, gradient_as_bucket_view=True)
    rng = np.random.default_rng(comm.Get_rank())
    x = jitorch.from_numpy(rng.standard_normal((batch, widths[0])).astype(np.float32))
    y = jitorch.from_numpy(rng.integers(0, widths[-1], batch))
    criterion = nn.CrossEntropyLoss()
    opts = {id(m): jitorch.optim.SGD(m.parameters(), lr=1e-3) for m in (local, ddp, ddp_view)}
    grad_bytes = sum(p.numel() * 4 for p in local.parameters())
    buf = np.ones(grad_bytes // 4, dtype=np.float32)

    def allreduce():
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)

    def step(model, after_backward=None):
        opt = opts[id(model)]
        opt.zero_grad()
        criterion(model(x), y).backward()
        if after_backward is not None:
            after_backward()
        opt.step()

    def backward_only(model, after_backward=None):
        model.zero_grad()
        loss = criterion(model(x), y)
        comm.Barrier()  # both ranks start backward together: only backward itself is timed
        t0 = time.perf_counter()
        loss.backward()
        if after_backward is not None:
            after_backward()
        return time.perf_counter() - t0

    measures = {
        "allreduce_s": allreduce,
        "step_local_s": lambda: step(local),
        "step_allreduce_s": lambda: step(local, allreduce),
        "step_ddp_s": lambda: step(ddp),
        "step_ddp_view_s": lambda: step(ddp_view),
        "backward_local_s": lambda: backward_only(local),
        "backward_allreduce_s": lambda: backward_only(local, allreduce),
        "backward_ddp_s": lambda: backward_only(ddp),
        "backward_ddp_view_s": lambda: backward_only(ddp_view),
    }
    for fn in measures.values():  # warm-up: kernels compiled, caches filled
        mean_time(fn, 3, comm)
    samples = {k: [] for k in measures}
    for _ in range(args.samples):
        for key, fn in measures.items():
            samples[key].append(mean_time(fn, args.iters, comm))
    if comm.Get_rank() == 0:
        print(json.dumps({"model": args.model, "grad_bytes": grad_bytes, "buckets": len(ddp.reducer.buckets),
                          "world_size": comm.Get_size(), "samples": samples}))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
