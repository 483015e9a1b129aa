"""The gradient reducer behind DistributedDataParallel.

A post-accumulate-grad hook on every parameter copies its (locally
accumulated) gradient, pre-divided by the world size, into its bucket. When a
bucket is full its all-reduce (a non-blocking MPI ``Iallreduce``) starts at
once, while the rest of backward keeps running; buckets are started strictly
in bucket order, so every rank issues the same collectives in the same order.

Buckets first follow the reverse of registration order; after the first
backward they are rebuilt once in the order gradients actually became ready
(rank 0's order, broadcast so that all ranks agree), as torch does.

As in torch, the hook that starts the last bucket's all-reduce (and, with
``find_unused_parameters``, the all-reduce of which parameters any rank used)
queues a final callback on the autograd engine
(``Variable._execution_engine.queue_callback``): after the whole backward
pass, including the nodes that run after the last parameter's gradient, it
waits for the buckets and writes the averaged gradients back into ``.grad``.
A backward that leaves a parameter without gradient never starts the last
bucket, so nothing is queued; the next forward then raises torch's "Expected
to have finished reduction" error.

A gradient that this backward created (``.grad`` was None at forward time)
simply becomes a view of its averaged bucket slot, and the bucket takes a new
buffer: that saves copying the result back. A ``.grad`` that existed before
keeps its identity and gets the result copied in, as in torch.
"""
from __future__ import annotations

import numpy as np

from ..._tensor import wrap
from ...autograd.variable import Variable
from ...distributed._mpi import mpi, typed
from ...distributed.work import Work, wait_requests
from ._buckets import DEFAULT_BUCKET_CAP_MB, FIRST_BUCKET_BYTES, Bucket, assign_buckets
from ._graph import reachable_leaf_ids

_MIB = 1024 * 1024


