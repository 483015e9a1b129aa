"""jitorch.compile: compiled results equal eager, kernel counts, guards, backward."""
import math
import warnings

import numpy as np
import pytest

import jitorch as J
from jitorch.compiler import explain


def _close(a, b, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=rtol, atol=atol)


def gelu_chain(x, w, b):
    v = x * w + b
    return 0.5 * v * (1 + J.tanh(0.79788456 * (v + 0.044715 * v ** 3)))


def _kernels(cf):
    entry = next(iter(cf.entries.values()))
    return entry.forward.n_kernels


def test_gelu_chain_is_one_kernel_and_matches_eager():
    x, w, b = J.randn(1000), J.randn(1000), J.randn(1000)
    f = J.compile(gelu_chain)
    _close(f(x, w, b), gelu_chain(x, w, b))
    assert _kernels(f) == 1
    src = next(iter(f.entries.values())).forward.kernels[0].source
    assert "tanh32" in src and "in prange(" not in src  # small: sequential loop


def test_softmax_and_layer_norm_fuse_into_one_kernel_each():
    x = J.randn(64, 100)
    sm = J.compile(lambda t: J.softmax(t, dim=-1))
    _close(sm(x), J.softmax(x, dim=-1))
    assert _kernels(sm) <= 2

    def layer_norm(t, weight, bias):
        mu = t.mean(-1, keepdim=True)
        var = ((t - mu) ** 2).mean(-1, keepdim=True)
        return (t - mu) / J.sqrt(var + 1e-5) * weight + bias

    w, b = J.randn(100), J.randn(100)
    ln = J.compile(layer_norm)
    _close(ln(x, w, b), layer_norm(x, w, b), rtol=1e-4, atol=1e-5)
    assert _kernels(ln) <= 2


def test_reductions_over_leading_dims_and_full_reductions():
    x = J.randn(33, 17)

    def f(t):
        return (t * 2).sum(0), (t.exp()).mean(), t.amax(-1), t.abs().amin()

    cf = J.compile(f)
    for got, want in zip(cf(x), f(x)):
        _close(got, want, rtol=1e-5, atol=1e-5)


def test_broadcasting_scalars_and_dtype_casts():
    a = J.randn(4, 5)
    b = J.arange(5, dtype=J.int64)

    def f(x, i):
        return (x + i) * 2 - (i > 2).float() + x.double().sum(1).float().unsqueeze(1)

    cf = J.compile(f)
    _close(cf(a, b), f(a, b))


def test_compiled_equals_eager_for_matmul_chain():
    x, w1, w2 = J.randn(8, 16), J.randn(16, 32), J.randn(32, 4)

    def mlp(x, w1, w2):
        return J.relu(x @ w1) @ w2

    cf = J.compile(mlp)
    _close(cf(x, w1, w2), mlp(x, w1, w2), rtol=1e-5)


def test_backward_through_compiled_graph_matches_eager():
    x = J.randn(8, 16)
    w = J.randn(16, 4, requires_grad=True)
    b = J.randn(4, requires_grad=True)

    def loss_fn(x, w, b):
        h = J.tanh(x @ w + b)
        return (h * h).sum() / 8

    cf = J.compile(loss_fn)
    loss = cf(x, w, b)
    loss.backward()
    gw, gb = w.grad.clone(), b.grad.clone()
    w.grad = None
    b.grad = None
    ref = loss_fn(x, w, b)
    ref.backward()
    _close(loss, ref, rtol=1e-5)
    _close(gw, w.grad, rtol=1e-4, atol=1e-6)
    _close(gb, b.grad, rtol=1e-4, atol=1e-6)
    entry = next(iter(cf.entries.values()))
    assert entry.backward is not None and entry.backward.n_kernels >= 1


def test_shape_change_retraces_and_logs_the_guard():
    f = J.compile(lambda t: t * 2 + 1)
    f(J.randn(4))
    f(J.randn(4))
    assert len(f.entries) == 1
    f(J.randn(6))
    assert len(f.entries) == 2
    line = f.recompiles[-1]
    assert "t.shape[0]: 4 -> 6" in line  # the argument's own name, the dimension that changed
    assert "test_compile.py:" in line  # and where the guarded function is defined


