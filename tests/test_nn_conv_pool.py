"""Convolution, pooling, interpolation and fold/unfold against torch (values and gradients), plus
finite-difference gradchecks of the primitives and torch's error messages."""
from __future__ import annotations

import numpy as np
import pytest
from _nn_ext_helpers import (
    assert_close,
    assert_param_grads,
    backward_both,
    copy_state,
    to_j,
)

import jitorch
import jitorch.nn as jnn
from jitorch.ops import nn_ops as N

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _rand(*shape, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype)


def _parity(tfn, jfn, inputs, rtol=1e-4, atol=1e-5, seed=0):
    """Run ``tfn`` on torch leaves and ``jfn`` on jitorch copies; compare outputs and input gradients."""
    t_in = [x.clone().requires_grad_(x.is_floating_point()) for x in inputs]
    j_in = [to_j(x, x.is_floating_point()) for x in inputs]
    t_out, j_out = tfn(*t_in), jfn(*j_in)
    assert_close(j_out, t_out, rtol, atol, "forward")
    backward_both(t_out, j_out, seed)
    for k, (t, j) in enumerate(zip(t_in, j_in)):
        if t.is_floating_point():
            assert_close(j.grad, t.grad, rtol, atol, f"grad of input {k}")


# -- convolution ---------------------------------------------------------------------------------------------
CONV2D_CASES = [
    # (N, C, H, W, O, kernel, stride, padding, dilation, groups, bias)
    (2, 4, 9, 8, 6, 3, 1, 1, 1, 1, True),
    (2, 4, 9, 8, 6, (3, 2), 2, (1, 0), (2, 1), 2, True),
    (1, 3, 5, 5, 3, 1, 1, 0, 1, 3, False),          # depthwise 1x1
    (2, 2, 7, 6, 4, 3, (2, 3), 2, 1, 1, True),
    (1, 6, 6, 7, 6, 2, 1, "same", 2, 3, True),      # even kernel, 'same' pads asymmetrically
    (2, 3, 6, 6, 5, (2, 3), 1, "same", 1, 1, False),
    (2, 3, 5, 6, 2, 3, 1, "valid", 1, 1, True),
    (1, 4, 8, 8, 8, 3, 3, 1, 2, 4, True),
]


