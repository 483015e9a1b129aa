"""``DataLoader``, mirroring ``torch.utils.data.dataloader``.

Multi-process loading (``num_workers > 0``)
-------------------------------------------
Workers are real processes. By default they are started with the
``forkserver`` method where the platform has it, else ``spawn`` -- never
``fork``. The reason: jitorch runs Numba ``parallel=True`` kernels, whose
threading layer is (typically) GNU OpenMP, and GNU OpenMP is not fork-safe.
A child forked from a process that has already run a parallel region inherits
the OpenMP runtime's state but none of its threads, so the child's first
parallel kernel hangs or is killed (Numba aborts it with "fork() called from a
process already using GNU OpenMP"). ``spawn`` starts a fresh interpreter, and
the ``forkserver`` forks workers from a clean server process that was itself
started with fork+exec and never runs a parallel kernel. (``fork`` can still be
requested explicitly with ``multiprocessing_context="fork"``, at the user's
risk.) The forkserver preloads ``jitorch`` once so each worker starts in
milliseconds instead of re-importing Numba.

As with torch's ``spawn`` method, the dataset, ``collate_fn`` and
``worker_init_fn`` are pickled to the workers, so they must be importable: a
dataset class defined in the main script requires the script's top-level code
to sit under ``if __name__ == "__main__":``; lambdas and local functions
can't be used as ``collate_fn`` / ``worker_init_fn``.

The parent sends ``(task_idx, indices)`` to the workers round-robin through
one queue per worker, keeping at most ``prefetch_factor * num_workers``
batches in flight, and each worker sends results back through its own pipe.
Results are reordered by task index, so the batches come out exactly as with
``num_workers=0``. While waiting, the parent watches every worker's process
sentinel, so a worker that dies surfaces as a RuntimeError (no hang); an
exception in a worker is re-raised in the parent with the worker id and the
original traceback text.
"""

import atexit
import io
import itertools
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import time
import warnings
import weakref
from typing import Generic, TypeVar

from .collate import default_collate, default_convert
from ._common import draw_seed
from .dataset import IterableDataset
from .fetch import _IterableDatasetFetcher, _MapDatasetFetcher
from .sampler import BatchSampler, RandomSampler, SequentialSampler, _InfiniteConstantSampler
from .worker import (
    ExceptionWrapper,
    _IterableDatasetStopIteration,
    _ResumeIteration,
    _worker_loop,
    get_worker_info,
    register_tensor_pickling,
    share_large_tensors,
)

__all__ = ["DataLoader", "default_collate", "default_convert", "get_worker_info"]

T_co = TypeVar("T_co", covariant=True)

# The parent wakes up at least this often while waiting for a batch.
_POLL_INTERVAL = 0.25
# How long shutdown waits for a worker to exit before terminating it.
_JOIN_TIMEOUT = 1.0


class _DatasetKind:
    Map = 0
    Iterable = 1

    @staticmethod
    def create_fetcher(kind, dataset, auto_collation, collate_fn, drop_last):
        if kind == _DatasetKind.Map:
            return _MapDatasetFetcher(dataset, auto_collation, collate_fn, drop_last)
        return _IterableDatasetFetcher(dataset, auto_collation, collate_fn, drop_last)


# --------------------------------------------------------------------------
# Start methods
# --------------------------------------------------------------------------

def _default_start_method():
    # forkserver/spawn only: see the module docstring (GNU OpenMP + fork).
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        return "forkserver"
    return "spawn"


def _configure_forkserver(ctx):
    """Ask the forkserver (if not yet running) to preload jitorch, so forked
    workers don't each re-import Numba and jitorch (see _forkserver_preload).
    Importing jitorch never runs a parallel kernel, so the server stays
    fork-safe."""
    try:
        from multiprocessing import forkserver

        server = forkserver._forkserver
        current = list(getattr(server, "_preload_modules", None) or ["__main__"])
        module = "jitorch.utils.data._forkserver_preload"
        if module not in current:
            ctx.set_forkserver_preload(current + [module])
    except Exception:
        pass


