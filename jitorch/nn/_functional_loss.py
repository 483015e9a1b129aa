"""Loss functions of ``nn.functional`` (re-exported there), with torch's shape checks and reductions."""
from __future__ import annotations

import math
import warnings

import jitorch as J

from .. import _dtype as D
from .._tensor import Tensor
from ..amp.autocast_mode import state as _amp
from ..amp.policy import cast_inputs as _amp_cast
from ..ops.eager_fast import cpu_float_eager
from . import _ops

_REDUCTIONS = ("none", "mean", "sum")


def _legacy_reduction(size_average, reduce, emit_warning: bool = True) -> str:
    """torch's mapping of the deprecated ``size_average``/``reduce`` flags to ``reduction``."""
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    ret = "mean" if (size_average and reduce) else ("sum" if reduce else "none")
    if emit_warning:
        warnings.warn(f"size_average and reduce args will be deprecated, please use reduction='{ret}' instead.",
                      stacklevel=3)
    return ret


def _reduction(reduction: str, size_average=None, reduce=None) -> str:
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return reduction


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _warn_size(input: Tensor, target: Tensor) -> None:
    if tuple(target.shape) != tuple(input.shape):
        warnings.warn(f"Using a target size ({target.shape}) that is different to the input size ({input.shape}). "
                      "This will likely lead to incorrect results due to broadcasting. Please ensure they have "
                      "the same size.", stacklevel=3)


# -- regression -------------------------------------------------------------------------------------------
def mse_loss(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean",
             weight: Tensor | None = None) -> Tensor:
    """Mean squared error ``(input - target) ** 2``."""
    if _amp.active:
        input, target, weight = _amp_cast("mse_loss", input, target, weight)
    reduction = _reduction(reduction, size_average, reduce)
    _warn_size(input, target)
    d = input - target
    loss = d * d
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def l1_loss(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean",
            weight: Tensor | None = None) -> Tensor:
    """Mean absolute error ``|input - target|``."""
    if _amp.active:
        input, target, weight = _amp_cast("l1_loss", input, target, weight)
    reduction = _reduction(reduction, size_average, reduce)
    _warn_size(input, target)
    loss = (input - target).abs()
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def smooth_l1_loss(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean",
                   beta: float = 1.0) -> Tensor:
    """``0.5 d**2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 beta``."""
    if _amp.active:
        input, target = _amp_cast("smooth_l1_loss", input, target)
    reduction = _reduction(reduction, size_average, reduce)
    _warn_size(input, target)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    z = (input - target).abs()
    if beta == 0:
        return _reduce(z, reduction)
    loss = J.where(z < beta, 0.5 * z * z / beta, z - 0.5 * beta)
    return _reduce(loss, reduction)


def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0,
               weight: Tensor | None = None) -> Tensor:
    """``0.5 d**2`` where ``|d| < delta``, else ``delta (|d| - 0.5 delta)``."""
    if _amp.active:
        input, target, weight = _amp_cast("huber_loss", input, target, weight)
    reduction = _reduction(reduction)
    _warn_size(input, target)
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    z = (input - target).abs()
    loss = J.where(z < delta, 0.5 * z * z, delta * (z - 0.5 * delta))
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


# -- classification ------------------------------------------------------------------------------------------
def _nll_shapes(input: Tensor, target: Tensor):
    """(input as (N, C, K), target as (N, K), shape of the unreduced loss) with torch's checks."""
    if input.ndim < 1:
        raise ValueError(f"Expected 1 or more dimensions (got {input.ndim})")
    if target.dtype.is_floating_point:
        raise RuntimeError(f"expected target dtype to be Long or Byte, but got "
                           f"{target.type().split('.')[-1].replace('Tensor', '')}")
    if input.ndim == 1:  # unbatched: (C,) with a 0-d target
        if target.ndim != 0:
            raise RuntimeError(f"1D target tensor expects 0D input, but got {target.ndim}D target")
        return input.reshape(1, -1, 1), target.reshape(1, 1), ()
    n = input.shape[0]
    if target.ndim == 0 or target.shape[0] != n:
        raise ValueError(f"Expected input batch_size ({n}) to match target batch_size "
                         f"({target.shape[0] if target.ndim else 0}).")
    spatial = tuple(input.shape[2:])
    if tuple(target.shape[1:]) != spatial:
        raise RuntimeError(f"Expected target size {[n] + list(spatial)}, got {list(target.shape)}")
    c = input.shape[1]
    return input.reshape(n, c, -1), target.reshape(n, -1), (n,) + spatial


