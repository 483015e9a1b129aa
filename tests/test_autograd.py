"""Autograd semantics: leaves, retain_grad, graphs, grad modes, custom Functions, hooks, errors."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import arr, make, np_of, requires_torch, torch

import jitorch
from jitorch.autograd import Function, once_differentiable

F32, F64 = jitorch.float32, jitorch.float64


def leaf(values, dtype=F32):
    return jitorch.tensor(values, dtype=dtype, requires_grad=True)


# -- leaves and .grad -------------------------------------------------------------------------------
def test_leaf_and_non_leaf_grad():
    x = leaf([1.0, 2.0, 3.0])
    y = x * x
    assert x.is_leaf and not y.is_leaf and y.requires_grad and y.grad_fn is not None
    y.sum().backward()
    assert x.grad.tolist() == [2.0, 4.0, 6.0]
    with pytest.warns(UserWarning, match="not a leaf Tensor"):
        assert y.grad is None


def test_retain_grad():
    x = leaf([1.0, 2.0])
    y = x * 3
    y.retain_grad()
    assert y.retains_grad
    (y * y).sum().backward()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert y.grad.tolist() == [6.0, 12.0]
    assert x.grad.tolist() == [18.0, 36.0]
    x.retain_grad()   # a no-op on leaves
    with pytest.raises(RuntimeError):
        jitorch.ones(2).retain_grad()


def test_leaf_without_requires_grad_gets_no_grad():
    x = jitorch.tensor([1.0, 2.0])
    w = leaf([3.0, 4.0])
    (x * w).sum().backward()
    assert x.grad is None and w.grad.tolist() == [1.0, 2.0]


def test_backward_with_gradient_argument():
    x = leaf([1.0, 2.0, 3.0])
    y = x * x
    y.backward(jitorch.tensor([1.0, 0.5, 0.0]))
    assert x.grad.tolist() == [2.0, 2.0, 0.0]
    with pytest.raises(RuntimeError, match="Mismatch in shape"):
        (x * 2).backward(jitorch.ones(2))


def test_non_scalar_backward_needs_gradient():
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar outputs"):
        (x * 2).backward()
    (x * 2).sum().backward()                     # one-element outputs are fine
    leaf([[1.0]]).exp().backward()


def test_backward_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        jitorch.ones(2).sum().backward()


def test_grad_accumulates_across_calls_and_can_be_reset():
    x = leaf([1.0, 2.0])
    (x * 2).sum().backward()
    (x * 3).sum().backward()
    assert x.grad.tolist() == [5.0, 5.0]
    g = x.grad
    (x * 1).sum().backward()
    assert x.grad is g, "later grads accumulate in place"
    x.grad = None
    (x * 4).sum().backward()
    assert x.grad.tolist() == [4.0, 4.0]
    x.grad.zero_()
    assert x.grad.tolist() == [0.0, 0.0]


def test_grad_setter_validates():
    x = leaf([1.0, 2.0])
    x.grad = jitorch.ones(2)
    with pytest.raises(RuntimeError):
        x.grad = jitorch.ones(3)
    with pytest.raises(RuntimeError):
        x.grad = jitorch.ones(2, dtype=F64)


# -- retain_graph, create_graph --------------------------------------------------------------------------
def test_second_backward_needs_retain_graph():
    x = leaf([1.0, 2.0])
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert np.allclose(np_of(x.grad), 2 * (np.exp([1.0, 2.0]) * (1 + np.array([1.0, 2.0]))))
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        y.backward()


def test_graph_without_saved_tensors_can_backward_twice():
    x = leaf([1.0, 2.0])
    y = (x + 1).sum()
    y.backward()
    y.backward()            # add and sum save nothing, as in torch
    assert x.grad.tolist() == [2.0, 2.0]


def test_create_graph_second_derivative():
    x = leaf([1.0, 2.0, -3.0], F64)
    y = (x ** 3).sum()
    (g,) = jitorch.autograd.grad(y, x, create_graph=True)
    assert g.requires_grad and g.tolist() == [3.0, 12.0, 27.0]
    (h,) = jitorch.autograd.grad(g.sum(), x)
    assert h.tolist() == [6.0, 12.0, -18.0]           # d2/dx2 x^3 = 6x


def test_backward_create_graph_leaves_differentiable_grad():
    x = leaf([2.0], F64)
    (x * x * x).sum().backward(create_graph=True)
    assert x.grad.requires_grad and x.grad.tolist() == [12.0]
    g = x.grad
    x.grad = None
    g.sum().backward()
    assert x.grad.tolist() == [12.0]


def test_third_derivative():
    x = leaf([0.5], F64)
    y = x.sin()
    for expected in (np.cos(0.5), -np.sin(0.5), -np.cos(0.5)):
        (y,) = jitorch.autograd.grad(y.sum(), x, create_graph=True)
        assert abs(y.item() - expected) < 1e-12


# -- autograd.grad ---------------------------------------------------------------------------------
def test_autograd_grad_does_not_touch_dot_grad():
    x, w = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    gx, gw = jitorch.autograd.grad((x * w).sum(), [x, w])
    assert gx.tolist() == [3.0, 4.0] and gw.tolist() == [1.0, 2.0]
    assert x.grad is None and w.grad is None


def test_autograd_grad_allow_unused():
    x, unused = leaf([1.0]), leaf([2.0])
    with pytest.raises(RuntimeError, match="allow_unused=True"):
        jitorch.autograd.grad((x * 2).sum(), [x, unused])
    gx, gu = jitorch.autograd.grad((x * 2).sum(), [x, unused], allow_unused=True)
    assert gx.tolist() == [2.0] and gu is None
    gx, gu = jitorch.autograd.grad((x * 2).sum(), [x, unused], materialize_grads=True)
    assert gu.tolist() == [0.0]


def test_autograd_grad_of_non_leaf_and_grad_outputs():
    x = leaf([1.0, 2.0])
    h = x * 2
    y = h * h
    (gh,) = jitorch.autograd.grad(y, h, grad_outputs=jitorch.tensor([1.0, 10.0]))
    assert gh.tolist() == [4.0, 80.0]
    with pytest.raises(RuntimeError, match="does not require grad"):
        jitorch.autograd.grad(y.sum(), jitorch.ones(2))


def test_backward_inputs_argument():
    x, w = leaf([1.0]), leaf([2.0])
    (x * w).sum().backward(inputs=[x])
    assert x.grad.tolist() == [2.0] and w.grad is None


def test_multiple_outputs_backward():
    x = leaf([1.0, 2.0])
    a, b = x * 2, x * x
    jitorch.autograd.backward([a.sum(), b.sum()])
    assert x.grad.tolist() == [4.0, 6.0]


# -- detach, requires_grad_ ---------------------------------------------------------------------------
def test_detach_shares_storage_and_stops_grad():
    x = leaf([1.0, 2.0])
    d = x.detach()
    assert not d.requires_grad and d.grad_fn is None
    d.add_(10.0)                                  # shares storage (and version) with x
    assert x.tolist() == [11.0, 12.0]
    y = x * 2
    z = y.detach() * x
    z.sum().backward()
    assert x.grad.tolist() == [22.0, 24.0]


def test_detach_in_place():
    x = leaf([1.0, 2.0])
    y = x * 2
    y.detach_()
    assert not y.requires_grad and y.grad_fn is None and y.is_leaf


def test_requires_grad_flag():
    x = jitorch.tensor([1.0, 2.0])
    assert x.requires_grad_() is x and x.requires_grad
    x.requires_grad_(False)
    assert not x.requires_grad
    x.requires_grad = True
    y = x * 2
    with pytest.raises(RuntimeError, match="only change requires_grad flags of leaf variables"):
        y.requires_grad = False
    with pytest.raises(RuntimeError, match="floating point"):
        jitorch.tensor([1, 2]).requires_grad_()


def test_integer_results_do_not_require_grad():
    x = leaf([1.5, -2.5])
    assert not (x > 0).requires_grad and not x.sign().to(jitorch.int32).requires_grad
    assert not x.isnan().requires_grad and not x.to(jitorch.int64).requires_grad


# -- grad modes ------------------------------------------------------------------------------------------
def test_no_grad_and_enable_grad_contexts():
    x = leaf([1.0])
    with jitorch.no_grad():
        y = x * 2
        assert not jitorch.is_grad_enabled()
        with jitorch.enable_grad():
            z = x * 2
            assert jitorch.is_grad_enabled()
    assert jitorch.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None and z.requires_grad


def test_grad_mode_decorators():
    x = leaf([1.0])

    @jitorch.no_grad()
    def f(t):
        return t * 2

    @jitorch.no_grad
    def g(t):
        return t * 2

    @jitorch.enable_grad()
    def h(t):
        return t * 2

    @jitorch.set_grad_enabled(False)
    def k(t):
        return t * 2

    assert not f(x).requires_grad and not g(x).requires_grad and not k(x).requires_grad
    assert jitorch.is_grad_enabled()
    with jitorch.no_grad():
        assert h(x).requires_grad
    assert f.__name__ == "f"


def test_set_grad_enabled_function_and_context():
    x = leaf([1.0])
    with jitorch.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert (x * 2).requires_grad
    jitorch.set_grad_enabled(False)
    try:
        assert not (x * 2).requires_grad
    finally:
        jitorch.set_grad_enabled(True)
    with jitorch.set_grad_enabled(True):
        assert (x * 2).requires_grad


def test_inference_mode():
    x = leaf([1.0])
    with jitorch.inference_mode():
        assert jitorch.is_inference_mode_enabled() and not jitorch.is_grad_enabled()
        assert not (x * 2).requires_grad
    assert not jitorch.is_inference_mode_enabled()
    with jitorch.inference_mode(False):
        assert (x * 2).requires_grad

    @jitorch.inference_mode()
    def f(t):
        return t * 2

    assert not f(x).requires_grad and jitorch.is_grad_enabled()


def test_grad_mode_restored_after_exception():
    with pytest.raises(ValueError), jitorch.no_grad():
        raise ValueError
    assert jitorch.is_grad_enabled()


# -- custom Functions ---------------------------------------------------------------------------------
class MulAdd(Function):
    @staticmethod
    def forward(ctx, a, b, k):
        ctx.save_for_backward(a, b)
        ctx.k = k
        return a * b + k

    @staticmethod
    def backward(ctx, g):
        _, b = ctx.saved_tensors
        assert ctx.needs_input_grad == (True, False, False)
        return g * b, None, None


def test_custom_function():
    a, b = leaf([1.0, 2.0], F64), jitorch.tensor([3.0, 4.0], dtype=F64)
    y = MulAdd.apply(a, b, 10)
    assert y.tolist() == [13.0, 18.0] and y.grad_fn.name() == "MulAddBackward"
    y.sum().backward()
    assert a.grad.tolist() == [3.0, 4.0]
    assert jitorch.autograd.gradcheck(lambda t: MulAdd.apply(t, b, 1.0), (leaf([0.3, 0.7], F64),))


class SplitSign(Function):
    @staticmethod
    def forward(ctx, x):
        idx = (x > 0).to(jitorch.int64)
        ctx.mark_non_differentiable(idx)
        ctx.save_for_backward(x)
        return x * 2, idx

    @staticmethod
    @once_differentiable
    def backward(ctx, g, g_idx):
        assert not jitorch.is_grad_enabled()
        return g * 2


def test_custom_function_non_differentiable_output_and_once_differentiable():
    x = leaf([-1.0, 2.0])
    y, idx = SplitSign.apply(x)
    assert y.requires_grad and not idx.requires_grad and idx.tolist() == [0, 1]
    y.sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]


class Cube(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 3 * x * x


def test_custom_function_double_backward_and_saved_tensor_freed():
    x = leaf([2.0], F64)
    y = Cube.apply(x)
    (g,) = jitorch.autograd.grad(y.sum(), x, create_graph=True)
    (h,) = jitorch.autograd.grad(g.sum(), x)
    assert g.tolist() == [12.0] and h.tolist() == [12.0]
    z = Cube.apply(x).sum()
    z.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        z.backward()


def test_custom_function_without_grad_inputs_records_nothing():
    y = Cube.apply(jitorch.tensor([2.0]))
    assert not y.requires_grad and y.grad_fn is None


# -- hooks -----------------------------------------------------------------------------------------------
def test_hook_on_leaf_modifies_grad():
    x = leaf([1.0, 2.0])
    seen = []
    h = x.register_hook(lambda g: seen.append(g.tolist()) or g * 10)
    (x * 3).sum().backward()
    assert seen == [[3.0, 3.0]] and x.grad.tolist() == [30.0, 30.0]
    h.remove()
    x.grad = None
    (x * 3).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]


def test_hook_on_non_leaf_modifies_upstream_grad():
    x = leaf([1.0, 2.0])
    y = x * 2
    y.register_hook(lambda g: g + 1)
    (y * y).sum().backward()                       # dL/dy = 2y = [4, 8] -> hooked [5, 9]
    assert x.grad.tolist() == [10.0, 18.0]


def test_hook_requires_grad():
    with pytest.raises(RuntimeError):
        jitorch.ones(2).register_hook(lambda g: g)


def test_node_hooks_and_post_accumulate_hook():
    x = leaf([1.0, 2.0])
    y = x * 3
    calls = []
    y.grad_fn.register_prehook(lambda gouts: calls.append("pre"))
    y.grad_fn.register_hook(lambda gins, gouts: calls.append("post"))
    x.register_post_accumulate_grad_hook(lambda t: calls.append(("acc", t.grad.tolist())))
    y.sum().backward()
    assert calls == ["pre", "post", ("acc", [3.0, 3.0])]


# -- the graph ------------------------------------------------------------------------------------------
@requires_torch
@pytest.mark.parametrize("fn", [
    lambda x, w: x + w, lambda x, w: x * w, lambda x, w: x / w, lambda x, w: x - w, lambda x, w: x.exp(),
    lambda x, w: (x * w).sum(), lambda x, w: -x, lambda x, w: x.relu(), lambda x, w: x.tanh(),
    lambda x, w: x.clone(), lambda x, w: x.to(torch.float64 if isinstance(x, torch.Tensor) else F64),
    lambda x, w: x.view(2, 1), lambda x, w: x.expand(3, 2), lambda x, w: x.permute(0),
    lambda x, w: x.narrow(0, 0, 1), lambda x, w: x.amax(), lambda x, w: x.sigmoid(), lambda x, w: x.sqrt(),
    lambda x, w: x.log(), lambda x, w: x.sin(), lambda x, w: x.abs(),
], ids=["add", "mul", "div", "sub", "exp", "sum", "neg", "relu", "tanh", "clone", "to", "view", "expand",
        "permute", "narrow", "amax", "sigmoid", "sqrt", "log", "sin", "abs"])
def test_grad_fn_names_match_torch(fn):
    jx, jw = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    tx, tw = (torch.tensor([1.0, 2.0], requires_grad=True), torch.tensor([3.0, 4.0], requires_grad=True))
    assert fn(jx, jw).grad_fn.name() == fn(tx, tw).grad_fn.name()


def test_next_functions_structure():
    x, w = leaf([1.0]), leaf([2.0])
    c = jitorch.tensor([3.0])
    y = (x * w + c).exp()
    exp_node = y.grad_fn
    assert exp_node.name() == "ExpBackward0"
    (add_node, _), = exp_node.next_functions
    assert add_node.name() == "AddBackward0"
    (mul_node, _), const_edge = add_node.next_functions
    assert mul_node.name() == "MulBackward0" and const_edge is None
    (acc_x, _), (acc_w, _) = mul_node.next_functions
    assert acc_x.name() == acc_w.name() == "AccumulateGrad"
    assert acc_x.variable is x and acc_w.variable is w
    # the same leaf always has the same AccumulateGrad node
    assert (x * 2).grad_fn.next_functions[0][0] is acc_x


# -- in-place and version counters ------------------------------------------------------------------
def test_modifying_saved_tensor_raises_version_error():
    x = leaf([1.0, 2.0])
    y = x * 2
    z = y * y                                   # saves y
    y.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.sum().backward()


def test_modifying_saved_output_raises_version_error():
    x = leaf([1.0, 2.0])
    y = x.exp()                                 # exp saves its output
    y.mul_(2.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_inplace_on_leaf_requiring_grad_raises():
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place"):
        x.add_(1.0)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        x.exp_()
    with jitorch.no_grad():
        x.add_(1.0)                              # allowed without grad mode
    assert x.tolist() == [2.0, 3.0] and x.is_leaf


def test_inplace_on_non_leaf_is_differentiable():
    x = leaf([1.0, 2.0], F64)
    y = x * 2
    y.add_(x)                                   # y = 3x
    y.exp_()                                    # y = exp(3x)
    y.sum().backward()
    assert np.allclose(np_of(x.grad), 3 * np.exp(3 * np.array([1.0, 2.0])))
    assert y.grad_fn.name() == "ExpBackward0"


def test_inplace_mul_uses_original_self_for_backward():
    x = leaf([1.0, 2.0], F64)
    y = x * 2
    y.mul_(x)                                   # y = 2x * x, d/dx = 4x
    y.sum().backward()
    assert x.grad.tolist() == [4.0, 8.0]
    x.grad = None
    y = x * 2
    y.mul_(x)
    y.exp_()
    y.sum().backward()
    assert np.allclose(np_of(x.grad), np.exp(2 * np.array([1.0, 2.0]) ** 2) * 4 * np.array([1.0, 2.0]))


def test_version_counter_bumps():
    x = jitorch.zeros(3)
    v0 = x._version_counter
    x.add_(1.0)
    x.mul_(2.0)
    assert x._version_counter == v0 + 2
    x.view(3, 1).add_(1.0)
    assert x._version_counter == v0 + 3


# -- broadcasting and gradcheck ------------------------------------------------------------------------
def test_broadcasting_gradients_are_reduced():
    a = leaf(arr(2, 3).tolist(), F64)
    b = leaf(arr(3, seed=2).tolist(), F64)
    c = leaf(arr(2, 1, seed=3).tolist(), F64)
    s = leaf(1.5, F64)
    ((a * b + c) * s).sum().backward()
    assert tuple(b.grad.shape) == (3,) and tuple(c.grad.shape) == (2, 1) and s.grad.shape == ()
    assert np.allclose(np_of(b.grad), (arr(2, 3) * 1.5).sum(0))
    assert np.allclose(np_of(c.grad), np.full((2, 1), 3 * 1.5))


def test_gradcheck_and_gradgradcheck():
    x = leaf(arr(2, 3).tolist(), F64)
    w = leaf(arr(3, seed=4).tolist(), F64)
    assert jitorch.autograd.gradcheck(lambda a, b: (a * b).tanh().sum(1), (x, w))
    assert jitorch.autograd.gradgradcheck(lambda a, b: (a * b).sigmoid(), (x, w))
    assert jitorch.autograd.gradgradcheck(lambda a: a.softmax(-1), (x,))


def test_gradcheck_detects_wrong_gradients():
    class Wrong(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 3

    x = leaf([1.0, 2.0], F64)
    with pytest.raises(RuntimeError, match="Jacobian mismatch"):
        jitorch.autograd.gradcheck(Wrong.apply, (x,))
    assert not jitorch.autograd.gradcheck(Wrong.apply, (x,), raise_exception=False)


@requires_torch
def test_mlp_gradients_match_torch():
    rng = np.random.default_rng(0)
    xs, w1, w2 = rng.standard_normal((4, 3)), rng.standard_normal((3, 5)), rng.standard_normal((5, 2))
    grads = []
    for lib in (jitorch, torch):
        p1, p2 = make(lib, w1, F64, requires_grad=True), make(lib, w2, F64, requires_grad=True)
        h = (make(lib, xs, F64) @ p1).relu()
        loss = (h @ p2).log_softmax(-1).mean() + (p1 * p1).sum() * 0.01
        loss.backward()
        grads.append((np_of(p1.grad), np_of(p2.grad)))
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


# -- final callbacks (Variable._execution_engine.queue_callback) ----------------------------------------------
def _queue(fn):
    jitorch.autograd.Variable._execution_engine.queue_callback(fn)


def test_final_callbacks_run_after_the_whole_backward_in_order_then_clear():
    x, w = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    log = []

    def hook(g):  # y's hook fires before the gradients of x and w exist
        _queue(lambda: log.append(("first", x.grad.tolist(), w.grad.tolist())))
        _queue(lambda: log.append(("second", jitorch.is_grad_enabled())))
    y = x * 2
    y.register_hook(hook)
    (y * w).sum().backward()
    assert log == [("first", [6.0, 8.0], [2.0, 4.0]), ("second", True)]  # the caller's grad mode
    (x * 3).sum().backward()
    assert len(log) == 2  # the queue belonged to the finished pass
    with pytest.raises(RuntimeError, match="Final callbacks can only be installed during backward pass"):
        _queue(lambda: None)


def test_a_final_callback_may_queue_another_and_autograd_grad_runs_them():
    x = leaf([1.0])
    log = []

    def outer():
        log.append("outer")
        _queue(lambda: log.append("queued by a callback"))
    y = x * x
    y.register_hook(lambda g: _queue(outer))
    (gx,) = jitorch.autograd.grad(y.sum(), x)
    assert gx.tolist() == [2.0] and log == ["outer", "queued by a callback"]


def test_nested_backward_keeps_its_own_final_callbacks():
    log = []
    a, b = leaf([1.0]), leaf([2.0])

    def inner_backward(g):
        with jitorch.enable_grad():  # hooks run without grad recording, like torch's
            z = b * b
            loss = z.sum()
        z.register_hook(lambda gz: _queue(lambda: log.append("inner")))
        loss.backward()
        log.append("inner backward returned")
        _queue(lambda: log.append("outer"))
    y = a * 5
    y.register_hook(inner_backward)
    y.sum().backward()
    assert log == ["inner", "inner backward returned", "outer"]
    assert a.grad.tolist() == [5.0] and b.grad.tolist() == [4.0]


def test_a_failed_backward_drops_its_final_callbacks():
    x = leaf([1.0])
    log = []

    def boom(g):
        _queue(lambda: log.append("ran"))
        raise ValueError("hook failed")
    y = x * 2
    y.register_hook(boom)
    with pytest.raises(ValueError, match="hook failed"):
        (y * 3).sum().backward()
    (x * 2).sum().backward()
    assert log == []
    with pytest.raises(RuntimeError, match="during backward pass"):
        _queue(lambda: None)


def test_variable_is_the_tensor_type_and_its_engine_checks_checkpoints():
    from jitorch.autograd import Variable
    x = leaf([1.0, 2.0])
    assert isinstance(x, Variable) and not isinstance(np.ones(2), Variable)
    v = Variable(x)
    assert not v.requires_grad and v.tolist() == [1.0, 2.0]
    assert Variable(jitorch.ones(2), requires_grad=True).requires_grad
    engine = Variable._execution_engine
    seen = []
    y = x * x
    y.register_hook(lambda g: seen.append(engine.is_checkpoint_valid()))
    y.sum().backward()
    z = x * x
    z.register_hook(lambda g: seen.append(engine.is_checkpoint_valid()))
    jitorch.autograd.grad(z.sum(), x)
    assert seen == [True, False] and engine.is_checkpoint_valid()
