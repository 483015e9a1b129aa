"""scaled_dot_product_attention, MultiheadAttention and the Transformer stack against torch."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from _nn_ext_helpers import (
    assert_close,
    assert_param_grads,
    backward_both,
    copy_state,
    to_j,
)

import jitorch
import jitorch.nn as jnn
from jitorch.nn._sdpa import scaled_dot_product_attention as j_sdpa

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _rand(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _j(x, rg=False):
    return None if x is None else (to_j(x, rg) if isinstance(x, torch.Tensor) else x)


# -- scaled_dot_product_attention ---------------------------------------------------------------------------------------
def _mask(kind, shape, seed=3):
    m = _rand(*shape, seed=seed)
    if kind == "bool":
        b = m > -0.5
        b[..., 0] = True  # keep every row attendable
        return b
    if kind == "bool_full_row":  # one query row may attend nothing: SDPA gives zeros there
        b = m > 0
        b[..., 1, :] = False
        return b
    return m if kind == "float" else None


@pytest.mark.parametrize("mask", [None, "bool", "float", "bool_full_row"])
@pytest.mark.parametrize("causal,scale", [(False, None), (True, None), (False, 0.3)])
def test_sdpa_matches_torch(mask, causal, scale):
    if causal and mask is not None:
        pytest.skip("torch forbids attn_mask together with is_causal")
    q, k, v = _rand(2, 3, 4, 8), _rand(2, 3, 5, 8, seed=1), _rand(2, 3, 5, 6, seed=2)
    m = _mask(mask, (4, 5))
    tq, tk, tv = (t.clone().requires_grad_() for t in (q, k, v))
    jq, jk, jv = (to_j(t, True) for t in (q, k, v))
    t_out = F.scaled_dot_product_attention(tq, tk, tv, attn_mask=m, is_causal=causal, scale=scale)
    j_out = j_sdpa(jq, jk, jv, attn_mask=_j(m), is_causal=causal, scale=scale)
    assert_close(j_out, t_out)
    backward_both(t_out, j_out)
    for a, b in ((jq, tq), (jk, tk), (jv, tv)):
        assert_close(a.grad, b.grad)


def test_sdpa_broadcast_mask_and_errors():
    q, k, v = _rand(2, 2, 3, 4), _rand(2, 2, 3, 4, seed=1), _rand(2, 2, 3, 4, seed=2)
    m = _rand(2, 1, 3, 3, seed=4)
    assert_close(j_sdpa(to_j(q), to_j(k), to_j(v), attn_mask=to_j(m)), F.scaled_dot_product_attention(q, k, v, m))
    with pytest.raises(RuntimeError, match="Explicit attn_mask should not be set when is_causal=True"):
        j_sdpa(to_j(q), to_j(k), to_j(v), attn_mask=to_j(m), is_causal=True)
    jitorch.manual_seed(0)
    out = j_sdpa(to_j(q), to_j(k), to_j(v), dropout_p=0.5)
    assert tuple(out.shape) == (2, 2, 3, 4)


# -- MultiheadAttention --------------------------------------------------------------------------------------------------
MHA_CONFIGS = [{"batch_first": True}, {}, {"kdim": 3, "vdim": 5}, {"add_bias_kv": True, "add_zero_attn": True,
                                                                          "batch_first": True}, {"bias": False}]
MHA_CALLS = [{}, {"key_padding_mask": "bool"}, {"attn_mask": "bool", "need_weights": False},
             {"attn_mask": "float", "key_padding_mask": "float", "average_attn_weights": False},
             {"attn_mask": "3d"}, {"key_padding_mask": "bool", "need_weights": False}]


def _mha_masks(call, bsz, heads, lq, lk):
    kw = dict(call)
    kpm = torch.tensor([[False] * lk, [False, False, True, False, True][:lk]])
    if kw.get("key_padding_mask") == "bool":
        kw["key_padding_mask"] = kpm
    elif kw.get("key_padding_mask") == "float":
        kw["key_padding_mask"] = kpm.float() * -1e4
    am = _rand(lq, lk, seed=7)
    if kw.get("attn_mask") == "bool":
        kw["attn_mask"] = (am > 0.3) & ~torch.eye(lq, lk, dtype=torch.bool)
    elif kw.get("attn_mask") == "float":
        kw["attn_mask"] = am
    elif kw.get("attn_mask") == "3d":
        kw["attn_mask"] = _rand(bsz * heads, lq, lk, seed=8)
    return kw


@pytest.mark.parametrize("cfg", range(len(MHA_CONFIGS)))
@pytest.mark.parametrize("call", range(len(MHA_CALLS)))
def test_multihead_attention_matches_torch(cfg, call):
    kw = MHA_CONFIGS[cfg]
    tm, jm = torch.nn.MultiheadAttention(8, 2, **kw), jnn.MultiheadAttention(8, 2, **kw)
    assert [n for n, _ in jm.named_parameters()] == [n for n, _ in tm.named_parameters()]
    copy_state(tm, jm)
    bf = kw.get("batch_first", False)
    lq, lk, bsz = 4, 5, 2

    def seq(length, dim, seed):
        return _rand(bsz, length, dim, seed=seed) if bf else _rand(length, bsz, dim, seed=seed)
    q, k, v = seq(lq, 8, 0), seq(lk, kw.get("kdim", 8), 1), seq(lk, kw.get("vdim", 8), 2)
    masks = _mha_masks(MHA_CALLS[call], bsz, 2, lq, lk)
    tq, tk, tv = (t.clone().requires_grad_() for t in (q, k, v))
    jq, jk, jv = (to_j(t, True) for t in (q, k, v))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_out, t_w = tm(tq, tk, tv, **masks)
        j_out, j_w = jm(jq, jk, jv, **{a: _j(b) for a, b in masks.items()})
    assert_close(j_out, t_out)
    if t_w is None:
        assert j_w is None
    else:
        assert_close(j_w, t_w)
    backward_both(t_out, j_out)
    for a, b in ((jq, tq), (jk, tk), (jv, tv)):
        assert_close(a.grad, b.grad)
    assert_param_grads(tm, jm)


@pytest.mark.parametrize("need_weights", [True, False])
def test_mha_self_attention_unbatched_and_fully_masked(need_weights):
    tm, jm = torch.nn.MultiheadAttention(6, 3), jnn.MultiheadAttention(6, 3)
    copy_state(tm, jm)
    x = _rand(4, 6)
    assert_close(jm(to_j(x), to_j(x), to_j(x), need_weights=need_weights)[0],
                 tm(x, x, x, need_weights=need_weights)[0])
    # a batch entry whose keys are all padding: NaN with need_weights, zeros through SDPA (as in torch)
    xb = _rand(3, 2, 6)
    kpm = torch.tensor([[False, False, True], [True, True, True]])
    t_out = tm(xb, xb, xb, key_padding_mask=kpm, need_weights=need_weights)[0]
    j_out = jm(to_j(xb), to_j(xb), to_j(xb), key_padding_mask=to_j(kpm), need_weights=need_weights)[0]
    assert_close(j_out, t_out)


def test_mha_causal_hint_and_dropout():
    tm, jm = torch.nn.MultiheadAttention(8, 2, batch_first=True), jnn.MultiheadAttention(8, 2, batch_first=True)
    copy_state(tm, jm)
    x = _rand(2, 5, 8)
    cm = torch.nn.Transformer.generate_square_subsequent_mask(5)
    t_out = tm(x, x, x, attn_mask=cm, is_causal=True, need_weights=False)[0]
    j_out = jm(to_j(x), to_j(x), to_j(x), attn_mask=to_j(cm), is_causal=True, need_weights=False)[0]
    assert_close(j_out, t_out)
    with pytest.raises(RuntimeError, match="Need attn_mask if specifying the is_causal hint"):
        jm(to_j(x), to_j(x), to_j(x), is_causal=True)
    dm = jnn.MultiheadAttention(8, 2, dropout=0.5, batch_first=True)
    _, w = dm(to_j(x), to_j(x), to_j(x))
    rows = w.detach().sum(-1).numpy()
    assert not np.allclose(rows, 1.0)  # dropout rescales the weights in training mode
    dm.eval()
    _, w = dm(to_j(x), to_j(x), to_j(x))
    np.testing.assert_allclose(w.detach().sum(-1).numpy(), 1.0, rtol=1e-5)


def test_mha_init_and_errors():
    m = jnn.MultiheadAttention(8, 2)
    assert float(m.in_proj_bias.abs().amax()) == 0 and float(m.out_proj.bias.abs().amax()) == 0
    bound = np.sqrt(6 / (8 + 24))
    assert float(m.in_proj_weight.abs().amax()) <= bound
    with pytest.raises(AssertionError, match="embed_dim must be divisible by num_heads"):
        jnn.MultiheadAttention(7, 2)
    with pytest.raises(ValueError, match="embed_dim and num_heads must be greater than 0"):
        jnn.MultiheadAttention(0, 2)
    x = jitorch.zeros(3, 2, 8)
    with pytest.raises(RuntimeError, match=r"The shape of the 2D attn_mask is .*, but should be \(3, 3\)"):
        m(x, x, x, attn_mask=jitorch.zeros(3, 4))
    with pytest.raises(AssertionError, match="expected `key` and `value` to be 3-D"):
        m(x, jitorch.zeros(3, 8), x)
    with pytest.raises(AssertionError, match="only bool and floating types of key_padding_mask are supported"):
        m(x, x, x, key_padding_mask=jitorch.zeros(2, 3, dtype=jitorch.int64))


# -- Transformer stacks --------------------------------------------------------------------------------------------------
TRANSFORMER_CFGS = [{}, {"batch_first": True, "norm_first": True, "activation": "gelu"},
                    {"activation": "gelu_fn", "bias": False}, {"batch_first": True, "layer_norm_eps": 1e-3}]


def _act(cfg, lib):
    if cfg.get("activation") == "gelu_fn":
        return dict(cfg, activation=(F.gelu if lib is torch else jnn.functional.gelu))
    return cfg


@pytest.mark.parametrize("cfg", range(len(TRANSFORMER_CFGS)))
def test_transformer_matches_torch(cfg):
    kw = TRANSFORMER_CFGS[cfg]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tm = torch.nn.Transformer(16, 4, 2, 2, 32, dropout=0.0, **_act(kw, torch))
        jm = jnn.Transformer(16, 4, 2, 2, 32, dropout=0.0, **_act(kw, jitorch))
    copy_state(tm, jm)
    bf = kw.get("batch_first", False)
    src = _rand(2, 5, 16) if bf else _rand(5, 2, 16)
    tgt = _rand(2, 3, 16, seed=1) if bf else _rand(3, 2, 16, seed=1)
    t_mask = torch.nn.Transformer.generate_square_subsequent_mask(3)
    j_mask = jnn.Transformer.generate_square_subsequent_mask(3)
    assert_close(j_mask, t_mask)
    kpm = torch.tensor([[False] * 5, [False] * 3 + [True] * 2])
    ts, js = src.clone().requires_grad_(), to_j(src, True)
    t_out = tm(ts, tgt, tgt_mask=t_mask, src_key_padding_mask=kpm, memory_key_padding_mask=kpm)
    j_out = jm(js, to_j(tgt), tgt_mask=j_mask, src_key_padding_mask=to_j(kpm), memory_key_padding_mask=to_j(kpm))
    assert_close(j_out, t_out, 2e-4, 2e-5)
    backward_both(t_out, j_out)
    assert_close(js.grad, ts.grad, 2e-4, 2e-5)
    assert_param_grads(tm, jm, 2e-4, 2e-5)


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_decoder_layers_and_stacks(norm_first):
    kw = {"dim_feedforward": 24, "dropout": 0.0, "batch_first": True, "norm_first": norm_first}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_enc = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(8, 2, **kw), 2,
                                            norm=torch.nn.LayerNorm(8))
        j_enc = jnn.TransformerEncoder(jnn.TransformerEncoderLayer(8, 2, **kw), 2, norm=jnn.LayerNorm(8))
    copy_state(t_enc, j_enc)
    x = _rand(2, 4, 8)
    src_mask = _rand(4, 4, seed=3)
    t_out, j_out = t_enc(x, mask=src_mask), j_enc(to_j(x), mask=to_j(src_mask))
    assert_close(j_out, t_out)
    t_dec = torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(8, 2, **kw), 2)
    j_dec = jnn.TransformerDecoder(jnn.TransformerDecoderLayer(8, 2, **kw), 2)
    copy_state(t_dec, j_dec)
    tgt = _rand(2, 3, 8, seed=1)
    tt, jt = tgt.clone().requires_grad_(), to_j(tgt, True)
    causal = torch.nn.Transformer.generate_square_subsequent_mask(3)
    t_d = t_dec(tt, t_out, tgt_mask=causal, tgt_is_causal=True)
    j_d = j_dec(jt, j_out, tgt_mask=to_j(causal), tgt_is_causal=True)
    assert_close(j_d, t_d)
    backward_both(t_d, j_d)
    assert_close(jt.grad, tt.grad)
    assert_param_grads(t_dec, j_dec)


def test_encoder_inference_fast_path_zeroes_padding():
    """torch's eval/no-grad nested-tensor path returns zeros at padded positions; jitorch follows it."""
    layer_kw = {"dim_feedforward": 16, "dropout": 0.1, "batch_first": True}
    t_enc = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(8, 2, **layer_kw), 2)
    j_enc = jnn.TransformerEncoder(jnn.TransformerEncoderLayer(8, 2, **layer_kw), 2)
    copy_state(t_enc, j_enc)
    t_enc.eval()
    j_enc.eval()
    x = _rand(2, 5, 8)
    kpm = torch.tensor([[False] * 5, [False] * 3 + [True] * 2])
    with torch.no_grad():
        ref = t_enc(x, src_key_padding_mask=kpm)
    with jitorch.no_grad():
        out = j_enc(to_j(x), src_key_padding_mask=to_j(kpm))
    assert_close(out, ref, 2e-4, 2e-5)
    assert not np.any(out.numpy()[1, 3:])


def test_transformer_errors_and_repr():
    m = jnn.Transformer(8, 2, 1, 1, 16)
    with pytest.raises(RuntimeError, match="the batch number of src and tgt must be equal"):
        m(jitorch.zeros(3, 2, 8), jitorch.zeros(3, 3, 8))
    with pytest.raises(RuntimeError, match="the feature number of src and tgt must be equal to d_model"):
        m(jitorch.zeros(3, 2, 6), jitorch.zeros(3, 2, 6))
    with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
        jnn.TransformerEncoderLayer(8, 2, activation="tanh")
    t = torch.nn.TransformerDecoderLayer(8, 2, 16)
    assert [n for n, _ in jnn.TransformerDecoderLayer(8, 2, 16).named_parameters()] == \
        [n for n, _ in t.named_parameters()]