def _get_context(spec):
    if spec is None:
        method = _default_start_method()
        ctx = multiprocessing.get_context(method)
    elif isinstance(spec, str):
        ctx = multiprocessing.get_context(spec)
    else:
        ctx = spec
    if ctx.get_start_method() == "forkserver":
        _configure_forkserver(ctx)
    return ctx


# --------------------------------------------------------------------------
# DataLoader
# --------------------------------------------------------------------------

class DataLoader(Generic[T_co]):
    """Iterate over a dataset in (optionally shuffled) batches, optionally
    loading them in worker processes. Same arguments and semantics as
    ``torch.utils.data.DataLoader``; with ``pin_memory`` (and CUDA available) the
    batches' tensors are copied into page-locked memory, so ``.to("cuda",
    non_blocking=True)`` copies them asynchronously."""

    _initialized = False

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None,
                 num_workers=0, collate_fn=None, pin_memory=False, drop_last=False, timeout=0,
                 worker_init_fn=None, multiprocessing_context=None, generator=None, *,
                 prefetch_factor=None, persistent_workers=False, pin_memory_device="",
                 in_order=True):
        if num_workers < 0:
            raise ValueError(
                "num_workers option should be non-negative; use num_workers=0 to disable "
                "multiprocessing."
            )
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError(
                "prefetch_factor option could only be specified in multiprocessing. "
                "let num_workers > 0 to enable multiprocessing, otherwise set "
                "prefetch_factor to None."
            )
        if num_workers > 0 and prefetch_factor is None:
            prefetch_factor = 2
        elif prefetch_factor is not None and prefetch_factor < 0:
            raise ValueError("prefetch_factor option should be non-negative")
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")

        self.dataset = dataset
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.pin_memory = pin_memory
        self.pin_memory_device = pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.in_order = in_order

        if isinstance(dataset, IterableDataset):
            self._dataset_kind = _DatasetKind.Iterable
            # An iterable dataset decides its own order; samplers make no sense.
            if shuffle not in (False, None):
                raise ValueError(
                    "DataLoader with IterableDataset: expected unspecified shuffle option, "
                    f"but got shuffle={shuffle}"
                )
            if sampler is not None:
                raise ValueError(
                    "DataLoader with IterableDataset: expected unspecified sampler option, "
                    f"but got sampler={sampler}"
                )
            if batch_sampler is not None:
                raise ValueError(
                    "DataLoader with IterableDataset: expected unspecified batch_sampler "
                    f"option, but got batch_sampler={batch_sampler}"
                )
        else:
            shuffle = bool(shuffle)
            self._dataset_kind = _DatasetKind.Map

        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")

        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError(
                    "batch_sampler option is mutually exclusive with batch_size, shuffle, "
                    "sampler, and drop_last"
                )
            batch_size = None
            drop_last = False
        elif batch_size is None and drop_last:
            raise ValueError(
                "batch_size=None option disables auto-batching and is mutually exclusive "
                "with drop_last"
            )

        if sampler is None:
            if self._dataset_kind == _DatasetKind.Iterable:
                sampler = _InfiniteConstantSampler()
            elif shuffle:
                sampler = RandomSampler(dataset, generator=generator)
            else:
                sampler = SequentialSampler(dataset)

        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)

        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.generator = generator

        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn
        self.persistent_workers = persistent_workers

        self._initialized = True
        self._IterableDataset_len_called = None
        self._iterator = None
        self.check_worker_number_rationality()

    # -- attributes ---------------------------------------------------------
    @property
    def multiprocessing_context(self):
        return self._multiprocessing_context

    @multiprocessing_context.setter
    def multiprocessing_context(self, ctx):
        if ctx is not None:
            if self.num_workers <= 0:
                raise ValueError(
                    "multiprocessing_context can only be used with multi-process loading "
                    f"(num_workers > 0), but got num_workers={self.num_workers}"
                )
            if isinstance(ctx, str):
                valid = multiprocessing.get_all_start_methods()
                if ctx not in valid:
                    raise ValueError(
                        "multiprocessing_context option should specify a valid start method "
                        f"in {valid!r}, but got multiprocessing_context={ctx!r}"
                    )
                ctx = multiprocessing.get_context(ctx)
            if not isinstance(ctx, multiprocessing.context.BaseContext):
                raise TypeError(
                    "multiprocessing_context option should be a valid context object or a "
                    "string specifying the start method, but got "
                    f"multiprocessing_context={ctx}"
                )
        object.__setattr__(self, "_multiprocessing_context", ctx)

    def __setattr__(self, attr, val):
        if self._initialized and attr in (
            "batch_size", "batch_sampler", "sampler", "drop_last", "dataset",
            "persistent_workers",
        ):
            raise ValueError(
                f"{attr} attribute should not be set after {self.__class__.__name__} is "
                "initialized"
            )
        super().__setattr__(attr, val)

    @property
    def _auto_collation(self):
        return self.batch_sampler is not None

    @property
    def _index_sampler(self):
        return self.batch_sampler if self._auto_collation else self.sampler

    # -- iteration ----------------------------------------------------------
    def _get_iterator(self):
        if self.num_workers == 0:
            return _SingleProcessDataLoaderIter(self)
        self.check_worker_number_rationality()
        return _MultiProcessingDataLoaderIter(self)

    def __iter__(self):
        # Persistent workers: one iterator (and one set of workers) for the
        # loader's lifetime, reset at every epoch.
        if self.persistent_workers and self.num_workers > 0:
            if self._iterator is None or self._iterator._shutdown:
                # (a worker death shuts the iterator down: start afresh)
                self._iterator = self._get_iterator()
            else:
                self._iterator._reset(self)
            return self._iterator
        return self._get_iterator()

    def __len__(self):
        if self._dataset_kind == _DatasetKind.Iterable:
            length = self._IterableDataset_len_called = len(self.dataset)
            if self.batch_size is not None:
                if self.drop_last:
                    length = length // self.batch_size
                else:
                    length = -(-length // self.batch_size)
            return length
        return len(self._index_sampler)

    def check_worker_number_rationality(self):
        if self.num_workers <= 1:
            return
        try:
            cpus = len(os.sched_getaffinity(0))
        except Exception:
            cpus = os.cpu_count()
        if cpus is not None and self.num_workers > cpus:
            warnings.warn(
                f"This DataLoader will create {self.num_workers} worker processes in total. "
                f"Our suggested max number of worker in current system is {cpus}, which is "
                "smaller than what this DataLoader is going to create. Please be aware that "
                "excessive worker creation might get DataLoader running slow or even freeze, "
                "lower the worker number to avoid potential slowness/freeze if necessary.",
                stacklevel=3,
            )


class _BaseDataLoaderIter:
    def __init__(self, loader):
        self._dataset = loader.dataset
        self._dataset_kind = loader._dataset_kind
        self._IterableDataset_len_called = loader._IterableDataset_len_called
        self._auto_collation = loader._auto_collation
        self._drop_last = loader.drop_last
        self._index_sampler = loader._index_sampler
        self._num_workers = loader.num_workers
        self._prefetch_factor = loader.prefetch_factor
        self._timeout = loader.timeout
        self._collate_fn = loader.collate_fn
        self._sampler_iter = iter(self._index_sampler)
        self._base_seed = draw_seed(loader.generator)
        self._persistent_workers = loader.persistent_workers
        self._num_yielded = 0
        self._pin_memory = bool(loader.pin_memory) and _cuda_available()

    def __iter__(self):
        return self

    def _reset(self, loader, first_iter=False):
        self._sampler_iter = iter(self._index_sampler)
        self._num_yielded = 0
        self._IterableDataset_len_called = loader._IterableDataset_len_called

    def _next_index(self):
        return next(self._sampler_iter)

    def _next_data(self):
        raise NotImplementedError

    def __next__(self):
        data = self._next_data()
        if self._pin_memory:
            data = _pin_memory(data)
        self._num_yielded += 1
        if (
            self._dataset_kind == _DatasetKind.Iterable
            and self._IterableDataset_len_called is not None
            and self._num_yielded > self._IterableDataset_len_called
        ):
            msg = (
                f"Length of IterableDataset {self._dataset} was reported to be "
                f"{self._IterableDataset_len_called} (when accessing len(dataloader)), but "
                f"{self._num_yielded} samples have been fetched. "
            )
            if self._num_workers > 0:
                msg += (
                    "For multiprocessing data-loading, this could be caused by not properly "
                    "configuring the IterableDataset replica at each worker."
                )
            warnings.warn(msg, stacklevel=2)
        return data

    def __len__(self):
        return len(self._index_sampler)

    def __getstate__(self):
        raise NotImplementedError(f"{self.__class__.__name__} cannot be pickled")


def _cuda_available() -> bool:
    from ... import cuda
    return cuda.is_available()


def _pin_memory(data):
    """``data`` (a batch: tensors in lists, tuples, named tuples and dicts) with its tensors pinned."""
    from ..._tensor import Tensor
    if isinstance(data, Tensor):
        return data.pin_memory()
    if isinstance(data, dict):
        pinned = {k: _pin_memory(v) for k, v in data.items()}
        try:
            return type(data)(pinned)  # keep the mapping's own type where it can be rebuilt from a dict
        except TypeError:
            return pinned
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(_pin_memory(v) for v in data))
    if isinstance(data, (list, tuple)):
        return type(data)(_pin_memory(v) for v in data)
    return data


