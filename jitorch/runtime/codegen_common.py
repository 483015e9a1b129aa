"""What every backend's code generator shares: kernel names, dtype spellings, template expansion.

An elementwise op is a scalar expression template in the registry
(``op.template(compute_dtype)``); each backend wraps the same expanded
expression in its own loop (``codegen_cpu`` for Numba CPU kernels,
``cuda/codegen`` for numba.cuda kernels), so a fix to a template fixes every
device at once.  The kernel name says what the kernel computes, for logs and
profiles: ``add_float32_float32_float32_flat``.
"""
from __future__ import annotations

import numpy as np


def np_name(np_dtype) -> str:
    """Source spelling of a NumPy dtype inside a kernel (``np.float32``)."""
    name = str(np.dtype(np_dtype))
    return "np.bool_" if name == "bool" else f"np.{name}"


def cast(expr: str, from_dtype, to_dtype) -> str:
    """``expr`` (of ``from_dtype``) converted to ``to_dtype``; bool targets compare with zero."""
    if from_dtype == to_dtype:
        return expr
    if str(to_dtype) == "bool":
        return f"({expr} != 0)"
    return f"{np_name(to_dtype)}({expr})"


def kernel_name(op_name: str, in_dts, out_dt, mode: str, parallel: bool = False) -> str:
    """``<op>_<operand dtypes, s for scalars>_<out dtype>_<mode>[_par]``."""
    parts = [op_name.strip("_")] + ["s" if d is None else str(d) for d in in_dts] + [str(out_dt), mode]
    if parallel:
        parts.append("par")
    return "_".join(parts)


def expression(op, compute, operand_names) -> str:
    """The op's scalar expression over ``operand_names``, computed in jitorch dtype ``compute``."""
    return op.template(compute).format(*operand_names, T=np_name(compute.numpy_dtype))


def result_dtype(op, compute_np) -> np.dtype:
    """NumPy dtype of the expression's value before the store casts it to the output dtype."""
    return np.dtype(bool) if op.dtype_rule == "bool" else np.dtype(compute_np)
