"""Compiled training steps: forward, loss, backward() and optimizer.step() inside one compiled function.

Each case runs the same step eagerly and compiled from identical weights and
compares losses, outputs, gradients and parameters after several steps.
"""
import copy

import numpy as np
import pytest

import jitorch as torch
import jitorch.nn as nn
import jitorch.nn.functional as F
from jitorch.compiler import segments


def _close(a, b, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(np.asarray(a.detach()), np.asarray(b.detach()), rtol=rtol, atol=atol)


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 5))


def _pair(make_model, make_opt):
    eager_model = make_model()
    compiled_model = copy.deepcopy(eager_model)
    return (eager_model, make_opt(eager_model.parameters())), (compiled_model, make_opt(compiled_model.parameters()))


def _step_fn(model, opt, loss_fn=F.cross_entropy):
    def step(x, y):
        opt.zero_grad()
        out = model(x)
        loss = loss_fn(out, y)
        loss.backward()
        opt.step()
        return loss, out
    return step


def _data(n=8, classes=5, seed=1):
    torch.manual_seed(seed)
    return torch.randn(n, 12), torch.randint(0, classes, (n,))


def _program(cf):
    (entry,) = cf.entries.values()
    return entry.program


def _grad_ranges(program):
    return [ex for ex, _ in program.executors.values() if isinstance(ex, segments.GradRange)]


@pytest.mark.parametrize("make_opt", [
    lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
    lambda p: torch.optim.Adam(p, lr=0.01),
    lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1),
    lambda p: torch.optim.RMSprop(p, lr=0.01, centered=True),
], ids=["sgd_momentum", "adam", "adamw", "rmsprop"])
def test_training_step_matches_eager(make_opt):
    (em, eo), (cm, co) = _pair(_mlp, make_opt)
    eager = _step_fn(em, eo)
    compiled = torch.compile(_step_fn(cm, co))
    for k in range(5):
        x, y = _data(seed=k)
        le, oe = eager(x, y)
        lc, oc = compiled(x, y)
        _close(le, lc)
        _close(oe, oc)
        assert oc.requires_grad == oe.requires_grad and lc.requires_grad == le.requires_grad
        for pe, pc in zip(em.parameters(), cm.parameters()):
            _close(pe.grad, pc.grad, rtol=1e-5, atol=1e-6)
            _close(pe, pc, rtol=1e-5, atol=1e-6)
    program = _program(compiled)
    assert program is not None, "a training step must not fall back to eager"
    assert program.divergences == 0
    assert len(compiled.entries) == 1  # the weight updates never retrace


class _Counting:
    """An executor that counts its calls."""

    def __init__(self, executor):
        self.executor = executor
        self.calls = 0

    def __call__(self, arrays):
        self.calls += 1
        return self.executor(arrays)

    def __getattr__(self, name):
        return getattr(self.executor, name)


def test_step_runs_compiled_forward_and_backward():
    (_, _), (cm, co) = _pair(_mlp, lambda p: torch.optim.SGD(p, lr=0.1))
    compiled = torch.compile(_step_fn(cm, co))
    x, y = _data()
    for _ in range(4):
        compiled(x, y)
    (rng,) = _grad_ranges(_program(compiled))
    (entry,) = rng.fn.entries.values()
    assert entry.backward is not None
    counters = {name: _Counting(getattr(entry, name)) for name in ("forward", "backward")}
    for name, c in counters.items():
        setattr(entry, name, c)
    compiled(x, y)
    assert {name: c.calls for name, c in counters.items()} == {"forward": 1, "backward": 1}
    assert len(rng.fn.entries) == 1  # the range never retraces either


def test_explain_reports_backward_and_step_as_breaks():
    (_, _), (cm, co) = _pair(_mlp, lambda p: torch.optim.SGD(p, lr=0.1))
    x, y = _data()
    report = torch.compiler.explain(_step_fn(cm, co), x, y)
    cats = [b.category for b in report.graph_breaks]
    assert cats == ["backward or optimizer call", "backward or optimizer call"]
    assert "backward()" in report.graph_breaks[0].reason and "SGD.step()" in report.graph_breaks[1].reason
    assert report.graph_count == 2  # the forward+loss graph and its backward graph
    assert report.kernel_count >= 2


