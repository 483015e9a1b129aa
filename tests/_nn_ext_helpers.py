"""Shared helpers of the conv/pool, recurrent and attention tests: torch <-> jitorch copies and checks."""
from __future__ import annotations

import numpy as np

import jitorch


def to_j(t, requires_grad: bool = False):
    """A jitorch tensor with the values (and dtype) of torch tensor ``t``."""
    x = jitorch.from_numpy(t.detach().numpy().copy())
    return x.requires_grad_() if requires_grad else x


def to_np(t) -> np.ndarray:
    if hasattr(t, "detach"):
        t = t.detach()
    return np.asarray(t.numpy())


def assert_close(got, want, rtol: float = 1e-4, atol: float = 1e-5, what: str = "") -> None:
    """Same shape and values (NaN in the same places)."""
    g, w = to_np(got), to_np(want)
    assert g.shape == w.shape, f"{what}: shape {g.shape} != {w.shape}"
    np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, equal_nan=True, err_msg=what)


def copy_state(tm, jm) -> None:
    """Copy every parameter and buffer of torch module ``tm`` into ``jm`` (keys, order and shapes must agree)."""
    tsd, jsd = tm.state_dict(), jm.state_dict()
    assert list(tsd) == list(jsd), f"state_dict keys differ:\n{list(tsd)}\n{list(jsd)}"
    for k, v in tsd.items():
        assert tuple(v.shape) == tuple(jsd[k].shape), k
    jm.load_state_dict({k: to_j(v) for k, v in tsd.items()})


def assert_param_grads(tm, jm, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    for (name, tp), (jname, jp) in zip(tm.named_parameters(), jm.named_parameters()):
        assert name == jname
        if tp.grad is None:
            assert jp.grad is None or not np.any(to_np(jp.grad)), name
            continue
        assert jp.grad is not None, f"no gradient for {name}"
        assert_close(jp.grad, tp.grad, rtol, atol, what=f"grad of {name}")


def backward_both(t_out, j_out, seed: int = 0):
    """Backpropagate the same random cotangent through a torch and a jitorch output."""
    import torch
    g = torch.from_numpy(np.random.default_rng(seed).standard_normal(tuple(t_out.shape)).astype(
        to_np(t_out).dtype))
    t_out.backward(g)
    j_out.backward(to_j(g))
