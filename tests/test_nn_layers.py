"""nn layers and functionals against torch: outputs, input gradients and parameter gradients."""
from __future__ import annotations

import numpy as np
import pytest
from _nn_helpers import close, copy_weights, grads_close, to_j, to_t

import jitorch
import jitorch.nn.functional as F
from jitorch import nn

torch = pytest.importorskip("torch")

# (module name, constructor args, constructor kwargs, input shape)
LAYERS = [
    ("Identity", (), {}, (3, 4)),
    ("Linear", (4, 3), {}, (5, 4)),
    ("Linear", (4, 3), {"bias": False}, (2, 5, 4)),
    ("Bilinear", (3, 4, 2), {}, None),
    ("Flatten", (), {}, (2, 3, 4)),
    ("Unflatten", (1, (2, 3)), {}, (4, 6)),
    ("ReLU", (), {}, (4, 5)),
    ("ReLU6", (), {}, (4, 5)),
    ("GELU", (), {}, (4, 5)),
    ("GELU", (), {"approximate": "tanh"}, (4, 5)),
    ("SiLU", (), {}, (4, 5)),
    ("Tanh", (), {}, (4, 5)),
    ("Sigmoid", (), {}, (4, 5)),
    ("Softmax", (), {"dim": 1}, (4, 5)),
    ("LogSoftmax", (), {"dim": -1}, (4, 5)),
    ("Softmin", (), {"dim": 0}, (4, 5)),
    ("Softmax2d", (), {}, (2, 3, 2, 2)),
    ("LeakyReLU", (0.2,), {}, (4, 5)),
    ("ELU", (0.7,), {}, (4, 5)),
    ("SELU", (), {}, (4, 5)),
    ("CELU", (1.5,), {}, (4, 5)),
    ("Softplus", (2.0, 5.0), {}, (4, 5)),
    ("Mish", (), {}, (4, 5)),
    ("Hardswish", (), {}, (4, 5)),
    ("Hardsigmoid", (), {}, (4, 5)),
    ("Hardtanh", (-0.5, 0.8), {}, (4, 5)),
    ("PReLU", (), {}, (4, 5)),
    ("PReLU", (3,), {"init": 0.1}, (2, 3, 4)),
    ("Softsign", (), {}, (4, 5)),
    ("Tanhshrink", (), {}, (4, 5)),
    ("Threshold", (0.1, 20.0), {}, (4, 5)),
    ("GLU", (), {"dim": 1}, (3, 6)),
    ("LogSigmoid", (), {}, (4, 5)),
    ("Hardshrink", (0.3,), {}, (4, 5)),
    ("Softshrink", (0.3,), {}, (4, 5)),
    ("LayerNorm", (5,), {}, (3, 4, 5)),
    ("LayerNorm", ((4, 5),), {"elementwise_affine": False}, (3, 4, 5)),
    ("LayerNorm", (5,), {"bias": False}, (3, 5)),
    ("GroupNorm", (2, 4), {}, (3, 4, 5)),
    ("GroupNorm", (1, 4), {"affine": False}, (2, 4, 2, 3)),
    ("RMSNorm", (5,), {}, (3, 5)),
    ("BatchNorm1d", (4,), {}, (6, 4)),
    ("BatchNorm1d", (4,), {"affine": False}, (3, 4, 5)),
    ("BatchNorm2d", (3,), {}, (2, 3, 4, 4)),
    ("BatchNorm2d", (3,), {"track_running_stats": False}, (2, 3, 2, 2)),
    ("InstanceNorm1d", (3,), {"affine": True}, (2, 3, 5)),
    ("InstanceNorm2d", (3,), {}, (2, 3, 3, 3)),
    ("LocalResponseNorm", (3,), {}, (2, 5, 4)),
    ("ZeroPad2d", (1,), {}, (1, 2, 3, 3)),
    ("ConstantPad3d", (1, 0.5), {}, (1, 1, 2, 2, 2)),
    ("ReflectionPad1d", (2,), {}, (2, 3, 5)),
    ("ReplicationPad2d", ((1, 0, 2, 1),), {}, (1, 2, 3, 3)),
    ("CircularPad1d", (1,), {}, (2, 3, 4)),
    ("PixelShuffle", (2,), {}, (1, 8, 2, 3)),
    ("PixelUnshuffle", (2,), {}, (1, 2, 4, 6)),
    ("ChannelShuffle", (2,), {}, (1, 4, 2, 2)),
]


