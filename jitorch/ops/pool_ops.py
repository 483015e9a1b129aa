"""Pooling: max (with argmax indices), average and adaptive pooling, as primitives.

* Max pooling runs a non-differentiable kernel that returns the values and the
  flat argmax index of every window (torch's ``return_indices`` convention:
  an index into the flattened ``H*W`` plane).  When a gradient is needed the
  output is re-expressed as ``plane_gather(x, indices)``, whose derivative rule
  is ``plane_scatter_add`` and vice versa, so the backward is a scatter and the
  double backward a gather, both recorded as ops.
* Average pooling (plain and adaptive) is linear: forward and backward are
  two primitives that are each other's derivative rule.
"""
from __future__ import annotations

import numpy as np

from .._dispatch import apply
from .._tensor import Tensor
from ..autograd import grad_mode
from ..runtime import conv_kernels as K
from .eager_fast import cpu_float_eager
from .nn_ops import _float_like, _pair, _planes
from .registry import impl, kernel_op


# -- gather / scatter within planes ------------------------------------------------------------------
def _gather_vjp(c, g):
    return (plane_scatter_add(g, c.inputs[1], c.in_meta[0][0][1]), None)


def _scatter_vjp(c, g):
    return (plane_gather(g, c.inputs[1]), None)


PLANE_GATHER = kernel_op("plane_gather", nin=2, vjp=_gather_vjp, node_name="MaxPool2DWithIndicesBackward0")
PLANE_SCATTER = kernel_op("plane_scatter_add", nin=2, vjp=_scatter_vjp,
                          node_name="MaxPool2DWithIndicesBackwardBackward0")


@impl("plane_gather")
def _gather_cpu(src, idx):
    s = np.ascontiguousarray(_float_like(src))
    out = np.empty(idx.shape, dtype=s.dtype)
    if out.size:
        K.plane_gather(s, np.ascontiguousarray(idx), out)
    return out.astype(src.dtype) if out.dtype != src.dtype else out


@impl("plane_scatter_add")
def _scatter_cpu(g, idx, size):
    src = np.ascontiguousarray(_float_like(g))
    out = np.zeros((idx.shape[0], size), dtype=src.dtype)
    if src.size:
        K.plane_scatter_add(src, np.ascontiguousarray(idx), out)
    return out.astype(g.dtype) if out.dtype != g.dtype else out


def plane_gather(src: Tensor, idx: Tensor) -> Tensor:
    """``out[p, l] = src[p, idx[p, l]]`` for 2-D ``src`` (P, S) and int64 ``idx`` (P, L)."""
    return apply(PLANE_GATHER, [src, idx])


def plane_scatter_add(g: Tensor, idx: Tensor, size: int) -> Tensor:
    """``out[p, idx[p, l]] += g[p, l]`` into zeros of shape (P, size)."""
    return apply(PLANE_SCATTER, [g, idx], {"size": int(size)})


def _needs_grad(x: Tensor) -> bool:
    return x.requires_grad and grad_mode.is_grad_enabled()


def _gather_output(x4: Tensor, idx: Tensor, vals: Tensor) -> Tensor:
    """The pooled values, recorded as a gather from ``x4`` when autograd needs them."""
    if not _needs_grad(x4):
        return vals
    n, c, h, w = x4.shape
    oh, ow = idx.shape[2:]
    flat = plane_gather(x4.reshape(n * c, h * w), idx.reshape(n * c, oh * ow))
    return flat.reshape(n, c, oh, ow)


# -- shapes ---------------------------------------------------------------------------------------------
def _pool_out(n, k, s, p, d, ceil):
    num = n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil else 0)
    out = num // s + 1
    if ceil and (out - 1) * s >= n + p:
        out -= 1
    return out


