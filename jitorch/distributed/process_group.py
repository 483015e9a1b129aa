"""Process groups: the default (world) group made by ``init_process_group`` and ``new_group``s.

Every group owns its own MPI communicator (a ``Dup`` of ``COMM_WORLD`` for the
world group), so a program's own mpi4py traffic on ``COMM_WORLD`` can never be
matched against jitorch's collectives. Ranks passed to collectives as
``src``/``dst`` are global ranks, as in torch.
"""
from __future__ import annotations

import os
from datetime import timedelta

from . import _abort
from ._mpi import mpi

default_pg_timeout = timedelta(minutes=30)  # torch's default for CPU backends


class Backend(str):
    """Backend names; jitorch.distributed implements only ``"mpi"``."""

    UNDEFINED = "undefined"
    GLOO = "gloo"
    NCCL = "nccl"
    UCC = "ucc"
    MPI = "mpi"

    def __new__(cls, name: str):
        return str.__new__(cls, name.lower())


class ProcessGroup:
    """A set of ranks with a communicator and a timeout for its collectives."""

    def __init__(self, comm, ranks: list[int], timeout: timedelta):
        self.comm = comm
        self.ranks = list(ranks)
        self.timeout = timeout
        self._group_rank_of = {g: i for i, g in enumerate(self.ranks)}

    def rank(self) -> int:
        return self.comm.Get_rank()

    def size(self) -> int:
        return len(self.ranks)

    def name(self) -> str:
        return "mpi"

    @property
    def timeout_s(self) -> float:
        return self.timeout.total_seconds()

    def group_rank(self, global_rank: int) -> int:
        if global_rank not in self._group_rank_of:
            raise ValueError(f"Global rank {global_rank} is not part of group {self}")
        return self._group_rank_of[global_rank]

    def global_rank(self, group_rank: int) -> int:
        if not 0 <= group_rank < len(self.ranks):
            raise ValueError(f"Group rank {group_rank} is not part of group {self}")
        return self.ranks[group_rank]

    def __repr__(self) -> str:
        return f"ProcessGroup(backend=mpi, ranks={self.ranks})"


class _NonGroupMember:
    def __repr__(self) -> str:
        return "GroupMember.NON_GROUP_MEMBER"


class GroupMember:
    """``GroupMember.WORLD`` is the default group (None before ``init_process_group``)."""

    WORLD: ProcessGroup | None = None
    NON_GROUP_MEMBER = _NonGroupMember()


class group:
    WORLD: ProcessGroup | None = None


_groups: list[ProcessGroup] = []


def _not_initialized() -> ValueError:
    return ValueError("Default process group has not been initialized, please make sure to call "
                      "init_process_group.")


def is_initialized() -> bool:
    return GroupMember.WORLD is not None


def default_group() -> ProcessGroup:
    if GroupMember.WORLD is None:
        raise _not_initialized()
    return GroupMember.WORLD


def resolve(grp) -> ProcessGroup | None:
    """The group a collective runs on; None when this rank is not a member (the call is a no-op)."""
    world = default_group()
    if grp is None or grp is GroupMember.WORLD:
        return world
    if grp is GroupMember.NON_GROUP_MEMBER:
        return None
    if not isinstance(grp, ProcessGroup):
        raise TypeError(f"group must be a ProcessGroup made by new_group, got {type(grp).__name__}")
    return grp


def _check_backend(backend) -> None:
    if backend is None:
        return
    names = {part.split(":")[-1].strip().lower() for part in str(backend).split(",")}
    if names != {"mpi"}:
        raise RuntimeError(f"jitorch.distributed supports only the 'mpi' backend, got backend={backend!r}: "
                           "launch the program with mpiexec and call init_process_group('mpi')")


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise RuntimeError(f"environment variable {name}={value!r} is not an integer") from None


def _check_consistency(mpi_rank: int, mpi_size: int, rank: int, world_size: int) -> None:
    """The rank and size come from MPI; explicit arguments and RANK/WORLD_SIZE must agree with them."""
    if world_size not in (-1, None) and world_size != mpi_size:
        raise ValueError(f"init_process_group(world_size={world_size}) disagrees with MPI: mpiexec started "
                         f"{mpi_size} process(es)")
    if rank not in (-1, None) and rank != mpi_rank:
        raise ValueError(f"init_process_group(rank={rank}) disagrees with MPI, which gives this process "
                         f"rank {mpi_rank}")
    env_size, env_rank = _env_int("WORLD_SIZE"), _env_int("RANK")
    if env_size is not None and env_size != mpi_size:
        raise RuntimeError(f"environment variable WORLD_SIZE={env_size} disagrees with MPI, which started "
                           f"{mpi_size} process(es); unset WORLD_SIZE or launch with mpiexec -n {env_size}")
    if env_rank is not None and env_rank != mpi_rank:
        raise RuntimeError(f"environment variable RANK={env_rank} disagrees with MPI, which gives this "
                           f"process rank {mpi_rank}; unset RANK when launching with mpiexec")


