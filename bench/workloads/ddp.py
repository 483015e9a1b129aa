"""DistributedDataParallel benchmarks: what DDP's gradient averaging adds to a training step.

The measuring runs in ``mpiexec -n 2 python bench/dist_step.py`` (two local processes, one
numba and one BLAS thread each); setup starts it once per model and the variants hand its
samples to the harness one by one (they are self-timed). Rows:

* ``ddp.<model>.comm``: ``jitorch.ddp_overhead`` is a DDP training step minus the same step
  without DDP; the baseline ``mpi4py.allreduce`` is what a blocking mpi4py ``Allreduce`` of the
  same bytes adds to that step when issued after backward. Target: at most 1.2x.
  ``.bucket_view`` rows use ``gradient_as_bucket_view=True`` (no copy of the averaged gradients
  back into ``.grad``).
  ``mpi4py.allreduce_loop`` is that Allreduce timed back to back, without compute around it.
* ``ddp.<model>.backward``: ``loss.backward()`` alone, with DDP, and followed by the bare
  Allreduce. DDP below the Allreduce row means part of the all-reduce ran during backward; the
  summary line says how much.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from bench.harness import REPO_ROOT, Unavailable, WorkloadResult, summary, workload

GROUP = "ddp"
SAMPLES = 15
MODELS = {"mlp": "MLP 784-128-64-10, batch 64 per rank (0.4 MB of gradients, 1 bucket)",
          "wide": "MLP 1024-1024-1024-10, batch 64 per rank (8.4 MB of gradients, 2 buckets)"}
_LAUNCH_VARS = ("PMI_", "PMIX_", "MPI_", "MPICH_", "HYDRA_", "OMPI_", "I_MPI_")
_measured: dict[str, dict] = {}


def _measure(model: str) -> dict:
    """Samples of every measure for ``model``, from one mpiexec run (cached for the process)."""
    if model in _measured:
        return _measured[model]
    mpiexec = shutil.which("mpiexec")
    if mpiexec is None or importlib.util.find_spec("mpi4py") is None:
        raise Unavailable("needs mpi4py and mpiexec: pip install -e '.[distributed]'")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(_LAUNCH_VARS) and k not in ("RANK", "WORLD_SIZE")}
    env.update(NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    cmd = [mpiexec, "-n", "2", sys.executable, str(REPO_ROOT / "bench" / "dist_step.py"), "--model", model,
           "--samples", str(SAMPLES + 1)]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        raise RuntimeError(f"mpiexec run failed: {tail}")
    _measured[model] = json.loads(proc.stdout.strip().splitlines()[-1])
    return _measured[model]


def _replay(values: list[float]):
    """A self-timed variant returning the measured samples in turn."""
    it = iter(values * 2)
    return lambda: next(it)


def _minus(a: list[float], b: list[float]) -> list[float]:
    return [x - y for x, y in zip(a, b)]


def _comm(model: str) -> Mapping[str, Any]:
    s = _measure(model)["samples"]
    return {"mpi4py.allreduce": _replay(_minus(s["step_allreduce_s"], s["step_local_s"])),
            "mpi4py.allreduce_loop": _replay(s["allreduce_s"]),
            "jitorch.ddp_overhead": _replay(_minus(s["step_ddp_s"], s["step_local_s"])),
            "jitorch.ddp_overhead.bucket_view": _replay(_minus(s["step_ddp_view_s"], s["step_local_s"]))}


def _backward(model: str) -> Mapping[str, Any]:
    s = _measure(model)["samples"]
    return {"jitorch.backward_local": _replay(s["backward_local_s"]),
            "mpi4py.backward_then_allreduce": _replay(s["backward_allreduce_s"]),
            "jitorch.backward_ddp": _replay(s["backward_ddp_s"]),
            "jitorch.backward_ddp.bucket_view": _replay(s["backward_ddp_view_s"])}


def _register(model: str, about: str) -> None:
    workload(f"ddp.{model}.comm", GROUP, self_timed=True, max_samples=SAMPLES, baseline="mpi4py.allreduce",
             description=f"what DDP adds to a step vs what a bare Allreduce adds; {about}")(
        lambda: _comm(model))
    workload(f"ddp.{model}.backward", GROUP, self_timed=True, max_samples=SAMPLES,
             baseline="mpi4py.backward_then_allreduce",
             description=f"loss.backward() alone, with DDP, and followed by a bare Allreduce; {about}")(
        lambda: _backward(model))


for _model, _about in MODELS.items():
    _register(_model, _about)


@summary
def ddp_overlap(results: Mapping[str, WorkloadResult]) -> list[str]:
    lines = []
    for model in MODELS:
        comm, bwd = results.get(f"ddp.{model}.comm"), results.get(f"ddp.{model}.backward")
        if comm is None or bwd is None:
            continue
        allreduce, overhead = comm.median("mpi4py.allreduce"), comm.median("jitorch.ddp_overhead")
        view = comm.median("jitorch.ddp_overhead.bucket_view")
        local = bwd.median("jitorch.backward_local")
        serial, ddp = bwd.median("mpi4py.backward_then_allreduce"), bwd.median("jitorch.backward_ddp")
        if None in (allreduce, overhead, local, serial, ddp) or allreduce <= 0 or serial <= local:
            continue
        hidden = 1 - (ddp - local) / (serial - local)
        lines.append(f"ddp.{model}: DDP adds {overhead * 1e3:.2f} ms to a step, a bare Allreduce "
                     f"{allreduce * 1e3:.2f} ms: {overhead / allreduce:.2f}x (target <= 1.2x"
                     + (f"; {view / allreduce:.2f}x with gradient_as_bucket_view" if view is not None else "")
                     + f"); backward "
                     f"{local * 1e3:.2f} ms, then Allreduce {serial * 1e3:.2f} ms, with DDP {ddp * 1e3:.2f} ms: "
                     f"{max(hidden, 0.0):.0%} of the all-reduce hidden behind backward")
    return lines
