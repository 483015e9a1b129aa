"""What the CPU and CUDA renderers of a fused group share.

Both expand each node's registry template into one scalar expression
(:func:`node_expr`), number a group's values the same way (so identical groups
render identical source and share one compiled kernel), and decide which nodes
a column loop must recompute (:func:`closure`).  Only the loops around the
expressions differ: ``codegen/cpu.py`` writes Numba CPU loops, ``codegen/cuda.py``
grid-stride and block-per-row numba.cuda kernels.
"""
from __future__ import annotations

import math

import numpy as np

from ...runtime.codegen_common import cast, np_name
from ..ir import Value
from ..schedule import FusedGroup


def full_shape(group: FusedGroup) -> tuple:
    """The iteration domain of ``group``: rows + cols, or the shape of a purely elementwise group."""
    return group.rows + group.cols if group.cols else getattr(group, "_flat_shape", group.rows)


def literal(value, np_dtype, nan: str = "np.nan", inf: str = "np.inf") -> str:
    """A Python scalar as typed source text (constants live in the source, never in globals).

    ``nan``/``inf`` are the spellings the target's kernels understand (CUDA kernels
    have no ``np.nan``; they write ``math.nan``).
    """
    t = np_name(np_dtype)
    if isinstance(value, (bool, np.bool_)):
        return "True" if value else "False"
    if isinstance(value, float) or np.dtype(np_dtype).kind == "f":
        v = float(value)
        if math.isnan(v):
            return f"{t}({nan})"
        if math.isinf(v):
            return f"{t}({'-' if v < 0 else ''}{inf})"
        return f"{t}({v!r})"
    return f"{t}({int(value)})"


def node_expr(node, name_of, lit=literal) -> str:
    """The scalar expression computing ``node``'s output from its operands' names (``name_of(value)``)."""
    compute = node.meta.get("compute") or node.outputs[0].dtype
    cnp = compute.numpy_dtype
    operands = []
    for i in node.inputs:
        if isinstance(i, Value):
            operands.append(cast(name_of(i), i.dtype.numpy_dtype, cnp))
        else:
            operands.append(lit(i, cnp))
    expr = node.op.template(compute).format(*operands, T=np_name(cnp))
    res_dt = np.dtype(bool) if node.op.dtype_rule == "bool" else cnp
    return cast(f"({expr})", res_dt, node.outputs[0].dtype.numpy_dtype)


def local_numbering(group: FusedGroup) -> dict:
    """value id -> local index, by position in the group (not by graph id), so that
    identical groups render identical source (and share one compiled kernel)."""
    return {o.id: k for k, o in enumerate(o for n in group.nodes for o in n.outputs)}


def closure(group: FusedGroup, targets, full_ids, stop=frozenset()):
    """Full-level nodes needed (in order) to compute ``targets`` inside a column loop.

    Values in ``stop`` (already stored in a row scratch buffer) are included but
    their producers' inputs are not followed.
    """
    need = set()
    stack = list(targets)
    producers = {o.id: n for n in group.nodes for o in n.outputs}
    while stack:
        v = stack.pop()
        if v.id in need or v.id not in full_ids:
            continue
        need.add(v.id)
        if v.id in stop:
            continue
        for i in producers[v.id].inputs:
            if isinstance(i, Value) and i.id in producers:
                stack.append(i)
    return [n for n in group.nodes if n.outputs[0].id in need]


def is_col(shape, full_shape, n_cols) -> bool:
    """True if a value of ``shape`` varies only along the last ``n_cols`` dims of ``full_shape``."""
    if not n_cols or len(shape) > len(full_shape):
        return False
    padded = (1,) * (len(full_shape) - len(shape)) + tuple(shape)
    lead = padded[:len(full_shape) - n_cols]
    return all(d == 1 for d in lead) and padded[len(full_shape) - n_cols:] == tuple(full_shape[-n_cols:]) \
        and any(d != 1 for d in full_shape[:len(full_shape) - n_cols])
