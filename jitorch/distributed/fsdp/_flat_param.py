"""One FSDP unit's parameters as a single flat vector: the local shard, and the full view on demand.

The parameters of the unit (those not inside a nested unit) are laid end to
end, zero-padded to a multiple of the world size, and cut into equal shards;
rank ``r`` keeps shard ``r`` as the ``flat_param`` the optimizer sees. The
original parameters disappear from their modules (their ``_parameters`` slot
holds None) and come back as views of the gathered full vector while the
unit runs.

The full vector lives in a private anonymous memory map. Resharding hands its
pages back to the OS with ``madvise(MADV_DONTNEED)`` while every NumPy view
of it stays valid (reading zeros until the next gather): this is how the full
parameters are freed although the autograd graph still holds views of them,
the role storage resizing plays in torch's FSDP.
"""
from __future__ import annotations

import math
import mmap

import numpy as np

from ..._tensor import wrap
from .._mpi import raw, reduce_dtype, typed
from ..reduce_op import ReduceOp, to_mpi
from ..work import Work

SHARDED, UNSHARDED = "sharded", "unsharded"


class ParamInfo:
    """Where one original parameter lives in the flat vector, and the (module, name) slots it fills."""

    def __init__(self, fqn: str, shape: tuple, offset: int, numel: int):
        self.fqn = fqn
        self.shape = shape
        self.offset = offset
        self.numel = numel
        self.slots: list[tuple] = []   # (module, attribute name, fully qualified name in the unit)


def owned_parameters(module, is_unit):
    """(submodule, name, fqn, parameter) of ``module``'s subtree, skipping subtrees of nested units."""
    found = []

    def visit(mod, prefix):
        for name, p in mod._parameters.items():
            if p is not None and not getattr(p, "_fsdp_flat", False):
                found.append((mod, name, prefix + name, p))
        for cname, child in mod._modules.items():
            if child is not None and not is_unit(child):
                visit(child, prefix + cname + ".")
    visit(module, "")
    return found