def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average=None,
             ignore_index: int = -100, reduce=None, reduction: str = "mean") -> Tensor:
    """Negative log likelihood of class-index targets given log-probabilities ``input`` (N, C, ...).

    ``mean`` divides by the summed weights of the non-ignored targets, as torch does.
    """
    if _amp.active:
        input, target, weight = _amp_cast("nll_loss", input, target, weight)
    reduction = _reduction(reduction, size_average, reduce)
    if reduction != "none" and input.ndim == 2 and target.ndim == 1 and target.shape[0] == input.shape[0] and \
            target.dtype is D.int64 and (weight is None or tuple(weight.shape) == (input.shape[1],)) and \
            target.device.type == "cpu" and cpu_float_eager(input, weight):
        w = weight.detach() if weight is not None else None
        return _ops.nll_loss_reduced(input, target, w, ignore_index, reduction == "mean")
    x, t, out_shape = _nll_shapes(input, target)
    c = x.shape[1]
    if weight is not None and (weight.ndim != 1 or weight.numel() != c):
        raise RuntimeError(f"weight tensor should be defined either for all {c} classes or no classes but got "
                           f"weight tensor of shape: {list(weight.shape)}")
    t = t.to(D.int64)
    w = weight.detach() if weight is not None else None
    loss = _ops.nll_gather(x, t, w, ignore_index)
    if reduction == "none":
        return loss.reshape(out_shape)
    total = loss.sum()
    if reduction == "sum":
        return total
    return total / _target_weight_sum(t, w, ignore_index, total.dtype)


