"""What runs inside a DataLoader worker process, and what it shares with the
parent (worker info, exception transport, tensor pickling).

Workers are real processes started with the ``spawn`` or ``forkserver``
method (see ``dataloader.py`` for why never ``fork`` by default). The dataset,
``collate_fn`` and ``worker_init_fn`` are pickled over to each worker, so they
must be importable by name: a dataset class defined in the main script needs
the script's work guarded by ``if __name__ == "__main__":`` exactly as with
torch's spawn start method.
"""

import os
import pickle
import queue
import random
import signal
import sys
import traceback

import numpy as np

from ._common import _jt, tensor_to_numpy

__all__ = ["WorkerInfo", "get_worker_info"]

# How often (seconds) an idle worker checks that its parent is still alive.
_WORKER_POLL_INTERVAL = 1.0


class WorkerInfo:
    """Read-only description of the current worker: ``id``,
    ``num_workers``, ``seed`` and ``dataset`` (this worker's copy)."""

    _initialized = False

    def __init__(self, **kwargs):
        for k, v in kwargs.items():
            setattr(self, k, v)
        self._keys = tuple(kwargs)
        self._initialized = True

    def __setattr__(self, key, val):
        if self._initialized:
            raise RuntimeError(f"Cannot assign attributes to {self.__class__.__name__} objects")
        super().__setattr__(key, val)

    def __repr__(self):
        items = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._keys)
        return f"{self.__class__.__name__}({items})"


_worker_info = None


def get_worker_info():
    """In a DataLoader worker process, the :class:`WorkerInfo` of that worker;
    in the main process, ``None``.

    Typical use is in ``IterableDataset.__iter__`` or a ``worker_init_fn``, to
    give each worker's dataset copy its own share of the data."""
    return _worker_info


class ExceptionWrapper:
    """Carries an exception's type and formatted traceback across processes.

    ``reraise()`` raises an exception of the same type whose message says
    where it was caught and contains the original traceback text."""

    def __init__(self, exc_info=None, where="in background"):
        if exc_info is None:
            exc_info = sys.exc_info()
        self.exc_type = exc_info[0]
        self.exc_msg = "".join(traceback.format_exception(*exc_info))
        self.where = where

    def reraise(self):
        msg = f"Caught {self.exc_type.__name__} {self.where}.\nOriginal {self.exc_msg}"
        if self.exc_type is KeyError:
            # KeyError shows repr(arg); a str subclass with a plain repr keeps
            # the traceback readable.
            msg = _KeyErrorMessage(msg)
        elif getattr(self.exc_type, "message", None):
            raise self.exc_type(message=msg)
        try:
            exc = self.exc_type(msg)
        except Exception:
            raise RuntimeError(msg) from None
        raise exc


class _KeyErrorMessage(str):
    def __repr__(self):
        return self


class _IterableDatasetStopIteration:
    """Sent by a worker whose IterableDataset copy is exhausted."""

    def __init__(self, worker_id):
        self.worker_id = worker_id


class _ResumeIteration:
    """Sent to persistent workers at the start of a new epoch; echoed back
    once all of the worker's previous results have been sent."""

    def __init__(self, seed=None):
        self.seed = seed


# --------------------------------------------------------------------------
# Tensor transport. Tensors cross process boundaries as numpy arrays (plain
# pickle) and are rebuilt with ``jitorch.from_numpy`` on the other side. The
# reducer is registered with multiprocessing's ForkingPickler, which pickles
# the Process arguments (the dataset) and everything we send explicitly, so
# tensors nested anywhere in a batch or a dataset are handled.
# --------------------------------------------------------------------------

def _rebuild_tensor(array, requires_grad, cls):
    jt = _jt()
    t = jt.from_numpy(array)
    if cls is not None and cls is not jt.Tensor:
        try:
            return cls(t, requires_grad=requires_grad)
        except Exception:
            pass
    if requires_grad:
        try:
            t.requires_grad_(True)
        except AttributeError:
            t.requires_grad = True
    return t