def test_fullgraph_names_the_backward_call():
    (_, _), (cm, co) = _pair(_mlp, lambda p: torch.optim.SGD(p, lr=0.1))
    x, y = _data()
    with pytest.raises(RuntimeError, match=r"fullgraph=True.*backward\(\)"):
        torch.compile(_step_fn(cm, co), fullgraph=True)(x, y)


def test_gradients_flow_across_a_resumed_break():
    """An .item() between two layers: two graphs, and gradients reach the first layer."""
    torch.manual_seed(0)
    a, b = nn.Linear(6, 7), nn.Linear(7, 3)
    a2, b2 = copy.deepcopy(a), copy.deepcopy(b)

    def make(first, second):
        def f(x):
            h = torch.tanh(first(x))
            if h.sum().item() > -1e6:  # always taken: the replay stays on the captured path
                h = h * 0.5
            loss = (second(h) ** 2).mean()
            loss.backward()
            return loss
        return f

    eager, compiled = make(a, b), torch.compile(make(a2, b2))
    for k in range(4):
        torch.manual_seed(10 + k)
        x = torch.randn(5, 6)
        for m in (a, b, a2, b2):
            m.zero_grad()
        _close(eager(x), compiled(x))
        for pe, pc in zip(list(a.parameters()) + list(b.parameters()), list(a2.parameters()) + list(b2.parameters())):
            _close(pe.grad, pc.grad, rtol=1e-5, atol=1e-7)
    program = _program(compiled)
    assert program is not None and program.divergences == 0
    assert len(_grad_ranges(program)) >= 2


def test_clip_grad_norm_between_backward_and_step():
    (em, eo), (cm, co) = _pair(_mlp, lambda p: torch.optim.SGD(p, lr=0.5, momentum=0.5))

    def make(model, opt):
        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 0.1)
            opt.step()
            return loss
        return step

    eager, compiled = make(em, eo), torch.compile(make(cm, co))
    for k in range(4):
        x, y = _data(seed=k)
        _close(eager(x, y), compiled(x, y))
        for pe, pc in zip(em.parameters(), cm.parameters()):
            _close(pe, pc)


def test_batchnorm_and_dropout_steps_equal_eager():
    """Buffer updates land in the buffers' own storage; dropout draws the same masks as eager."""
    def make_model():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(12, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 5))

    (em, eo), (cm, co) = _pair(make_model, lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9))
    eager, compiled = _step_fn(em, eo), torch.compile(_step_fn(cm, co))
    running_mean_storage = cm[1].running_mean._data
    for k in range(4):
        x, y = _data(seed=k)
        torch.manual_seed(100 + k)
        le, _ = eager(x, y)
        torch.manual_seed(100 + k)
        lc, _ = compiled(x, y)
        _close(le, lc)
        for pe, pc in zip(em.parameters(), cm.parameters()):
            _close(pe, pc)
        _close(em[1].running_mean, cm[1].running_mean)
        _close(em[1].running_var, cm[1].running_var)
        assert int(em[1].num_batches_tracked) == int(cm[1].num_batches_tracked)
    program = _program(compiled)
    assert program is not None and program.divergences == 0
    assert cm[1].running_mean._data is running_mean_storage  # updated in place, as eager does


def test_backward_twice_without_retain_graph_still_errors():
    torch.manual_seed(0)
    m = nn.Linear(3, 2)

    def f(x):
        loss = m(x).sum()
        loss.backward()
        loss.backward()
        return loss

    cf = torch.compile(f)
    x = torch.randn(4, 3)
    for _ in range(2):  # the capture, then a replay
        with pytest.raises(RuntimeError, match="backward through the graph a second time"):
            cf(x)