def _ids(spec):
    name, args, kwargs, _ = spec
    return name + ("-" + "-".join(f"{k}={v}" for k, v in kwargs.items()) if kwargs else "") + (
        f"-{len(args)}a" if args else "")


@pytest.mark.parametrize("spec", LAYERS, ids=[_ids(s) for s in LAYERS])
def test_layer_matches_torch(spec):
    name, args, kwargs, shape = spec
    torch.manual_seed(0)
    tmod = getattr(torch.nn, name)(*args, **kwargs)
    jmod = getattr(nn, name)(*args, **kwargs)
    assert repr(jmod) == repr(tmod)
    assert [n for n, _ in jmod.named_parameters()] == [n for n, _ in tmod.named_parameters()]
    assert list(jmod.state_dict()) == list(tmod.state_dict())
    copy_weights(tmod, jmod)
    gen = torch.Generator().manual_seed(1)
    if name == "Bilinear":
        tin = [torch.randn(5, 3, generator=gen, requires_grad=True), torch.randn(5, 4, generator=gen,
                                                                               requires_grad=True)]
    else:
        tin = [torch.randn(*shape, generator=gen, requires_grad=True)]
    jin = [to_j(t, requires_grad=True) for t in tin]
    tout = tmod(*tin)
    jout = jmod(*jin)
    close(jout, tout)
    gout = torch.randn(*tout.shape, generator=gen)
    tout.backward(gout)
    jout.backward(to_j(gout))
    for j, t in zip(jin, tin):
        close(j.grad, t.grad, atol=1e-4)
    grads_close(jmod, tmod, atol=1e-4)
    for (bn, b), (tn, tb) in zip(jmod.named_buffers(), tmod.named_buffers()):
        assert bn == tn
        close(b, tb)


def test_batchnorm_running_stats_over_steps_and_eval():
    torch.manual_seed(0)
    for momentum in (0.1, None):
        tbn = torch.nn.BatchNorm2d(3, momentum=momentum)
        jbn = nn.BatchNorm2d(3, momentum=momentum)
        for step in range(4):
            x = torch.randn(4, 3, 2, 2) * (step + 1) + step
            close(jbn(to_j(x)), tbn(x), atol=1e-5)
        close(jbn.running_mean, tbn.running_mean, atol=1e-6)
        close(jbn.running_var, tbn.running_var, atol=1e-5)
        assert int(jbn.num_batches_tracked) == int(tbn.num_batches_tracked) == 4
        tbn.eval()
        jbn.eval()
        x = torch.randn(2, 3, 2, 2)
        close(jbn(to_j(x)), tbn(x), atol=1e-5)
        assert int(jbn.num_batches_tracked) == 4  # eval leaves the statistics alone


def test_batchnorm_errors():
    with pytest.raises(ValueError, match="expected 4D input"):
        nn.BatchNorm2d(3)(jitorch.randn(2, 3))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        nn.BatchNorm1d(3)(jitorch.randn(1, 3))
    nn.BatchNorm1d(3).eval()(jitorch.randn(1, 3))  # fine in eval mode


def test_dropout_train_eval_and_validation():
    jitorch.manual_seed(0)
    d = nn.Dropout(0.5)
    x = jitorch.ones(2000)
    y = d(x)
    vals = set(np.unique(y.numpy()).tolist())
    assert vals <= {0.0, 2.0} and 0.4 < (y.numpy() == 0).mean() < 0.6
    d.eval()
    assert d(x) is x
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got 1.5"):
        nn.Dropout(1.5)
    z = jitorch.ones(10)
    F.dropout(z, 0.5, training=True, inplace=True)
    assert set(np.unique(z.numpy()).tolist()) <= {0.0, 2.0}
    assert F.dropout(jitorch.ones(5), 1.0).numpy().sum() == 0
    # channel dropout zeroes whole channels
    y2 = nn.Dropout2d(0.5)(jitorch.ones(8, 16, 3, 3)).numpy()
    per_channel = y2.reshape(8, 16, 9)
    assert ((per_channel == 0).all(-1) | (per_channel == 2).all(-1)).all()
    y1 = nn.Dropout1d(0.5)(jitorch.ones(16, 5)).numpy()
    assert ((y1 == 0).all(-1) | (y1 == 2).all(-1)).all()
    # gradient flows through the kept entries only
    x = jitorch.ones(100, requires_grad=True)
    out = F.dropout(x, 0.3)
    out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), out.detach().numpy())