def _rebuild_shared_tensor(handle, dtype, shape, requires_grad, cls):
    """Rebuild a tensor whose data was handed over as a memfd (see
    ``share_large_tensors``): map it copy-on-write, so writes stay private."""
    import mmap

    fd = handle.detach()
    try:
        dt = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        mm = mmap.mmap(fd, nbytes, flags=mmap.MAP_PRIVATE,
                       prot=mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)
    array = np.frombuffer(mm, dtype=dt).reshape(shape)
    return _rebuild_tensor(array, requires_grad, cls)


# Tensors at least this large travel to starting workers through shared memory.
_SHARE_THRESHOLD = 1 << 20
_share_state = None  # while starting workers: {"fds": {key: fd}, "keep": [...]}


class share_large_tensors:
    """Context manager used around ``Process.start()``: large tensors pickled
    as process arguments (a TensorDataset's data, typically) are copied once
    into an anonymous shared-memory file whose descriptor is passed to the
    children, instead of being written through a pipe to every worker.
    Linux only (``os.memfd_create``); elsewhere this does nothing."""

    def __enter__(self):
        global _share_state
        if hasattr(os, "memfd_create"):
            _share_state = {"fds": {}, "keep": []}
        return self

    def __exit__(self, *exc):
        global _share_state
        state, _share_state = _share_state, None
        if state is not None:
            for fd in state["fds"].values():
                try:
                    os.close(fd)
                except OSError:
                    pass
        return False


def _memfd_for(t, arr):
    import mmap

    key = id(t)
    fds = _share_state["fds"]
    if key in fds:
        return fds[key]
    fd = os.memfd_create("jitorch-tensor", getattr(os, "MFD_CLOEXEC", 0))
    try:
        os.ftruncate(fd, arr.nbytes)
        mm = mmap.mmap(fd, arr.nbytes)
        try:
            view = np.frombuffer(mm, dtype=arr.dtype).reshape(arr.shape)
            view[...] = arr
            del view
        finally:
            mm.close()
    except BaseException:
        os.close(fd)
        raise
    fds[key] = fd
    _share_state["keep"].append(t)  # ids stay unique while we share
    return fd


def _reduce_tensor(t):
    arr = tensor_to_numpy(t)
    if not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)
    jt = _jt()
    cls = type(t)
    cls = None if cls is jt.Tensor else cls
    requires_grad = bool(getattr(t, "requires_grad", False))
    if _share_state is not None and arr.nbytes >= _SHARE_THRESHOLD:
        from multiprocessing import context, reduction

        if context.get_spawning_popen() is not None:
            try:
                fd = _memfd_for(t, arr)
                return (_rebuild_shared_tensor,
                        (reduction.DupFd(fd), arr.dtype.str, arr.shape, requires_grad, cls))
            except Exception:
                pass
    return (_rebuild_tensor, (arr, requires_grad, cls))


_registered = set()


def _all_subclasses(cls):
    out = [cls]
    for sub in cls.__subclasses__():
        out.extend(_all_subclasses(sub))
    return out


def register_tensor_pickling():
    """Make multiprocessing pickle jitorch tensors as numpy arrays."""
    from multiprocessing.reduction import ForkingPickler

    try:
        tensor_cls = _jt().Tensor
    except Exception:
        return
    for cls in _all_subclasses(tensor_cls):
        if cls not in _registered:
            ForkingPickler.register(cls, _reduce_tensor)
            _registered.add(cls)


def _dumps(obj):
    from multiprocessing.reduction import ForkingPickler

    return ForkingPickler.dumps(obj, pickle.HIGHEST_PROTOCOL)


# --------------------------------------------------------------------------
# The worker process
# --------------------------------------------------------------------------

def _numpy_seed(base_seed, worker_id):
    """A 128-bit numpy seed derived from (base_seed, worker_id), so workers
    get well separated streams."""
    ss = np.random.SeedSequence(entropy=int(base_seed), spawn_key=(int(worker_id),))
    return ss.generate_state(4, dtype=np.uint32)