def test_recompile_names_module_tensors_and_nested_arguments():
    lin = J.nn.Linear(3, 2)
    cm = J.compile(lin)
    cm(J.randn(4, 3))
    lin.weight.requires_grad_(False)
    cm(J.randn(4, 3))
    assert "self.weight.requires_grad: True -> False" in cm._compiled.recompiles[-1]
    f = J.compile(lambda batch: batch[0] + batch[1])
    f((J.randn(2), J.randn(2)))
    f((J.randn(2), J.randn(2, dtype=J.float64)))
    assert "batch[1].dtype: jitorch.float32 -> jitorch.float64" in f.recompiles[-1]


def test_weight_update_in_place_does_not_retrace():
    w = J.randn(3)
    f = J.compile(lambda x: x * w)
    x = J.ones(3)
    f(x)
    with J.no_grad():
        w.mul_(2)
    out = f(x)
    _close(out, x * w)


def test_global_change_is_guarded():
    global SCALE
    SCALE = 2.0
    f = J.compile(_scaled)
    x = J.ones(3)
    assert f(x).tolist() == [2.0, 2.0, 2.0]
    SCALE = 3.0
    assert f(x).tolist() == [3.0, 3.0, 3.0]
    assert any("global SCALE" in r for r in f.recompiles)


SCALE = 2.0


def _scaled(x):
    return x * SCALE


def test_graph_break_runs_eagerly_and_is_explained():
    def f(x):
        y = x * 2
        if y.sum().item() > 0:
            return y + 1
        return y - 1

    x = J.ones(3)
    cf = J.compile(f)
    assert cf(x).tolist() == [3.0, 3.0, 3.0]
    assert cf(-x).tolist() == [-3.0, -3.0, -3.0]
    rep = explain(cf, x)
    assert rep.graph_breaks and rep.graph_breaks[0].category == ".item()"
    assert "test_compile.py" in rep.graph_breaks[0].where


def test_fullgraph_raises_on_break():
    def f(x):
        return x * x.sum().item()

    with pytest.raises(RuntimeError, match="graph break"):
        J.compile(f, fullgraph=True)(J.ones(2))


def test_recompile_limit_warns_once_and_falls_back():
    f = J.compile(lambda t: t + 1, dynamic=False)  # sizes would otherwise generalize after three
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        for n in range(1, 12):
            assert f(J.ones(n)).tolist() == [2.0] * n
    hits = [r for r in rec if "recompile limit" in str(r.message)]
    assert len(hits) == 1


def test_decorator_forms_and_reset():
    @J.compile
    def f(x):
        return x + 1

    @J.compile(fullgraph=True)
    def g(x):
        return x * 3

    assert f(J.ones(2)).tolist() == [2.0, 2.0]
    assert g(J.ones(2)).tolist() == [3.0, 3.0]
    J.compiler.reset()
    assert not f.entries


def test_eager_backend_runs_the_function():
    f = J.compile(gelu_chain, backend="eager")
    x, w, b = J.randn(10), J.randn(10), J.randn(10)
    _close(f(x, w, b), gelu_chain(x, w, b))


def test_mutation_of_input_is_written_back():
    def f(x, buf):
        buf.mul_(0.5).add_(x)
        return x * 2

    x, buf = J.ones(4), J.full((4,), 4.0)
    cf = J.compile(f)
    cf(x, buf)
    assert buf.tolist() == [3.0] * 4
    cf(x, buf)
    assert buf.tolist() == [2.5] * 4


def test_explain_reports_kernels_and_source():
    rep = explain(gelu_chain, J.randn(8), J.randn(8), J.randn(8))
    assert rep.graph_count == 1 and rep.kernel_count == 1
    assert rep.kernels and "def fused_" in rep.kernels[0][1]
    assert math.isfinite(float(len(str(rep))))


def test_print_inside_compiled_function_is_replayed_without_breaking(capsys):
    def f(x):
        y = x * 2
        print("y is", y)
        return y + 1

    cf = J.compile(f)
    for k in range(3):
        out = cf(J.full((2,), float(k)))
        assert out.tolist() == [2.0 * k + 1] * 2
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed == ["y is tensor([0., 0.])", "y is tensor([2., 2.])", "y is tensor([4., 4.])"]
    entry = next(iter(cf.entries.values()))
    assert not entry.breaks