def test_alpha_dropout_keeps_moments():
    jitorch.manual_seed(0)
    x = jitorch.randn(100000)  # below the parallel-kernel threshold: no extra compiles
    y = nn.AlphaDropout(0.2)(x).numpy()
    assert abs(y.mean()) < 0.02 and abs(y.std() - 1) < 0.02
    assert nn.AlphaDropout(0.2).eval()(x) is x


def test_rrelu_eval_and_train():
    x = jitorch.randn(50)
    m = nn.RReLU(0.1, 0.3)
    m.eval()
    np.testing.assert_allclose(m(x).numpy(), F.leaky_relu(x, 0.2).numpy(), rtol=1e-6)
    m.train()
    y = m(x).numpy()
    neg = x.numpy() < 0
    ratio = y[neg] / x.numpy()[neg]
    assert ((ratio >= 0.1 - 1e-6) & (ratio <= 0.3 + 1e-6)).all()


def test_embedding_padding_idx_and_from_pretrained():
    torch.manual_seed(0)
    temb = torch.nn.Embedding(10, 3, padding_idx=2)
    jemb = nn.Embedding(10, 3, padding_idx=2)
    assert repr(jemb) == repr(temb)
    assert not jemb.weight.detach().numpy()[2].any()
    copy_weights(temb, jemb)
    idx = torch.tensor([[1, 2, 4], [2, 4, 9]])
    tout = temb(idx)
    jout = jemb(to_j(idx))
    close(jout, tout)
    g = torch.randn(2, 3, 3)
    tout.backward(g)
    jout.backward(to_j(g))
    close(jemb.weight.grad, temb.weight.grad)
    assert not jemb.weight.grad.numpy()[2].any()
    pre = jitorch.randn(4, 2)
    frozen = nn.Embedding.from_pretrained(pre)
    assert not frozen.weight.requires_grad and frozen.weight.shape == (4, 2)
    assert nn.Embedding.from_pretrained(pre, freeze=False).weight.requires_grad
    with pytest.raises(IndexError, match="index out of range in self"):
        jemb(jitorch.tensor([10]))
    # max_norm renormalises the looked-up rows in place
    w = torch.randn(5, 3) * 5
    tm = torch.nn.Embedding.from_pretrained(w.clone(), max_norm=1.0)
    jm = nn.Embedding.from_pretrained(to_j(w), max_norm=1.0)
    close(jm(jitorch.tensor([0, 3])), tm(torch.tensor([0, 3])))
    close(jm.weight, tm.weight)


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_embedding_bag_matches_torch(mode):
    for pad in (None, 2):
        torch.manual_seed(0)
        tb = torch.nn.EmbeddingBag(10, 3, mode=mode, padding_idx=pad)
        jb = nn.EmbeddingBag(10, 3, mode=mode, padding_idx=pad)
        assert repr(jb) == repr(tb)
        copy_weights(tb, jb)
        inp, off = torch.tensor([1, 2, 4, 5, 4, 3, 2, 9]), torch.tensor([0, 4, 4, 7])  # bag 1 is empty
        tout = tb(inp, off)
        jout = jb(to_j(inp), to_j(off))
        close(jout, tout)
        g = torch.randn(*tout.shape)
        tout.backward(g)
        jout.backward(to_j(g))
        close(jb.weight.grad, tb.weight.grad)
        batch = torch.tensor([[1, 2, 2], [4, 2, 0]])
        close(jb(to_j(batch)), tb(batch))
    if mode == "sum":
        w = torch.rand(8)
        close(jb(to_j(inp), to_j(off), per_sample_weights=to_j(w)), tb(inp, off, per_sample_weights=w))


