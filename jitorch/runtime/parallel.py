"""Two-way work sharing on Python threads for GIL-free kernels (Numba ``nogil``, BLAS).

The eager training kernels (direct convolutions, the LSTM recurrence) split
their work into independent chunks: batch slices, say.  ``run_chunks`` runs
them on the calling thread and one helper thread, which claim chunks from a
shared counter.  Unlike an OpenMP team or OpenBLAS's threads, nobody spins:
the helper sleeps on a condition until work arrives, and if it does not get a
core in time (the machine is busy) the caller simply claims every chunk
itself, so a loaded machine costs no more than running serially.

Chunk functions must release the GIL for their heavy part (Numba ``nogil=True``
kernels and NumPy's BLAS calls do) and must not write to the same memory.
"""
from __future__ import annotations

import os
import threading

# below this many multiply-adds (or element operations) per call, waking the helper costs more than it saves
MIN_WORK = 1 << 19


class _Helper:
    """One daemon thread that joins whatever ``run_chunks`` call is in progress."""

    def __init__(self):
        self._cv = threading.Condition()
        self._job = None  # (fn, state) of the call in progress
        self._idle = True
        self._thread = threading.Thread(target=self._loop, name="jitorch-helper", daemon=True)
        self._thread.start()

    def _loop(self):
        while True:
            with self._cv:
                while self._job is None:
                    self._cv.wait()
                fn, state = self._job
                self._job = None
                self._idle = False
            try:
                _claim_all(fn, state)
            finally:
                with self._cv:
                    self._idle = True
                    self._cv.notify_all()

    def offer(self, fn, state) -> bool:
        """Hand the call to the helper if it is free; False when it is still busy with another."""
        with self._cv:
            if not self._idle or self._job is not None:
                return False
            self._job = (fn, state)
            self._cv.notify_all()
            return True

    def finish(self, state) -> None:
        """Take the job back if the helper never picked it up, else wait until it is done with it."""
        with self._cv:
            if self._job is not None and self._job[1] is state:
                self._job = None  # it never got a core: nothing of this call runs there
                return
            while not self._idle:
                self._cv.wait()


class _State:
    __slots__ = ("error", "lock", "n", "next")

    def __init__(self, n):
        self.lock = threading.Lock()
        self.next = 0
        self.n = n
        self.error = None


def _claim_all(fn, state) -> None:
    while True:
        with state.lock:
            k = state.next
            if k >= state.n or state.error is not None:
                return
            state.next = k + 1
        try:
            fn(k)
        except BaseException as e:  # noqa: BLE001 - handed to the caller, which re-raises it
            with state.lock:
                state.error = e
            return


_helper = None
_pid = None
_enabled = os.environ.get("JITORCH_HELPER_THREAD", "1") != "0" and (os.cpu_count() or 1) > 1


def _get_helper():
    global _helper, _pid
    if _helper is None or _pid != os.getpid():  # a forked child has no helper thread: start its own
        _helper, _pid = _Helper(), os.getpid()
    return _helper


def run_chunks(fn, n_chunks: int, work: int = MIN_WORK) -> None:
    """Call ``fn(k)`` for every ``k`` in ``range(n_chunks)``, shared with the helper thread when ``work``
    (the whole call's size) is worth it; returns when all chunks are done, re-raising a chunk's error."""
    if n_chunks <= 1 or work < MIN_WORK or not _enabled or threading.current_thread() is _thread_of_helper():
        for k in range(n_chunks):
            fn(k)
        return
    helper = _get_helper()
    state = _State(n_chunks)
    shared = helper.offer(fn, state)
    _claim_all(fn, state)
    if shared:
        helper.finish(state)
    if state.error is not None:
        raise state.error


def _thread_of_helper():
    return _helper._thread if _helper is not None else None


def split(n: int, parts: int = 2) -> list[tuple[int, int]]:
    """``parts`` contiguous (start, stop) ranges covering ``range(n)`` (fewer when n is small)."""
    parts = max(1, min(parts, n))
    step, extra = divmod(n, parts)
    out, lo = [], 0
    for k in range(parts):
        hi = lo + step + (1 if k < extra else 0)
        out.append((lo, hi))
        lo = hi
    return out
