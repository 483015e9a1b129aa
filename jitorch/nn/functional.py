"""``nn.functional``: stateless layers, activations, normalization, padding and losses.

Everything here is a composite of jitorch ops (so it gets gradients, and later
fusion, for free) except a few primitives in ``nn._ops`` (embedding, NLL gather,
BCE, padding) whose derivatives are not compositions of other ops.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

import jitorch as J

from .. import _dtype as D
from .._tensor import Tensor
from ..amp.autocast_mode import state as _amp
from ..amp.policy import cast_inputs as _amp_cast
from ..ops.eager_fast import cpu_float_eager
from ..ops.indexing_base import out_of_bounds
from ..ops.linalg import linear_2d
from . import _ops
from ._functional_loss import (  # noqa: F401
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cosine_embedding_loss,
    cross_entropy,
    gaussian_nll_loss,
    hinge_embedding_loss,
    huber_loss,
    kl_div,
    l1_loss,
    margin_ranking_loss,
    mse_loss,
    multi_margin_loss,
    multilabel_margin_loss,
    multilabel_soft_margin_loss,
    nll_loss,
    poisson_nll_loss,
    smooth_l1_loss,
    soft_margin_loss,
    triplet_margin_loss,
    triplet_margin_with_distance_loss,
)
from ._functional_norm import (  # noqa: F401
    batch_norm,
    group_norm,
    instance_norm,
    layer_norm,
    local_response_norm,
    rms_norm,
)

# -- linear layers ---------------------------------------------------------------------------------------


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``input @ weight.T + bias`` over the last dim of ``input``."""
    if _amp.active:
        input, weight, bias = _amp_cast("linear", input, weight, bias)
    if weight.ndim == 1:
        out = J.matmul(input, weight)
        return out + bias if bias is not None else out
    in_f = weight.shape[-1]
    if input.ndim == 0 or input.shape[-1] != in_f:
        rows = input.numel() // input.shape[-1] if input.ndim and input.shape[-1] else 1
        cols = input.shape[-1] if input.ndim else 1
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({rows}x{cols} and {in_f}x{weight.shape[0]})")
    if input.ndim >= 2 and (bias is None or tuple(bias.shape) == (weight.shape[0],)) and \
            cpu_float_eager(input, weight, bias):
        if input.ndim == 2:
            return linear_2d(input, weight, bias)  # one primitive and one backward node
        lead = tuple(input.shape[:-1])
        return linear_2d(input.reshape(-1, in_f), weight, bias).reshape(lead + (weight.shape[0],))
    if input.ndim > 2:
        lead = tuple(input.shape[:-1])
        out = J.matmul(input.reshape(-1, in_f), weight.mT).reshape(lead + (weight.shape[0],))
    else:
        out = J.matmul(input, weight.mT)
    return out + bias if bias is not None else out


