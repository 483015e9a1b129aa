"""Group graph nodes into kernels.

Three kinds of step:
- ``FusedGroup``: elementwise nodes and the reductions that consume them over
  one iteration domain ``rows x cols``.

  * ``axis == "inner"`` (row reductions): a reduction over the trailing dims of a
    ``(R..., K...)`` tensor gives rows ``R`` and columns ``K``; elementwise nodes of
    shape ``R + K`` ("full") or ``R`` ("row", e.g. ``mean = sum / n``) join it.
    The generated kernel loops over rows (in parallel) and, inside a row, runs
    each reduction's column loop and then one loop writing the full-size
    outputs, so no intermediate that only the group reads is stored.
  * ``axis == "outer"`` (column reductions, CPU only): reductions over the leading
    dims (a bias gradient summed over the batch) with the full-size elementwise
    nodes that feed them; the kernel accumulates one value per column while it
    streams over the rows.
  * purely elementwise groups have ``cols == ()``.
- ``ViewStep``: reshape/permute/expand/slice — metadata only at run time.
- ``ExternStep``: any other primitive (matmul/BLAS, indexing, sorting...) runs
  its registry implementation.

A node joins an existing group when its domain fits and every input it reads
from outside the group is computed by an earlier step: the group then still
runs at its place in the step list, with all its inputs ready.  Candidates are
the groups computing its inputs and the groups already reading the same
inputs (siblings: ``x * w`` and ``x * g`` read ``x`` once).
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
    cols: tuple  # the column shape K; () for purely elementwise groups
    nodes: list = field(default_factory=list)
    inputs: list = field(default_factory=list)  # external Values read
    outputs: list = field(default_factory=list)  # Values written (needed outside the group)
    axis: str = "inner"  # which dims the reductions reduce: 'inner' (cols) or 'outer' (rows)

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
        """'full' (rows+cols), 'row' (rows, maybe with kept 1-dims), 'col' (cols, in an outer group) or
        'bcast'."""
        full = self.rows + self.cols
        if v.shape == full:
            return "full"
        if self.axis == "outer":
            if v.shape == self.cols or v.shape == (1,) * len(self.rows) + self.cols:
                return "col"
            return "bcast"
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


# the fused kernel generators compute in the storage dtype: half types run as extern (eager) steps
_HALF = ("float16", "bfloat16")


def _on_cpu(node: Node) -> bool:
    return all(getattr(o.device, "type", "cpu") == "cpu" for o in node.outputs)


def _reduction_domain(node: Node):
    """(axis, rows, cols) if ``node`` reduces the trailing dims of its input ('inner') or, on CPU,
    the leading dims ('outer'); else None."""
    if node.name not in REDUCTIONS:
        return None
    x = node.inputs[0]
    dims = tuple(node.attrs["dims"])
    nd = len(x.shape)
    if not dims or x.dtype.name in _HALF or len(node.outputs) != 1:
        return None
    if math.prod(x.shape[d] for d in dims) == 1:
        return None  # reduces nothing: its result has the full shape, and runs as an eager step
    if dims == tuple(range(nd - len(dims), nd)):
        return "inner", x.shape[:nd - len(dims)], x.shape[nd - len(dims):]
    if dims == tuple(range(len(dims))) and _on_cpu(node):
        return "outer", x.shape[:len(dims)], x.shape[len(dims):]
    return None


def _fusible_elementwise(node: Node) -> bool:
    return node.kind == "elementwise" and all(o.dtype.name not in _HALF for o in node.outputs) and all(
        not isinstance(i, Value) or i.dtype.name not in _HALF for i in node.inputs)


class _Scheduler:
    def __init__(self, graph: Graph):
        self.graph = graph
        self.steps: list = []
        self.pos: dict[int, int] = {}  # id(step) -> its index in ``steps``
        self.step_of: dict[int, object] = {}  # value id -> the step computing it
        self.group_of: dict[int, FusedGroup] = {}  # value id -> the group computing it
        self.readers: dict[int, list] = {}  # value id -> groups that read it

    # -- bookkeeping ------------------------------------------------------------------------------
    def _append(self, step):
        self.pos[id(step)] = len(self.steps)
        self.steps.append(step)
        return step

    def _add(self, g: FusedGroup, node: Node) -> None:
        g.nodes.append(node)
        for o in node.outputs:
            self.group_of[o.id] = g
            self.step_of[o.id] = g
        for i in node.inputs:
            if isinstance(i, Value):
                lst = self.readers.setdefault(i.id, [])
                if not lst or lst[-1] is not g:
                    lst.append(g)

    def _ready_before(self, node: Node, g: FusedGroup) -> bool:
        """Is every input of ``node`` from outside ``g`` computed by a step before ``g``?"""
        p = self.pos[id(g)]
        for i in node.inputs:
            if isinstance(i, Value):
                s = self.step_of.get(i.id)
                if s is not None and s is not g and self.pos[id(s)] > p:
                    return False
        return True

    def _candidates(self, node: Node) -> list:
        """Producer groups of the inputs (newest first), then groups reading the same inputs."""
        if node.meta.get("random") or node.meta.get("effect"):
            # never moved before another step: only the newest step may take it
            last = self.steps[-1] if self.steps else None
            return [last] if isinstance(last, FusedGroup) else []
        seen, out = set(), []
        vals = [i for i in node.inputs if isinstance(i, Value)]
        for i in vals:
            g = self.group_of.get(i.id)
            if g is not None and id(g) not in seen:
                seen.add(id(g))
                out.append(g)
        out.sort(key=lambda g: -self.pos[id(g)])
        for i in vals:
            for g in reversed(self.readers.get(i.id, ())):
                if id(g) not in seen:
                    seen.add(id(g))
                    out.append(g)
        return out

    # -- the pass ---------------------------------------------------------------------------------
    def run(self) -> list:
        self.graph.rebuild_users()
        for node in self.graph.nodes:
            if node.name in VIEW_OPS:
                self._place_other(ViewStep(node))
            elif (dom := _reduction_domain(node)) is not None:
                self._place_reduction(node, dom)
            elif _fusible_elementwise(node):
                self._place_elementwise(node)
            else:
                self._place_other(ExternStep(node))
        steps = [s for g in self.steps for s in _split_if_ambiguous(g)]
        _finalize_groups(steps, self.graph, self.group_of)
        return steps

    def _place_other(self, step) -> None:
        self._append(step)
        for o in step.node.outputs:
            self.step_of[o.id] = step

    def _place_reduction(self, node: Node, dom) -> None:
        axis, rows, cols = dom
        x = node.inputs[0]
        for g in self._candidates(node):
            if not self._ready_before(node, g):
                continue
            if g.cols and g.axis == axis and g.rows == rows and g.cols == cols:
                if axis == "outer" and self.group_of.get(x.id) is g and g.shape_class(x) != "full":
                    continue  # an outer kernel reduces full-size values only
                self._add(g, node)
                return
            if not g.cols and self.group_of.get(x.id) is g and _all_full(g, rows + cols):
                g.rows, g.cols, g.axis = rows, cols, axis  # an elementwise chain grows its reduction
                self._add(g, node)
                return
        g = self._append(FusedGroup(rows=rows, cols=cols, axis=axis))
        self._add(g, node)

    def _place_elementwise(self, node: Node) -> None:
        out = node.outputs[0]
        for g in self._candidates(node):
            if not self._ready_before(node, g):
                continue
            if self._fits(node, g) or _promote_to_rows(g, node):
                self._add(g, node)
                return
        g = self._append(FusedGroup(rows=out.shape[:-1] if out.shape else (), cols=()))
        g._flat_shape = out.shape
        self._add(g, node)

    def _fits(self, node: Node, g: FusedGroup) -> bool:
        out = node.outputs[0]
        full = _group_shape(g)
        if any(isinstance(i, Value) and len(i.shape) > len(full) for i in node.inputs):
            return False
        if not g.cols:
            return full == out.shape
        cls = g.shape_class(out)
        if g.axis == "outer":
            # full-size nodes only, and none may read a reduced (per-column) value of the group
            return cls == "full" and all(
                not (isinstance(i, Value) and self.group_of.get(i.id) is g and g.shape_class(i) != "full")
                for i in node.inputs)
        if cls == "row":
            # a per-row node runs outside the column loop: it may read per-row values and scalars only
            return all(_row_readable(g, i) for i in node.inputs)
        return cls == "full"


def _row_readable(g: FusedGroup, v) -> bool:
    if not isinstance(v, Value) or v.numel == 1:
        return True
    return g.shape_class(v) == "row"


def schedule(graph: Graph) -> list:
    """Partition nodes into steps in a valid execution order."""
    return _Scheduler(graph).run()


def _promote_to_rows(g: FusedGroup, node: Node) -> bool:
    """Turn elementwise group ``g`` into a row group (cols = last dim) so that ``node`` fits in it.

    A per-row value (``(B, S, 1)``) next to full-size ones (``(B, S, K)``), as in softmax's
    backward, otherwise splits the chain into kernels that store and re-read the full-size
    values: in a row group it is computed once per row.  Works both ways: a full-size node
    joining a group of per-row nodes, or a per-row node joining full-size ones.
    """
    if g.cols or not g.nodes:
        return False
    out = node.outputs[0].shape
    shape = _group_shape(g)
    if not all(n.outputs[0].shape == shape for n in g.nodes):
        return False
    if len(shape) >= 2 and shape[-1] > 1 and out == shape[:-1] + (1,):
        rows, cols, per_row = shape[:-1], shape[-1:], [node]  # ``node`` is per-row in g's domain
    elif len(out) >= 2 and out[-1] > 1 and shape == out[:-1] + (1,) and all(
            not isinstance(i, Value) or len(i.shape) <= len(out) for i in node.inputs):
        rows, cols, per_row = out[:-1], out[-1:], g.nodes  # g's nodes are per-row in ``node``'s domain
    else:
        return False
    probe = FusedGroup(rows=rows, cols=cols)
    if not all(_row_readable(probe, i) or i.producer in g.nodes for n in per_row for i in n.inputs):
        return False
    g.rows, g.cols, g.axis = rows, cols, "inner"
    return True


def _all_full(g: FusedGroup, shape) -> bool:
    return _group_shape(g) == shape and all(n.outputs[0].shape == shape for n in g.nodes)


def _split_if_ambiguous(step) -> list:
    """A row group whose full-size ops read a value shaped exactly like the rows.

    Broadcasting aligns such a value with the *last* dims (``(R,)`` against ``(R, K)``
    needs R == K, or size-1 dims), so in a full-size op it is indexed by column, while
    the kernel's 'row' operands are indexed by row.  The group then runs node by node
    with the eager kernels instead.  (Outer groups index every operand by NumPy's own
    broadcasting rule and need no such check.)
    """
    if not isinstance(step, FusedGroup) or not step.cols or step.axis != "inner" or not step.rows:
        return [step]
    full = step.rows + step.cols
    for n in step.nodes:
        if not n.outputs or n.outputs[0].shape != full:
            continue
        if any(isinstance(v, Value) and v.shape == step.rows for v in n.inputs):
            return [ExternStep(m) for m in step.nodes]
    return [step]


def _group_shape(g: FusedGroup):
    return g.rows + g.cols if g.cols else getattr(g, "_flat_shape", g.rows)


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
