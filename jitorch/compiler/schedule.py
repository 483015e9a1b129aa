"""Group graph nodes into kernels.

Three kinds of step:
- ``FusedGroup``: elementwise nodes and the reductions that consume them over
  one iteration domain ``rows x cols``.  A reduction over the trailing dims of
  a ``(R..., K...)`` tensor gives rows ``R`` and columns ``K``; elementwise nodes of
  shape ``R + K`` ("full") or ``R`` ("row", e.g. ``mean = sum / n``) join it.
  The generated kernel loops over rows (in parallel) and, inside a row, runs
  each reduction's column loop and then one loop writing the full-size
  outputs, so no intermediate that only the group reads is stored.
- ``ViewStep``: reshape/permute/expand/slice — metadata only at run time.
- ``ExternStep``: any other primitive (matmul/BLAS, indexing, sorting...) runs
  its registry implementation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from .ir import Graph, Node, Value

REDUCTIONS = ("sum", "amax", "amin", "prod")
VIEW_OPS = ("reshape", "permute", "expand", "slice", "as_strided", "diagonal", "unfold")


@dataclass(eq=False)
class FusedGroup:
    rows: tuple  # the row shape R
    cols: tuple  # the reduced (column) shape K; () for purely elementwise groups
    nodes: list = field(default_factory=list)
    inputs: list = field(default_factory=list)  # external Values read
    outputs: list = field(default_factory=list)  # Values written (needed outside the group)

    @property
    def kind(self) -> str:
        return "fused"

    @property
    def name(self) -> str:
        ops = []
        for n in self.nodes:
            if n.name not in ops:
                ops.append(n.name)
        return "fused_" + "_".join(ops[:8]) + ("_etc" if len(ops) > 8 else "")

    @property
    def n_rows(self) -> int:
        return math.prod(self.rows)

    @property
    def n_cols(self) -> int:
        return math.prod(self.cols)

    def shape_class(self, v: Value) -> str:
        """'full' (rows+cols), 'row' (rows, maybe with kept 1-dims) or 'scalar'."""
        full = self.rows + self.cols
        if v.shape == full:
            return "full"
        if self.cols and (v.shape == self.rows or v.shape == self.rows + (1,) * len(self.cols)):
            return "row"
        return "bcast"


@dataclass(eq=False)
class ViewStep:
    node: Node

    @property
    def kind(self) -> str:
        return "view"

    @property
    def name(self) -> str:
        return self.node.name


@dataclass(eq=False)
class ExternStep:
    node: Node

    @property
    def kind(self) -> str:
        return "extern"

    @property
    def name(self) -> str:
        return self.node.name


def _reduction_domain(node: Node):
    """(rows, cols) if ``node`` reduces trailing dims of its input, else None."""
    if node.name not in REDUCTIONS:
        return None
    x = node.inputs[0]
    dims = tuple(node.attrs["dims"])
    nd = len(x.shape)
    if not dims or dims != tuple(range(nd - len(dims), nd)):
        return None
    if x.dtype.name in _HALF:
        return None
    return x.shape[:nd - len(dims)], x.shape[nd - len(dims):]


# the fused kernel generators compute in the storage dtype: half types run as extern (eager) steps
_HALF = ("float16", "bfloat16")


def _fusible_elementwise(node: Node) -> bool:
    return node.kind == "elementwise" and all(o.dtype.name not in _HALF for o in node.outputs) and all(
        not isinstance(i, Value) or i.dtype.name not in _HALF for i in node.inputs)


def schedule(graph: Graph) -> list:
    """Partition nodes into steps in a valid execution order."""
    graph.rebuild_users()
    group_of: dict[int, FusedGroup] = {}  # value id -> the group computing it
    steps: list = []

    for node in graph.nodes:
        if node.name in VIEW_OPS:
            steps.append(ViewStep(node))
            continue
        dom = _reduction_domain(node)
        if dom is not None:
            g = _join_or_new(node, dom, group_of, steps, graph)
            _add(g, node, group_of)
            continue
        if _fusible_elementwise(node):
            out = node.outputs[0]
            g = _find_group_for_elementwise(node, group_of, steps)
            if g is None:
                g = FusedGroup(rows=out.shape[:-1] if out.shape else (), cols=())
                g._flat_shape = out.shape
                steps.append(g)
            _add(g, node, group_of)
            continue
        steps.append(ExternStep(node))

    steps = [s for g in steps for s in _split_if_ambiguous(g)]
    _finalize_groups(steps, graph, group_of)
    return steps


def _split_if_ambiguous(step) -> list:
    """A rows x cols group whose elementwise ops read a value shaped exactly like the rows.

    Broadcasting aligns such a value with the *last* dims, so in a full-shaped op it is
    indexed by column; the kernel's 'row' operands are indexed by row.  When the row shape
    also fits the trailing dims (R == K, say), the two readings differ and the kernel would
    be wrong, so the group runs node by node with the eager kernels instead.
    """
    if not isinstance(step, FusedGroup) or not step.cols:
        return [step]
    full = step.rows + step.cols
    for n in step.nodes:
        if not n.outputs or n.outputs[0].shape != full:
            continue
        for v in n.inputs:
            if isinstance(v, Value) and v.shape and v.shape == step.rows and full[-len(v.shape):] == v.shape:
                return [ExternStep(m) for m in step.nodes]
    return [step]


def _group_shape(g: FusedGroup):
    return g.rows + g.cols if g.cols else getattr(g, "_flat_shape", g.rows)


def _join_or_new(node, dom, group_of, steps, graph):
    """A reduction joins the group of its elementwise producer when domains agree."""
    rows, cols = dom
    x = node.inputs[0]
    g = group_of.get(x.id)
    if g is not None and _compatible(g, rows, cols) and _is_last_group(g, steps):
        if not g.cols:
            g.rows, g.cols = rows, cols
        return g
    # a group already over the same domain (e.g. the second reduction of layer_norm)
    last = steps[-1] if steps else None
    if isinstance(last, FusedGroup) and last.cols == cols and last.rows == rows:
        return last
    g = FusedGroup(rows=rows, cols=cols)
    steps.append(g)
    return g


def _compatible(g, rows, cols) -> bool:
    if g.cols:
        return g.rows == rows and g.cols == cols
    return _group_shape(g) == rows + cols and all(n.outputs[0].shape == rows + cols for n in g.nodes)


def _is_last_group(g, steps) -> bool:
    # only the most recent step may grow, so execution order stays topological
    return bool(steps) and steps[-1] is g


def _find_group_for_elementwise(node, group_of, steps):
    out = node.outputs[0]
    cands = []
    for i in node.inputs:
        if isinstance(i, Value) and i.id in group_of:
            cands.append(group_of[i.id])
    for g in cands:
        if not _is_last_group(g, steps):  # only the newest step may grow: order stays topological
            continue
        if g.cols:
            cls = g.shape_class(out)
            if cls in ("full", "row") and _inputs_fit(node, g):
                return g
        elif _group_shape(g) == out.shape and _inputs_fit(node, g):
            return g
    return None


def _inputs_fit(node, g) -> bool:
    """Every tensor input either comes from ``g`` or broadcasts into its domain."""
    full = _group_shape(g)
    for i in node.inputs:
        if isinstance(i, Value) and len(i.shape) > len(full):
            return False
    return True


def _add(g: FusedGroup, node: Node, group_of) -> None:
    g.nodes.append(node)
    for o in node.outputs:
        group_of[o.id] = g


def _finalize_groups(steps, graph, group_of) -> None:
    """Work out each group's external inputs and which of its values must be stored."""
    needed_outside = {v.id for v in graph.outputs}
    needed_outside.update(b.id for _, b in graph.mutations)
    for s in steps:
        nodes = [s.node] if not isinstance(s, FusedGroup) else s.nodes
        for n in nodes:
            for i in n.inputs:
                if isinstance(i, Value):
                    g = group_of.get(i.id)
                    if g is not None and g is not s:
                        needed_outside.add(i.id)
    for s in steps:
        if not isinstance(s, FusedGroup):
            continue
        inside = {o.id for n in s.nodes for o in n.outputs}
        seen = set()
        for n in s.nodes:
            for i in n.inputs:
                if isinstance(i, Value) and i.id not in inside and i.id not in seen:
                    seen.add(i.id)
                    s.inputs.append(i)
        s.outputs = [o for n in s.nodes for o in n.outputs if o.id in needed_outside]
