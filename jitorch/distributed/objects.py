"""Collectives on picklable Python objects (not tensors): sizes first, then the pickled bytes."""
from __future__ import annotations

import pickle

import numpy as np

from ._mpi import mpi
from .process_group import resolve
from .work import Work


def _wait(req, op, pg) -> None:
    Work([req], op, pg).wait()


def all_gather_object(object_list: list, obj, group=None) -> None:
    """``object_list[r]`` becomes rank ``r``'s ``obj`` on every rank."""
    pg = resolve(group)
    if pg is None:
        return
    if len(object_list) != pg.size():
        raise ValueError(f"all_gather_object: object_list must have {pg.size()} entries")
    payload = np.frombuffer(pickle.dumps(obj), dtype=np.uint8)
    sizes = np.empty(pg.size(), dtype=np.int64)
    MPI = mpi()
    _wait(pg.comm.Iallgather([np.array([payload.size], np.int64), MPI.INT64_T], [sizes, MPI.INT64_T]),
          "all_gather_object", pg)
    displs = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
    recv = np.empty(int(sizes.sum()), dtype=np.uint8)
    _wait(pg.comm.Iallgatherv([payload, MPI.BYTE], [recv, (sizes.tolist(), displs.tolist()), MPI.BYTE]),
          "all_gather_object", pg)
    for r in range(pg.size()):
        object_list[r] = pickle.loads(recv[displs[r]:displs[r] + sizes[r]].tobytes())


def broadcast_object_list(object_list: list, src=None, group=None, device=None, group_src=None) -> None:
    """Replace ``object_list``'s entries in place with those of rank ``src``."""
    from .collectives import _root
    pg = resolve(group)
    if pg is None:
        return
    root = _root(pg, src, group_src, "src")
    MPI = mpi()
    size = np.zeros(1, dtype=np.int64)
    payload = None
    if pg.rank() == root:
        payload = np.frombuffer(pickle.dumps(list(object_list)), dtype=np.uint8).copy()
        size[0] = payload.size
    _wait(pg.comm.Ibcast([size, MPI.INT64_T], root=root), "broadcast_object_list", pg)
    if payload is None:
        payload = np.empty(int(size[0]), dtype=np.uint8)
    _wait(pg.comm.Ibcast([payload, MPI.BYTE], root=root), "broadcast_object_list", pg)
    if pg.rank() != root:
        received = pickle.loads(payload.tobytes())
        if len(received) != len(object_list):
            raise ValueError(f"broadcast_object_list: rank {src} sent {len(received)} objects, this rank's list "
                             f"has {len(object_list)} slots")
        object_list[:] = received
