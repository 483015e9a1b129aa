"""Training-mode batch norm as one primitive: the eager CPU fast path of ``F.batch_norm``.

``batch_norm_train(x, weight, bias)`` returns the per-channel statistics
(``(3, C)``: mean, ``1/sqrt(var + eps)``, variance) and the normalized output, in one
kernel; its derivative rule is the primitive ``batch_norm_backward``.  Under
``create_graph`` the rule instead differentiates a recorded re-run of the
composite (``batch_norm_composite``, which captures and other devices run), so
higher derivatives stay exact.
"""
from __future__ import annotations

import numpy as np

from .._dispatch import apply
from .._tensor import Tensor
from ..autograd import grad_mode
from ..runtime import norm_kernels as K
from ..runtime import parallel
from .registry import impl, kernel_op


def _ncl(a: np.ndarray) -> np.ndarray:
    rest = 1
    for s in a.shape[2:]:
        rest *= s
    return np.ascontiguousarray(a).reshape(a.shape[0], a.shape[1], rest)


def _by_channels(run, c: int, work: int) -> None:
    """``run(c0, c1)`` over all channels, in two halves shared with the helper thread when big enough."""
    parts = parallel.split(c, 2)
    parallel.run_chunks(lambda k: run(*parts[k]), len(parts), work)


def _placeholder(a, c, dtype):
    return a if a is not None else np.empty(c, dtype=dtype)


def _bn_vjp(c, grads):
    g = grads[1]
    x, w, b = c.inputs
    if g is None:
        return None, None, None
    if grad_mode.is_grad_enabled():
        return _replay_grads(c, g)
    need = c.needs_input_grad
    gx, gw, gb = apply(BATCH_NORM_BACKWARD, [g, x, w, c.out], {"want_x": bool(need[0])})
    return (gx if need[0] else None, gw if w is not None and need[1] else None,
            gb if b is not None and need[2] else None)


def batch_norm_composite(x: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float):
    """(normalized x, batch mean, biased batch variance) written with ordinary ops (keepdim shapes)."""
    import jitorch as J
    dims = (0,) + tuple(range(2, x.ndim))
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    mean = x.mean(dims, keepdim=True)
    centered = x - mean
    var = (centered * centered).mean(dims, keepdim=True)
    y = centered * J.rsqrt(var + eps)
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y, mean, var


def _replay_grads(c, g):
    import jitorch as J
    x, w, b = c.inputs
    y = batch_norm_composite(x, w, b, c.attrs["eps"])[0]
    wanted = [i for i, t in enumerate((x, w, b)) if t is not None and c.needs_input_grad[i]]
    got = J.autograd.grad([y], [(x, w, b)[i] for i in wanted], [g], create_graph=True, allow_unused=True)
    res = [None, None, None]
    for i, gi in zip(wanted, got):
        res[i] = gi
    return tuple(res)


BATCH_NORM_TRAIN = kernel_op("batch_norm_train", nin=3, n_outputs=2, saves="both", vjp=_bn_vjp,
                             node_name="NativeBatchNormBackward0")
BATCH_NORM_BACKWARD = kernel_op("batch_norm_backward", nin=4, n_outputs=3, differentiable=False)


@impl("batch_norm_train")
def _bn_train_cpu(x, w, b, eps):
    x3 = _ncl(x)
    c = x3.shape[1]
    y = np.empty(x3.shape, dtype=x.dtype)
    stats = np.empty((3, c), dtype=np.float64)  # the backward reuses them: keep full precision
    wp, bp = _placeholder(w, c, x.dtype), _placeholder(b, c, x.dtype)
    _by_channels(lambda c0, c1: K.bn_forward(x3, wp, bp, w is not None, b is not None, float(eps), y, stats,
                                             c0, c1), c, 3 * x3.size)
    return stats, y.reshape(x.shape)


@impl("batch_norm_backward")
def _bn_backward_cpu(g, x, w, stats, want_x):
    x3 = _ncl(x)
    c = x3.shape[1]
    gx = np.empty(x3.shape if want_x else (0, 0, 0), dtype=x.dtype)  # not written unless wanted
    gwb = np.empty((2, c), dtype=x.dtype)
    g3, wp = _ncl(g), _placeholder(w, c, x.dtype)
    _by_channels(lambda c0, c1: K.bn_backward(g3, x3, wp, w is not None, stats, want_x, gx, gwb, c0, c1), c,
                 2 * x3.size)
    # separate arrays, not views of gwb: a leaf's .grad can then take them without a copy
    return gx.reshape(x.shape if want_x else (0,)), gwb[0].copy(), gwb[1].copy()


def batch_norm_train(x: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float):
    """(stats (3, C) float64: mean, 1/sqrt(var + eps) and biased var per channel, normalized x)."""
    return apply(BATCH_NORM_TRAIN, [x, weight, bias], {"eps": float(eps)})