def _target_weight_sum(t: Tensor, w: Tensor | None, ignore_index: int, dtype=None):
    """Sum of ``weight[t]`` over the targets that are not ignored (a constant; 0/0 gives NaN like torch).
    A float for CPU targets; a 0-d tensor for device targets, summed there (no read back)."""
    import numpy as np
    from .. import _dispatch
    if t._device.type != "cpu" or _dispatch._tracer is not None:  # a compiled graph recomputes it per call
        with J.no_grad():
            keep = t != ignore_index
            if w is None:
                return keep.sum()
            picked = w.double()[t.masked_fill(~keep, 0).reshape(-1)].reshape(t.shape)
            total = (picked * keep.double()).sum()
            return total.to(dtype) if dtype is not None else total
    arr = t._data
    keep = arr != ignore_index
    if w is None:
        return float(np.count_nonzero(keep))
    return float(w._data[np.where(keep, arr, 0)][keep].sum(dtype=np.float64))


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average=None,
                  ignore_index: int = -100, reduce=None, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Cross entropy of logits ``input`` (N, C, ...) against class indices or class probabilities."""
    if _amp.active:
        input, target, weight = _amp_cast("cross_entropy", input, target, weight)
    reduction = _reduction(reduction, size_average, reduce)
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    class_dim = 0 if input.ndim == 1 else 1
    logp = J.log_softmax(input, class_dim)
    if tuple(input.shape) == tuple(target.shape):
        if not target.dtype.is_floating_point:
            raise RuntimeError(f"Expected floating point type for target with class probabilities, got "
                               f"{target.type().split('.')[-1].replace('Tensor', '')}")
        return _cross_entropy_probs(logp, target, weight, reduction, label_smoothing, class_dim)
    loss = nll_loss(logp, target, weight, None, ignore_index, None, reduction)
    if label_smoothing == 0.0:
        return loss
    # torch: (1 - eps) * nll + eps / C * (sum over classes of -w_c * logp_c), ignored targets excluded
    c = input.shape[class_dim]
    wshape = [1] * input.ndim
    wshape[class_dim] = c
    smooth = -(logp * weight.reshape(wshape)).sum(class_dim) if weight is not None else -logp.sum(class_dim)
    keep = (target != ignore_index)
    smooth = smooth * keep.to(smooth.dtype)
    if reduction == "mean":
        if weight is not None:
            _, t, _ = _nll_shapes(logp, target)
            denom = _target_weight_sum(t, weight.detach(), ignore_index, smooth.dtype)
        else:
            denom = keep.sum().to(smooth.dtype)
        smooth = smooth.sum() / denom
    elif reduction == "sum":
        smooth = smooth.sum()
    return (1 - label_smoothing) * loss + smooth * (label_smoothing / c)


def _cross_entropy_probs(logp, target, weight, reduction, label_smoothing, class_dim):
    c = logp.shape[class_dim]
    if label_smoothing > 0:
        target = target * (1 - label_smoothing) + label_smoothing / c
    prod = logp * target
    if weight is not None:
        shape = [1] * logp.ndim
        shape[class_dim] = c
        prod = prod * weight.reshape(shape)
    if reduction == "none":
        return -prod.sum(class_dim)
    total = -prod.sum()
    if reduction == "sum":
        return total
    n = logp.numel() // c if c else 0
    return total / n if n else total * math.nan


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average=None,
                         reduce=None, reduction: str = "mean") -> Tensor:
    """``-(t log x + (1 - t) log(1 - x))`` with the logs clamped at -100, like torch."""
    if _amp.active:
        input, target, weight = _amp_cast("binary_cross_entropy", input, target, weight)
    reduction = _reduction(reduction, size_average, reduce)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"Using a target size ({target.shape}) that is different to the input size "
                         f"({input.shape}) is deprecated. Please ensure they have the same size.")
    x_ok, t_ok = _in_unit_interval(input, target)
    if not x_ok:
        raise RuntimeError("all elements of input should be between 0 and 1")
    if not t_ok:
        raise RuntimeError("all elements of target should be between 0 and 1")
    from .._dispatch import elementwise
    loss = elementwise(_ops.BINARY_CROSS_ENTROPY, input, target)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def _in_unit_interval(*tensors: Tensor) -> list[bool]:
    """Whether all elements of each tensor lie in [0, 1] (device tensors: one read for all)."""
    if all(t._device.type == "cpu" for t in tensors):
        return [bool(not t._data.size or ((t._data >= 0) & (t._data <= 1)).all()) for t in tensors]
    with J.no_grad():
        flags = J.stack([((t >= 0) & (t <= 1)).all().to(tensors[0].device) for t in tensors])
    return [bool(v) for v in flags.tolist()]


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                     size_average=None, reduce=None, reduction: str = "mean",
                                     pos_weight: Tensor | None = None) -> Tensor:
    """BCE of ``sigmoid(input)`` computed stably from logits; ``pos_weight`` scales the positive term."""
    if _amp.active:
        input, target, weight, pos_weight = _amp_cast("binary_cross_entropy_with_logits", input, target, weight, pos_weight)
    reduction = _reduction(reduction, size_average, reduce)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"Target size ({target.shape}) must be the same as input size ({input.shape})")
    log_sig = -J.softplus(-input, 1.0, 20.0)
    if pos_weight is not None:
        log_weight = (pos_weight - 1) * target + 1
        loss = (1 - target) * input - log_weight * log_sig
    else:
        loss = (1 - target) * input - log_sig
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def kl_div(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean",
           log_target: bool = False) -> Tensor:
    """KL(target || exp(input)) pointwise: ``target * (log target - input)``; 'batchmean' divides by N."""
    if _amp.active:
        input, target = _amp_cast("kl_div", input, target)
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce)
    elif reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the support size."
                      "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
                      "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
                      stacklevel=2)
    if reduction not in _REDUCTIONS + ("batchmean",):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    if log_target:
        loss = J.exp(target) * (target - input)
    else:
        # xlogy(t, t): 0 where t == 0 (the log's argument is masked so its gradient stays finite)
        safe = J.where(target > 0, target, J.ones((), dtype=target.dtype))
        loss = target * J.log(safe) - target * input
    if reduction == "batchmean":
        total = loss.sum()
        return total / input.shape[0] if input.ndim else total
    return _reduce(loss, reduction)


def poisson_nll_loss(input: Tensor, target: Tensor, log_input: bool = True, full: bool = False,
                     size_average=None, eps: float = 1e-8, reduce=None, reduction: str = "mean") -> Tensor:
    """Poisson negative log likelihood (``full`` adds Stirling's term where target > 1)."""
    if _amp.active:
        input, target = _amp_cast("poisson_nll_loss", input, target)
    reduction = _reduction(reduction, size_average, reduce)
    if log_input:
        loss = J.exp(input) - target * input
    else:
        loss = input - target * J.log(input + eps)
    if full:
        safe = J.where(target > 1, target, J.ones((), dtype=target.dtype))
        stirling = safe * J.log(safe) - safe + 0.5 * J.log(2 * math.pi * safe)
        loss = loss + J.where(target > 1, stirling, J.zeros((), dtype=stirling.dtype))
    return _reduce(loss, reduction)


def gaussian_nll_loss(input: Tensor, target: Tensor, var, full: bool = False, eps: float = 1e-6,
                      reduction: str = "mean") -> Tensor:
    """``0.5 (log var + (input - target)**2 / var)`` (+ ``0.5 log 2 pi`` when ``full``)."""
    reduction = _reduction(reduction)
    if not isinstance(var, Tensor):
        var = J.full(tuple(input.shape), float(var), dtype=input.dtype, device=input.device)
    if tuple(var.shape) != tuple(input.shape):
        if tuple(input.shape[:-1]) == tuple(var.shape):
            var = var.unsqueeze(-1)
        elif not (tuple(input.shape[:-1]) == tuple(var.shape[:-1]) and var.shape[-1] == 1):
            raise ValueError("var is of incorrect size")
    if bool((var.detach() < 0).any()):
        raise ValueError("var has negative entry/entries")
    var = J.clamp(var, min=eps)
    d = input - target
    loss = 0.5 * (J.log(var) + d * d / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)


# -- margins and embeddings ----------------------------------------------------------------------------------
def cosine_embedding_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0,
                          size_average=None, reduce=None, reduction: str = "mean") -> Tensor:
    """``1 - cos`` for target 1, ``max(0, cos - margin)`` for target -1."""
    if _amp.active:
        input1, input2, target = _amp_cast("cosine_embedding_loss", input1, input2, target)
    reduction = _reduction(reduction, size_average, reduce)
    if input1.ndim not in (1, 2) or input1.shape != input2.shape:
        raise RuntimeError(f"cosine_embedding_loss: expected 1D or 2D inputs of equal shape, got "
                           f"{list(input1.shape)} and {list(input2.shape)}")
    dim = input1.ndim - 1
    if target.ndim != input1.ndim - 1 or (dim and target.shape[0] != input1.shape[0]):
        raise RuntimeError(f"The size of tensor a ({input1.shape[0]}) must match the size of tensor b "
                           f"({target.shape[0] if target.ndim else 1}) at non-singleton dimension 0")
    eps = 1e-12
    prod = (input1 * input2).sum(dim)
    mag1 = (input1 * input1).sum(dim) + eps
    mag2 = (input2 * input2).sum(dim) + eps
    cos = prod / (mag1 * mag2).sqrt()
    zero = J.zeros((), dtype=cos.dtype)
    loss = J.where(target == 1, 1 - cos, zero) + J.where(target == -1, J.clamp(cos - margin, min=0.0), zero)
    return _reduce(loss, reduction)


