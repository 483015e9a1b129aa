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

(with per-row scratch buffers, the rows run in chunks that allocate them once).
A group reducing its *leading* dims (a bias gradient) streams over the rows
instead, with one accumulator per column (per chunk of rows when parallel)::

    for r in range(R):
        for j in range(K): v = <producers at [r, j]>; out[r, j] = v; acc[j] += v

Every float expression is pinned to its node's dtype (:func:`typed`), and
float max/min reductions use ``llvm.maximum``/``llvm.minimum``
(``intrinsics.py``), so the column loops vectorize.
"""
from __future__ import annotations

import math

import numpy as np

from ...ops.reductions import _SPECS
from ...runtime.codegen_cpu import HEADER, JIT_FLAGS, cast, np_name
from ..ir import Value
from ..schedule import FusedGroup
from .common import closure as _closure
from .common import full_shape as _full_shape
from .common import is_col as _is_col
from .common import literal, local_numbering, node_expr
from .intrinsics import IMPORT_LINE as _INTRINSICS_IMPORT

_ACC = {"sum": "sum", "prod": "prod", "amax": "amax", "amin": "amin"}


class _Emitter:
    def __init__(self, group: FusedGroup, arg_of: dict, mode: str):
        self.g = group
        self.arg_of = arg_of  # value id -> (argname, shape class)
        self.mode = mode  # 'rows' | 'flat' | 'grid'
        self.local = {}  # value id -> local name, for values already computed at row level

    def full_index(self) -> str:
        return "[i]" if self.mode == "flat" else "[r, j]"

    def node_expr(self, node, name_of) -> str:
        return typed(node_expr(node, name_of), node.outputs[0].dtype.numpy_dtype)


def typed(expr: str, np_dtype) -> str:
    """``expr`` pinned to the node's float dtype.

    A template may mix in float64 constants (``... else math.nan``), and Numba then
    types the whole expression float64: every later node of a float32 chain would run
    in float64, at half the vector width, with conversions (a fused layer_norm +
    softmax ran its whole max and exp passes that way).  The value is the same, since
    the float32 branch is computed in float32 either way.
    """
    if np.dtype(np_dtype).kind == "f" and np.dtype(np_dtype).itemsize in (4, 8):
        return f"{np_name(np_dtype)}{expr}" if expr.startswith("(") and _balanced(expr) else \
            f"{np_name(np_dtype)}({expr})"
    return expr


def _balanced(expr: str) -> bool:
    """Is ``expr`` one parenthesized group (so ``T(expr)`` needs no extra parentheses)?"""
    depth = 0
    for k, ch in enumerate(expr):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and k != len(expr) - 1:
            return False
    return depth == 0


_EXPENSIVE = ("exp32(", "tanh32(", "sigmoid32(", "math.")


def _expensive(node) -> bool:
    compute = node.meta.get("compute") or node.outputs[0].dtype
    return node.kind == "elementwise" and any(t in node.op.template(compute) for t in _EXPENSIVE)


def _is_row_bcast(shape, full_shape) -> bool:
    """True if a value of ``shape`` varies only along the leading dims of ``full_shape`` (kept
    trailing 1: ``(B, S, 1)`` in a ``(B, S, K)`` domain), so it is read once per row."""
    if len(shape) > len(full_shape) or not full_shape or full_shape[-1] == 1:
        return False
    padded = (1,) * (len(full_shape) - len(shape)) + tuple(shape)
    return padded[-1] == 1 and padded[:-1] == tuple(full_shape[:-1]) and any(d != 1 for d in full_shape[:-1])


# an outer (column) reduction with more columns runs on one thread: per-chunk partials of a
# (3, 1000, 700) sum over dim 0 (3 x 700K float64) took 1.8 ms, one thread 0.5 ms (eager 0.7)
_MAX_PARALLEL_COLS = 1 << 16

# rows are split into this many chunks when a kernel needs per-row scratch: each chunk
# allocates its buffers once (an allocation costs ~35 ns, a quarter of a 128-wide softmax row)
_CHUNKS = 16


def render_group(group: FusedGroup, kernel_name: str, parallel: bool):
    """Source text and argument plan of the kernel for ``group``.

    The plan lists, in argument order, ('in', value, shape class) and
    ('out', value, shape class); the executor prepares arrays accordingly.
    """
    if group.cols and group.axis == "outer":
        return _render_outer(group, kernel_name, parallel)
    full_shape = _full_shape(group)
    flat = not group.cols and all(v.shape == full_shape for v in group.inputs if isinstance(v, Value))
    mode = "flat" if flat else ("rows" if group.cols else "grid")
    plan = []
    arg_of = {}
    cols = group.cols if group.cols else full_shape[-1:]
    for k, v in enumerate(group.inputs):
        if mode != "flat" and v.numel == 1:
            cls = "one"  # a 0-d or one-element tensor: a scalar, readable at row level too
        elif group.cols and group.shape_class(v) == "row":
            cls = "row"
        elif mode == "grid" and _is_row_bcast(v.shape, full_shape):
            cls = "row"  # e.g. a per-row statistic (B, S, 1) broadcast over the last dim
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
    head = [f"@njit({JIT_FLAGS}{fm}{par})", f"def {kernel_name}({', '.join(args)}):"]
    loop = "prange" if parallel else "range"

    def name_of_full(v):
        if v.id in internal:
            return f"v{L[v.id]}" if v.id in full_ids else em.local[v.id]
        arg, cls = arg_of[v.id]
        if cls == "col":
            return f"{arg}[j]"
        if cls == "one":
            return f"{arg}[0]"
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

    lines = []
    if mode == "flat":
        lines.append(f"    for i in {loop}(R * K):")
        lines += emit_full(group.nodes, "        ")
        for a, v, _ in out_args:
            lines.append(f"        {a}[i] = v{L[v.id]}")
        return _module(head + lines), plan, mode
    if mode == "grid":
        lines.append(f"    for r in {loop}(R):")
        lines.append("        for j in range(K):")
        lines += emit_full(group.nodes, "            ")
        for a, v, _ in out_args:
            lines.append(f"            {a}[r, j] = v{L[v.id]}")
        return _module(head + lines), plan, mode

    # rows mode: the body of one row, at indentation ``ind``; wrapped in the row loop below
    ind = "        "
    body = []
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
    scratch = []
    for vid in sorted(to_store, key=lambda v: L[v]):
        o = next(o for n in group.nodes for o in n.outputs if o.id == vid)
        scratch.append(f"s{L[vid]} = np.empty(K, dtype={np_name(o.dtype.numpy_dtype)})")
    uses_intrinsics = False
    for n in group.nodes:
        o = n.outputs[0]
        if n.name in _ACC:
            init, combine, finalize, pre, _ = _SPECS[n.name]
            src = n.inputs[0]
            acc_np = _acc_np(n.name, src.dtype)
            k = L[o.id]
            float_minmax = n.name in ("amax", "amin") and np.dtype(acc_np).kind == "f"
            if float_minmax:
                # llvm.maximum/minimum: NaN-propagating like eager's amax, and vectorized
                combine = "fmaximum({acc}, {v})" if n.name == "amax" else "fminimum({acc}, {v})"
                uses_intrinsics = True
            elif n.name in ("amax", "amin"):
                combine = "rmax({acc}, {v})" if n.name == "amax" else "rmin({acc}, {v})"
            body.append(f"{ind}acc{k} = {_init_literal(n.name, init, acc_np)}")
            body.append(f"{ind}for j in range(K):")
            loop_nodes = _closure(group, [src], full_ids, frozenset(stored))
            body += emit_full(loop_nodes, ind + "    ")
            stored.update(m.outputs[0].id for m in loop_nodes if m.outputs[0].id in to_store)
            x = cast(name_of_full(src), src.dtype.numpy_dtype, acc_np)
            body.append(f"{ind}    a{k} = {pre.format(x=x)}")
            body.append(f"{ind}    acc{k} = {combine.format(acc=f'acc{k}', v=f'a{k}')}")
            fin = finalize.format(acc=f"acc{k}", n="K")
            body.append(f"{ind}v{k} = {cast(fin, acc_np, o.dtype.numpy_dtype)}")
            em.local[o.id] = f"v{k}"
        elif o.id not in full_ids:  # a row-level elementwise node
            body.append(f"{ind}v{L[o.id]} = {em.node_expr(n, name_of_full)}")
            em.local[o.id] = f"v{L[o.id]}"
    full_outs = [(a, v) for a, v, cls in out_args if cls == "full"]
    if full_outs:
        body.append(f"{ind}for j in range(K):")
        body += emit_full(_closure(group, [v for _, v in full_outs], full_ids, frozenset(stored)), ind + "    ")
        for a, v in full_outs:
            body.append(f"{ind}    {a}[r, j] = v{L[v.id]}")
    for a, v, cls in out_args:
        if cls == "row":
            body.append(f"{ind}{a}[r] = {em.local.get(v.id, f'v{L[v.id]}')}")
    if not scratch:
        lines.append(f"    for r in {loop}(R):")
        lines += body
    elif parallel:
        # chunks of rows in parallel; each chunk allocates its scratch once
        lines.append(f"    n_chunks = min(R, {_CHUNKS})")
        lines.append("    for c in prange(n_chunks):")
        lines += [f"        {s}" for s in scratch]
        lines.append("        for r in range(c * R // n_chunks, (c + 1) * R // n_chunks):")
        lines += ["    " + b for b in body]
    else:
        lines += [f"    {s}" for s in scratch]
        lines.append("    for r in range(R):")
        lines += body
    return _module(head + lines, uses_intrinsics), plan, mode


def _render_outer(group: FusedGroup, kernel_name: str, parallel: bool):
    """A column-reduction kernel: stream over the rows, one accumulator per column.

    Every node is full-size except the reductions; a reduction's accumulators are a
    K-vector (per chunk of rows when the rows run in parallel, combined at the end),
    so the column loop vectorizes.
    """
    # threads take chunks of rows, each with a K-long partial accumulator combined at the end;
    # with few rows or very many columns that costs more than it saves: one thread then
    parallel = parallel and math.prod(group.rows) >= _CHUNKS and math.prod(group.cols) <= _MAX_PARALLEL_COLS
    full_shape = group.rows + group.cols
    nc = len(group.cols)
    plan, arg_of = [], {}
    for k, v in enumerate(group.inputs):
        if v.shape == full_shape:
            cls = "full"
        elif v.numel == 1:
            cls = "one"
        elif group.shape_class(v) == "col" or _is_col(v.shape, full_shape, nc):
            cls = "col"
        elif _is_lead(v.shape, full_shape, nc):
            cls = "row"
        else:
            cls = "full"  # any other broadcast: the executor expands it to the full domain
        arg_of[v.id] = (f"in{k}", cls)
        plan.append(("in", v, cls))
    out_args = []
    for k, v in enumerate(group.outputs):
        cls = "col" if group.shape_class(v) == "col" else "full"
        out_args.append((f"out{k}", v, cls))
        plan.append(("out", v, cls))
    L = local_numbering(group)
    internal = {o.id for n in group.nodes for o in n.outputs}

    def name_of(v):
        if v.id in internal:
            return f"v{L[v.id]}"
        arg, cls = arg_of[v.id]
        return {"col": f"{arg}[j]", "row": f"{arg}[r]", "one": f"{arg}[0]"}.get(cls, f"{arg}[r, j]")

    args = [f"in{k}" for k in range(len(group.inputs))] + [a for a, _, _ in out_args] + ["R", "K"]
    par = ", parallel=True" if parallel else ""
    lines = [f"@njit({JIT_FLAGS}, fastmath={{'reassoc', 'contract'}}{par})",
             f"def {kernel_name}({', '.join(args)}):"]
    reds = [n for n in group.nodes if n.name in _ACC]
    specs = {}  # reduction output id -> (init literal, combine template, accumulator dtype)
    uses_intrinsics = False
    for n in reds:
        init, combine, _, pre, _ = _SPECS[n.name]
        acc_np = _acc_np(n.name, n.inputs[0].dtype)
        if n.name in ("amax", "amin"):
            if np.dtype(acc_np).kind == "f":
                combine = "fmaximum({acc}, {v})" if n.name == "amax" else "fminimum({acc}, {v})"
                uses_intrinsics = True
            else:
                combine = "rmax({acc}, {v})" if n.name == "amax" else "rmin({acc}, {v})"
        specs[n.outputs[0].id] = (_init_literal(n.name, init, acc_np), combine, pre, acc_np)
    ind = "            "
    body = []
    for n in group.nodes:
        o = n.outputs[0]
        if n.name in _ACC:
            init, combine, pre, acc_np = specs[o.id]
            src = n.inputs[0]
            k = L[o.id]
            x = cast(name_of(src), src.dtype.numpy_dtype, acc_np)
            body.append(f"{ind}a{k} = {pre.format(x=x)}")
            body.append(f"{ind}p{k}[c, j] = {combine.format(acc=f'p{k}[c, j]', v=f'a{k}')}")
        else:
            body.append(f"{ind}v{L[o.id]} = {typed(node_expr(n, name_of), o.dtype.numpy_dtype)}")
    for a, v, cls in out_args:
        if cls == "full":
            body.append(f"{ind}{a}[r, j] = v{L[v.id]}")
    finals = []  # (output arg, reduction output value) of the per-column results
    for a, v, cls in out_args:
        if cls == "col":
            finals.append((a, v))

    def final_value(v, acc):
        _, _, finalize, _, _ = _SPECS[v.producer.name]
        return cast(finalize.format(acc=acc, n="R"), specs[v.id][3], v.dtype.numpy_dtype)

    lines.append(f"    n_chunks = max(min(R, {_CHUNKS}), 1)" if parallel else "    n_chunks = 1")
    for n in reds:
        k = L[n.outputs[0].id]
        lines.append(f"    p{k} = np.empty((n_chunks, K), dtype={np_name(specs[n.outputs[0].id][3])})")
    lines.append(f"    for c in {'prange' if parallel else 'range'}(n_chunks):")
    for n in reds:
        k = L[n.outputs[0].id]
        lines.append("        for j in range(K):")
        lines.append(f"            p{k}[c, j] = {specs[n.outputs[0].id][0]}")
    lines.append("        for r in range(c * R // n_chunks, (c + 1) * R // n_chunks):")
    lines.append("            for j in range(K):")
    lines += ["    " + b for b in body]
    for a, v in finals:
        k = L[v.id]
        combine = specs[v.id][1]
        lines.append("    for j in range(K):")
        lines.append(f"        t = p{k}[0, j]")
        lines.append("        for c in range(1, n_chunks):")
        lines.append(f"            t = {combine.format(acc='t', v=f'p{k}[c, j]')}")
        lines.append(f"        {a}[j] = {final_value(v, 't')}")
    return _module(lines, uses_intrinsics), plan, "outer"


def _is_lead(shape, full_shape, n_cols) -> bool:
    """True if a value of ``shape`` varies only along the leading (row) dims of ``full_shape``."""
    if len(shape) > len(full_shape):
        return False
    padded = (1,) * (len(full_shape) - len(shape)) + tuple(shape)
    nr = len(full_shape) - n_cols
    return all(d == 1 for d in padded[nr:]) and padded[:nr] == tuple(full_shape[:nr])


def _module(lines, uses_intrinsics: bool = False) -> str:
    header = HEADER + (_INTRINSICS_IMPORT if uses_intrinsics else "")
    return header + "\n\n" + "\n".join(lines) + "\n"


def _acc_np(kind, dtype):
    from ...ops.reductions import _acc_dtype
    return _acc_dtype(kind, dtype)


def _init_literal(kind, init, acc_np) -> str:
    if kind in ("amax", "amin") and np.dtype(acc_np).kind in "iub":
        info = np.iinfo(acc_np) if np.dtype(acc_np).kind != "b" else None
        v = (info.min if kind == "amax" else info.max) if info else (0 if kind == "amax" else 1)
        return literal(int(v), acc_np)
    return f"{np_name(acc_np)}({init})"
