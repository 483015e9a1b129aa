"""Point-to-point transfers: send/recv, isend/irecv and batch_isend_irecv."""
from __future__ import annotations

from ._mpi import mpi, raw
from ._staging import Output, check_tensor, flat_input
from .process_group import resolve
from .work import Work


def _peer(pg, rank, group_rank, name: str, allow_any: bool = False):
    if group_rank is not None:
        peer = group_rank
    elif rank is not None:
        peer = pg.group_rank(rank)
    elif allow_any:
        return mpi().ANY_SOURCE
    else:
        raise ValueError(f"Either group_{name} or {name} must be set")
    if peer == pg.rank():
        kind = "destination" if name == "dst" else "source"
        raise ValueError(f"Invalid {kind} rank: should not be the same as the rank of the current process.")
    return peer


def isend(tensor, dst=None, group=None, tag: int = 0, group_dst=None):
    """Start sending ``tensor`` to rank ``dst``; returns a Work (None if this rank is not in ``group``)."""
    pg = resolve(group)
    if pg is None:
        return None
    check_tensor(tensor)
    peer = _peer(pg, dst, group_dst, "dst")
    send = flat_input(tensor)
    req = pg.comm.Isend(raw(send), dest=peer, tag=tag)
    return Work([req], "send", pg, keep=send)


def irecv(tensor, src=None, group=None, tag: int = 0, group_src=None):
    """Start receiving into ``tensor`` from rank ``src`` (any rank when None); returns a Work."""
    pg = resolve(group)
    if pg is None:
        return None
    check_tensor(tensor)
    MPI = mpi()
    peer = _peer(pg, src, group_src, "src", allow_any=True)
    out = Output(tensor, keep_values=False)
    req = pg.comm.Irecv(raw(out.arr), source=peer, tag=tag)
    return Work([req], "recv", pg, out.commit, [tensor], statuses=[MPI.Status()])


def send(tensor, dst=None, group=None, tag: int = 0, group_dst=None) -> None:
    """Send ``tensor`` to rank ``dst`` and wait until the buffer may be reused."""
    work = isend(tensor, dst, group, tag, group_dst)
    if work is not None:
        work.wait()


def recv(tensor, src=None, group=None, tag: int = 0, group_src=None) -> int:
    """Receive into ``tensor`` from ``src`` (any rank when None); returns the sender's global rank."""
    work = irecv(tensor, src, group, tag, group_src)
    if work is None:
        return -1
    return work.source_rank()


class P2POp:
    """One transfer for ``batch_isend_irecv``: ``P2POp(dist.isend, tensor, peer)``."""

    def __init__(self, op, tensor, peer=None, group=None, tag: int = 0, group_peer=None):
        if op not in (isend, irecv):
            raise ValueError("Invalid ``op``. Expected ``op`` to be of type ``jitorch.distributed.isend`` or "
                             "``jitorch.distributed.irecv``.")
        self.op, self.tensor, self.peer, self.group, self.tag, self.group_peer = op, tensor, peer, group, tag, group_peer


def batch_isend_irecv(p2p_op_list) -> list:
    """Start every transfer of the list; returns their Works."""
    return [p.op(p.tensor, p.peer, p.group, p.tag, p.group_peer) for p in p2p_op_list]
