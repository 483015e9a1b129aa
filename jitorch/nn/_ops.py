"""Registry primitives that ``nn.functional`` needs and that are not compositions of others.

Each one is torch's own aten op with its derivative rule written with jitorch ops:
- ``embedding`` / ``embedding_backward``: row gather and its scatter-add (each the other's derivative);
- ``nll_gather`` / ``nll_scatter``: ``-w[t] * x[n, t]`` per target (ignore_index -> 0) and its adjoint;
- ``binary_cross_entropy``: elementwise, with torch's clamp of the logs at -100 and its exact backward;
- ``pad_constant`` and ``pad_gather`` / ``pad_scatter``: padding by a constant, and padding by per-dim
  index maps (reflect, replicate, circular) with its scatter-add adjoint.
"""
from __future__ import annotations

import numba
import numpy as np

from .._dispatch import apply
from ..ops.registry import elementwise as ew
from ..ops.registry import impl, kernel_op


# -- embedding ----------------------------------------------------------------------------------------
@numba.njit(cache=True, nogil=True, error_model="numpy")
def _scatter_rows(g2d, idx, padding_idx, out):
    for i in range(idx.size):
        r = idx[i]
        if r != padding_idx:
            for j in range(g2d.shape[1]):
                out[r, j] += g2d[i, j]


EMBEDDING = kernel_op("embedding", nin=2, saves="inputs",
                      vjp=lambda c, g: (embedding_backward(g, c.inputs[1], c.in_meta[0][0][0],
                                                           c.attrs["padding_idx"]), None))
EMBEDDING_BACKWARD = kernel_op(
    "embedding_backward", nin=2, saves="inputs",
    vjp=lambda c, g: (embedding_rows(g, c.inputs[1], c.attrs["padding_idx"]), None),
    node_name="EmbeddingBackwardBackward0")


@impl("embedding")
def _embedding_impl(weight, indices, padding_idx):
    return np.take(weight, indices, axis=0)


@impl("embedding_backward")
def _embedding_backward_impl(grad, indices, num_weights, padding_idx):
    dim = grad.shape[-1]
    acc_dt = np.float32 if grad.dtype == np.float16 else grad.dtype
    out = np.zeros((num_weights, dim), dtype=acc_dt)
    g2d = np.ascontiguousarray(grad.reshape(-1, dim), dtype=acc_dt)
    idx = np.ascontiguousarray(indices.reshape(-1), dtype=np.int64)
    _scatter_rows(g2d, idx, -1 if padding_idx is None else padding_idx, out)
    return out.astype(grad.dtype, copy=False)


def embedding_rows(weight, indices, padding_idx=None):
    """``weight[indices]`` (rows); the gradient skips row ``padding_idx``."""
    return apply(EMBEDDING, [weight, indices], {"padding_idx": padding_idx})


def embedding_backward(grad, indices, num_weights: int, padding_idx=None):
    return apply(EMBEDDING_BACKWARD, [grad, indices], {"num_weights": num_weights, "padding_idx": padding_idx})


# -- negative log likelihood ----------------------------------------------------------------------------
def _nll_gather_vjp(c, g):
    return (nll_scatter(g, c.inputs[1], c.inputs[2], c.in_meta[0][0], c.attrs["ignore_index"]), None, None)


def _nll_scatter_vjp(c, g):
    return (nll_gather(g, c.inputs[1], c.inputs[2], c.attrs["ignore_index"]), None, None)


NLL_GATHER = kernel_op("nll_gather", nin=3, vjp=_nll_gather_vjp, node_name="NllLossBackward0")
NLL_SCATTER = kernel_op("nll_scatter", nin=3, vjp=_nll_scatter_vjp, node_name="NllLossBackwardBackward0")


def _safe_targets(target, ignore_index):
    keep = target != ignore_index
    return np.where(keep, target, 0), keep


@impl("nll_gather")
def _nll_gather_impl(x, target, weight, ignore_index):
    # x: (N, C, K), target: (N, K), weight: (C,) or None -> (N, K)
    t, keep = _safe_targets(target, ignore_index)
    bad = (t < 0) | (t >= x.shape[1])
    if bad.any():  # checked here, so compiled graphs (which run this kernel) check as well
        raise IndexError(f"Target {t[bad].flat[0]} is out of bounds.")
    picked = np.take_along_axis(x, t[:, None, :], axis=1)[:, 0, :]
    w = weight[t].astype(x.dtype, copy=False) if weight is not None else 1
    return np.where(keep, -(w * picked), 0).astype(x.dtype, copy=False)


