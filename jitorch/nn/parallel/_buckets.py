"""Gradient buckets: which parameters' gradients are all-reduced together, and where they live.

Parameters are taken in the order their gradients are expected to become
ready: the reverse of registration order (the last layer's gradients come
first). As in torch, the first bucket is small (1 MiB unless ``bucket_cap_mb``
was given) so that communication starts early, later ones hold up to
``bucket_cap_mb``; parameters of different dtypes never share a bucket.
"""
from __future__ import annotations

import numpy as np

FIRST_BUCKET_BYTES = 1024 * 1024  # torch.distributed._DEFAULT_FIRST_BUCKET_BYTES
DEFAULT_BUCKET_CAP_MB = 25


def assign_buckets(sizes_bytes, keys, limits) -> list[list[int]]:
    """Group positions ``0..n-1`` into buckets (torch's compute_bucket_assignment_by_size).

    Per key, a bucket closes once it holds ``limits[k]`` bytes or more, where
    ``k`` counts that key's closed buckets (the last limit repeats). Buckets
    are returned ordered by their first position.
    """
    open_: dict = {}
    closed_count: dict = {}
    done: list[list[int]] = []
    for pos, (size, key) in enumerate(zip(sizes_bytes, keys)):
        members, total = open_.get(key, ([], 0))
        members.append(pos)
        total += size
        limit = limits[min(closed_count.get(key, 0), len(limits) - 1)]
        if total >= limit:
            done.append(members)
            closed_count[key] = closed_count.get(key, 0) + 1
            open_.pop(key, None)
        else:
            open_[key] = (members, total)
    done.extend(members for members, _ in open_.values())
    return sorted(done, key=lambda b: b[0])


class Bucket:
    """One flat gradient buffer for a few parameters, all-reduced in one call."""

    def __init__(self, index: int, param_indices: list[int], params, dtype):
        self.index = index
        self.param_indices = param_indices
        self.offsets = []
        at = 0
        for p in params:
            self.offsets.append(at)
            at += p.numel()
        self.sizes = [p.numel() for p in params]
        self.shapes = [tuple(p.shape) for p in params]
        self._use(np.zeros(at, dtype=dtype))
        self.pending = len(param_indices)
        self.request = None

    def _use(self, buffer: np.ndarray) -> None:
        self.buffer = buffer
        # the slot of each parameter, shaped like it (made once per buffer: the hooks use them every step)
        self.views = [buffer[o:o + n].reshape(s) for o, n, s in zip(self.offsets, self.sizes, self.shapes)]

    def renew(self) -> None:
        """Take a new buffer: the old one now belongs to the gradients that view it."""
        self._use(np.empty_like(self.buffer))

    def reset(self) -> None:
        self.pending = len(self.param_indices)
        self.request = None
