"""FSDP over a module compiled in place (Module.compile()) trains like DDP over the plain module."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import jitorch
import jitorch.distributed as dist
from jitorch.distributed.fsdp import FullyShardedDataParallel as FSDP
from jitorch.nn.parallel import DistributedDataParallel as DDP


def model():
    jitorch.manual_seed(0)
    return jitorch.nn.Sequential(jitorch.nn.Linear(6, 10), jitorch.nn.GELU(), jitorch.nn.Linear(10, 3))


def main() -> None:
    out = Path(sys.argv[1])
    dist.init_process_group("mpi")
    r = dist.get_rank()
    rng = np.random.default_rng(0)
    x = jitorch.from_numpy(rng.standard_normal((8, 6)).astype(np.float32))
    y = jitorch.from_numpy(rng.standard_normal((8, 3)).astype(np.float32))

    def train(m):
        opt = jitorch.optim.Adam(m.parameters(), lr=1e-2)
        for _ in range(4):
            opt.zero_grad()
            ((m(x[r * 4:(r + 1) * 4]) - y[r * 4:(r + 1) * 4]) ** 2).mean().backward()
            opt.step()

    plain = model()
    train(DDP(plain))
    compiled = model()
    compiled.compile()
    sharded = FSDP(compiled)
    train(sharded)
    sd = sharded.state_dict()
    if r == 0:
        np.savez(out / "fsdp_compiled.npz", **{f"ddp/{k}": v.numpy() for k, v in plain.state_dict().items()},
                 **{f"fsdp/{k}": v.numpy() for k, v in sd.items()})
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
