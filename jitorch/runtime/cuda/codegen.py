"""Render numba.cuda kernel source from the registry's scalar expression templates.

The CPU generator (``runtime/codegen_cpu.py``) and this one expand the same
templates (``runtime/codegen_common.py``); only the loop around the expression
differs.  The source is readable Python, ``JITORCH_LOGS=code`` prints it.

Kernel parameters are chosen for cheap launches (see ``dispatch_cache``):
arrays are passed as typed *pointers* (one launch parameter each, instead of
the 7+ that a numba array argument expands to), sizes and strides as int64
scalars.  Inside the kernel a pointer is indexed like a 1-D array from the
array's first element, so the same source runs under the simulator, where the
launcher passes 1-D NumPy-backed arrays instead.  Bools travel as uint8 bytes.

Every kernel is a grid-stride loop: any grid covers any size, so the launch
configuration is a tuning choice, never a correctness one.
"""
from __future__ import annotations

import numpy as np

from ..codegen_common import cast, is_bf16, np_name, uses_bf16
from . import cuda_vmath

_VERSION = cuda_vmath.source_version()

HEADER = (
    f"# cuda_vmath {_VERSION}\n"
    "from numba import cuda\n"
    "from jitorch.runtime.cuda.cuda_vmath import math_ns as math, np_ns as np\n"
    "from jitorch.runtime.cuda.cuda_vmath import exp32, tanh32, sigmoid32, fma, mul_rn\n"
)



def header_for(body: str) -> str:
    """:data:`HEADER`, plus the bfloat16 helpers (stamped with their version) when ``body`` calls them."""
    if not uses_bf16(body):
        return HEADER
    from . import bf16
    return HEADER + f"from jitorch.runtime.cuda.bf16 import bf16_to_f32, f32_to_bf16  # bf16 {bf16.source_version()}\n"


# kernels are compiled with explicit signatures; cache=True keeps the cubin on disk
# beside the generated file (numba-cuda keys it by the file's mtime and size, and
# generated files are written once and never changed)
DECORATOR = "@cuda.jit(cache=True)"

_BOOL = np.dtype(bool)
_U8 = np.dtype(np.uint8)
_F16 = np.dtype(np.float16)
_F32 = np.dtype(np.float32)
_U16 = np.dtype(np.uint16)


def memory_dtype(dt) -> np.dtype:
    """The element type a kernel reads and writes for arrays of ``dt`` (bools as bytes, bfloat16 as uint16 bits)."""
    dt = np.dtype(dt)
    if dt == _BOOL:
        return _U8
    return _U16 if is_bf16(dt) else dt


def load(ref: str, dt, to_dt) -> str:
    """Expression reading element ``ref`` of a ``dt`` array as a ``to_dt`` value."""
    dt, to_dt = np.dtype(dt), np.dtype(to_dt)
    if dt == _BOOL:
        return cast(f"({ref} != 0)", _BOOL, to_dt)
    if dt == _F16:  # half goes through float32 (numba.cuda converts half <-> float32 natively)
        return cast(f"np.float32({ref})", _F32, to_dt)
    return cast(ref, dt, to_dt)  # bfloat16 bits: bf16_to_f32 (codegen_common.cast)


def store(ref: str, expr: str, from_dt, dt) -> str:
    """Statement writing ``expr`` (of ``from_dt``) into element ``ref`` of a ``dt`` array."""
    from_dt, dt = np.dtype(from_dt), np.dtype(dt)
    if dt == _BOOL:
        return f"{ref} = np.uint8({cast(expr, from_dt, _BOOL)})"
    if dt == _F16 and from_dt != _F16 and from_dt != _F32 and not is_bf16(from_dt):
        expr = f"np.float32({expr})"
        from_dt = _F32
    return f"{ref} = {cast(expr, from_dt, dt)}"


# -- elementwise --------------------------------------------------------------------------------------

def elementwise_params(inputs, outputs, mode: str) -> list:
    """Launch parameters of ``render_elementwise``'s kernel, in order.

    Each entry is ``("i64",)``, ``("ptr", memory dtype)`` or ``("scalar", dtype)``;
    ``dispatch_cache`` turns call arguments into launch arguments by this list.
    """
    nd = 0 if mode == "flat" else int(mode[2:])
    params = [("i64",)] + [("i64",)] * nd
    for _name, dt, cdt in inputs:
        if dt is None:
            params.append(("scalar", np.dtype(cdt)))
        else:
            params.append(("ptr", memory_dtype(dt)))
            params += [("i64",)] * nd
    for _name, dt, _ldt in outputs:
        params.append(("ptr", memory_dtype(dt)))
        params += [("i64",)] * nd
    return params


