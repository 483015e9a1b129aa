"""Render a fused group as the source of one Numba CPU kernel.

The scalar code of every node comes from its registry template, exactly as
in eager mode (``runtime/codegen_cpu.py``), so fused and eager kernels
compute the same expressions.  Layout of a kernel with reductions::

    for r in prange(R):                 # rows in parallel
        acc = init                      # each reduction: one pass over the row
        for j in range(K): acc = combine(acc, <inlined producers at [r, j]>)
        ... row-level ops on the reduced values ...
        for j in range(K): out[r, j] = <inlined producers>   # full-size outputs
        out_row[r] = ...
"""
from __future__ import annotations

import numpy as np

from ...ops.reductions import _SPECS
from ...runtime.codegen_cpu import HEADER, JIT_FLAGS, cast, np_name
from ..ir import Value
from ..schedule import FusedGroup
from .common import closure as _closure
from .common import full_shape as _full_shape
from .common import is_col as _is_col
from .common import literal, local_numbering, node_expr

_ACC = {"sum": "sum", "prod": "prod", "amax": "amax", "amin": "amin"}


class _Emitter:
    def __init__(self, group: FusedGroup, arg_of: dict, mode: str):
        self.g = group
        self.arg_of = arg_of  # value id -> (argname, shape class)
        self.mode = mode  # 'rows' | 'flat' | 'grid'
        self.local = {}  # value id -> local name, for values already computed at row level

    def full_index(self) -> str:
        return "[i]" if self.mode == "flat" else "[r, j]"

    def load(self, v: Value, level: str) -> str:
        arg, cls = self.arg_of[v.id]
        if cls == "row":
            return f"{arg}[r]"
        return f"{arg}{self.full_index()}"

    def node_expr(self, node, name_of) -> str:
        return node_expr(node, name_of)


_EXPENSIVE = ("exp32(", "tanh32(", "sigmoid32(", "math.")


def _expensive(node) -> bool:
    compute = node.meta.get("compute") or node.outputs[0].dtype
    return node.kind == "elementwise" and any(t in node.op.template(compute) for t in _EXPENSIVE)