def margin_ranking_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0, size_average=None,
                        reduce=None, reduction: str = "mean") -> Tensor:
    """``max(0, -target * (input1 - input2) + margin)``."""
    if _amp.active:
        input1, input2, target = _amp_cast("margin_ranking_loss", input1, input2, target)
    reduction = _reduction(reduction, size_average, reduce)
    if input1.ndim != input2.ndim or input1.ndim != target.ndim:
        raise RuntimeError(f"margin_ranking_loss : All input tensors should have same dimension but got sizes: "
                           f"input1: {input1.shape}, input2: {input2.shape}, target: {target.shape} ")
    return _reduce(J.clamp(-target * (input1 - input2) + margin, min=0.0), reduction)


def hinge_embedding_loss(input: Tensor, target: Tensor, margin: float = 1.0, size_average=None, reduce=None,
                         reduction: str = "mean") -> Tensor:
    """``x`` for target 1, ``max(0, margin - x)`` for target -1."""
    if _amp.active:
        input, target = _amp_cast("hinge_embedding_loss", input, target)
    reduction = _reduction(reduction, size_average, reduce)
    zero = J.zeros((), dtype=input.dtype)
    margin_part = J.where(target == -1, J.clamp(margin - input, min=0.0), zero)
    self_part = J.where(target == 1, input, zero)
    return _reduce(margin_part + self_part, reduction)


