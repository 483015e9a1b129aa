"""Tear the whole MPI job down when one rank dies of an uncaught exception.

Without this, the other ranks would sit in their next collective until its
timeout (or forever, in a blocking MPI call), and ``MPI_Finalize`` at exit
could hang as well. ``MPI_Abort`` makes ``mpiexec`` kill every rank and exit
with a non-zero status. ``python -m mpi4py script.py`` does the same for
programs that do not use jitorch.distributed.
"""
from __future__ import annotations

import sys

from ._mpi import mpi

_previous_hook = None


def _abort_on_uncaught(exc_type, exc, tb) -> None:
    (_previous_hook or sys.__excepthook__)(exc_type, exc, tb)  # print the traceback first
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        MPI = mpi()
        rank = MPI.COMM_WORLD.Get_rank()
        print(f"jitorch.distributed: uncaught {exc_type.__name__} on rank {rank}: calling MPI_Abort so that "
              "mpiexec stops every rank", file=sys.stderr, flush=True)
        MPI.COMM_WORLD.Abort(1)
    except Exception as abort_error:  # noqa: BLE001 - never mask the original error
        print(f"jitorch.distributed: MPI_Abort failed: {abort_error}", file=sys.__stderr__)


def install() -> None:
    global _previous_hook
    if sys.excepthook is _abort_on_uncaught:
        return
    _previous_hook = sys.excepthook
    sys.excepthook = _abort_on_uncaught


def uninstall() -> None:
    global _previous_hook
    if sys.excepthook is _abort_on_uncaught:
        sys.excepthook = _previous_hook or sys.__excepthook__
    _previous_hook = None
