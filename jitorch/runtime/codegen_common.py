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

from .._dtype import BF16_STORAGE

_F32 = np.dtype(np.float32)

# the names of the bfloat16 conversion helpers kernels call (see runtime/bf16.py, runtime/cuda/bf16.py)
BF16_HELPERS = ("bf16_to_f32", "f32_to_bf16")


def is_bf16(np_dtype) -> bool:
    """Is ``np_dtype`` bfloat16's storage dtype (bit patterns that kernels read as uint16)?"""
    return np_dtype is not None and np.dtype(np_dtype) == BF16_STORAGE


def dtype_name(np_dtype) -> str:
    """A dtype's short name for kernel names (``float32``, ``bfloat16``)."""
    return "bfloat16" if is_bf16(np_dtype) else str(np.dtype(np_dtype))


def uses_bf16(source: str) -> bool:
    """Does kernel source call the bfloat16 helpers (so its header must import them)?"""
    return "bf16_to_f32(" in source or "f32_to_bf16(" in source


def np_name(np_dtype) -> str:
    """Source spelling of a NumPy dtype inside a kernel (``np.float32``; bfloat16 bits are ``np.uint16``)."""
    if is_bf16(np_dtype):
        return "np.uint16"
    name = str(np.dtype(np_dtype))
    return "np.bool_" if name == "bool" else f"np.{name}"


def cast(expr: str, from_dtype, to_dtype) -> str:
    """``expr`` (of ``from_dtype``) converted to ``to_dtype``; bool targets compare with zero.

    bfloat16 goes through float32 both ways: bits -> ``bf16_to_f32`` -> target,
    value -> float32 -> ``f32_to_bf16`` (a float64 rounds twice, as torch's cast does).
    """
    if from_dtype == to_dtype:
        return expr
    if is_bf16(from_dtype):
        return cast(f"bf16_to_f32({expr})", _F32, to_dtype)
    if is_bf16(to_dtype):
        return f"f32_to_bf16({cast(expr, from_dtype, _F32)})"
    if str(to_dtype) == "bool":
        return f"({expr} != 0)"
    return f"{np_name(to_dtype)}({expr})"


def kernel_name(op_name: str, in_dts, out_dt, mode: str, parallel: bool = False) -> str:
    """``<op>_<operand dtypes, s for scalars>_<out dtype>_<mode>[_par]``."""
    parts = [op_name.strip("_")] + ["s" if d is None else dtype_name(d) for d in in_dts] + [dtype_name(out_dt), mode]
    if parallel:
        parts.append("par")
    return "_".join(parts)


def expression(op, compute, operand_names) -> str:
    """The op's scalar expression over ``operand_names``, computed in jitorch dtype ``compute``."""
    return op.template(compute).format(*operand_names, T=np_name(compute.numpy_dtype))


def result_dtype(op, compute_np) -> np.dtype:
    """NumPy dtype of the expression's value before the store casts it to the output dtype."""
    return np.dtype(bool) if op.dtype_rule == "bool" else np.dtype(compute_np)
