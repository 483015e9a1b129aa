"""Attention as composites of jitorch ops: ``scaled_dot_product_attention`` and the
functional core of ``nn.MultiheadAttention`` (torch's ``multi_head_attention_forward``).

Everything is matmuls, a softmax and masks, so gradients (and double
backward) come from the primitives.  Two softmax flavours match torch: SDPA
uses a *safe* softmax (a row whose every key is masked gives zeros, as torch's
CPU kernels do), while the ``need_weights=True`` path of multi-head attention
uses the plain one (such a row is NaN there, in torch too).
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

__all__ = ["multi_head_attention_forward", "scaled_dot_product_attention"]


def _neg_inf_where(mask_true_means_blocked: Tensor, dtype) -> Tensor:
    """A float mask: ``-inf`` where the bool mask is True, 0 elsewhere."""
    return J.where(mask_true_means_blocked, float("-inf"), 0.0).to(dtype)


def causal_mask(lq: int, lk: int, device=None) -> Tensor:
    """Bool mask, True where query ``i`` may attend key ``j`` (``j <= i``), on ``device``."""
    if device is None or device.type == "cpu":
        return J.from_numpy(np.tril(np.ones((lq, lk), dtype=bool)))
    from .._tensor import wrap
    from ..ops.indexing_diag import _device_triangle_mask  # uploaded once per shape
    return wrap(_device_triangle_mask(lq, lk, 0, True), D.bool_, device)


def _safe_softmax(scores: Tensor) -> Tensor:
    """Softmax over the last dim that gives 0 (not NaN) for rows masked entirely with -inf."""
    m = scores.amax(-1, keepdim=True).detach()
    m = J.where(m == float("-inf"), 0.0, m)
    e = (scores - m).exp()
    s = e.sum(-1, keepdim=True)
    return e / J.where(s == 0, 1.0, s)


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
                                 dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
                                 enable_gqa: bool = False) -> Tensor:
    """``softmax(q @ k^T * scale + mask) @ v`` over the last two dims, like torch's SDPA.

    A bool ``attn_mask`` marks with True the positions that *may* be attended;
    a float mask is added to the scores.  ``is_causal`` applies a lower-triangular mask.
    """
    if _amp.active:  # (a bool mask is not floating: it passes through)
        query, key, value, attn_mask = _amp_cast("scaled_dot_product_attention", query, key, value, attn_mask)
    if query.dtype is not key.dtype or query.dtype is not value.dtype:
        raise RuntimeError(f"Expected query, key, and value to have the same dtype, but got query.dtype: "
                           f"{query.dtype} key.dtype: {key.dtype} and value.dtype: {value.dtype} instead.")
    if query.ndim < 2 or key.ndim < 2 or value.ndim < 2:
        raise RuntimeError("scaled_dot_product_attention: query, key and value must be at least 2-D")
    if query.shape[-1] != key.shape[-1]:
        raise RuntimeError(f"Expected query and key to have the same embedding dim, got {query.shape[-1]} and "
                           f"{key.shape[-1]}")
    if key.shape[-2] != value.shape[-2]:
        raise RuntimeError(f"Expected key and value to have the same sequence length, got {key.shape[-2]} and "
                           f"{value.shape[-2]}")
    if is_causal and attn_mask is not None:
        raise RuntimeError("_scaled_dot_product_attention: Explicit attn_mask should not be set when is_causal=True")
    if enable_gqa and query.ndim >= 3 and key.shape[-3] != query.shape[-3]:
        rep = query.shape[-3] // key.shape[-3]
        key = key.repeat_interleave(rep, -3)
        value = value.repeat_interleave(rep, -3)
    lq, lk = query.shape[-2], key.shape[-2]
    s = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = (query @ key.transpose(-2, -1)) * s
    if is_causal:
        scores = J.where(causal_mask(lq, lk, scores.device), scores, float("-inf"))
    if attn_mask is not None:
        if attn_mask.dtype is D.bool_:
            scores = J.where(attn_mask, scores, float("-inf"))
        else:
            scores = scores + attn_mask
    attn = _safe_softmax(scores)
    if dropout_p > 0.0:
        from .functional import dropout
        attn = dropout(attn, dropout_p, True)
    return attn @ value


# -- multi-head attention -----------------------------------------------------------------------------------
def canonical_mask(mask: Tensor | None, mask_name: str, other_type, other_name: str, target_type,
                   check_other: bool = True) -> Tensor | None:
    """torch's ``F._canonical_mask``: bool masks become float masks with -inf where True."""
    if mask is None:
        return None
    if mask.dtype is not D.bool_ and not mask.dtype.is_floating_point:
        raise AssertionError(f"only bool and floating types of {mask_name} are supported")
    if check_other and other_type is not None and mask.dtype is not other_type:
        warnings.warn(f"Support for mismatched {mask_name} and {other_name} is deprecated. Use same type for both "
                      "instead.", stacklevel=3)
    if mask.dtype is D.bool_:
        return _neg_inf_where(mask, target_type)
    return mask


