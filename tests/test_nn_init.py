"""nn.init statistics and reproducibility, default layer initialisation, Tensor random fills, nn.utils."""
from __future__ import annotations

import math

import numpy as np
import pytest
from _nn_helpers import close, to_j

import jitorch
from jitorch import nn
from jitorch.nn import init
from jitorch.nn.utils import (
    clip_grad_norm_,
    clip_grad_value_,
    parameters_to_vector,
    vector_to_parameters,
)
from jitorch.nn.utils.rnn import pad_sequence, unpad_sequence


def test_calculate_gain_matches_torch():
    torch = pytest.importorskip("torch")
    for nl, param in (("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None),
                      ("leaky_relu", None), ("leaky_relu", 0.2), ("selu", None)):
        assert init.calculate_gain(nl, param) == pytest.approx(torch.nn.init.calculate_gain(nl, param))
    with pytest.raises(ValueError, match="Unsupported nonlinearity foo"):
        init.calculate_gain("foo")
    with pytest.raises(ValueError, match="negative_slope True not a valid number"):
        init.calculate_gain("leaky_relu", True)


def test_fan_computation_and_errors():
    w = jitorch.empty(8, 4, 3, 3)
    assert init._calculate_fan_in_and_fan_out(w) == (36, 72)
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(jitorch.empty(5))
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_normal_(jitorch.empty(3, 3), mode="fan_avg")


def test_distribution_statistics():
    jitorch.manual_seed(0)
    t = jitorch.empty(400, 500)
    init.uniform_(t, -2.0, 3.0)
    a = t.numpy()
    assert a.min() >= -2.0 and a.max() < 3.0 and abs(a.mean() - 0.5) < 0.02
    init.normal_(t, 1.0, 2.0)
    assert abs(t.numpy().mean() - 1.0) < 0.02 and abs(t.numpy().std() - 2.0) < 0.02
    init.xavier_uniform_(t, gain=2.0)
    bound = 2.0 * math.sqrt(6.0 / 900)
    assert np.abs(t.numpy()).max() <= bound and abs(t.numpy().std() - bound / math.sqrt(3)) < 2e-3
    init.xavier_normal_(t)
    assert abs(t.numpy().std() - math.sqrt(2.0 / 900)) < 1e-3
    init.kaiming_uniform_(t, a=math.sqrt(5))
    bound = math.sqrt(6.0 / ((1 + 5) * 500))
    assert np.abs(t.numpy()).max() <= bound
    init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu")
    assert abs(t.numpy().std() - math.sqrt(2.0 / 400)) < 1e-3
    init.trunc_normal_(t, mean=0.5, std=1.0, a=-1.0, b=1.0)
    assert t.numpy().min() >= -1.0 and t.numpy().max() <= 1.0
    init.constant_(t, 0.3)
    assert np.all(t.numpy() == np.float32(0.3))
    init.zeros_(t)
    assert not t.numpy().any()
    init.ones_(t)
    assert t.numpy().all()


def test_structured_inits():
    e = init.eye_(jitorch.empty(3, 4))
    np.testing.assert_array_equal(e.numpy(), np.eye(3, 4, dtype=np.float32))
    d = init.dirac_(jitorch.empty(4, 2, 3))
    assert d.numpy()[0, 0, 1] == 1 and d.numpy()[1, 1, 1] == 1 and d.numpy().sum() == 2
    q = init.orthogonal_(jitorch.empty(6, 4), gain=2.0).numpy().astype(np.float64)
    np.testing.assert_allclose(q.T @ q, 4 * np.eye(4), atol=1e-5)
    r = init.orthogonal_(jitorch.empty(3, 7)).numpy().astype(np.float64)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-5)
    s = init.sparse_(jitorch.empty(10, 6), sparsity=0.3).numpy()
    assert ((s == 0).sum(0) >= 3).all()


