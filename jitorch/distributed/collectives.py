"""Collectives on tensors, with torch.distributed's signatures.

Each one starts MPI's non-blocking variant on the tensors' contiguous
buffers and returns a :class:`Work` (``async_op=True``) or waits for it with
the group's timeout. On a rank that is not in ``group`` they return None and
do nothing, as in torch. ``src``/``dst`` are global ranks; ``group_src`` /
``group_dst`` give the rank inside ``group`` instead.
"""
from __future__ import annotations

import numpy as np

from . import reduce_op as R
from ._mpi import mpi, raw, typed
from ._staging import (
    Output,
    check_same_dtype,
    check_tensor,
    check_tensor_list,
    concat_inputs,
    flat_input,
)
from .process_group import ProcessGroup, resolve
from .reduce_op import ReduceOp
from .work import Work


def _run(work: Work, async_op: bool):
    if async_op:
        return work
    work.wait()
    return None


def _root(pg: ProcessGroup, global_rank, group_rank, name: str) -> int:
    """The group rank of a collective's root from ``src``/``dst`` (global) or ``group_src``/``group_dst``."""
    if group_rank is not None:
        if global_rank is not None and pg.global_rank(group_rank) != global_rank:
            raise ValueError(f"{name} and group_{name} name different ranks")
        if not 0 <= group_rank < pg.size():
            raise ValueError(f"group_{name}={group_rank} is outside the group of size {pg.size()}")
        return group_rank
    if global_rank is None:
        raise ValueError(f"Either group_{name} or {name} must be set")
    return pg.group_rank(global_rank)


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op: bool = False):
    """Reduce ``tensor`` over all ranks; every rank gets the result, in place."""
    pg = resolve(group)
    if pg is None:
        return None
    check_tensor(tensor)
    op = R.check(op)
    out = Output(tensor, reduce=True)
    req = pg.comm.Iallreduce(mpi().IN_PLACE, typed(out.arr), R.to_mpi(op, out.arr.dtype))

    def finish():
        R.finish_average(out.arr, op, pg.size())
        out.commit()
    return _run(Work([req], "all_reduce", pg, finish, [tensor]), async_op)


def broadcast(tensor, src=None, group=None, async_op: bool = False, group_src=None):
    """Copy ``tensor`` from rank ``src`` to every rank, in place."""
    pg = resolve(group)
    if pg is None:
        return None
    check_tensor(tensor)
    root = _root(pg, src, group_src, "src")
    if pg.rank() == root:
        send = flat_input(tensor)
        req = pg.comm.Ibcast(raw(send), root=root)
        return _run(Work([req], "broadcast", pg, None, [tensor], keep=send), async_op)
    out = Output(tensor, keep_values=False)
    req = pg.comm.Ibcast(raw(out.arr), root=root)
    return _run(Work([req], "broadcast", pg, out.commit, [tensor]), async_op)


def reduce(tensor, dst=None, op=ReduceOp.SUM, group=None, async_op: bool = False, group_dst=None):
    """Reduce ``tensor`` over all ranks into rank ``dst``'s ``tensor``; the others' stay unchanged."""
    pg = resolve(group)
    if pg is None:
        return None
    check_tensor(tensor)
    op = R.check(op)
    root = _root(pg, dst, group_dst, "dst")
    if pg.rank() != root:
        send = flat_input(tensor, reduce=True)
        req = pg.comm.Ireduce(typed(send), None, R.to_mpi(op, send.dtype), root=root)
        return _run(Work([req], "reduce", pg, None, [tensor], keep=send), async_op)
    out = Output(tensor, reduce=True)
    req = pg.comm.Ireduce(mpi().IN_PLACE, typed(out.arr), R.to_mpi(op, out.arr.dtype), root=root)

    def finish():
        R.finish_average(out.arr, op, pg.size())
        out.commit()
    return _run(Work([req], "reduce", pg, finish, [tensor]), async_op)


def all_gather(tensor_list, tensor, group=None, async_op: bool = False):
    """``tensor_list[r]`` receives rank ``r``'s ``tensor`` on every rank."""
    pg = resolve(group)
    if pg is None:
        return None
    check_tensor(tensor)
    check_tensor_list(tensor_list, "tensor_list", pg.size())
    check_same_dtype(tensor_list, tensor._data.dtype, "tensor_list")
    n = tensor.numel()
    for i, t in enumerate(tensor_list):
        if t.numel() != n:
            raise ValueError(f"all_gather: tensor_list[{i}] has {t.numel()} elements, the input has {n}")
    recv = np.empty((pg.size(), n), dtype=tensor._data.dtype)
    send = flat_input(tensor)
    req = pg.comm.Iallgather(raw(send), raw(recv))
    for t in tensor_list:
        t._bump_version()

    def finish():
        for t, row in zip(tensor_list, recv):
            t._data[...] = row.reshape(t._data.shape)
    return _run(Work([req], "all_gather", pg, finish, list(tensor_list), keep=send), async_op)


