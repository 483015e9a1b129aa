"""Samplers, mirroring ``torch.utils.data.sampler``.

A sampler is an iterable of dataset indices (or, for batch samplers, of lists
of indices). All randomness comes from a ``jitorch.Generator`` (the default
generator when none is given), so ``jitorch.manual_seed`` makes runs
reproducible.
"""

import itertools
from typing import Generic, TypeVar

import numpy as np

from ._common import _jt, draw_seed, randint_list, randperm_list, tensor_to_numpy

__all__ = [
    "BatchSampler",
    "RandomSampler",
    "Sampler",
    "SequentialSampler",
    "SubsetRandomSampler",
    "WeightedRandomSampler",
]

T_co = TypeVar("T_co", covariant=True)


class Sampler(Generic[T_co]):
    """Base class of all samplers: subclasses implement ``__iter__`` (and
    ``__len__`` when the length is known)."""

    def __init__(self, data_source=None):
        # Older torch code passes the data source to the base class; it is
        # accepted and ignored, as in torch.
        pass

    def __iter__(self):
        raise NotImplementedError


class SequentialSampler(Sampler[int]):
    """Yields ``0, 1, ..., len(data_source) - 1``."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


class RandomSampler(Sampler[int]):
    """Random order over the dataset.

    Without replacement, yields a fresh permutation of the indices (several
    back to back when ``num_samples`` exceeds the dataset length). With
    replacement, draws ``num_samples`` indices uniformly.
    """

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        if not isinstance(self.replacement, bool):
            raise TypeError(
                f"replacement should be a boolean value, but got replacement={self.replacement}"
            )
        ns = self.num_samples
        if not isinstance(ns, int) or isinstance(ns, bool) or ns <= 0:
            raise ValueError(
                f"num_samples should be a positive integer value, but got num_samples={ns}"
            )

    @property
    def num_samples(self):
        if self._num_samples is None:
            return len(self.data_source)
        return self._num_samples

    def __iter__(self):
        n = len(self.data_source)
        if self.generator is None:
            # Like torch: one draw from the default generator seeds a private
            # generator for this pass, so an abandoned pass costs one draw.
            jt = _jt()
            gen = jt.Generator()
            gen.manual_seed(draw_seed(None))
        else:
            gen = self.generator
        total = self.num_samples
        if self.replacement:
            for _ in range(total // 32):
                yield from randint_list(n, 32, generator=gen)
            yield from randint_list(n, total % 32, generator=gen)
        else:
            for _ in range(total // n):
                yield from randperm_list(n, generator=gen)
            yield from randperm_list(n, generator=gen)[: total % n]

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler[int]):
    """Yields the given ``indices`` in a random order."""

    def __init__(self, indices, generator=None):
        self.indices = indices
        self.generator = generator

    def __iter__(self):
        for i in randperm_list(len(self.indices), generator=self.generator):
            yield self.indices[i]

    def __len__(self):
        return len(self.indices)


class WeightedRandomSampler(Sampler[int]):
    """Draws ``num_samples`` indices in ``[0, len(weights))`` with probability
    proportional to ``weights`` (with or without replacement)."""

    def __init__(self, weights, num_samples, replacement=True, generator=None):
        if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples <= 0:
            raise ValueError(
                f"num_samples should be a positive integer value, but got num_samples={num_samples}"
            )
        if not isinstance(replacement, bool):
            raise ValueError(
                f"replacement should be a boolean value, but got replacement={replacement}"
            )
        jt = _jt()
        w = jt.as_tensor(weights, dtype=jt.float64)
        if len(w.shape) != 1:
            raise ValueError(
                "weights should be a 1d sequence but given weights have shape "
                f"{tuple(w.shape)}"
            )
        self.weights = w
        self.num_samples = num_samples
        self.replacement = replacement
        self.generator = generator

    def __iter__(self):
        yield from _multinomial(self.weights, self.num_samples, self.replacement, self.generator)

    def __len__(self):
        return self.num_samples


def _multinomial(weights, num_samples, replacement, generator):
    """``torch.multinomial`` on a 1-D weight vector, as a list of ints, drawn
    from the generator's numpy RNG."""
    from ._common import np_rng

    w = np.asarray(tensor_to_numpy(weights), dtype=np.float64)
    n = w.shape[0]
    if n == 0:
        raise RuntimeError("cannot sample from an empty weight vector")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise RuntimeError("invalid multinomial distribution (encountering probability entry < 0)")
    total = w.sum()
    if total <= 0:
        raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")
    if not replacement:
        if num_samples > n:
            raise RuntimeError(
                "cannot sample n_sample > prob_dist.size(-1) samples without replacement"
            )
        if num_samples > int(np.count_nonzero(w)):
            raise RuntimeError(
                "invalid multinomial distribution (with replacement=False, not enough "
                "non-negative category to sample)"
            )
    rng = np_rng(generator)
    return rng.choice(n, size=num_samples, replace=replacement, p=w / total).tolist()


class BatchSampler(Sampler[list]):
    """Groups the indices of another sampler into lists of ``batch_size``
    (the last one shorter unless ``drop_last``)."""

    def __init__(self, sampler, batch_size, drop_last):
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(
                f"batch_size should be a positive integer value, but got batch_size={batch_size}"
            )
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last should be a boolean value, but got drop_last={drop_last}")
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last

    def __iter__(self):
        it = iter(self.sampler)
        size = self.batch_size
        while True:
            batch = list(itertools.islice(it, size))
            if not batch or (self.drop_last and len(batch) < size):
                return
            yield batch

    def __len__(self):
        if self.drop_last:
            return len(self.sampler) // self.batch_size
        return (len(self.sampler) + self.batch_size - 1) // self.batch_size


class _InfiniteConstantSampler(Sampler):
    """Yields ``None`` forever; the index 'sampler' used for iterable datasets."""

    def __iter__(self):
        while True:
            yield None
