"""FSDP training next to DDP training of the same model; state dicts, sharding and memory states."""
from __future__ import annotations

import functools
from datetime import timedelta

import numpy as np
from _common import params_dict, save_json, save_npz
from _models import STEPS, Block, Deep, batch, mse, shard

import jitorch
import jitorch.distributed as dist
from jitorch.distributed.fsdp import (
    FullStateDictConfig,
    ModuleWrapPolicy,
    ShardingStrategy,
    StateDictType,
    size_based_auto_wrap_policy,
)
from jitorch.distributed.fsdp import FullyShardedDataParallel as FSDP
from jitorch.nn.parallel import DistributedDataParallel as DDP


def t(a):
    return jitorch.from_numpy(np.ascontiguousarray(a))


def train(model, rank, world, observe=None):
    opt = jitorch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(STEPS):
        x, y = batch(step)
        opt.zero_grad()
        mse(model(t(shard(x, rank, world))), t(shard(y, rank, world))).backward()
        if observe is not None:
            observe(model)
        opt.step()
    return model


def unit_states(model) -> list[str]:
    return [u._handle.state for u in FSDP.fsdp_modules(model) if u._handle is not None]


def full_params(model) -> dict:
    with FSDP.state_dict_type(model, StateDictType.FULL_STATE_DICT, FullStateDictConfig(rank0_only=False)):
        sd = model.state_dict()
    return {k: v.numpy().astype(np.float64) for k, v in sd.items()}


def main() -> None:
    dist.init_process_group("mpi", timeout=timedelta(seconds=60))
    rank, world = dist.get_rank(), dist.get_world_size()
    out, info = {}, {}

    ddp = train(DDP(Deep(seed=rank)), rank, world)
    for k, v in params_dict(ddp.module).items():
        out[f"ddp/{k}"] = v

    # nested units by class; rank-dependent init made equal by sync_module_states
    nested = FSDP(Deep(seed=rank), auto_wrap_policy=ModuleWrapPolicy({Block}), sync_module_states=True)
    info["units"] = len(FSDP.fsdp_modules(nested))
    info["local_numel"] = sum(p.numel() for p in nested.parameters())
    info["param_names"] = [n for n, _ in nested.named_parameters()]
    gathered_blocks = []

    def count_gathered_blocks(module, args):
        blocks = [u for u in FSDP.fsdp_modules(nested) if isinstance(u.module, Block)]
        gathered_blocks.append(sum(u._handle.state == "unsharded" for u in blocks))
    for b in nested.module.blocks:
        b.module.fc1.register_forward_pre_hook(count_gathered_blocks)
    after_backward = []
    train(nested, rank, world, observe=lambda m: after_backward.append(unit_states(m)))
    info["max_blocks_gathered_in_forward"] = max(gathered_blocks)
    info["states_after_backward"] = after_backward
    for k, v in full_params(nested).items():
        out[f"nested/{k}"] = v

    # size-based policy, and hand-made nesting with SHARD_GRAD_OP
    sized = FSDP(Deep(seed=0), auto_wrap_policy=functools.partial(size_based_auto_wrap_policy, min_num_params=150))
    info["sized_units"] = len(FSDP.fsdp_modules(sized))
    train(sized, rank, world)
    for k, v in full_params(sized).items():
        out[f"sized/{k}"] = v
    manual = Deep(seed=0)
    manual.blocks[1] = FSDP(manual.blocks[1], sharding_strategy=ShardingStrategy.SHARD_GRAD_OP)
    manual = FSDP(manual, sharding_strategy=ShardingStrategy.SHARD_GRAD_OP)
    train(manual, rank, world)
    for k, v in full_params(manual).items():
        out[f"manual/{k}"] = v

    # evaluation without grad: every unit gives its full parameters back right after its forward
    x_eval = t(batch(99)[0])
    with jitorch.no_grad():
        out["eval_fsdp"] = nested(x_eval).numpy().astype(np.float64)
        out["eval_ddp"] = ddp.module(x_eval).numpy().astype(np.float64)
    info["states_after_eval"] = unit_states(nested)

    with FSDP.summon_full_params(nested):
        info["summoned_shape"] = list(nested.module.inp.weight.shape)

    # gradient clipping over the sharded gradients equals clipping the full gradient
    x, y = batch(0)
    for m in (nested, ddp):
        m.zero_grad()
        mse(m(t(shard(x, rank, world))), t(shard(y, rank, world))).backward()
    info["clip_norm_fsdp"] = float(nested.clip_grad_norm_(0.01))
    info["clip_norm_ddp"] = float(jitorch.nn.utils.clip_grad_norm_(ddp.parameters(), 0.01))

    # a full state dict on rank 0 only, loaded into a fresh model from rank 0 only (scattered)
    with FSDP.state_dict_type(nested, StateDictType.FULL_STATE_DICT, FullStateDictConfig(rank0_only=True)):
        sd = nested.state_dict()
    info["rank0_state_dict_keys"] = list(sd.keys())
    for k, v in sd.items():
        out[f"sd/{k}"] = v.numpy().astype(np.float64)
    fresh = FSDP(Deep(seed=123), auto_wrap_policy=ModuleWrapPolicy({Block}))
    with FSDP.state_dict_type(fresh, StateDictType.FULL_STATE_DICT, FullStateDictConfig(rank0_only=True)):
        fresh.load_state_dict(sd if rank == 0 else {})
    for k, v in full_params(fresh).items():
        out[f"loaded/{k}"] = v

    save_npz("fsdp", rank, out)
    save_json("fsdp", rank, info)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
