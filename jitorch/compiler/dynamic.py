"""Dynamic sizes: traces of one function at several sizes, compared leaf by leaf.

Traces of the same function that differ only in some sizes (a batch dimension, the
dynamic axes of an ONNX export) have the same nodes, ops and wiring; what changes are
leaves: value shapes, reshape/expand targets, Python scalars such as ``1 / numel``.
:class:`Flat` splits traced graphs (and any nested Python value kept with them) into a
skeleton, compared with :func:`mismatch`, and a list of leaves; :func:`fit` expresses
every leaf that changes as a :class:`Sym`, ``coef * size_0^e0 * size_1^e1 ... + offset``,
fitted on two traces and confirmed on every other one; :func:`rebuild` copies a graph
with its leaves replaced.  Measuring instead of guessing keeps coincidences (a channel
count equal to the batch size) from giving wrong answers.

Users: ``jitorch.compile`` (a :class:`Template` builds the graphs for a new batch size
without running the Python function again; the generated kernels take their sizes as
arguments, so the compiled kernels are reused), ``jit._shapes`` (batch-generic traces
that hold ``Sym`` s) and ``onnx.symbolic_shapes`` (sizes that follow ``dynamic_axes``).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from .ir import Graph, Node, Value

_LEAF = "#"  # a leaf's place in a skeleton


@dataclass(frozen=True, repr=False)
class Sym:
    """``coef * size_0**powers[0] * size_1**powers[1] ... + offset``: a number as a function of the sizes."""

    coef: int | float
    offset: int | float = 0
    powers: tuple = (1,)

    def __call__(self, *sizes):
        return self.coef * math.prod(s ** p for s, p in zip(sizes, self.powers)) + self.offset

    def format(self, names) -> str:
        """``3*batch*seq``, ``2*N+1``: the expression with ``names[k]`` for size ``k``."""
        text = "*".join(([str(self.coef)] if self.coef != 1 else [])
                        + [n for n, p in zip(names, self.powers) for _ in range(p)])
        return f"{text}{'+' if self.offset > 0 else '-'}{abs(self.offset)}" if self.offset else text

    def __repr__(self) -> str:
        return self.format(["N"] if len(self.powers) == 1 else [f"s{k}" for k in range(len(self.powers))])


class _Unfit:
    def __repr__(self) -> str:
        return "UNFIT"


UNFIT = _Unfit()  # fit(): a leaf that changes in a way no Sym describes


def is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def is_number(x) -> bool:
    return is_int(x) or isinstance(x, (float, np.floating))


# -- skeleton and leaves ---------------------------------------------------------------------------------------

def map_leaves(obj, fn, path=()):
    """``obj`` rebuilt with every leaf ``x`` (anything but a tuple, list, dict or slice) replaced by ``fn(x, path)``."""
    if isinstance(obj, tuple):
        items = [map_leaves(o, fn, path + (k,)) for k, o in enumerate(obj)]
        return type(obj)._make(items) if hasattr(type(obj), "_fields") else type(obj)(items)
    if isinstance(obj, list):
        return [map_leaves(o, fn, path + (k,)) for k, o in enumerate(obj)]
    if isinstance(obj, dict):
        return {k: map_leaves(v, fn, path + (k,)) for k, v in obj.items()}
    if isinstance(obj, slice):
        return slice(*(map_leaves(getattr(obj, p), fn, path + (p,)) for p in ("start", "stop", "step")))
    return fn(obj, path)


def rebuild(graph: Graph, leaf, keys: list | None = None) -> Graph:
    """A copy of ``graph`` (same value ids) in which every leaf ``x`` becomes ``leaf(x, (owner, field, path))``.

    The leaves are what value shapes (field ``shape``), constants (``const``), nodes' non-Value
    inputs (``inputs``) and attributes (``attrs``) hold; ``owner`` is the Value or Node of
    ``graph``.  With ``keys``, the skeleton (the rest) is appended to it as ``(owner, field, key)``.
    """
    g = Graph()
    new: dict[int, Value] = {}
    order: dict[int, int] = {}  # value -> position, for the wiring in keys

    def note(owner, field, key):  # key() makes the skeleton entry, only when one is wanted
        if keys is not None:
            keys.append((owner, field, key()))

    def part(owner, field, obj):
        note(owner, field, lambda: map_leaves(obj, lambda x, p: ("v", order[id(x)]) if isinstance(x, Value) else _LEAF))
        return map_leaves(obj, lambda x, p: new[id(x)] if isinstance(x, Value) else leaf(x, (owner, field, p)))

    def value(v, kind, producer=None):
        shape = part(v, "shape", tuple(v.shape))
        const = part(v, "const", v.const) if kind == "const" else None
        note(v, "type", lambda: (kind, v.dtype, v.device, v.name))
        new[id(v)] = nv = Value(v.id, shape, v.dtype, v.device, producer, kind, const, v.name)
        order[id(v)] = len(order)
        return nv

    g.inputs = [value(v, "input") for v in graph.inputs]
    g.constants = [value(v, "const") for v in graph.constants]
    for n in graph.nodes:
        note(n, "op", lambda n=n: (n.op, len(n.outputs), tuple(sorted((k, repr(m)) for k, m in n.meta.items()
                                                                      if k != "where"))))
        node = Node(n.op, part(n, "inputs", list(n.inputs)), part(n, "attrs", dict(n.attrs)), meta=dict(n.meta))
        node.outputs = [value(o, "node", node) for o in n.outputs]
        g.nodes.append(node)
    g.outputs = [new[id(v)] for v in graph.outputs]
    g.mutations = [(new[id(a)], new[id(b)]) for a, b in graph.mutations]
    note(None, "outputs", lambda: (tuple(order[id(v)] for v in graph.outputs),
                                   tuple((order[id(a)], order[id(b)]) for a, b in graph.mutations),
                                   tuple(getattr(graph, "grad_present", ()))))
    if hasattr(graph, "grad_present"):
        g.grad_present = list(graph.grad_present)
    g._ids = itertools.count(max((v.id for v in new.values()), default=-1) + 1)
    g.rebuild_users()
    return g


class Flat:
    """Graphs and other values split into a skeleton (``keys``) and leaves.

    ``leaves[k]`` sits at ``where[k]`` = ``(owner, field, path)`` (see :func:`rebuild`; the owner
    is None for a leaf of a non-graph part); ``parts`` are copies of what was flattened, taken
    before passes could change the graphs in place.
    """

    def __init__(self, *parts):
        self.keys: list = []
        self.leaves: list = []
        self.where: list = []
        self.parts = [self._take(p) for p in parts]

    def _record(self, x, where):
        self.leaves.append(x)
        self.where.append(where)
        return x

    def _take(self, p):
        if isinstance(p, Graph):
            return rebuild(p, self._record, self.keys)
        self.keys.append((None, "value", map_leaves(p, lambda x, path: _LEAF)))
        return map_leaves(p, lambda x, path: self._record(x, (None, "value", path)))

    def at(self, leaves) -> list:
        """The parts, with their leaves taken in order from ``leaves``."""
        it = iter(leaves)

        def take(x, where):
            return next(it)
        return [rebuild(p, take) if isinstance(p, Graph) else map_leaves(p, take) for p in self.parts]


def mismatch(a: Flat, b: Flat):
    """The first skeleton entries ``(owner, field, key)`` of ``a`` and of ``b`` that differ (None past
    the end of one); None when the two have the same skeleton."""
    for x, y in itertools.zip_longest(a.keys, b.keys):
        if x is None or y is None or x[2] != y[2]:
            return x, y
    return None


# -- fitting -------------------------------------------------------------------------------------------------

def same(a, b) -> bool:
    """Equality of leaves that looks inside arrays and tensors and takes NaN as equal to NaN."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray) or hasattr(a, "_data"):
        x, y = (a, b) if isinstance(a, np.ndarray) else (a._data, b._data)
        return x.shape == y.shape and x.dtype == y.dtype and np.array_equal(x, y, equal_nan=x.dtype.kind in "fc")
    if isinstance(a, (float, np.floating)) and math.isnan(a) and math.isnan(b):
        return True
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return repr(a) == repr(b)