def bilinear(input1: Tensor, input2: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``y_k = input1 @ weight[k] @ input2 + bias[k]``."""
    if _amp.active:
        input1, input2, weight, bias = _amp_cast("bilinear", input1, input2, weight, bias)
    out_f, in1, in2 = weight.shape
    if input1.shape[:-1] != input2.shape[:-1]:
        raise RuntimeError(f"bilinear(): input batch dimensions do not match: got {list(input1.shape[:-1])} and "
                           f"{list(input2.shape[:-1])}")
    if input1.shape[-1] != in1 or input2.shape[-1] != in2:
        raise RuntimeError(f"bilinear(): input sizes do not match weight: got {input1.shape[-1]} and "
                           f"{input2.shape[-1]}, expected {in1} and {in2}")
    lead = tuple(input1.shape[:-1])
    a = input1.reshape(-1, in1)
    b = input2.reshape(-1, in2)
    w = weight.permute(1, 0, 2).reshape(in1, out_f * in2)
    y = (J.matmul(a, w).reshape(-1, out_f, in2) * b.unsqueeze(1)).sum(-1)
    if bias is not None:
        y = y + bias
    return y.reshape(lead + (out_f,))


# -- activations ------------------------------------------------------------------------------------------
def _maybe_inplace(input: Tensor, out: Tensor, inplace: bool) -> Tensor:
    """Write a composite's result back into ``input`` for ``inplace=True``."""
    return input.copy_(out) if inplace else out


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    return input.relu_() if inplace else J.relu(input)


def relu_(input: Tensor) -> Tensor:
    return input.relu_()


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    return hardtanh(input, 0.0, 6.0, inplace)


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    return J.hardtanh(input, float(min_val), float(max_val), inplace)


def hardtanh_(input: Tensor, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    return hardtanh(input, min_val, max_val, True)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    return J.elu(input, alpha, inplace)


def elu_(input: Tensor, alpha: float = 1.0) -> Tensor:
    return J.elu(input, alpha, True)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    return _maybe_inplace(input, J.elu(input, _SELU_ALPHA) * _SELU_SCALE, inplace)


def selu_(input: Tensor) -> Tensor:
    return selu(input, True)


def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    if alpha == 0:
        raise RuntimeError("ZeroDivisionError")
    return _maybe_inplace(input, J.elu(input / alpha, 1.0) * alpha, inplace)


def celu_(input: Tensor, alpha: float = 1.0) -> Tensor:
    return celu(input, alpha, True)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    return J.leaky_relu(input, negative_slope, inplace)


def leaky_relu_(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    return J.leaky_relu(input, negative_slope, True)


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    """``max(0, x) + weight * min(0, x)`` with one weight, or one per channel (dim 1)."""
    if _amp.active:
        input, weight = _amp_cast("prelu", input, weight)
    if weight.numel() == 1:
        w = weight.reshape(())
    else:
        cdim = 1 if input.ndim >= 2 else 0
        if input.ndim == 0 or input.shape[cdim] != weight.numel():
            raise RuntimeError(f"Mismatch of parameter numbers and input channel size. Found parameter numbers = "
                               f"{weight.numel()} and channel size = {input.shape[cdim] if input.ndim else 1}.")
        shape = [1] * input.ndim
        shape[cdim] = weight.numel()
        w = weight.reshape(shape)
    return J.where(input > 0, input, w * input)


def rrelu(input: Tensor, lower: float = 1.0 / 8, upper: float = 1.0 / 3, training: bool = False,
          inplace: bool = False) -> Tensor:
    """Randomized leaky ReLU: slopes ~ U(lower, upper) in training, their mean in eval."""
    if not training:
        return J.leaky_relu(input, (lower + upper) / 2, inplace)
    slopes = J.empty(input.shape, dtype=input.dtype, device=input.device).uniform_(lower, upper)
    return _maybe_inplace(input, J.where(input >= 0, input, input * slopes), inplace)


def rrelu_(input: Tensor, lower: float = 1.0 / 8, upper: float = 1.0 / 3, training: bool = False) -> Tensor:
    return rrelu(input, lower, upper, training, True)


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    return J.gelu(input, approximate=approximate)


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    return _maybe_inplace(input, J.silu(input), inplace)


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    return _maybe_inplace(input, input * J.tanh(J.softplus(input)), inplace)


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    return _maybe_inplace(input, input * J.hardtanh(input + 3.0, 0.0, 6.0) / 6.0, inplace)


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    return _maybe_inplace(input, J.hardtanh(input + 3.0, 0.0, 6.0) / 6.0, inplace)


def sigmoid(input: Tensor) -> Tensor:
    return J.sigmoid(input)


def tanh(input: Tensor) -> Tensor:
    return J.tanh(input)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    if _amp.active:
        input = _amp_cast("softplus", input)
    return J.softplus(input, beta, threshold)


def logsigmoid(input: Tensor) -> Tensor:
    """``log(sigmoid(x)) = -softplus(-x)``, stable for large |x|."""
    return -J.softplus(-input, 1.0, 20.0)


def softsign(input: Tensor) -> Tensor:
    return input / (input.abs() + 1)


def tanhshrink(input: Tensor) -> Tensor:
    return input - J.tanh(input)


def threshold(input: Tensor, threshold: float, value: float, inplace: bool = False) -> Tensor:
    """``x`` where ``x > threshold``, else ``value``."""
    return _maybe_inplace(input, J.where(input > threshold, input, J.tensor(value, dtype=input.dtype)), inplace)


def threshold_(input: Tensor, threshold_: float, value: float) -> Tensor:
    return threshold(input, threshold_, value, True)


def softshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    if lambd < 0:
        raise RuntimeError(f"lambda must be greater or equal to 0, but found to be {lambd}.")
    zero = J.zeros((), dtype=input.dtype)
    return J.where(input > lambd, input - lambd, J.where(input < -lambd, input + lambd, zero))


def hardshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    zero = J.zeros((), dtype=input.dtype)
    return J.where((input > lambd) | (input < -lambd), input, zero)


def glu(input: Tensor, dim: int = -1) -> Tensor:
    """``a * sigmoid(b)`` where ``a, b`` are the two halves of ``input`` along ``dim``."""
    if input.ndim == 0:
        raise RuntimeError("glu does not support scalars because halving size must be even")
    d = dim + input.ndim if dim < 0 else dim
    n = input.shape[d]
    if n % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension {d} is size {n}")
    a = input.narrow(d, 0, n // 2)
    b = input.narrow(d, n // 2, n // 2)
    return a * J.sigmoid(b)


def _softmax_dim(name: str, ndim: int, stacklevel: int) -> int:
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call to include dim=X "
                  "as an argument.", stacklevel=stacklevel)
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    if dim is None:
        dim = _softmax_dim("softmax", input.ndim, _stacklevel)
    return J.softmax(input, dim, dtype=dtype)


def log_softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    if dim is None:
        dim = _softmax_dim("log_softmax", input.ndim, _stacklevel)
    return J.log_softmax(input, dim, dtype=dtype)


def softmin(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    if dim is None:
        dim = _softmax_dim("softmin", input.ndim, _stacklevel)
    if dtype is not None:
        input = input.to(dtype)
    elif _amp.active:
        input = _amp_cast("softmin", input)
    return J.softmax(-input, dim)


# -- dropout ---------------------------------------------------------------------------------------------------
def _check_p(p: float) -> None:
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def _keep_mask(input: Tensor, p: float, shape) -> Tensor:
    """A 0/1 tensor (input's dtype, on input's device, drawn there) keeping each entry with probability ``1 - p``."""
    return J.empty(tuple(shape), dtype=input.dtype, device=input.device).bernoulli_(1.0 - p)


def _apply_mask(input: Tensor, mask: Tensor, inplace: bool) -> Tensor:
    return input.mul_(mask) if inplace else input * mask


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by ``1/(1-p)`` (training only)."""
    _check_p(p)
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return _apply_mask(input, J.zeros((), dtype=input.dtype), inplace)
    mask = _keep_mask(input, p, input.shape)
    return _apply_mask(input, mask * (1.0 / (1.0 - p)), inplace)


def _feature_dropout(input: Tensor, p: float, training: bool, inplace: bool, batched: bool) -> Tensor:
    _check_p(p)
    if not training or p == 0.0:
        return input
    x = input if batched else input.unsqueeze(0)
    noise_shape = tuple(x.shape[:2]) + (1,) * (x.ndim - 2)
    if p == 1.0:
        mask = J.zeros(noise_shape, dtype=input.dtype, device=input.device)
    else:
        mask = _keep_mask(input, p, noise_shape) * (1.0 / (1.0 - p))
    if not batched:
        mask = mask.squeeze(0)
    return _apply_mask(input, mask, inplace)


def dropout1d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of (N, C, L) or (C, L) inputs."""
    if input.ndim not in (2, 3):
        raise RuntimeError(f"dropout1d: Expected 2D or 3D input, but received a {input.ndim}D input. Note that "
                           "dropout1d exists to provide channel-wise dropout on inputs with 1 spatial dimension, a "
                           "channel dimension, and an optional batch dimension (i.e. 2D or 3D inputs).")
    return _feature_dropout(input, p, training, inplace, input.ndim == 3)


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of (N, C, H, W) inputs (3-D inputs: channel-wise 1D dropout, as torch does)."""
    if input.ndim not in (3, 4):
        warnings.warn(f"dropout2d: Received a {input.ndim}-D input to dropout2d, which is deprecated and will "
                      "result in an error in a future release. To retain the behavior and silence this warning, "
                      "please use dropout instead. Note that dropout2d exists to provide channel-wise dropout on "
                      "inputs with 2 spatial dimensions, a channel dimension, and an optional batch dimension "
                      "(i.e. 3D or 4D inputs).", stacklevel=2)
    if input.ndim == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout "
                      "behavior is desired - input is interpreted as shape (N, C, L), where C is the channel dim. "
                      "This behavior will change in a future release to interpret the input as one without a "
                      "batch dimension, i.e. shape (C, H, W). To maintain the 1D channel-wise dropout behavior, "
                      "please switch to using dropout1d instead.", stacklevel=2)
    return _feature_dropout(input, p, training, inplace, True)


def dropout3d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of (N, C, D, H, W) or (C, D, H, W) inputs."""
    if input.ndim not in (4, 5):
        warnings.warn(f"dropout3d: Received a {input.ndim}-D input to dropout3d, which is deprecated and will "
                      "result in an error in a future release.", stacklevel=2)
    return _feature_dropout(input, p, training, inplace, input.ndim == 5)


_SELU_NEG = 1.7580993408473766  # -SELU's saturation value: alpha * scale


def _alpha_dropout(input, p, training, inplace, feature):
    _check_p(p)
    if not training or p == 0.0 or input.numel() == 0:
        return input
    if p == 1.0:
        return _maybe_inplace(input, input * J.zeros((), dtype=input.dtype), inplace)
    shape = (tuple(input.shape[:2]) + (1,) * (input.ndim - 2)) if feature else tuple(input.shape)
    keep = _keep_mask(input, p, shape)
    a = 1.0 / math.sqrt((_SELU_NEG ** 2 * p + 1) * (1 - p))
    b = (keep - 1) * (_SELU_NEG * a) + _SELU_NEG * a * p
    return _maybe_inplace(input, input * (keep * a) + b, inplace)


def alpha_dropout(input: Tensor, p: float = 0.5, training: bool = False, inplace: bool = False) -> Tensor:
    """Dropout that keeps SELU activations' mean and variance (dropped values go to -alpha*scale)."""
    return _alpha_dropout(input, p, training, inplace, False)


def feature_alpha_dropout(input: Tensor, p: float = 0.5, training: bool = False, inplace: bool = False) -> Tensor:
    return _alpha_dropout(input, p, training, inplace, True)


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12, out=None) -> Tensor:
    """``input / max(||input||_p, eps)`` along ``dim``."""
    denom = J.clamp(J.norm(input, p, dim, keepdim=True), min=eps).expand_as(input)
    res = input / denom
    if out is not None:
        return out.copy_(res)
    return res


# -- distances ----------------------------------------------------------------------------------------------
def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """``<x1, x2> / (max(||x1||, eps) * max(||x2||, eps))`` along ``dim`` (inputs broadcast)."""
    if _amp.active:
        x1, x2 = _amp_cast("cosine_similarity", x1, x2)
    n1 = J.clamp(J.norm(x1, 2, dim, keepdim=True), min=eps)
    n2 = J.clamp(J.norm(x2, 2, dim, keepdim=True), min=eps)
    return ((x1 / n1) * (x2 / n2)).sum(dim)


def pairwise_distance(x1: Tensor, x2: Tensor, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> Tensor:
    """``||x1 - x2 + eps||_p`` over the last dim."""
    nd = max(x1.ndim, x2.ndim)
    return J.norm(x1 - x2 + eps, p, nd - 1, keepdim=keepdim)


def pdist(input: Tensor, p: float = 2.0) -> Tensor:
    """Distances between all row pairs ``i < j`` of an (N, M) input, as a flat vector."""
    if input.ndim != 2:
        raise RuntimeError(f"pdist only supports 2D tensors, got: {input.ndim}D")
    if _amp.active:
        input = _amp_cast("pdist", input)
    i, j = np.triu_indices(input.shape[0], 1)
    a = input.index_select(0, J.from_numpy(i.astype(np.int64)).to(input.device))
    b = input.index_select(0, J.from_numpy(j.astype(np.int64)).to(input.device))
    return J.norm(a - b, p, 1)


# -- rearrangement ------------------------------------------------------------------------------------------
def pixel_shuffle(input: Tensor, upscale_factor: int) -> Tensor:
    """(*, C r^2, H, W) -> (*, C, H r, W r)."""
    if input.ndim < 3:
        raise RuntimeError(f"pixel_shuffle expects input to have at least 3 dimensions, but got input with "
                           f"{input.ndim} dimension(s)")
    r = upscale_factor
    *lead, c, h, w = input.shape
    if c % (r * r):
        raise RuntimeError(f"pixel_shuffle expects its input's 'channel' dimension to be divisible by the square of "
                           f"upscale_factor, but input.size(-3)={c} is not divisible by {r * r}")
    n = len(lead)
    x = input.reshape(*lead, c // (r * r), r, r, h, w)
    x = x.permute(*range(n), n, n + 3, n + 1, n + 4, n + 2)
    return x.reshape(*lead, c // (r * r), h * r, w * r)


def pixel_unshuffle(input: Tensor, downscale_factor: int) -> Tensor:
    """(*, C, H r, W r) -> (*, C r^2, H, W)."""
    if input.ndim < 3:
        raise RuntimeError(f"pixel_unshuffle expects input to have at least 3 dimensions, but got input with "
                           f"{input.ndim} dimension(s)")
    r = downscale_factor
    *lead, c, h, w = input.shape
    if h % r or w % r:
        raise RuntimeError(f"pixel_unshuffle expects height and width to be divisible by downscale_factor, but "
                           f"input.size(-2)={h} and input.size(-1)={w} with downscale_factor={r}")
    n = len(lead)
    x = input.reshape(*lead, c, h // r, r, w // r, r)
    x = x.permute(*range(n), n, n + 2, n + 4, n + 1, n + 3)
    return x.reshape(*lead, c * r * r, h // r, w // r)


def channel_shuffle(input: Tensor, groups: int) -> Tensor:
    """Interleave the channels of ``groups`` equal groups."""
    if input.ndim < 3:
        raise RuntimeError(f"channel_shuffle expects input to have at least 3 dimensions, but got input with "
                           f"{input.ndim} dimension(s)")
    n, c = input.shape[0], input.shape[1]
    if groups <= 0 or c % groups:
        raise RuntimeError(f"Number of channels must be divisible by groups. Got {c} channels and {groups} groups.")
    rest = tuple(input.shape[2:])
    return input.reshape(n, groups, c // groups, *rest).transpose(1, 2).reshape(n, c, *rest)


native_channel_shuffle = channel_shuffle


def gumbel_softmax(logits: Tensor, tau: float = 1.0, hard: bool = False, eps: float = 1e-10,
                   dim: int = -1) -> Tensor:
    """Softmax of Gumbel-perturbed logits; ``hard`` returns one-hot samples with soft gradients."""
    gumbels = -J.empty(tuple(logits.shape), dtype=logits.dtype, device=logits.device).exponential_().log()
    y_soft = J.softmax((logits + gumbels) / tau, dim)
    if not hard:
        return y_soft
    d = dim + logits.ndim if dim < 0 else dim
    index = y_soft.detach().argmax(d)
    y_hard = one_hot(index, logits.shape[d]).to(logits.dtype).movedim(-1, d)
    return y_hard - y_soft.detach() + y_soft


# -- embedding and one_hot --------------------------------------------------------------------------------
def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None, max_norm: float | None = None,
              norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """Rows of ``weight`` picked by the integer tensor ``input`` (``sparse`` gradients come out dense)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"embedding(): argument 'indices' must be Tensor, not {type(input).__name__}")
    if input.dtype not in (D.int64, D.int32):
        raise RuntimeError("Expected tensor for argument #1 'indices' to have one of the following scalar types: "
                           f"Long, Int; but got {input.type()} instead (while checking arguments for embedding)")
    num = weight.shape[0]
    if padding_idx is not None:
        if padding_idx > 0:
            assert padding_idx < num, "Padding_idx must be within num_embeddings"
        elif padding_idx < 0:
            assert padding_idx >= -num, "Padding_idx must be within num_embeddings"
            padding_idx = num + padding_idx
    idx = input._data
    if idx.size and out_of_bounds(idx, num, False) is not None:  # device indices: checked by the CUDA kernel
        raise IndexError("index out of range in self")
    if max_norm is not None:
        _embedding_renorm_(weight, input._host(), max_norm, norm_type)
    out = _ops.embedding_rows(weight, input, padding_idx)
    if scale_grad_by_freq and out.requires_grad:
        # the value stays, the gradient of each row is divided by its index's count in this batch
        idx = input._host()
        counts = np.bincount(idx.reshape(-1), minlength=num)[idx]
        scale = J.from_numpy((1.0 / counts).astype(weight.dtype.numpy_dtype)).to(weight.device).unsqueeze(-1)
        out = out * scale + (out * (1 - scale)).detach()
    return out


def _embedding_renorm_(weight: Tensor, idx: np.ndarray, max_norm: float, norm_type: float) -> None:
    """Rescale (in place, untracked) the referenced rows whose norm exceeds ``max_norm``, like torch."""
    rows = np.unique(idx.reshape(-1))
    w = weight._host()  # a device weight is rescaled on a host copy (the same arithmetic as on the CPU)
    sub = w[rows].astype(np.float64)
    norms = np.sum(np.abs(sub) ** norm_type, axis=1) ** (1.0 / norm_type)
    over = norms > max_norm
    if over.any():
        new = (sub[over] * (max_norm / (norms[over] + 1e-7))[:, None]).astype(w.dtype)
        if weight._data.__class__ is np.ndarray:
            w[rows[over]] = new
        else:
            from ..ops.indexing_base import IndexPlan, write_on_device
            from ..runtime.cuda.copy import from_host
            write_on_device(weight._data, IndexPlan(None, (0,), (rows[over],)), from_host(new), False)
        weight._version[0] += 1


def embedding_bag(input: Tensor, weight: Tensor, offsets: Tensor | None = None, max_norm: float | None = None,
                  norm_type: float = 2, scale_grad_by_freq: bool = False, mode: str = "mean", sparse: bool = False,
                  per_sample_weights: Tensor | None = None, include_last_offset: bool = False,
                  padding_idx: int | None = None) -> Tensor:
    """Sum, mean or max of the embedding rows of each bag (rows of a 2-D ``input``, or ``offsets`` segments)."""
    if mode not in ("sum", "mean", "max"):
        raise ValueError(f"mode has to be one of sum, mean or max, but got {mode}")
    if per_sample_weights is not None and mode != "sum":
        raise NotImplementedError(f"embedding_bag: per_sample_weights was not None. per_sample_weights is only "
                                  f"supported for mode='sum' (got mode='{mode}'). Please open a feature request on "
                                  "GitHub.")
    if input.ndim == 2:
        if offsets is not None:
            raise ValueError("if input is 2D, then offsets has to be None, as input is treated is a mini-batch of "
                             "fixed length sequences. However, found offsets of type Tensor")
        n_bags, length = input.shape
        starts = np.arange(n_bags, dtype=np.int64) * length
        flat = input.reshape(-1)
        if per_sample_weights is not None:
            per_sample_weights = per_sample_weights.reshape(-1)
    elif input.ndim == 1:
        if offsets is None:
            raise ValueError("offsets has to be a 1D Tensor but got None")
        if offsets.ndim != 1:
            raise ValueError("offsets has to be a 1D Tensor")
        starts = offsets._host().astype(np.int64)
        if include_last_offset:
            starts = starts[:-1]
        flat = input
    else:
        raise ValueError(f"input has to be 1D or 2D Tensor, but got Tensor of dimension {input.ndim}")
    n = flat.shape[0]
    num_bags = len(starts)
    if padding_idx is not None and padding_idx < 0:
        padding_idx += weight.shape[0]
    # which bag each position belongs to (the last offset at or before it); padding positions join none
    bag_of = np.searchsorted(starts, np.arange(n), side="right") - 1
    keep = bag_of >= 0
    if padding_idx is not None:
        keep &= flat._host() != padding_idx
    dev = weight.device
    rows = embedding(flat, weight, None, max_norm, norm_type, scale_grad_by_freq)
    if per_sample_weights is not None:
        rows = rows * per_sample_weights.unsqueeze(-1)
    counts = np.bincount(bag_of[keep], minlength=num_bags)[:num_bags]
    if mode == "max":
        out = []
        for b in range(num_bags):
            pos = np.nonzero(keep & (bag_of == b))[0]
            if pos.size:
                out.append(rows.index_select(0, J.from_numpy(pos).to(dev)).amax(0))
            else:
                out.append(J.zeros(weight.shape[1], dtype=weight.dtype, device=dev))
        return J.stack(out) if out else J.zeros((0, weight.shape[1]), dtype=weight.dtype, device=dev)
    # the scatter-add primitive sums rows into their bags; dropped positions go to a spare last row
    slots = J.from_numpy(np.where(keep, bag_of, num_bags).astype(np.int64)).to(dev)
    summed = _ops.embedding_backward(rows, slots, num_bags + 1, num_bags).narrow(0, 0, num_bags)
    if mode == "mean":
        counts_t = J.from_numpy(np.maximum(counts, 1).astype(weight.dtype.numpy_dtype)).to(dev)
        summed = summed / counts_t.unsqueeze(-1)
    return summed


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """Int64 one-hot encoding along a new last dim."""
    try:
        from ..ops.indexing import one_hot as _one_hot
    except ImportError:
        _one_hot = None
    if _one_hot is not None:
        return _one_hot(tensor, num_classes)
    if tensor.dtype is not D.int64:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    idx = tensor._data
    if num_classes == -1:
        if idx.size == 0:
            raise RuntimeError("Can not infer total number of classes from empty tensor.")
        num_classes = int(idx.max()) + 1
    if idx.size and (idx.min() < 0 or idx.max() >= num_classes):
        raise RuntimeError("Class values must be smaller than num_classes." if idx.min() >= 0 else
                           "Class values must be non-negative.")
    out = (idx[..., None] == np.arange(num_classes)).astype(np.int64)
    return J.from_numpy(out)


# -- padding ------------------------------------------------------------------------------------------------
def _pad_index_map(n: int, before: int, after: int, mode: str) -> np.ndarray:
    j = np.arange(-before, n + after)
    if mode == "reflect":
        j = np.abs(j)
        return np.where(j >= n, 2 * (n - 1) - j, j)
    if mode == "replicate":
        return np.clip(j, 0, n - 1)
    return j % n  # circular


def pad(input: Tensor, pad, mode: str = "constant", value: float | None = None) -> Tensor:
    """Pad the last ``len(pad) // 2`` dims; ``pad`` lists (left, right) from the last dim backwards."""
    pad = [int(p) for p in pad]
    if len(pad) % 2:
        raise RuntimeError("Padding length must be divisible by 2")
    k = len(pad) // 2
    if k > input.ndim:
        raise RuntimeError(f"Padding length should be less than or equal to two times the input dimension but got "
                           f"padding length {len(pad)} and input of dimension {input.ndim}")
    pairs = {input.ndim - 1 - i: (pad[2 * i], pad[2 * i + 1]) for i in range(k)}
    if mode == "constant":
        x = input
        for d, (b, a) in pairs.items():  # negative padding crops
            if b < 0 or a < 0:
                n = x.shape[d]
                lo, hi = max(-b, 0), max(-a, 0)
                if lo + hi > n:
                    raise RuntimeError(f"The input size {n}, plus negative padding {b} and {a} resulted in a "
                                       "negative output size, which is invalid. Check dimension "
                                       f"{d} of your input.")
                x = x.narrow(d, lo, n - lo - hi)
        widths = [(max(pairs.get(d, (0, 0))[0], 0), max(pairs.get(d, (0, 0))[1], 0)) for d in range(x.ndim)]
        if all(w == (0, 0) for w in widths):
            return x.clone() if x is input else x.contiguous()
        return _ops.pad_constant(x, widths, 0.0 if value is None else value)
    if mode not in ("reflect", "replicate", "circular"):
        raise NotImplementedError(f"Unrecognised padding mode {mode}")
    if value is not None and value != 0:
        raise ValueError(f'Padding mode "{mode}" doesn\'t take in value argument.')
    if k not in (1, 2, 3) or input.ndim not in (k + 1, k + 2):
        raise NotImplementedError(
            f"Padding size {len(pad)} is not supported for {input.ndim}D input tensor.\nSupported combinations for "
            "non-constant padding:\n  - 2D or 3D input: padding size = 2 (pads last dimension)\n  - 3D or 4D "
            "input: padding size = 4 (pads last 2 dimensions)\n  - 4D or 5D input: padding size = 6 (pads last 3 "
            "dimensions)")
    maps = []
    for d in sorted(pairs):
        b, a = pairs[d]
        n = input.shape[d]
        if mode == "reflect" and (b >= n or a >= n):
            raise RuntimeError(f"Argument #4: Padding size should be less than the corresponding input dimension, "
                               f"but got: padding ({b}, {a}) at dimension {d} of input {list(input.shape)}")
        if mode == "circular" and (b > n or a > n):
            raise RuntimeError("Padding value causes wrapping around more than once.")
        if b or a:
            maps.append((d, _pad_index_map(n, b, a, mode)))
    if not maps:
        return input.clone()
    return _ops.pad_gather(input, maps)


# functionals written beside their primitives by other parts of jitorch: (module, attribute naming them)
_LAYER_FUNCTIONALS = (("jitorch.ops.nn_ops", "FUNCTIONAL"), ("jitorch.nn._sdpa", "__all__"),
                      ("jitorch.ops.rnn_ops", "FUNCTIONAL"))


def _import_layer_ops() -> None:
    """Conv/pool/interpolate/attention functionals join this namespace when their modules exist."""
    import importlib
    for modname, listing in _LAYER_FUNCTIONALS:
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as exc:
            if exc.name != modname:
                raise
            continue
        for name in getattr(mod, listing, ()):
            globals()[name] = getattr(mod, name)


_import_layer_ops()

__all__ = [n for n in dir() if not n.startswith("_") and n not in (
    "annotations", "math", "warnings", "np", "J", "D", "Tensor", "no_grad")]