def test_eager_backend_interprets_the_captured_graph():
    f = J.compile(gelu_chain, backend="eager")
    x, w, b = J.randn(10), J.randn(10), J.randn(10)
    f(x, w, b)
    out = f(x, w, b)
    _close(out, gelu_chain(x, w, b))
    entry = next(iter(f.entries.values()))
    assert all(s.kind != "fused" for s in entry.forward.steps)


def test_check_mode_reports_first_divergent_node(monkeypatch):
    from jitorch.compiler import executor
    f = J.compile(gelu_chain, check=True)
    x, w, b = J.randn(16), J.randn(16), J.randn(16)
    f(x, w, b)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f(x, w, b)  # no divergence: no warning
    # sabotage the fused tanh: the check must name it
    entry = next(iter(f.entries.values()))
    tanh_node = next(n for n in entry.forward.graph.nodes if n.name == "tanh")
    monkeypatch.setattr(tanh_node.op, "template", lambda d: "({0} * 0)")
    with pytest.warns(RuntimeWarning, match="diverge first at node tanh"):
        f._check(entry, [x, w, b])


def test_random_draws_are_replayed_with_the_generator_and_hidden_writes_break():
    def noisy(x):
        return x + J.rand(x.shape)

    cf = J.compile(noisy)
    x = J.zeros(4)
    J.manual_seed(3)
    a = cf(x)  # the capture call
    J.manual_seed(3)
    assert cf(x).tolist() == a.tolist()  # the compiled graph draws the same numbers
    J.manual_seed(3)
    assert noisy(x).tolist() == a.tolist()  # ... as eager does
    assert cf(x).tolist() != cf(x).tolist()  # and fresh ones on every call
    assert not next(iter(cf.entries.values())).breaks

    def hidden(x):
        x._data[...] += 1  # bypasses the ops the graph records
        x._version[0] += 1
        return x * 2

    ch = J.compile(hidden)
    y = J.zeros(2)
    ch(y)
    ch(y)
    assert y.tolist() == [2.0, 2.0]


def test_compiled_module_shares_state_updates_buffers_and_guards_training():
    import copy

    import jitorch.nn as nn
    J.manual_seed(0)
    ref = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))
    mod = copy.deepcopy(ref)
    cm = J.compile(mod)
    assert cm.state_dict().keys() == mod.state_dict().keys()
    for _ in range(3):
        x = J.randn(5, 8)
        y_ref, y = ref(x), cm(x)
        _close(y, y_ref)
        _close(mod[1].running_mean, ref[1].running_mean)
        y_ref.sum().backward()
        y.sum().backward()
        _close(mod[0].weight.grad, ref[0].weight.grad, rtol=1e-5)
    assert int(mod[1].num_batches_tracked) == 3
    cm.eval()
    ref.eval()
    x = J.randn(5, 8)
    _close(cm(x), ref(x))
    assert "self.training: True -> False" in cm._compiled.recompiles[-1]


def test_dropout_masks_match_eager_for_the_same_seed():
    import jitorch.nn as nn
    model = nn.Sequential(nn.Linear(6, 6), nn.Dropout(0.5), nn.ReLU())
    cm = J.compile(model)
    x = J.randn(4, 6)
    cm(x)
    for seed in (1, 2):
        J.manual_seed(seed)
        got = cm(x)
        J.manual_seed(seed)
        want = model(x)
        _close(got, want)
    entry = next(iter(cm._compiled.entries.values()))
    assert not entry.breaks and "random_replay" in entry.graph_str


def test_identical_layers_share_one_generated_kernel():
    import jitorch.nn as nn
    model = nn.Sequential(*[nn.Sequential(nn.Linear(16, 16), nn.GELU(approximate="tanh")) for _ in range(4)])
    cm = J.compile(model)
    x = J.randn(4, 16)
    _close(cm(x), model(x))
    kernels = next(iter(cm._compiled.entries.values())).forward.kernels
    assert len(kernels) == 4 and len({k.source for k in kernels}) == 1


def test_module_attribute_change_retraces():
    import jitorch.nn as nn

    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.factor = 2.0

        def forward(self, x):
            return x * self.factor

    mod = Scale()
    cm = J.compile(mod)
    x = J.ones(3)
    assert cm(x).tolist() == [2.0] * 3
    mod.factor = 5.0
    assert cm(x).tolist() == [5.0] * 3
    assert "self.factor: 2.0 -> 5.0" in cm._compiled.recompiles[-1]


