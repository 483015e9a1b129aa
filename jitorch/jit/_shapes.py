"""Batch-generic graphs: which numbers in a trace follow the batch size, and how.

A trace records concrete numbers: the shapes of every value, and attributes
such as ``reshape(shape=(64, 32))``. To run a trace at another batch size we
trace the function twice more, at two other batch sizes, and compare the three
graphs. They must have the same nodes; every integer that differs between them
must be an exact affine function ``a*N + b`` of the batch size ``N`` (checked at
all three sizes), and is replaced by a :class:`Sym`. Anything else that differs
(a baked index array, a float such as ``1/N``, a different number of nodes)
means the trace only holds at its own shapes, and the reason is kept for the
error message. Measuring instead of guessing is what keeps coincidences (a
channel count equal to the batch size) from producing wrong answers.
"""
from __future__ import annotations

import math

import numpy as np

from ..compiler.ir import Graph, Value


class Sym:
    """An integer that is ``a * N + b`` for the batch size ``N`` of a call."""

    __slots__ = ("a", "b")

    def __init__(self, a: int, b: int):
        self.a = a
        self.b = b

    def __call__(self, n: int) -> int:
        return self.a * n + self.b

    def __eq__(self, other) -> bool:
        return isinstance(other, Sym) and (self.a, self.b) == (other.a, other.b)

    def __hash__(self) -> int:
        return hash((Sym, self.a, self.b))

    def __repr__(self) -> str:
        lead = "N" if self.a == 1 else f"{self.a}*N"
        return lead if self.b == 0 else f"{lead}{'+' if self.b > 0 else '-'}{abs(self.b)}"


class Fill:
    """A constant tensor filled with one value, whose shape follows the batch size (``zeros(x.shape[0], 4)``)."""

    __slots__ = ("dtype", "value")

    def __init__(self, value, dtype):
        self.value = value
        self.dtype = dtype

    def make(self, shape):
        from .. import full
        return full(tuple(shape), self.value, dtype=self.dtype)


def _uniform(consts):
    """The one value every element of every constant holds (a Fill candidate), else None."""
    arrays = [c._data for c in consts]
    if any(a.size == 0 or a.dtype != arrays[0].dtype for a in arrays):
        return None
    first = arrays[0].flat[0]
    if all(bool((a == first).all()) for a in arrays):
        return first.item()
    return None


class NotBatchGeneric(Exception):
    """The traces at different batch sizes differ in a way ``a*N + b`` cannot describe."""


# -- fitting -------------------------------------------------------------------------------------------------
def _fit_int(vals, sizes, where):
    if all(v == vals[0] for v in vals):
        return vals[0]
    (v0, n0), (v1, n1) = (vals[0], sizes[0]), (vals[1], sizes[1])
    a, rem = divmod(v1 - v0, n1 - n0)
    b = v0 - a * n0
    if rem or any(a * n + b != v for v, n in zip(vals, sizes)):
        raise NotBatchGeneric(f"{where} takes the values {list(vals)} at batch sizes {list(sizes)}, "
                              "which is not a*N + b")
    return Sym(a, b)


def fit_value(vals, sizes, where):
    """One object in which each integer that varies with the batch size is a :class:`Sym`."""
    from .._tensor import Tensor
    x = vals[0]
    cls = type(x)
    if any(type(v) is not cls for v in vals):
        raise NotBatchGeneric(f"{where} changes type with the batch size")
    if cls is bool or x is None or cls in (str, float):
        if all(v == x or (cls is float and math.isnan(v) and math.isnan(x)) for v in vals):
            return x
        raise NotBatchGeneric(f"{where} takes the values {list(vals)} at batch sizes {list(sizes)}")
    if cls is int or isinstance(x, np.integer):
        return _fit_int([int(v) for v in vals], sizes, where) if any(v != x for v in vals) else x
    if isinstance(x, tuple):
        if any(len(v) != len(x) for v in vals):
            raise NotBatchGeneric(f"{where} changes length with the batch size")
        items = [fit_value([v[k] for v in vals], sizes, f"{where}[{k}]") for k in range(len(x))]
        return cls._make(items) if hasattr(cls, "_fields") else cls(items)
    if cls is list:
        if any(len(v) != len(x) for v in vals):
            raise NotBatchGeneric(f"{where} changes length with the batch size")
        return [fit_value([v[k] for v in vals], sizes, f"{where}[{k}]") for k in range(len(x))]
    if cls is dict:
        if any(list(v) != list(x) for v in vals):
            raise NotBatchGeneric(f"{where} changes keys with the batch size")
        return {k: fit_value([v[k] for v in vals], sizes, f"{where}[{k!r}]") for k in x}
    if cls is slice:
        parts = [fit_value([getattr(v, p) for v in vals], sizes, f"{where}.{p}") for p in ("start", "stop", "step")]
        return slice(*parts)
    if isinstance(x, np.ndarray):
        if all(v.shape == x.shape and v.dtype == x.dtype and np.array_equal(v, x) for v in vals):
            return x
        raise NotBatchGeneric(f"{where} is an index array read from tensor values, and it changes with the inputs")
    if isinstance(x, Tensor):
        if all(v is x or (v.shape == x.shape and np.array_equal(v._data, x._data)) for v in vals):
            return x
        raise NotBatchGeneric(f"{where} is a tensor that changes with the batch size")
    if all(v is x or v == x for v in vals):
        return x
    raise NotBatchGeneric(f"{where} ({cls.__name__}) changes with the batch size")


