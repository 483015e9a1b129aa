"""CUDA execution of elementwise registry ops: the counterpart of ``runtime/cpu.py::run_elementwise``.

Layouts: when every array operand and the output walk the same elements in
the same order with unit stride (after merging dims, see :func:`coalesce`),
the ``flat`` kernel runs a grid-stride loop over ``n`` elements; otherwise the
``nd<k>`` kernel unravels the flat index over the ``k`` merged dims and
applies each array's element strides (0 where it broadcasts).  Merging first
means most strided calls run with k = 1 or 2.

float16 and bfloat16 compute in float32 and round on store, as torch's CUDA
kernels do (their "opmath" type for both is float); bfloat16 bits are
converted inside the kernel (``codegen.load``/``store``, ``cuda/bf16.py``).
"""
from __future__ import annotations

import numpy as np

from ... import _dtype
from .. import codegen_common as cg
from . import array, codegen, dispatch_cache, launch
from .array import CudaArray

_F16 = np.dtype(np.float16)
_F32 = np.dtype(np.float32)
_BF16 = _dtype.bfloat16
_CSTRIDES: dict = {}


def contiguous_elem_strides(shape) -> tuple:
    """C-order element strides of ``shape`` (cached: the hot path compares against them)."""
    st = _CSTRIDES.get(shape)
    if st is None:
        acc = 1
        out = []
        for s in reversed(shape):
            out.append(acc)
            acc *= max(s, 1)
        st = _CSTRIDES[shape] = tuple(reversed(out))
    return st


