"""jitorch.optim.lr_scheduler against torch.optim.lr_scheduler: the same learning-rate sequences."""
from __future__ import annotations

import copy
import math
import warnings

import pytest

import jitorch
import jitorch.optim as jopt
from jitorch.optim import lr_scheduler as jsched

try:
    import torch
    from torch.optim import lr_scheduler as tsched
except ImportError:
    torch = None

requires_torch = pytest.mark.skipif(torch is None, reason="torch not installed")

STEPS = 60


def make_opt(lib, optim, kind="SGD", lrs=(0.1, 0.05)):
    groups = [{"params": [lib.zeros(2, requires_grad=True)], "lr": lr} for lr in lrs]
    if kind == "SGD":
        return optim.SGD(groups, lr=lrs[0], momentum=0.9)
    return optim.Adam(groups, lr=lrs[0])


def _mod(lib):
    return (jitorch, jopt, jsched) if lib == "j" else (torch, torch.optim, tsched)


# each entry builds a scheduler from (optimizer, scheduler module)
BUILDERS = {
    "StepLR": lambda o, m: m.StepLR(o, step_size=7, gamma=0.5),
    "MultiStepLR": lambda o, m: m.MultiStepLR(o, milestones=[5, 12, 12, 30], gamma=0.3),
    "ExponentialLR": lambda o, m: m.ExponentialLR(o, gamma=0.93),
    "CosineAnnealingLR": lambda o, m: m.CosineAnnealingLR(o, T_max=17, eta_min=0.001),
    "CosineAnnealingWarmRestarts": lambda o, m: m.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2, eta_min=1e-4),
    "CosineAnnealingWarmRestarts-mult1": lambda o, m: m.CosineAnnealingWarmRestarts(o, T_0=7),
    "LinearLR": lambda o, m: m.LinearLR(o, start_factor=0.2, end_factor=0.9, total_iters=13),
    "ConstantLR": lambda o, m: m.ConstantLR(o, factor=0.4, total_iters=9),
    "OneCycleLR-cos": lambda o, m: m.OneCycleLR(o, max_lr=[1.0, 0.5], total_steps=STEPS + 1),
    "OneCycleLR-linear-3phase": lambda o, m: m.OneCycleLR(o, max_lr=0.8, epochs=4, steps_per_epoch=16,
                                                          anneal_strategy="linear", three_phase=True,
                                                          pct_start=0.25),
    "OneCycleLR-no-momentum": lambda o, m: m.OneCycleLR(o, max_lr=0.3, total_steps=STEPS, cycle_momentum=False),
    "LambdaLR": lambda o, m: m.LambdaLR(o, lr_lambda=[lambda e: 0.95 ** e, lambda e: 1.0 / (1 + e)]),
    "MultiplicativeLR": lambda o, m: m.MultiplicativeLR(o, lr_lambda=lambda e: 0.97 if e % 3 else 0.9),
    "PolynomialLR": lambda o, m: m.PolynomialLR(o, total_iters=40, power=2.0),
    "CyclicLR": lambda o, m: m.CyclicLR(o, base_lr=0.01, max_lr=[0.1, 0.2], step_size_up=6, step_size_down=4,
                                        mode="triangular2"),
    "CyclicLR-exp": lambda o, m: m.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=5, mode="exp_range",
                                            gamma=0.97),
    "SequentialLR": lambda o, m: m.SequentialLR(o, schedulers=[m.LinearLR(o, start_factor=0.1, total_iters=10),
                                                               m.CosineAnnealingLR(o, T_max=30),
                                                               m.ExponentialLR(o, gamma=0.9)],
                                                milestones=[10, 35]),
    "ChainedScheduler": lambda o, m: m.ChainedScheduler([m.ConstantLR(o, factor=0.5, total_iters=6),
                                                         m.ExponentialLR(o, gamma=0.95),
                                                         m.StepLR(o, step_size=11, gamma=0.5)]),
}


