"""Convolution, pooling, padding, resampling and im2col/col2im -> ONNX."""
from __future__ import annotations

import numpy as np

from ..builder import np_dtype
from ..symbolic_shapes import is_static
from . import lowers


# -- convolution (composite nodes recorded by ``onnx.composites``) ----------------------------------------
def _batched(ctx, node, name):
    return ctx.b.unsqueeze(name, [0]) if node.attrs["unbatched"] else name


def _unbatched(ctx, node, name):
    return ctx.b.squeeze(name, [0]) if node.attrs["unbatched"] else name


@lowers("convolution")
def lower_convolution(ctx, node):
    x, w, bias = node.inputs
    a = node.attrs
    ins = [_batched(ctx, node, ctx.name(x)), ctx.name(w)] + ([ctx.name(bias)] if bias is not None else [])
    y = ctx.b.op("Conv", ins, kernel_shape=list(w.shape[2:]), strides=list(a["stride"]), pads=list(a["pads"]),
                 dilations=list(a["dilation"]), group=a["groups"])
    return _unbatched(ctx, node, y)


@lowers("conv_transpose")
def lower_conv_transpose(ctx, node):
    x, w, bias = node.inputs
    a = node.attrs
    ins = [_batched(ctx, node, ctx.name(x)), ctx.name(w)] + ([ctx.name(bias)] if bias is not None else [])
    y = ctx.b.op("ConvTranspose", ins, kernel_shape=list(w.shape[2:]), strides=list(a["stride"]),
                 pads=list(a["pads"]), dilations=list(a["dilation"]), group=a["groups"],
                 output_padding=list(a["output_padding"]))
    return _unbatched(ctx, node, y)


# -- im2col / col2im (F.unfold / F.fold, and convolutions when they were not recorded whole) -------------
def _one_hot_kernel(c: int, kh: int, kw: int, dtype) -> np.ndarray:
    """(C*kh*kw, 1, kh, kw) weights whose channel c*kk + i*kw + j picks tap (i, j) of input channel c."""
    kk = kh * kw
    w = np.zeros((c * kk, 1, kh, kw), dtype=np_dtype(dtype))
    for ch in range(c):
        for i in range(kh):
            for j in range(kw):
                w[ch * kk + i * kw + j, 0, i, j] = 1
    return w


@lowers("im2col", dynamic_attrs=("geom", "in_hw"))
def lower_im2col(ctx, node):
    x, out = node.inputs[0], node.outputs[0]
    g, channel_major = node.attrs["geom"], node.attrs["channel_major"]
    c = ctx.shape(x)[1]
    if not is_static(c):
        raise ctx.dynamic_error("the channel count must be fixed")
    weight = ctx.b.const(_one_hot_kernel(int(c), g.kh, g.kw, out.dtype))
    cols = ctx.b.op("Conv", [ctx.name(x), weight], kernel_shape=[g.kh, g.kw], strides=[g.sh, g.sw],
                    pads=[g.ph, g.pw, g.ph, g.pw], dilations=[g.dh, g.dw], group=int(c))
    s = ctx.shape(out)
    batch_major = (s[1], s[0], s[2]) if channel_major else s
    cols = ctx.reshape(cols, (), batch_major)
    return ctx.b.op("Transpose", [cols], perm=[1, 0, 2]) if channel_major else cols


@lowers("col2im")
def lower_col2im(ctx, node):
    cols, out = node.inputs[0], node.outputs[0]
    g, channel_major = node.attrs["geom"], node.attrs["channel_major"]
    n, c, h, w = ctx.static_shape(out, "col2im")
    y = ctx.name(cols)
    if channel_major:
        y = ctx.b.op("Transpose", [y], perm=[1, 0, 2])
    kk = g.kh * g.kw
    y = ctx.b.op("Reshape", [y, ctx.b.i64([n, c * kk, g.oh, g.ow])])
    weight = ctx.b.const(_one_hot_kernel(c, g.kh, g.kw, out.dtype))
    # output_padding makes up the rows/columns no window reaches, so the result is exactly (h, w)
    reach_h = (g.oh - 1) * g.sh - 2 * g.ph + g.dh * (g.kh - 1) + 1
    reach_w = (g.ow - 1) * g.sw - 2 * g.pw + g.dw * (g.kw - 1) + 1
    return ctx.b.op("ConvTranspose", [y, weight], kernel_shape=[g.kh, g.kw], strides=[g.sh, g.sw],
                    pads=[g.ph, g.pw, g.ph, g.pw], dilations=[g.dh, g.dw], group=c,
                    output_padding=[h - reach_h, w - reach_w])


