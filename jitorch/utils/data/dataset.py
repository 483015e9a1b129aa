"""Dataset classes, mirroring ``torch.utils.data.dataset``."""

import bisect
import itertools
import math
import warnings
from typing import Generic, TypeVar

from ._common import randperm_list

__all__ = [
    "Dataset",
    "IterableDataset",
    "TensorDataset",
    "StackDataset",
    "ConcatDataset",
    "ChainDataset",
    "Subset",
    "random_split",
]

T_co = TypeVar("T_co", covariant=True)
T = TypeVar("T")


class Dataset(Generic[T_co]):
    """Base class of map-style datasets (anything with ``__getitem__`` and,
    usually, ``__len__``).

    Subclasses may also define ``__getitems__(indices)`` returning a list of
    samples; the DataLoader then fetches a whole batch with one call.
    """

    def __getitem__(self, index):
        raise NotImplementedError("Subclasses of Dataset should implement __getitem__.")

    def __add__(self, other):
        return ConcatDataset([self, other])


class IterableDataset(Dataset[T_co]):
    """Base class of iterable-style datasets: subclasses implement ``__iter__``.

    With ``num_workers > 0`` every worker process gets its own copy of the
    dataset; use :func:`get_worker_info` inside ``__iter__`` to give each copy
    a different share of the data.
    """

    def __iter__(self):
        raise NotImplementedError("Subclasses of IterableDataset should implement __iter__.")

    def __add__(self, other):
        return ChainDataset([self, other])


class TensorDataset(Dataset):
    """Dataset whose i-th sample is ``tuple(t[i] for t in tensors)``.

    All tensors must have the same size along their first dimension.
    """

    def __init__(self, *tensors):
        if tensors and any(_first_dim(tensors[0]) != _first_dim(t) for t in tensors):
            raise AssertionError("Size mismatch between tensors")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return _first_dim(self.tensors[0])


def _first_dim(t):
    shape = t.shape
    if len(shape) == 0:
        raise TypeError("TensorDataset needs tensors with at least one dimension")
    return int(shape[0])


class StackDataset(Dataset):
    """Combine several equally long datasets sample-wise.

    ``StackDataset(a, b)`` yields tuples ``(a[i], b[i])``;
    ``StackDataset(x=a, y=b)`` yields dicts ``{"x": a[i], "y": b[i]}``.
    """

    def __init__(self, *args, **kwargs):
        if args and kwargs:
            raise ValueError(
                "Supported either ``tuple``- (via ``args``) or ``dict``- (via "
                "``kwargs``) like input/output, but both types are given."
            )
        if not args and not kwargs:
            raise ValueError("At least one dataset should be passed")
        members = list(args) if args else list(kwargs.values())
        self._length = len(members[0])
        if any(len(d) != self._length for d in members):
            raise ValueError("Size mismatch between datasets")
        self.datasets = args if args else kwargs

    def __getitem__(self, index):
        if isinstance(self.datasets, dict):
            return {k: d[index] for k, d in self.datasets.items()}
        return tuple(d[index] for d in self.datasets)

    def __getitems__(self, indices):
        def column(ds):
            getitems = getattr(ds, "__getitems__", None)
            if callable(getitems):
                items = getitems(indices)
                if len(items) != len(indices):
                    raise ValueError(
                        "Nested dataset's output size mismatch. "
                        f"Expected {len(indices)}, got {len(items)}"
                    )
                return list(items)
            return [ds[i] for i in indices]

        if isinstance(self.datasets, dict):
            cols = {k: column(d) for k, d in self.datasets.items()}
            return [{k: cols[k][j] for k in cols} for j in range(len(indices))]
        cols = [column(d) for d in self.datasets]
        return [tuple(c[j] for c in cols) for j in range(len(indices))]

    def __len__(self):
        return self._length