def none_or_dtype(t: Tensor | None):
    if t is None:
        return None
    if isinstance(t, Tensor):
        return t.dtype
    raise RuntimeError("input to _none_or_dtype() must be None or torch.Tensor")


def mha_shape_check(query, key, value, key_padding_mask, attn_mask, num_heads) -> bool:
    """torch's ``_mha_shape_check``: True for batched (3-D) input."""
    if query.ndim == 3:
        if key.ndim != 3 or value.ndim != 3:
            raise AssertionError(f"For batched (3-D) `query`, expected `key` and `value` to be 3-D but found "
                                 f"{key.ndim}-D and {value.ndim}-D tensors respectively")
        if key_padding_mask is not None and key_padding_mask.ndim != 2:
            raise AssertionError(f"For batched (3-D) `query`, expected `key_padding_mask` to be `None` or 2-D but "
                                 f"found {key_padding_mask.ndim}-D tensor instead")
        if attn_mask is not None and attn_mask.ndim not in (2, 3):
            raise AssertionError(f"For batched (3-D) `query`, expected `attn_mask` to be `None`, 2-D or 3-D but "
                                 f"found {attn_mask.ndim}-D tensor instead")
        return True
    if query.ndim == 2:
        if key.ndim != 2 or value.ndim != 2:
            raise AssertionError(f"For unbatched (2-D) `query`, expected `key` and `value` to be 2-D but found "
                                 f"{key.ndim}-D and {value.ndim}-D tensors respectively")
        if key_padding_mask is not None and key_padding_mask.ndim != 1:
            raise AssertionError(f"For unbatched (2-D) `query`, expected `key_padding_mask` to be `None` or 1-D but "
                                 f"found {key_padding_mask.ndim}-D tensor instead")
        if attn_mask is not None:
            if attn_mask.ndim not in (2, 3):
                raise AssertionError(f"For unbatched (2-D) `query`, expected `attn_mask` to be `None`, 2-D or 3-D "
                                     f"but found {attn_mask.ndim}-D tensor instead")
            if attn_mask.ndim == 3:
                expected = (num_heads, query.shape[0], key.shape[0])
                if tuple(attn_mask.shape) != expected:
                    raise AssertionError(f"Expected `attn_mask` shape to be {expected} but got {attn_mask.shape}")
        return False
    raise AssertionError(f"query should be unbatched 2D or batched 3D tensor but received {query.ndim}-D query tensor")


