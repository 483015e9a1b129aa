"""Helpers for the nn parity tests: move tensors and weights between torch and jitorch."""
from __future__ import annotations

import numpy as np

import jitorch


def to_j(t, requires_grad: bool = False):
    """A jitorch copy of torch tensor ``t``."""
    out = jitorch.from_numpy(t.detach().numpy().copy())
    return out.requires_grad_() if requires_grad else out


def to_t(x, requires_grad: bool = False):
    import torch
    out = torch.from_numpy(np.array(x.detach().numpy()))
    return out.requires_grad_() if requires_grad else out


def copy_weights(tmod, jmod) -> None:
    """Load torch module ``tmod``'s state into jitorch module ``jmod`` (same architecture)."""
    jmod.load_state_dict({k: to_j(v) for k, v in tmod.state_dict().items()})


def close(j, t, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    """Assert jitorch tensor ``j`` equals torch tensor ``t`` (shape and values)."""
    a = j.detach().numpy()
    b = t.detach().numpy()
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def grads_close(jmod, tmod, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    """Every parameter gradient of ``jmod`` matches ``tmod``'s."""
    tp = dict(tmod.named_parameters())
    for name, p in jmod.named_parameters():
        q = tp[name]
        if q.grad is None:
            assert p.grad is None or not p.grad.numpy().any(), name
            continue
        assert p.grad is not None, f"no gradient for {name}"
        close(p.grad, q.grad, rtol, atol)