def render_elementwise(name: str, inputs, outputs, body, mode: str) -> str:
    """Source of an elementwise CUDA kernel.

    Same contract as ``codegen_cpu.render_elementwise``: ``inputs`` are
    (argname, np dtype or None for a scalar, compute np dtype); each array input
    is loaded into ``x<k>`` in its compute dtype; ``body`` assigns every output's
    local ``y<k>``; ``outputs`` are (argname, np dtype, local dtype).  ``mode``:
    ``flat`` (every array contiguous over the same ``n`` elements) or ``nd<k>``
    (k coalesced dims: shapes ``s<d>``, and per array its element strides
    ``<arg>_<d>``, 0 where it broadcasts).
    """
    nd = 0 if mode == "flat" else int(mode[2:])
    params = ["n"] + [f"s{d}" for d in range(nd)]
    for a, dt, _ in inputs:
        params.append(a)
        if dt is not None:
            params += [f"{a}_{d}" for d in range(nd)]
    for o, _, _ in outputs:
        params.append(o)
        params += [f"{o}_{d}" for d in range(nd)]
    lines = [DECORATOR, f"def {name}({', '.join(params)}):",
             "    i = cuda.grid(1)",
             "    step = cuda.gridsize(1)",
             "    while i < n:"]
    ind = "        "
    if nd:
        # unravel the flat index over the coalesced shape; the outermost dim needs no modulo
        lines.append(f"{ind}r = i")
        for d in reversed(range(1, nd)):
            lines += [f"{ind}c{d} = r % s{d}", f"{ind}r = r // s{d}"]
        lines.append(f"{ind}c0 = r")

    def index(arg):
        if not nd:
            return "i"
        return " + ".join(f"c{d} * {arg}_{d}" for d in range(nd))

    for k, (a, dt, cdt) in enumerate(inputs):
        if dt is None:
            lines.append(f"{ind}x{k} = {a}")
        else:
            lines.append(f"{ind}x{k} = {load(f'{a}[{index(a)}]', dt, cdt)}")
    lines += [f"{ind}{stmt}" for stmt in body]
    for k, (o, odt, ldt) in enumerate(outputs):
        lines.append(f"{ind}{store(f'{o}[{index(o)}]', f'y{k}', ldt, odt)}")
    lines.append(f"{ind}i += step")
    body = "\n".join(lines) + "\n"
    return header_for(body) + "\n\n" + body


# -- reductions -------------------------------------------------------------------------------------

def reduce_params(in_dt, out_dt, kept: int, red: int, strategy: str) -> list:
    """Launch parameters of ``render_reduce``'s kernel, in order (see ``elementwise_params``)."""
    params = [("i64",)] * 4  # rows, K, S, chunk / M, K, S, chunk
    params += [("i64",)] * (kept + red)  # sizes
    params += [("ptr", memory_dtype(in_dt))] + [("i64",)] * (kept + red)
    params.append(("ptr", memory_dtype(out_dt)))
    return params


def _unravel(ind: str, var: str, sizes: list[str], strides: list[str], out: str) -> list[str]:
    """Lines computing ``out`` = the offset of flat index ``var`` over ``sizes`` with ``strides``."""
    n = len(sizes)
    if n == 0:
        return [f"{ind}{out} = 0"]
    if n == 1:
        return [f"{ind}{out} = {var} * {strides[0]}"]
    lines = [f"{ind}q = {var}", f"{ind}{out} = 0"]
    for d in reversed(range(1, n)):
        lines += [f"{ind}c = q % {sizes[d]}", f"{ind}q = q // {sizes[d]}", f"{ind}{out} += c * {strides[d]}"]
    lines.append(f"{ind}{out} += q * {strides[0]}")
    return lines