def _traced(cf):
    return sum(not e.instantiated for e in cf.entries.values())


def test_batch_size_generalizes_after_changing_twice_forward_and_backward():
    J.manual_seed(0)
    m = J.nn.Sequential(J.nn.Linear(4, 8), J.nn.GELU(), J.nn.LayerNorm(8), J.nn.Linear(8, 3))
    f = J.compile(m)
    for n in (2, 3, 5, 7, 11, 1):
        x = J.randn(n, 4)
        out = f(x)
        (out.softmax(-1) * J.arange(3.0)).sum().backward()
        got = [p.grad.clone() for p in m.parameters()]
        m.zero_grad()
        ref = m(x)
        (ref.softmax(-1) * J.arange(3.0)).sum().backward()
        _close(out, ref, rtol=1e-5, atol=1e-6)
        for g, p in zip(got, m.parameters()):
            _close(g, p.grad, rtol=1e-4, atol=1e-6)
        m.zero_grad()
    # three traces (the size changed twice), then every size comes from the template
    assert _traced(f._compiled) == 3
    assert len(f._compiled.entries) == 6


def test_dynamic_true_traces_once_for_every_batch_size():
    f = J.compile(lambda x, w: ((x @ w).softmax(-1) * 2).sum(0) / x.shape[0], dynamic=True)
    w = J.randn(5, 3)
    for n in (4, 9, 2, 6):
        x = J.randn(n, 5)
        _close(f(x, w), ((x @ w).softmax(-1) * 2).sum(0) / n, rtol=1e-5, atol=1e-6)
    assert _traced(f) == 1


def test_shape_dependent_branch_or_constant_does_not_generalize():
    def branchy(x):
        return x * 2 if x.shape[0] > 4 else x * 3

    def with_arange(x):
        return x + J.arange(x.shape[0]).unsqueeze(1)

    for fn in (branchy, with_arange):
        f = J.compile(fn)
        for n in (2, 3, 5, 7, 8):
            x = J.randn(n, 2)
            _close(f(x), fn(x))
        assert _traced(f) == 5


def test_dynamic_false_keeps_one_graph_per_size():
    f = J.compile(lambda t: t * 2, dynamic=False)
    for n in (2, 3, 4, 5):
        _close(f(J.ones(n)), J.ones(n) * 2)
    assert _traced(f) == 4 and not f.families


def _branchy_item(x):
    y = (x * 2 + 1).tanh()
    if y.sum().item() > 0:
        z = (y.exp() * 3).sum(-1)
    else:
        z = (y.neg() - 1).sum(-1)
    return z / 2


def test_graph_break_resumes_two_compiled_graphs_equal_to_eager():
    cf = J.compile(_branchy_item)
    x = J.randn(4, 5).abs() + 0.1  # positive sum: the captured path
    for k in range(3):
        xk = x * (k + 1)
        _close(cf(xk), _branchy_item(xk), rtol=1e-5)
    entry = next(iter(cf.entries.values()))
    assert entry.program is not None and entry.program.n_graphs == 2
    assert entry.program.divergences == 0
    rep = explain(cf, x)
    assert rep.graph_count == 2 and len(rep.graph_breaks) == 1


def test_resumed_graph_that_takes_the_other_branch_finishes_eagerly():
    cf = J.compile(_branchy_item)
    pos = J.randn(3, 4).abs() + 0.1
    cf(pos)
    neg = -pos  # the other side of the if: the replay stops there and the rest runs eagerly
    for x in (neg, pos, neg):
        _close(cf(x), _branchy_item(x), rtol=1e-5)
    entry = next(iter(cf.entries.values()))
    assert entry.program.divergences == 2


def test_resumed_graph_gives_python_real_values_between_segments():
    seen = []

    def f(x):
        h = x.relu() * 2
        seen.append(h.tolist())  # Python reads a computed tensor mid-function
        return (h + 1).sum()

    cf = J.compile(f)
    x = J.tensor([[-1.0, 2.0], [3.0, -4.0]])
    cf(x)
    out = cf(x * 3)
    assert seen[-1] == [[0.0, 12.0], [18.0, 0.0]]
    _close(out, f(x * 3))
    assert next(iter(cf.entries.values())).program.n_graphs == 2