def test_init_is_reproducible_and_untracked():
    jitorch.manual_seed(123)
    a = nn.Linear(5, 3)
    jitorch.manual_seed(123)
    b = nn.Linear(5, 3)
    np.testing.assert_array_equal(a.weight.detach().numpy(), b.weight.detach().numpy())
    w = nn.Parameter(jitorch.empty(3, 3))
    init.kaiming_uniform_(w)  # in-place on a leaf that requires grad: allowed because init runs under no_grad
    assert w.grad_fn is None and w.requires_grad
    g = jitorch.Generator().manual_seed(5)
    x1 = init.normal_(jitorch.empty(4), generator=g).numpy().copy()
    g.manual_seed(5)
    np.testing.assert_array_equal(init.normal_(jitorch.empty(4), generator=g).numpy(), x1)


@pytest.mark.parametrize("make", [
    lambda: nn.Linear(50, 30), lambda: nn.Bilinear(20, 10, 30), lambda: nn.Embedding(100, 40),
    lambda: nn.LayerNorm(30), lambda: nn.BatchNorm1d(30), lambda: nn.PReLU(), lambda: nn.GroupNorm(3, 30),
])
def test_default_layer_init_follows_torch_rule(make):
    jitorch.manual_seed(0)
    m = make()
    if isinstance(m, nn.Linear):
        bound = 1 / math.sqrt(50)  # kaiming_uniform_(a=sqrt(5)) gives the same bound as the bias rule
        assert np.abs(m.weight.detach().numpy()).max() <= bound
        assert np.abs(m.bias.detach().numpy()).max() <= bound
        assert m.weight.detach().numpy().std() > bound / 2
    elif isinstance(m, nn.Bilinear):
        bound = 1 / math.sqrt(20)
        assert np.abs(m.weight.detach().numpy()).max() <= bound and np.abs(m.bias.detach().numpy()).max() <= bound
    elif isinstance(m, nn.Embedding):
        w = m.weight.detach().numpy()
        assert abs(w.mean()) < 0.05 and abs(w.std() - 1) < 0.05
    elif isinstance(m, nn.PReLU):
        assert m.weight.tolist() == [0.25]
    else:
        assert np.all(m.weight.detach().numpy() == 1) and not m.bias.detach().numpy().any()


def test_tensor_random_fill_methods():
    jitorch.manual_seed(0)
    x = jitorch.empty(20000)
    assert x.uniform_(2, 4) is x and 2 <= x.numpy().min() and x.numpy().max() < 4
    x.normal_(3, 0.5)
    assert abs(x.numpy().mean() - 3) < 0.02 and abs(x.numpy().std() - 0.5) < 0.02
    x.bernoulli_(0.25)
    assert set(np.unique(x.numpy())) <= {0.0, 1.0} and abs(x.numpy().mean() - 0.25) < 0.02
    x.exponential_(2.0)
    assert abs(x.numpy().mean() - 0.5) < 0.02 and x.numpy().min() >= 0
    i = jitorch.empty(1000, dtype=jitorch.int64).random_(3, 7)
    assert set(np.unique(i.numpy())) == {3, 4, 5, 6}
    j = jitorch.empty(1000, dtype=jitorch.int64).random_(5)
    assert j.numpy().min() >= 0 and j.numpy().max() < 5
    assert x.geometric_(0.5).numpy().min() >= 1
    assert x.log_normal_().numpy().min() > 0
    x.cauchy_()
    leaf = jitorch.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
        leaf.uniform_()
    with jitorch.no_grad():
        leaf.uniform_()
    jitorch.manual_seed(7)
    a = jitorch.empty(5).normal_().numpy().copy()
    jitorch.manual_seed(7)
    np.testing.assert_array_equal(jitorch.empty(5).normal_().numpy(), a)


# -- nn.utils ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf")])
def test_clip_grad_norm_matches_torch(norm_type):
    torch = pytest.importorskip("torch")
    grads = [torch.randn(3, 4), torch.randn(5), torch.randn(2, 2) * 5]
    tparams = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    jparams = [nn.Parameter(jitorch.zeros(*g.shape)) for g in grads]
    for tp, jp, g in zip(tparams, jparams, grads):
        tp.grad = g.clone()
        jp.grad = to_j(g)
    jnorm = clip_grad_norm_(jparams, 1.5, norm_type=norm_type)
    tnorm = torch.nn.utils.clip_grad_norm_(tparams, 1.5, norm_type=norm_type)
    close(jnorm, tnorm, rtol=1e-5)
    for tp, jp in zip(tparams, jparams):
        close(jp.grad, tp.grad, rtol=1e-5)


