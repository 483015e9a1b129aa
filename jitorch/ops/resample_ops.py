"""``interpolate`` / ``upsample``: nearest, nearest-exact, (bi)linear, bicubic and area.

Every supported mode is separable and linear: output pixel ``(i, j)`` is
``sum_a sum_b wh[i, a] * ww[j, b] * x[hidx[i, a], widx[j, b]]`` with a few
taps per axis (1 for nearest, 2 for linear, 4 for cubic).  So one primitive,
``resample2d``, runs all of them from per-axis tap tables computed with
torch's index formulas, and its adjoint ``resample2d_adjoint`` (a scatter
through the same taps) is both its derivative rule and its inverse's.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from .._dispatch import apply
from .._tensor import Tensor
from ..runtime import conv_kernels as K
from .nn_ops import _planes
from .registry import impl, kernel_op


# -- tap tables (torch's UpSample.h formulas, in the tensor's own precision) ------------------------------
def _scale_value(scale, n_in, n_out, dt):
    return dt(1.0 / scale) if scale is not None and scale > 0 else dt(n_in) / dt(n_out)


def _nearest_taps(n_in, n_out, scale, exact):
    f32 = np.float32
    i = np.arange(n_out)
    if not exact and n_out == n_in:
        src = i
    elif not exact and n_out == 2 * n_in:
        src = i >> 1
    else:
        s = _scale_value(scale, n_in, n_out, f32)
        pos = (i.astype(f32) + f32(0.5)) * s if exact else i.astype(f32) * s
        src = np.minimum(np.floor(pos).astype(np.int64), n_in - 1)
    return src.reshape(-1, 1).astype(np.int64), np.ones((n_out, 1))


def _source_pos(n_in, n_out, align_corners, scale, dt, cubic):
    i = np.arange(n_out).astype(dt)
    if align_corners:
        s = dt(n_in - 1) / dt(n_out - 1) if n_out > 1 else dt(0)
        return s * i
    s = _scale_value(scale, n_in, n_out, dt)
    src = s * (i + dt(0.5)) - dt(0.5)
    return src if cubic else np.maximum(src, dt(0))


def _linear_taps(n_in, n_out, align_corners, scale, dt):
    real = _source_pos(n_in, n_out, align_corners, scale, dt, False)
    i0 = np.minimum(np.floor(real).astype(np.int64), n_in - 1)
    lam = np.clip(real - i0.astype(dt), 0, 1).astype(dt)
    i1 = i0 + (i0 < n_in - 1)
    return np.stack([i0, i1], 1), np.stack([dt(1) - lam, lam], 1)


def _cubic_taps(n_in, n_out, align_corners, scale, dt):
    a = dt(-0.75)
    real = _source_pos(n_in, n_out, align_corners, scale, dt, True)
    i0 = np.floor(real).astype(np.int64)
    t = (real - i0.astype(dt)).astype(dt)

    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    w = np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], 1)
    idx = np.clip(i0[:, None] + np.arange(-1, 3)[None, :], 0, n_in - 1)
    return idx, w


@functools.lru_cache(maxsize=256)
def _axis_taps(mode, n_in, n_out, align_corners, scale, dtype_name):
    dt = np.dtype(dtype_name).type
    if mode in ("nearest", "nearest-exact"):
        idx, w = _nearest_taps(n_in, n_out, scale, mode == "nearest-exact")
    elif mode == "linear":
        idx, w = _linear_taps(n_in, n_out, align_corners, scale, dt)
    elif mode == "cubic":
        idx, w = _cubic_taps(n_in, n_out, align_corners, scale, dt)
    else:  # "identity": an axis that is not resampled (the height of a 1-D signal)
        idx, w = np.arange(n_out).reshape(-1, 1), np.ones((n_out, 1))
    return np.ascontiguousarray(idx, dtype=np.int64), np.ascontiguousarray(w, dtype=dt)


def _taps(modes, in_hw, out_hw, align_corners, scales, dtype):
    name = np.dtype(dtype).name
    th = _axis_taps(modes[0], in_hw[0], out_hw[0], align_corners, scales[0], name)
    tw = _axis_taps(modes[1], in_hw[1], out_hw[1], align_corners, scales[1], name)
    return th + tw


# -- the primitive pair --------------------------------------------------------------------------------------
RESAMPLE = kernel_op("resample2d", saves="none", node_name="UpsampleBackward0",
                     vjp=lambda c, g: (apply(RESAMPLE_ADJOINT, [g], c.attrs),))
RESAMPLE_ADJOINT = kernel_op("resample2d_adjoint", saves="none",
                             vjp=lambda c, g: (apply(RESAMPLE, [g], c.attrs),))


def _run(src, modes, in_hw, out_hw, align_corners, scales, forward):
    n, c = src.shape[:2]
    planes = _planes(src)
    hidx, hw, widx, ww = _taps(modes, in_hw, out_hw, align_corners, scales, planes.dtype)
    shape = out_hw if forward else in_hw
    out = (np.empty if forward else np.zeros)((n * c,) + tuple(shape), dtype=planes.dtype)
    if out.size and planes.size:
        par = K.use_parallel(n * c, max(out.size, planes.size) * hidx.shape[1] * widx.shape[1])
        if forward:
            (K.resample_par if par else K.resample_ser)(planes, hidx, hw, widx, ww, out)
        else:
            (K.resample_adj_par if par else K.resample_adj_ser)(planes, hidx, hw, widx, ww, out)
    out = out.reshape((n, c) + tuple(shape))
    return out.astype(src.dtype) if out.dtype != src.dtype else out


@impl("resample2d")
def _resample_cpu(x, modes, in_hw, out_hw, align_corners, scales):
    return _run(x, modes, in_hw, out_hw, align_corners, scales, True)


@impl("resample2d_adjoint")
def _resample_adj_cpu(g, modes, in_hw, out_hw, align_corners, scales):
    return _run(g, modes, in_hw, out_hw, align_corners, scales, False)


# -- public API ------------------------------------------------------------------------------------------------
_AXIS_MODE = {"nearest": "nearest", "nearest-exact": "nearest-exact", "linear": "linear", "bilinear": "linear",
              "bicubic": "cubic"}
_NEEDS_DIM = {"linear": 3, "bilinear": 4, "bicubic": 4, "trilinear": 5}


def _output_size(input, size, scale_factor, recompute_scale_factor):
    dim = input.ndim - 2
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    if size is not None:
        if isinstance(size, (list, tuple)):
            if len(size) != dim:
                raise ValueError(f"Input and output must have the same number of spatial dimensions, but got input "
                                 f"with spatial dimensions of {list(input.shape[2:])} and output size of {size}. "
                                 "Please provide input tensor in (N, C, d1, d2, ...,dK) format and output size in "
                                 "(o1, o2, ...,oK) format.")
            out = [int(s) for s in size]
        else:
            out = [int(size)] * dim
        return out, [None] * dim
    if scale_factor is None:
        raise ValueError("either size or scale_factor should be defined")
    if isinstance(scale_factor, (list, tuple)):
        if len(scale_factor) != dim:
            raise ValueError(f"Input and scale_factor must have the same number of spatial dimensions, but got input "
                             f"with spatial dimensions of {list(input.shape[2:])} and scale_factor of shape "
                             f"{scale_factor}. Please provide input tensor in (N, C, d1, d2, ...,dK) format and "
                             "scale_factor in (s1, s2, ...,sK) format.")
        scales = [float(s) for s in scale_factor]
    else:
        scales = [float(scale_factor)] * dim
    out = [math.floor(float(input.shape[i + 2]) * scales[i]) for i in range(dim)]
    return out, ([None] * dim if recompute_scale_factor else scales)


def interpolate(input: Tensor, size=None, scale_factor=None, mode: str = "nearest", align_corners=None,
                recompute_scale_factor=None, antialias: bool = False) -> Tensor:
    """Resize ``(N, C, L)`` or ``(N, C, H, W)`` by ``size`` or ``scale_factor``, like torch.

    Modes: ``nearest``, ``nearest-exact``, ``linear`` (3-D), ``bilinear``/``bicubic`` (4-D), ``area``.
    """
    if recompute_scale_factor and size is not None:
        raise ValueError("recompute_scale_factor is not meaningful with an explicit size.")
    if mode in ("nearest", "area", "nearest-exact"):
        if align_corners is not None:
            raise ValueError("align_corners option can only be set with the interpolating modes: "
                             "linear | bilinear | bicubic | trilinear")
    else:
        align_corners = bool(align_corners)
    if antialias:
        raise NotImplementedError("interpolate(antialias=True) is not supported by jitorch")
    need = _NEEDS_DIM.get(mode)
    if need is not None and input.ndim != need:
        raise NotImplementedError(f"Got {input.ndim}D input, but {mode} mode needs {need}D input")
    if input.ndim not in (3, 4) or (mode not in _AXIS_MODE and mode != "area"):
        raise NotImplementedError(
            f"Input Error: Only 3D and 4D input Tensors are supported by jitorch (got {input.ndim}D) for the modes: "
            f"nearest | linear | bilinear | bicubic | area | nearest-exact (got {mode})")
    out_size, scales = _output_size(input, size, scale_factor, recompute_scale_factor)
    if mode == "area":
        from .pool_ops import adaptive_avg_pool1d, adaptive_avg_pool2d
        return (adaptive_avg_pool1d if input.ndim == 3 else adaptive_avg_pool2d)(input, out_size)
    if any(s <= 0 for s in out_size):
        raise RuntimeError(f"Input and output sizes should be greater than 0, but got input "
                           f"({', '.join(map(str, input.shape[2:]))}) and output ({', '.join(map(str, out_size))})")
    axis_mode = _AXIS_MODE[mode]
    if input.ndim == 3:
        x4 = input.unsqueeze(2)
        modes, out_hw, sc = ("identity", axis_mode), (1, out_size[0]), (None, scales[0])
    else:
        x4 = input
        modes, out_hw, sc = (axis_mode, axis_mode), tuple(out_size), tuple(scales)
    attrs = {"modes": modes, "in_hw": tuple(x4.shape[2:]), "out_hw": tuple(out_hw),
             "align_corners": bool(align_corners), "scales": sc}
    out = apply(RESAMPLE, [x4], attrs)
    return out.squeeze(2) if input.ndim == 3 else out


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """Deprecated alias of ``interpolate``."""
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input, size=None, scale_factor=None):
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input, size=None, scale_factor=None):
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