def init_process_group(backend=None, init_method=None, timeout: timedelta | None = None, world_size: int = -1,
                       rank: int = -1, store=None, group_name: str = "", pg_options=None, device_id=None) -> None:
    """Join the default process group: every process started by ``mpiexec`` is one rank.

    Rank and world size come from ``MPI.COMM_WORLD``; ``init_method`` and
    ``store`` are accepted for compatibility and ignored (MPI does the
    rendezvous). After this call an uncaught exception on any rank aborts the
    whole MPI job (see ``docs/distributed.md``).
    """
    _check_backend(backend)
    if is_initialized():
        raise RuntimeError("trying to initialize the default process group twice!")
    if timeout is not None and not isinstance(timeout, timedelta):
        raise TypeError(f"Expected timeout argument to be of type datetime.timedelta, got {type(timeout)}")
    MPI = mpi()
    world = MPI.COMM_WORLD
    _check_consistency(world.Get_rank(), world.Get_size(), rank, world_size)
    pg = ProcessGroup(world.Dup(), list(range(world.Get_size())), timeout or default_pg_timeout)
    GroupMember.WORLD = group.WORLD = pg
    _groups.append(pg)
    if world.Get_size() > 1:
        _abort.install()


def new_group(ranks=None, timeout: timedelta | None = None, backend=None, pg_options=None,
              use_local_synchronization: bool = False, group_desc: str | None = None, device_id=None):
    """A group of the given global ranks (all of them when None); every member must call it.

    Non-members get ``GroupMember.NON_GROUP_MEMBER``, on which collectives do nothing.
    """
    _check_backend(backend)
    world = default_group()
    ranks = sorted(set(range(world.size()) if ranks is None else (int(r) for r in ranks)))
    for r in ranks:
        if not 0 <= r < world.size():
            raise ValueError(f"new_group: rank {r} is outside the world of size {world.size()}")
    me = world.rank()
    if me not in ranks:
        return GroupMember.NON_GROUP_MEMBER
    comm = world.comm.Create_group(world.comm.Get_group().Incl(ranks))
    pg = ProcessGroup(comm, ranks, timeout or world.timeout)
    _groups.append(pg)
    return pg


def destroy_process_group(group=None) -> None:
    """Free a group's communicator; with no argument, every group, and leave the initialised state."""
    if group is None or group is GroupMember.WORLD:
        for pg in _groups:
            _free(pg)
        _groups.clear()
        GroupMember.WORLD = globals()["group"].WORLD = None
        _abort.uninstall()
        return
    if group is GroupMember.NON_GROUP_MEMBER:
        return
    if group in _groups:
        _groups.remove(group)
        _free(group)


def _free(pg: ProcessGroup) -> None:
    MPI = mpi()
    if pg.comm is not None and pg.comm != MPI.COMM_NULL:
        pg.comm.Free()
    pg.comm = None


def get_rank(group=None) -> int:
    """This process's rank in ``group`` (the world by default); -1 if it is not a member."""
    pg = resolve(group)
    return -1 if pg is None else pg.rank()


def get_world_size(group=None) -> int:
    pg = resolve(group)
    return -1 if pg is None else pg.size()


def get_backend(group=None) -> str:
    resolve(group)
    return Backend.MPI


def get_group_rank(group, global_rank: int) -> int:
    pg = resolve(group)
    if pg is None:
        raise ValueError("this rank is not part of the group")
    return pg.group_rank(global_rank)


def get_global_rank(group, group_rank: int) -> int:
    pg = resolve(group)
    if pg is None:
        raise ValueError("this rank is not part of the group")
    return pg.global_rank(group_rank)


def get_process_group_ranks(group) -> list[int]:
    pg = resolve(group)
    if pg is None:
        raise ValueError("this rank is not part of the group")
    return list(pg.ranks)