def fit_graphs(graphs, sizes) -> None:
    """Turn ``graphs[0]`` (traced at ``sizes[0]``) into a batch-generic template, in place.

    The other graphs were traced at the other sizes. Raises :class:`NotBatchGeneric`
    when they cannot be described by one template, and then leaves ``graphs[0]`` untouched:
    every change is computed first and applied only once all of them succeeded.
    """
    base = graphs[0]
    changes = []  # (object, attribute or index, new value)
    for g in graphs[1:]:
        for what in ("inputs", "constants", "nodes", "outputs", "mutations"):
            if len(getattr(g, what)) != len(getattr(base, what)):
                raise NotBatchGeneric(f"the number of graph {what} changes with the batch size")

    def fit_shape(values, where):
        if any(v.dtype is not values[0].dtype or v.id != values[0].id for v in values):
            raise NotBatchGeneric(f"{where} changes dtype or position with the batch size")
        changes.append((values[0], "shape", fit_value([v.shape for v in values], sizes, where + " shape")))

    for k in range(len(base.inputs)):
        fit_shape([g.inputs[k] for g in graphs], f"input {k}")
    for k, c in enumerate(base.constants):
        others = [g.constants[k] for g in graphs]
        if any(o.id != c.id for o in others):
            raise NotBatchGeneric("graph constants are created in a different order at another batch size")
        try:
            fit_value([o.const for o in others], sizes, f"constant %{c.id}")
        except NotBatchGeneric:
            value = _uniform([o.const for o in others])
            if value is None:
                raise
            fit_shape(others, f"constant %{c.id}")  # e.g. zeros(N, 4): one value, a batch-sized shape
            changes.append((c, "const", Fill(value, c.dtype)))
    for k, node in enumerate(base.nodes):
        peers = [g.nodes[k] for g in graphs]
        where = f"node {k} ({node.name}, {node.meta.get('where', '?')})"
        if any(p.op is not node.op or len(p.inputs) != len(node.inputs) or len(p.outputs) != len(node.outputs)
               or list(p.attrs) != list(node.attrs) for p in peers):
            raise NotBatchGeneric(f"the graph takes a different path at another batch size near {where}")
        inputs = list(node.inputs)
        for j, i in enumerate(node.inputs):
            ins = [p.inputs[j] for p in peers]
            if isinstance(i, Value):
                if any(not isinstance(x, Value) or x.id != i.id for x in ins):
                    raise NotBatchGeneric(f"{where} reads different values at another batch size")
            else:
                inputs[j] = fit_value(ins, sizes, f"{where} operand {j}")
        changes.append((node, "inputs", inputs))
        changes.append((node, "attrs", {key: fit_value([p.attrs[key] for p in peers], sizes,
                                                       f"{where} attribute {key!r}") for key in node.attrs}))
        for j in range(len(node.outputs)):
            fit_shape([p.outputs[j] for p in peers], where + f" output {j}")
    for g in graphs[1:]:
        if [v.id for v in g.outputs] != [v.id for v in base.outputs] or \
                [(a.id, b.id) for a, b in g.mutations] != [(a.id, b.id) for a, b in base.mutations]:
            raise NotBatchGeneric("the graph outputs change with the batch size")
    for obj, attr, value in changes:
        setattr(obj, attr, value)


# -- instantiating -------------------------------------------------------------------------------------------
def has_sym(x) -> bool:
    if isinstance(x, Sym):
        return True
    if isinstance(x, (tuple, list)):
        return any(has_sym(v) for v in x)
    if isinstance(x, dict):
        return any(has_sym(v) for v in x.values())
    if isinstance(x, slice):
        return has_sym((x.start, x.stop, x.step))
    return False


def evaluate(x, n: int):
    """``x`` with every :class:`Sym` replaced by its value at batch size ``n``."""
    if isinstance(x, Sym):
        return x(n)
    if isinstance(x, tuple):
        items = [evaluate(v, n) for v in x]
        return type(x)._make(items) if hasattr(type(x), "_fields") else type(x)(items)
    if isinstance(x, list):
        return [evaluate(v, n) for v in x]
    if isinstance(x, dict):
        return {k: evaluate(v, n) for k, v in x.items()}
    if isinstance(x, slice):
        return slice(evaluate(x.start, n), evaluate(x.stop, n), evaluate(x.step, n))
    return x


def instantiate(template: Graph, n: int | None) -> Graph:
    """A fresh, concrete copy of ``template`` at batch size ``n`` (passes mutate graphs: never run them on it)."""
    g = Graph()
    new: dict[int, Value] = {}

    def shape_of(v):
        shape = tuple(evaluate(v.shape, n)) if n is not None else v.shape
        if any(d < 0 for d in shape):
            raise RuntimeError(f"jitorch.jit: batch size {n} is too small for this trace "
                               f"(value %{v.id} would have shape {list(shape)})")
        return shape

    for v in template.inputs:
        new[v.id] = g.add_input(shape_of(v), v.dtype, v.device, name=v.name)
    for c in template.constants:
        new[c.id] = g.add_constant(c.const.make(shape_of(c)) if isinstance(c.const, Fill) else c.const)
    for node in template.nodes:
        ins = [new[i.id] if isinstance(i, Value) else evaluate(i, n) for i in node.inputs]
        attrs = evaluate(node.attrs, n) if n is not None else dict(node.attrs)
        specs = [(shape_of(o), o.dtype, o.device) for o in node.outputs]
        made = g.add_node(node.op, ins, attrs, specs, meta=node.meta)
        for o, m in zip(node.outputs, made.outputs):
            new[o.id] = m
    g.outputs = [new[v.id] for v in template.outputs]
    g.mutations = [(new[a.id], new[b.id]) for a, b in template.mutations]
    g.rebuild_users()
    return g