def _as_4d(input: Tensor, nd: int, name: str):
    """(N, C, H, W) view of a batched or unbatched 1-D/2-D pooling input, and how to undo it."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}(): argument 'input' (position 1) must be Tensor, not {type(input).__name__}")
    if nd == 2:
        if input.ndim not in (3, 4) or any(s == 0 for s in input.shape[-3:]):
            raise RuntimeError("non-empty 3D or 4D (batch mode) tensor expected for input")
        x = input if input.ndim == 4 else input.unsqueeze(0)
        return x, (lambda t: t if input.ndim == 4 else t.squeeze(0))
    if input.ndim not in (2, 3):
        raise RuntimeError(f"{name}: Expected 2D or 3D (batch mode) tensor with optional 0 dim batch size for "
                           f"input, but got:{list(input.shape)}")
    x = (input if input.ndim == 3 else input.unsqueeze(0)).unsqueeze(2)
    return x, (lambda t: t.squeeze(2) if input.ndim == 3 else t.squeeze(2).squeeze(0))


def _window_args(nd, kernel_size, stride, padding, dilation, name):
    k = _pair(kernel_size, nd, "kernel_size", name)
    s = k if stride is None or (not isinstance(stride, int) and len(stride) == 0) else _pair(stride, nd, "stride",
                                                                                              name)
    p = _pair(padding, nd, "padding", name)
    d = _pair(dilation, nd, "dilation", name)
    if any(v == 0 for v in s):
        raise RuntimeError("stride should not be zero")
    if any(v <= 0 for v in k):
        raise RuntimeError(f"kernel size should be greater than zero, but got {list(k)}")
    if any(v <= 0 for v in d):
        raise RuntimeError("dilation should be greater than zero, but got " +
                           " ".join(f"dilation{a}: {v}" for a, v in zip("HW" if nd == 2 else "W", d)))
    for kk, pp, dd in zip(k, p, d):
        if pp < 0 or pp > (dd * (kk - 1) + 1) // 2:
            raise RuntimeError(f"pad should be at most half of effective kernel size, but got pad={pp}, "
                               f"kernel_size={kk} and dilation={dd}")
    if nd == 1:  # pool a height-1 image
        k, s, p, d = (1,) + k, (1,) + s, (0,) + p, (1,) + d
    return k, s, p, d


def _check_out(x4, oh, ow, nd):
    if oh < 1 or ow < 1:
        c, h, w = x4.shape[1:]
        if nd == 1:
            raise RuntimeError(f"Given input size: ({c}x{w}). Calculated output size: ({c}x{ow}). Output size is "
                               "too small")
        raise RuntimeError(f"Given input size: ({c}x{h}x{w}). Calculated output size: ({c}x{oh}x{ow}). Output "
                           "size is too small")


# -- max pooling -------------------------------------------------------------------------------------------
MAXPOOL = kernel_op("max_pool2d_with_indices", n_outputs=2, differentiable=False)


@impl("max_pool2d_with_indices")
def _maxpool_cpu(x, k, s, p, d, out_hw):
    n, c = x.shape[:2]
    oh, ow = out_hw
    planes = _planes(x)
    val = np.empty((n * c, oh, ow), dtype=planes.dtype)
    idx = np.empty((n * c, oh, ow), dtype=np.int64)
    if val.size:
        run = K.maxpool_par if K.use_parallel(n * c, val.size * k[0] * k[1]) else K.maxpool_ser
        run(planes, k[0], k[1], s[0], s[1], p[0], p[1], d[0], d[1], val, idx)
    val = val.reshape(n, c, oh, ow)
    return (val.astype(x.dtype) if val.dtype != x.dtype else val), idx.reshape(n, c, oh, ow)


# The eager CPU fast path (see ``eager_fast``) when a gradient is needed: one differentiable primitive
# returning (indices, values), whose rule scatters the gradient through the indices, instead of the
# kernel above plus a recorded gather of the values (a second pass and three reshapes each way).
def _max_pool_train_vjp(c, grads):
    g = grads[1]
    return (None if g is None else apply(MAXPOOL_BACKWARD, [g, c.out], {"in_hw": c.in_meta[0][0][2:]}),)


def _max_pool_backward_vjp(c, gg):
    n, c_, h, w = gg.shape
    idx = c.inputs[1]
    oh, ow = idx.shape[2:]
    flat = plane_gather(gg.reshape(n * c_, h * w), idx.reshape(n * c_, oh * ow))
    return flat.reshape(n, c_, oh, ow), None


MAXPOOL_TRAIN = kernel_op("max_pool2d_train", n_outputs=2, saves="out", vjp=_max_pool_train_vjp,
                          node_name="MaxPool2DWithIndicesBackward0")
MAXPOOL_BACKWARD = kernel_op("max_pool2d_backward", nin=2, saves="inputs", vjp=_max_pool_backward_vjp,
                             node_name="MaxPool2DWithIndicesBackwardBackward0")


@impl("max_pool2d_train")
def _maxpool_train_cpu(x, k, s, p, d, out_hw):
    vals, idx = _maxpool_cpu(x, k, s, p, d, out_hw)
    return idx, vals


@impl("max_pool2d_backward")
def _maxpool_backward_cpu(g, idx, in_hw):
    n, c, oh, ow = g.shape
    out = np.zeros((n * c, in_hw[0] * in_hw[1]), dtype=g.dtype)
    if g.size:
        K.plane_scatter_add(np.ascontiguousarray(g).reshape(n * c, oh * ow),
                            np.ascontiguousarray(idx).reshape(n * c, oh * ow), out)
    return out.reshape(n, c, in_hw[0], in_hw[1])


def _max_pool(nd, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, name):
    x4, undo = _as_4d(input, nd, name)
    k, s, p, d = _window_args(nd, kernel_size, stride, padding, dilation, name)
    oh = _pool_out(x4.shape[2], k[0], s[0], p[0], d[0], ceil_mode)
    ow = _pool_out(x4.shape[3], k[1], s[1], p[1], d[1], ceil_mode)
    _check_out(x4, oh, ow, nd)
    attrs = {"k": k, "s": s, "p": p, "d": d, "out_hw": (oh, ow)}
    if _needs_grad(x4) and cpu_float_eager(x4):
        idx, out = apply(MAXPOOL_TRAIN, [x4], attrs)
        out = undo(out)
        return (out, undo(idx)) if return_indices else out
    vals, idx = apply(MAXPOOL, [x4], attrs)
    out = undo(_gather_output(x4, idx, vals))
    return (out, undo(idx)) if return_indices else out


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Max over sliding windows of ``(N, C, L)``; ``return_indices`` gives argmax positions in ``L``."""
    return _max_pool(1, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, "max_pool1d")


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Max over sliding windows of ``(N, C, H, W)``; indices are flat positions in ``H*W``, as in torch."""
    return _max_pool(2, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, "max_pool2d")


def max_pool1d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                            return_indices=True):
    return max_pool1d(input, kernel_size, stride, padding, dilation, ceil_mode, True)


def max_pool2d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                            return_indices=True):
    return max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, True)


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Place pooled values back at their argmax positions (zeros elsewhere)."""
    x4, undo = _as_4d(input, 2, "max_unpool2d")
    k = _pair(kernel_size, 2, "kernel_size")
    s = k if stride is None else _pair(stride, 2, "stride")
    p = _pair(padding, 2, "padding")
    n, c, h, w = x4.shape
    if output_size is None:
        oh, ow = (h - 1) * s[0] - 2 * p[0] + k[0], (w - 1) * s[1] - 2 * p[1] + k[1]
    else:
        oh, ow = tuple(output_size)[-2:]
    idx = indices.reshape(n * c, h * w)
    if bool((idx < 0).any()) or bool((idx >= oh * ow).any()):
        raise RuntimeError(f"Found an invalid max index: {int(idx.amax())} (output volumes are of size {oh}x{ow}")
    out = plane_scatter_add(x4.reshape(n * c, h * w), idx, oh * ow)
    return undo(out.reshape(n, c, oh, ow))


