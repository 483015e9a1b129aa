"""Datasets and kernels for tests/test_data.py.

They live in an importable module (not in the test file) because DataLoader
worker processes are started with forkserver/spawn and must be able to import
the dataset classes by name.
"""

import os
import random
import signal
import time

import numpy as np
from numba import njit, prange

import jitorch
from jitorch.utils.data import Dataset, IterableDataset, get_worker_info


@njit(parallel=True, cache=True)
def parallel_sum(a):
    total = 0.0
    for i in prange(a.shape[0]):
        total += a[i] * 0.5
    return total


class SquareDataset(Dataset):
    """Sample i: (float32 vector [i, i*i], int i)."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i < 0 or i >= self.n:
            raise IndexError(i)
        return jitorch.from_numpy(np.array([i, i * i], dtype=np.float32)), i


class DictDataset(Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"x": np.full((3,), i, dtype=np.float64), "y": float(i) / 2, "name": f"s{i}"}


class RaisingDataset(Dataset):
    def __init__(self, n, bad):
        self.n, self.bad = n, bad

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i == self.bad:
            raise ValueError(f"bad sample {i}")
        return i


class DyingDataset(Dataset):
    """A worker fetching index ``bad`` dies: ``os._exit(code)`` or SIGKILL."""

    def __init__(self, n, bad, how="exit"):
        self.n, self.bad, self.how = n, bad, how

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i == self.bad and get_worker_info() is not None:
            if self.how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            os._exit(7)
        return i


class SlowDataset(Dataset):
    def __init__(self, n, delay):
        self.n, self.delay = n, delay

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        time.sleep(self.delay)
        return i


class WorkerInfoDataset(Dataset):
    """Returns (worker id, num_workers, seed, pid, python random, numpy random)."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        info = get_worker_info()
        wid = -1 if info is None else info.id
        nw = 0 if info is None else info.num_workers
        seed = -1 if info is None else info.seed
        same_ds = info is not None and isinstance(info.dataset, WorkerInfoDataset)
        return {
            "index": i, "wid": wid, "num_workers": nw, "seed": seed, "pid": os.getpid(),
            "same_ds": same_ds, "py": random.random(), "np": float(np.random.rand()),
        }


class ShardedRange(IterableDataset):
    """Yields start..end-1, split between workers with get_worker_info()."""

    def __init__(self, start, end):
        self.start, self.end = start, end

    def __len__(self):
        return self.end - self.start

    def __iter__(self):
        info = get_worker_info()
        if info is None:
            return iter(range(self.start, self.end))
        per = -(-(self.end - self.start) // info.num_workers)
        lo = self.start + info.id * per
        hi = min(lo + per, self.end)
        return iter(range(lo, hi))


class UnshardedRange(IterableDataset):
    """Every worker yields the whole range (tags each item with worker id)."""

    def __init__(self, n):
        self.n = n

    def __iter__(self):
        info = get_worker_info()
        wid = -1 if info is None else info.id
        for i in range(self.n):
            yield (wid, i)


class ParallelKernelDataset(Dataset):
    """Each sample runs the Numba parallel kernel on 1M elements."""

    def __init__(self, n):
        self.n = n
        self.data = np.ones(1_000_000, dtype=np.float64)

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return parallel_sum(self.data) + i


class PidDataset(Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return (i, os.getpid())


def record_worker_init(worker_id):
    os.environ["JT_TEST_WORKER_INIT"] = str(worker_id)


class InitCheckDataset(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return int(os.environ.get("JT_TEST_WORKER_INIT", "-1"))


def failing_worker_init(worker_id):
    raise RuntimeError(f"init failed in {worker_id}")


def list_collate(batch):
    return list(batch)


def tensor_sum_collate(batch):
    """A custom collate returning a tensor built in the worker."""
    return jitorch.from_numpy(np.asarray([sum(batch)], dtype=np.int64))
