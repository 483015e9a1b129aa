"""CUDA im2col/col2im, pooling, resampling and shape kernels compared with the CPU implementations."""
from __future__ import annotations

import numpy as np
import pytest
from _cuda_kernel_helpers import assert_same, fast_sim_threads  # noqa: F401

import jitorch
import jitorch.nn.functional as F
from jitorch.ops.nn_ops import Geom
from jitorch.ops.registry import OPS
from jitorch.runtime.cuda import array as A

RNG = np.random.default_rng(3)
X = RNG.standard_normal((2, 3, 5, 6)).astype(np.float32)
G = Geom(3, 2, 2, 1, 1, 0, 1, 2, 3, 4)  # kh kw sh sw ph pw dh dw oh ow


@pytest.mark.parametrize("channel_major", [False, True])
def test_im2col_and_col2im(channel_major):
    assert_same("im2col", X, geom=G, in_hw=(5, 6), channel_major=channel_major, exact=True)
    cols = OPS["im2col"].impl["cpu"](X, G, (5, 6), channel_major)
    assert_same("col2im", RNG.standard_normal(cols.shape).astype(np.float32), geom=G, in_hw=(5, 6),
                channel_major=channel_major)
    assert_same("im2col", X.astype(np.float16), geom=G, in_hw=(5, 6), channel_major=channel_major, exact=True)


def test_max_pooling_with_nan():
    x = X.copy()
    x[0, 0, 1, 1] = np.nan
    assert_same("max_pool2d_with_indices", x, k=(2, 3), s=(2, 1), p=(1, 1), d=(1, 2), out_hw=(3, 2), exact=True)
    assert_same("adaptive_max_pool2d", x, out_hw=(3, 4), exact=True)


@pytest.mark.parametrize("include_pad,divisor", [(True, 0), (False, 0), (True, 5)])
def test_average_pooling_and_backward(include_pad, divisor):
    attrs = {"k": (3, 2), "s": (2, 2), "p": (1, 1), "include_pad": include_pad, "divisor": divisor, "in_hw": (5, 6), "out_hw": (3, 4)}
    assert_same("avg_pool2d", X, **attrs)
    assert_same("avg_pool2d_backward", RNG.standard_normal((2, 3, 3, 4)), **attrs)


def test_adaptive_average_pooling():
    assert_same("adaptive_avg_pool2d", X, in_hw=(5, 6), out_hw=(3, 4))
    assert_same("adaptive_avg_pool2d_backward", RNG.standard_normal((2, 3, 3, 4)).astype(np.float32), in_hw=(5, 6),
                out_hw=(3, 4))
    assert_same("adaptive_avg_pool2d", X.astype(np.float16), in_hw=(5, 6), out_hw=(2, 7), rtol=1e-3, atol=1e-3)


def test_plane_gather_and_scatter_add():
    idx = RNG.integers(0, 30, (6, 7))
    assert_same("plane_gather", X.reshape(6, 30), idx, exact=True)
    assert_same("plane_scatter_add", RNG.standard_normal((6, 7)).astype(np.float32), idx, size=30)


@pytest.mark.parametrize("modes,align", [(("linear", "linear"), False), (("linear", "linear"), True),
                                         (("nearest", "nearest"), False), (("cubic", "cubic"), False)])
def test_resample_and_adjoint(modes, align):
    attrs = {"modes": modes, "in_hw": (5, 6), "out_hw": (7, 4), "align_corners": align, "scales": (None, None)}
    assert_same("resample2d", X, **attrs)
    assert_same("resample2d_adjoint", RNG.standard_normal((2, 3, 7, 4)).astype(np.float32), **attrs)


def test_shape_ops():
    assert_same("cat", X, X[:, :1], dim=1, exact=True)
    assert_same("cat", np.zeros((0,), np.float32), X, dim=2, exact=True)  # torch skips legacy 1-D empties
    assert_same("cat", X[0].astype(np.int64), X[1], dim=0, exact=True)  # mixed dtypes promote
    assert_same("stack", X, X * 2, dim=2, exact=True)
    assert_same("flip", X, dims=(1, 3), exact=True)
    assert_same("flip", X, dims=(), exact=True)
    assert_same("roll", X, shifts=(2, -1, 1), dims=(3, 1, 3), exact=True)
    pieces = OPS["split_with_sizes"].impl["cuda"](A.from_host(X), dim=3, sizes=(2, 4))
    for got, want in zip(pieces, np.split(X, [2], axis=3)):
        np.testing.assert_array_equal(got.to_host(), want)
    rows = OPS["unbind"].impl["cuda"](A.from_host(X), dim=1)
    np.testing.assert_array_equal(rows[2].to_host(), X[:, 2])


def test_conv_pool_interpolate_tensors_and_gradients_match_cpu():
    x, w = jitorch.randn(2, 3, 6, 6), jitorch.randn(4, 3, 3, 3)
    outs = []
    for dev in ("cpu", "cuda"):
        xt, wt = x.detach().to(dev).requires_grad_(), w.detach().to(dev).requires_grad_()
        y = F.conv2d(xt, wt, padding=1, stride=2)
        z = F.max_pool2d(y, 2) .sum() + F.avg_pool2d(y, 2, ceil_mode=True).sum() + \
            F.interpolate(y, scale_factor=2, mode="bilinear").pow(2).sum() + F.adaptive_avg_pool2d(y, 1).sum()
        z.backward()
        outs.append([t.detach().cpu().numpy() for t in (y, z, xt.grad, wt.grad)])
    for a, b in zip(*outs):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)