# -- average pooling ----------------------------------------------------------------------------------------
def _avg_attrs_vjp(c, g, op):
    return (apply(op, [g], c.attrs),)


AVGPOOL = kernel_op("avg_pool2d", saves="none", vjp=lambda c, g: _avg_attrs_vjp(c, g, AVGPOOL_BACKWARD))
AVGPOOL_BACKWARD = kernel_op("avg_pool2d_backward", saves="none", vjp=lambda c, g: _avg_attrs_vjp(c, g, AVGPOOL))


def _avg_run(src, k, s, p, include_pad, divisor, in_hw, out_hw, forward):
    n, c = src.shape[:2]
    planes = _planes(src)
    shape = out_hw if forward else in_hw
    out = (np.empty if forward else np.zeros)((n * c,) + tuple(shape), dtype=planes.dtype)
    if out.size and planes.size:
        run = K.avgpool_par if K.use_parallel(n * c, max(out.size, planes.size) * k[0] * k[1]) else K.avgpool_ser
        run(planes, k[0], k[1], s[0], s[1], p[0], p[1], include_pad, divisor, out, forward)
    out = out.reshape((n, c) + tuple(shape))
    return out.astype(src.dtype) if out.dtype != src.dtype else out


@impl("avg_pool2d")
def _avgpool_cpu(x, k, s, p, include_pad, divisor, in_hw, out_hw):
    return _avg_run(x, k, s, p, include_pad, divisor, in_hw, out_hw, True)


