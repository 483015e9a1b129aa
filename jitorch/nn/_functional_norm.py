"""Normalization functionals of ``nn.functional`` (re-exported there): batch, instance, layer, group, RMS, LRN."""
from __future__ import annotations

import numpy as np

import jitorch as J

from .._tensor import Tensor
from ..amp.autocast_mode import state as _amp
from ..amp.policy import cast_inputs as _amp_cast
from ..autograd.grad_mode import no_grad
from ..ops.eager_fast import cpu_float_eager
from ..ops.norm_ops import batch_norm_composite, batch_norm_train


# -- normalization ----------------------------------------------------------------------------------------------
def _channel_shape(input: Tensor):
    return (1, input.shape[1]) + (1,) * (input.ndim - 2)


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalize over every dim but the channel dim 1, with batch statistics in training (which
    also update the running statistics in place) and running statistics otherwise."""
    if input.ndim < 2:
        raise ValueError(f"expected 2D or 3D input (got {input.ndim}D input)")
    count = input.numel() // input.shape[1] if input.shape[1] else 0
    if training and count == 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {input.shape}")
    shape = _channel_shape(input)
    if (training or running_mean is None or running_var is None) and \
            cpu_float_eager(input, weight, bias, running_mean, running_var):
        stats, y = batch_norm_train(input, weight, bias, eps)  # one kernel and one backward node
        if training and running_mean is not None and running_var is not None:
            _update_running_stats(running_mean, running_var, stats._data, float(momentum), count)
        return y
    if training or running_mean is None or running_var is None:
        y, mean, var = batch_norm_composite(input, weight, bias, eps)
        if training and running_mean is not None and running_var is not None:
            with no_grad():
                m = float(momentum)
                running_mean.mul_(1 - m).add_(mean.reshape(-1).to(running_mean.dtype) * m)
                unbiased = var.reshape(-1) * (count / max(count - 1, 1))
                running_var.mul_(1 - m).add_(unbiased.to(running_var.dtype) * m)
        return y
    mean = running_mean.reshape(shape)
    var = running_var.reshape(shape)
    centered = input - mean
    y = centered * J.rsqrt(var + eps)
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y


def _update_running_stats(running_mean: Tensor, running_var: Tensor, stats: np.ndarray, m: float,
                          count: int) -> None:
    """``running = (1 - m) * running + m * batch`` in place (unbiased variance), on the CPU arrays."""
    rm, rv = running_mean._data, running_var._data
    rm *= 1 - m
    rm += (stats[0] * m).astype(rm.dtype)
    rv *= 1 - m
    rv += (stats[2] * (count / max(count - 1, 1)) * m).astype(rv.dtype)
    running_mean._version[0] += 1
    running_var._version[0] += 1


def instance_norm(input: Tensor, running_mean: Tensor | None = None, running_var: Tensor | None = None,
                  weight: Tensor | None = None, bias: Tensor | None = None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalize each (sample, channel) over its spatial dims."""
    if use_input_stats:
        spatial = 1
        for s in input.shape[2:]:
            spatial *= s
        if spatial == 1:
            raise ValueError(f"Expected more than 1 spatial element when training, got input size {input.shape}")
    dims = tuple(range(2, input.ndim))
    shape = _channel_shape(input)
    if use_input_stats or running_mean is None:
        mean = input.mean(dims, keepdim=True)
        centered = input - mean
        var = (centered * centered).mean(dims, keepdim=True)
        if use_input_stats and running_mean is not None and running_var is not None:
            n = input.numel() // (input.shape[0] * input.shape[1])
            with no_grad():
                running_mean.mul_(1 - momentum).add_(mean.mean(0).reshape(-1) * momentum)
                running_var.mul_(1 - momentum).add_((var * (n / max(n - 1, 1))).mean(0).reshape(-1) * momentum)
    else:
        mean, var = running_mean.reshape(shape), running_var.reshape(shape)
        centered = input - mean
    y = centered * J.rsqrt(var + eps)
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y


def _trailing_dims(input: Tensor, normalized_shape) -> tuple[tuple, tuple]:
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(ns)
    if k == 0 or input.ndim < k or tuple(input.shape[input.ndim - k:]) != ns:
        raise RuntimeError(f"Given normalized_shape={list(ns)}, expected input with shape [*, "
                           f"{', '.join(str(s) for s in ns)}], but got input of size{list(input.shape)}")
    return ns, tuple(range(input.ndim - k, input.ndim))


def layer_norm(input: Tensor, normalized_shape, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Normalize over the trailing ``normalized_shape`` dims, then scale and shift elementwise."""
    if _amp.active:
        input, weight, bias = _amp_cast("layer_norm", input, weight, bias)
    _, dims = _trailing_dims(input, normalized_shape)
    mean = input.mean(dims, keepdim=True)
    centered = input - mean
    var = (centered * centered).mean(dims, keepdim=True)
    y = centered * J.rsqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def rms_norm(input: Tensor, normalized_shape, weight: Tensor | None = None, eps: float | None = None) -> Tensor:
    """``x / sqrt(mean(x**2) + eps) * weight`` over the trailing dims."""
    _, dims = _trailing_dims(input, normalized_shape)
    if eps is None:
        eps = float(np.finfo(input.dtype.numpy_dtype).eps)
    y = input * J.rsqrt((input * input).mean(dims, keepdim=True) + eps)
    return y * weight if weight is not None else y


def group_norm(input: Tensor, num_groups: int, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Normalize each group of ``C / num_groups`` channels over the group's channels and spatial dims."""
    if _amp.active:
        input, weight, bias = _amp_cast("group_norm", input, weight, bias)
    if input.ndim < 2:
        raise RuntimeError(f"Expected at least 2 dimensions for input tensor but received {input.ndim}")
    n, c = input.shape[0], input.shape[1]
    if c % num_groups:
        raise RuntimeError(f"Expected number of channels in input to be divisible by num_groups, but got input of "
                           f"shape {list(input.shape)} and num_groups={num_groups}")
    x = input.reshape(n, num_groups, -1)
    mean = x.mean(2, keepdim=True)
    centered = x - mean
    var = (centered * centered).mean(2, keepdim=True)
    y = (centered * J.rsqrt(var + eps)).reshape(input.shape)
    shape = _channel_shape(input)
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y


def local_response_norm(input: Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> Tensor:
    """Normalize each channel by the squared activity of ``size`` neighbouring channels."""
    if input.ndim < 3:
        raise ValueError(f"Expected 3D or higher dimensionality input (got {input.ndim} dimensions)")
    sq = input * input
    c = input.shape[1]
    from .functional import pad
    padded = pad(sq, (0, 0) * (input.ndim - 2) + (size // 2, (size - 1) // 2))
    acc = padded.narrow(1, 0, c)
    for i in range(1, size):
        acc = acc + padded.narrow(1, i, c)
    return input / (acc * (alpha / size) + k) ** beta
