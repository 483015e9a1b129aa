"""Batch-generic graphs: which numbers in a trace follow the batch size, and how.

A trace records concrete numbers: the shapes of every value, and attributes
such as ``reshape(shape=(64, 32))``. To run a trace at another batch size we
trace the function twice more, at two other batch sizes, and compare the three
graphs with ``compiler.dynamic``. They must have the same nodes; every integer
that differs between them must be an exact affine function ``a*N + b`` of the
batch size ``N`` (checked at all three sizes), and is replaced by a :class:`Sym`;
a constant tensor of one repeated value whose shape follows the batch becomes a
:class:`Fill`. Anything else that differs (a baked index array, a float such as
``1/N``, a different number of nodes) means the trace only holds at its own
shapes, and the reason is kept for the error message.
"""
from __future__ import annotations

import itertools

import numpy as np

from ..compiler import dynamic
from ..compiler.dynamic import UNFIT, Sym
from ..compiler.ir import Graph

__all__ = ["Fill", "NotBatchGeneric", "Sym", "evaluate", "fit_graphs", "instantiate"]


class Fill:
    """A constant tensor filled with one value, whose shape follows the batch size (``zeros(x.shape[0], 4)``)."""

    __slots__ = ("dtype", "value")

    def __init__(self, value, dtype):
        self.value = value
        self.dtype = dtype

    def make(self, shape):
        from .. import full
        return full(tuple(shape), self.value, dtype=self.dtype)


class NotBatchGeneric(Exception):
    """The traces at different batch sizes differ in a way ``a*N + b`` cannot describe."""


# -- fitting -------------------------------------------------------------------------------------------------
def fit_graphs(graphs, sizes) -> Graph:
    """``graphs[0]`` (traced at ``sizes[0]``) as a batch-generic template: a copy holding Syms and Fills.

    The other graphs were traced at the other sizes. Raises :class:`NotBatchGeneric` when they
    cannot be described by one template.
    """
    base = graphs[0]
    for g in graphs[1:]:
        for what in ("inputs", "constants", "nodes", "outputs", "mutations"):
            if len(getattr(g, what)) != len(getattr(base, what)):
                raise NotBatchGeneric(f"the number of graph {what} changes with the batch size")
    names = _names(base)
    flats = [dynamic.Flat(g) for g in graphs]
    for f in flats[1:]:
        diff = dynamic.mismatch(flats[0], f)
        if diff is not None:
            raise NotBatchGeneric(_structure_error(names, *diff[0][:2]))
    leaves = []
    fits = dynamic.fit([(n,) for n in sizes], flats)
    for k, (x, fit, (owner, field, path)) in enumerate(zip(flats[0].leaves, fits, flats[0].where)):
        values = [f.leaves[k] for f in flats]
        fill = dynamic.uniform_value(values) if fit is UNFIT and field == "const" else None
        if fill is not None:
            fit = Fill(fill, owner.dtype)  # e.g. zeros(N, 4): one value, a batch-sized shape
        elif fit is UNFIT or (fit is not None and not all(dynamic.is_int(v) for v in values)):
            raise NotBatchGeneric(_leaf_error(_where(names, owner, field, path), values, sizes))
        leaves.append(x if fit is None else fit)
    return flats[0].at(leaves)[0]


def _names(g) -> dict:
    names = {}
    for k, v in enumerate(g.inputs):
        names[id(v)] = f"input {k}"
    for c in g.constants:
        names[id(c)] = f"constant %{c.id}"
    for k, node in enumerate(g.nodes):
        names[id(node)] = f"node {k} ({node.name}, {node.meta.get('where', '?')})"
        for j, o in enumerate(node.outputs):
            names[id(o)] = names[id(node)] + f" output {j}"
    return names


def _where(names, owner, field, path) -> str:
    head = {"shape": " shape", "const": "", "inputs": " operand {}", "attrs": " attribute {!r}"}[field]
    if field in ("inputs", "attrs"):
        head, path = head.format(path[0]), path[1:]
    return names[id(owner)] + head + "".join(f"[{p}]" if isinstance(p, int) else f"[{p!r}]" for p in path)


def _structure_error(names, owner, field) -> str:
    if field == "outputs":
        return "the graph outputs change with the batch size"
    where = names[id(owner)]
    if field == "inputs":
        return f"{where} reads different values at another batch size"
    if field in ("op", "attrs"):
        return f"the graph takes a different path at another batch size near {where}"
    return f"{where} changes {'rank' if field == 'shape' else 'dtype or position'} with the batch size"


def _leaf_error(where, values, sizes) -> str:
    x = values[0]
    if any(type(v) is not type(x) for v in values):
        return f"{where} changes type with the batch size"
    if isinstance(x, np.ndarray):
        return f"{where} is an index array read from tensor values, and it changes with the inputs"
    if hasattr(x, "_data"):
        return f"{where} is a tensor that changes with the batch size"
    if not (x is None or isinstance(x, (bool, str)) or dynamic.is_number(x)):
        return f"{where} ({type(x).__name__}) changes with the batch size"
    tail = ", which is not a*N + b" if dynamic.is_int(x) else ""
    return f"{where} takes the values {list(values)} at batch sizes {list(sizes)}{tail}"


# -- instantiating -------------------------------------------------------------------------------------------
def evaluate(x, n: int):
    """``x`` with every :class:`Sym` replaced by its value at batch size ``n``."""
    return dynamic.map_leaves(x, lambda y, _: y(n) if isinstance(y, Sym) else y)


def instantiate(template: Graph, n: int | None) -> Graph:
    """A fresh, concrete copy of ``template`` at batch size ``n`` (passes mutate graphs: never run them on it)."""
    g = dynamic.rebuild(template, lambda y, _: y(n) if n is not None and isinstance(y, Sym) else y)
    for v in itertools.chain(g.inputs, g.constants, (o for node in g.nodes for o in node.outputs)):
        if n is not None and any(d < 0 for d in v.shape):
            raise RuntimeError(f"jitorch.jit: batch size {n} is too small for this trace "
                               f"(value %{v.id} would have shape {list(v.shape)})")
    for c in g.constants:
        if isinstance(c.const, Fill):
            c.const = c.const.make(c.shape)
    return g
