"""Which sizes in the captured graph follow the dynamic axes, and how.

The tracer records concrete shapes: a reshape to ``(6, 8)`` does not say
that 6 is ``batch * 3``.  To find out, the model is captured again with each
dynamic axis doubled (one capture per axis), and once more with every
dynamic axis tripled to check the answer.  The graphs must have the same
structure; each size is then fitted as ``coef * s1^e1 * s2^e2 ...`` (a
:class:`SymDim`) over the dynamic sizes ``s``.  A size that changes but fits
no such product (``L - 2`` after a convolution without padding, say) is an
:class:`UnknownDim`: fine as long as no lowering needs its value at run time.

The same comparison tells which attributes and Python scalars of a node
vary with the dynamic axes (a ``select(0, T - 1)``, a ``mean``'s divisor), so
lowerings express them at run time or refuse with :class:`DynamicAxesError`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..compiler.ir import Graph, Value
from .errors import DynamicAxesError

DOUBLE, TRIPLE = 2, 3  # size multipliers of the per-axis captures and of the checking capture


@dataclass(frozen=True)
class Symbol:
    """One dynamic axis: its ``dim_param`` name, example size and the (input, axis) pairs that carry it."""

    key: int
    name: str
    size: int
    sources: tuple


@dataclass(frozen=True)
class SymDim:
    """``coef * prod(sizes of factors)``; ``factors`` are symbol keys, repeated for powers."""

    coef: int
    factors: tuple


@dataclass(frozen=True)
class UnknownDim:
    """A size that changes with the dynamic axes in a way the fit could not express."""

    what: str


def is_static(dim) -> bool:
    return isinstance(dim, (int, np.integer))


def _fit(values: list, symbols: list):
    """The dim for sizes observed in [base, each axis doubled..., all tripled]."""
    base = values[0]
    if all(v == base for v in values):
        return int(base) if float(base).is_integer() else base
    if any(not float(v).is_integer() for v in values) or base <= 0:
        return None
    base = int(base)
    factors, denom = [], 1
    for sym, v in zip(symbols, values[1:1 + len(symbols)]):
        v = int(v)
        if v == base:
            continue
        ratio = v // base
        if v % base or ratio not in (DOUBLE, DOUBLE ** 2, DOUBLE ** 3):
            return None
        power = {DOUBLE: 1, DOUBLE ** 2: 2, DOUBLE ** 3: 3}[ratio]
        factors += [sym.key] * power
        denom *= sym.size ** power
    if not factors or base % denom:
        return None
    coef = base // denom
    by_key = {s.key: s for s in symbols}
    expect = coef * math.prod(TRIPLE * by_key[k].size for k in factors)
    if int(values[-1]) != expect:
        return None
    return SymDim(coef, tuple(sorted(factors)))


def _same_attr(a, b) -> bool:
    """Attribute equality that looks inside arrays (their repr elides the middle of big ones)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape and \
            np.array_equal(a, b)
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(_same_attr(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True  # NaN (a pad value, say) is the same NaN
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return repr(a) == repr(b)


def _single_value(a: np.ndarray):
    """The value every element of ``a`` holds (NaN counts as equal to NaN), or None."""
    if a.size == 0:
        return None
    first = a.reshape(-1)[0]
    same = (a == first) | (np.isnan(a) & np.isnan(first)) if a.dtype.kind == "f" else a == first
    return first if np.all(same) else None


def _where(node) -> str:
    return node.meta.get("where", "?") if node is not None else "?"


class ShapeTable:
    """Shapes of every Value of the base graph, with dynamic sizes as :class:`SymDim`/:class:`UnknownDim`."""

    def __init__(self, symbols: list, shapes: dict, variants: dict, scalars: dict, const_fill: dict,
                 const_varies: set):
        self.symbols = symbols
        self._shapes = shapes  # value id -> tuple of dims
        self._variants = variants  # node id -> [the node in each capture]
        self._scalars = scalars  # (node id, input position) -> int | float | SymDim | UnknownDim
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
        nodes = self.variants(node)
        return {k for k, v in node.attrs.items() if any(not _same_attr(v, n.attrs.get(k)) for n in nodes[1:])}

    def scalar(self, node, pos: int):
        """Scalar input ``pos`` of ``node``: its value, or a SymDim when it is a dynamic size."""
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
        parts = ([str(dim.coef)] if dim.coef != 1 else []) + [self.symbols[k].name for k in dim.factors]
        return "*".join(parts)


def static_table() -> ShapeTable:
    return ShapeTable([], {}, {}, {}, {}, set())


def _align(g0: Graph, gk: Graph, label: str):
    """Map every Value of ``g0`` to its counterpart in ``gk``; raise if the structure differs."""
    def differ(msg, node=None):
        where = f" at {_where(node)}" if node is not None else ""
        return DynamicAxesError(
            f"the captured graph changes structure when {label}: {msg}{where}. The model's Python code "
            "depends on that size (a branch or loop over it), so it cannot be exported with that axis dynamic")

    if len(g0.inputs) != len(gk.inputs):
        raise differ("different number of inputs")
    if len(g0.nodes) != len(gk.nodes):
        first = next((a for a, b in zip(g0.nodes, gk.nodes) if a.name != b.name), None)
        raise differ(f"{len(g0.nodes)} ops vs {len(gk.nodes)}", first)
    vmap = {a.id: b for a, b in zip(g0.inputs, gk.inputs)}
    for a, b in zip(g0.constants, gk.constants):
        vmap[a.id] = b
    pairs = []
    for a, b in zip(g0.nodes, gk.nodes):
        if a.name != b.name or len(a.inputs) != len(b.inputs) or len(a.outputs) != len(b.outputs):
            raise differ(f"op {a.name} became {b.name}", a)
        for x, y in zip(a.inputs, b.inputs):
            if isinstance(x, Value) != isinstance(y, Value) or (isinstance(x, Value) and vmap.get(x.id) is not y):
                raise differ(f"inputs of {a.name} differ", a)
        for x, y in zip(a.outputs, b.outputs):
            vmap[x.id] = y
        pairs.append((a, b))
    if len(g0.outputs) != len(gk.outputs) or any(vmap.get(x.id) is not y for x, y in zip(g0.outputs, gk.outputs)):
        raise differ("outputs differ")
    return vmap, pairs


def infer(graphs: list, symbols: list, labels: list) -> ShapeTable:
    """Fit the dims of ``graphs[0]``; ``graphs[1 + k]`` doubled symbol k, ``graphs[-1]`` tripled all."""
    g0 = graphs[0]
    maps, node_pairs = [], []
    for g, label in zip(graphs[1:], labels[1:]):
        vmap, pairs = _align(g0, g, label)
        maps.append(vmap)
        node_pairs.append(pairs)
    shapes = {}
    values = list(g0.inputs) + list(g0.constants) + [o for n in g0.nodes for o in n.outputs]
    for v in values:
        others = [m[v.id].shape for m in maps]
        if any(len(o) != len(v.shape) for o in others):
            node = v.producer
            raise DynamicAxesError(
                f"a tensor changes its number of dimensions with the dynamic axes ({list(v.shape)} at the example "
                f"size, {[list(o) for o in others]} at the others)"
                + (f", at {_where(node)} ({node.name})" if node is not None else "")
                + "; a size-1 example axis that gets squeezed is the usual cause: use an example of size 2 or more")
        dims = []
        for i, d in enumerate(v.shape):
            fit = _fit([d] + [s[i] for s in others], symbols)
            dims.append(fit if fit is not None else UnknownDim(f"dim{i}_of_%{v.id}"))
        shapes[v.id] = tuple(dims)
    variants, scalars = {}, {}
    for k, node in enumerate(g0.nodes):
        twins = [pairs[k][1] for pairs in node_pairs]
        variants[id(node)] = [node] + twins
        for pos, x in enumerate(node.inputs):
            if isinstance(x, Value) or x is None or isinstance(x, bool):
                continue
            seen = [t.inputs[pos] for t in twins]
            if any(s != x for s in seen):
                fit = _fit([x] + seen, symbols) if isinstance(x, (int, float)) else None
                scalars[(id(node), pos)] = fit if fit is not None else UnknownDim(f"{x!r} at the example size, {', '.join(map(repr, seen))} at the other sizes tried")
    const_fill, const_varies = {}, set()
    for c in g0.constants:
        arrays = [np.asarray(c.const._data)] + [np.asarray(m[c.id].const._data) for m in maps]
        if all(is_static(d) for d in shapes[c.id]):
            if any(a.shape != arrays[0].shape or not np.array_equal(a, arrays[0], equal_nan=True)
                   for a in arrays[1:]):
                const_varies.add(c.id)
            continue
        fills = [_single_value(a) for a in arrays]
        if all(f is not None for f in fills) and all(np.array_equal(f, fills[0], equal_nan=True) for f in fills):
            const_fill[c.id] = fills[0]
        else:
            const_varies.add(c.id)
    return ShapeTable(symbols, shapes, variants, scalars, const_fill, const_varies)