class _SingleProcessDataLoaderIter(_BaseDataLoaderIter):
    def __init__(self, loader):
        super().__init__(loader)
        if self._timeout != 0:
            raise ValueError("DataLoader timeout is only supported with num_workers > 0")
        self._fetcher = _DatasetKind.create_fetcher(
            self._dataset_kind, self._dataset, self._auto_collation, self._collate_fn,
            self._drop_last)

    def _next_data(self):
        index = self._next_index()
        return self._fetcher.fetch(index)


_live_iterators = weakref.WeakSet()


def _shutdown_all_at_exit():
    for it in list(_live_iterators):
        try:
            it._shutdown_workers()
        except Exception:
            pass


atexit.register(_shutdown_all_at_exit)


def _describe_exit(pid, exitcode):
    if exitcode is None:
        return f"pid {pid} closed its result pipe"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"pid {pid} was killed by signal {name}"
    return f"pid {pid} exited with exit code {exitcode}"


class _ResultUnpickler(pickle.Unpickler):
    # Under spawn/forkserver the user's main script is imported in workers as
    # ``__mp_main__``; its classes are ``__main__`` ones here.
    def find_class(self, module, name):
        if module == "__mp_main__":
            module = "__main__"
        return super().find_class(module, name)


def _loads(payload):
    return _ResultUnpickler(io.BytesIO(payload)).load()