@impl("nll_scatter")
def _nll_scatter_impl(g, target, weight, shape, ignore_index):
    # g: (N, K) -> (N, C, K) holding -w[t] * g at the target class
    t, keep = _safe_targets(target, ignore_index)
    w = weight[t].astype(g.dtype, copy=False) if weight is not None else 1
    vals = np.where(keep, -(w * g), 0).astype(g.dtype, copy=False)
    out = np.zeros(shape, dtype=g.dtype)
    np.put_along_axis(out, t[:, None, :], vals[:, None, :], axis=1)
    return out


def nll_gather(x, target, weight, ignore_index: int):
    """Per-target loss ``-weight[t] * x[n, t, k]`` of a (N, C, K) input and (N, K) targets."""
    return apply(NLL_GATHER, [x, target, weight], {"ignore_index": ignore_index})


def nll_scatter(g, target, weight, shape, ignore_index: int):
    return apply(NLL_SCATTER, [g, target, weight], {"shape": tuple(shape), "ignore_index": ignore_index})


# -- fused reduced NLL (the eager CPU fast path of ``nll_loss`` with 'mean'/'sum', see ``ops.eager_fast``) --
# One primitive from (N, C) log-probabilities and (N,) targets to the reduced loss, and one for its
# gradient, instead of a gather, a sum and a division each way.  Each is the other's derivative rule.
def _nll_reduced_vjp(c, g):
    _, target, weight = c.inputs
    return (nll_reduced_backward(g, target, weight, c.in_meta[0][0], c.attrs), None, None)


def _nll_reduced_backward_vjp(c, gg):
    _, target, weight = c.inputs
    a = c.attrs
    return (apply(NLL_REDUCED, [gg, target, weight], {"ignore_index": a["ignore_index"], "mean": a["mean"]}),
            None, None)


NLL_REDUCED = kernel_op("nll_loss_reduced", nin=3, vjp=_nll_reduced_vjp, node_name="NllLossBackward0")
NLL_REDUCED_BACKWARD = kernel_op("nll_loss_reduced_backward", nin=3, vjp=_nll_reduced_backward_vjp,
                                 node_name="NllLossBackwardBackward0")


def _weights_or_dummy(weight, dtype):
    return weight if weight is not None else np.empty(1, dtype=dtype)


def _raise_bad_target(bad: int) -> None:
    if bad != _NO_BAD:
        raise IndexError(f"Target {bad} is out of bounds.")


_NO_BAD = np.iinfo(np.int64).min


@impl("nll_loss_reduced")
def _nll_reduced_cpu(logp, target, weight, ignore_index, mean):
    sums = np.zeros(2, dtype=np.float64)  # sum of -w[t] * logp[n, t], sum of w[t]
    _raise_bad_target(_nll_reduced_kernel(logp, target, _weights_or_dummy(weight, logp.dtype), weight is not None,
                                          ignore_index, _NO_BAD, sums))
    if not mean:
        return np.asarray(sums[0], dtype=logp.dtype)
    with np.errstate(invalid="ignore", divide="ignore"):  # every target ignored: 0/0 = nan, as in torch
        return np.asarray(sums[0] / sums[1], dtype=logp.dtype)


@impl("nll_loss_reduced_backward")
def _nll_reduced_backward_cpu(g, target, weight, shape, ignore_index, mean):
    out = np.zeros(shape, dtype=g.dtype)
    _nll_reduced_grad_kernel(float(g), target, _weights_or_dummy(weight, g.dtype), weight is not None,
                             ignore_index, mean, out)
    return out


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _nll_reduced_kernel(logp, target, weight, has_w, ignore_index, no_bad, sums):
    n_c = logp.shape[1]
    s = 0.0
    wsum = 0.0
    for n in range(target.shape[0]):
        t = target[n]
        if t == ignore_index:
            continue
        if t < 0 or t >= n_c:
            return t
        w = float(weight[t]) if has_w else 1.0
        s -= w * float(logp[n, t])
        wsum += w
    sums[0] = s
    sums[1] = wsum
    return no_bad


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _nll_reduced_grad_kernel(g, target, weight, has_w, ignore_index, mean, out):
    wsum = 0.0
    if mean:
        for n in range(target.shape[0]):
            t = target[n]
            if t != ignore_index:
                wsum += float(weight[t]) if has_w else 1.0
    scale = -g / wsum if mean else -g
    for n in range(target.shape[0]):
        t = target[n]
        if t != ignore_index:
            out[n, t] = (float(weight[t]) if has_w else 1.0) * scale


