"""Render a fused group as the source of one numba.cuda kernel.

Same groups, same scalar expressions (``codegen/common.py``: the registry's
templates) and same math helpers as the eager CUDA kernels
(``runtime/cuda/codegen.py``'s header), only other loops:

- a purely elementwise group is a grid-stride loop over its ``n`` elements::

      i = cuda.grid(1)
      while i < n:
          x0 = in0[i]; x1 = in1[i % m1]       # loads, one per input
          v0 = ...; v1 = ...                  # the fused expressions
          out0[i] = v1
          i += cuda.gridsize(1)

- a group with reductions over the trailing dims (softmax, layer_norm, mean/var,
  log_softmax) runs one block per row (grid-stride over rows).  Each reduction
  is a column loop in which the block's threads stride over the row (coalesced
  reads), followed by a tree reduction in shared memory (finished with warp
  shuffles on a GPU) whose result every thread reads back; row-level ops then
  run on the reduced values, and a last column loop writes the full-size
  outputs.  Producers are recomputed inside each column loop instead of being
  stored (on a GPU, re-reading a row that is still in L1/L2 and recomputing an
  ``exp`` is cheaper than a round trip through global memory).

Kernel arguments follow the eager kernels' convention (``dispatch_cache``): arrays
are typed pointers indexed from their first element, sizes and strides int64.
How each input is indexed is its *kind*, chosen from the array's layout at run
time (:class:`Layout`): ``c`` contiguous over the whole domain, ``one`` a single
element, ``row``/``col`` a contiguous vector over the rows/columns,
``tail``/``head`` (elementwise groups) a contiguous array broadcast over leading
or trailing dims, ``s`` anything else, through element strides over the
(coalesced) domain.  Outputs are always fresh contiguous arrays.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...runtime.codegen_common import cast, np_name
from ...runtime.cuda.codegen import DECORATOR, HEADER, load, memory_dtype, store
from ...runtime.cuda.reduce import spec_for
from ..schedule import FusedGroup
from .common import closure, full_shape, literal, local_numbering, node_expr

REDUCTIONS = ("sum", "prod", "amax", "amin")
_LEVEL_TOP = ("one",)  # loaded once per thread, before any loop
_LEVEL_ROW = ("row",)  # loaded once per row


@dataclass(frozen=True)
class Layout:
    """How the kernel indexes its inputs (the part of the source that depends on array layouts).

    ``kinds``: per input one of ``c one row col tail head s``; ``nd``: for elementwise
    groups ``(dims,)`` of the strided unravel, for row groups ``(row dims, col dims)``;
    ``threads``: the block size of a row kernel (fixed in the source: it sizes the
    shared-memory tree); ``shuffle``: finish block reductions with warp shuffles
    (a GPU has them, the simulator does not).
    """

    mode: str  # 'flat' | 'rows'
    kinds: tuple
    nd: tuple
    threads: int = 0
    shuffle: bool = False


def cuda_literal(value, np_dtype) -> str:
    return literal(value, np_dtype, nan="math.nan", inf="math.inf")


def _expr(node, name_of) -> str:
    return node_expr(node, name_of, cuda_literal)


def render(group: FusedGroup, name: str, layout: Layout):
    """(source, launch parameters) of the kernel for ``group`` with inputs laid out as ``layout``.

    Parameters are ``dispatch_cache`` specs: ``("i64",)`` or ``("ptr", memory dtype)``.
    """
    if layout.mode == "flat":
        return _render_flat(group, name, layout)
    return _render_rows(group, name, layout)


def _in_dt(v):
    return v.dtype.numpy_dtype


def _head_params(group, layout, lead):
    """The parameter names and specs up to and including the inputs."""
    names = list(lead)
    specs = [("i64",)] * len(lead)
    for k, v in enumerate(group.inputs):
        kind = layout.kinds[k]
        names.append(f"in{k}")
        specs.append(("ptr", memory_dtype(_in_dt(v))))
        if kind == "tail":
            extra = [f"m{k}"]
        elif kind == "head":
            extra = [f"d{k}"]
        elif kind == "s" and layout.mode == "flat":
            extra = [f"in{k}_{d}" for d in range(layout.nd[0])]
        elif kind == "s":
            extra = [f"in{k}_r{d}" for d in range(layout.nd[0])] + [f"in{k}_c{d}" for d in range(layout.nd[1])]
        else:
            extra = []
        names += extra
        specs += [("i64",)] * len(extra)
    for k, v in enumerate(group.outputs):
        names.append(f"out{k}")
        specs.append(("ptr", memory_dtype(v.dtype.numpy_dtype)))
    return names, specs


def _unravel(ind, var, prefix, sizes) -> list:
    """Lines splitting flat index ``var`` into coordinates ``<prefix>0..`` over ``sizes`` (C order)."""
    n = len(sizes)
    if n == 0:
        return []
    if n == 1:
        return [f"{ind}{prefix}0 = {var}"]
    lines = [f"{ind}q = {var}"]
    for d in reversed(range(1, n)):
        lines += [f"{ind}{prefix}{d} = q % {sizes[d]}", f"{ind}q = q // {sizes[d]}"]
    lines.append(f"{ind}{prefix}0 = q")
    return lines


def _dot(prefix, strides) -> str:
    terms = [f"{prefix}{d} * {s}" for d, s in enumerate(strides)]
    return " + ".join(terms) if terms else "0"


def _load_line(ind, k, v, ref) -> str:
    dt = _in_dt(v)
    return f"{ind}x{k} = {load(f'in{k}[{ref}]', dt, dt)}"


def _top_loads(group, layout, ind) -> list:
    return [_load_line(ind, k, v, "0") for k, v in enumerate(group.inputs) if layout.kinds[k] in _LEVEL_TOP]


def _render_flat(group, name, layout):
    nd = layout.nd[0]
    strided = "s" in layout.kinds
    dims = [f"s{d}" for d in range(nd)] if strided else []
    names, specs = _head_params(group, layout, ["n"] + dims)
    L = local_numbering(group)
    internal = set(L)
    arg_index = {v.id: k for k, v in enumerate(group.inputs)}

    def name_of(v):
        return f"v{L[v.id]}" if v.id in internal else f"x{arg_index[v.id]}"

    lines = [DECORATOR, f"def {name}({', '.join(names)}):"]
    lines += _top_loads(group, layout, "    ")
    lines += ["    i = cuda.grid(1)", "    step = cuda.gridsize(1)", "    while i < n:"]
    ind = "        "
    if strided:
        lines += _unravel(ind, "i", "c", dims)
    for k, v in enumerate(group.inputs):
        kind = layout.kinds[k]
        if kind in _LEVEL_TOP:
            continue
        ref = {"c": "i", "tail": f"i % m{k}", "head": f"i // d{k}"}.get(kind)
        if kind == "s":
            ref = _dot("c", [f"in{k}_{d}" for d in range(nd)])
        lines.append(_load_line(ind, k, v, ref))
    for n in group.nodes:
        lines.append(f"{ind}v{L[n.outputs[0].id]} = {_expr(n, name_of)}")
    for k, v in enumerate(group.outputs):
        dt = v.dtype.numpy_dtype
        lines.append(f"{ind}{store(f'out{k}[i]', f'v{L[v.id]}', dt, dt)}")
    lines.append(f"{ind}i += step")
    return HEADER + "\n\n" + "\n".join(lines) + "\n", specs


def _render_rows(group, name, layout):
    ndr, ndc = layout.nd
    strided = "s" in layout.kinds
    rdims = [f"rs{d}" for d in range(ndr)] if strided else []
    cdims = [f"cs{d}" for d in range(ndc)] if strided else []
    names, specs = _head_params(group, layout, ["R", "K"] + rdims + cdims)
    T = layout.threads
    L = local_numbering(group)
    internal = set(L)
    arg_index = {v.id: k for k, v in enumerate(group.inputs)}
    full_ids = {o.id for n in group.nodes for o in n.outputs
                if n.name not in REDUCTIONS and group.shape_class(o) == "full"}
    specs_of = {n.outputs[0].id: spec_for(n.name, n.inputs[0].dtype.numpy_dtype)
                for n in group.nodes if n.name in REDUCTIONS}
    kinds = layout.kinds

    def name_of(v):
        return f"v{L[v.id]}" if v.id in internal else f"x{arg_index[v.id]}"

    def column_loop(ind, body_nodes, extra_values, tail_lines):
        """``j`` strides over the row; loads what the body reads, computes it, then ``tail_lines``."""
        used = []
        for v in [i for n in body_nodes for i in n.inputs] + list(extra_values):
            k = arg_index.get(getattr(v, "id", None))
            if k is not None and kinds[k] not in _LEVEL_TOP + _LEVEL_ROW and k not in used:
                used.append(k)
        out = [f"{ind}j = tid", f"{ind}while j < K:"]
        inner = ind + "    "
        if any(kinds[k] == "s" for k in used):
            out += _unravel(inner, "j", "cc", cdims)
        for k in sorted(used):
            kind = kinds[k]
            ref = {"c": "base + j", "col": "j"}.get(kind)
            if kind == "s":
                col = _dot("cc", [f"in{k}_c{d}" for d in range(ndc)])
                ref = f"rb{k} + {col}"
            out.append(_load_line(inner, k, group.inputs[k], ref))
        for n in body_nodes:
            out.append(f"{inner}v{L[n.outputs[0].id]} = {_expr(n, name_of)}")
        out += [inner + t for t in tail_lines]
        out.append(f"{inner}j += {T}")
        return out

    def block_reduce(ind, sm, k, comb):
        """Combine every thread's ``acc<k>`` into ``sm[0]`` (all threads take part).

        Locals carry the reduction's number: Numba types a variable once per
        kernel, so an int64 and a float64 reduction must not share one."""
        u, t = f"u{k}", f"t{k}"
        out = [f"{ind}{sm}[tid] = acc{k}", f"{ind}cuda.syncthreads()"]
        low = 32 if layout.shuffle else 1
        w = T // 2
        while w >= low:
            out += [f"{ind}if tid < {w}:",
                    f"{ind}    {u} = {sm}[tid]",
                    f"{ind}    {t} = {sm}[tid + {w}]",
                    f"{ind}    {sm}[tid] = {comb.format(acc=u, v=t)}",
                    f"{ind}cuda.syncthreads()"]
            w //= 2
        if layout.shuffle:
            out += [f"{ind}if tid < 32:", f"{ind}    {u} = {sm}[tid]"]
            s = 16
            while s:
                # every lane of warp 0 runs each shuffle (a shuffle inside a divergent branch would hang)
                out += [f"{ind}    {t} = cuda.shfl_down_sync(0xFFFFFFFF, {u}, {s})",
                        f"{ind}    {u} = {comb.format(acc=u, v=t)}"]
                s //= 2
            out += [f"{ind}    if tid == 0:", f"{ind}        {sm}[0] = {u}", f"{ind}cuda.syncthreads()"]
        return out

    acc_dts = []
    for s in specs_of.values():
        if s.acc_dt not in acc_dts:
            acc_dts.append(s.acc_dt)
    sm_name = {dt: f"sm_{dt.name}" for dt in acc_dts}
    lines = [DECORATOR, f"def {name}({', '.join(names)}):"]
    for dt in acc_dts:
        lines.append(f"    {sm_name[dt]} = cuda.shared.array({T}, {np_name(dt)})")
    lines += _top_loads(group, layout, "    ")
    lines += ["    tid = cuda.threadIdx.x", "    r = cuda.blockIdx.x", "    while r < R:"]
    ind = "        "
    lines.append(f"{ind}base = r * K")
    s_inputs = [k for k in range(len(group.inputs)) if kinds[k] == "s"]
    if s_inputs:
        lines += _unravel(ind, "r", "cr", rdims)
        for k in s_inputs:
            lines.append(f"{ind}rb{k} = {_dot('cr', [f'in{k}_r{d}' for d in range(ndr)])}")
    for k, v in enumerate(group.inputs):
        if kinds[k] in _LEVEL_ROW:
            lines.append(_load_line(ind, k, v, "r"))
    for n in group.nodes:
        o = n.outputs[0]
        if n.name in REDUCTIONS:
            spec = specs_of[o.id]
            src = n.inputs[0]
            acc = spec.acc_dt
            k = L[o.id]
            body = closure(group, [src], full_ids)
            x = cast(name_of(src), src.dtype.numpy_dtype, acc)
            comb = spec.combine
            lines.append(f"{ind}acc{k} = {np_name(acc)}({spec.init})")
            lines += column_loop(ind, body, [src], [f"a{k} = {spec.pre.format(x=x)}",
                                                    f"acc{k} = {comb.format(acc=f'acc{k}', v=f'a{k}')}"])
            sm = sm_name[acc]
            lines += block_reduce(ind, sm, k, comb)
            fin = spec.finalize.format(acc=f"{sm}[0]")
            lines.append(f"{ind}v{k} = {cast(fin, spec.fin_dt, o.dtype.numpy_dtype)}")
            lines.append(f"{ind}cuda.syncthreads()")  # everyone has read sm[0] before it is reused
        elif o.id not in full_ids:  # a row-level elementwise node: every thread computes it
            lines.append(f"{ind}v{L[o.id]} = {_expr(n, name_of)}")
    full_outs = [(k, v) for k, v in enumerate(group.outputs) if v.id in full_ids]
    if full_outs:
        body = closure(group, [v for _, v in full_outs], full_ids)
        stores = [store(f"out{k}[base + j]", f"v{L[v.id]}", v.dtype.numpy_dtype, v.dtype.numpy_dtype)
                  for k, v in full_outs]
        lines += column_loop(ind, body, [], stores)
    row_outs = [(k, v) for k, v in enumerate(group.outputs) if v.id not in full_ids]
    if row_outs:
        lines.append(f"{ind}if tid == 0:")
        for k, v in row_outs:
            dt = v.dtype.numpy_dtype
            lines.append(f"{ind}    {store(f'out{k}[r]', f'v{L[v.id]}', dt, dt)}")
    lines.append(f"{ind}r += cuda.gridDim.x")
    return HEADER + "\n\n" + "\n".join(lines) + "\n", specs


# -- choosing a layout -------------------------------------------------------------------------------

def row_threads(n_cols: int, simulated: bool) -> int:
    """Threads per row block: a power of two covering the row, 32..256 on a GPU (8 under the simulator)."""
    if simulated:
        return 8
    t = 32
    while t < n_cols and t < 256:
        t *= 2
    return t


def classify(group: FusedGroup, v, shape, strides, contiguous: bool, size: int) -> str:
    """The kind of input ``v`` given its array's layout (element ``strides``; see the module doc)."""
    F = full_shape(group)
    if size == 1:
        return "one"
    if group.cols:
        if group.shape_class(v) == "row":
            return "row"  # the runner makes row values contiguous
        if contiguous and tuple(shape) == F:
            return "c"
        nc = len(group.cols)
        padded = (1,) * (len(F) - len(shape)) + tuple(shape)
        if contiguous and all(d == 1 for d in padded[:len(F) - nc]) and padded[len(F) - nc:] == group.cols:
            return "col"
        return "s"
    if contiguous and tuple(shape) == F:
        return "c"
    if contiguous and len(shape) <= len(F):
        padded = (1,) * (len(F) - len(shape)) + tuple(shape)
        lead = next((d for d, s in enumerate(padded) if s != 1), len(F))
        if padded[lead:] == F[lead:]:
            return "tail"
        last = max((d for d, s in enumerate(padded) if s != 1), default=-1) + 1
        if padded[:last] == F[:last] and all(s == 1 for s in padded[last:]):
            return "head"
    return "s"


def tail_modulus(group, shape) -> int:
    F = full_shape(group)
    padded = (1,) * (len(F) - len(shape)) + tuple(shape)
    lead = next((d for d, s in enumerate(padded) if s != 1), len(F))
    return int(np.prod(F[lead:], dtype=np.int64))


def head_divisor(group, shape) -> int:
    F = full_shape(group)
    padded = (1,) * (len(F) - len(shape)) + tuple(shape)
    last = max((d for d, s in enumerate(padded) if s != 1), default=-1) + 1
    return int(np.prod(F[last:], dtype=np.int64))
