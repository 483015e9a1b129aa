"""Run every collective (blocking and async) and save what each rank ends up with."""
from __future__ import annotations

from datetime import timedelta

import numpy as np
from _common import rank_values, save_json, save_npz

import jitorch
import jitorch.distributed as dist

OPS = {"sum": dist.ReduceOp.SUM, "avg": dist.ReduceOp.AVG, "max": dist.ReduceOp.MAX,
       "min": dist.ReduceOp.MIN, "product": dist.ReduceOp.PRODUCT}


def t(arr) -> jitorch.Tensor:
    return jitorch.from_numpy(np.array(arr))


def main() -> None:
    dist.init_process_group("mpi", timeout=timedelta(seconds=60))
    rank, world = dist.get_rank(), dist.get_world_size()
    out: dict[str, np.ndarray] = {}
    info = {"rank": rank, "world": world, "backend": dist.get_backend(), "initialized": dist.is_initialized()}

    for name, op in OPS.items():
        for mode in ("sync", "async"):
            x = t(rank_values(rank))
            work = dist.all_reduce(x, op=op, async_op=mode == "async")
            if work is not None:
                info[f"work_result_is_output_{name}"] = work.result()[0] is x
                work.wait()
                info[f"completed_{name}"] = work.is_completed()
            out[f"all_reduce_{name}_{mode}"] = x.numpy()
    xi = t(rank_values(rank, dtype=np.int64))
    dist.all_reduce(xi)
    out["all_reduce_int64"] = xi.numpy()
    xh = t(rank_values(rank, dtype=np.float16))
    dist.all_reduce(xh)
    out["all_reduce_float16"] = xh.numpy()
    xb = t(rank_values(rank, shape=(3, 4), dtype=np.float64))
    view = xb.t()  # not contiguous: staged through a copy, written back
    v0 = view._version_counter
    dist.all_reduce(view)
    info["version_bumped"] = view._version_counter > v0
    out["all_reduce_noncontig"] = xb.numpy()

    for mode in ("sync", "async"):
        x = t(rank_values(rank, shape=(3, 4), dtype=np.float64)).t()
        w = dist.broadcast(x, src=world - 1, async_op=mode == "async")
        if w is not None:
            w.wait()
        out[f"broadcast_{mode}"] = x.numpy()

        x = t(rank_values(rank))
        w = dist.reduce(x, dst=0, op=dist.ReduceOp.SUM, async_op=mode == "async")
        if w is not None:
            w.wait()
        out[f"reduce_{mode}"] = x.numpy()

        outs = [jitorch.zeros(2, 3) for _ in range(world)]
        w = dist.all_gather(outs, t(rank_values(rank)), async_op=mode == "async")
        if w is not None:
            w.wait()
        out[f"all_gather_{mode}"] = np.stack([o.numpy() for o in outs])

        big = jitorch.zeros(world * 2, 3)
        w = dist.all_gather_into_tensor(big, t(rank_values(rank)), async_op=mode == "async")
        if w is not None:
            w.wait()
        out[f"all_gather_into_tensor_{mode}"] = big.numpy()

        small = jitorch.zeros(2, 3)
        w = dist.reduce_scatter(small, [t(rank_values(rank, salt=k)) for k in range(world)],
                                async_op=mode == "async")
        if w is not None:
            w.wait()
        out[f"reduce_scatter_{mode}"] = small.numpy()

        small = jitorch.zeros(2, 3)
        w = dist.reduce_scatter_tensor(small, t(rank_values(rank, shape=(world * 2, 3))), op=dist.ReduceOp.AVG,
                                       async_op=mode == "async")
        if w is not None:
            w.wait()
        out[f"reduce_scatter_tensor_avg_{mode}"] = small.numpy()

        dst = world - 1
        glist = [jitorch.zeros(2, 3) for _ in range(world)] if rank == dst else None
        w = dist.gather(t(rank_values(rank)), glist, dst=dst, async_op=mode == "async")
        if w is not None:
            w.wait()
        if glist is not None:
            out[f"gather_{mode}"] = np.stack([g.numpy() for g in glist])

        recv = jitorch.zeros(2, 3)
        slist = [t(rank_values(rank, salt=10 * k)) for k in range(world)] if rank == 0 else None
        w = dist.scatter(recv, slist, src=0, async_op=mode == "async")
        if w is not None:
            w.wait()
        out[f"scatter_{mode}"] = recv.numpy()

        res = jitorch.zeros(world * 2, 3)
        w = dist.all_to_all_single(res, t(rank_values(rank, shape=(world * 2, 3))), async_op=mode == "async")
        if w is not None:
            w.wait()
        out[f"all_to_all_single_{mode}"] = res.numpy()

        w = dist.barrier(async_op=mode == "async")
        if w is not None:
            w.wait()

    # uneven all_to_all_single: rank r sends r + k + 1 rows to rank k
    send_splits = [rank + k + 1 for k in range(world)]
    recv_splits = [k + rank + 1 for k in range(world)]
    res = jitorch.zeros(sum(recv_splits), 2, dtype=jitorch.int64)
    dist.all_to_all_single(res, t(rank_values(rank, shape=(sum(send_splits), 2), dtype=np.int64)),
                           output_split_sizes=recv_splits, input_split_sizes=send_splits)
    out["all_to_all_single_uneven"] = res.numpy()

    outs = [jitorch.zeros(k + 1, dtype=jitorch.int64) for k in range(world)]
    dist.all_to_all(outs, [t(np.full(rank + 1, 100 * rank + k, np.int64)) for k in range(world)])
    out["all_to_all_concat"] = np.concatenate([o.numpy() for o in outs])

    # a ring of point-to-point transfers, blocking and non-blocking
    nxt, prv = (rank + 1) % world, (rank - 1) % world
    buf = jitorch.zeros(2, 3)
    if rank % 2 == 0:
        dist.send(t(rank_values(rank)), dst=nxt)
        info["recv_source"] = dist.recv(buf, src=None)
    else:
        info["recv_source"] = dist.recv(buf, src=None)
        dist.send(t(rank_values(rank)), dst=nxt)
    out["recv"] = buf.numpy()
    buf2 = jitorch.zeros(2, 3)
    works = [dist.irecv(buf2, src=prv, tag=7), dist.isend(t(rank_values(rank, salt=1)), dst=nxt, tag=7)]
    for w in works:
        w.wait()
    out["irecv"] = buf2.numpy()

    # a subgroup of ranks 0 and 1: the others are not members
    sub = dist.new_group([0, 1])
    x = t(rank_values(rank))
    result = dist.all_reduce(x, group=sub)
    info["subgroup_rank"] = dist.get_rank(sub)
    info["subgroup_size"] = dist.get_world_size(sub)
    info["subgroup_call_returned_none"] = result is None
    out["subgroup_all_reduce"] = x.numpy()

    objs = [None] * world
    dist.all_gather_object(objs, {"rank": rank, "word": "r" * (rank + 1)})
    info["all_gather_object"] = objs
    blist = [rank, "from", rank] if rank == 0 else [None, None, None]
    dist.broadcast_object_list(blist, src=0)
    info["broadcast_object_list"] = blist

    dist.destroy_process_group()
    info["initialized_after_destroy"] = dist.is_initialized()
    save_npz("collectives", rank, out)
    save_json("collectives", rank, info)


if __name__ == "__main__":
    main()
