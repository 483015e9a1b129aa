"""Dynamic sizes: one traced graph serves every batch size.

Traces of the same function that differ only in one size ``S`` (the batch
dimension, say) have the same nodes, ops and wiring; what changes are numbers:
value shapes, reshape/expand targets, Python scalars such as ``1 / numel``.
:func:`fit` compares such traces number by number and expresses every number
that changed as ``a * S + c``, checking the fit on a trace it was not fitted
on.  The result, a :class:`Template`, builds the graph for any new ``S`` without
running the Python function again; the generated kernels take their sizes as
arguments, so an instantiated graph reuses the kernels already compiled
(a scalar that depends on ``S`` changes that one kernel's source, which the
on-disk cache then holds for each size).

A trace whose structure differs (a branch on the size, a constant tensor whose
values depend on it) makes the fit fail, and the function keeps one graph per
size, as without ``dynamic``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from .ir import Graph, Value

_NUM = "#"


# -- flattening graphs into (structure, numbers) ---------------------------------------------------

def _is_number(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def _walk(obj, numbers: list):
    """``obj`` with each number replaced by a marker (appended to ``numbers``)."""
    if _is_number(obj):
        numbers.append(obj)
        return (_NUM, type(obj))
    if isinstance(obj, tuple):
        return ("t", tuple(_walk(o, numbers) for o in obj))
    if isinstance(obj, list):
        return ("l", tuple(_walk(o, numbers) for o in obj))
    if isinstance(obj, dict):
        return ("d", tuple((k, _walk(v, numbers)) for k, v in obj.items()))
    if isinstance(obj, slice):
        return ("s", _walk(obj.start, numbers), _walk(obj.stop, numbers), _walk(obj.step, numbers))
    if isinstance(obj, np.ndarray) or hasattr(obj, "_data"):
        # arrays and tensors held in attributes: equal only when their contents are
        return ("o", _const_key(obj))
    return ("o", obj)


def _subst(obj, it):
    """``obj`` with its numbers (in :func:`_walk` order) taken from ``it``; other objects kept."""
    if _is_number(obj):
        return type(obj)(next(it))
    if isinstance(obj, tuple):
        return tuple(_subst(o, it) for o in obj)
    if isinstance(obj, list):
        return [_subst(o, it) for o in obj]
    if isinstance(obj, dict):
        return {k: _subst(v, it) for k, v in obj.items()}
    if isinstance(obj, slice):
        return slice(_subst(obj.start, it), _subst(obj.stop, it), _subst(obj.step, it))
    return obj


def _const_key(t) -> tuple:
    data = np.ascontiguousarray(t if isinstance(t, np.ndarray) else t._data)
    return (str(data.dtype), data.shape, hashlib.sha1(data.tobytes()).hexdigest())


def flatten(graph: Graph, extra=None):
    """(structure, numbers) of ``graph`` (and of ``extra``, any nested Python value).

    Two graphs with equal structures differ only in the numbers, position by position.
    """
    numbers: list = []
    index: dict[int, int] = {}
    parts = []
    for v in graph.inputs:
        index[id(v)] = len(index)
        parts.append(("in", _walk(v.shape, numbers), v.dtype, v.device, v.name))
    for v in graph.constants:
        index[id(v)] = len(index)
        parts.append(("const", _walk(tuple(v.shape), numbers), _const_key(v.const)))
    for n in graph.nodes:
        ins = tuple(("v", index[id(i)]) if isinstance(i, Value) else ("x", _walk(i, numbers)) for i in n.inputs)
        attrs = _walk(n.attrs, numbers)
        outs = []
        for o in n.outputs:
            index[id(o)] = len(index)
            outs.append((_walk(o.shape, numbers), o.dtype, o.device))
        parts.append(("node", n.op, ins, attrs, tuple(outs), tuple(sorted((k, repr(v)) for k, v in n.meta.items()
                                                                          if k != "where"))))
    parts.append(("out", tuple(index[id(v)] for v in graph.outputs)))
    parts.append(("mut", tuple((index[id(a)], index[id(b)]) for a, b in graph.mutations)))
    parts.append(("grad_present", tuple(getattr(graph, "grad_present", ()))))
    parts.append(("extra", _walk(extra, numbers)))
    return tuple(parts), numbers


def rebuild(graph: Graph, numbers, extra=None) -> tuple[Graph, object]:
    """A copy of ``graph`` with its numbers (in :func:`flatten` order) replaced, and ``extra`` likewise."""
    it = iter(numbers)
    g = _Rebuild(graph, it).run()
    return g, _subst(extra, it)


class _Rebuild:
    def __init__(self, graph, it):
        self.src = graph
        self.it = it

    def _shape(self, shape):
        return _subst(tuple(shape), self.it)

    def run(self):
        src, it = self.src, self.it
        g = Graph()
        vmap: dict[int, Value] = {}
        for v in src.inputs:
            vmap[id(v)] = g.add_input(self._shape(v.shape), v.dtype, v.device, name=v.name)
        for v in src.constants:
            self._shape(v.shape)  # constants never vary (their data is part of the structure)
            nv = g.add_constant(v.const)
            vmap[id(v)] = nv
        for n in src.nodes:
            ins = [vmap[id(i)] if isinstance(i, Value) else _subst(i, it) for i in n.inputs]
            attrs = _subst(n.attrs, it)
            specs = [(self._shape(o.shape), o.dtype, o.device) for o in n.outputs]
            node = g.add_node(n.op, ins, attrs, specs, meta=dict(n.meta))
            for o, no in zip(n.outputs, node.outputs):
                vmap[id(o)] = no
        g.outputs = [vmap[id(v)] for v in src.outputs]
        g.mutations = [(vmap[id(a)], vmap[id(b)]) for a, b in src.mutations]
        if hasattr(src, "grad_present"):
            g.grad_present = list(src.grad_present)
        return g


# -- fitting numbers as affine functions of the size ------------------------------------------------

@dataclass
class _Slot:
    a: float
    c: float
    integral: bool

    def at(self, s):
        v = self.a * s + self.c
        return int(round(v)) if self.integral else v


def _fit_slot(s1, v1, s2, v2):
    integral = isinstance(v1, (int, np.integer)) and isinstance(v2, (int, np.integer))
    if integral:
        da, ds = int(v2) - int(v1), s2 - s1
        if da % ds:
            return None  # e.g. S // 2: not affine with integer coefficients
        a = da // ds
        return _Slot(a, int(v1) - a * s1, True)
    a = (float(v2) - float(v1)) / (s2 - s1)
    return _Slot(a, float(v1) - a * s1, False)


def _agrees(slot, s, v) -> bool:
    pred = slot.at(s)
    if slot.integral:
        return pred == v
    return abs(pred - float(v)) <= 1e-9 * max(1.0, abs(float(v)))


class Template:
    """A traced entry's graphs as functions of one size ``S``: :meth:`graphs_at` builds them for any ``S``."""

    def __init__(self, fwd: Graph, bwd: Graph | None, extra, numbers, slots):
        self.fwd, self.bwd, self.extra = fwd, bwd, extra
        self.numbers = numbers  # the traced sample's numbers, in flatten order (forward, backward, extra)
        self.slots = slots  # per number: None (constant) or an affine _Slot

    def graphs_at(self, s):
        nums = [b if slot is None else slot.at(s) for b, slot in zip(self.numbers, self.slots)]
        it = iter(nums)
        fwd = _Rebuild(self.fwd, it).run()
        bwd = _Rebuild(self.bwd, it).run() if self.bwd is not None else None
        return fwd, bwd, _subst(self.extra, it)


