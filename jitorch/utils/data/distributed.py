"""``DistributedSampler``: each of ``num_replicas`` processes reads a disjoint
share of the dataset (same semantics as torch's)."""

import math

from ._common import _jt, randperm_list
from .sampler import Sampler

__all__ = ["DistributedSampler"]


def _dist_default(name):
    jt = _jt()
    dist = getattr(jt, "distributed", None)
    if dist is None or not getattr(dist, "is_available", lambda: False)():
        raise RuntimeError("Requires distributed package to be available")
    return getattr(dist, name)()


class DistributedSampler(Sampler):
    """Restricts loading to the share of the indices belonging to ``rank``.

    The (optionally shuffled, with ``seed + epoch``) index list is padded by
    repeating its head (or truncated with ``drop_last``) to a multiple of
    ``num_replicas``, and rank ``r`` takes every ``num_replicas``-th index
    starting at ``r``. Call :meth:`set_epoch` before each epoch to reshuffle.

    Without shuffling the indices are exactly torch's. The shuffled order is
    the same on every rank and run, but it is not the permutation torch draws:
    ``jitorch.randperm`` with a seeded ``jitorch.Generator`` is not torch's stream.
    """

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0,
                 drop_last=False):
        if num_replicas is None:
            num_replicas = _dist_default("get_world_size")
        if rank is None:
            rank = _dist_default("get_rank")
        if rank >= num_replicas or rank < 0:
            raise ValueError(
                f"Invalid rank {rank}, rank should be in the interval [0, {num_replicas - 1}]"
            )
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.drop_last = drop_last
        n = len(dataset)
        if drop_last and n % num_replicas != 0:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas
        self.shuffle = shuffle
        self.seed = seed

    def __iter__(self):
        n = len(self.dataset)
        if self.shuffle:
            gen = _jt().Generator()
            gen.manual_seed(self.seed + self.epoch)
            indices = randperm_list(n, generator=gen)
        else:
            indices = list(range(n))
        if not self.drop_last:
            pad = self.total_size - len(indices)
            if pad > 0:
                reps = math.ceil(pad / len(indices))
                indices += (indices * reps)[:pad]
        else:
            indices = indices[: self.total_size]
        assert len(indices) == self.total_size
        indices = indices[self.rank:self.total_size:self.num_replicas]
        assert len(indices) == self.num_samples
        return iter(indices)

    def __len__(self):
        return self.num_samples

    def set_epoch(self, epoch):
        self.epoch = epoch
