"""Matrix products: extern BLAS kernels (NumPy's matmul calls the BLAS it ships).

``matmul`` is the one primitive: operands of rank >= 2 with broadcast batch
dims; 1-D operands are handled by unsqueeze/squeeze around it, as torch does.
Every product (``mm``, ``bmm``, ``mv``, ``dot``, ``addmm``, ``nn.Linear``,
convolutions via im2col) reaches it through :func:`matmul`.

Half precision: BLAS has no float16/bfloat16, so on the CPU those products run
in float32 and round once; on CUDA cuBLAS (or the numba GEMM) reads the 16-bit
operands and accumulates in float32.  Under ``jitorch.autocast`` each public
product first passes its operands through the autocast policy
(``amp/policy.py``), which casts them to the region's lower-precision dtype.
"""
from __future__ import annotations

import numpy as np

from .. import _dtype as D
from .._dispatch import apply
from .._tensor import Tensor
from ..amp.autocast_mode import state as _amp
from ..amp.policy import cast_inputs
from ..runtime import blas
from .registry import impl, kernel_op


def _matmul_vjp(c, g):
    a, b = c.inputs
    ga = gb = None
    if c.needs_input_grad[0]:
        ga = (g @ b.mT).sum_to_size(a.shape)
    if c.needs_input_grad[1]:
        gb = (a.mT @ g).sum_to_size(b.shape)
    return ga, gb


MATMUL = kernel_op("matmul", nin=2, vjp=_matmul_vjp, node_name="MmBackward0")
MATMUL.bf16_native = True  # both implementations read bfloat16 bits themselves


@impl("matmul")
def _matmul_cpu(a, b):
    if a.dtype == np.float16:  # BLAS has no half: compute in float32
        return blas.matmul(a.astype(np.float32), b.astype(np.float32)).astype(np.float16)
    if a.dtype == D.BF16_STORAGE:
        return D.to_storage(blas.matmul(D.bf16_values(a), D.bf16_values(b)), D.bfloat16)
    return blas.matmul(a, b)


# -- fused linear layer (eager CPU fast path of ``F.linear``, see ``eager_fast``) ----------------------
def _linear_vjp(c, g):
    x, w, b = c.inputs
    need = c.needs_input_grad
    gx = matmul(g, w) if need[0] else None
    gw = matmul(g.mT, x) if need[1] else None  # (O, N) @ (N, I): the weight's own layout, no transpose copy
    gb = g.sum(0) if b is not None and need[2] else None
    return gx, gw, gb


LINEAR = kernel_op("linear", nin=3, vjp=_linear_vjp, node_name="AddmmBackward0")


@impl("linear")
def _linear_cpu(x, w, b):
    y = blas.matmul(x, w.T)
    if b is not None:
        np.add(y, b, out=y)
    return y