@impl("avg_pool2d_backward")
def _avgpool_bwd_cpu(g, k, s, p, include_pad, divisor, in_hw, out_hw):
    return _avg_run(g, k, s, p, include_pad, divisor, in_hw, out_hw, False)


def _avg_pool(nd, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, name):
    x4, undo = _as_4d(input, nd, name)
    if divisor_override is not None and divisor_override == 0:
        raise RuntimeError("divisor must be not zero")
    k, s, p, _ = _window_args(nd, kernel_size, stride, padding, 1, name)
    h, w = x4.shape[2:]
    oh, ow = _pool_out(h, k[0], s[0], p[0], 1, ceil_mode), _pool_out(w, k[1], s[1], p[1], 1, ceil_mode)
    _check_out(x4, oh, ow, nd)
    attrs = {"k": k, "s": s, "p": p, "include_pad": bool(count_include_pad),
             "divisor": int(divisor_override or 0), "in_hw": (h, w), "out_hw": (oh, ow)}
    return undo(apply(AVGPOOL, [x4], attrs))


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Mean over sliding windows of ``(N, C, L)``."""
    return _avg_pool(1, input, kernel_size, stride, padding, ceil_mode, count_include_pad, None, "avg_pool1d")


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Mean over sliding windows of ``(N, C, H, W)`` with torch's divisor rules."""
    return _avg_pool(2, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override,
                     "avg_pool2d")


# -- adaptive pooling ------------------------------------------------------------------------------------------
ADAPTIVE_AVG = kernel_op("adaptive_avg_pool2d", saves="none",
                         vjp=lambda c, g: (apply(ADAPTIVE_AVG_BACKWARD, [g], c.attrs),))
ADAPTIVE_AVG_BACKWARD = kernel_op("adaptive_avg_pool2d_backward", saves="none",
                                  vjp=lambda c, g: (apply(ADAPTIVE_AVG, [g], c.attrs),))
ADAPTIVE_MAX = kernel_op("adaptive_max_pool2d", n_outputs=2, differentiable=False)


def _adaptive_avg_run(src, shape, forward):
    n, c = src.shape[:2]
    planes = _planes(src)
    out = (np.empty if forward else np.zeros)((n * c,) + tuple(shape), dtype=planes.dtype)
    if out.size and planes.size:
        run = K.adaptive_avg_par if K.use_parallel(n * c, max(out.size, planes.size)) else K.adaptive_avg_ser
        run(planes, out, forward)
    out = out.reshape((n, c) + tuple(shape))
    return out.astype(src.dtype) if out.dtype != src.dtype else out


@impl("adaptive_avg_pool2d")
def _adaptive_avg_cpu(x, in_hw, out_hw):
    return _adaptive_avg_run(x, out_hw, True)


@impl("adaptive_avg_pool2d_backward")
def _adaptive_avg_bwd_cpu(g, in_hw, out_hw):
    return _adaptive_avg_run(g, in_hw, False)