def render_reduce(name: str, in_dt, acc_dt, out_dt, spec, kept: int, red: int, strategy: str, threads: int,
                  final: bool, warp_shuffle: bool, load_dt=None, fin_dt=None) -> str:
    """Source of a reduction kernel over a strided input.

    The input's dims are split into ``kept`` output dims (sizes ``o<d>``, strides
    ``x_o<d>``) and ``red`` reduced dims (``k<d>``, ``x_k<d>``), each group
    already coalesced; output ``m`` is the C-order flat index over the kept dims.
    ``spec`` = (init, combine, pre, finalize) strings over ``{acc}``, ``{v}``, ``{x}``:
    an element is read as ``load_dt`` (default ``acc_dt``), mapped by ``pre``
    into the accumulator and merged by ``combine``; ``finalize`` turns the
    accumulator into a ``fin_dt`` value (default ``acc_dt``) stored to ``out``.
    With ``final`` False the raw accumulator is stored (per-split partials).

    ``strategy``:
    - ``rows``: one block per (output, split) pair: its threads stride over a
      chunk of the reduced index, then combine through a shared-memory tree
      (and warp shuffles for the last 32 lanes on a GPU).  ``S`` splits per
      output: with S > 1 the kernel writes per-split partials (``final`` False)
      that a second launch reduces; no atomics, so results are deterministic.
    - ``cols``: one thread per (output, split) pair, looping over the reduced
      dims; adjacent threads take adjacent outputs, so they read adjacent
      elements when a kept dim is the contiguous one.  Splits (S > 1, for few
      outputs over a long reduction) need a single reduced dim; partial ``v`` is
      split ``v // M`` of output ``v % M``, an (S, M) matrix that a second
      ``cols`` launch reduces over its first dim.
    """
    init, combine, pre, finalize = spec
    acc = np_name(acc_dt)
    load_dt = acc_dt if load_dt is None else load_dt
    fin_dt = acc_dt if fin_dt is None else fin_dt

    def comb(a, v):
        return combine.format(acc=a, v=v)

    ksz = [f"k{d}" for d in range(red)]
    kst = [f"x_k{d}" for d in range(red)]
    osz = [f"o{d}" for d in range(kept)]
    ost = [f"x_o{d}" for d in range(kept)]
    head = (["rows", "K", "S", "chunk"] if strategy == "rows" else ["M", "K", "S", "chunk"]) + osz + ksz + ["x"] + \
        ost + kst
    lines = [DECORATOR, f"def {name}({', '.join(head + ['out'])}):"]
    elem = pre.format(x=load("x[base + off]", in_dt, load_dt))

    def write(ind, value):
        if final:
            return f"{ind}{store('out[v]', finalize.format(acc=value), fin_dt, out_dt)}"
        return f"{ind}out[v] = {acc}({value})"

    if strategy == "cols":
        ind = "        "
        lines += ["    v = cuda.grid(1)", "    step = cuda.gridsize(1)", "    while v < M * S:",
                  f"{ind}sp = v // M",
                  f"{ind}m = v - sp * M"]
        lines += _unravel(ind, "m", osz, ost, "base")
        lines.append(f"{ind}a = {acc}({init})")
        if red == 1:
            lines += [f"{ind}for j0 in range(sp * chunk, min(K, sp * chunk + chunk)):",
                      f"{ind}    off = j0 * x_k0"]
            ind += "    "
        else:
            # nested loops over the reduced dims: no division per element (S is 1 here)
            for d in range(red):
                lines.append(f"{ind}for j{d} in range(k{d}):")
                ind += "    "
            lines.append(f"{ind}off = {' + '.join(f'j{d} * x_k{d}' for d in range(red)) or '0'}")
        lines += [f"{ind}t = {elem}", f"{ind}a = {acc}({comb('a', 't')})"]
        ind = "        "
        lines += [write(ind, "a"), f"{ind}v += step"]
        body = "\n".join(lines) + "\n"
        return header_for(body) + "\n\n" + body

    ind = "        "
    lines += [f"    sm = cuda.shared.array({threads}, {acc})",
              "    tid = cuda.threadIdx.x",
              "    v = cuda.blockIdx.x",
              "    while v < rows:",
              f"{ind}m = v // S",
              f"{ind}k = (v - m * S) * chunk",
              f"{ind}kend = min(K, k + chunk)",
              f"{ind}k += tid"]
    lines += _unravel(ind, "m", osz, ost, "base")
    lines += [f"{ind}a = {acc}({init})", f"{ind}while k < kend:"]
    lines += _unravel(ind + "    ", "k", ksz, kst, "off")
    lines += [f"{ind}    t = {elem}",
              f"{ind}    a = {acc}({comb('a', 't')})",
              f"{ind}    k += {threads}",
              f"{ind}sm[tid] = a",
              f"{ind}cuda.syncthreads()"]
    low = 32 if warp_shuffle else 1  # from 32 values down, one warp finishes with shuffles
    w = threads // 2
    while w >= low:
        lines += [f"{ind}if tid < {w}:",
                  f"{ind}    u = sm[tid]",
                  f"{ind}    t = sm[tid + {w}]",
                  f"{ind}    sm[tid] = {acc}({comb('u', 't')})",
                  f"{ind}cuda.syncthreads()"]
        w //= 2
    if warp_shuffle:
        lines += [f"{ind}if tid < 32:", f"{ind}    a = sm[tid]"]
        s = 16
        while s:
            # every lane runs each shuffle exactly once (a shuffle inside a conditional would diverge)
            lines += [f"{ind}    t = cuda.shfl_down_sync(0xFFFFFFFF, a, {s})",
                      f"{ind}    a = {acc}({comb('a', 't')})"]
            s //= 2
        lines += [f"{ind}    if tid == 0:", write(ind + "        ", "a")]
    else:
        lines += [f"{ind}if tid == 0:", write(ind + "    ", "sm[0]")]
    lines += [f"{ind}cuda.syncthreads()",  # the next row reuses sm
              f"{ind}v += cuda.gridDim.x"]
    body = "\n".join(lines) + "\n"
    return header_for(body) + "\n\n" + body