class FlatParamHandle:
    def __init__(self, entries, pg, parameter_cls):
        self.pg = pg
        self.world = pg.size()
        self.rank = pg.rank()
        self.infos: list[ParamInfo] = []
        by_id: dict[int, ParamInfo] = {}
        offset = 0
        for mod, name, fqn, p in entries:
            if getattr(p, "_fsdp_owned", False) and id(p) not in by_id:
                raise NotImplementedError(f"parameter {fqn} is shared with another FSDP unit; wrap the modules "
                                          "that share a parameter in the same unit")
            info = by_id.get(id(p))
            if info is None:
                info = ParamInfo(fqn, tuple(p.shape), offset, p.numel())
                by_id[id(p)] = info
                self.infos.append(info)
                offset += p.numel()
            info.slots.append((mod, name, fqn))
        params = [next(p for m, n, f, p in entries if id(p) == key) for key in by_id]
        dtypes = {p._data.dtype for p in params}
        if len(dtypes) != 1:
            raise ValueError(f"FSDP flattens one unit's parameters into one vector: they must share a dtype, got "
                             f"{sorted(str(d) for d in dtypes)}")
        grads = {p.requires_grad for p in params}
        if len(grads) != 1:
            raise ValueError("Must flatten tensors with uniform `requires_grad` when `use_orig_params=False`")
        self.dtype = dtypes.pop()
        self.numel = offset
        self.shard_numel = max(1, math.ceil(offset / self.world))
        self.padded_numel = self.shard_numel * self.world
        full = np.zeros(self.padded_numel, dtype=self.dtype)
        for info, p in zip(self.infos, params):
            full[info.offset:info.offset + info.numel] = p._data.reshape(-1)
        start = self.rank * self.shard_numel
        self.flat_param = parameter_cls(wrap(full[start:start + self.shard_numel].copy(), params[0]._dtype),
                                        requires_grad=grads.pop())
        self.flat_param._fsdp_flat = True
        for p in params:
            p._fsdp_owned = True
        for info in self.infos:
            for mod, name, _ in info.slots:
                mod._parameters[name] = None  # keeps the slot (and state_dict order); the view fills it
                mod.__dict__.setdefault("_fsdp_slots", {})[name] = (self, info)
        self._map = None
        self._full = None
        self.state = SHARDED
        self.pending_backward = 0  # forwards under grad whose backward has not reached this unit yet

    # -- the full vector ----------------------------------------------------------------------------
    def _full_buffer(self) -> np.ndarray:
        if self._full is None:
            nbytes = self.padded_numel * self.dtype.itemsize
            self._map = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            self._full = np.frombuffer(self._map, dtype=self.dtype, count=self.padded_numel)
        return self._full

    def unshard(self) -> None:
        """All-gather the shards into the full vector (always: the shard may have been stepped)."""
        full = self._full_buffer()
        shard = np.ascontiguousarray(self.flat_param._data)
        Work([self.pg.comm.Iallgather(raw(shard), raw(full))], "FSDP all_gather", self.pg).wait()
        self.state = UNSHARDED

    def unshard_if_freed(self) -> None:
        if self.state == SHARDED:
            self.unshard()

    def reshard(self) -> None:
        """Free the full vector's memory; its views read zeros until the next ``unshard``."""
        if self.state == UNSHARDED and self._map is not None:
            self._map.madvise(mmap.MADV_DONTNEED)
        self.state = SHARDED

    def full_views(self) -> list[np.ndarray]:
        full = self._full_buffer()
        return [full[i.offset:i.offset + i.numel].reshape(i.shape) for i in self.infos]

    def install(self, tensors) -> None:
        """Make each module attribute of an original parameter return its full tensor."""
        for info, t in zip(self.infos, tensors):
            for mod, name, _ in info.slots:
                mod.__dict__[name] = t

    def uninstall(self) -> None:
        for info in self.infos:
            for mod, name, _ in info.slots:
                mod.__dict__.pop(name, None)

    # -- gradients ----------------------------------------------------------------------------------
    def reduce_scatter_grads(self, grads) -> np.ndarray:
        """The average over ranks of this rank's shard of the full gradient."""
        rdt = reduce_dtype(self.dtype)
        full = np.zeros(self.padded_numel, dtype=rdt)
        for info, g in zip(self.infos, grads):
            if g is not None:
                full[info.offset:info.offset + info.numel] = g._data.reshape(-1)
        shard = np.empty(self.shard_numel, dtype=rdt)
        req = self.pg.comm.Ireduce_scatter_block(typed(full), typed(shard), to_mpi(ReduceOp.SUM, rdt))
        Work([req], "FSDP reduce_scatter", self.pg).wait()
        shard /= self.world
        return shard.astype(self.dtype, copy=False)

    # -- whole-vector copies for state dicts --------------------------------------------------------
    def gathered_copy(self) -> np.ndarray:
        """A fresh array with the full (unpadded) vector, on every rank."""
        full = np.empty(self.padded_numel, dtype=self.dtype)
        shard = np.ascontiguousarray(self.flat_param._data)
        Work([self.pg.comm.Iallgather(raw(shard), raw(full))], "FSDP state_dict all_gather", self.pg).wait()
        return full[:self.numel]

    def load_full(self, full: np.ndarray | None, scatter_from: int | None = None) -> None:
        """Set the local shard from a full vector: held by this rank, or scattered from group rank ``scatter_from``."""
        padded = None
        if full is not None:
            padded = np.zeros(self.padded_numel, dtype=self.dtype)
            padded[:self.numel] = full
        shard = self.flat_param._data
        if scatter_from is None:
            start = self.rank * self.shard_numel
            shard[...] = padded[start:start + self.shard_numel]
        else:
            send = raw(padded) if self.rank == scatter_from else None
            req = self.pg.comm.Iscatter(send, raw(shard), root=scatter_from)
            Work([req], "FSDP load_state_dict scatter", self.pg, keep=padded).wait()
        self.flat_param._bump_version()
        self.reshard()