def _same_memory(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.__array_interface__["data"][0] == b.__array_interface__["data"][0]


class Reducer:
    def __init__(self, params, names, pg, bucket_cap_mb=None, find_unused_parameters=False,
                 gradient_as_bucket_view=False):
        self.params = list(params)
        self.names = list(names)
        self.pg = pg
        self.scale = 1.0 / pg.size()
        self.find_unused = find_unused_parameters
        self.grad_as_view = gradient_as_bucket_view
        cap = int((DEFAULT_BUCKET_CAP_MB if bucket_cap_mb is None else bucket_cap_mb) * _MIB)
        first = FIRST_BUCKET_BYTES if bucket_cap_mb is None else cap
        self._limits = [max(first, 1), max(cap, 1)]
        # until gradients have been seen arriving, guess: the last layers' gradients come first
        self._set_buckets(list(reversed(range(len(self.params)))))
        self._rebuilt = find_unused_parameters  # torch rebuilds only without unused-parameter detection
        self._ready_order: list[int] = []
        self.index_of = {id(p): i for i, p in enumerate(self.params)}
        self._handles = [p.register_post_accumulate_grad_hook(self._on_grad_ready) for p in self.params]
        self._sync = False          # gradients of the current backward are to be averaged
        self._started = False       # a hook fired since prepare_for_backward
        self._ready = np.zeros(len(self.params), dtype=bool)
        self._had_grad = [False] * len(self.params)
        self._next_bucket = 0
        self._unused: list[int] = []
        self._local_used = np.zeros(len(self.params), dtype=np.int32)
        self._used = None           # with find_unused_parameters: the summed use counts being all-reduced
        self._used_request = None

    def _set_buckets(self, order: list[int]) -> None:
        """Buckets over the parameters taken in ``order`` (the order their gradients are expected)."""
        sizes = [self.params[i].numel() * self.params[i].element_size() for i in order]
        groups = assign_buckets(sizes, [self.params[i]._data.dtype for i in order], self._limits)
        self.buckets = []
        for b, positions in enumerate(groups):
            idx = [order[k] for k in positions]
            self.buckets.append(Bucket(b, idx, [self.params[i] for i in idx], self.params[idx[0]]._data.dtype))
        self.slot_of = [None] * len(self.params)
        for bucket in self.buckets:
            for k, i in enumerate(bucket.param_indices):
                self.slot_of[i] = (bucket, k)

    def _rebuild_buckets(self) -> None:
        """Re-bucket once in the order this backward's gradients arrived (rank 0's order for everyone)."""
        self._rebuilt = True
        order = np.array(self._ready_order, dtype=np.int64)
        self._ready_order = []
        if len(order) != len(self.params):
            return
        Work([self.pg.comm.Ibcast([order, mpi().INT64_T], root=0)], "DDP rebuild buckets", self.pg).wait()
        self._set_buckets(order.tolist())

    def remove_hooks(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    # -- one iteration ------------------------------------------------------------------------------
    def check_prior_reduction_finished(self) -> None:
        if not (self._sync and self._started):
            return
        missing = [i for i in range(len(self.params)) if not self._ready[i]]
        raise RuntimeError(
            "Expected to have finished reduction in the prior iteration before starting a new one. This error "
            "indicates that your module has parameters that were not used in producing loss. You can enable "
            "unused parameter detection by passing the keyword argument `find_unused_parameters=True` to "
            "`jitorch.nn.parallel.DistributedDataParallel`, and by making sure all `forward` function outputs "
            "participate in calculating loss.\n"
            f"Parameter indices which did not receive grad for rank {self.pg.global_rank(self.pg.rank())}: "
            f"{' '.join(str(i) for i in missing)}\n"
            f"Parameters which did not receive grad for rank {self.pg.global_rank(self.pg.rank())}: "
            f"{', '.join(self.names[i] for i in missing)}")

    def prepare_for_backward(self, outputs=None) -> None:
        """Called at the end of a forward whose backward must average the gradients."""
        self._sync = True
        self._started = False
        self._ready[:] = False
        self._next_bucket = 0
        for bucket in self.buckets:
            bucket.reset()
        self._had_grad = [p._grad is not None for p in self.params]
        self._unused = []
        if self.find_unused:
            used = reachable_leaf_ids(outputs)
            self._unused = [i for i, p in enumerate(self.params) if id(p) not in used]

    def skip_sync(self) -> None:
        """A forward under ``no_sync()`` (or without grad): its backward only accumulates locally."""
        self._sync = False

    def _on_grad_ready(self, param) -> None:
        i = self.index_of[id(param)]
        self._local_used[i] = 1
        if not self._sync:
            return
        if not self._started:
            self._started = True
            for j in self._unused:  # as torch does: unused parameters count as ready when backward starts
                self._mark_ready(j)
        if not self._rebuilt:
            self._ready_order.append(i)
        self._mark_ready(i)

    def _mark_ready(self, i: int) -> None:
        if self._ready[i]:
            raise RuntimeError(
                f"Expected to mark a variable ready only once. Parameter {self.names[i]} (index {i}) received its "
                "gradient twice in one backward; DDP supports one backward per forward.")
        self._ready[i] = True
        bucket, k = self.slot_of[i]
        self._copy_into_bucket(i, bucket, k)
        bucket.pending -= 1
        if bucket.pending == 0:
            self._start_ready_buckets()
        else:
            self._make_progress()
        if self._next_bucket == len(self.buckets):
            self._all_buckets_started()

    def _copy_into_bucket(self, i: int, bucket: Bucket, k: int) -> None:
        p = self.params[i]
        slot = bucket.views[k]
        grad = p._grad
        if grad is None:
            slot[...] = 0  # an unused parameter contributes zeros
        elif self.grad_as_view and _same_memory(grad._data, slot):
            np.multiply(slot, self.scale, out=slot)
        else:
            np.multiply(grad._data, self.scale, out=slot)
            if self.grad_as_view:
                p._grad = wrap(slot, p._dtype)

    def _start_ready_buckets(self) -> None:
        MPI = mpi()
        while self._next_bucket < len(self.buckets) and self.buckets[self._next_bucket].pending == 0:
            bucket = self.buckets[self._next_bucket]
            bucket.request = self.pg.comm.Iallreduce(MPI.IN_PLACE, typed(bucket.buffer), MPI.SUM)
            self._next_bucket += 1

    def _make_progress(self) -> None:
        # MPICH moves non-blocking collectives forward only inside MPI calls: poke it between hooks
        started = [b.request for b in self.buckets[:self._next_bucket] if b.request is not None]
        if started:
            mpi().Request.Testall(started)

    def _all_buckets_started(self) -> None:
        """Every bucket's all-reduce is under way: share which parameters were used, finish after backward."""
        self._used = self._used_request = None
        if self.find_unused:
            MPI = mpi()
            self._used = self._local_used.copy()
            self._used_request = self.pg.comm.Iallreduce(MPI.IN_PLACE, [self._used, MPI.INT32_T], MPI.SUM)
        Variable._execution_engine.queue_callback(self._finalize)

    def _finalize(self) -> None:
        """The end-of-backward callback: wait for the all-reduces and hand the averages to ``.grad``."""
        requests = [b.request for b in self.buckets]
        used = self._used
        if self._used_request is not None:
            requests.append(self._used_request)
        self._used = self._used_request = None
        wait_requests(requests, "DDP gradient all_reduce", self.pg)
        handed_over = set()
        for i, p in enumerate(self.params):
            if used is not None and used[i] == 0:
                continue  # no rank used it: its .grad stays as it was (None), as in torch
            bucket, k = self.slot_of[i]
            slot = bucket.views[k]
            grad = p._grad
            if self.grad_as_view:
                if grad is None or not _same_memory(grad._data, slot):
                    p._grad = wrap(slot, p._dtype)
                else:
                    grad._bump_version()
            elif grad is None or not self._had_grad[i]:
                p._grad = wrap(slot, p._dtype)
                handed_over.add(bucket)
            else:
                grad._data[...] = slot
                grad._bump_version()
        for bucket in handed_over:
            bucket.renew()
        self._sync = False
        self._started = False
        self._local_used[:] = 0
        if not self._rebuilt:
            self._rebuild_buckets()