def test_clip_grad_edge_cases():
    p = nn.Parameter(jitorch.ones(2))
    assert clip_grad_norm_([p], 1.0).item() == 0.0  # no gradients at all
    p.grad = jitorch.tensor([float("nan"), 1.0])
    with pytest.raises(RuntimeError, match="is non-finite, so it cannot be clipped"):
        clip_grad_norm_(p, 1.0, error_if_nonfinite=True)
    p.grad = jitorch.tensor([0.3, 0.4])
    assert clip_grad_norm_(p, 10.0).item() == pytest.approx(0.5)
    np.testing.assert_allclose(p.grad.numpy(), [0.3, 0.4], rtol=1e-5)  # under the limit: unchanged
    p.grad = jitorch.tensor([-3.0, 0.2])
    clip_grad_value_([p], 0.5)
    np.testing.assert_allclose(p.grad.numpy(), [-0.5, 0.2], rtol=1e-6)


def test_parameters_vector_roundtrip():
    m = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    vec = parameters_to_vector(m.parameters())
    assert vec.shape == (11,)
    np.testing.assert_array_equal(vec.detach().numpy()[:6], m[0].weight.detach().numpy().ravel())
    new = jitorch.arange(11, dtype=jitorch.float32)
    vector_to_parameters(new, m.parameters())
    assert m[1].bias.tolist() == [10.0] and m[0].weight.tolist()[1] == [3.0, 4.0, 5.0]
    with pytest.raises(TypeError, match="expected torch.Tensor"):
        vector_to_parameters([1.0], m.parameters())


def test_pad_sequence_matches_torch():
    torch = pytest.importorskip("torch")
    seqs = [torch.randn(3, 2), torch.randn(1, 2), torch.randn(4, 2)]
    for kw in ({}, {"batch_first": True}, {"padding_value": -1.0, "padding_side": "left"},
               {"batch_first": True, "padding_side": "left"}):
        close(pad_sequence([to_j(s) for s in seqs], **kw), torch.nn.utils.rnn.pad_sequence(seqs, **kw))
    x = to_j(seqs[0], requires_grad=True)
    pad_sequence([x, to_j(seqs[2])]).sum().backward()
    assert x.grad.tolist() == [[1.0, 1.0]] * 3
    padded = pad_sequence([to_j(s) for s in seqs], batch_first=True)
    back = unpad_sequence(padded, jitorch.tensor([3, 1, 4]), batch_first=True)
    assert [tuple(b.shape) for b in back] == [(3, 2), (1, 2), (4, 2)]


def test_pack_and_pad_packed_sequence_match_torch():
    torch = pytest.importorskip("torch")
    from jitorch.nn.utils import rnn as R
    seqs = [torch.randn(2, 3), torch.randn(4, 3), torch.randn(1, 3)]
    tp = torch.nn.utils.rnn.pack_sequence(seqs, enforce_sorted=False)
    jp = R.pack_sequence([to_j(s) for s in seqs], enforce_sorted=False)
    close(jp.data, tp.data)
    assert jp.batch_sizes.tolist() == tp.batch_sizes.tolist()
    assert jp.sorted_indices.tolist() == tp.sorted_indices.tolist()
    tpad, tlen = torch.nn.utils.rnn.pad_packed_sequence(tp, batch_first=True, total_length=5)
    jpad, jlen = R.pad_packed_sequence(jp, batch_first=True, total_length=5)
    close(jpad, tpad)
    assert jlen.tolist() == tlen.tolist()
    with pytest.raises(RuntimeError, match="must be sorted in decreasing order"):
        R.pack_sequence([to_j(s) for s in seqs])
