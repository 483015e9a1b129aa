"""Losses (modules and functionals) against torch: values, input gradients, reductions and errors."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from _nn_helpers import close, to_j

import jitorch
import jitorch.nn.functional as F
from jitorch import nn

torch = pytest.importorskip("torch")
tF = torch.nn.functional
REDUCTIONS = ("mean", "sum", "none")


def _check(jfn, tfn, inputs, grad_idx=(0,), atol=1e-5):
    """Run both losses on copies of ``inputs`` (torch tensors); compare values and gradients."""
    tin = [t.detach().clone().requires_grad_(i in grad_idx) for i, t in enumerate(inputs)]
    jin = [to_j(t, requires_grad=i in grad_idx) for i, t in enumerate(inputs)]
    tout = tfn(*tin)
    jout = jfn(*jin)
    close(jout, tout, atol=atol)
    g = torch.rand(tout.shape, generator=torch.Generator().manual_seed(3)) + 0.5
    tout.backward(g)
    jout.backward(to_j(g))
    for i in grad_idx:
        close(jin[i].grad, tin[i].grad, atol=atol)


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_regression_losses(reduction):
    x, y = _randn(4, 5), _randn(4, 5, seed=1) * 2
    for name, kw in (("MSELoss", {}), ("L1Loss", {}), ("SmoothL1Loss", {"beta": 0.5}), ("SmoothL1Loss", {}),
                     ("HuberLoss", {"delta": 0.7}), ("SoftMarginLoss", {})):
        target = y.sign() if name == "SoftMarginLoss" else y
        jm = getattr(nn, name)(reduction=reduction, **kw)
        tm = getattr(torch.nn, name)(reduction=reduction, **kw)
        _check(jm, tm, [x, target], grad_idx=(0,) if name == "SoftMarginLoss" else (0, 1))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_class_indices(reduction, weighted):
    x = _randn(6, 4)
    t = torch.tensor([0, 3, 1, -100, 2, 3])
    w = _rand(4) + 0.5 if weighted else None
    kw = {"weight": w, "ignore_index": -100, "reduction": reduction}
    _check(lambda a: F.cross_entropy(a, to_j(t), weight=to_j(w) if weighted else None,
                                     ignore_index=-100, reduction=reduction),
           lambda a: tF.cross_entropy(a, t, **kw), [x])
    jm = nn.CrossEntropyLoss(weight=to_j(w) if weighted else None, reduction=reduction)
    tm = torch.nn.CrossEntropyLoss(weight=w, reduction=reduction)
    _check(lambda a: jm(a, to_j(t.clamp(min=0))), lambda a: tm(a, t.clamp(min=0)), [x])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_label_smoothing_and_kdim(reduction):
    x = _randn(2, 5, 3, 4)
    t = torch.randint(0, 5, (2, 3, 4), generator=torch.Generator().manual_seed(1))
    t[0, 0, 0] = 2
    t[1, 2, 3] = 2
    w = _rand(5) + 0.5
    for kw in ({}, {"label_smoothing": 0.2}, {"label_smoothing": 0.1, "weight": w, "ignore_index": 2}):
        jkw = {k: to_j(v) if isinstance(v, torch.Tensor) else v for k, v in kw.items()}
        _check(lambda a, jkw=jkw: F.cross_entropy(a, to_j(t), reduction=reduction, **jkw),
               lambda a, kw=kw: tF.cross_entropy(a, t, reduction=reduction, **kw), [x])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_probabilities_and_unbatched(reduction):
    x = _randn(3, 4)
    p = torch.softmax(_randn(3, 4, seed=2), 1)
    w = _rand(4) + 0.5
    _check(lambda a, b: F.cross_entropy(a, b, reduction=reduction), lambda a, b: tF.cross_entropy(a, b, reduction=reduction),
           [x, p], grad_idx=(0, 1))
    _check(lambda a, b: F.cross_entropy(a, b, weight=to_j(w), label_smoothing=0.3, reduction=reduction),
           lambda a, b: tF.cross_entropy(a, b, weight=w, label_smoothing=0.3, reduction=reduction), [x, p])
    _check(lambda a: F.cross_entropy(a, jitorch.tensor(2), reduction=reduction),
           lambda a: tF.cross_entropy(a, torch.tensor(2), reduction=reduction), [_randn(4)])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss(reduction):
    x = torch.log_softmax(_randn(5, 3), 1)
    t = torch.tensor([0, 2, 1, 1, 0])
    w = torch.tensor([0.2, 1.0, 3.0])
    _check(lambda a: nn.NLLLoss(weight=to_j(w), ignore_index=1, reduction=reduction)(a, to_j(t)),
           lambda a: torch.nn.NLLLoss(weight=w, ignore_index=1, reduction=reduction)(a, t), [x])


def test_nll_all_ignored_mean_is_nan_like_torch():
    x = _randn(2, 3)
    t = torch.tensor([-100, -100])
    assert torch.isnan(tF.cross_entropy(x, t))
    assert np.isnan(F.cross_entropy(to_j(x), to_j(t)).item())


def test_cross_entropy_errors_match_torch():
    x = jitorch.randn(3, 5)
    cases = [
        (ValueError, "Expected input batch_size (3) to match target batch_size (2).",
         lambda: F.cross_entropy(x, jitorch.tensor([1, 2]))),
        (IndexError, "Target 7 is out of bounds.", lambda: F.cross_entropy(x, jitorch.tensor([1, 2, 7]))),
        (RuntimeError, "Expected target size [2, 4], got [2, 3]",
         lambda: F.cross_entropy(jitorch.randn(2, 5, 4), jitorch.zeros(2, 3, dtype=jitorch.int64))),
        (RuntimeError, "expected target dtype to be Long or Byte, but got Float",
         lambda: F.cross_entropy(x, jitorch.zeros(3))),
        (RuntimeError, "Expected floating point type for target with class probabilities, got Long",
         lambda: F.cross_entropy(x, jitorch.zeros(3, 5, dtype=jitorch.int64))),
        (ValueError, "foo is not a valid value for reduction",
         lambda: F.nll_loss(x, jitorch.tensor([1, 2, 3]), reduction="foo")),
    ]
    for exc, msg, fn in cases:
        with pytest.raises(exc) as info:
            fn()
        assert str(info.value) == msg


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_losses(reduction):
    p = _rand(4, 3) * 0.98 + 0.01
    y = (_rand(4, 3, seed=1) > 0.5).float()
    w = _rand(4, 3, seed=2)
    _check(lambda a, b: F.binary_cross_entropy(a, b, weight=to_j(w), reduction=reduction),
           lambda a, b: tF.binary_cross_entropy(a, b, weight=w, reduction=reduction), [p, y], grad_idx=(0, 1))
    x = _randn(4, 3) * 3
    pw = _rand(3, seed=4) * 2
    _check(lambda a, b: nn.BCEWithLogitsLoss(weight=to_j(w), pos_weight=to_j(pw), reduction=reduction)(a, b),
           lambda a, b: torch.nn.BCEWithLogitsLoss(weight=w, pos_weight=pw, reduction=reduction)(a, b),
           [x, _rand(4, 3, seed=5)], grad_idx=(0, 1))
    _check(lambda a, b: nn.BCELoss(reduction=reduction)(a, b), lambda a, b: torch.nn.BCELoss(reduction=reduction)(a, b),
           [p, y])


def test_bce_clamps_log_at_minus_100_like_torch():
    p = torch.tensor([0.0, 1.0, 0.5, 1e-30])
    y = torch.tensor([1.0, 0.0, 1.0, 1.0])
    _check(lambda a, b: F.binary_cross_entropy(a, b, reduction="none"),
           lambda a, b: tF.binary_cross_entropy(a, b, reduction="none"), [p, y], atol=1e-3)
    with pytest.raises(RuntimeError, match="all elements of input should be between 0 and 1"):
        F.binary_cross_entropy(jitorch.tensor([1.5]), jitorch.tensor([1.0]))
    with pytest.raises(ValueError, match="Using a target size"):
        F.binary_cross_entropy(jitorch.rand(3), jitorch.rand(4))
    with pytest.raises(ValueError, match=r"Target size \(jitorch.Size\(\[4\]\)\) must be the same as input size"):
        F.binary_cross_entropy_with_logits(jitorch.rand(3), jitorch.rand(4))


@pytest.mark.parametrize("reduction", ("batchmean", "sum", "none", "mean"))
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(reduction, log_target):
    inp = torch.log_softmax(_randn(3, 4), 1)
    tgt = torch.softmax(_randn(3, 4, seed=1), 1)
    tgt[0, 0] = 0.0
    if log_target:
        tgt = torch.log_softmax(_randn(3, 4, seed=1), 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _check(lambda a, b: nn.KLDivLoss(reduction=reduction, log_target=log_target)(a, b),
               lambda a, b: torch.nn.KLDivLoss(reduction=reduction, log_target=log_target)(a, b), [inp, tgt])
    if reduction == "mean":
        with pytest.warns(UserWarning, match="'batchmean' divides only by the batch size"):
            F.kl_div(to_j(inp), to_j(tgt))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_embedding_and_margin_losses(reduction):
    a, b = _randn(5, 4), _randn(5, 4, seed=1)
    y = torch.tensor([1.0, -1.0, 1.0, -1.0, -1.0])
    _check(lambda p, q: nn.CosineEmbeddingLoss(margin=0.1, reduction=reduction)(p, q, to_j(y)),
           lambda p, q: torch.nn.CosineEmbeddingLoss(margin=0.1, reduction=reduction)(p, q, y), [a, b], (0, 1))
    s1, s2 = _randn(5), _randn(5, seed=2)
    _check(lambda p, q: nn.MarginRankingLoss(margin=0.3, reduction=reduction)(p, q, to_j(y)),
           lambda p, q: torch.nn.MarginRankingLoss(margin=0.3, reduction=reduction)(p, q, y), [s1, s2], (0, 1))
    _check(lambda p: nn.HingeEmbeddingLoss(margin=0.5, reduction=reduction)(p, to_j(y)),
           lambda p: torch.nn.HingeEmbeddingLoss(margin=0.5, reduction=reduction)(p, y), [s1])
    _check(lambda p, q, r: nn.TripletMarginLoss(margin=0.5, reduction=reduction)(p, q, r),
           lambda p, q, r: torch.nn.TripletMarginLoss(margin=0.5, reduction=reduction)(p, q, r),
           [a, b, _randn(5, 4, seed=3)], (0, 1, 2))
    labels = (_rand(5, 4, seed=4) > 0.5).float()
    _check(lambda p: nn.MultiLabelSoftMarginLoss(reduction=reduction)(p, to_j(labels)),
           lambda p: torch.nn.MultiLabelSoftMarginLoss(reduction=reduction)(p, labels), [a])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_multiclass_margin_losses(reduction):
    x = _randn(4, 5)
    t = torch.tensor([1, 0, 4, 2])
    w = _rand(5) + 0.5
    for p in (1, 2):
        _check(lambda a, p=p: nn.MultiMarginLoss(p=p, margin=0.7, weight=to_j(w), reduction=reduction)(a, to_j(t)),
               lambda a, p=p: torch.nn.MultiMarginLoss(p=p, margin=0.7, weight=w, reduction=reduction)(a, t), [x])
    labels = torch.tensor([[3, 0, -1, 1, 2], [1, 2, 3, 4, 0], [0, -1, 2, 2, 2], [4, 1, -1, 0, 0]])
    _check(lambda a: nn.MultiLabelMarginLoss(reduction=reduction)(a, to_j(labels)),
           lambda a: torch.nn.MultiLabelMarginLoss(reduction=reduction)(a, labels), [x])
    a, b, c = _randn(4, 3), _randn(4, 3, seed=1), _randn(4, 3, seed=2)
    cos = torch.nn.CosineSimilarity()
    jcos = nn.CosineSimilarity()
    _check(lambda p, q, r: nn.TripletMarginWithDistanceLoss(distance_function=lambda u, v: 1 - jcos(u, v), swap=True,
                                                            reduction=reduction)(p, q, r),
           lambda p, q, r: torch.nn.TripletMarginWithDistanceLoss(distance_function=lambda u, v: 1 - cos(u, v),
                                                                  swap=True, reduction=reduction)(p, q, r),
           [a, b, c], (0, 1, 2))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_likelihood_losses(reduction):
    x = _randn(4, 3)
    counts = torch.randint(0, 5, (4, 3), generator=torch.Generator().manual_seed(0)).float()
    for kw in ({}, {"full": True}, {"log_input": False}):
        inp = x.exp() if kw.get("log_input") is False else x
        _check(lambda a, kw=kw: nn.PoissonNLLLoss(reduction=reduction, **kw)(a, to_j(counts)),
               lambda a, kw=kw: torch.nn.PoissonNLLLoss(reduction=reduction, **kw)(a, counts), [inp])
    var = _rand(4, 3) + 0.1
    _check(lambda a, v: nn.GaussianNLLLoss(full=True, reduction=reduction)(a, to_j(counts), v),
           lambda a, v: torch.nn.GaussianNLLLoss(full=True, reduction=reduction)(a, counts, v), [x, var], (0, 1))


def test_mse_broadcast_warning_and_legacy_args():
    with pytest.warns(UserWarning, match="Using a target size"):
        F.mse_loss(jitorch.rand(3), jitorch.rand(1))
    with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated"):
        m = nn.MSELoss(size_average=False)
    assert m.reduction == "sum"
    loss = nn.CrossEntropyLoss(weight=jitorch.ones(3))
    assert list(loss.state_dict()) == ["weight"]
    assert list(nn.CrossEntropyLoss().state_dict()) == []