@impl("adaptive_max_pool2d")
def _adaptive_max_cpu(x, out_hw):
    n, c = x.shape[:2]
    planes = _planes(x)
    val = np.empty((n * c,) + tuple(out_hw), dtype=planes.dtype)
    idx = np.empty((n * c,) + tuple(out_hw), dtype=np.int64)
    if val.size:
        run = K.adaptive_max_par if K.use_parallel(n * c, planes.size) else K.adaptive_max_ser
        run(planes, val, idx)
    val = val.reshape((n, c) + tuple(out_hw))
    return (val.astype(x.dtype) if val.dtype != x.dtype else val), idx.reshape((n, c) + tuple(out_hw))


def _adaptive_sizes(nd, input, x4, output_size, name):
    sizes = (output_size,) * nd if isinstance(output_size, (int, np.integer)) or output_size is None \
        else tuple(output_size)
    if len(sizes) == 1 and nd == 2:
        sizes = sizes * 2
    if len(sizes) != nd:
        raise ValueError(f"{name}: output_size must be {nd}")
    spatial = tuple(input.shape[-nd:])
    sizes = tuple(spatial[i] if v is None else int(v) for i, v in enumerate(sizes))
    for d in range(1, input.ndim):
        if input.shape[d] == 0:
            raise RuntimeError(f"{name}(): Expected input to have non-zero size for non-batch dimensions, but "
                               f"input has sizes {list(input.shape)} with dimension {d} being empty")
    if any(v < 0 for v in sizes):
        raise RuntimeError(f"{name}: elements of output_size must be greater than or equal to 0 but received "
                           f"{list(sizes)}")
    return (1,) + sizes if nd == 1 else sizes


def _adaptive_4d(nd, input, name):
    if nd == 2:
        if input.ndim not in (3, 4):
            raise RuntimeError(f"{name}(): Expected 3D or 4D tensor, but got {list(input.shape)}")
        x4 = input if input.ndim == 4 else input.unsqueeze(0)
        return x4, (lambda t: t if input.ndim == 4 else t.squeeze(0))
    if input.ndim not in (2, 3):
        raise RuntimeError(f"{name}(): Expected 2D or 3D tensor, but got {list(input.shape)}")
    x4 = (input if input.ndim == 3 else input.unsqueeze(0)).unsqueeze(2)
    return x4, (lambda t: t.squeeze(2) if input.ndim == 3 else t.squeeze(2).squeeze(0))


def _adaptive_avg(nd, input, output_size, name):
    x4, undo = _adaptive_4d(nd, input, name)
    out_hw = _adaptive_sizes(nd, input, x4, output_size, name)
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"\"{name}\" not implemented for '{input.dtype.name}'")
    return undo(apply(ADAPTIVE_AVG, [x4], {"in_hw": tuple(x4.shape[2:]), "out_hw": out_hw}))


def _adaptive_max(nd, input, output_size, return_indices, name):
    x4, undo = _adaptive_4d(nd, input, name)
    out_hw = _adaptive_sizes(nd, input, x4, output_size, name)
    vals, idx = apply(ADAPTIVE_MAX, [x4], {"out_hw": out_hw})
    out = undo(_gather_output(x4, idx, vals))
    return (out, undo(idx)) if return_indices else out


def adaptive_avg_pool1d(input, output_size):
    """Average pooling to a fixed output length (windows ``[floor(i*L/o), ceil((i+1)*L/o))``)."""
    return _adaptive_avg(1, input, output_size, "adaptive_avg_pool1d")


def adaptive_avg_pool2d(input, output_size):
    """Average pooling to a fixed ``(oH, oW)``; ``None`` entries keep the input size."""
    return _adaptive_avg(2, input, output_size, "adaptive_avg_pool2d")


def adaptive_max_pool1d(input, output_size, return_indices=False):
    return _adaptive_max(1, input, output_size, return_indices, "adaptive_max_pool1d")


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Max pooling to a fixed ``(oH, oW)``; indices are flat positions in ``H*W``."""
    return _adaptive_max(2, input, output_size, return_indices, "adaptive_max_pool2d")

