"""Whole models and the front-end paths they use, on CUDA (the simulator) against the CPU.

Each model is built once on the CPU and deep-copied to CUDA, so both start from the same
weights; a few optimizer steps must then give the same losses and parameters on both
devices.  The focused tests below check, op by op, the front-end code that reads index
tensors, draws random numbers or builds helper tensors, with CUDA inputs (values and
gradients equal to the CPU's).  Sizes are tiny: every simulated CUDA thread is a Python thread.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
from _cuda_kernel_helpers import fast_sim_threads  # noqa: F401

import jitorch
import jitorch.nn.functional as F
from jitorch import nn

CUDA = "cuda"


# -- helpers ----------------------------------------------------------------------------------------------------------
def _np(t):
    return t.detach().cpu().numpy()


def _close(a, b, rtol=1e-4, atol=1e-5):
    np.testing.assert_allclose(_np(a), _np(b), rtol=rtol, atol=atol)


def _pair(*inputs, grad=True):
    """The inputs as CPU leaves and as CUDA leaves with the same values (float ones require grad)."""
    def leaf(t, dev):
        t = t.detach().clone().to(dev)
        return t.requires_grad_() if grad and t.dtype.is_floating_point else t
    return ([leaf(t, "cpu") if isinstance(t, jitorch.Tensor) else t for t in inputs],
            [leaf(t, CUDA) if isinstance(t, jitorch.Tensor) else t for t in inputs])


def same_on_both(fn, *inputs, grad=True, rtol=1e-4, atol=1e-5):
    """``fn`` gives the same result (and input gradients of ``result.sum()``) on CUDA inputs as on CPU ones."""
    cpu_in, cuda_in = _pair(*inputs, grad=grad)
    want, got = fn(*cpu_in), fn(*cuda_in)
    assert got.device.type == "cuda"
    assert got.dtype is want.dtype and tuple(got.shape) == tuple(want.shape)
    _close(got, want, rtol, atol)
    if grad and want.requires_grad:
        want.double().sum().backward()
        got.double().sum().backward()
        for c, g in zip(cpu_in, cuda_in):
            if isinstance(c, jitorch.Tensor) and c.grad is not None:
                assert g.grad is not None and g.grad.device.type == "cuda"
                _close(g.grad, c.grad, rtol, atol)
    return want, got


def _train(model, batches, loss_fn, opt_name, steps):
    """Losses of ``steps`` optimizer steps over ``batches`` (cycled), with the model on its device."""
    dev = next(model.parameters()).device
    opt = {"sgd": lambda p: jitorch.optim.SGD(p, lr=0.1, momentum=0.9),
           "adam": lambda p: jitorch.optim.Adam(p, lr=0.01)}[opt_name](model.parameters())
    losses = []
    for k in range(steps):
        x, y = (t.to(dev) for t in batches[k % len(batches)])
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def trains_the_same(model, batches, loss_fn, opt_name="sgd", steps=3, rtol=1e-4, atol=1e-5):
    """The CPU model and a deep copy moved to CUDA give the same losses and final parameters."""
    twin = copy.deepcopy(model).to(CUDA)
    assert all(p.device.type == "cuda" for p in twin.parameters())
    want = _train(model, batches, loss_fn, opt_name, steps)
    got = _train(twin, batches, loss_fn, opt_name, steps)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    for (name, p), q in zip(model.named_parameters(), twin.parameters()):
        np.testing.assert_allclose(_np(q), _np(p), rtol=rtol, atol=atol, err_msg=name)
    for (name, b), c in zip(model.named_buffers(), twin.buffers()):
        assert c.device.type == "cuda", name
        np.testing.assert_allclose(_np(c), _np(b), rtol=rtol, atol=atol, err_msg=name)


def _seeded(seed=0):
    jitorch.manual_seed(seed)
    return np.random.default_rng(seed)


def _randn(rng, *shape):
    return jitorch.from_numpy(rng.standard_normal(shape).astype(np.float32))


# -- models -------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_mlp_trains_the_same(opt_name):
    rng = _seeded(1)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    batches = [(_randn(rng, 5, 4), _randn(rng, 5, 3)) for _ in range(2)]
    trains_the_same(model, batches, F.mse_loss, opt_name)


def test_small_cnn_trains_the_same():
    rng = _seeded(2)
    # no conv bias: BatchNorm cancels it, and Adam would blow its ~0 gradient (rounding noise) up to full steps
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, bias=False), nn.BatchNorm2d(2), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(2 * 2 * 2, 3))
    batches = [(_randn(rng, 2, 1, 4, 4), jitorch.tensor([0, 2]))]
    trains_the_same(model, batches, F.cross_entropy, "adam", steps=2)


class _SeqHead(nn.Module):
    """A recurrent layer and a linear head on its last output step."""

    def __init__(self, rnn, out_features):
        super().__init__()
        self.rnn = rnn
        width = rnn.hidden_size * (2 if rnn.bidirectional else 1)
        self.head = nn.Linear(width, out_features)

    def forward(self, x):
        out, _ = self.rnn(x)  # default (zero) initial states: made on the input's device
        return self.head(out[-1])


@pytest.mark.parametrize("kind,layers", [("LSTM", 2), ("GRU", 1), ("GRU", 2)])
def test_recurrent_models_train_the_same(kind, layers):
    rng = _seeded(3)
    rnn = getattr(nn, kind)(3, 4, num_layers=layers, bidirectional=True)
    model = _SeqHead(rnn, 2)
    batches = [(_randn(rng, 3, 2, 3), _randn(rng, 2, 2))]
    trains_the_same(model, batches, F.mse_loss, "adam", steps=2)


def test_transformer_encoder_layer_trains_the_same():
    rng = _seeded(4)
    layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0)
    batches = [(_randn(rng, 3, 2, 8), _randn(rng, 3, 2, 8))]
    trains_the_same(layer, batches, F.mse_loss, "sgd", steps=2)


def test_transformer_encoder_layer_with_dropout_in_eval_mode():
    rng = _seeded(5)
    layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.3).eval()
    twin = copy.deepcopy(layer).to(CUDA)
    x = _randn(rng, 3, 2, 8)
    mask = nn.Transformer.generate_square_subsequent_mask(3)
    assert nn.Transformer.generate_square_subsequent_mask(3, device=CUDA).device.type == "cuda"
    _close(twin(x.to(CUDA), src_mask=mask.to(CUDA)), layer(x, src_mask=mask))
    _close(twin(x.to(CUDA), is_causal=True, src_mask=mask.to(CUDA)), layer(x, is_causal=True, src_mask=mask))


class _Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(6, 4, padding_idx=0)
        self.out = nn.Linear(4, 5)

    def forward(self, idx):
        return self.out(self.emb(idx)).reshape(-1, 5)


def test_embedding_and_cross_entropy_train_the_same():
    _seeded(6)
    batches = [(jitorch.tensor([[1, 5, 0], [3, 3, 2]]), jitorch.tensor([0, 4, 1, 2, 2, 3]))]
    trains_the_same(_Tagger(), batches, lambda out, y: F.cross_entropy(out, y, ignore_index=1), "sgd")


def test_dropout_in_training_mode_on_cuda():
    jitorch.manual_seed(7)
    p = 0.25
    x = jitorch.ones(1024, device=CUDA, requires_grad=True)
    y = nn.Dropout(p).train()(x)
    assert y.device.type == "cuda"
    kept = _np(y) != 0
    assert abs(kept.mean() - (1 - p)) < 0.05  # ~4 standard deviations of a Bernoulli mean over 1024 draws
    np.testing.assert_allclose(_np(y)[kept], 1 / (1 - p), rtol=1e-6)
    (y * jitorch.arange(1024.0, device=CUDA)).sum().backward()
    np.testing.assert_allclose(_np(x.grad), kept * np.arange(1024.0) / (1 - p), rtol=1e-6)  # grad flows via the mask
    jitorch.manual_seed(7)
    again = F.dropout(jitorch.ones(1024, device=CUDA), p)
    np.testing.assert_array_equal(_np(again) != 0, kept)  # the same seed draws the same mask
    assert nn.Dropout(p).eval()(x) is x


# -- index tensors on the device --------------------------------------------------------------------------------------
X = jitorch.from_numpy(np.random.default_rng(8).standard_normal((4, 6)).astype(np.float32))
ROWS = jitorch.tensor([0, 3, -1, 3])


def _on(t, dev):
    return t.to(dev)


def test_getitem_with_cuda_long_and_bool_indices():
    same_on_both(lambda a, i: a[i], X, ROWS)
    same_on_both(lambda a, i: a[i, i.flip(0)], X, ROWS)
    same_on_both(lambda a, i: a[1:, i[:2].reshape(2, 1)], X, ROWS)
    same_on_both(lambda a: a[a > 0.1], X)
    same_on_both(lambda a: a[(a > 0)[:, 0]], X)
    same_on_both(lambda a: a[[0, 2], [1, -1]], X)  # host lists index a CUDA tensor too


def test_bad_device_indices_raise_like_torch():
    # device indices are checked on the device: the error surfaces at the next host read
    with pytest.raises(IndexError, match="index 9 is out of bounds"):
        X.to(CUDA)[jitorch.tensor([0, 9], device=CUDA)].cpu()
    with pytest.raises(RuntimeError, match="indices should be either on cpu or on the same device"):
        X[ROWS.to(CUDA)]
    with pytest.raises(RuntimeError, match="index 7 is out of bounds for dimension 1"):
        X.to(CUDA).gather(1, jitorch.tensor([[7]], device=CUDA)).cpu()


def test_setitem_and_index_put_with_cuda_indices():
    def write(a, v):
        b = a * 1
        b[ROWS.to(a.device)[:2]] = v
        return b
    same_on_both(write, X, jitorch.randn(6))

    def write_view(a, v):  # through a view of a tensor in the graph (CopySlices)
        b = a * 1
        b[1][jitorch.tensor([0, -2], device=a.device)] = v
        return b
    same_on_both(write_view, X, jitorch.randn(2))
    same_on_both(lambda a, v: a.index_put((ROWS.to(a.device),), v, accumulate=True), X, jitorch.randn(4, 6))
    same_on_both(lambda a, v: (a * 1).put_(jitorch.tensor([0, 0, -1], device=a.device), v, accumulate=True),
                 X, jitorch.randn(3))
    half = jitorch.zeros(4, dtype=jitorch.float16, device=CUDA)
    half.index_put_((jitorch.tensor([1, 1], device=CUDA),), jitorch.ones(2, dtype=jitorch.float16, device=CUDA),
                    accumulate=True)
    assert _np(half).tolist() == [0, 2, 0, 0]


def test_dim_indexing_ops_with_cuda_indices():
    cols = jitorch.tensor([[0, 5], [2, 2], [4, 1], [0, 3]])
    same_on_both(lambda a, i: a.gather(1, i), X, cols)
    same_on_both(lambda a, i, s: a.scatter_add(1, i, s), X, cols, jitorch.randn(4, 2))
    same_on_both(lambda a, i, s: a.scatter_reduce(1, i, s, "amax", include_self=False), X, cols, jitorch.randn(4, 2))
    same_on_both(lambda a, i: a.index_select(0, i), X, ROWS.abs())
    same_on_both(lambda a, i, s: a.index_add(0, i, s, alpha=2), X, ROWS.abs(), jitorch.randn(4, 6))
    same_on_both(lambda a, i, v: a.index_fill(1, i, v), X, jitorch.tensor([1, -1]), jitorch.tensor(2.0))
    same_on_both(lambda a, i: a.take(i), X, jitorch.tensor([[0, -1], [7, 7]]))
    same_on_both(lambda a, i: jitorch.take_along_dim(a, i, 1), X, jitorch.tensor([[0], [-1], [2], [3]]))


def test_mask_ops_and_nonzero_on_cuda():
    same_on_both(lambda a: a.masked_select(a > 0.2), X)
    same_on_both(lambda a, s: a.masked_scatter(a > 0, s), X, jitorch.randn(24))
    same_on_both(lambda a: a.masked_fill(a < 0, 0.5), X)
    m = X.to(CUDA) > 0
    for got, want in zip(m.nonzero(as_tuple=True), (X > 0).nonzero(as_tuple=True)):
        assert got.device.type == "cuda" and _np(got).tolist() == _np(want).tolist()
    same_on_both(lambda a: a.repeat_interleave(jitorch.tensor([1, 0, 2, 1], device=a.device), 0), X)


def test_triangles_diagonals_and_one_hot_on_cuda():
    same_on_both(lambda a: a.tril(1), X)
    same_on_both(lambda a: a.triu(-1) * 2, X)
    same_on_both(lambda a: (a * 1).tril_(), X)
    same_on_both(lambda a: jitorch.diag_embed(a[:2]), X)
    same_on_both(lambda i: F.one_hot(i, 5), jitorch.tensor([[0, 4], [2, 2]]), grad=False)
    same_on_both(lambda i: F.one_hot(i), jitorch.tensor([3, 1]), grad=False)
    with pytest.raises(RuntimeError, match="smaller than num_classes"):
        F.one_hot(jitorch.tensor([5], device=CUDA), 3).cpu()


# -- nn.functional paths with device indices -----------------------------------------------------------------------
W = jitorch.from_numpy(np.random.default_rng(9).standard_normal((5, 3)).astype(np.float32))
IDX = jitorch.tensor([[0, 4], [4, 1]])


def test_embedding_on_cuda():
    same_on_both(lambda w, i: F.embedding(i, w), W, IDX)
    same_on_both(lambda w, i: F.embedding(i, w, padding_idx=1, scale_grad_by_freq=True), W, IDX)
    same_on_both(lambda w, i: F.embedding(i.int(), w), W, IDX)
    with pytest.raises(IndexError, match="index out of range"):
        F.embedding(jitorch.tensor([5], device=CUDA), W.to(CUDA)).cpu()


def test_embedding_max_norm_renormalizes_device_rows_in_place():
    w_cpu, w_cuda = W.clone(), W.to(CUDA)
    _close(F.embedding(IDX.to(CUDA), w_cuda, max_norm=1.0), F.embedding(IDX, w_cpu, max_norm=1.0))
    _close(w_cuda, w_cpu)


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_embedding_bag_on_cuda(mode):
    same_on_both(lambda w, i, o: F.embedding_bag(i, w, o, mode=mode), W, jitorch.tensor([0, 4, 4, 1, 2]),
                 jitorch.tensor([0, 2]))


def test_classification_losses_on_cuda():
    logits, target = jitorch.randn(4, 6), jitorch.tensor([0, 2, 1, 5])
    same_on_both(F.cross_entropy, logits, target)
    same_on_both(lambda a, t, w: F.cross_entropy(a, t, weight=w, ignore_index=1, label_smoothing=0.1), logits, target,
                 jitorch.rand(6))
    same_on_both(lambda a, t, w: F.nll_loss(a, t, weight=w), logits, target, jitorch.rand(6))
    same_on_both(lambda a, t: F.nll_loss(a, t, reduction="none"), logits, target)
    same_on_both(F.cross_entropy, jitorch.randn(2, 4, 3), jitorch.tensor([[0, 1, 3], [2, 2, 0]]))
    same_on_both(F.multi_margin_loss, logits, target)
    same_on_both(F.multilabel_margin_loss, jitorch.randn(2, 4), jitorch.tensor([[3, 0, -1, 1], [1, 2, 3, -1]]))
    same_on_both(F.binary_cross_entropy, jitorch.rand(4, 3), jitorch.rand(4, 3))
    with pytest.raises(IndexError, match="Target 6 is out of bounds"):
        F.cross_entropy(logits.to(CUDA), jitorch.tensor([0, 6, 1, 1], device=CUDA)).item()
    with pytest.raises(RuntimeError, match="input should be between 0 and 1"):
        F.binary_cross_entropy(jitorch.tensor([1.5], device=CUDA), jitorch.tensor([1.0], device=CUDA))


def test_attention_masks_are_made_on_the_device():
    q = jitorch.randn(2, 3, 4)
    same_on_both(lambda a: F.scaled_dot_product_attention(a, a, a, is_causal=True), q)
    mha = nn.MultiheadAttention(6, 2, add_zero_attn=True, add_bias_kv=True)
    twin = copy.deepcopy(mha).to(CUDA)
    x = jitorch.randn(3, 2, 6)
    kpm = jitorch.tensor([[False, False, True], [False, False, False]])
    _close(twin(x.to(CUDA), x.to(CUDA), x.to(CUDA), key_padding_mask=kpm.to(CUDA))[0],
           mha(x, x, x, key_padding_mask=kpm)[0])


# -- random numbers on the device -------------------------------------------------------------------------------------
def test_random_fills_draw_on_the_device_from_philox():
    from jitorch.runtime.cuda import philox
    g = jitorch.Generator(device=CUDA).manual_seed(11)
    t = jitorch.empty(10, device=CUDA).uniform_(-1, 3, generator=g)
    np.testing.assert_allclose(_np(t), -1 + 4 * philox.uniform_reference(11, 0, 10, False), rtol=1e-6)
    assert g.get_offset() == 1
    n = jitorch.empty(6, dtype=jitorch.float64, device=CUDA).normal_(2.0, 0.5, generator=g)
    np.testing.assert_allclose(_np(n), 2 + 0.5 * philox.normal_reference(11, 1, 6, True), rtol=1e-12)
    b = jitorch.empty(8, dtype=jitorch.bool, device=CUDA).bernoulli_(0.5)
    assert b.dtype is jitorch.bool and b.device.type == "cuda"
    r = jitorch.empty(8, dtype=jitorch.int32, device=CUDA).random_(3, 7)
    assert set(_np(r).tolist()) <= {3, 4, 5, 6}
    v = jitorch.zeros(4, 4, device=CUDA).t()
    before = v._version_counter
    v.exponential_()  # a transposed (non-contiguous) target
    assert v._version_counter == before + 1 and bool((v > 0).all())
    with pytest.raises(RuntimeError, match="Expected a 'cuda' device type for generator"):
        jitorch.empty(3, device=CUDA).normal_(generator=jitorch.Generator())
    with pytest.raises(RuntimeError, match="Expected a 'cpu' device type for generator"):
        jitorch.empty(3).normal_(generator=g)


def test_cuda_generator_state_api():
    g = jitorch.Generator(device=CUDA)
    assert g.device.type == "cuda"
    g.manual_seed(5)
    assert g.initial_seed() == 5
    state = g.get_state()
    a = _np(jitorch.rand(4, device=CUDA, generator=g))
    g.set_state(state)
    np.testing.assert_array_equal(_np(jitorch.rand(4, device=CUDA, generator=g)), a)
    assert g.manual_seed(-1).initial_seed() == 2 ** 64 - 1
    p = jitorch.tensor([0.0, 1.0, 0.0, 1.0], device=CUDA)
    np.testing.assert_array_equal(_np(jitorch.empty(4, device=CUDA).bernoulli_(p, generator=g)), _np(p))


def test_init_functions_on_cuda_parameters():
    w = nn.Parameter(jitorch.empty(3, 4, device=CUDA))
    for init in (nn.init.trunc_normal_, nn.init.orthogonal_, nn.init.xavier_uniform_, nn.init.kaiming_normal_,
                 nn.init.eye_):
        init(w)
        assert w.device.type == "cuda" and bool(jitorch.isfinite(w).all())
    nn.init.orthogonal_(w, generator=jitorch.Generator(device=CUDA).manual_seed(0))
    np.testing.assert_allclose(_np(w @ w.t()), np.eye(3), atol=1e-5)
    nn.init.trunc_normal_(w, a=-0.1, b=0.1, generator=jitorch.Generator(device=CUDA).manual_seed(0))
    assert float(w.abs().max()) <= 0.1


def test_clip_grad_norm_on_cuda():
    grads = [jitorch.randn(3), jitorch.randn(2, 2)]
    total = {}
    for dev in ("cpu", CUDA):
        ps = [nn.Parameter(jitorch.zeros(g.shape, device=dev)) for g in grads]
        for p, g in zip(ps, grads):
            p.grad = g.clone().to(dev)
        total[dev] = (nn.utils.clip_grad_norm_(ps, 0.5), [p.grad for p in ps])
    _close(total[CUDA][0], total["cpu"][0])
    for got, want in zip(total[CUDA][1], total["cpu"][1]):
        assert got.device.type == "cuda"
        _close(got, want)


def test_recurrent_default_states_and_packing_on_cuda():
    rng = _seeded(12)
    for cell in (nn.LSTMCell(3, 4), nn.GRUCell(3, 4)):
        twin = copy.deepcopy(cell).to(CUDA)
        x = _randn(rng, 2, 3)
        got, want = twin(x.to(CUDA)), cell(x)
        _close(got[0] if isinstance(got, tuple) else got, want[0] if isinstance(want, tuple) else want)
    from jitorch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    x = _randn(rng, 3, 2, 2).to(CUDA)
    packed = pack_padded_sequence(x, [2, 3], enforce_sorted=False)
    assert packed.sorted_indices.device.type == "cuda" and packed.batch_sizes.device.type == "cpu"
    padded, lengths = pad_packed_sequence(packed)
    assert lengths.tolist() == [2, 3] and padded.device.type == "cuda"
    _close(padded[:2, 0], x[:2, 0])


def test_gradcheck_on_cuda_inputs():
    x = jitorch.tensor([[0.5, -1.0], [2.0, 0.25]], dtype=jitorch.float64, device=CUDA, requires_grad=True)
    i = jitorch.tensor([1, 0, 1], device=CUDA)
    assert jitorch.autograd.gradcheck(lambda a: (a[i] * a.tril()[i]).sum(0), (x,))