def _fit_one(values, powers, m, j, rtol):
    """The Sym with ``powers`` through ``values`` (the monomial is ``m`` there), fitted on samples 0 and ``j``."""
    if all(is_int(v) for v in values):
        a, rem = divmod(int(values[j]) - int(values[0]), m[j] - m[0])
        sym = Sym(a, int(values[0]) - a * m[0], powers)
        ok = not rem and all(a * mk + sym.offset == v for mk, v in zip(m, values))
    elif all(isinstance(v, (float, np.floating)) for v in values):  # never a mix: an int slot stays int
        a = (float(values[j]) - float(values[0])) / (m[j] - m[0])
        sym = Sym(a, float(values[0]) - a * m[0], powers)
        ok = all(abs(a * mk + sym.offset - float(v)) <= rtol * max(1.0, abs(float(v))) for mk, v in zip(m, values))
    else:
        return None
    return sym if ok and a != 0 else None


def fit(points: list, samples: list, max_power: int = 1, rtol: float = 1e-9) -> list:
    """Per leaf of ``samples[0]``: None when it is the same in every sample; else the :class:`Sym` of the
    sizes that gives it in every sample; else :data:`UNFIT`.

    ``samples`` are :class:`Flat` s with one skeleton, ``points[k]`` the sizes (a tuple, one per symbol)
    ``samples[k]`` was traced at.  A Sym is fitted on two samples and must hold on every other one: with
    fewer than three samples nothing that changes fits (``S * S`` and ``1 / S`` agree with a line at two).
    Ints fit exactly with int coefficients, floats within ``rtol``; each size has a power up to ``max_power``.
    """
    models = []
    for powers in sorted(itertools.product(range(max_power + 1), repeat=len(points[0])), key=sum)[1:]:
        m = [math.prod(s ** e for s, e in zip(p, powers)) for p in points]
        j = next((j for j in range(1, len(m)) if m[j] != m[0]), None)
        if j is not None and len(m) > 2:
            models.append((powers, m, j))
    out = []
    for values in zip(*(s.leaves for s in samples)):
        if all(same(values[0], v) for v in values[1:]):
            out.append(None)
            continue
        found = (_fit_one(values, *model, rtol) for model in models)
        out.append(next((f for f in found if f is not None), UNFIT))
    return out