def test_embedding_scale_grad_by_freq():
    w = torch.randn(5, 2)
    idx = torch.tensor([0, 0, 3, 0])
    tw = w.clone().requires_grad_()
    torch.nn.functional.embedding(idx, tw, scale_grad_by_freq=True).sum().backward()
    jw = to_j(w, requires_grad=True)
    F.embedding(to_j(idx), jw, scale_grad_by_freq=True).sum().backward()
    close(jw.grad, tw.grad)


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad_matches_torch(mode):
    x = torch.randn(2, 3, 5, requires_grad=True)
    pads = (1, 2) if mode != "constant" else (1, 2, -1, 1)
    kw = {"value": 0.5} if mode == "constant" else {}
    tout = torch.nn.functional.pad(x, pads, mode=mode, **kw)
    jx = to_j(x, requires_grad=True)
    jout = F.pad(jx, pads, mode=mode, **kw)
    close(jout, tout)
    g = torch.randn(*tout.shape)
    tout.backward(g)
    jout.backward(to_j(g))
    close(jx.grad, x.grad)
    x2 = torch.randn(1, 2, 4, 5)
    close(F.pad(to_j(x2), (1, 1, 2, 3), mode=mode), torch.nn.functional.pad(x2, (1, 1, 2, 3), mode=mode))


def test_pad_errors():
    with pytest.raises(RuntimeError, match="Padding length must be divisible by 2"):
        F.pad(jitorch.ones(1, 1, 3), (1, 1, 1))
    with pytest.raises(RuntimeError, match="Padding size should be less than the corresponding input dimension"):
        F.pad(jitorch.ones(1, 1, 3), (3, 3), mode="reflect")
    with pytest.raises(NotImplementedError, match="Unrecognised padding mode foo"):
        F.pad(jitorch.ones(1, 1, 3), (1, 1), mode="foo")


def test_functional_misc_matches_torch():
    tF = torch.nn.functional
    a = torch.randn(4, 5, requires_grad=True)
    b = torch.randn(4, 5, requires_grad=True)
    ja, jb = to_j(a, True), to_j(b, True)
    pairs = [
        (F.normalize(ja, dim=1), tF.normalize(a, dim=1)),
        (F.normalize(ja, p=1, dim=0), tF.normalize(a, p=1, dim=0)),
        (F.cosine_similarity(ja, jb), tF.cosine_similarity(a, b)),
        (F.pairwise_distance(ja, jb), tF.pairwise_distance(a, b)),
        (F.pairwise_distance(ja, jb, p=1, keepdim=True), tF.pairwise_distance(a, b, p=1, keepdim=True)),
        (F.linear(ja, jb), tF.linear(a, b)),
        (F.softmax(ja, dim=0), tF.softmax(a, dim=0)),
        (F.gelu(ja), tF.gelu(a)),
        (F.threshold(ja, 0.2, -1.0), tF.threshold(a, 0.2, -1.0)),
    ]
    total_j = sum(j.sum() * (i + 1) for i, (j, _) in enumerate(pairs))
    total_t = sum(t.sum() * (i + 1) for i, (_, t) in enumerate(pairs))
    for j, t in pairs:
        close(j, t)
    total_j.backward()
    total_t.backward()
    close(ja.grad, a.grad, atol=1e-4)
    close(jb.grad, b.grad, atol=1e-4)
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        F.softmax(ja.detach())


def test_functional_batch_norm_and_layer_norm_errors():
    with pytest.raises(RuntimeError, match=r"Given normalized_shape=\[4\], expected input with shape \[\*, 4\]"):
        F.layer_norm(jitorch.ones(3, 5), (4,))
    with pytest.raises(RuntimeError, match="Expected number of channels in input to be divisible by num_groups"):
        F.group_norm(jitorch.ones(2, 6, 3), 4)
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(2x3 and 5x4\)"):
        F.linear(jitorch.ones(2, 3), jitorch.ones(4, 5))
    with pytest.raises(RuntimeError, match="Halving dimension must be even"):
        F.glu(jitorch.ones(3, 5))


