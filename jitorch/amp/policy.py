"""Which ops autocast casts, to what: torch's op lists, in one table.

An op opts in with one line at its entry::

    input, weight, bias = policy.cast_inputs("linear", input, weight, bias)

When autocast is off (the usual case) this returns its arguments after one
attribute test.  When it is on for the device of the first tensor argument,
the op's category on that device decides:

- ``lower``: floating tensors (except float64) are cast to the autocast dtype
  (float16 on CUDA, bfloat16 on the CPU by default): products and convolutions;
- ``fp32``: floating tensors (except float64) are cast to float32: ops that
  need range or precision (softmax, norms, losses, exp/log/pow and sums on CUDA);
- ``promote``: every floating tensor is cast to the widest floating dtype
  among them (ops that must not mix dtypes, e.g. ``dot`` on CUDA);
- ``banned``: a RuntimeError (``binary_cross_entropy`` on CUDA, as in torch);
- not listed: arguments unchanged (elementwise ops follow type promotion).

The lists follow torch's (``aten/src/ATen/autocast_mode.h`` for CUDA, the CPU
registrations in ``autocast_mode.cpp``): on the CPU softmax, layer_norm, sums
and pointwise math keep their input dtype; only losses and a few reductions
run in float32 there.  Casts are differentiable (gradients flow back in the
source dtype), and casts of float32 leaf parameters to the lower dtype are
cached for the outermost autocast region, so a weight used by several ops is
converted once per forward pass.

Non-tensor arguments (None, numbers, shapes) pass through unchanged, so an op
can hand over all its positional arguments.  A single argument comes back as
itself, several as a tuple.
"""
from __future__ import annotations

import weakref

from .. import _dtype as D
from .autocast_mode import state

_LOWER_COMMON = {
    "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "convolution",
    "prelu", "addmm", "matmul", "mm", "linear", "addbmm", "baddbmm", "bmm", "vecdot",
    "scaled_dot_product_attention",
}
_FP32_COMMON = {
    "prod", "cdist", "mse_loss", "cosine_embedding_loss", "nll_loss", "hinge_embedding_loss", "poisson_nll_loss",
    "smooth_l1_loss", "cross_entropy", "l1_loss", "huber_loss", "margin_ranking_loss", "soft_margin_loss",
    "triplet_margin_loss", "multi_margin_loss", "kl_div", "multilabel_margin_loss",
    "binary_cross_entropy_with_logits",
}

LOWER = {
    "cuda": frozenset(_LOWER_COMMON | {"addmv", "addr", "einsum", "mv", "chain_matmul", "multi_dot", "lstm_cell",
                                       "gru_cell", "rnn_tanh_cell", "rnn_relu_cell"}),
    "cpu": frozenset(_LOWER_COMMON),
}
FP32 = {
    "cuda": frozenset(_FP32_COMMON | {
        "acos", "asin", "cosh", "erfinv", "exp", "expm1", "log", "log10", "log2", "log1p", "reciprocal", "rsqrt",
        "sinh", "tan", "pow", "softplus", "layer_norm", "group_norm", "norm", "vector_norm", "matrix_norm",
        "nuclear_norm", "cosine_similarity", "dist", "pdist", "renorm", "logsumexp", "interpolate", "softmax",
        "log_softmax", "softmin", "cumprod", "cumsum", "sum"}),
    "cpu": frozenset(_FP32_COMMON | {
        "avg_pool3d", "max_pool3d", "adaptive_avg_pool3d", "binary_cross_entropy", "grid_sample", "quantile",
        "nanquantile", "stft", "trace", "cholesky", "inverse", "pinverse", "ctc_loss", "fft", "ifft"}),
}
PROMOTE = {
    "cuda": frozenset({"addcdiv", "addcmul", "atan2", "bilinear", "cross", "dot", "vdot", "grid_sample",
                       "index_put", "tensordot", "scatter_add"}),
    "cpu": frozenset({"stack", "cat", "index_copy"}),
}
BANNED = {
    "cuda": {"binary_cross_entropy": (
        "torch.nn.functional.binary_cross_entropy and torch.nn.BCELoss are unsafe to autocast.\n"
        "Many models use a sigmoid layer right before the binary cross entropy layer.\n"
        "In this case, combine the two layers using torch.nn.functional.binary_cross_entropy_with_logits\n"
        "or torch.nn.BCEWithLogitsLoss.  binary_cross_entropy_with_logits and BCEWithLogits are\n"
        "safe to autocast.")},
    "cpu": {},
}

KNOWN = frozenset().union(*LOWER.values(), *FP32.values(), *PROMOTE.values(), *BANNED["cuda"])


def category(name: str, device_type: str) -> str | None:
    """``'lower'``, ``'fp32'``, ``'promote'``, ``'banned'`` or None: what autocast does to op ``name``."""
    if name in LOWER[device_type]:
        return "lower"
    if name in FP32[device_type]:
        return "fp32"
    if name in PROMOTE[device_type]:
        return "promote"
    if name in BANNED[device_type]:
        return "banned"
    return None


def cast_inputs(name: str, *args):
    """``args`` as op ``name`` sees them under the current autocast state (see the module docstring)."""
    if not state.active:
        return args[0] if len(args) == 1 else args
    return _cast_all(name, args)


def _cast_all(name, args):
    from .._tensor import Tensor
    if name not in KNOWN:
        raise ValueError(f"autocast policy has no op named {name!r}")
    first = next((a for a in args if isinstance(a, Tensor)), None)
    dev = first._device.type if first is not None else None
    kind = category(name, dev) if state.enabled.get(dev) else None
    if kind is None:
        return args[0] if len(args) == 1 else args
    if kind == "banned":
        raise RuntimeError(BANNED[dev][name])
    if kind == "lower":
        target = state.dtype[dev]
    elif kind == "fp32":
        target = D.float32
    else:
        target = state.dtype[dev]
        for a in args:
            if isinstance(a, Tensor) and _eligible(a, dev, promote=True):
                target = D.promote_types(target, a._dtype)
    out = tuple(cached_cast(a, target, dev) if isinstance(a, Tensor) else a for a in args)
    return out[0] if len(out) == 1 else out


def _eligible(t, dev: str, promote: bool = False) -> bool:
    # float64 is never lowered (torch's is_eligible), but it does win a promotion
    return t._dtype.is_floating_point and t._device.type == dev and (promote or t._dtype is not D.float64)


def cached_cast(t, dtype: D.dtype, device_type: str):
    """``t`` cast (differentiably) to ``dtype`` if autocast may cast it; lower-precision casts of float32
    leaf parameters are cached until the outermost autocast region exits."""
    if t._dtype is dtype or not _eligible(t, device_type):
        return t
    from ..autograd import grad_mode
    from ..ops.conversion import _cast
    cacheable = (state.cache_enabled and t._dtype is D.float32 and dtype is state.dtype[device_type]
                 and t._requires_grad and t._grad_fn is None and t._base is None)
    if not cacheable:
        return _cast(t, dtype)
    key = (id(t), dtype, grad_mode.is_grad_enabled())
    hit = state.cache.get(key)
    # the weak reference guards against a recycled id; the version, against an in-place update
    # of the parameter inside the region (an optimizer step under autocast)
    if hit is not None and hit[0]() is t and hit[1] == t._version[0]:
        return hit[2]
    out = _cast(t, dtype)
    state.cache[key] = (weakref.ref(t), t._version[0], out)
    return out