def render_group(group: FusedGroup, kernel_name: str, parallel: bool):
    """Source text and argument plan of the kernel for ``group``.

    The plan lists, in argument order, ('in', value, shape class) and
    ('out', value, shape class); the executor prepares arrays accordingly.
    """
    full_shape = _full_shape(group)
    flat = not group.cols and all(v.shape == full_shape for v in group.inputs if isinstance(v, Value))
    mode = "flat" if flat else ("rows" if group.cols else "grid")
    plan = []
    arg_of = {}
    cols = group.cols if group.cols else full_shape[-1:]
    for k, v in enumerate(group.inputs):
        if group.cols and group.shape_class(v) == "row":
            cls = "row"
        elif mode != "flat" and _is_col(v.shape, full_shape, len(cols)):
            cls = "col"  # broadcast over rows (a weight or bias): 1-D and contiguous, indexed by j
        else:
            cls = "full"
        arg_of[v.id] = (f"in{k}", cls)
        plan.append(("in", v, cls))
    out_args = []
    for k, v in enumerate(group.outputs):
        cls = "row" if group.cols and group.shape_class(v) == "row" else "full"
        out_args.append((f"out{k}", v, cls))
        plan.append(("out", v, cls))
    em = _Emitter(group, arg_of, mode)
    L = local_numbering(group)
    internal = {o.id for n in group.nodes for o in n.outputs}
    full_ids = {o.id for n in group.nodes for o in n.outputs
                if n.name not in _ACC and (mode != "rows" or group.shape_class(o) == "full")}
    args = [f"in{k}" for k in range(len(group.inputs))] + [a for a, _, _ in out_args] + ["R", "K"]
    par = ", parallel=True" if parallel else ""
    # reassociation lets LLVM vectorize the row reductions (a compiled graph may reorder float
    # sums, as any fusing compiler does); no nnan/ninf: NaN and inf keep IEEE behaviour
    fm = ", fastmath={'reassoc', 'contract'}" if mode == "rows" else ""
    lines = [f"@njit({JIT_FLAGS}{fm}{par})", f"def {kernel_name}({', '.join(args)}):"]
    loop = "prange" if parallel else "range"

    def name_of_full(v):
        if v.id in internal:
            return f"v{L[v.id]}" if v.id in full_ids else em.local[v.id]
        arg, cls = arg_of[v.id]
        if cls == "col":
            return f"{arg}[j]"
        return f"{arg}[r]" if cls == "row" else f"{arg}{em.full_index()}"

    stored: set = set()  # transcendental full values kept in a per-row scratch buffer
    to_store: set = set()

    def emit_full(nodes, ind):
        out = []
        for n in nodes:
            oid = n.outputs[0].id
            if oid in stored:
                out.append(f"{ind}v{L[oid]} = s{L[oid]}[j]")
                continue
            out.append(f"{ind}v{L[oid]} = {em.node_expr(n, name_of_full)}")
            if oid in to_store:
                out.append(f"{ind}s{L[oid]}[j] = v{L[oid]}")
        return out

    if mode == "flat":
        lines.append(f"    for i in {loop}(R * K):")
        lines += emit_full(group.nodes, "        ")
        for a, v, _ in out_args:
            lines.append(f"        {a}[i] = v{L[v.id]}")
    elif mode == "grid":
        lines.append(f"    for r in {loop}(R):")
        lines.append("        for j in range(K):")
        lines += emit_full(group.nodes, "            ")
        for a, v, _ in out_args:
            lines.append(f"            {a}[r, j] = v{L[v.id]}")
    else:
        lines.append(f"    for r in {loop}(R):")
        ind = "        "
        # a transcendental needed by more than one column loop (softmax's exp) is computed once
        # per row into scratch and read back, instead of being recomputed in each loop
        loops = [_closure(group, [n.inputs[0]], full_ids) for n in group.nodes if n.name in _ACC]
        full_outs_all = [v for _, v, cls in out_args if cls == "full"]
        if full_outs_all:
            loops.append(_closure(group, full_outs_all, full_ids))
        uses: dict = {}
        for lp in loops:
            for n in lp:
                if _expensive(n):
                    uses[n.outputs[0].id] = uses.get(n.outputs[0].id, 0) + 1
        to_store.update(vid for vid, c in uses.items() if c > 1)
        for vid in sorted(to_store, key=lambda v: L[v]):
            o = next(o for n in group.nodes for o in n.outputs if o.id == vid)
            lines.append(f"{ind}s{L[vid]} = np.empty(K, dtype={np_name(o.dtype.numpy_dtype)})")
        for n in group.nodes:
            o = n.outputs[0]
            if n.name in _ACC:
                init, combine, finalize, pre, _ = _SPECS[n.name]
                src = n.inputs[0]
                acc_np = _acc_np(n.name, src.dtype)
                k = L[o.id]
                # max/min: a vectorizable select, with NaN (which must win) tracked on the side
                track_nan = n.name in ("amax", "amin") and np.dtype(acc_np).kind == "f"
                if n.name in ("amax", "amin"):
                    combine = ("rmax({acc}, {v})" if n.name == "amax" else "rmin({acc}, {v})")
                lines.append(f"{ind}acc{k} = {_init_literal(n.name, init, acc_np)}")
                if track_nan:
                    lines.append(f"{ind}nan{k} = False")
                lines.append(f"{ind}for j in range(K):")
                body = _closure(group, [src], full_ids, frozenset(stored))
                lines += emit_full(body, ind + "    ")
                stored.update(n.outputs[0].id for n in body if n.outputs[0].id in to_store)
                x = cast(name_of_full(src), src.dtype.numpy_dtype, acc_np)
                lines.append(f"{ind}    a{k} = {pre.format(x=x)}")
                lines.append(f"{ind}    acc{k} = {combine.format(acc=f'acc{k}', v=f'a{k}')}")
                if track_nan:
                    lines.append(f"{ind}    nan{k} |= a{k} != a{k}")
                fin = finalize.format(acc=f"acc{k}", n="K")
                if track_nan:
                    fin = f"({np_name(acc_np)}(np.nan) if nan{k} else {fin})"
                lines.append(f"{ind}v{k} = {cast(fin, acc_np, o.dtype.numpy_dtype)}")
                em.local[o.id] = f"v{k}"
            elif o.id not in full_ids:  # a row-level elementwise node
                lines.append(f"{ind}v{L[o.id]} = {em.node_expr(n, name_of_full)}")
                em.local[o.id] = f"v{L[o.id]}"
        full_outs = [(a, v) for a, v, cls in out_args if cls == "full"]
        if full_outs:
            lines.append(f"{ind}for j in range(K):")
            lines += emit_full(_closure(group, [v for _, v in full_outs], full_ids, frozenset(stored)),
                               ind + "    ")
            for a, v in full_outs:
                lines.append(f"{ind}    {a}[r, j] = v{L[v.id]}")
        for a, v, cls in out_args:
            if cls == "row":
                lines.append(f"{ind}{a}[r] = {em.local.get(v.id, f'v{L[v.id]}')}")
    return HEADER + "\n\n" + "\n".join(lines) + "\n", plan, mode


def _acc_np(kind, dtype):
    from ...ops.reductions import _acc_dtype
    return _acc_dtype(kind, dtype)


def _init_literal(kind, init, acc_np) -> str:
    if kind in ("amax", "amin") and np.dtype(acc_np).kind in "iub":
        info = np.iinfo(acc_np) if np.dtype(acc_np).kind != "b" else None
        v = (info.min if kind == "amax" else info.max) if info else (0 if kind == "amax" else 1)
        return literal(int(v), acc_np)
    return f"{np_name(acc_np)}({init})"
