"""Fetchers: turn one value from the index sampler into one batch.

Shared by the single-process iterator and the worker processes.
"""

import numpy as np

from ._common import _jt


class _MapDatasetFetcher:
    """Fetch from a map-style dataset: ``dataset[i]`` for each index of the
    batch (or one ``__getitems__`` call), then ``collate_fn``."""

    def __init__(self, dataset, auto_collation, collate_fn, drop_last):
        self.dataset = dataset
        self.auto_collation = auto_collation
        self.collate_fn = collate_fn
        self.drop_last = drop_last
        self._fast = None
        if auto_collation:
            from .collate import default_collate

            if collate_fn is default_collate:
                self._fast = _TensorGather.build(dataset)

    def fetch(self, possibly_batched_index):
        if not self.auto_collation:
            return self.collate_fn(self.dataset[possibly_batched_index])
        if self._fast is not None:
            out = self._fast.gather(possibly_batched_index)
            if out is not None:
                return out
        getitems = getattr(self.dataset, "__getitems__", None)
        if getitems:
            data = getitems(possibly_batched_index)
        else:
            data = [self.dataset[i] for i in possibly_batched_index]
        return self.collate_fn(data)


class _IterableDatasetFetcher:
    """Fetch from an iterable dataset: pull one sample (or ``len(batch)``
    samples when batching) from the dataset's iterator."""

    def __init__(self, dataset, auto_collation, collate_fn, drop_last):
        self.dataset = dataset
        self.auto_collation = auto_collation
        self.collate_fn = collate_fn
        self.drop_last = drop_last
        self.dataset_iter = iter(dataset)
        self.ended = False

    def fetch(self, possibly_batched_index):
        if self.ended:
            raise StopIteration
        if not self.auto_collation:
            return self.collate_fn(next(self.dataset_iter))
        data = []
        for _ in possibly_batched_index:
            try:
                data.append(next(self.dataset_iter))
            except StopIteration:
                self.ended = True
                break
        if not data or (self.drop_last and len(data) < len(possibly_batched_index)):
            raise StopIteration
        return self.collate_fn(data)


class _TensorGather:
    """Fast path for ``TensorDataset`` (possibly wrapped in plain ``Subset`` s)
    with ``default_collate``: gather a whole batch of rows from each tensor
    with one indexing operation instead of stacking ``batch_size`` single-row
    tensors. The result is the same as ``default_collate`` of the samples:
    a list with one batched tensor per dataset tensor."""

    def __init__(self, tensors, index_maps):
        self.tensors = tensors
        # outermost Subset first; each is an int64 array (or None -> python)
        self.index_maps = index_maps

    @classmethod
    def build(cls, dataset):
        from .dataset import Subset, TensorDataset

        maps = []
        ds = dataset
        while True:
            t = type(ds)
            if isinstance(ds, TensorDataset):
                if (
                    t.__getitem__ is not TensorDataset.__getitem__
                    or getattr(t, "__getitems__", None) is not None
                ):
                    return None
                tensors = ds.tensors
                break
            if isinstance(ds, Subset):
                if t.__getitem__ is not Subset.__getitem__ or t.__getitems__ is not Subset.__getitems__:
                    return None
                idx = _as_index_array(ds.indices)
                if idx is None:
                    return None
                maps.append(idx)
                ds = ds.dataset
                continue
            return None
        try:
            jt = _jt()
            if not all(isinstance(x, jt.Tensor) and len(x.shape) >= 1 for x in tensors):
                return None
        except Exception:
            return None
        return cls(tuple(tensors), maps)

    def gather(self, indices):
        idx = _as_index_array(indices)
        if idx is None:
            return None
        for m in self.index_maps:
            idx = m[idx]
        return [_take_rows(t, idx) for t in self.tensors]


def _as_index_array(indices):
    """``indices`` as a 1-D int64 numpy array, or None if it isn't one."""
    try:
        jt = _jt()
        if isinstance(indices, jt.Tensor):
            indices = indices.tolist()
    except Exception:
        pass
    if isinstance(indices, range):
        return np.arange(indices.start, indices.stop, indices.step, dtype=np.int64)
    try:
        arr = np.asarray(indices)
    except Exception:
        return None
    if arr.ndim != 1 or not (arr.dtype.kind in "iu" or arr.size == 0):
        return None
    return arr.astype(np.int64, copy=False)


def _take_rows(t, idx):
    jt = _jt()
    if not getattr(t, "requires_grad", False):
        try:
            arr = t.numpy()
        except Exception:
            arr = None
        if arr is not None:
            out = jt.from_numpy(np.take(arr, idx, axis=0))
            if out.dtype == t.dtype:
                return out
    return t[jt.tensor(idx.tolist(), dtype=jt.int64)]