def test_break_with_grad_resumes_and_backward_reaches_the_closure_weight():
    w = J.randn(3, requires_grad=True)

    def f(x):
        y = x * w
        if y.sum() > -100:
            return (y * 2).exp()
        return y

    cf = J.compile(f)
    x = J.ones(3)
    for _ in range(3):
        w.grad = None
        cf(x).sum().backward()
        got = w.grad.clone()
    w.grad = None
    f(x).sum().backward()
    np.testing.assert_allclose(got.numpy(), w.grad.numpy(), rtol=1e-6)
    program = next(iter(cf.entries.values())).program
    assert program is not None and program.divergences == 0


def test_break_with_mutation_resumes_and_updates_the_input_in_place():
    def f(x, buf):
        buf.add_(1)
        if x.sum() > 0:
            return x * buf
        return x

    cf = J.compile(f)
    x, b1, b2 = J.ones(3), J.zeros(3), J.zeros(3)
    storage = b1._data
    for _ in range(3):
        np.testing.assert_array_equal(cf(x, b1).numpy(), f(x, b2).numpy())
        np.testing.assert_array_equal(b1.numpy(), b2.numpy())
    assert b1._data is storage
    program = next(iter(cf.entries.values())).program
    assert program is not None and program.divergences == 0


def test_closure_tensor_written_between_calls_retraces():
    c = J.ones(3)
    f = J.compile(lambda x: x + c * 2)  # c * 2 folds to a constant at compile time
    x = J.zeros(3)
    f(x)
    f(x)
    c.add_(1)
    np.testing.assert_array_equal(f(x).numpy(), (x + c * 2).numpy())
    c.data = J.full((3,), 10.0)  # new storage
    np.testing.assert_array_equal(f(x).numpy(), (x + c * 2).numpy())
    assert any("was modified" in r for r in f.recompiles)


