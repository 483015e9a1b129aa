"""Imported once by the forkserver process that forks DataLoader workers.

Importing jitorch (and Numba) here means each forked worker starts without
re-importing them. Nothing here runs a parallel kernel, so the server stays
fork-safe (see dataloader.py).

Numba creates a multiprocessing lock the first time a process initialises its
threading layer; in a forkserver child that lock would be a named semaphore
tracked by the resource tracker, which then warns about a "leaked semaphore"
whenever a worker dies abruptly. Creating it here, in the server (whose start
method is plain fork), gives every worker an inherited, already-unlinked one.
"""

import jitorch  # noqa: F401
import jitorch.utils.data  # noqa: F401

try:
    from numba.np.ufunc import parallel as _numba_parallel

    if not _numba_parallel._backend_init_process_lock:
        _numba_parallel._set_init_process_lock()
except Exception:  # pragma: no cover - private Numba detail; harmless if absent
    pass