def all_gather_into_tensor(output_tensor, input_tensor, group=None, async_op: bool = False):
    """The ranks' ``input_tensor``s concatenated (rank order) into ``output_tensor``."""
    pg = resolve(group)
    if pg is None:
        return None
    check_tensor(output_tensor, "output_tensor")
    check_tensor(input_tensor, "input_tensor")
    if output_tensor.numel() != pg.size() * input_tensor.numel():
        raise ValueError("output tensor size must be equal to world_size times input tensor size")
    if output_tensor.dtype is not input_tensor.dtype:
        raise ValueError("output tensor must have the same type as input tensor")
    out = Output(output_tensor, keep_values=False)
    send = flat_input(input_tensor)
    req = pg.comm.Iallgather(raw(send), raw(out.arr))
    return _run(Work([req], "all_gather_into_tensor", pg, out.commit, [output_tensor], keep=send), async_op)


def reduce_scatter_tensor(output, input, op=ReduceOp.SUM, group=None, async_op: bool = False):
    """Reduce ``input`` over ranks; rank ``r`` keeps the ``r``-th of ``world_size`` equal chunks."""
    pg = resolve(group)
    if pg is None:
        return None
    check_tensor(output, "output")
    check_tensor(input, "input")
    op = R.check(op)
    if input.numel() != pg.size() * output.numel():
        raise ValueError("input tensor must be the same size as output size times world size")
    if output.dtype is not input.dtype:
        raise ValueError("input tensor must be the same type as the output tensor")
    out = Output(output, reduce=True, keep_values=False)
    send = flat_input(input, reduce=True)
    req = pg.comm.Ireduce_scatter_block(typed(send), typed(out.arr), R.to_mpi(op, send.dtype))

    def finish():
        R.finish_average(out.arr, op, pg.size())
        out.commit()
    return _run(Work([req], "reduce_scatter_tensor", pg, finish, [output], keep=send), async_op)


def reduce_scatter(output, input_list, op=ReduceOp.SUM, group=None, async_op: bool = False):
    """Reduce each ``input_list[r]`` over ranks into rank ``r``'s ``output``."""
    pg = resolve(group)
    if pg is None:
        return None
    check_tensor(output, "output")
    check_tensor_list(input_list, "input_list", pg.size())
    check_same_dtype(input_list, output._data.dtype, "input_list")
    op = R.check(op)
    counts = [t.numel() for t in input_list]
    if counts[pg.rank()] != output.numel():
        raise ValueError(f"reduce_scatter: output has {output.numel()} elements, input_list[{pg.rank()}] has "
                         f"{counts[pg.rank()]}")
    send = concat_inputs(input_list, output._data.dtype, reduce=True)
    out = Output(output, reduce=True, keep_values=False)
    req = pg.comm.Ireduce_scatter(typed(send), typed(out.arr), counts, R.to_mpi(op, send.dtype))

    def finish():
        R.finish_average(out.arr, op, pg.size())
        out.commit()
    return _run(Work([req], "reduce_scatter", pg, finish, [output], keep=send), async_op)


def gather(tensor, gather_list=None, dst=None, group=None, async_op: bool = False, group_dst=None):
    """Rank ``dst`` receives every rank's ``tensor`` in ``gather_list``."""
    pg = resolve(group)
    if pg is None:
        return None
    check_tensor(tensor)
    root = _root(pg, dst, group_dst, "dst")
    send = raw(flat_input(tensor))
    if pg.rank() != root:
        if gather_list:
            raise ValueError("Argument ``gather_list`` must NOT be specified on non-destination ranks.")
        req = pg.comm.Igather(send, None, root=root)
        return _run(Work([req], "gather", pg, keep=send), async_op)
    if gather_list is None:
        raise ValueError("Argument ``gather_list`` must be specified on destination rank.")
    check_tensor_list(gather_list, "gather_list", pg.size())
    check_same_dtype(gather_list, tensor._data.dtype, "gather_list")
    recv = np.empty((pg.size(), tensor.numel()), dtype=tensor._data.dtype)
    req = pg.comm.Igather(send, raw(recv), root=root)
    for t in gather_list:
        t._bump_version()

    def finish():
        for t, row in zip(gather_list, recv):
            t._data[...] = row.reshape(t._data.shape)
    return _run(Work([req], "gather", pg, finish, list(gather_list), keep=send), async_op)


def scatter(tensor, scatter_list=None, src=None, group=None, async_op: bool = False, group_src=None):
    """Rank ``r``'s ``tensor`` receives ``scatter_list[r]`` of rank ``src``."""
    pg = resolve(group)
    if pg is None:
        return None
    check_tensor(tensor)
    root = _root(pg, src, group_src, "src")
    send = None
    if pg.rank() == root:
        if scatter_list is None:
            raise ValueError("Argument ``scatter_list`` must be specified on source rank.")
        check_tensor_list(scatter_list, "scatter_list", pg.size())
        check_same_dtype(scatter_list, tensor._data.dtype, "scatter_list")
        for i, t in enumerate(scatter_list):
            if t.numel() != tensor.numel():
                raise ValueError(f"scatter: scatter_list[{i}] has {t.numel()} elements, the output has "
                                 f"{tensor.numel()}")
        send = raw(concat_inputs(scatter_list, tensor._data.dtype))
    elif scatter_list:
        raise ValueError("Argument ``scatter_list`` must NOT be specified on non-source ranks.")
    out = Output(tensor, keep_values=False)
    req = pg.comm.Iscatter(send, raw(out.arr), root=root)
    return _run(Work([req], "scatter", pg, out.commit, [tensor], keep=send), async_op)