def lr_history(lib, name, kind="SGD", steps=STEPS):
    _, _optim, sched_mod = _mod(lib)
    opt = make_opt(*_mod(lib)[:2], kind=kind)
    sched = BUILDERS[name](opt, sched_mod)
    hist = [list(sched.get_last_lr())]
    moms = []
    for _ in range(steps):
        opt.step()
        sched.step()
        hist.append(list(sched.get_last_lr()))
        assert [g["lr"] for g in opt.param_groups] == hist[-1]
        g0 = opt.param_groups[0]
        moms.append(g0["betas"][0] if "betas" in g0 else g0["momentum"])
    return hist, moms


# the optimizer kind only matters for momentum cycling (SGD's momentum vs Adam's beta1)
SEQUENCE_CASES = [(name, "SGD") for name in BUILDERS] + [
    (name, "Adam") for name in BUILDERS if name.startswith(("OneCycle", "CyclicLR", "StepLR"))]


@requires_torch
@pytest.mark.parametrize("name,kind", SEQUENCE_CASES)
def test_lr_sequence_matches_torch(name, kind):
    steps = 64 if "3phase" in name else STEPS
    j_lrs, j_mom = lr_history("j", name, kind, steps)
    t_lrs, t_mom = lr_history("t", name, kind, steps)
    assert len(j_lrs) == steps + 1
    assert j_lrs == t_lrs  # same arithmetic, so the same floats
    assert j_mom == t_mom


@requires_torch
@pytest.mark.parametrize("name", ["StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "LinearLR",
                                  "ConstantLR", "PolynomialLR"])
def test_closed_form_with_explicit_epoch(name):
    out = []
    for lib in ("j", "t"):
        _, _optim, m = _mod(lib)
        opt = make_opt(*_mod(lib)[:2])
        sched = BUILDERS[name](opt, m)
        seq = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for e in (3, 10, 4, 25, 0, 41):
                opt.step()
                sched.step(e)
                seq.append(sched.get_last_lr())
        out.append(seq)
    assert out[0] == out[1]


@requires_torch
def test_warm_restarts_with_fractional_epochs():
    out = []
    for lib in ("j", "t"):
        _, _optim, m = _mod(lib)
        opt = make_opt(*_mod(lib)[:2])
        sched = m.CosineAnnealingWarmRestarts(opt, T_0=3, T_mult=2, eta_min=0.001)
        seq = []
        iters = 7
        for epoch in range(20):
            for i in range(iters):
                opt.step()
                sched.step(epoch + i / iters)
                seq.append((sched.get_last_lr(), sched.T_cur, sched.T_i, sched.last_epoch))
        out.append(seq)
    assert out[0] == out[1]
    with pytest.raises(ValueError, match="Expected non-negative epoch"):
        jsched.CosineAnnealingWarmRestarts(make_opt(jitorch, jopt), T_0=3).step(-1)


@requires_torch
@pytest.mark.parametrize("cfg", [
    {},
    {"mode": "max", "factor": 0.5, "patience": 2, "threshold": 0.1, "threshold_mode": "abs", "cooldown": 2},
    {"mode": "min", "factor": 0.3, "patience": 1, "threshold": 0.01, "threshold_mode": "rel", "cooldown": 1,
     "min_lr": [0.02, 0.001]},
    {"mode": "max", "factor": 0.2, "patience": 0, "threshold_mode": "rel", "min_lr": 0.004, "eps": 1e-3},
])
def test_reduce_lr_on_plateau_scripted_metrics(cfg):
    metrics = [1.0, 0.9, 0.95, 0.95, 0.95, 0.89, 0.9, 0.91, 0.92, 0.5, 0.5, 0.5, 0.5, 0.49, 0.6, 0.7, 0.8, 0.81,
               0.8, 0.8, 0.8, 0.8, 0.2, 0.2, 0.2, 0.21, 0.21, 0.3, 0.3, 0.3] * 2
    hist = []
    for lib in ("j", "t"):
        _, _optim, m = _mod(lib)
        opt = make_opt(*_mod(lib)[:2])
        sched = m.ReduceLROnPlateau(opt, **cfg)
        seq = []
        for k, v in enumerate(metrics):
            opt.step()
            sched.step(v if k % 2 else lib_tensor(lib, v))  # a metric may also be a 0-d tensor
            seq.append((sched.get_last_lr(), sched.num_bad_epochs, sched.cooldown_counter, sched.best))
        hist.append(seq)
    assert hist[0] == hist[1]
    assert hist[0][-1][0] != hist[0][0][0]  # the script does trigger reductions