def test_module_buffer_updated_inside_a_compiled_function():
    torch_bn = J.nn.BatchNorm1d(4)
    ref = J.nn.BatchNorm1d(4)
    f = J.compile(lambda x: torch_bn(x) * 2)
    for k in range(4):
        J.manual_seed(k)
        x = J.randn(6, 4)
        np.testing.assert_allclose(f(x).detach().numpy(), (ref(x) * 2).detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(torch_bn.running_mean.numpy(), ref.running_mean.numpy(), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(torch_bn.running_var.numpy(), ref.running_var.numpy(), rtol=1e-5, atol=1e-7)
    assert int(torch_bn.num_batches_tracked) == 4
    assert len(f.entries) == 1


def test_long_compile_reports_progress_on_stderr(capsys, monkeypatch):
    import random
    from jitorch.compiler import logs
    monkeypatch.setattr(logs.progress, "PROGRESS_AFTER_S", 0.0)
    monkeypatch.setattr(logs.progress, "on", True)
    c = random.random()  # a constant no earlier run has compiled a kernel for
    f = J.compile(lambda x: (x * c).tanh() * 2 + c)
    f(J.randn(4))
    f(J.randn(4))
    assert "[jitorch] compiling: 1 kernel(s) ready" in capsys.readouterr().err


def test_lone_op_in_a_graph_runs_the_eager_kernel():
    f = J.compile(lambda x, y: (x @ y).exp())
    x, y = J.randn(3, 4), J.randn(4, 5)
    f(x, y)
    _close(f(x, y), (x @ y).exp())
    entry = next(iter(f.entries.values()))
    assert entry.forward.n_kernels == 2 and not entry.forward.kernels  # matmul + eager exp, nothing generated


def test_backward_recomputes_cheap_values_instead_of_saving_them():
    J.manual_seed(0)
    m = J.nn.Sequential(J.nn.Linear(8, 16), J.nn.GELU(), J.nn.Linear(16, 4))
    f = J.compile(m)
    x = J.randn(4, 8)
    f(x).sum().backward()
    entry = next(iter(f._compiled.entries.values()))
    fwd = entry.forward.graph
    gelu_out = next(n.outputs[0] for n in fwd.nodes if n.name == "gelu")
    # the GELU output is not kept for the backward: it is recomputed there from its input
    assert gelu_out not in fwd.outputs
    assert any(n.name == "gelu" for n in entry.backward.graph.nodes)
    got = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    m(x).sum().backward()
    for g, p in zip(got, m.parameters()):
        _close(g, p.grad, rtol=1e-4, atol=1e-6)


def test_square_rows_with_a_bias_broadcast_along_columns():
    # rows == cols: a (3,) operand broadcasts along the last dim, not along the rows
    b = J.randn(3)
    for fn in (lambda v: (v + b).sum(-1), lambda v: (v + b * 2).softmax(-1),
               lambda v: J.nn.functional.layer_norm(v, (3,), b, b)):
        f = J.compile(fn)
        x = J.randn(3, 3)
        f(x)
        _close(f(x), fn(x), rtol=1e-5, atol=1e-6)


def test_compiled_cross_entropy_checks_targets_on_every_call():
    f = J.compile(lambda x, t: J.nn.functional.cross_entropy(x, t))
    x = J.randn(4, 3)
    f(x, J.tensor([0, 1, 2, 1]))
    f(x, J.tensor([0, 1, 2, 1]))
    for bad in ([0, 3, 1, 1], [0, -2, 1, 1]):
        with pytest.raises(IndexError, match="out of bounds"):
            f(x, J.tensor(bad))
    # ignored targets change the mean's divisor per call: never baked into the graph
    t = J.tensor([0, -100, -100, 1])
    np.testing.assert_allclose(f(x, t).item(), J.nn.functional.cross_entropy(x, t).item(), rtol=1e-6)


def test_module_reached_through_a_closure_is_guarded():
    model = J.nn.Sequential(J.nn.Linear(4, 4), J.nn.Dropout(0.5))
    f = J.compile(lambda x: model(x))
    x = J.ones(2, 4)
    f(x)
    f(x)
    model.eval()  # dropout off: the traced training-mode graph must not be reused
    np.testing.assert_array_equal(f(x).detach().numpy(), model(x).detach().numpy())
    assert "model.1.training: True -> False" in f.recompiles[-1]
    model[0].register_buffer("scale", J.ones(1))
    f(x)
    model[0].bias = J.nn.Parameter(J.zeros(4))  # replaced by assignment
    np.testing.assert_array_equal(f(x).detach().numpy(), model(x).detach().numpy())
    assert "model: a parameter or buffer was replaced" in f.recompiles[-1]


def test_module_reached_through_a_global_is_guarded():
    global _GLOBAL_MODEL
    _GLOBAL_MODEL = J.nn.Linear(3, 3)

    def g(x):
        return _GLOBAL_MODEL(x) * 2

    f = J.compile(g)
    x = J.ones(1, 3)
    f(x)
    _GLOBAL_MODEL = J.nn.Linear(3, 3)  # rebinding the global to another module
    np.testing.assert_allclose(f(x).detach().numpy(), g(x).detach().numpy())
    assert "_GLOBAL_MODEL: another module object" in f.recompiles[-1]


def test_aliased_inputs_updated_in_place_give_eager_results():
    def f(a, b):
        a.add_(1)
        return a + b

    cf = J.compile(f)
    cf(J.zeros(3), J.zeros(3))
    cf(J.zeros(3), J.zeros(3))
    x, y = J.zeros(3), J.zeros(3)
    np.testing.assert_array_equal(cf(x, x).numpy(), f(y, y).numpy())
    np.testing.assert_array_equal(x.numpy(), y.numpy())
    x, y = J.zeros(4), J.zeros(4)
    np.testing.assert_array_equal(cf(x[:3], x[1:]).numpy(), f(y[:3], y[1:]).numpy())  # overlapping views
    np.testing.assert_array_equal(x.numpy(), y.numpy())
    assert any("inputs sharing memory: b and a" in r for r in cf.recompiles)


def test_aliased_inputs_without_writes_stay_compiled():
    cf = J.compile(lambda a, b: a * 2 + b)
    x = J.randn(5)
    for _ in range(3):
        np.testing.assert_allclose(cf(x, x).numpy(), (x * 2 + x).numpy(), rtol=1e-6)
    (entry,) = cf.entries.values()
    assert not entry.breaks