@pytest.mark.parametrize("name, kwargs", [("PairwiseDistance", {"p": 1.0, "keepdim": True}),
                                          ("CosineSimilarity", {"dim": 0})])
def test_distance_modules(name, kwargs):
    a, b = torch.randn(4, 3, requires_grad=True), torch.randn(4, 3, requires_grad=True)
    ja, jb = to_j(a, True), to_j(b, True)
    tout = getattr(torch.nn, name)(**kwargs)(a, b)
    jout = getattr(nn, name)(**kwargs)(ja, jb)
    close(jout, tout)
    tout.sum().backward()
    jout.sum().backward()
    close(ja.grad, a.grad)
    close(jb.grad, b.grad)


def test_pdist_and_gumbel_softmax():
    x = torch.randn(5, 3)
    close(F.pdist(to_j(x)), torch.nn.functional.pdist(x))
    jitorch.manual_seed(0)
    logits = jitorch.randn(4, 6, requires_grad=True)
    hard = F.gumbel_softmax(logits, tau=0.5, hard=True)
    assert hard.sum(-1).tolist() == [1.0] * 4 and set(np.unique(hard.detach().numpy())) <= {0.0, 1.0}
    (hard * jitorch.arange(6.0)).sum().backward()
    assert logits.grad is not None and logits.grad.numpy().any()
    soft = F.gumbel_softmax(logits.detach(), dim=0)
    np.testing.assert_allclose(soft.sum(0).numpy(), np.ones(6), rtol=1e-5)


def test_one_hot():
    out = F.one_hot(jitorch.tensor([0, 2, 1]), 4)
    assert out.dtype == jitorch.int64
    np.testing.assert_array_equal(out.numpy(), np.eye(4, dtype=np.int64)[[0, 2, 1]])


def test_inplace_activations_modify_input():
    x = jitorch.tensor([-1.0, 2.0])
    y = nn.ReLU(inplace=True)(x)
    assert y is x and x.tolist() == [0.0, 2.0]
    x = jitorch.tensor([-1.0, 2.0])
    nn.Hardswish(inplace=True)(x)
    assert x.tolist() == pytest.approx([-1.0 / 3, 2.0 * 5 / 6])


def test_to_t_roundtrip_helper():
    x = jitorch.randn(3)
    np.testing.assert_array_equal(to_t(x).numpy(), x.numpy())


def test_nn_primitives_first_and_second_derivatives():
    from jitorch.autograd import gradcheck, gradgradcheck
    jitorch.manual_seed(0)
    w = jitorch.randn(5, 3, dtype=jitorch.float64, requires_grad=True)
    idx = jitorch.tensor([[0, 2], [2, 4]])
    assert gradcheck(lambda w: F.embedding(idx, w), (w,))
    assert gradgradcheck(lambda w: F.embedding(idx, w) ** 2, (w,))
    x = jitorch.randn(4, 5, dtype=jitorch.float64, requires_grad=True)
    t = jitorch.tensor([0, 3, -100, 4])
    cw = jitorch.rand(5, dtype=jitorch.float64)
    assert gradcheck(lambda x: F.cross_entropy(x, t, weight=cw, label_smoothing=0.1), (x,))
    assert gradgradcheck(lambda x: F.cross_entropy(x, t, weight=cw), (x,))
    p = (jitorch.rand(6, dtype=jitorch.float64) * 0.8 + 0.1).requires_grad_()
    y = jitorch.rand(6, dtype=jitorch.float64).requires_grad_()
    assert gradcheck(lambda p, y: F.binary_cross_entropy(p, y), (p, y))
    assert gradgradcheck(lambda p: F.binary_cross_entropy(p, y.detach()), (p,))
    z = jitorch.randn(1, 2, 4, dtype=jitorch.float64, requires_grad=True)
    for mode in ("reflect", "replicate", "circular", "constant"):
        assert gradcheck(lambda z, m=mode: F.pad(z, (2, 1), mode=m), (z,))
    for mode in ("reflect", "constant"):  # the index-map modes share one primitive pair
        assert gradgradcheck(lambda z, m=mode: F.pad(z, (2, 1), mode=m) * z.sum(), (z,))