def uniform_value(tensors):
    """The one value every element of every tensor holds (NaN equal to NaN), else None: a fill constant."""
    arrays = [np.asarray(t._data) for t in tensors]
    if any(a.size == 0 or a.dtype != arrays[0].dtype for a in arrays):
        return None
    first = arrays[0].reshape(-1)[0]
    nan = arrays[0].dtype.kind in "fc" and np.isnan(first)
    if all(bool(np.all(np.isnan(a) if nan else a == first)) for a in arrays):
        return first.item()
    return None


class Template:
    """Traced parts (graphs and values) as functions of the sizes: :meth:`at` builds them for any sizes."""

    def __init__(self, base: Flat, fits: list):
        self.base = base
        self.fits = fits  # per leaf of base: None (constant) or a Sym

    @classmethod
    def fit(cls, points: list, samples: list, max_power: int = 1) -> Template | None:
        """The template of ``samples`` (see :func:`fit`), or None when they differ in a way Syms don't describe."""
        if any(mismatch(samples[0], s) for s in samples[1:]):
            return None
        fits = fit(points, samples, max_power)
        return None if any(f is UNFIT for f in fits) else cls(samples[0], fits)

    def at(self, *sizes) -> list:
        return self.base.at(x if f is None else type(x)(f(*sizes)) for x, f in zip(self.base.leaves, self.fits))