class ConcatDataset(Dataset):
    """The concatenation of several map-style datasets."""

    @staticmethod
    def cumsum(sequence):
        out, total = [], 0
        for ds in sequence:
            total += len(ds)
            out.append(total)
        return out

    def __init__(self, datasets):
        super().__init__()
        self.datasets = list(datasets)
        if len(self.datasets) == 0:
            raise AssertionError("datasets should not be an empty iterable")
        for ds in self.datasets:
            if isinstance(ds, IterableDataset):
                raise AssertionError("ConcatDataset does not support IterableDataset")
        self.cumulative_sizes = self.cumsum(self.datasets)

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx):
        if idx < 0:
            if -idx > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            idx = len(self) + idx
        which = bisect.bisect_right(self.cumulative_sizes, idx)
        offset = self.cumulative_sizes[which - 1] if which > 0 else 0
        return self.datasets[which][idx - offset]

    @property
    def cummulative_sizes(self):
        warnings.warn(
            "`cummulative_sizes` attribute is renamed to `cumulative_sizes`",
            FutureWarning,
            stacklevel=2,
        )
        return self.cumulative_sizes


class ChainDataset(IterableDataset):
    """Chain several iterable datasets one after another (lazily)."""

    def __init__(self, datasets):
        super().__init__()
        self.datasets = datasets

    def __iter__(self):
        for ds in self.datasets:
            if not isinstance(ds, IterableDataset):
                raise AssertionError("ChainDataset only supports IterableDataset")
            yield from ds

    def __len__(self):
        total = 0
        for ds in self.datasets:
            if not isinstance(ds, IterableDataset):
                raise AssertionError("ChainDataset only supports IterableDataset")
            total += len(ds)
        return total


class Subset(Dataset):
    """The part of ``dataset`` at positions ``indices``."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = indices
        cls = type(self)
        if cls.__getitem__ is not Subset.__getitem__ and cls.__getitems__ is Subset.__getitems__:
            raise NotImplementedError(
                f"{cls.__name__} overrides __getitem__ but not __getitems__. When "
                "subclassing Subset and overriding __getitem__, you must also override "
                "__getitems__ so that DataLoader uses your logic, e.g.:\n\n"
                "def __getitems__(self, indices):\n"
                "    return [self.__getitem__(idx) for idx in indices]"
            )

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __getitems__(self, indices):
        inner = [self.indices[i] for i in indices]
        getitems = getattr(self.dataset, "__getitems__", None)
        if callable(getitems):
            return getitems(inner)
        return [self.dataset[i] for i in inner]

    def __len__(self):
        return len(self.indices)


def _default_generator():
    import jitorch

    return jitorch.default_generator


_USE_DEFAULT = object()


def random_split(dataset, lengths, generator=_USE_DEFAULT):
    """Randomly split ``dataset`` into non-overlapping :class:`Subset` s.

    ``lengths`` is either a list of integer lengths that sum to ``len(dataset)``
    or a list of fractions that sum to 1; in the latter case each split gets
    ``floor(len(dataset) * frac)`` items and the remainder is handed out one
    item at a time, round-robin, starting with the first split (as torch does).
    """
    if generator is _USE_DEFAULT:
        generator = _default_generator()
    lengths = list(lengths)
    n = len(dataset)
    total = sum(lengths)
    if math.isclose(total, 1) and total <= 1:
        sizes = []
        for i, frac in enumerate(lengths):
            if frac < 0 or frac > 1:
                raise ValueError(f"Fraction at index {i} is not between 0 and 1")
            sizes.append(int(math.floor(n * frac)))
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
        lengths = sizes
        for i, size in enumerate(lengths):
            if size == 0:
                warnings.warn(
                    f"Length of split at index {i} is 0. This might result in an empty dataset.",
                    stacklevel=2,
                )
    if sum(lengths) != n:
        raise ValueError("Sum of input lengths does not equal the length of the input dataset!")
    perm = randperm_list(sum(lengths), generator=generator)
    return [
        Subset(dataset, perm[end - size:end])
        for end, size in zip(itertools.accumulate(lengths), lengths)
    ]