class _MultiProcessingDataLoaderIter(_BaseDataLoaderIter):
    """Iterator feeding ``num_workers`` worker processes (see module doc)."""

    def __init__(self, loader):
        super().__init__(loader)
        self._shutdown = True  # until the workers exist
        self._in_order = loader.in_order
        if self._prefetch_factor is None or self._prefetch_factor <= 0:
            raise ValueError("prefetch_factor must be positive with num_workers > 0")
        ctx = _get_context(loader.multiprocessing_context)
        # Tensors inside the dataset travel to the workers as numpy arrays.
        register_tensor_pickling()

        self._workers = []
        self._index_queues = []
        self._readers = []
        self._told_to_exit = []
        self._worker_heard = [False] * self._num_workers
        try:
            with share_large_tensors():
                self._start_workers(ctx, loader.worker_init_fn)
        except BaseException:
            self._shutdown_workers()
            raise
        _live_iterators.add(self)
        self._reset(loader, first_iter=True)

    def _start_workers(self, ctx, worker_init_fn):
        for wid in range(self._num_workers):
            iq = ctx.Queue()
            # Never block interpreter exit on flushing indices to a worker
            # that is gone.
            iq.cancel_join_thread()
            reader, writer = ctx.Pipe(duplex=False)
            w = ctx.Process(
                target=_worker_loop,
                args=(self._dataset_kind, self._dataset, iq, writer, self._auto_collation,
                      self._collate_fn, self._drop_last, self._base_seed,
                      worker_init_fn, wid, self._num_workers),
                name=f"jitorch-dataloader-worker-{wid}",
            )
            w.daemon = True
            self._index_queues.append(iq)
            self._readers.append(reader)
            self._told_to_exit.append(False)
            self._shutdown = False
            w.start()
            self._workers.append(w)
            writer.close()  # the worker holds the only write end now

    @property
    def _worker_pids(self):
        return tuple(w.pid for w in self._workers)

    # -- epoch state --------------------------------------------------------
    def _reset(self, loader, first_iter=False):
        super()._reset(loader, first_iter)
        self._send_idx = 0   # next task index to hand out
        self._rcvd_idx = 0   # next task index to return
        self._task_info = {}  # task idx -> (worker_id,) or (worker_id, data)
        self._tasks_outstanding = 0
        self._workers_status = [True] * self._num_workers
        self._workers_num_tasks = [0] * self._num_workers
        self._worker_queue_idx_cycle = itertools.cycle(range(self._num_workers))
        if not first_iter:
            # Restart persistent workers and drop whatever the previous
            # (possibly abandoned) epoch left in flight.
            for q in self._index_queues:
                q.put(_ResumeIteration())
            pending = self._num_workers
            while pending > 0:
                _, data = self._get_data()
                if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], _ResumeIteration):
                    pending -= 1
        for _ in range(self._prefetch_factor * self._num_workers):
            self._try_put_index()

    def _try_put_index(self):
        try:
            index = self._next_index()
        except StopIteration:
            return
        for _ in range(self._num_workers):
            wid = next(self._worker_queue_idx_cycle)
            if self._workers_status[wid]:
                if self._in_order:
                    break
                active = sum(self._workers_status)
                limit = (self._prefetch_factor * self._num_workers) // active
                if self._workers_num_tasks[wid] < limit:
                    break
        else:
            return  # no active worker
        self._index_queues[wid].put((self._send_idx, index))
        self._task_info[self._send_idx] = (wid,)
        self._workers_num_tasks[wid] += 1
        self._tasks_outstanding += 1
        self._send_idx += 1

    # -- receiving ----------------------------------------------------------
    def _get_data(self):
        """Wait for the next message from any worker: returns
        ``(task_idx, data)``, or ``(None, (resume_marker, None))`` for a
        resume acknowledgement. Raises RuntimeError on timeout or when a
        worker dies."""
        deadline = time.monotonic() + self._timeout if self._timeout > 0 else None
        while True:
            watched = [wid for wid in range(len(self._workers)) if not self._told_to_exit[wid]]
            if not watched:
                raise RuntimeError("DataLoader has no live worker to wait for")
            conns = {self._readers[wid]: wid for wid in watched}
            sentinels = {self._workers[wid].sentinel: wid for wid in watched}
            wait_for = _POLL_INTERVAL
            if deadline is not None:
                wait_for = max(0.0, min(wait_for, deadline - time.monotonic()))
            ready = multiprocessing.connection.wait(list(conns) + list(sentinels), wait_for)
            dead = set()
            for obj in ready:
                if obj in conns:
                    wid = conns[obj]
                    try:
                        payload = obj.recv_bytes()
                    except (EOFError, OSError):
                        dead.add(wid)
                        continue
                    self._worker_heard[wid] = True
                    try:
                        msg = _loads(payload)
                    except Exception as exc:
                        raise RuntimeError(
                            f"DataLoader could not unpickle a result from worker {wid}: "
                            f"{type(exc).__name__}: {exc}") from exc
                    if isinstance(msg[0], _ResumeIteration):
                        return None, msg
                    return msg
            for obj in ready:
                if obj in sentinels:
                    wid = sentinels[obj]
                    # Results it sent before dying are still readable.
                    if not self._readers[wid].poll():
                        dead.add(wid)
            if dead:
                self._raise_worker_death(sorted(dead))
            if deadline is not None and time.monotonic() >= deadline:
                raise RuntimeError(f"DataLoader timed out after {self._timeout} seconds")

    def _raise_worker_death(self, wids):
        details = []
        for wid in wids:
            w = self._workers[wid]
            w.join(timeout=1.0)
            details.append(f"worker {wid}: {_describe_exit(w.pid, w.exitcode)}")
        pids = ", ".join(str(self._workers[wid].pid) for wid in wids)
        hint = ""
        if not any(self._worker_heard[wid] for wid in wids):
            hint = (
                ". It died before sending anything: if its dataset, collate_fn or "
                "worker_init_fn is defined in the main script, that script must guard its "
                "top-level code with `if __name__ == \"__main__\":` (workers are started "
                "with forkserver/spawn and import it)"
            )
        self._shutdown_workers()
        raise RuntimeError(
            f"DataLoader worker (pid(s) {pids}) exited unexpectedly ({'; '.join(details)}){hint}"
        )

    def _next_data(self):
        if self._shutdown:
            raise StopIteration
        while True:
            # Skip task slots that will never be filled (their worker's
            # iterable dataset is exhausted).
            while self._rcvd_idx < self._send_idx:
                info = self._task_info.get(self._rcvd_idx)
                if info is not None:
                    if len(info) == 2 or self._workers_status[info[0]]:
                        break
                    del self._task_info[self._rcvd_idx]
                self._rcvd_idx += 1
            else:
                if not self._persistent_workers:
                    self._shutdown_workers()
                raise StopIteration

            info = self._task_info[self._rcvd_idx]
            if len(info) == 2:
                del self._task_info[self._rcvd_idx]
                self._rcvd_idx += 1
                return self._process_data(info[1], info[0])

            idx, data = self._get_data()
            if idx is None:
                continue  # stray resume acknowledgement
            self._tasks_outstanding -= 1
            if isinstance(data, _IterableDatasetStopIteration):
                if self._persistent_workers:
                    self._workers_status[data.worker_id] = False
                else:
                    self._mark_worker_as_unavailable(data.worker_id)
                self._try_put_index()
                continue
            if idx not in self._task_info:
                continue  # result of a task from an abandoned epoch
            if idx != self._rcvd_idx:
                if not self._in_order:
                    wid = self._task_info.pop(idx)[0]
                    return self._process_data(data, wid)
                self._task_info[idx] += (data,)
                continue
            wid = self._task_info.pop(idx)[0]
            self._rcvd_idx += 1
            return self._process_data(data, wid)

    def _process_data(self, data, wid):
        self._workers_num_tasks[wid] -= 1
        self._try_put_index()
        if isinstance(data, ExceptionWrapper):
            data.reraise()
        return data

    def _mark_worker_as_unavailable(self, wid):
        self._workers_status[wid] = False
        if not self._told_to_exit[wid]:
            self._told_to_exit[wid] = True
            try:
                self._index_queues[wid].put(None)
            except Exception:
                pass

    # -- shutdown -----------------------------------------------------------
    def _shutdown_workers(self):
        if self._shutdown:
            return
        self._shutdown = True
        _live_iterators.discard(self)
        for wid, q in enumerate(self._index_queues):
            if not self._told_to_exit[wid]:
                self._told_to_exit[wid] = True
                try:
                    q.put(None)
                except Exception:
                    pass
        # Closing our read ends makes a worker blocked on sending a batch get
        # EPIPE and exit instead of waiting for us forever.
        for r in self._readers:
            try:
                r.close()
            except Exception:
                pass
        deadline = time.monotonic() + _JOIN_TIMEOUT
        for w in self._workers:
            try:
                w.join(timeout=max(0.0, deadline - time.monotonic()))
            except Exception:
                pass
        for w in self._workers:
            try:
                if w.is_alive():
                    w.terminate()
                    w.join(timeout=1.0)
                if w.is_alive() and hasattr(w, "kill"):
                    w.kill()
                    w.join(timeout=1.0)
            except Exception:
                pass
        for q in self._index_queues:
            try:
                q.cancel_join_thread()
                q.close()
            except Exception:
                pass

    def __del__(self):
        try:
            self._shutdown_workers()
        except Exception:
            pass
