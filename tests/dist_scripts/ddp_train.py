"""DDP training runs whose results the test compares with single-process training."""
from __future__ import annotations

from datetime import timedelta

import numpy as np
from _common import params_dict, save_json, save_npz
from _models import STEPS, TwoHeads, batch, make_mlp, mse, shard

import jitorch
import jitorch.distributed as dist
from jitorch.nn.parallel import DistributedDataParallel as DDP


def t(a):
    return jitorch.from_numpy(np.ascontiguousarray(a))


def train(model, rank, world, steps=STEPS, micro=1):
    """SGD on this rank's shard of each global batch; with ``micro`` > 1, all but the last micro-batch
    run under no_sync()."""
    opt = jitorch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for step in range(steps):
        x, y = batch(step)
        xs, ys = shard(x, rank, world), shard(y, rank, world)
        opt.zero_grad()
        for m in range(micro):
            xm, ym = shard(xs, m, micro), shard(ys, m, micro)
            if m < micro - 1:
                with model.no_sync():
                    mse(model(t(xm)), t(ym)).backward()
            else:
                mse(model(t(xm)), t(ym)).backward()
        opt.step()
    return model


def main() -> None:
    dist.init_process_group("mpi", timeout=timedelta(seconds=60))
    rank, world = dist.get_rank(), dist.get_world_size()
    out, info = {}, {}

    # rank-dependent initial weights: DDP must start everyone from rank 0's
    variants = {
        "default": {},
        "small_buckets": {"bucket_cap_mb": 0.0001},  # ~100 bytes: about one bucket per tensor
        "grad_view": {"gradient_as_bucket_view": True, "bucket_cap_mb": 0.001},
    }
    for name, kw in variants.items():
        ddp = DDP(make_mlp(seed=rank), **kw)
        info[f"{name}_buckets"] = len(ddp.reducer.buckets)
        train(ddp, rank, world)
        info[f"{name}_grads_in_buckets"] = all(
            any(np.shares_memory(p.grad.numpy(), b.buffer) for b in ddp.reducer.buckets) for p in ddp.parameters())
        for k, v in params_dict(ddp.module).items():
            out[f"{name}/{k}"] = v
    info["state_dict_keys"] = list(DDP(make_mlp(seed=rank)).state_dict().keys())

    compiled = DDP(jitorch.compile(make_mlp(seed=rank)), bucket_cap_mb=0.001)
    train(compiled, rank, world)
    for k, v in params_dict(compiled).items():
        out[f"compiled/{k.removeprefix('module.')}"] = v

    acc = DDP(make_mlp(seed=rank))
    train(acc, rank, world, steps=3, micro=2)
    for k, v in params_dict(acc.module).items():
        out[f"no_sync/{k}"] = v

    # a .grad that exists before backward (zero_grad(set_to_none=False)) keeps its identity
    keep = DDP(make_mlp(seed=rank))
    x, y = batch(0)
    mse(keep(t(shard(x, rank, world))), t(shard(y, rank, world))).backward()
    ids = [id(p.grad) for p in keep.parameters()]
    keep.zero_grad(set_to_none=False)
    mse(keep(t(shard(x, rank, world))), t(shard(y, rank, world))).backward()
    info["grad_identity_kept"] = ids == [id(p.grad) for p in keep.parameters()]
    out["keep_grad_weight0"] = keep.module[0].weight.grad.numpy().astype(np.float64)

    # find_unused_parameters: head_b is used on rank 0 only, `never` nowhere
    heads = DDP(TwoHeads(seed=rank), find_unused_parameters=True)
    opt = jitorch.optim.SGD(heads.parameters(), lr=0.1)
    for step in range(3):
        x, y = batch(step)
        opt.zero_grad()
        mse(heads(t(shard(x, rank, world)), use_b=rank == 0), t(shard(y, rank, world))).backward()
        if step == 0:
            for k, p in heads.module.named_parameters():
                if p.grad is not None:
                    out[f"unused_grad0/{k}"] = p.grad.numpy().astype(np.float64)
            info["never_grad_is_none"] = heads.module.never.weight.grad is None
        opt.step()
    for k, v in params_dict(heads.module).items():
        out[f"unused/{k}"] = v

    # without find_unused_parameters an unused parameter is an error at the next forward
    strict = DDP(TwoHeads(seed=rank))
    x, y = batch(0)
    mse(strict(t(shard(x, rank, world)), use_b=False), t(shard(y, rank, world))).backward()
    try:
        strict(t(shard(x, rank, world)), use_b=False)
        info["unused_error"] = None
    except RuntimeError as exc:
        info["unused_error"] = str(exc)

    # broadcast_buffers: every forward starts from rank 0's buffers
    bn = DDP(jitorch.nn.BatchNorm1d(6))
    bn.module.running_mean.fill_(float(rank + 1))
    x_bn = shard(batch(0)[0], rank, world)
    bn(t(x_bn))
    out["bn_running_mean"] = bn.module.running_mean.numpy().astype(np.float64)
    out["bn_batch_mean"] = x_bn.astype(np.float64).mean(axis=0)

    save_npz("ddp", rank, out)
    save_json("ddp", rank, info)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