def _linear(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    lead = tuple(x.shape[:-1])
    y = x.reshape(-1, x.shape[-1]) @ w.t()
    if b is not None:
        y = y + b
    return y.reshape(lead + (w.shape[0],))


def _in_projection(query, key, value, e, in_proj_weight, in_proj_bias, q_w, k_w, v_w):
    """q, k, v projections; self-attention on one packed weight is a single matmul."""
    def part(t, k):
        return None if t is None else t.narrow(0, k * e, e)
    if in_proj_weight is not None:
        if query is key and key is value:
            qkv = _linear(query, in_proj_weight, in_proj_bias)
            return qkv.narrow(-1, 0, e), qkv.narrow(-1, e, e), qkv.narrow(-1, 2 * e, e)
        q_w, k_w, v_w = part(in_proj_weight, 0), part(in_proj_weight, 1), part(in_proj_weight, 2)
    b_q, b_k, b_v = part(in_proj_bias, 0), part(in_proj_bias, 1), part(in_proj_bias, 2)
    return _linear(query, q_w, b_q), _linear(key, k_w, b_k), _linear(value, v_w, b_v)


def _append_column(t: Tensor | None) -> Tensor | None:
    """Mask with one more (unmasked, zero) key column, for add_bias_kv / add_zero_attn."""
    if t is None:
        return None
    from .functional import pad
    return pad(t, (0, 1))


def multi_head_attention_forward(query, key, value, embed_dim_to_check, num_heads, in_proj_weight, in_proj_bias,
                                 bias_k, bias_v, add_zero_attn, dropout_p, out_proj_weight, out_proj_bias,
                                 training=True, key_padding_mask=None, need_weights=True, attn_mask=None,
                                 use_separate_proj_weight=False, q_proj_weight=None, k_proj_weight=None,
                                 v_proj_weight=None, static_k=None, static_v=None, average_attn_weights=True,
                                 is_causal=False):
    """Sequence-first multi-head attention, following ``torch.nn.functional.multi_head_attention_forward``."""
    if static_k is not None or static_v is not None:
        raise NotImplementedError("static_k / static_v are not supported by jitorch")
    batched = mha_shape_check(query, key, value, key_padding_mask, attn_mask, num_heads)
    if not batched:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    tgt_len, bsz, embed_dim = query.shape
    if embed_dim != embed_dim_to_check:
        raise AssertionError(f"was expecting embedding dimension of {embed_dim_to_check}, but got {embed_dim}")
    if use_separate_proj_weight:
        if tuple(key.shape[:2]) != tuple(value.shape[:2]):
            raise AssertionError(f"key's sequence and batch dims {tuple(key.shape[:2])} do not match value's "
                                 f"{tuple(value.shape[:2])}")
    elif tuple(key.shape) != tuple(value.shape):
        raise AssertionError(f"key shape {key.shape} does not match value shape {value.shape}")
    head_dim = embed_dim // num_heads
    if head_dim * num_heads != embed_dim:
        raise AssertionError(f"embed_dim {embed_dim} not divisible by num_heads {num_heads}")
    key_padding_mask = canonical_mask(key_padding_mask, "key_padding_mask", none_or_dtype(attn_mask), "attn_mask",
                                      query.dtype)
    if is_causal and attn_mask is None:
        raise RuntimeError("Need attn_mask if specifying the is_causal hint. You may use the Transformer module "
                           "method `generate_square_subsequent_mask` to create this mask.")
    causal = False
    if is_causal and key_padding_mask is None and not need_weights:
        attn_mask, causal = None, True  # torch trusts the hint and lets SDPA build the mask
    else:
        attn_mask = canonical_mask(attn_mask, "attn_mask", None, "", query.dtype, check_other=False)
    q, k, v = _in_projection(query, key, value, embed_dim, None if use_separate_proj_weight else in_proj_weight,
                             in_proj_bias, q_proj_weight, k_proj_weight, v_proj_weight)
    if attn_mask is not None:
        if attn_mask.ndim == 2:
            if tuple(attn_mask.shape) != (tgt_len, key.shape[0]):
                raise RuntimeError(f"The shape of the 2D attn_mask is {attn_mask.shape}, but should be "
                                   f"{(tgt_len, key.shape[0])}.")
            attn_mask = attn_mask.unsqueeze(0)
        elif attn_mask.ndim == 3:
            if tuple(attn_mask.shape) != (bsz * num_heads, tgt_len, key.shape[0]):
                raise RuntimeError(f"The shape of the 3D attn_mask is {attn_mask.shape}, but should be "
                                   f"{(bsz * num_heads, tgt_len, key.shape[0])}.")
        else:
            raise RuntimeError(f"attn_mask's dimension {attn_mask.ndim} is not supported")
    if bias_k is not None and bias_v is not None:
        k = J.cat([k, bias_k.expand(1, bsz, embed_dim)])
        v = J.cat([v, bias_v.expand(1, bsz, embed_dim)])
        attn_mask, key_padding_mask = _append_column(attn_mask), _append_column(key_padding_mask)
    # (L, N, E) -> (N * heads, L, head_dim)
    q = q.reshape(tgt_len, bsz * num_heads, head_dim).transpose(0, 1)
    k = k.reshape(k.shape[0], bsz * num_heads, head_dim).transpose(0, 1)
    v = v.reshape(v.shape[0], bsz * num_heads, head_dim).transpose(0, 1)
    if add_zero_attn:
        zeros = J.zeros((bsz * num_heads, 1, head_dim), dtype=q.dtype, device=q.device)
        k, v = J.cat([k, zeros], 1), J.cat([v, zeros], 1)
        attn_mask, key_padding_mask = _append_column(attn_mask), _append_column(key_padding_mask)
    src_len = k.shape[1]
    if key_padding_mask is not None:
        if tuple(key_padding_mask.shape) != (bsz, src_len):
            raise AssertionError(f"expecting key_padding_mask shape of {(bsz, src_len)}, but got "
                                 f"{key_padding_mask.shape}")
        kpm = key_padding_mask.reshape(bsz, 1, 1, src_len).expand(bsz, num_heads, 1, src_len)
        kpm = kpm.reshape(bsz * num_heads, 1, src_len)
        attn_mask = kpm if attn_mask is None else attn_mask + kpm
    if not training:
        dropout_p = 0.0
    scores = (q * math.sqrt(1.0 / head_dim)) @ k.transpose(1, 2)
    if causal:
        scores = J.where(causal_mask(tgt_len, src_len, scores.device), scores, float("-inf"))
    if attn_mask is not None:
        scores = scores + attn_mask
    weights = J.softmax(scores, -1) if need_weights else _safe_softmax(scores)
    if dropout_p > 0.0:
        from .functional import dropout
        weights = dropout(weights, dropout_p, True)
    out = (weights @ v).transpose(0, 1).reshape(tgt_len * bsz, embed_dim)
    out = _linear(out, out_proj_weight, out_proj_bias).reshape(tgt_len, bsz, embed_dim)
    if not batched:
        out = out.squeeze(1)
    if not need_weights:
        return out, None
    weights = weights.reshape(bsz, num_heads, tgt_len, src_len)
    if average_attn_weights:
        weights = weights.mean(1)
    if not batched:
        weights = weights.squeeze(0)
    return out, weights