def nll_reduced_backward(g, target, weight, shape, attrs):
    return apply(NLL_REDUCED_BACKWARD, [g, target, weight], {"shape": tuple(shape), **attrs})


def nll_loss_reduced(logp, target, weight, ignore_index: int, mean: bool):
    """``nll_loss`` of (N, C) ``logp`` and (N,) int64 ``target`` reduced by mean (over the target weights)
    or sum, as one primitive."""
    return apply(NLL_REDUCED, [logp, target, weight], {"ignore_index": int(ignore_index), "mean": bool(mean)})


# -- binary cross entropy ---------------------------------------------------------------------------------
def _bce_vjp(c, g):
    import jitorch as J
    x, t = c.inputs
    gx = gt = None
    if c.needs_input_grad[0]:
        gx = g * (x - t) / J.clamp((1 - x) * x, min=1e-12)
    if c.needs_input_grad[1]:
        gt = g * (J.clamp(J.log1p(-x), min=-100.0) - J.clamp(J.log(x), min=-100.0))
    return gx, gt


BINARY_CROSS_ENTROPY = ew(
    "binary_cross_entropy", 2,
    "(({1} - {T}(1)) * max(math.log1p(-{0}) if {0} < 1 else -math.inf, {T}(-100))"
    " - {1} * max(math.log({0}) if {0} > 0 else -math.inf, {T}(-100)))",
    _bce_vjp, dtype_rule="float")


# -- padding ------------------------------------------------------------------------------------------------
def _pad_constant_vjp(c, g):
    from ..ops.views import basic_index
    return (basic_index(g, c.attrs["region"]),)


PAD_CONSTANT = kernel_op("pad_constant", vjp=_pad_constant_vjp, saves="none", node_name="ConstantPadNdBackward0")


@impl("pad_constant")
def _pad_constant_impl(x, widths, value, region):
    return np.pad(x, widths, mode="constant", constant_values=value)


def pad_constant(x, widths, value):
    """Pad with ``value``; ``widths`` is a non-negative (before, after) pair per dim."""
    region = tuple(slice(b, b + n) for (b, _), n in zip(widths, x.shape))
    return apply(PAD_CONSTANT, [x], {"widths": tuple(widths), "value": value, "region": region})


PAD_GATHER = kernel_op("pad_gather", saves="none", node_name="ReflectionPadBackward0",
                       vjp=lambda c, g: (pad_scatter(g, c.attrs["maps"], c.in_meta[0][0]),))
PAD_SCATTER = kernel_op("pad_scatter", saves="none",
                        vjp=lambda c, g: (pad_gather(g, c.attrs["maps"]),))


@impl("pad_gather")
def _pad_gather_impl(x, maps):
    for d, idx in maps:
        x = np.take(x, idx, axis=d)
    return np.ascontiguousarray(x)


@impl("pad_scatter")
def _pad_scatter_impl(g, maps, shape):
    sizes = list(g.shape)
    for d, idx in reversed(maps):
        sizes[d] = shape[d]
        out = np.zeros(sizes, dtype=g.dtype)
        # move the padded dim first so add.at accumulates whole slabs
        np.add.at(np.moveaxis(out, d, 0), idx, np.moveaxis(g, d, 0))
        g = out
    return g


def pad_gather(x, maps):
    """``x`` indexed along dim ``d`` by array ``idx`` for each ``(d, idx)`` in ``maps``."""
    return apply(PAD_GATHER, [x], {"maps": tuple(maps)})


def pad_scatter(g, maps, shape):
    return apply(PAD_SCATTER, [g], {"maps": tuple(maps), "shape": tuple(shape)})