def soft_margin_loss(input: Tensor, target: Tensor, size_average=None, reduce=None,
                     reduction: str = "mean") -> Tensor:
    """``log(1 + exp(-target * input))``."""
    if _amp.active:
        input, target = _amp_cast("soft_margin_loss", input, target)
    reduction = _reduction(reduction, size_average, reduce)
    return _reduce(J.softplus(-target * input, 1.0, 20.0), reduction)


def multilabel_soft_margin_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average=None,
                                reduce=None, reduction: str = "mean") -> Tensor:
    """Per-sample mean over classes of the binary logistic loss."""
    reduction = _reduction(reduction, size_average, reduce)
    log_sig = -J.softplus(-input, 1.0, 20.0)
    log_sig_neg = -J.softplus(input, 1.0, 20.0)
    loss = -(target * log_sig + (1 - target) * log_sig_neg)
    if weight is not None:
        loss = loss * weight
    loss = loss.sum(input.ndim - 1) / input.shape[-1]
    return _reduce(loss, reduction)


def triplet_margin_loss(anchor: Tensor, positive: Tensor, negative: Tensor, margin: float = 1.0, p: float = 2,
                        eps: float = 1e-6, swap: bool = False, size_average=None, reduce=None,
                        reduction: str = "mean") -> Tensor:
    """``max(d(a, p) - d(a, n) + margin, 0)`` with pairwise p-norm distances."""
    if _amp.active:
        anchor, positive, negative = _amp_cast("triplet_margin_loss", anchor, positive, negative)
    from .functional import pairwise_distance
    reduction = _reduction(reduction, size_average, reduce)
    d_pos = pairwise_distance(anchor, positive, p, eps)
    d_neg = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_neg = J.minimum(d_neg, pairwise_distance(positive, negative, p, eps))
    return _reduce(J.clamp(margin + d_pos - d_neg, min=0.0), reduction)


def triplet_margin_with_distance_loss(anchor: Tensor, positive: Tensor, negative: Tensor, *, distance_function=None,
                                      margin: float = 1.0, swap: bool = False, reduction: str = "mean") -> Tensor:
    """``max(d(a, p) - d(a, n) + margin, 0)`` with a custom distance (pairwise L2 by default)."""
    from .functional import pairwise_distance
    reduction = _reduction(reduction)
    if margin <= 0:
        raise ValueError(f"triplet_margin_with_distance_loss: expected margin to be greater than 0, got {margin} "
                         "instead")
    dist = distance_function if distance_function is not None else pairwise_distance
    d_pos = dist(anchor, positive)
    d_neg = dist(anchor, negative)
    if swap:
        d_neg = J.minimum(d_neg, dist(positive, negative))
    return _reduce(J.clamp(margin + d_pos - d_neg, min=0.0), reduction)


