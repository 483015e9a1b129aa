"""Which sizes in the captured graph follow the dynamic axes, and how.

The tracer records concrete shapes: a reshape to ``(6, 8)`` does not say
that 6 is ``batch * 3``.  To find out, the model is captured again with each
dynamic axis doubled (one capture per axis), and once more with every
dynamic axis tripled to check the answer.  ``compiler.dynamic`` compares the
graphs (they must have the same structure) and fits each size that changes as a
:class:`Sym` ``coef * s1^e1 * s2^e2 ... + offset`` of the dynamic sizes ``s``.
A size that changes but fits no such expression is an :class:`UnknownDim`: fine
as long as no lowering needs its value at run time.

The same comparison tells which attributes and Python scalars of a node
vary with the dynamic axes (a ``select(0, T - 1)``, a ``mean``'s divisor), so
lowerings express them at run time or refuse with :class:`DynamicAxesError`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..compiler import dynamic
from ..compiler.dynamic import Sym
from ..compiler.ir import Value
from .errors import DynamicAxesError

DOUBLE, TRIPLE = 2, 3  # size multipliers of the per-axis captures and of the checking capture
MAX_POWER = 3  # a size may follow an axis up to its cube


@dataclass(frozen=True)
class Symbol:
    """One dynamic axis: its ``dim_param`` name, example size and the (input, axis) pairs that carry it."""

    key: int
    name: str
    size: int
    sources: tuple


@dataclass(frozen=True)
class UnknownDim:
    """A size that changes with the dynamic axes in a way the fit could not express."""

    what: str


def is_static(dim) -> bool:
    return isinstance(dim, (int, np.integer))


def _dim(fit):
    """A fitted Sym as a size (integer coefficients), else None."""
    if isinstance(fit, Sym) and float(fit.coef).is_integer() and float(fit.offset).is_integer():
        return Sym(int(fit.coef), int(fit.offset), fit.powers)
    return None


def _where(node) -> str:
    return node.meta.get("where", "?") if node is not None else "?"


class ShapeTable:
    """Shapes of every Value of the base graph, with dynamic sizes as :class:`Sym`/:class:`UnknownDim`."""

    def __init__(self, symbols: list, shapes: dict, variants: dict, scalars: dict, varying: dict,
                 const_fill: dict, const_varies: set):
        self.symbols = symbols
        self._shapes = shapes  # value id -> tuple of dims
        self._variants = variants  # node id -> [the node in each capture]
        self._scalars = scalars  # (node id, input position) -> Sym | UnknownDim
        self._varying = varying  # node id -> names of the attributes that change
        self._const_fill = const_fill  # const value id -> its single value (dynamic-shaped uniform constants)
        self._const_varies = const_varies  # const value ids whose contents change with the dynamic axes

    @property
    def dynamic(self) -> bool:
        return bool(self.symbols)

    def shape(self, v: Value) -> tuple:
        s = self._shapes.get(v.id)
        return tuple(v.shape) if s is None else s

    def is_static_value(self, v: Value) -> bool:
        return all(is_static(d) for d in self.shape(v))

    def variants(self, node) -> list:
        return self._variants.get(id(node), [node])

    def varying_attrs(self, node) -> set:
        return self._varying.get(id(node), set())

    def scalar(self, node, pos: int):
        """Scalar input ``pos`` of ``node``: its value, or a Sym when it is a dynamic size."""
        return self._scalars.get((id(node), pos), node.inputs[pos])

    def constant_fill(self, v: Value):
        """For a constant whose shape is dynamic: its one repeated value (None if it is not uniform)."""
        return self._const_fill.get(v.id)

    def constant_varies(self, v: Value) -> bool:
        return v.id in self._const_varies

    def symbol(self, key: int) -> Symbol:
        return self.symbols[key]

    def dim_name(self, dim) -> str:
        """A readable name for a dim (``batch``, ``3*batch*seq``), used as an ONNX dim_param."""
        if is_static(dim):
            return str(dim)
        if isinstance(dim, UnknownDim):
            return dim.what
        return dim.format([s.name for s in self.symbols])


def static_table() -> ShapeTable:
    return ShapeTable([], {}, {}, {}, {}, {}, set())


def _check_structure(g0, gk, f0, fk, label: str) -> None:
    """Raise when the capture ``gk`` (flattened ``fk``) differs from ``g0`` in more than its numbers."""
    def differ(msg, node=None):
        where = f" at {_where(node)}" if node is not None else ""
        return DynamicAxesError(
            f"the captured graph changes structure when {label}: {msg}{where}. The model's Python code "
            "depends on that size (a branch or loop over it), so it cannot be exported with that axis dynamic")

    for what in ("inputs", "constants"):
        if len(getattr(g0, what)) != len(getattr(gk, what)):
            raise differ(f"different number of {what}")
    if len(g0.nodes) != len(gk.nodes):
        first = next((a for a, b in zip(g0.nodes, gk.nodes) if a.name != b.name), None)
        raise differ(f"{len(g0.nodes)} ops vs {len(gk.nodes)}", first)
    diff = dynamic.mismatch(f0, fk)
    if diff is None:
        return
    (a, field, _), (b, _, _) = diff
    if field == "shape":
        node = a.producer
        raise DynamicAxesError(
            f"a tensor changes its number of dimensions with the dynamic axes ({list(a.shape)} at the example "
            f"size, {list(b.shape)} when {label})" + (f", at {_where(node)} ({node.name})" if node is not None else "")
            + "; a size-1 example axis that gets squeezed is the usual cause: use an example of size 2 or more")
    if field == "op":
        raise differ(f"op {a.name} became {b.name}", a)
    if isinstance(a, Value):
        raise differ(f"a tensor's {field} differs", a.producer)
    raise differ(f"{field} of {a.name} differ" if a is not None else f"{field} differ", a)


def infer(graphs: list, symbols: list, labels: list) -> ShapeTable:
    """Fit the dims of ``graphs[0]``; ``graphs[1 + k]`` doubled symbol k, ``graphs[-1]`` tripled all."""
    g0 = graphs[0]
    flats = [dynamic.Flat(g) for g in graphs]
    for g, f, label in zip(graphs[1:], flats[1:], labels[1:]):
        _check_structure(g0, g, flats[0], f, label)
    base = tuple(s.size for s in symbols)
    points = [base] + [tuple(DOUBLE * x if i == k else x for i, x in enumerate(base)) for k in range(len(base))]
    fits = dynamic.fit(points + [tuple(TRIPLE * x for x in base)], flats, MAX_POWER)
    values = list(g0.inputs) + list(g0.constants) + [o for n in g0.nodes for o in n.outputs]
    shapes = {v.id: list(v.shape) for v in values}
    variants = {id(n): [g.nodes[k] for g in graphs] for k, n in enumerate(g0.nodes)}
    scalars, varying, consts = {}, {}, {}
    for k, (fit, (owner, field, path)) in enumerate(zip(fits, flats[0].where)):
        if fit is None:
            continue
        if field == "shape":
            shapes[owner.id][path[0]] = _dim(fit) or UnknownDim(f"dim{path[0]}_of_%{owner.id}")
        elif field == "attrs":
            varying.setdefault(id(owner), set()).add(path[0])
        elif field == "inputs":
            x, seen = owner.inputs[path[0]], [t.inputs[path[0]] for t in variants[id(owner)][1:]]
            scalars[(id(owner), path[0])] = (len(path) == 1 and _dim(fit)) or UnknownDim(
                f"{x!r} at the example size, {', '.join(map(repr, seen))} at the other sizes tried")
        elif field == "const":
            consts[owner.id] = [f.leaves[k] for f in flats]
    const_fill, const_varies = {}, set()
    for vid, tensors in consts.items():
        fill = None if all(is_static(d) for d in shapes[vid]) else dynamic.uniform_value(tensors)
        if fill is None:
            const_varies.add(vid)
        else:
            const_fill[vid] = fill
    shapes = {vid: tuple(dims) for vid, dims in shapes.items()}
    return ShapeTable(symbols, shapes, variants, scalars, varying, const_fill, const_varies)
