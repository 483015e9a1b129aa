"""Optimizers on CUDA parameters: every algorithm and option against the same steps on the CPU.

Each case builds the same parameters on both devices, feeds the same
gradients for a few steps and compares parameters and state.  The CUDA kernels
(runtime/cuda/optim_kernels.py) repeat the CPU kernels' arithmetic operation
by operation (fused multiply-adds in the same places), so float32 and float64
trajectories agree bit for bit.
"""
from __future__ import annotations

import numpy as np
import pytest

import jitorch
from jitorch import optim

pytestmark = [pytest.mark.skipif(not jitorch.cuda.is_available(), reason="numba.cuda (or its simulator) is missing"),
              pytest.mark.filterwarnings("ignore::RuntimeWarning")]

CASES = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "nesterov": True, "maximize": True}),
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.01, "betas": (0.6, 0.95), "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "maximize": True}),
    ("AdamW", {"lr": 0.01}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.05, "amsgrad": True}),
    ("RMSprop", {"lr": 0.01}),
    ("RMSprop", {"lr": 0.01, "alpha": 0.4, "centered": True}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.1, "centered": True, "maximize": True}),
    ("Adagrad", {"lr": 0.1}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.1, "initial_accumulator_value": 0.5,
                 "maximize": True}),
]

SHAPES = [(3, 4), (5,)]


def _grads(step, dtype):
    rng = np.random.default_rng(100 + step)
    return [rng.normal(size=s).astype(dtype) for s in SHAPES]


def _params(dtype, device):
    rng = np.random.default_rng(7)
    return [jitorch.tensor(rng.normal(size=s).astype(dtype), device=device, requires_grad=True) for s in SHAPES]


def _run(name, kwargs, dtype, device, steps=3, make_params=_params):
    params = make_params(dtype, device)
    opt = getattr(optim, name)(params, **kwargs)
    for step in range(steps):
        for p, g in zip(params, _grads(step, dtype)):
            p.grad = jitorch.tensor(g, device=device)
        opt.step()
    return params, opt


def _host(t):
    return t.detach().cpu().numpy()


def _assert_same_run(cpu, cuda, exact=True):
    (cp, copt), (gp, gopt) = cpu, cuda
    for a, b in zip(cp, gp):
        assert b.device.type == "cuda"
        if exact:
            np.testing.assert_array_equal(_host(b), _host(a))
        else:
            np.testing.assert_allclose(_host(b).astype(np.float64), _host(a).astype(np.float64), rtol=2e-3, atol=2e-3)
    for a, b in zip(cp, gp):
        cs, gs = copt.state[a], gopt.state[b]
        assert set(cs) == set(gs)
        for key in cs:
            if isinstance(cs[key], jitorch.Tensor) and key != "step":
                assert gs[key].device.type == "cuda", key  # state lives on the parameter's device
                if exact:
                    np.testing.assert_array_equal(_host(gs[key]), _host(cs[key]), err_msg=key)


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_cuda_steps_equal_cpu_steps(name, kwargs):
    for dtype in (np.float32, np.float64):
        _assert_same_run(_run(name, kwargs, dtype, "cpu"), _run(name, kwargs, dtype, "cuda"))


@pytest.mark.parametrize("name,kwargs", [CASES[1], CASES[6], CASES[11], CASES[13]], ids=["SGD", "Adam", "RMSprop",
                                                                                          "Adagrad"])
def test_float16_parameters_update_through_float32(name, kwargs):
    _assert_same_run(_run(name, kwargs, np.float16, "cpu", steps=2), _run(name, kwargs, np.float16, "cuda", steps=2))


def _strided_params(dtype, device):
    rng = np.random.default_rng(7)
    out = []
    for s in SHAPES:
        base = rng.normal(size=s[::-1]).astype(dtype)
        t = jitorch.tensor(base, device=device)
        t = t.t() if t.ndim == 2 else t
        out.append(t.requires_grad_(True))
    return out


def test_non_contiguous_parameters_and_gradients():
    kwargs = {"lr": 0.01, "amsgrad": True}
    cpu = _run("Adam", kwargs, np.float32, "cpu", make_params=_strided_params)
    gpu = _run("Adam", kwargs, np.float32, "cuda", make_params=_strided_params)
    _assert_same_run(cpu, gpu)
    # a transposed gradient
    p = jitorch.zeros(3, 4, device="cuda", requires_grad=True)
    opt = optim.SGD([p], lr=1.0)
    g = np.arange(12, dtype=np.float32).reshape(4, 3)
    p.grad = jitorch.tensor(g, device="cuda").t()
    opt.step()
    np.testing.assert_array_equal(_host(p), -g.T)


def test_state_dict_round_trip_and_device_moves():
    kwargs = {"lr": 0.01, "momentum": 0.9, "centered": True}
    params, opt = _run("RMSprop", kwargs, np.float32, "cuda", steps=2)
    sd = opt.state_dict()
    # CUDA state loads into a CPU optimizer (moved to the CPU params) and back
    cparams = [jitorch.tensor(_host(p), requires_grad=True) for p in params]
    copt = optim.RMSprop(cparams, **kwargs)
    copt.load_state_dict(sd)
    assert all(v.device.type == "cpu" for st in copt.state.values() for k, v in st.items() if k != "step")
    gparams = [p.detach().clone().requires_grad_(True) for p in params]
    gopt = optim.RMSprop(gparams, **kwargs)
    gopt.load_state_dict(copt.state_dict())
    assert all(v.device.type == "cuda" for st in gopt.state.values() for k, v in st.items() if k != "step")
    for (ps, o) in ((cparams, copt), (gparams, gopt)):
        for p, g in zip(ps, _grads(9, np.float32)):
            p.grad = jitorch.tensor(g, device=p.device)
        o.step()
    for a, b in zip(cparams, gparams):
        np.testing.assert_array_equal(_host(b), _host(a))


def test_zero_grad_keeps_cuda_gradients_on_device():
    p = jitorch.ones(4, device="cuda", requires_grad=True)
    (p * 3).sum().backward()
    opt = optim.SGD([p], lr=0.1)
    opt.zero_grad(set_to_none=False)
    assert p.grad.device.type == "cuda"
    assert np.array_equal(_host(p.grad), np.zeros(4, np.float32))
    opt.zero_grad()
    assert p.grad is None


def test_training_loop_on_cuda_matches_cpu():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(8, 3)).astype(np.float32), rng.normal(size=(8, 1)).astype(np.float32)
    w0, b0 = rng.normal(size=(1, 3)).astype(np.float32), np.zeros(1, np.float32)
    results = []
    for dev in ("cpu", "cuda"):
        model = jitorch.nn.Linear(3, 1)
        with jitorch.no_grad():
            model.weight.copy_(jitorch.tensor(w0))
            model.bias.copy_(jitorch.tensor(b0))
        model.to(dev)
        opt = optim.AdamW(model.parameters(), lr=0.05)
        xs, ys = jitorch.tensor(x, device=dev), jitorch.tensor(y, device=dev)
        for _ in range(3):
            opt.zero_grad()
            loss = ((model(xs) - ys) ** 2).mean()
            loss.backward()
            opt.step()
        results.append((_host(model.weight), float(loss)))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-5, atol=1e-6)
    assert abs(results[1][1] - results[0][1]) < 1e-5