def test_compiled_module_with_step_outside_and_inside_agree():
    """A compiled module whose step is eager, and a compiled step, reach the same weights."""
    (m1, o1), (m2, o2) = _pair(_mlp, lambda p: torch.optim.Adam(p, lr=0.01))
    net = torch.compile(m1)
    step = torch.compile(_step_fn(m2, o2))
    for k in range(3):
        x, y = _data(seed=k)
        o1.zero_grad()
        F.cross_entropy(net(x), y).backward()
        o1.step()
        step(x, y)
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        _close(p1, p2)


def test_transformer_layer_step_with_dropout_matches_eager():
    def make_model():
        torch.manual_seed(0)
        return nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32, dropout=0.1, batch_first=True)

    # SGD: the key projection's bias has a gradient of rounding noise only (softmax ignores a shift of
    # the keys), which Adam would normalize into steps of size lr either way
    (em, eo), (cm, co) = _pair(make_model, lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9))
    eager, compiled = _step_fn(em, eo, F.mse_loss), torch.compile(_step_fn(cm, co, F.mse_loss))
    for k in range(4):
        torch.manual_seed(k)
        x, target = torch.randn(2, 5, 16), torch.randn(2, 5, 16)
        torch.manual_seed(50 + k)
        le, _ = eager(x, target)
        torch.manual_seed(50 + k)
        lc, _ = compiled(x, target)
        _close(le, lc, rtol=1e-4, atol=1e-5)
        for (name, pe), pc in zip(em.named_parameters(), cm.parameters()):
            _close(pe, pc, rtol=1e-4, atol=1e-5)
    program = _program(compiled)
    assert program is not None and program.divergences == 0


def test_cuda_step_with_break_batchnorm_and_dropout_matches_eager():
    """On CUDA tensors (the simulator in CI): resumed graphs, buffer write-back, device random draws."""
    if not torch.cuda.is_available():
        pytest.skip("needs a GPU or NUMBA_ENABLE_CUDASIM=1")

    def make_model():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Dropout(0.25), nn.Linear(6, 3)).cuda()

    def make(model, opt):
        def step(x, y):
            opt.zero_grad()
            out = model(x)
            if out.abs().sum().item() >= 0:  # always true: the replay stays on the captured path
                out = out * 1.0
            loss = F.cross_entropy(out, y)
            loss.backward()
            opt.step()
            return loss
        return step

    (em, eo), (cm, co) = _pair(make_model, lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9))
    eager, compiled = make(em, eo), torch.compile(make(cm, co))
    for k in range(3):
        torch.manual_seed(k)
        x, y = torch.randn(5, 4).cuda(), torch.randint(0, 3, (5,)).cuda()
        torch.manual_seed(40 + k)
        le = eager(x, y)
        torch.manual_seed(40 + k)
        lc = compiled(x, y)
        _close(le.cpu(), lc.cpu())
        for pe, pc in zip(em.parameters(), cm.parameters()):
            _close(pe.cpu(), pc.cpu())
        _close(em[1].running_mean.cpu(), cm[1].running_mean.cpu())
    program = _program(compiled)
    assert program is not None and program.divergences == 0


def test_values_computed_under_no_grad_carry_no_gradient():
    torch.manual_seed(0)
    a = nn.Linear(4, 3)
    b = copy.deepcopy(a)

    def make(m):
        def f(x):
            h = m(x)
            with torch.no_grad():
                scale = h.abs().max() + 1.0  # a constant as far as autograd is concerned
            loss = (h / scale).pow(2).sum()
            loss.backward()
            return loss
        return f

    eager, compiled = make(a), torch.compile(make(b))
    for k in range(4):
        torch.manual_seed(k)
        x = torch.randn(5, 4)
        a.zero_grad()
        b.zero_grad()
        _close(eager(x), compiled(x))
        _close(a.weight.grad, b.weight.grad)
        _close(a.bias.grad, b.bias.grad)
    assert _program(compiled) is not None