def lib_tensor(lib, v):
    return (jitorch if lib == "j" else torch).tensor(v, dtype=(jitorch if lib == "j" else torch).float64)


def test_reduce_lr_on_plateau_validation():
    opt = make_opt(jitorch, jopt)
    with pytest.raises(ValueError, match="Factor should be < 1.0."):
        jsched.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="mode foo is unknown!"):
        jsched.ReduceLROnPlateau(opt, mode="foo")
    with pytest.raises(ValueError, match="threshold mode bar is unknown!"):
        jsched.ReduceLROnPlateau(opt, threshold_mode="bar")
    with pytest.raises(ValueError, match="expected 2 min_lrs, got 1"):
        jsched.ReduceLROnPlateau(opt, min_lr=[0.1])
    with pytest.raises(TypeError, match="is not an Optimizer"):
        jsched.ReduceLROnPlateau(object())


@pytest.mark.parametrize("name", ["StepLR", "CosineAnnealingLR", "OneCycleLR-cos", "LambdaLR", "SequentialLR",
                                  "ChainedScheduler", "CosineAnnealingWarmRestarts", "CyclicLR", "PolynomialLR"])
def test_state_dict_round_trip(name):
    total = 40
    opt = make_opt(jitorch, jopt)
    sched = BUILDERS[name](opt, jsched)
    full = [sched.get_last_lr()]
    for _ in range(total):
        opt.step()
        sched.step()
        full.append(sched.get_last_lr())

    opt1 = make_opt(jitorch, jopt)
    s1 = BUILDERS[name](opt1, jsched)
    for _ in range(15):
        opt1.step()
        s1.step()
    opt_sd, sched_sd = copy.deepcopy(opt1.state_dict()), copy.deepcopy(s1.state_dict())
    assert "optimizer" not in sched_sd

    opt2 = make_opt(jitorch, jopt)
    s2 = BUILDERS[name](opt2, jsched)
    s2.load_state_dict(sched_sd)
    opt2.load_state_dict(opt_sd)  # after the scheduler, as torch's docs say
    resumed = []
    for _ in range(total - 15):
        opt2.step()
        s2.step()
        resumed.append(s2.get_last_lr())
    assert resumed == full[16:]


@requires_torch
def test_state_dict_keys_match_torch():
    for name in ("StepLR", "OneCycleLR-cos", "CosineAnnealingWarmRestarts", "SequentialLR", "LambdaLR"):
        sds = []
        for lib in ("j", "t"):
            _, _optim, m = _mod(lib)
            sds.append(BUILDERS[name](make_opt(*_mod(lib)[:2]), m).state_dict())
        assert set(sds[0]) == set(sds[1]), name
        for key in ("last_epoch", "_step_count", "base_lrs", "_last_lr"):
            if key in sds[1]:
                assert sds[0][key] == sds[1][key], (name, key)


def test_initial_lr_and_last_epoch_resume():
    opt = make_opt(jitorch, jopt)
    jsched.StepLR(opt, step_size=3)
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.05]
    fresh = make_opt(jitorch, jopt)
    with pytest.raises(KeyError, match="param 'initial_lr' is not specified in param_groups\\[0\\]"):
        jsched.StepLR(fresh, step_size=3, last_epoch=4)
    resumed = jsched.ExponentialLR(opt, gamma=0.5, last_epoch=4)
    assert resumed.last_epoch == 5