def sample(fwd: Graph, bwd: Graph | None, extra):
    """(structure, numbers) of an entry's raw graphs, in the order :meth:`Template.graphs_at` reads them."""
    sf, nf = flatten(fwd)
    if bwd is None:
        ne = []
        tail = _walk(extra, ne)
        return (sf, None, tail), nf + ne
    sb, nb = flatten(bwd)
    ne = []
    tail = _walk(extra, ne)
    return (sf, sb, tail), nf + nb + ne


def fit(samples):
    """``samples``: [(S, structure, numbers)] with equal structures; returns per-number slots or None.

    Fitted on the first two samples of different size, checked on every other one.
    """
    s0, struct0, n0 = samples[0]
    if any(st != struct0 or len(n) != len(n0) for _, st, n in samples[1:]):
        return None
    other = next((smp for smp in samples[1:] if smp[0] != s0), None)
    if other is None:
        return None
    s1, _, n1 = other
    checks = [smp for smp in samples[1:] if smp is not other]
    if not checks:
        return None  # a fit nothing has confirmed could be wrong (S * S, 1 / S): wait for a third size
    slots = []
    for k, (v0, v1) in enumerate(zip(n0, n1)):
        if v0 == v1 and all(n[k] == v0 for _, _, n in checks):
            slots.append(None)
            continue
        slot = _fit_slot(s0, v0, s1, v1)
        if slot is None or not all(_agrees(slot, s, n[k]) for s, _, n in checks):
            return None
        slots.append(slot)
    return slots