def _class_mask(target: Tensor, c: int, dtype) -> Tensor:
    """One-hot (N, C) mask of the target classes, as constants of ``dtype``."""
    import numpy as np
    from .. import _dispatch
    t = target._data.reshape(-1)
    if _dispatch._tracer is not None:  # a compiled graph must recompute the mask from each call's target
        return (target.reshape(-1, 1) == J.arange(c, device=target.device)).to(dtype)
    if target._device.type != "cpu":
        from ..runtime.cuda.device_checks import check_range
        check_range(t, 0, c, "multi_margin_loss", "target {value} out of range [0, {bound})")  # no host sync
        return (target.reshape(-1, 1) == J.arange(c, device=target.device)).to(dtype)
    if t.size and (t.min() < 0 or t.max() >= c):
        raise RuntimeError("target out of range")
    mask = (t[:, None] == np.arange(c)).astype(dtype.numpy_dtype)
    return J.from_numpy(mask)


def multi_margin_loss(input: Tensor, target: Tensor, p: int = 1, margin: float = 1.0, weight: Tensor | None = None,
                      size_average=None, reduce=None, reduction: str = "mean") -> Tensor:
    """Multi-class hinge loss: ``sum_{i != y} max(0, margin - x[y] + x[i])**p * w[y] / C``."""
    if _amp.active:
        input, target, weight = _amp_cast("multi_margin_loss", input, target, weight)
    reduction = _reduction(reduction, size_average, reduce)
    if p not in (1, 2):
        raise ValueError("only p == 1 and p == 2 supported")
    unbatched = input.ndim <= 1
    x = input.reshape(1, -1) if unbatched else input
    if x.ndim != 2:
        raise RuntimeError(f"Expected non-empty vector or matrix with optional 0-dim batch size, but got: "
                           f"{list(input.shape)}")
    _, c = x.shape
    mask = _class_mask(target, c, x.dtype)
    x_y = (x * mask).sum(1, keepdim=True)
    z = J.clamp(margin - x_y + x, min=0.0)
    h = z if p == 1 else z * z
    if weight is not None:
        h = h * (mask * weight).sum(1, keepdim=True)
    loss = (h * (1 - mask)).sum(1) / c
    if unbatched:
        loss = loss.reshape(())
    return _reduce(loss, reduction)


def multilabel_margin_loss(input: Tensor, target: Tensor, size_average=None, reduce=None,
                           reduction: str = "mean") -> Tensor:
    """``sum_{j in targets, i not in targets} max(0, 1 - (x[j] - x[i])) / C``; targets end at the first -1."""
    if _amp.active:
        input, target = _amp_cast("multilabel_margin_loss", input, target)
    import numpy as np
    reduction = _reduction(reduction, size_average, reduce)
    unbatched = input.ndim <= 1
    x = input.reshape(1, -1) if unbatched else input
    t = target._host().reshape(x.shape)  # a device target is read once: the classes are walked on the host
    c = x.shape[1]
    is_target = np.zeros(x.shape, dtype=bool)
    for row in range(x.shape[0]):
        for k in range(c):
            cls = int(t[row, k])
            if cls < 0:
                break
            if cls >= c:
                raise RuntimeError(f"target index {cls} out of range for {c} classes")
            is_target[row, cls] = True
    dt = x.dtype.numpy_dtype
    pos = J.from_numpy(is_target.astype(dt)).to(x.device).unsqueeze(2)
    neg = J.from_numpy((~is_target).astype(dt)).to(x.device).unsqueeze(1)
    hinge = J.clamp(1 - (x.unsqueeze(2) - x.unsqueeze(1)), min=0.0)
    loss = (hinge * pos * neg).sum((1, 2)) / c
    if unbatched:
        loss = loss.reshape(())
    return _reduce(loss, reduction)