def test_warning_when_scheduler_steps_before_optimizer():
    opt = make_opt(jitorch, jopt)
    sched = jsched.StepLR(opt, step_size=2)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        sched.step()
    opt2 = make_opt(jitorch, jopt)
    sched2 = jsched.StepLR(opt2, step_size=2)
    opt2.step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched2.step()
    with pytest.warns(UserWarning, match="please use `get_last_lr\\(\\)`"):
        sched2.get_lr()


def test_scheduler_drives_real_optimizer_lr():
    w = jitorch.zeros(1, requires_grad=True)
    opt = jopt.SGD([w], lr=1.0)
    sched = jsched.MultiStepLR(opt, milestones=[2], gamma=0.1)
    deltas = []
    for _ in range(4):
        before = w.item()
        w.grad = jitorch.ones(1)
        opt.step()
        sched.step()
        deltas.append(round(before - w.item(), 6))
    assert deltas == [1.0, 1.0, 0.1, 0.1]


def test_constructor_validation():
    opt = make_opt(jitorch, jopt)
    with pytest.raises(TypeError, match="is not an Optimizer"):
        jsched.StepLR(object(), step_size=2)
    with pytest.raises(ValueError, match="Constant multiplicative factor"):
        jsched.ConstantLR(opt, factor=2.0)
    with pytest.raises(ValueError, match="Starting multiplicative factor"):
        jsched.LinearLR(opt, start_factor=0)
    with pytest.raises(ValueError, match="Expected positive integer T_0"):
        jsched.CosineAnnealingWarmRestarts(opt, T_0=0)
    with pytest.raises(ValueError, match="Expected integer T_mult >= 1"):
        jsched.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=0)
    with pytest.raises(ValueError, match="You must define either total_steps"):
        jsched.OneCycleLR(opt, max_lr=0.1)
    with pytest.raises(ValueError, match="Expected float between 0 and 1 pct_start"):
        jsched.OneCycleLR(opt, max_lr=0.1, total_steps=10, pct_start=2)
    with pytest.raises(ValueError, match="max_lr must have the same length"):
        jsched.OneCycleLR(opt, max_lr=[0.1], total_steps=10)
    with pytest.raises(ValueError, match="Expected 2 lr_lambdas, but got 1"):
        jsched.LambdaLR(opt, lr_lambda=[lambda e: 1.0])
    with pytest.raises(ValueError, match="number of milestone points"):
        jsched.SequentialLR(opt, [jsched.StepLR(opt, 2)], milestones=[3])
    with pytest.raises(ValueError, match="does not support `ReduceLROnPlateau`"):
        jsched.ChainedScheduler([jsched.ReduceLROnPlateau(opt)])
    sgd_plain = jopt.Adagrad([jitorch.zeros(1, requires_grad=True)])
    with pytest.raises(ValueError, match="optimizer must support momentum or beta1"):
        jsched.OneCycleLR(sgd_plain, max_lr=0.1, total_steps=10)
    one = jsched.OneCycleLR(make_opt(jitorch, jopt), max_lr=0.1, total_steps=3)
    with pytest.raises(ValueError, match="Tried to step 4 times"):
        for _ in range(4):
            one.optimizer.step()
            one.step()


def test_lambda_state_dict_saves_callable_objects_only():
    class Decay:
        def __init__(self, rate):
            self.rate = rate

        def __call__(self, epoch):
            return self.rate ** epoch

    opt = make_opt(jitorch, jopt)
    sched = jsched.LambdaLR(opt, lr_lambda=[Decay(0.5), lambda e: 1.0])
    sd = sched.state_dict()
    assert sd["lr_lambdas"] == [{"rate": 0.5}, None]
    other = jsched.LambdaLR(make_opt(jitorch, jopt), lr_lambda=[Decay(0.9), lambda e: 1.0])
    other.load_state_dict(sd)
    assert other.lr_lambdas[0].rate == 0.5
    assert math.isclose(other.base_lrs[0], 0.1)
