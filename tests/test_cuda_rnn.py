"""CUDA RNN / LSTM / GRU sequence kernels (forward and backpropagation through time) against the CPU."""
from __future__ import annotations

import numpy as np
import pytest
from _cuda_kernel_helpers import assert_same, fast_sim_threads  # noqa: F401

import jitorch

RNG = np.random.default_rng(4)
T, N, H = 3, 2, 4


def _r(*shape):
    return (RNG.standard_normal(shape) * 0.5).astype(np.float32)


@pytest.mark.parametrize("reverse", [False, True])
def test_lstm_sequence_and_backward(reverse):
    gx, w, h0, c0 = _r(T, N, 4 * H), _r(4 * H, H), _r(N, H), _r(N, H)
    cpu, _ = assert_same("lstm_sequence", gx, w, h0, c0, reverse=reverse, rtol=1e-4, atol=1e-5)
    hs = cpu[0]
    assert_same("lstm_sequence_backward", _r(T, N, H), _r(N, H), gx, w, h0, c0, hs, reverse=reverse, rtol=1e-4,
                atol=1e-5)
    assert_same("lstm_sequence_backward", None, _r(N, H), gx, w, h0, c0, hs, reverse=reverse, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_gru_sequence_and_backward(reverse, bias):
    gx, w, b, h0 = _r(T, N, 3 * H), _r(3 * H, H), (_r(3 * H) if bias else None), _r(N, H)
    hs, _ = assert_same("gru_sequence", gx, w, b, h0, reverse=reverse, rtol=1e-4, atol=1e-5)
    assert_same("gru_sequence_backward", _r(T, N, H), gx, w, b, h0, hs, reverse=reverse, rtol=1e-4,
                           atol=1e-5)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn_sequence_and_backward(nonlinearity):
    gx, w, h0 = _r(T, N, H), _r(H, H), _r(N, H)
    for reverse in (False, True):
        hs, _ = assert_same("rnn_sequence", gx, w, h0, reverse=reverse, nonlinearity=nonlinearity, rtol=1e-4,
                            atol=1e-5)
        assert_same("rnn_sequence_backward", _r(T, N, H), w, h0, hs, reverse=reverse, nonlinearity=nonlinearity,
                    rtol=1e-4, atol=1e-5)


def test_lstm_layer_gradients_match_cpu():
    from jitorch import nn
    jitorch.manual_seed(0)
    lstm = nn.LSTM(3, 4, batch_first=True, bidirectional=True)
    x = jitorch.randn(2, 3, 3)
    h0, c0 = jitorch.randn(2, 2, 4), jitorch.randn(2, 2, 4)  # given: nn.LSTM's default zeros are made on the CPU
    outs = []
    for dev in ("cpu", "cuda"):
        m = lstm.to(dev)
        for p in m.parameters():
            p.grad = None
        xt = x.detach().to(dev).requires_grad_()
        y, (h, c) = m(xt, (h0.to(dev), c0.to(dev)))
        (y.pow(2).sum() + h.sum() + c.sum()).backward()
        outs.append([y.detach().cpu().numpy(), xt.grad.cpu().numpy()] +
                    [p.grad.cpu().numpy() for p in m.parameters()])
    for a, b in zip(*outs):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