# -- pooling ---------------------------------------------------------------------------------------------
def _floor_out(n, k, s, p, d) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def _ceil_mode(node, k, s, p, d) -> int:
    """1 when the recorded output is larger than the floor formula gives (ceil_mode=True)."""
    in_hw = node.inputs[0].shape[2:]
    out_hw = node.outputs[0].shape[2:]
    return int(any(o != _floor_out(n, kk, ss, pp, dd) for n, o, kk, ss, pp, dd in zip(in_hw, out_hw, k, s, p, d)))


@lowers("max_pool2d_with_indices", dynamic_attrs=("out_hw",))
def lower_max_pool(ctx, node):
    a = node.attrs
    k, s, p, d = (list(a[key]) for key in ("k", "s", "p", "d"))
    ceil = max(_ceil_mode(n, k, s, p, d) for n in ctx.table.variants(node))
    want_idx = ctx.is_used(node.outputs[1])
    outs = ctx.b.op("MaxPool", [ctx.name(node.inputs[0])], n_out=2 if want_idx else 1, kernel_shape=k, strides=s,
                    pads=p + p, dilations=d, ceil_mode=ceil)
    if not want_idx:
        return [outs, None]
    # ONNX counts indices over the whole (N, C, H, W) tensor; torch within each (H, W) plane
    h, w = ctx.static_shape(node.inputs[0], "max pooling indices")[2:]
    return [outs[0], ctx.b.op("Mod", [outs[1], ctx.b.const(np.asarray(h * w, np.int64))])]


@lowers("avg_pool2d", dynamic_attrs=("in_hw", "out_hw"))
def lower_avg_pool(ctx, node):
    a = node.attrs
    k, s, p = list(a["k"]), list(a["s"]), list(a["p"])
    ceil = max(_ceil_mode(n, k, s, p, [1, 1]) for n in ctx.table.variants(node))
    x = ctx.name(node.inputs[0])
    if not a["divisor"]:
        return ctx.b.op("AveragePool", [x], kernel_shape=k, strides=s, pads=p + p, ceil_mode=ceil,
                        count_include_pad=int(a["include_pad"]))
    if ceil:
        raise ctx.unsupported("divisor_override together with ceil_mode has no lowering")
    mean = ctx.b.op("AveragePool", [x], kernel_shape=k, strides=s, pads=p + p, count_include_pad=1)
    dt = node.outputs[0].dtype
    return ctx.b.op("Mul", [mean, ctx.b.const(np.asarray(k[0] * k[1] / a["divisor"], np_dtype(dt)))])


def _adaptive_matrix(n_in: int, n_out: int, dtype) -> np.ndarray:
    """(n_out, n_in) averaging matrix of adaptive pooling: window [floor(i*n/o), ceil((i+1)*n/o))."""
    m = np.zeros((n_out, n_in), dtype=np.float64)
    for i in range(n_out):
        lo, hi = (i * n_in) // n_out, -(-((i + 1) * n_in) // n_out)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m.astype(np_dtype(dtype))


def _separable(ctx, x: str, mh: np.ndarray, mw: np.ndarray, dtype) -> str:
    """``mh @ x @ mw^T`` over the last two dims: a linear map applied per axis."""
    y = ctx.b.op("MatMul", [ctx.b.const(mh.astype(np_dtype(dtype))), x])
    return ctx.b.op("MatMul", [y, ctx.b.const(np.ascontiguousarray(mw.T).astype(np_dtype(dtype)))])