def elem_strides(a: CudaArray, shape) -> tuple:
    """``a``'s element strides when broadcast to ``shape`` (0 along broadcast dims)."""
    isz = a.dtype.itemsize
    lead = len(shape) - len(a.shape)
    st = [0] * lead
    for s, n, full in zip(a.strides, a.shape, shape[lead:]):
        st.append(0 if n == 1 and full != 1 else s // isz)
    return tuple(st)


def coalesce(shape, strides):
    """Merge dims every operand steps through as one; drop size-1 dims.

    Returns (shape, [strides per operand]).  Dims d, d+1 merge when
    ``stride[d] == stride[d+1] * size[d+1]`` for every operand (broadcast zeros
    included), so (64, 6, 28, 28) * (1, 6, 1, 1) runs over 3 dims, not 4.
    """
    out_shape: list = []
    out_st = [[] for _ in strides]
    for d, n in enumerate(shape):
        if n == 1:
            continue
        if out_shape and all(st[-1] == s[d] * n for st, s in zip(out_st, strides)):
            out_shape[-1] *= n
            for st, s in zip(out_st, strides):
                st[-1] = s[d]
        else:
            out_shape.append(n)
            for st, s in zip(out_st, strides):
                st.append(s[d])
    return tuple(out_shape), [tuple(st) for st in out_st]


def _scalar(value, cnp):
    """A Python scalar in the compute type; integers wrap around like torch (uint8 + -1 = 255)."""
    if cnp.kind in "iu" and not isinstance(value, (bool, np.bool_)):
        return np.array(int(value)).astype(cnp)[()]
    return cnp.type(value)


def _source(op, in_dts, compute, out_dt, mode):
    cnp = compute.numpy_dtype
    name = "cuda_" + cg.kernel_name(op.name, in_dts, out_dt, mode)
    inputs = [(f"a{k}", d, cnp) for k, d in enumerate(in_dts)]
    expr = cg.expression(op, compute, [f"x{k}" for k in range(len(in_dts))])
    outputs = [("out", out_dt, cg.result_dtype(op, cnp))]
    src = codegen.render_elementwise(name, inputs, outputs, [f"y0 = {expr}"], mode)
    return src, name, codegen.elementwise_params(inputs, outputs, mode)


def elementwise_source(op, in_dts, compute, out_dt, mode) -> str:
    """The generated kernel source (for logs and tests)."""
    return _source(op, tuple(in_dts), compute, np.dtype(out_dt), mode)[0]


def run_elementwise(op, operands, compute, out_np_dtype, shape, out=None) -> CudaArray:
    """Run elementwise ``op`` on CudaArrays/Python scalars; returns the output array.

    ``compute``: jitorch dtype the expression is evaluated in; ``out_np_dtype``:
    NumPy dtype of the result; ``shape``: broadcast result shape; ``out``: an
    existing CudaArray of ``shape`` to write (in-place ops, ``out=``; any layout).
    """
    cnp = compute.numpy_dtype
    if compute is _BF16 or cnp is _F16 or cnp == _F16:
        compute = _dtype.float32
        cnp = _F32
    shape = tuple(shape)
    result = out if out is not None else array.empty(shape, out_np_dtype)
    n = result.size
    if n == 0:
        return result
    # flat when every array is C-contiguous with the output's shape: the common case, checked
    # with one cached stride tuple per itemsize instead of a layout analysis
    in_dts = []
    call = []  # per operand: a CudaArray or a typed scalar
    flat = result.strides == _cbytes(shape, result.dtype.itemsize)
    for o in operands:
        if o.__class__ is CudaArray:
            dt = o.dtype
            in_dts.append(dt)
            call.append(o)
            if flat and (o.shape != shape or o.strides != _cbytes(shape, dt.itemsize)):
                flat = False
        else:
            in_dts.append(None)
            call.append(_scalar(o, cnp))
    in_dts = tuple(in_dts)
    if flat:
        mode = "flat"
    else:
        raw = [elem_strides(result, shape)] + [elem_strides(c, shape) for c in call if c.__class__ is CudaArray]
        if any(s < 0 for st in raw for s in st):
            return _negative_strides(op, operands, compute, out_np_dtype, shape, out)
        dims, strides = coalesce(shape, raw)
        if len(dims) <= 1 and all(st == (1,) * len(dims) for st in strides):
            mode = "flat"
        else:
            mode = f"nd{len(dims)}"
    out_dt = result.dtype
    key = ("ew", op.name, in_dts, cnp, out_dt, mode)
    launcher = _TABLE.get(key)
    if launcher is None:
        launcher = dispatch_cache.get(key, lambda: _source(op, in_dts, compute, out_dt, mode))
    if mode == "flat":
        args = [n, *call, result]
    else:
        args = [n, *dims]
        it = iter(strides[1:])
        for c in call:
            args.append(c)
            if c.__class__ is CudaArray:
                args += next(it)
        args.append(result)
        args += strides[0]
    cfg = _CONFIGS.get(n)
    if cfg is None:
        if len(_CONFIGS) > 4096:
            _CONFIGS.clear()
        cfg = _CONFIGS[n] = launch.config(n)
    launcher(cfg[0], cfg[1], *args)
    return result


_TABLE = dispatch_cache._TABLE  # read directly on the hot path (no build closure per call)
_CONFIGS: dict = {}  # n -> (blocks, threads)
_CBYTES: dict = {}


def _cbytes(shape, itemsize) -> tuple:
    """C-contiguous byte strides of ``shape`` (cached)."""
    st = _CBYTES.get((shape, itemsize))
    if st is None:
        st = _CBYTES[(shape, itemsize)] = tuple(s * itemsize for s in contiguous_elem_strides(shape))
    return st


def _negative_strides(op, operands, compute, out_np_dtype, shape, out):
    """Operands or an output with negative strides: run on contiguous copies."""
    from .copy import copy_into

    def positive(a):
        return a if all(s >= 0 for s in a.strides) else a.copy()

    ops = [positive(o) if isinstance(o, CudaArray) else o for o in operands]
    if out is None or all(s >= 0 for s in out.strides):
        return run_elementwise(op, ops, compute, out_np_dtype, shape, out)
    tmp = run_elementwise(op, ops, compute, out.dtype, shape)
    copy_into(out, tmp)
    return out
