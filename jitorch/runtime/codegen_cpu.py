"""Render Numba CPU kernel source from scalar expression templates.

Eager mode renders one op per kernel; the compiler renders a fused group of
ops through the same functions, so a fix here fixes both.  The source is
plain, readable Python: ``JITORCH_LOGS=code`` prints it.
"""
from __future__ import annotations

from .codegen_common import cast, np_name, uses_bf16  # noqa: F401 - shared with the CUDA code generator

HEADER = (
    "import math\n"
    "import numpy as np\n"
    "from numba import njit, prange\n"
    "from jitorch.runtime.vmath import exp32, tanh32, sigmoid32, radd, rmul, rmax, rmin\n"
)


def header_for(body: str) -> str:
    """The module header a kernel ``body`` needs: :data:`HEADER`, plus the bfloat16 helpers when it calls them.

    Only kernels that touch bfloat16 get the extra import (stamped with the
    helpers' version, which keys the disk cache), so every other kernel's source,
    and its cached machine code, stays as it was.
    """
    if not uses_bf16(body):
        return HEADER
    from .bf16 import source_version
    return HEADER + f"from jitorch.runtime.bf16 import bf16_to_f32, f32_to_bf16  # bf16 {source_version()}\n"

# error_model='numpy': no zero-division checks, which would block vectorization
JIT_FLAGS = "cache=True, nogil=True, error_model='numpy'"


def render_elementwise(name: str, inputs, outputs, body, mode: str, parallel: bool) -> str:
    """Source of an elementwise kernel.

    ``inputs``: list of (argname, np_dtype or None for scalars, compute np_dtype);
    each array input is loaded into ``x<k>`` cast to its compute dtype, a
    scalar arrives already typed.  ``body``: statements over those locals
    that assign every output's local ``y<k>``.  ``outputs``: list of
    (argname, np_dtype, local dtype).  ``mode``: ``flat`` (all arrays
    C-contiguous of one shape) or ``nd`` (broadcast views of one shape, any strides).
    """
    arrays = [a for a, dt, _ in inputs if dt is not None]
    args = ", ".join([a for a, _, _ in inputs] + [o for o, _, _ in outputs])
    lines = [f"@njit({JIT_FLAGS}{', parallel=True' if parallel else ''})", f"def {name}({args}):"]
    ind = "    "
    if mode == "flat":
        lead = outputs[0][0]
        lines.append(f"{ind}n = {lead}.size")
        for a in arrays + [o for o, _, _ in outputs]:
            lines.append(f"{ind}{a}_f = {a}.reshape(n)")
        loop = "prange" if parallel else "range"
        lines.append(f"{ind}for i in {loop}(n):")
        index = "_f[i]"
    else:
        # mode "nd<k>": k nested loops over the (coalesced) output shape; operands are
        # broadcast views, so every index is plain strided arithmetic
        ndim = int(mode[2:])
        lead = outputs[0][0]
        idx = [f"i{d}" for d in range(ndim)]
        for d in range(ndim):
            loop = "prange" if (parallel and d == 0) else "range"
            lines.append(f"{ind * (d + 1)}for i{d} in {loop}({lead}.shape[{d}]):")
        index = f"[{', '.join(idx)}]" if ndim else "[()]"
        ind = ind * max(ndim, 1) if ndim else ""
        if not ndim:
            ind = ""
    ind2 = ind + "    "
    for k, (a, dt, cdt) in enumerate(inputs):
        src = f"{a}{index}" if dt is not None else a
        lines.append(f"{ind2}x{k} = {cast(src, dt, cdt) if dt is not None else src}")
    for stmt in body:
        lines.append(f"{ind2}{stmt}")
    for k, (o, odt, ldt) in enumerate(outputs):
        lines.append(f"{ind2}{o}{index} = {cast(f'y{k}', ldt, odt)}")
    body = "\n".join(lines) + "\n"
    return header_for(body) + "\n\n" + body


def render_reduce(name: str, in_dtype, acc_dtype, out_dtype, init: str, combine: str, finalize: str,
                  pre: str = "{x}", reassociate: bool = False) -> str:
    """Reduce axis 1 of a (outer, k, inner) array into (outer, inner).

    ``pre`` maps an element ``{x}`` to the accumulated value, ``combine``
    merges ``{acc}`` and ``{v}``, ``finalize`` maps ``{acc}`` (and ``{n}``,
    the reduced length) to the result.  Accumulating along ``inner`` keeps
    memory access contiguous for reductions over leading dims.
    """
    acc = np_name(acc_dtype)
    v = pre.format(x=cast("x[o, j, i]", in_dtype, acc_dtype))
    comb = combine.format(acc="acc[i]", v="v")
    comb_row = combine.format(acc="s", v="v")
    fin = finalize.format(acc="acc[i]", n="kk")
    fin_row = finalize.format(acc="s", n="kk")
    v_row = pre.format(x=cast("x[o, j, 0]", in_dtype, acc_dtype))
    # reassociation lets LLVM split a sum into vector lanes; never for max/min (NaN order)
    flags = JIT_FLAGS + (", fastmath={'reassoc', 'contract'}" if reassociate else "")
    return header_for(v) + f"""

@njit({flags})
def {name}(x, out):
    oo, kk, ii = x.shape
    if ii == 1:
        for o in range(oo):
            s = {acc}({init})
            for j in range(kk):
                v = {v_row}
                s = {comb_row}
            out[o, 0] = {cast(fin_row, acc_dtype, out_dtype)}
        return
    acc = np.empty(ii, dtype={acc})
    for o in range(oo):
        for i in range(ii):
            acc[i] = {init}
        for j in range(kk):
            for i in range(ii):
                v = {v}
                acc[i] = {comb}
        for i in range(ii):
            out[o, i] = {cast(fin, acc_dtype, out_dtype)}
"""