@pytest.mark.parametrize("case", CONV2D_CASES)
def test_conv2d_matches_torch(case):
    n, c, h, w, o, k, s, p, d, g, bias = case
    ks = (k, k) if isinstance(k, int) else k
    inputs = [_rand(n, c, h, w), _rand(o, c // g, *ks, seed=1)] + ([_rand(o, seed=2)] if bias else [])

    def run(mod):
        return lambda x, wt, *b: mod(x, wt, b[0] if b else None, s, p, d, g)
    _parity(run(F.conv2d), run(N.conv2d), inputs)


@pytest.mark.parametrize("case", [(2, 4, 11, 6, 3, 2, 1, 1, 1), (1, 4, 9, 4, 2, 1, "same", 3, 2),
                                  (2, 3, 8, 3, 4, 3, 2, 1, 1)])
def test_conv1d_matches_torch(case):
    n, c, length, o, k, s, p, d, g = case
    inputs = [_rand(n, c, length), _rand(o, c // g, k, seed=1), _rand(o, seed=2)]
    _parity(lambda x, wt, b: F.conv1d(x, wt, b, s, p, d, g), lambda x, wt, b: N.conv1d(x, wt, b, s, p, d, g), inputs)


def test_conv_unbatched_and_float64():
    x, wt = _rand(3, 6, 5, dtype=torch.float64), _rand(4, 3, 2, 2, seed=1, dtype=torch.float64)
    _parity(lambda a, b: F.conv2d(a, b, padding=1), lambda a, b: N.conv2d(a, b, padding=1), [x, wt], 1e-10, 1e-12)
    out = N.conv2d(to_j(x), to_j(wt))
    assert out.dtype is jitorch.float64 and tuple(out.shape) == (4, 5, 4)


@pytest.mark.parametrize("case", [
    # (N, Cin, H, W, Cout, kernel, stride, padding, output_padding, groups, dilation)
    (2, 4, 5, 4, 6, 3, 2, 1, 1, 2, 1),
    (1, 3, 4, 4, 2, (2, 3), (2, 1), 0, 0, 1, 1),
    (2, 2, 3, 5, 4, 3, 3, 2, (2, 1), 1, 2),
    (1, 4, 3, 3, 4, 1, 1, 0, 0, 4, 1),
])
def test_conv_transpose2d_matches_torch(case):
    n, cin, h, w, cout, k, s, p, op, g, d = case
    ks = (k, k) if isinstance(k, int) else k
    inputs = [_rand(n, cin, h, w), _rand(cin, cout // g, *ks, seed=1), _rand(cout, seed=2)]
    _parity(lambda x, wt, b: F.conv_transpose2d(x, wt, b, s, p, op, g, d),
            lambda x, wt, b: N.conv_transpose2d(x, wt, b, s, p, op, g, d), inputs)


def test_conv_transpose1d_matches_torch():
    inputs = [_rand(2, 4, 7), _rand(4, 3, 3, seed=1), _rand(6, seed=2)]
    _parity(lambda x, wt, b: F.conv_transpose1d(x, wt, b, 2, 1, 1, 2), lambda x, wt, b: N.conv_transpose1d(
        x, wt, b, 2, 1, 1, 2), inputs)


# -- pooling -------------------------------------------------------------------------------------------------
MAXPOOL_CASES = [{"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}, {"kernel_size": 2, "dilation": 2},
                 {"kernel_size": (3, 2), "stride": (2, 1)}, {"kernel_size": 3, "stride": 1, "padding": 1},
                 {"kernel_size": (2, 3), "stride": 2, "padding": (1, 1), "dilation": (2, 1), "ceil_mode": True}]


@pytest.mark.parametrize("kw", MAXPOOL_CASES)
def test_max_pool2d_values_indices_grads(kw):
    x = _rand(2, 3, 7, 6)
    _parity(lambda a: F.max_pool2d(a, **kw), lambda a: N.max_pool2d(a, **kw), [x])
    _, ti = F.max_pool2d(x, return_indices=True, **kw)
    _, ji = N.max_pool2d(to_j(x), return_indices=True, **kw)
    assert ji.dtype is jitorch.int64
    np.testing.assert_array_equal(ji.numpy(), ti.numpy())


def test_max_pool_ties_nan_and_1d():
    x = torch.tensor([[[[1.0, 1.0, 0.0], [1.0, float("nan"), 2.0], [-np.inf, -np.inf, 3.0]]]])
    for kw in ({"kernel_size": 2, "stride": 1}, {"kernel_size": 2, "stride": 1, "padding": 1}):
        tv, ti = F.max_pool2d(x, return_indices=True, **kw)
        jv, ji = N.max_pool2d(to_j(x), return_indices=True, **kw)
        assert_close(jv, tv)
        np.testing.assert_array_equal(ji.numpy(), ti.numpy())
    kw = {"kernel_size": 3, "stride": 2, "padding": 1, "dilation": 1, "ceil_mode": True}
    _parity(lambda a: F.max_pool1d(a, **kw), lambda a: N.max_pool1d(a, **kw), [_rand(2, 3, 10)])
    _, ti = F.max_pool1d(_rand(3, 9), 2, return_indices=True)
    _, ji = N.max_pool1d(to_j(_rand(3, 9)), 2, return_indices=True)
    np.testing.assert_array_equal(ji.numpy(), ti.numpy())


@pytest.mark.parametrize("kw", [{"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
                                {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False},
                                {"kernel_size": 2, "divisor_override": 3}, {"kernel_size": (3, 2), "stride": (1, 2)},
                                {"kernel_size": 2, "padding": 1, "count_include_pad": False}])
def test_avg_pool2d_matches_torch(kw):
    _parity(lambda a: F.avg_pool2d(a, **kw), lambda a: N.avg_pool2d(a, **kw), [_rand(2, 3, 7, 6)])


def test_avg_pool1d_matches_torch():
    kw = {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False}
    _parity(lambda a: F.avg_pool1d(a, **kw), lambda a: N.avg_pool1d(a, **kw), [_rand(2, 3, 10)])


@pytest.mark.parametrize("size", [(3, 4), (5, 2), 1, (None, 3), (7, 6), (9, 11)])
def test_adaptive_pools_2d(size):
    x = _rand(2, 3, 7, 6)
    _parity(lambda a: F.adaptive_avg_pool2d(a, size), lambda a: N.adaptive_avg_pool2d(a, size), [x])
    _parity(lambda a: F.adaptive_max_pool2d(a, size), lambda a: N.adaptive_max_pool2d(a, size), [x])
    _, ti = F.adaptive_max_pool2d(x, size, return_indices=True)
    _, ji = N.adaptive_max_pool2d(to_j(x), size, return_indices=True)
    np.testing.assert_array_equal(ji.numpy(), ti.numpy())


def test_adaptive_pools_1d_and_unbatched():
    _parity(lambda a: F.adaptive_avg_pool1d(a, 4), lambda a: N.adaptive_avg_pool1d(a, 4), [_rand(2, 3, 10)])
    _parity(lambda a: F.adaptive_max_pool1d(a, 3), lambda a: N.adaptive_max_pool1d(a, 3), [_rand(3, 7)])
    _parity(lambda a: F.adaptive_avg_pool2d(a, 2), lambda a: N.adaptive_avg_pool2d(a, 2), [_rand(3, 5, 5)])


def test_max_unpool2d():
    x = _rand(2, 3, 6, 6)
    tv, ti = F.max_pool2d(x, 2, return_indices=True)
    jv, ji = N.max_pool2d(to_j(x), 2, return_indices=True)
    assert_close(N.max_unpool2d(jv, ji, 2), F.max_unpool2d(tv, ti, 2))
    assert_close(jnn.MaxUnpool2d(2)(jv, ji, output_size=(7, 7)), torch.nn.MaxUnpool2d(2)(tv, ti, output_size=(7, 7)))


# -- interpolation ---------------------------------------------------------------------------------------------
INTERP_CASES = [{"scale_factor": 2}, {"size": (5, 9)}, {"scale_factor": 1.7, "mode": "bilinear"},
                {"size": (11, 4), "mode": "bilinear", "align_corners": True}, {"size": (3, 3), "mode": "bilinear"},
                {"size": (11, 4), "mode": "bicubic"}, {"scale_factor": 2.3, "mode": "bicubic", "align_corners": True},
                {"size": (3, 13), "mode": "nearest-exact"}, {"size": (3, 4), "mode": "area"},
                {"scale_factor": (0.5, 1.5), "mode": "bilinear", "recompute_scale_factor": True},
                {"scale_factor": 0.6}, {"size": (7, 6), "mode": "bilinear"}]


@pytest.mark.parametrize("kw", INTERP_CASES)
def test_interpolate_2d(kw):
    _parity(lambda a: F.interpolate(a, **kw), lambda a: N.interpolate(a, **kw), [_rand(2, 3, 7, 6)])


@pytest.mark.parametrize("kw", [{"scale_factor": 2, "mode": "linear"}, {"size": 5, "mode": "linear", "align_corners": True},
                                {"size": 13}, {"scale_factor": 0.5, "mode": "nearest-exact"}])
def test_interpolate_1d(kw):
    _parity(lambda a: F.interpolate(a, **kw), lambda a: N.interpolate(a, **kw), [_rand(2, 3, 7)])


def test_upsample_modules():
    x = _rand(1, 2, 4, 5)
    for tm, jm in [(torch.nn.Upsample(scale_factor=2, mode="bilinear"), jnn.Upsample(scale_factor=2, mode="bilinear")),
                   (torch.nn.UpsamplingNearest2d(size=(6, 7)), jnn.UpsamplingNearest2d(size=(6, 7))),
                   (torch.nn.UpsamplingBilinear2d(scale_factor=3), jnn.UpsamplingBilinear2d(scale_factor=3))]:
        assert repr(jm) == repr(tm)
        assert_close(jm(to_j(x)), tm(x))


# -- fold / unfold ------------------------------------------------------------------------------------------------
def test_unfold_fold_match_torch():
    kw = {"kernel_size": (2, 3), "dilation": (1, 2), "padding": 1, "stride": (2, 1)}
    _parity(lambda a: F.unfold(a, **kw), lambda a: N.unfold(a, **kw), [_rand(2, 3, 7, 6)])
    cols = _rand(2, 12, 28)
    kw = {"output_size": (6, 7), "kernel_size": (2, 3), "padding": 1, "stride": (2, 1)}
    _parity(lambda a: F.fold(a, **kw), lambda a: N.fold(a, **kw), [cols])
    _parity(lambda a: torch.nn.Unfold(2, stride=2)(a), lambda a: jnn.Unfold(2, stride=2)(a), [_rand(3, 4, 4)])
    _parity(lambda a: torch.nn.Fold((4, 4), 2, stride=2)(a), lambda a: jnn.Fold((4, 4), 2, stride=2)(a),
            [_rand(12, 4)])


# -- layers ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls,args,kw,shape", [
    ("Conv2d", (4, 6, 3), {"padding": 1, "stride": 2}, (2, 4, 7, 6)),
    ("Conv2d", (4, 6, (3, 2)), {"padding": "same", "padding_mode": "reflect", "groups": 2, "bias": False}, (2, 4, 7, 6)),
    ("Conv2d", (2, 4, 3), {"padding": (2, 1), "padding_mode": "circular", "dilation": 2}, (1, 2, 6, 7)),
    ("Conv2d", (2, 4, 3), {"padding": 1, "padding_mode": "replicate"}, (3, 2, 5, 5)),
    ("Conv1d", (3, 5, 4), {"padding": "same", "padding_mode": "reflect"}, (2, 3, 9)),
    ("Conv1d", (4, 4, 3), {"stride": 2, "groups": 4}, (2, 4, 9)),
    ("ConvTranspose2d", (4, 6, 3), {"stride": 2, "padding": 1, "output_padding": 1, "groups": 2}, (2, 4, 5, 4)),
    ("ConvTranspose1d", (3, 2, 4), {"stride": 3, "dilation": 2}, (2, 3, 5)),
])
def test_conv_layers_match_torch(cls, args, kw, shape):
    tm, jm = getattr(torch.nn, cls)(*args, **kw), getattr(jnn, cls)(*args, **kw)
    assert repr(jm) == repr(tm)
    assert [n for n, _ in jm.named_parameters()] == [n for n, _ in tm.named_parameters()]
    copy_state(tm, jm)
    x = _rand(*shape)
    tx, jx = x.clone().requires_grad_(), to_j(x, True)
    t_out, j_out = tm(tx), jm(jx)
    assert_close(j_out, t_out)
    backward_both(t_out, j_out)
    assert_close(jx.grad, tx.grad)
    assert_param_grads(tm, jm)


def test_conv_transpose2d_output_size_and_init_ranges():
    tm, jm = torch.nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1), jnn.ConvTranspose2d(3, 2, 3, stride=2, padding=1)
    copy_state(tm, jm)
    x = _rand(1, 3, 4, 4)
    assert_close(jm(to_j(x), output_size=(8, 8)), tm(x, output_size=(8, 8)))
    with pytest.raises(ValueError, match="requested an output size of"):
        jm(to_j(x), output_size=(10, 10))
    conv = jnn.Conv2d(8, 16, 3)
    bound = 1 / np.sqrt(8 * 9)
    assert float(conv.weight.abs().amax()) <= bound and float(conv.bias.abs().amax()) <= bound


@pytest.mark.parametrize("tm,jm,shape", [
    (torch.nn.MaxPool2d(3, 2, 1, ceil_mode=True), jnn.MaxPool2d(3, 2, 1, ceil_mode=True), (2, 3, 7, 6)),
    (torch.nn.MaxPool1d(2), jnn.MaxPool1d(2), (2, 3, 7)),
    (torch.nn.AvgPool2d(2, 1, 1, count_include_pad=False), jnn.AvgPool2d(2, 1, 1, count_include_pad=False),
     (2, 3, 5, 5)),
    (torch.nn.AvgPool1d(3, 2), jnn.AvgPool1d(3, 2), (2, 3, 8)),
    (torch.nn.AdaptiveAvgPool2d((2, 3)), jnn.AdaptiveAvgPool2d((2, 3)), (2, 3, 7, 6)),
    (torch.nn.AdaptiveMaxPool2d(3), jnn.AdaptiveMaxPool2d(3), (2, 3, 7, 6)),
    (torch.nn.AdaptiveAvgPool1d(4), jnn.AdaptiveAvgPool1d(4), (2, 3, 9)),
    (torch.nn.AdaptiveMaxPool1d(2), jnn.AdaptiveMaxPool1d(2), (2, 3, 9)),
])
def test_pool_layers_match_torch(tm, jm, shape):
    assert repr(jm) == repr(tm)
    _parity(tm, jm, [_rand(*shape)])


def test_small_cnn_trains_like_torch():
    """A conv -> relu -> pool -> linear stack: the loss and every parameter gradient agree with torch."""
    tnet = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                               torch.nn.Conv2d(4, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Linear(4, 3))
    jnet = jnn.Sequential(jnn.Conv2d(1, 4, 3, padding=1), jnn.ReLU(), jnn.MaxPool2d(2), jnn.Conv2d(4, 4, 3),
                          jnn.AdaptiveAvgPool2d(1), jnn.Flatten(), jnn.Linear(4, 3))
    copy_state(tnet, jnet)
    x, y = _rand(4, 1, 8, 8), torch.tensor([0, 2, 1, 0])
    tl = F.cross_entropy(tnet(x), y)
    jl = jnn.functional.cross_entropy(jnet(to_j(x)), to_j(y))
    assert_close(jl, tl)
    tl.backward()
    jl.backward()
    assert_param_grads(tnet, jnet)


# -- finite differences (float64, tiny sizes) ---------------------------------------------------------------------
def _d(*shape, seed=0):
    return jitorch.from_numpy(np.random.default_rng(seed).standard_normal(shape)).requires_grad_()


GRADCHECKS = {
    "conv2d": (lambda x, w: N.conv2d(x, w, None, 2, 1, (1, 2), 2), [(1, 4, 5, 5), (2, 2, 2, 3)]),
    "conv2d_same": (lambda x, w: N.conv2d(x, w, padding="same"), [(1, 1, 4, 3), (2, 1, 2, 2)]),
    "conv_transpose2d": (lambda x, w: N.conv_transpose2d(x, w, None, 2, 1, 1), [(1, 2, 2, 3), (2, 1, 3, 2)]),
    "unfold": (lambda x: N.unfold(x, 2, padding=1, stride=2), [(1, 2, 3, 3)]),
    "fold": (lambda x: N.fold(x, (3, 3), 2, padding=1, stride=2), [(1, 4, 4)]),
    "max_pool2d": (lambda x: N.max_pool2d(x, 2, 1, 1), [(1, 2, 3, 3)]),
    "avg_pool2d": (lambda x: N.avg_pool2d(x, 2, 1, 1, True, False), [(1, 2, 3, 3)]),
    "adaptive_avg": (lambda x: N.adaptive_avg_pool2d(x, (2, 3)), [(1, 2, 3, 4)]),
    "adaptive_max": (lambda x: N.adaptive_max_pool2d(x, 2), [(1, 1, 3, 4)]),
    "bilinear": (lambda x: N.interpolate(x, size=(4, 3), mode="bilinear"), [(1, 1, 3, 2)]),
    "bicubic": (lambda x: N.interpolate(x, scale_factor=1.5, mode="bicubic", align_corners=True), [(1, 1, 2, 3)]),
}


@pytest.mark.parametrize("name", sorted(GRADCHECKS))
def test_gradcheck(name):
    fn, shapes = GRADCHECKS[name]
    inputs = [_d(*s, seed=k) for k, s in enumerate(shapes)]
    assert jitorch.autograd.gradcheck(fn, tuple(inputs))


@pytest.mark.parametrize("name", ["conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "bilinear"])
def test_gradgradcheck(name):
    fn, shapes = GRADCHECKS[name]
    inputs = [_d(*s, seed=k) for k, s in enumerate(shapes)]
    assert jitorch.autograd.gradgradcheck(fn, tuple(inputs))


def test_double_backward_matches_torch():
    """d/dx of sum(grad_w(conv)^2): needs the im2col/col2im adjoint pair to be differentiable."""
    x, wt = _rand(1, 2, 5, 5, dtype=torch.float64), _rand(3, 2, 3, 3, seed=1, dtype=torch.float64)
    res = []
    for lib, fn, (a, b) in ((torch, F.conv2d, (x.clone().requires_grad_(), wt.clone().requires_grad_())),
                            (jitorch, N.conv2d, (to_j(x, True), to_j(wt, True)))):
        out = fn(a, b, None, 2, 1)
        gw, = lib.autograd.grad((out * out).sum(), [b], create_graph=True)
        (gw * gw).sum().backward()
        res.append(a.grad)
    assert_close(res[1], res[0], 1e-9, 1e-9)


# -- errors -------------------------------------------------------------------------------------------------------------
ERRORS = [
    (lambda m: m.conv2d(m.zeros(2, 4, 8, 8), m.zeros(8, 3, 3, 3)),
     ("Given groups=1, weight of size [8, 3, 3, 3], expected input[2, 4, 8, 8] to have 3 channels, but got 4 "
     "channels instead")),
    (lambda m: m.conv2d(m.zeros(2, 3, 2, 2), m.zeros(8, 3, 3, 3)),
     "Calculated padded input size per channel: (2 x 2). Kernel size: (3 x 3). Kernel size can't be greater"),
    (lambda m: m.conv2d(m.zeros(2, 4, 8, 8), m.zeros(6, 2, 3, 3), groups=4),
     "Given groups=4, expected weight to be divisible by 4 at dimension 0"),
    (lambda m: m.conv2d(m.zeros(3, 8), m.zeros(8, 3, 3, 3)),
     "Expected 3D (unbatched) or 4D (batched) input to conv2d, but got input of size: [3, 8]"),
    (lambda m: m.conv2d(m.zeros(1, 3, 8, 8), m.zeros(8, 3, 3, 3), stride=0), "non-positive stride is not supported"),
    (lambda m: m.conv2d(m.zeros(1, 3, 8, 8), m.zeros(8, 3, 3, 3), padding=-1), "negative padding is not supported"),
    (lambda m: m.conv2d(m.zeros(1, 3, 8, 8), m.zeros(8, 3, 3, 3), padding="same", stride=2),
     "padding='same' is not supported for strided convolutions"),
    (lambda m: m.conv2d(m.zeros(1, 3, 8, 8), m.zeros(8, 3, 3, 3), bias=m.zeros(7)),
     "expected bias to be 1-dimensional with 8 elements, but got bias of size [7] instead"),
    (lambda m: m.conv2d(m.zeros(1, 3, 8, 8, dtype=m.float64), m.zeros(8, 3, 3, 3)),
     "expected scalar type Double but found Float"),
    (lambda m: m.conv_transpose2d(m.zeros(1, 3, 4, 4), m.zeros(3, 2, 3, 3), stride=2, output_padding=2),
     "output padding must be smaller than either stride or dilation"),
    (lambda m: m.conv_transpose2d(m.zeros(1, 4, 4, 4), m.zeros(3, 2, 3, 3)),
     "Given transposed=1, weight of size [3, 2, 3, 3], expected input[1, 4, 4, 4] to have 3 channels"),
    (lambda m: m.max_pool2d(m.zeros(1, 1, 4, 4), 3, padding=2),
     "pad should be at most half of effective kernel size, but got pad=2, kernel_size=3 and dilation=1"),
    (lambda m: m.max_pool2d(m.zeros(1, 1, 2, 2), 3),
     "Given input size: (1x2x2). Calculated output size: (1x0x0). Output size is too small"),
    (lambda m: m.avg_pool2d(m.zeros(1, 1, 2, 2), 3), "Output size is too small"),
    (lambda m: m.max_pool2d(m.zeros(4, 4), 2), "non-empty 3D or 4D (batch mode) tensor expected for input"),
    (lambda m: m.avg_pool2d(m.zeros(1, 1, 4, 4), 2, divisor_override=0), "divisor must be not zero"),
    (lambda m: m.adaptive_avg_pool2d(m.zeros(1, 1, 0, 4), 2),
     "adaptive_avg_pool2d(): Expected input to have non-zero size for non-batch dimensions"),
    (lambda m: m.unfold(m.zeros(1, 1, 3, 3), 5), "calculated shape of the array of sliding blocks as (-1, -1)"),
    (lambda m: m.fold(m.zeros(1, 8, 4), (4, 4), 3),
     "Expected size of input's dimension 1 to be divisible by the product of kernel_size"),
    (lambda m: m.fold(m.zeros(1, 9, 5), (4, 4), 3),
     "expected size of input's dimension 2 to match the calculated number of sliding blocks 2 * 2 = 4"),
]


@pytest.mark.parametrize("k", range(len(ERRORS)))
def test_errors_match_torch(k):
    fn, msg = ERRORS[k]

    class _M:  # the same call spelled against either library
        def __init__(self, lib, fmod):
            self.lib, self.f = lib, fmod

        def __getattr__(self, name):
            return getattr(self.f, name, None) or getattr(self.lib, name)

    with pytest.raises(RuntimeError) as t_err:
        fn(_M(torch, F))
    assert msg in str(t_err.value)
    with pytest.raises(RuntimeError) as j_err:
        fn(_M(jitorch, N))
    assert msg in str(j_err.value)


def test_interpolate_argument_errors():
    x = jitorch.zeros(1, 1, 3, 3)
    with pytest.raises(ValueError, match="either size or scale_factor should be defined"):
        N.interpolate(x)
    with pytest.raises(ValueError, match="only one of size or scale_factor should be defined"):
        N.interpolate(x, size=5, scale_factor=2)
    with pytest.raises(ValueError, match="align_corners option can only be set"):
        N.interpolate(x, size=5, align_corners=True)
    with pytest.raises(NotImplementedError, match="Got 3D input, but bilinear mode needs 4D input"):
        N.interpolate(jitorch.zeros(1, 1, 3), size=5, mode="bilinear")
    with pytest.raises(ValueError, match="Input and output must have the same number of spatial dimensions"):
        N.interpolate(x, size=(2,))


def test_layer_argument_errors():
    with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
        jnn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        jnn.Conv2d(3, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="Invalid padding string 'full'"):
        jnn.Conv2d(3, 4, 3, padding="full")
    with pytest.raises(ValueError, match='Only "zeros" padding mode is supported for ConvTranspose2d'):
        jnn.ConvTranspose2d(3, 4, 3, padding_mode="reflect")


@pytest.mark.slow
def test_parallel_kernels_on_large_inputs():
    """Sizes above the threading threshold take the prange drivers; results must not change."""
    x, wt = _rand(8, 16, 40, 40), _rand(16, 16, 3, 3, seed=1)
    _parity(lambda a, b: F.conv2d(a, b, padding=1), lambda a, b: N.conv2d(a, b, padding=1), [x, wt], 1e-3, 1e-3)
    _parity(lambda a: F.max_pool2d(a, 3, 2, 1), lambda a: N.max_pool2d(a, 3, 2, 1), [x])
    _parity(lambda a: F.avg_pool2d(a, 3, 2, 1), lambda a: N.avg_pool2d(a, 3, 2, 1), [x])
    _parity(lambda a: F.adaptive_avg_pool2d(a, 7), lambda a: N.adaptive_avg_pool2d(a, 7), [x])
    _parity(lambda a: F.adaptive_max_pool2d(a, 7), lambda a: N.adaptive_max_pool2d(a, 7), [x])
    _parity(lambda a: F.interpolate(a, scale_factor=2, mode="bilinear"),
            lambda a: N.interpolate(a, scale_factor=2, mode="bilinear"), [x])