def _limit_threads():
    # Like torch's workers (set_num_threads(1)): N workers each running
    # parallel kernels on every core would oversubscribe the machine.
    jt = sys.modules.get("jitorch")
    fn = getattr(jt, "set_num_threads", None) if jt is not None else None
    try:
        if fn is not None:
            fn(1)
        elif "numba" in sys.modules:
            sys.modules["numba"].set_num_threads(1)
    except Exception:
        pass


class _ParentWatch:
    def __init__(self):
        import multiprocessing

        self._parent = multiprocessing.parent_process()
        self._ppid = os.getppid()

    def parent_alive(self):
        if self._parent is not None:
            return self._parent.is_alive()
        return os.getppid() == self._ppid


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def _worker_loop(dataset_kind, dataset, index_queue, result_conn, auto_collation,
                 collate_fn, drop_last, base_seed, init_fn, worker_id, num_workers):
    """Body of a worker process.

    Receives ``(task_idx, index)`` from ``index_queue``, fetches the batch and
    sends ``(task_idx, batch)`` (pickled) through ``result_conn``. ``None``
    means exit; a ``_ResumeIteration`` restarts the dataset (persistent
    workers, new epoch). Exceptions are sent back wrapped; exhaustion of an
    iterable dataset is reported once with ``_IterableDatasetStopIteration``.
    """
    global _worker_info
    from .dataloader import _DatasetKind

    def send(msg):
        try:
            payload = _dumps(msg)
        except Exception:
            idx = msg[0]
            err = ExceptionWrapper(
                where=f"in DataLoader worker process {worker_id} while pickling its batch")
            try:
                payload = _dumps((idx, err))
            except Exception:
                err.exc_type = RuntimeError
                payload = _dumps((idx, err))
        try:
            result_conn.send_bytes(payload)
            return True
        except (BrokenPipeError, EOFError, OSError):
            return False  # parent closed its end: shutting down

    try:
        # terminate() during shutdown: exit through Python so that the
        # process's finalizers (multiprocessing resources) still run.
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        register_tensor_pickling()
        _limit_threads()
        seed = base_seed + worker_id
        random.seed(seed)
        np.random.seed(_numpy_seed(base_seed, worker_id))
        try:
            _jt().manual_seed(seed)
        except Exception:
            pass

        _worker_info = WorkerInfo(id=worker_id, num_workers=num_workers, seed=seed,
                                  dataset=dataset)

        init_error = None
        fetcher = None
        try:
            if init_fn is not None:
                init_fn(worker_id)
            fetcher = _DatasetKind.create_fetcher(dataset_kind, dataset, auto_collation,
                                                  collate_fn, drop_last)
        except Exception:
            init_error = ExceptionWrapper(where=f"in DataLoader worker process {worker_id}")

        watch = _ParentWatch()
        iteration_end = False
        while True:
            try:
                task = index_queue.get(timeout=_WORKER_POLL_INTERVAL)
            except queue.Empty:
                if not watch.parent_alive():
                    break
                continue
            if task is None:
                break
            if isinstance(task, _ResumeIteration):
                iteration_end = False
                try:
                    fetcher = _DatasetKind.create_fetcher(dataset_kind, dataset, auto_collation,
                                                          collate_fn, drop_last)
                except Exception:
                    init_error = ExceptionWrapper(
                        where=f"in DataLoader worker process {worker_id}")
                if not send((task, None)):
                    break
                continue
            if iteration_end:
                continue  # exhausted: ignore tasks until resumed or told to exit
            idx, index = task
            if init_error is not None:
                data, init_error = init_error, None
            else:
                try:
                    data = fetcher.fetch(index)
                except StopIteration:
                    if dataset_kind == _DatasetKind.Iterable:
                        data = _IterableDatasetStopIteration(worker_id)
                        iteration_end = True
                    else:
                        data = ExceptionWrapper(
                            where=f"in DataLoader worker process {worker_id}")
                except Exception:
                    data = ExceptionWrapper(where=f"in DataLoader worker process {worker_id}")
            ok = send((idx, data))
            del data, task, index
            if not ok:
                break
    except KeyboardInterrupt:
        # The parent sees the interrupt too and shuts the workers down.
        pass
    finally:
        try:
            result_conn.close()
        except Exception:
            pass
