"""CPU execution of registry ops: find or build the kernel, then launch it.

The hot path keeps its own table from (op, operand dtypes, ndim, mode) to the
compiled overload's ``entry_point``, which skips Numba's argument type
resolution (about half the cost of a small call).
"""
from __future__ import annotations

import numpy as np

from . import kernel_cache
from .codegen_cpu import np_name, render_elementwise, render_reduce

# below this many elements a parallel loop costs more than it saves
PARALLEL_THRESHOLD = 1 << 17

_F32 = np.dtype(np.float32)
_F16 = np.dtype(np.float16)


def _kernel_name(op_name: str, in_dts, out_dt, mode: str, parallel: bool) -> str:
    parts = [op_name.strip("_")] + ["s" if d is None else str(d) for d in in_dts] + [str(out_dt), mode]
    if parallel:
        parts.append("par")
    return "_".join(parts)


def elementwise_source(op, in_dts, compute, out_dt, mode, parallel) -> tuple[str, str]:
    """Source and function name of a one-op elementwise kernel."""
    name = _kernel_name(op.name, in_dts, out_dt, mode, parallel)
    cnp = compute.numpy_dtype
    inputs = [(f"a{k}", d, cnp) for k, d in enumerate(in_dts)]
    expr = op.template(compute).format(*[f"x{k}" for k in range(len(in_dts))], T=np_name(cnp))
    res_dt = np.dtype(bool) if op.dtype_rule == "bool" else cnp
    outputs = [("out", out_dt, res_dt)]
    return render_elementwise(name, inputs, outputs, [f"y0 = {expr}"], mode, parallel), name


def _get_elementwise(op, in_dts, compute, out_dt, mode, parallel):
    key = ("ew", in_dts, compute, out_dt, mode, parallel)
    disp = op.kernels.get(key)
    if disp is None:
        src, name = elementwise_source(op, in_dts, compute, out_dt, mode, parallel)
        disp = kernel_cache.load_kernel(src, name)
        op.kernels[key] = disp
    return disp


def run_elementwise(op, operands, compute, out_dt, shape, out=None):
    """Run elementwise ``op`` on arrays/scalars; returns the output array.

    ``compute``: jitorch dtype the expression is evaluated in; ``out_dt``:
    NumPy dtype of the result; ``shape``: broadcast result shape; ``out``:
    an existing array to write (in-place ops and ``out=``).
    """
    cnp = compute.numpy_dtype
    if cnp == _F16:  # Numba has no CPU float16 arithmetic: compute in float32
        from .._dtype import float32
        ops = [o.astype(_F32) if isinstance(o, np.ndarray) else o for o in operands]
        res = run_elementwise(op, ops, float32, _F32 if out_dt == _F16 else out_dt, shape)
        if out is None:
            return res.astype(out_dt) if res.dtype != out_dt else res
        out[...] = res
        return out
    arrays = []
    in_dts = []
    flat = True
    for o in operands:
        if isinstance(o, np.ndarray):
            if o.dtype == _F16:
                o = o.astype(_F32)
            if o.shape != shape or not o.flags.c_contiguous:
                flat = False
            in_dts.append(o.dtype)
            arrays.append(o)
        else:
            in_dts.append(None)
            arrays.append(cnp.type(o))
    result = out
    target = out
    if out is None:
        result = target = np.empty(shape, dtype=out_dt)
    elif out.dtype == _F16 or not out.flags.c_contiguous:
        flat = False
    if target.dtype == _F16:
        target = np.empty(shape, dtype=_F32)
    n = target.size
    if n == 0:
        return result
    if flat:
        mode = "flat"
        parallel = n >= PARALLEL_THRESHOLD
    else:
        mode = "nd"
        parallel = False
        arrays = [np.broadcast_to(a, shape) if isinstance(a, np.ndarray) and a.shape != shape else a
                  for a in arrays]
    out_np = target.dtype
    key = (tuple(in_dts), out_np, mode, parallel, target.ndim)
    if mode == "nd":  # strided operands: the entry point depends on each array's layout
        key = key + kernel_cache.layout_key(arrays) + kernel_cache.layout_key((target,))
    ep = op.kernels.get(key)
    args = (*arrays, target)
    if ep is None:
        disp = _get_elementwise(op, tuple(in_dts), compute, out_np, mode, parallel)
        kernel_cache.first_call(disp, args)
        op.kernels[key] = kernel_cache.entry_point(disp, args)
    else:
        ep(*args)
    if target is not result:
        result[...] = target
    return result


_REDUCERS = {}


def run_reduce(kind: str, spec, x: np.ndarray, acc_dt, out_dt) -> np.ndarray:
    """Reduce axis 1 of a 3-D (outer, k, inner) array with the named reducer."""
    key = (kind, x.dtype, acc_dt, out_dt, x.flags.c_contiguous)
    ep = _REDUCERS.get(key)
    out = np.empty((x.shape[0], x.shape[2]), dtype=out_dt)
    if ep is None:
        init, combine, finalize, pre, reassoc = spec
        name = f"reduce_{kind}_{x.dtype}_{np.dtype(acc_dt)}_{np.dtype(out_dt)}"
        src = render_reduce(name, x.dtype, np.dtype(acc_dt), np.dtype(out_dt), init, combine, finalize,
                            pre, reassoc)
        disp = kernel_cache.load_kernel(src, name)
        kernel_cache.first_call(disp, (x, out))
        _REDUCERS[key] = kernel_cache.entry_point(disp, (x, out))
    else:
        ep(x, out)
    return out


__all__ = ["run_elementwise", "run_reduce", "np_name", "PARALLEL_THRESHOLD"]
