"""``Work``: the handle of a collective in flight, and the timed wait behind every blocking call.

All collectives are started with MPI's non-blocking calls and then polled, so
that a peer that died or never joins turns into a RuntimeError after the
group's timeout instead of a hang. Polling spins for 10 ms, as MPI's own
blocking calls do (most collectives finish within it, and each poll also
drives MPICH's progress engine); after that it sleeps between polls with a
growing pause, so that waiting long for a slow peer costs no CPU.
(Yielding the CPU between polls made waits longer in measurements on a busy
machine: the waiting rank then lost whole scheduler time slices.)
"""
from __future__ import annotations

import time

from ._mpi import mpi

_SPIN_S = 0.01      # poll flat out this long (MPICH's own blocking calls spin for ever),
_MAX_PAUSE_S = 1e-3  # then sleep between polls, at most this long


def wait_requests(requests, op: str, pg, timeout_s: float | None = None, statuses=None) -> None:
    """Wait for every MPI request in ``requests``; RuntimeError once ``timeout_s`` has passed."""
    testall = mpi().Request.Testall
    if testall(requests, statuses):
        return
    timeout_s = pg.timeout_s if timeout_s is None else timeout_s
    start = time.monotonic()
    deadline = start + timeout_s
    pause = 0.0
    while not testall(requests, statuses):
        now = time.monotonic()
        if now > deadline:
            raise RuntimeError(
                f"jitorch.distributed: {op} timed out after {timeout_s:g} s on rank {pg.global_rank(pg.rank())} "
                f"(process group of ranks {pg.ranks}): a peer rank has died, raised, or not called the matching "
                "collective. The timeout is the `timeout` argument of init_process_group/new_group.")
        if now - start > _SPIN_S:
            time.sleep(pause)
            pause = min(pause * 2 or 2e-5, _MAX_PAUSE_S)


class Work:
    """A collective or point-to-point transfer started with ``async_op=True``.

    ``wait()`` blocks until it is done (raising on timeout) and returns True;
    only then are the output tensors guaranteed to hold the result.
    """

    def __init__(self, requests, op: str, pg, finish=None, outputs=(), statuses=None, keep=()):
        self._requests = list(requests)
        self._keep = keep  # the buffers MPI reads or writes must outlive the transfer
        self._op = op
        self._pg = pg
        self._finish = finish
        self._outputs = list(outputs)
        self._statuses = statuses
        self._done = False
        self._error = None

    def _complete(self) -> None:
        self._done = True
        self._keep = ()
        if self._finish is not None:
            finish, self._finish = self._finish, None
            finish()

    def wait(self, timeout=None) -> bool:
        """Block until the operation finished; ``timeout`` (timedelta or seconds) overrides the group's."""
        if self._done:
            return True
        if hasattr(timeout, "total_seconds"):
            timeout = timeout.total_seconds()
        try:
            wait_requests(self._requests, self._op, self._pg, timeout, self._statuses)
        except RuntimeError as exc:
            self._error = exc
            raise
        self._complete()
        return True

    def is_completed(self) -> bool:
        """True once the operation finished (the outputs are then written); never blocks."""
        if not self._done and mpi().Request.Testall(self._requests, self._statuses):
            self._complete()
        return self._done

    def is_success(self) -> bool:
        return self._done and self._error is None

    def exception(self):
        return self._error

    def result(self) -> list:
        """The output tensors (after ``wait()``)."""
        return list(self._outputs)

    def source_rank(self) -> int:
        """For ``irecv``: the global rank the message came from."""
        if not self._statuses:
            raise RuntimeError("source_rank() is only defined for a receive")
        self.wait()
        return self._pg.global_rank(self._statuses[0].Get_source())

    def synchronize(self) -> None:
        self.wait()

    def __repr__(self) -> str:
        return f"<jitorch.distributed.Work {self._op} {'done' if self._done else 'pending'}>"
