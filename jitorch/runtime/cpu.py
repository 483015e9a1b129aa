"""CPU execution of registry ops: find or build the kernel, then launch it.

The hot path keeps its own table from (op, operand dtypes, ndim, mode) to the
compiled overload's ``entry_point``, which skips Numba's argument type
resolution (about half the cost of a small call).
"""
from __future__ import annotations

import numpy as np

from .._dtype import BF16_STORAGE, bfloat16
from . import codegen_common, kernel_cache
from .codegen_cpu import np_name, render_elementwise, render_reduce

# below this many elements a parallel loop costs more than it saves: waking the OpenMP
# team costs milliseconds when the cores are busy (BLAS threads, other processes), while a
# vectorized single-thread loop does 1M float32 elements in well under a millisecond
PARALLEL_THRESHOLD = 1 << 20

_F32 = np.dtype(np.float32)
_F16 = np.dtype(np.float16)
_BF16 = BF16_STORAGE
_U16 = np.dtype(np.uint16)


def elementwise_source(op, in_dts, compute, out_dt, mode, parallel) -> tuple[str, str]:
    """Source and function name of a one-op elementwise kernel."""
    name = codegen_common.kernel_name(op.name, in_dts, out_dt, mode, parallel)
    cnp = compute.numpy_dtype
    inputs = [(f"a{k}", d, cnp) for k, d in enumerate(in_dts)]
    expr = codegen_common.expression(op, compute, [f"x{k}" for k in range(len(in_dts))])
    res_dt = codegen_common.result_dtype(op, cnp)
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

    bfloat16 arrays reach the kernel as uint16 views of their bits, converted
    on load and store inside it (see ``runtime/bf16.py``); its math is float32.
    """
    bf16 = False
    if compute is bfloat16:
        from .._dtype import float32
        compute, bf16 = float32, True
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
            dt = o.dtype
            if o.itemsize == 2:  # float16 or bfloat16 (or int16): the cheap test first
                if dt == _F16:
                    o = o.astype(_F32)
                    dt = _F32
                elif dt == _BF16:
                    o = o.view(_U16)
                    bf16 = True
            if o.shape != shape or not o.flags.c_contiguous:
                flat = False
            in_dts.append(dt)
            arrays.append(o)
        else:
            in_dts.append(None)
            arrays.append(_scalar(o, cnp))
    result = out
    target = out
    if out is None:
        result = target = np.empty(shape, dtype=out_dt)
    elif not out.flags.c_contiguous or out.dtype == _F16:
        flat = False
    out_np = target.dtype
    if target.itemsize == 2:
        if out_np == _F16:
            target = np.empty(shape, dtype=_F32)
            out_np = _F32
        elif out_np == _BF16:
            target = target.view(_U16)  # written through the view: the result needs no copy back
            bf16 = True
    n = target.size
    if n == 0:
        return result
    if bf16 and out_np == _BF16 and _bf16_copy(op, compute, operands, in_dts, arrays, target):
        return result
    if flat:
        mode = "flat"
        parallel = n >= PARALLEL_THRESHOLD
    else:
        arrays = [np.broadcast_to(a, shape) if isinstance(a, np.ndarray) and a.shape != shape else a
                  for a in arrays]
        if len(shape) > 2:
            arrays, target_view = _coalesce(arrays, target)
        else:
            target_view = target
        mode = f"nd{target_view.ndim}"
        parallel = n >= PARALLEL_THRESHOLD and target_view.ndim > 0 and target_view.shape[0] > 1
    key = (tuple(in_dts), cnp, out_np, mode, parallel, target.ndim)
    if bf16:  # never the key the eager fast path looks up (it has no bfloat16 kernels)
        key = ("bf16",) + key
    if not flat:  # strided operands: the entry point depends on each array's layout
        key = key + kernel_cache.layout_key(arrays) + kernel_cache.layout_key((target_view,))
    ep = op.kernels.get(key)
    args = (*arrays, target if flat else target_view)
    if ep is None:
        disp = _get_elementwise(op, tuple(in_dts), compute, out_np, mode, parallel)
        kernel_cache.first_call(disp, args)
        op.kernels[key] = kernel_cache.entry_point(disp, args)
    else:
        ep(*args)
    if target is not result and out_np != _BF16:
        result[...] = target
    return result


def _bf16_copy(op, compute, operands, in_dts, arrays, target) -> bool:
    """A copy op (template ``{k}``) from a bfloat16 operand into bfloat16: copy the bits (NaN payloads
    included) instead of converting through float32.  Returns whether it handled the call."""
    expr = op.template(compute)
    if len(expr) != 3 or expr[0] != "{" or expr[2] != "}" or not expr[1].isdigit():
        return False
    k = int(expr[1])
    if in_dts[k] != _BF16:
        return False
    np.copyto(target, arrays[k])  # uint16 views; the operand broadcasts to the target
    return True


_as_strided = np.lib.stride_tricks.as_strided


def _coalesce(arrays, target):
    """Views of the operands (all of the target's shape) with adjacent dims merged.

    Dims of size 1 are dropped, and dims d, d+1 merge when every operand steps
    through them as one (stride[d] == stride[d+1] * size[d+1], broadcast zeros
    included), so e.g. (64, 6, 28, 28) * (1, 6, 1, 1) runs as 3 loops, not 4.
    """
    views = [target] + [a for a in arrays if isinstance(a, np.ndarray)]
    dims = [d for d, n in enumerate(target.shape) if n != 1]
    shape = []
    strides = [[] for _ in views]
    for d in dims:
        n = target.shape[d]
        if shape and all(st[-1] == v.strides[d] * n for st, v in zip(strides, views)):
            shape[-1] *= n
            for st, v in zip(strides, views):
                st[-1] = v.strides[d]
        else:
            shape.append(n)
            for st, v in zip(strides, views):
                st.append(v.strides[d])
    if len(shape) == target.ndim:
        return arrays, target
    new = [_as_strided(v, shape, st, writeable=(k == 0)) for k, (v, st) in enumerate(zip(views, strides))]
    it = iter(new[1:])
    return [next(it) if isinstance(a, np.ndarray) else a for a in arrays], new[0]


def _scalar(value, cnp):
    """A Python scalar in the compute type; integers wrap around like torch (uint8 + -1 = 255)."""
    if cnp.kind in "iu" and not isinstance(value, (bool, np.bool_)):
        return np.array(int(value)).astype(cnp)[()]
    return cnp.type(value)


_REDUCERS = {}


def run_reduce(kind: str, spec, x: np.ndarray, acc_dt, out_dt, shape=None) -> np.ndarray:
    """Reduce axis 1 of a 3-D (outer, k, inner) array with the named reducer.

    ``shape`` (optional) is the result's final shape: the array is allocated with it, so the
    caller gets an array that owns its memory rather than a reshaped view (a leaf's ``.grad``
    can then take it without a copy).
    """
    key = (kind, x.dtype, acc_dt, out_dt, x.flags.c_contiguous)
    ep = _REDUCERS.get(key)
    result = np.empty(shape if shape is not None else (x.shape[0], x.shape[2]), dtype=out_dt)
    out = result.reshape(x.shape[0], x.shape[2])
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
    return result


__all__ = ["run_elementwise", "run_reduce", "np_name", "PARALLEL_THRESHOLD"]