def _split_bytes(t, splits, size: int, name: str):
    """Byte counts and displacements of ``t``'s dim-0 blocks (equal blocks when ``splits`` is None)."""
    if t.ndim == 0:
        raise ValueError(f"all_to_all_single: `{name}` must have at least one dimension")
    rows = t.shape[0]
    row_bytes = (t.numel() // rows if rows else 0) * t.element_size()
    if splits is None or len(splits) == 0:
        if rows % size:
            raise ValueError(f"all_to_all_single: dim 0 of `{name}` ({rows}) is not divisible by the world size "
                             f"{size}; pass split sizes")
        splits = [rows // size] * size
    splits = [int(s) for s in splits]
    if len(splits) != size or sum(splits) != rows:
        raise ValueError(f"all_to_all_single: split sizes of `{name}` {splits} must have {size} entries summing "
                         f"to {rows}")
    counts = [s * row_bytes for s in splits]
    displs = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(int).tolist()
    return counts, displs


def all_to_all_single(output, input, output_split_sizes=None, input_split_sizes=None, group=None,
                      async_op: bool = False):
    """Split ``input`` along dim 0, send block ``r`` to rank ``r``, concatenate what arrives into ``output``."""
    pg = resolve(group)
    if pg is None:
        return None
    check_tensor(output, "output")
    check_tensor(input, "input")
    if output.dtype is not input.dtype:
        raise ValueError("all_to_all_single: input and output must have the same dtype")
    s_counts, s_displs = _split_bytes(input, input_split_sizes, pg.size(), "input")
    r_counts, r_displs = _split_bytes(output, output_split_sizes, pg.size(), "output")
    send = flat_input(input).view(np.uint8)
    out = Output(output, keep_values=False)
    BYTE = mpi().BYTE
    req = pg.comm.Ialltoallv([send, (s_counts, s_displs), BYTE], [out.arr.view(np.uint8), (r_counts, r_displs), BYTE])
    return _run(Work([req], "all_to_all_single", pg, out.commit, [output], keep=send), async_op)


def all_to_all(output_tensor_list, input_tensor_list, group=None, async_op: bool = False):
    """Send ``input_tensor_list[r]`` to rank ``r``; receive rank ``r``'s tensor into ``output_tensor_list[r]``."""
    pg = resolve(group)
    if pg is None:
        return None
    check_tensor_list(output_tensor_list, "output_tensor_list", pg.size())
    check_tensor_list(input_tensor_list, "input_tensor_list", pg.size())
    dtype = input_tensor_list[0]._data.dtype
    check_same_dtype(input_tensor_list, dtype, "input_tensor_list")
    check_same_dtype(output_tensor_list, dtype, "output_tensor_list")
    item = dtype.itemsize
    s_counts = [t.numel() * item for t in input_tensor_list]
    r_counts = [t.numel() * item for t in output_tensor_list]
    s_displs = np.concatenate([[0], np.cumsum(s_counts)[:-1]]).astype(int).tolist()
    r_displs = np.concatenate([[0], np.cumsum(r_counts)[:-1]]).astype(int).tolist()
    send = concat_inputs(input_tensor_list, dtype).view(np.uint8)
    recv = np.empty(sum(r_counts), dtype=np.uint8)
    BYTE = mpi().BYTE
    req = pg.comm.Ialltoallv([send, (s_counts, s_displs), BYTE], [recv, (r_counts, r_displs), BYTE])
    for t in output_tensor_list:
        t._bump_version()

    def finish():
        for t, at, n in zip(output_tensor_list, r_displs, r_counts):
            t._data[...] = recv[at:at + n].view(dtype).reshape(t._data.shape)
    return _run(Work([req], "all_to_all", pg, finish, list(output_tensor_list), keep=send), async_op)


def barrier(group=None, async_op: bool = False, device_ids=None):
    """Block until every rank of ``group`` has reached the barrier."""
    pg = resolve(group)
    if pg is None:
        return None
    return _run(Work([pg.comm.Ibarrier()], "barrier", pg), async_op)


def monitored_barrier(group=None, timeout=None, wait_all_ranks: bool = False) -> None:
    """A barrier with its own timeout (a timedelta), raising RuntimeError when a rank does not arrive."""
    pg = resolve(group)
    if pg is None:
        return
    Work([pg.comm.Ibarrier()], "monitored_barrier", pg).wait(timeout)