@lowers("adaptive_avg_pool2d", dynamic_attrs=("in_hw",))
def lower_adaptive_avg(ctx, node):
    x, out = node.inputs[0], node.outputs[0]
    oh, ow = node.attrs["out_hw"]
    if (oh, ow) == (1, 1):
        return ctx.b.op("GlobalAveragePool", [ctx.name(x)])
    h, w = ctx.static_shape(x, "adaptive_avg_pool2d to a size other than 1")[2:]
    if h % oh == 0 and w % ow == 0:
        kh, kw = h // oh, w // ow
        return ctx.b.op("AveragePool", [ctx.name(x)], kernel_shape=[kh, kw], strides=[kh, kw])
    return _separable(ctx, ctx.name(x), _adaptive_matrix(h, oh, out.dtype), _adaptive_matrix(w, ow, out.dtype),
                      out.dtype)


@lowers("adaptive_max_pool2d", dynamic_attrs=())
def lower_adaptive_max(ctx, node):
    x = node.inputs[0]
    if ctx.is_used(node.outputs[1]):
        raise ctx.unsupported("Adaptive max pooling with return_indices=True has no lowering")
    oh, ow = node.attrs["out_hw"]
    if (oh, ow) == (1, 1):
        return [ctx.b.op("GlobalMaxPool", [ctx.name(x)]), None]
    h, w = ctx.static_shape(x, "adaptive_max_pool2d")[2:]
    if h % oh or w % ow:
        raise ctx.unsupported("Adaptive max pooling to a size that does not divide the input has no lowering")
    kh, kw = h // oh, w // ow
    return [ctx.b.op("MaxPool", [ctx.name(x)], kernel_shape=[kh, kw], strides=[kh, kw]), None]


# -- resampling and padding --------------------------------------------------------------------------------------
def _taps_matrix(mode, n_in, n_out, align_corners, scale, dtype) -> np.ndarray:
    """The (n_out, n_in) interpolation matrix of one axis, from the taps the eager kernel uses."""
    from ...ops.resample_ops import _axis_taps
    idx, w = _axis_taps(mode, n_in, n_out, align_corners, scale, np.dtype(np.float64).name)
    m = np.zeros((n_out, n_in), dtype=np.float64)
    for o in range(n_out):
        np.add.at(m[o], idx[o], w[o])
    return m.astype(np_dtype(dtype))


@lowers("resample2d")
def lower_resample(ctx, node):
    x, out = node.inputs[0], node.outputs[0]
    a = node.attrs
    (h, w), (oh, ow) = a["in_hw"], a["out_hw"]
    modes = a["modes"]
    if all(m in ("nearest", "identity") for m in modes) and oh % h == 0 and ow % w == 0:
        # integer nearest upsampling: ONNX Resize picks floor(dst / factor), as the eager kernel does
        scales = ctx.b.const(np.asarray([1, 1, oh // h, ow // w], np.float32))
        return ctx.b.op("Resize", [ctx.name(x), "", scales], mode="nearest",
                        coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    mh = _taps_matrix(modes[0], h, oh, a["align_corners"], a["scales"][0], out.dtype)
    mw = _taps_matrix(modes[1], w, ow, a["align_corners"], a["scales"][1], out.dtype)
    return _separable(ctx, ctx.name(x), mh, mw, out.dtype)


@lowers("pad_constant")
def lower_pad_constant(ctx, node):
    widths = [tuple(int(v) for v in pair) for pair in node.attrs["widths"]]
    pads = ctx.b.i64([lo for lo, _ in widths] + [hi for _, hi in widths])
    dt = node.outputs[0].dtype
    value = ctx.b.const(np.asarray(node.attrs["value"]).astype(np_dtype(dt)))
    return ctx.b.op("Pad", [ctx.name(node.inputs[0]), pads, value], mode="constant")


@lowers("pad_gather")
def lower_pad_gather(ctx, node):
    y = ctx.name(node.inputs[0])
    for d, idx in node.attrs["maps"]:
        y = ctx.b.op("Gather", [y, ctx.b.const(np.asarray(idx, np.int64))], axis=int(d))
    return y
