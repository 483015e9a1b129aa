"""Log-softmax as one primitive: the eager CPU fast path of ``jitorch.log_softmax``.

The composite in ``ops.reductions`` (max, subtract, exp, sum, log, subtract) is
what captures and other devices run; eagerly on the CPU one fused kernel does
the same arithmetic (see ``eager_fast``).  Its derivative rule is the primitive
``log_softmax_backward`` (``g - exp(y) * sum(g)``), whose own rule is written
with ordinary ops, so higher derivatives work.
"""
from __future__ import annotations

import numpy as np

from .._dispatch import apply
from .._tensor import Tensor
from ..runtime import softmax_kernels as K
from .registry import impl, kernel_op


def _as_3d(a: np.ndarray, dim: int) -> np.ndarray:
    """A C-contiguous (outer, size of ``dim``, inner) view or copy of ``a``."""
    a = np.ascontiguousarray(a)
    if a.ndim == 0:
        return a.reshape(1, 1, 1)
    outer = 1
    for s in a.shape[:dim]:
        outer *= s
    return a.reshape(outer, a.shape[dim], -1)


def _log_softmax_vjp(c, g):
    return (log_softmax_backward(g, c.out, c.attrs["dim"]),)


def _log_softmax_backward_vjp(c, gg):
    import jitorch as J
    g, y = c.inputs
    dim = c.attrs["dim"]
    e = J.exp(y)
    gg_g = gg - (gg * e).sum(dim, keepdim=True) if c.needs_input_grad[0] else None
    gg_y = -gg * e * g.sum(dim, keepdim=True) if c.needs_input_grad[1] else None
    return gg_g, gg_y


LOG_SOFTMAX = kernel_op("log_softmax", vjp=_log_softmax_vjp, saves="out", node_name="LogSoftmaxBackward0")
LOG_SOFTMAX_BACKWARD = kernel_op("log_softmax_backward", nin=2, vjp=_log_softmax_backward_vjp,
                                 node_name="LogSoftmaxBackwardDataBackward0")


@impl("log_softmax")
def _log_softmax_cpu(x, dim):
    out = np.empty(x.shape, dtype=x.dtype)
    if x.size:
        K.log_softmax_fwd(_as_3d(x, dim), _as_3d(out, dim))
    return out


@impl("log_softmax_backward")
def _log_softmax_backward_cpu(g, y, dim):
    out = np.empty(g.shape, dtype=g.dtype)
    if g.size:
        K.log_softmax_bwd(_as_3d(g, dim), _as_3d(y, dim), _as_3d(out, dim))
    return out


def log_softmax_fused(x: Tensor, dim: int) -> Tensor:
    """``log_softmax`` of a CPU float tensor along the non-negative ``dim`` as one kernel."""
    return apply(LOG_SOFTMAX, [x], {"dim": dim})


def log_softmax_backward(g: Tensor, y: Tensor, dim: int) -> Tensor:
    return apply(LOG_SOFTMAX_BACKWARD, [g, y], {"dim": dim})