def linear_2d(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    """``x @ w.T + b`` for a 2-D ``x`` as one primitive (shapes and dtypes already checked)."""
    return apply(LINEAR, [x, w, b])


def _check(a, b, name):
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError(f"{name}(): argument 'other' must be Tensor")
    if a.dtype is not b.dtype:
        raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: {a.dtype.name} != {b.dtype.name}")
    if a.dtype is D.bool_:
        raise RuntimeError("\"addmm_impl_cpu_\" not implemented for 'Bool'")


def matmul(input: Tensor, other: Tensor, *, out=None) -> Tensor:
    """Matrix product with torch's 1-D and batch-broadcasting rules."""
    if _amp.active:
        input, other = cast_inputs("matmul", input, other)
    _check(input, other, "matmul")
    a, b = input, other
    if a.ndim == 0 or b.ndim == 0:
        raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are {a.ndim}D and {b.ndim}D")
    squeeze_a = a.ndim == 1
    squeeze_b = b.ndim == 1
    if squeeze_a:
        a = a.unsqueeze(0)
    if squeeze_b:
        b = b.unsqueeze(-1)
    if a.shape[-1] != b.shape[-2]:
        if input.ndim == 2 and other.ndim == 2:
            raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({a.shape[0]}x{a.shape[1]} and "
                               f"{b.shape[0]}x{b.shape[1]})")
        raise RuntimeError(f"matmul: inner dimensions differ: {list(input.shape)} @ {list(other.shape)} "
                           f"({a.shape[-1]} != {b.shape[-2]})")
    try:
        np.broadcast_shapes(tuple(a.shape[:-2]), tuple(b.shape[:-2]))
    except ValueError:
        raise RuntimeError(f"The size of tensor a must match the size of tensor b at non-singleton dimension: "
                           f"batch shapes {list(a.shape[:-2])} and {list(b.shape[:-2])} cannot be broadcast") from None
    r = apply(MATMUL, [a, b])
    if squeeze_a:
        r = r.squeeze(-2)
    if squeeze_b:
        r = r.squeeze(-1)
    if out is not None:
        out.copy_(r) if out.shape == r.shape else out.set_(r)
        return out
    return r


def mm(input: Tensor, mat2: Tensor, *, out=None) -> Tensor:
    if input.ndim != 2 or mat2.ndim != 2:
        raise RuntimeError(f"{'self' if input.ndim != 2 else 'mat2'} must be a matrix")
    if _amp.active:
        input, mat2 = cast_inputs("mm", input, mat2)
    return matmul(input, mat2, out=out)


def bmm(input: Tensor, mat2: Tensor, *, out=None) -> Tensor:
    if _amp.active:
        input, mat2 = cast_inputs("bmm", input, mat2)
    if input.ndim != 3 or mat2.ndim != 3:
        raise RuntimeError(f"batch1 must be a 3D tensor" if input.ndim != 3 else "batch2 must be a 3D tensor")
    if input.shape[0] != mat2.shape[0]:
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: [{input.shape[0]}, "
                           f"{input.shape[2]}] but got: [{mat2.shape[0]}, {mat2.shape[1]}].")
    return matmul(input, mat2, out=out)


def mv(input: Tensor, vec: Tensor) -> Tensor:
    if input.ndim != 2 or vec.ndim != 1:
        raise RuntimeError("vector + matrix @ vector expected, got " + f"{input.ndim}, {vec.ndim}")
    if _amp.active:
        input, vec = cast_inputs("mv", input, vec)
    return _no_autocast(matmul, input, vec)


def _no_autocast(fn, *args):
    """``fn(*args)`` with autocast off: products that torch does not lower on this device stay as they are."""
    if not _amp.active:
        return fn(*args)
    from ..amp.autocast_mode import autocast
    dev = next(a for a in args if isinstance(a, Tensor)).device.type
    with autocast(dev, enabled=False):
        return fn(*args)


def dot(input: Tensor, other: Tensor) -> Tensor:
    if _amp.active:
        input, other = cast_inputs("dot", input, other)
    if input.ndim != 1 or other.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {input.ndim}D and {other.ndim}D tensors")
    if input.shape[0] != other.shape[0]:
        raise RuntimeError(f"inconsistent tensor size, expected tensor [{input.shape[0]}] and src [{other.shape[0]}] "
                           "to have the same number of elements, but got "
                           f"{input.shape[0]} and {other.shape[0]} elements respectively")
    return _no_autocast(matmul, input, other)


inner = dot
vdot = dot


def outer(input: Tensor, vec2: Tensor) -> Tensor:
    return input.reshape(-1, 1) * vec2.reshape(1, -1)


ger = outer


def addmm(input, mat1, mat2, *, beta=1, alpha=1, out=None):
    """``beta * input + alpha * (mat1 @ mat2)``."""
    if _amp.active:
        input, mat1, mat2 = cast_inputs("addmm", input, mat1, mat2)
    r = mm(mat1, mat2)
    if alpha != 1:
        r = r * alpha
    if beta == 0:
        return r.expand(r.shape) if input.shape == r.shape else r
    return (input * beta if beta != 1 else input) + r


def addmv(input, mat, vec, *, beta=1, alpha=1):
    if _amp.active:
        input, mat, vec = cast_inputs("addmv", input, mat, vec)
    r = mv(mat, vec)
    return (input * beta if beta != 1 else input) + (r * alpha if alpha != 1 else r)


def baddbmm(input, batch1, batch2, *, beta=1, alpha=1):
    if _amp.active:
        input, batch1, batch2 = cast_inputs("baddbmm", input, batch1, batch2)
    r = bmm(batch1, batch2)
    if alpha != 1:
        r = r * alpha
    if beta == 0:
        return r
    return (input * beta if beta != 1 else input) + r


def addbmm(input, batch1, batch2, *, beta=1, alpha=1):
    if _amp.active:
        input, batch1, batch2 = cast_inputs("addbmm", input, batch1, batch2)
    r = _no_autocast(lambda b1, b2: bmm(b1, b2).sum(0), batch1, batch2)  # the batch sum keeps the product's dtype
    return (input * beta if beta != 1 else input) + (r * alpha if alpha != 1 else r)
