"""Neural-network primitives: convolution (im2col + BLAS) and fold/unfold.

As a composite, convolution is ``im2col`` (a Numba kernel that lays every
receptive field out as a column, threaded over ``N*C`` planes for large
inputs) followed by one ``matmul`` (a single BLAS GEMM for the whole batch),
so its gradients come from the rules of those two ops: ``im2col`` and
``col2im`` are each other's adjoint, hence each other's derivative rule, and
double backward works with no extra code.  That is what captures, CUDA and
strided convolutions run.  A transposed convolution is the input-gradient of a
convolution: ``matmul`` then ``col2im``.

Eager stride-1 convolutions of CPU float tensors take the primitive
``conv2d_direct`` instead (``ops.eager_fast``): direct loops for filters with
few taps, padded-pitch columns + BLAS for the rest, one backward primitive for
all three gradients; its rule replays the composite under ``create_graph``.

Pooling and interpolation live in ``pool_ops`` and ``resample_ops``; this
module re-exports their functional entry points so that ``nn.functional`` can
import everything from one place.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import _dtype as D
from .._dispatch import apply
from .._tensor import Tensor
from ..amp.autocast_mode import state as _amp
from ..amp.policy import cast_inputs
from ..autograd import grad_mode
from ..runtime import blas, parallel
from ..runtime import conv_kernels as K
from ..runtime import direct_conv_kernels as DK
from .eager_fast import cpu_float_eager
from .registry import impl, kernel_op


# -- geometry ------------------------------------------------------------------------------------
class Geom(NamedTuple):
    """Sliding-window geometry of a 2-D im2col: kernel, stride, top/left pad, dilation, block grid."""

    kh: int
    kw: int
    sh: int
    sw: int
    ph: int
    pw: int
    dh: int
    dw: int
    oh: int
    ow: int


def _pair(v, n: int, name: str, fn: str = "convolution") -> tuple:
    """``v`` (int or sequence) as an ``n``-tuple of ints, with torch's complaint otherwise."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return (int(v),) * n
    vals = tuple(int(x) for x in v)
    if len(vals) == 1:
        return vals * n
    if len(vals) != n:
        raise RuntimeError(f"expected {name} to be a single integer value or a list of {n} values to match the "
                           f"{fn} dimensions, but got {name}={list(vals)}")
    return vals


def _float_like(arr: np.ndarray) -> np.ndarray:
    # Numba has no float16 arithmetic on the CPU: run half tensors through float32
    return arr.astype(np.float32) if arr.dtype == np.float16 else arr


def _planes(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> contiguous (N*C, H, W) view or copy."""
    n, c, h, w = x.shape
    return np.ascontiguousarray(_float_like(x)).reshape(n * c, h, w)


# -- im2col / col2im primitives -----------------------------------------------------------------------
# Columns come in two layouts: batch-major (N, C*kh*kw, L), what F.unfold returns, and channel-major
# (C*kh*kw, N, L), which makes a convolution a single 2-D GEMM (NumPy's matmul is slow when one
# operand is broadcast over a batch, so ``W @ cols[n]`` per image would not do).
def _im2col_vjp(c, g):
    a = c.attrs
    return (col2im_raw(g, a["geom"], a["in_hw"], a["channel_major"]),)


def _col2im_vjp(c, g):
    return (im2col_raw(g, c.attrs["geom"], c.attrs["channel_major"]),)


IM2COL = kernel_op("im2col", vjp=_im2col_vjp, saves="none", node_name="Im2ColBackward0")
COL2IM = kernel_op("col2im", vjp=_col2im_vjp, saves="none", node_name="Col2ImBackward0")


def _cols_view(cols: np.ndarray, n: int, c: int, kk: int, channel_major: bool) -> np.ndarray:
    """The (N, C, kh*kw, L) view of a column array of either layout."""
    if channel_major:
        return cols.reshape(c, kk, n, -1).transpose(2, 0, 1, 3)
    return cols.reshape(n, c, kk, -1)


@impl("im2col")
def _im2col_cpu(x, geom: Geom, in_hw, channel_major):
    n, c = x.shape[:2]
    g = geom
    kk, length = g.kh * g.kw, g.oh * g.ow
    dt = _float_like(x[:0]).dtype
    out = np.empty((c * kk, n, length) if channel_major else (n, c * kk, length), dtype=dt)
    if out.size:
        src = np.ascontiguousarray(_float_like(x))
        run = K.im2col_par if K.use_parallel(n * c, out.size) else K.im2col_ser
        run(src, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.oh, g.ow, _cols_view(out, n, c, kk, channel_major))
    return out.astype(x.dtype) if out.dtype != x.dtype else out


@impl("col2im")
def _col2im_cpu(cols, geom: Geom, in_hw, channel_major):
    g = geom
    kk = g.kh * g.kw
    n, c = (cols.shape[1], cols.shape[0] // kk) if channel_major else (cols.shape[0], cols.shape[1] // kk)
    h, w = in_hw
    src = np.ascontiguousarray(_float_like(cols))
    out = np.zeros((n, c, h, w), dtype=src.dtype)
    if src.size and out.size:
        run = K.col2im_par if K.use_parallel(n * c, src.size) else K.col2im_ser
        run(_cols_view(src, n, c, kk, channel_major), g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.oh, g.ow,
            out)
    return out.astype(cols.dtype) if out.dtype != cols.dtype else out


def im2col_raw(x: Tensor, geom: Geom, channel_major: bool = False) -> Tensor:
    """(N, C, H, W) -> columns (N, C*kh*kw, oh*ow), or (C*kh*kw, N, oh*ow) if ``channel_major``."""
    return apply(IM2COL, [x], {"geom": geom, "in_hw": tuple(x.shape[2:]), "channel_major": channel_major})


def col2im_raw(cols: Tensor, geom: Geom, in_hw, channel_major: bool = False) -> Tensor:
    """Columns of either layout -> (N, C, H, W), summing overlapping entries."""
    return apply(COL2IM, [cols], {"geom": geom, "in_hw": tuple(in_hw), "channel_major": channel_major})


def _out_len(n: int, k: int, s: int, p_lo: int, p_hi: int, d: int) -> int:
    return (n + p_lo + p_hi - d * (k - 1) - 1) // s + 1


# -- convolution ----------------------------------------------------------------------------------------
def _check_conv_args(nd, stride, padding, dilation, groups, weight, transposed=False):
    stride = _pair(stride, nd, "stride")
    dilation = _pair(dilation, nd, "dilation")
    if any(s <= 0 for s in stride):
        raise RuntimeError("non-positive stride is not supported")
    if any(d <= 0 for d in dilation):
        raise RuntimeError(f"dilation should be greater than zero, but got {list(dilation)}")
    if not isinstance(padding, str):
        padding = _pair(padding, nd, "padding")
        if any(p < 0 for p in padding):
            raise RuntimeError("negative padding is not supported")
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")
    if weight.shape[0] % groups and not transposed:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, "
                           f"but got weight of size [{list(weight.shape)}] instead")
    return stride, padding, dilation


def _check_dtypes(input, weight, bias):
    if input.dtype is not weight.dtype:
        raise RuntimeError(f"expected scalar type {_tname(input.dtype)} but found {_tname(weight.dtype)}")
    if bias is not None and bias.dtype is not input.dtype:
        raise RuntimeError(f"Input type ({_short(input.dtype)}) and bias type ({_short(bias.dtype)}) should be "
                           "the same")


def _tname(dt) -> str:
    return D.type_word(dt)


def _short(dt) -> str:
    return {"float32": "float", "float64": "double", "float16": "c10::Half", "bfloat16": "c10::BFloat16"}.get(
        dt.name, dt.name)


def _batchify(input: Tensor, nd: int, name: str):
    """Add the batch dim to an unbatched input; returns (tensor, was_unbatched)."""
    if input.ndim == nd + 1:
        return input.unsqueeze(0), True
    if input.ndim != nd + 2:
        raise RuntimeError(f"Expected {nd + 1}D (unbatched) or {nd + 2}D (batched) input to {name}, but got "
                           f"input of size: {list(input.shape)}")
    return input, False


def _same_padding(k, d):
    total = d * (k - 1)
    return total // 2, total - total // 2


def _conv_nd(nd, input, weight, bias, stride, padding, dilation, groups, name):
    if _amp.active:
        input, weight, bias = cast_inputs(name, input, weight, bias)
    if not isinstance(input, Tensor) or not isinstance(weight, Tensor):
        raise TypeError(f"{name}() expected Tensor arguments for input and weight")
    x, unbatched = _batchify(input, nd, name)
    if weight.ndim != nd + 2:
        raise RuntimeError(f"Expected {nd + 2}-dimensional weight for {nd + 2}-dimensional input "
                           f"{list(x.shape)}, but got {weight.ndim}-dimensional weight of size "
                           f"{list(weight.shape)} instead")
    stride, padding, dilation = _check_conv_args(nd, stride, padding, dilation, groups, weight)
    ks = tuple(weight.shape[2:])
    if isinstance(padding, str):
        if padding == "valid":
            pads = [(0, 0)] * nd
        elif padding == "same":
            if any(s != 1 for s in stride):
                raise RuntimeError("padding='same' is not supported for strided convolutions")
            pads = [_same_padding(k, d) for k, d in zip(ks, dilation)]
        else:
            raise RuntimeError(f"Invalid padding string: '{padding}'")
    else:
        pads = [(p, p) for p in padding]
    cin = weight.shape[1] * groups
    if x.shape[1] != cin:
        raise RuntimeError(f"Given groups={groups}, weight of size {list(weight.shape)}, expected "
                           f"input{list(x.shape)} to have {cin} channels, but got {x.shape[1]} channels instead")
    if bias is not None and (bias.ndim != 1 or bias.shape[0] != weight.shape[0]):
        raise RuntimeError(f"Given weight of size {list(weight.shape)}, expected bias to be 1-dimensional with "
                           f"{weight.shape[0]} elements, but got bias of size {list(bias.shape)} instead")
    _check_dtypes(x, weight, bias)
    spatial = tuple(x.shape[2:])
    padded = [n + lo + hi for n, (lo, hi) in zip(spatial, pads)]
    eff = [d * (k - 1) + 1 for k, d in zip(ks, dilation)]
    if any(p < e for p, e in zip(padded, eff)):
        raise RuntimeError(f"Calculated padded input size per channel: ({' x '.join(map(str, padded))}). "
                           f"Kernel size: ({' x '.join(map(str, eff))}). Kernel size can't be greater than actual "
                           "input size")
    if nd == 1:  # a 1-D convolution is a 2-D one over a height-1 image
        x, weight = x.unsqueeze(2), weight.unsqueeze(2)
        ks, stride, dilation, pads, spatial = (1,) + ks, (1,) + stride, (1,) + dilation, [(0, 0)] + pads, \
            (1,) + spatial
    out = _conv2d_core(x, weight, bias, ks, stride, pads, dilation, groups, spatial)
    if nd == 1:
        out = out.squeeze(2)
    return out.squeeze(0) if unbatched else out


def _conv2d_core(x, weight, bias, ks, stride, pads, dilation, groups, spatial):
    if stride == (1, 1) and use_direct_conv(x, weight, bias):
        return conv2d_direct(x, weight, bias, pads, dilation, groups)
    return _conv2d_im2col(x, weight, bias, ks, stride, pads, dilation, groups, spatial)


def _conv2d_im2col(x, weight, bias, ks, stride, pads, dilation, groups, spatial):
    n, c = x.shape[0], x.shape[1]
    o = weight.shape[0]
    oh = _out_len(spatial[0], ks[0], stride[0], pads[0][0], pads[0][1], dilation[0])
    ow = _out_len(spatial[1], ks[1], stride[1], pads[1][0], pads[1][1], dilation[1])
    if ks == (1, 1) and stride == (1, 1) and pads == [(0, 0), (0, 0)]:
        # a 1x1 convolution needs no im2col: the image already is the column matrix
        cols = x.reshape(n, c, oh * ow).transpose(0, 1).reshape(c, n * oh * ow)
    else:
        geom = Geom(ks[0], ks[1], stride[0], stride[1], pads[0][0], pads[1][0], dilation[0], dilation[1], oh, ow)
        cols = im2col_raw(x, geom, channel_major=True).reshape(c * ks[0] * ks[1], n * oh * ow)
    if groups == 1:
        out = weight.reshape(o, -1) @ cols  # one GEMM for the whole batch
    else:
        out = weight.reshape(groups, o // groups, -1) @ cols.reshape(groups, -1, n * oh * ow)
    # (O, N*L) -> (N, O, L): the bias add, when there is one, doubles as the layout copy
    out = out.reshape(o, n, oh * ow).transpose(0, 1)
    if bias is not None:
        out = out + bias.reshape(1, o, 1)
    return out.reshape(n, o, oh, ow)


# -- stride-1 convolution as one primitive (eager CPU fast path, see ``eager_fast`` and
# ``runtime.direct_conv_kernels``): measured 1.8-2.6x faster than im2col + matmul, forward and
# backward, from LeNet's layers up to 64->64 channel 3x3 ones.
def use_direct_conv(x, weight, bias) -> bool:
    return cpu_float_eager(x, weight, bias)


def _conv_direct_vjp(c, g):
    x, w, b = c.inputs
    a = c.attrs
    need = c.needs_input_grad
    want = (bool(need[0]), bool(need[1]), b is not None and bool(need[2]))
    if grad_mode.is_grad_enabled():  # create_graph: differentiate the composite, exact to any order
        return _replay_conv_grads(c, g, want)
    gx, gw, gb = apply(CONV2D_DIRECT_BACKWARD, [g, x, w], dict(a, want=want))
    return gx if want[0] else None, gw if want[1] else None, gb if want[2] else None


def _replay_conv_grads(c, g, want):
    import jitorch as J
    x, w, b = c.inputs
    a = c.attrs
    ks = tuple(w.shape[2:])
    y = _conv2d_im2col(x, w, b, ks, (1, 1), [tuple(p) for p in a["pads"]], a["dilation"], a["groups"],
                       tuple(x.shape[2:]))
    inputs = [t for t, k in zip((x, w, b), want) if k]
    got = iter(J.autograd.grad([y], inputs, [g], create_graph=True, allow_unused=True)) if inputs else iter(())
    return tuple(next(got) if k else None for k in want)


CONV2D_DIRECT = kernel_op("conv2d_direct", nin=3, vjp=_conv_direct_vjp, node_name="ConvolutionBackward0")
CONV2D_DIRECT_BACKWARD = kernel_op("conv2d_direct_backward", nin=3, n_outputs=3, differentiable=False)


def _padded(x: np.ndarray, pads) -> np.ndarray:
    """(N, C, Hp*Wp) contiguous zero-padded copy of x (x itself, flattened, without padding)."""
    (pt, pb), (pl, pr) = pads
    n, c, h, w = x.shape
    if pt == pb == pl == pr == 0:
        return np.ascontiguousarray(x).reshape(n, c, h * w)
    hp, wp = h + pt + pb, w + pl + pr
    xp = np.empty((n, c, hp, wp), dtype=x.dtype)
    DK.pad_planes(np.ascontiguousarray(x), pt, pl, xp)
    return xp.reshape(n, c, hp * wp)


def _direct_geometry(x_shape, w_shape, pads, dilation):
    (pt, pb), (pl, pr) = pads
    hp, wp = x_shape[2] + pt + pb, x_shape[3] + pl + pr
    return hp, wp, hp - dilation[0] * (w_shape[2] - 1), wp - dilation[1] * (w_shape[3] - 1)


def _shared(task_range, n_tasks: int, work: int) -> None:
    """``task_range(t0, t1)`` over ``range(n_tasks)``, in a few chunks shared with the helper thread."""
    chunks = parallel.split(n_tasks, 4)
    parallel.run_chunks(lambda k: task_range(*chunks[k]), len(chunks), work)


# a filter with at most this many taps per output (input channels per group * kh * kw) runs the direct
# loops; more taps go through columns + BLAS (measured on LeNet's layers: 25 taps 2x faster as loops,
# 150 taps 1.3x faster as columns)
DIRECT_LOOP_TAPS = 48


def _group_gemm(a: np.ndarray, b: np.ndarray, out: np.ndarray, groups: int) -> None:
    """out[g] = a[g] @ b[g] for each group (a leading group axis on every operand).

    A wide product is split by output columns between this thread and the helper
    (``runtime.parallel``), each half one single-threaded BLAS call.
    """
    m, k, n = a.shape[1], a.shape[2], b.shape[2]
    # a product big enough for all of OpenBLAS's threads stays whole (more cores than two halves use)
    share = groups == 1 and n >= 256 and m * k * n < blas.SINGLE_THREAD_FLOPS
    parts = parallel.split(n, 2) if share else [(0, n)]
    blas.prepare(a[0], b[0][:, :parts[0][1]])
    if len(parts) == 1:
        for g in range(groups):
            np.matmul(a[g], b[g], out=out[g])
        return
    parallel.run_chunks(lambda i: np.matmul(a[0], b[0][:, parts[i][0]:parts[i][1]],
                                            out=out[0][:, parts[i][0]:parts[i][1]]), len(parts), m * k * n)


def _sum_gemm(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """out = a @ b for a long inner dimension: two halves of it (this thread and the helper), then summed."""
    k = a.shape[1]
    share = k >= 512 and a.shape[0] * k * b.shape[1] < blas.SINGLE_THREAD_FLOPS
    parts = parallel.split(k, 2) if share else [(0, k)]
    blas.prepare(a[:, :parts[0][1]], b[:parts[0][1]])
    if len(parts) == 1:
        np.matmul(a, b, out=out)
        return
    partial = np.empty((2,) + out.shape, dtype=out.dtype)
    parallel.run_chunks(lambda i: np.matmul(a[:, parts[i][0]:parts[i][1]], b[parts[i][0]:parts[i][1]],
                                            out=partial[i]), 2, a.shape[0] * k * b.shape[1])
    np.add(partial[0], partial[1], out=out)


@impl("conv2d_direct")
def _conv2d_direct_cpu(x, w, b, pads, dilation, groups):
    n, c, o = x.shape[0], x.shape[1], w.shape[0]
    kh, kw = w.shape[2], w.shape[3]
    _, wp, oh, ow = _direct_geometry(x.shape, w.shape, pads, dilation)
    out = np.empty((n, o, oh * ow), dtype=x.dtype)
    if out.size:
        xp = _padded(x, pads)
        wc = np.ascontiguousarray(w)
        bias = b if b is not None else wc[:, 0, 0, 0]
        if wc[0].size <= DIRECT_LOOP_TAPS:
            _shared(lambda t0, t1: DK.conv_forward(xp, wc, bias, b is not None, groups, dilation[0], dilation[1],
                                                   wp, oh, ow, out, t0, t1), n * o, out.size * wc[0].size)
        else:
            length = (oh - 1) * wp + ow
            cols = np.empty((c * kh * kw, n, length), dtype=x.dtype)
            DK.build_cols(xp, kh, kw, dilation[0], dilation[1], wp, length, cols)
            full = np.empty((o, n, length), dtype=x.dtype)
            _group_gemm(wc.reshape(groups, o // groups, -1), cols.reshape(groups, -1, n * length),
                        full.reshape(groups, o // groups, n * length), groups)
            DK.crop_bias(full, bias, b is not None, wp, oh, ow, out)
    return out.reshape(n, o, oh, ow)


@impl("conv2d_direct_backward")
def _conv2d_direct_backward_cpu(g, x, w, pads, dilation, groups, want):
    n, c, o = x.shape[0], x.shape[1], w.shape[0]
    kh, kw = w.shape[2], w.shape[3]
    hp, wp, oh, ow = _direct_geometry(x.shape, w.shape, pads, dilation)
    length = (oh - 1) * wp + ow
    wc = np.ascontiguousarray(w)
    gc = np.ascontiguousarray(g)
    sums = np.zeros(o, dtype=np.float64)
    gx = gw = gb = np.empty(0, dtype=x.dtype)
    gxp = np.zeros((n, c, hp * wp), dtype=x.dtype) if want[0] else None
    if want[1]:
        gw = np.empty(wc.shape, dtype=x.dtype)
    if wc[0].size <= DIRECT_LOOP_TAPS:
        gsp = np.empty((n, o, oh * wp), dtype=x.dtype)  # g on the padded row pitch
        DK.spread_rows(gc, wp, gsp, sums)
        work = g.size * wc[0].size
        if want[0]:
            _shared(lambda n0, n1: DK.conv_input_grad(gsp, wc, groups, dilation[0], dilation[1], wp, oh, ow, gxp,
                                                      n0, n1), n, work)
        if want[1]:
            xp = _padded(x, pads)
            _shared(lambda t0, t1: DK.conv_weight_grad(gsp, xp, groups, dilation[0], dilation[1], wp, oh, ow, gw,
                                                       t0, t1), o * wc.shape[1], work)
    else:
        og, taps = o // groups, wc[0].size
        gt = np.empty((o, n, length), dtype=x.dtype)  # (O, N, L): the GEMMs' layout
        DK.spread_rows_t(gc, wp, gt, sums)
        gt_g = gt.reshape(groups, og, n * length)
        w_g = wc.reshape(groups, og, taps)
        if want[1]:
            cols = np.empty((c * kh * kw, n, length), dtype=x.dtype)
            DK.build_cols(_padded(x, pads), kh, kw, dilation[0], dilation[1], wp, length, cols)
            cols_g = cols.reshape(groups, taps, n * length)
            gw_t = np.empty((groups, taps, og), dtype=x.dtype)  # computed transposed: BLAS runs it faster
            for gi in range(groups):
                _sum_gemm(cols_g[gi], gt_g[gi].T, gw_t[gi])
            gw.reshape(groups, og, taps)[...] = gw_t.transpose(0, 2, 1)
        if want[0]:
            gcols = np.empty((c * kh * kw, n, length), dtype=x.dtype)
            _group_gemm(w_g.transpose(0, 2, 1), gt_g, gcols.reshape(groups, taps, n * length), groups)
            DK.scatter_cols(gcols, kh, kw, dilation[0], dilation[1], wp, length, gxp)
    if want[0]:
        gx = np.empty(x.shape, dtype=x.dtype)
        DK.crop_planes(gxp.reshape(n, c, hp, wp), pads[0][0], pads[1][0], gx)
    if want[2]:
        gb = sums.astype(x.dtype)
    return gx, gw, gb


def conv2d_direct(x: Tensor, weight: Tensor, bias: Tensor | None, pads, dilation, groups: int) -> Tensor:
    """Stride-1 2-D convolution of a batched input by the direct kernels (arguments already checked)."""
    return apply(CONV2D_DIRECT, [x, weight, bias], {"pads": tuple(tuple(p) for p in pads),
                                                     "dilation": tuple(dilation), "groups": int(groups)})


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    """1-D convolution over ``(N, C, L)`` (or unbatched ``(C, L)``), like ``torch.nn.functional.conv1d``."""
    return _conv_nd(1, input, weight, bias, stride, padding, dilation, groups, "conv1d")


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    """2-D convolution over ``(N, C, H, W)`` (or ``(C, H, W)``): im2col + one batched matmul.

    ``padding`` may be an int, a pair, ``'valid'`` or ``'same'`` (stride 1 only).
    """
    return _conv_nd(2, input, weight, bias, stride, padding, dilation, groups, "conv2d")


def _conv_transpose_nd(nd, input, weight, bias, stride, padding, output_padding, groups, dilation, name):
    if _amp.active:
        input, weight, bias = cast_inputs(name, input, weight, bias)
    x, unbatched = _batchify(input, nd, name)
    if weight.ndim != nd + 2:
        raise RuntimeError(f"Expected {nd + 2}-dimensional weight for {nd + 2}-dimensional input "
                           f"{list(x.shape)}, but got {weight.ndim}-dimensional weight of size "
                           f"{list(weight.shape)} instead")
    if isinstance(padding, str):
        raise TypeError(f"{name}(): argument 'padding' must be tuple of ints, not str")
    stride, padding, dilation = _check_conv_args(nd, stride, padding, dilation, groups, weight, transposed=True)
    out_pad = _pair(output_padding, nd, "output_padding")
    if any(op >= s and op >= d for op, s, d in zip(out_pad, stride, dilation)) or any(op < 0 for op in out_pad):
        names = ("height", "width") if nd == 2 else ("width",)
        raise RuntimeError("output padding must be smaller than either stride or dilation, but got " +
                           " ".join(f"output_padding_{a}: {v}" for a, v in zip(names, out_pad)) + " " +
                           " ".join(f"stride_{a}: {v}" for a, v in zip(names, stride)) + " " +
                           " ".join(f"dilation_{a}: {v}" for a, v in zip(names, dilation)))
    if x.shape[1] != weight.shape[0]:
        raise RuntimeError(f"Given transposed=1, weight of size {list(weight.shape)}, expected input"
                           f"{list(x.shape)} to have {weight.shape[0]} channels, but got {x.shape[1]} channels "
                           "instead")
    if weight.shape[0] % groups:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, "
                           f"but got weight of size [{list(weight.shape)}] instead")
    cout = weight.shape[1] * groups
    if bias is not None and (bias.ndim != 1 or bias.shape[0] != cout):
        raise RuntimeError(f"Given transposed=1, weight of size {list(weight.shape)}, expected bias to be "
                           f"1-dimensional with {cout} elements, but got bias of size {list(bias.shape)} instead")
    _check_dtypes(x, weight, bias)
    ks = tuple(weight.shape[2:])
    spatial = tuple(x.shape[2:])
    out_sz = [(n - 1) * s - 2 * p + d * (k - 1) + op + 1
              for n, s, p, d, k, op in zip(spatial, stride, padding, dilation, ks, out_pad)]
    if any(v <= 0 for v in out_sz):
        raise RuntimeError(f"Given input size per channel: ({' x '.join(map(str, spatial))}). Calculated output "
                           f"size per channel: ({' x '.join(map(str, out_sz))}). Output size is too small")
    if nd == 1:
        x, weight = x.unsqueeze(2), weight.unsqueeze(2)
        ks, stride, padding, dilation, spatial, out_sz = ((1,) + ks, (1,) + stride, (0,) + padding,
                                                          (1,) + dilation, (1,) + spatial, [1] + out_sz)
    n, cin, h, w = x.shape
    kk = ks[0] * ks[1]
    cg = cin // groups
    xs = x.reshape(n, cin, h * w).transpose(0, 1).reshape(cin, n * h * w)
    if groups == 1:
        cols = weight.reshape(cin, cout * kk).t() @ xs
    else:
        wg = weight.reshape(groups, cg, (cout // groups) * kk).transpose(1, 2)
        cols = (wg @ xs.reshape(groups, cg, n * h * w)).reshape(cout * kk, n * h * w)
    geom = Geom(ks[0], ks[1], stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1], h, w)
    out = col2im_raw(cols.reshape(cout * kk, n, h * w), geom, out_sz, channel_major=True)
    if bias is not None:
        out = out + bias.reshape(1, cout, 1, 1)
    if nd == 1:
        out = out.squeeze(2)
    return out.squeeze(0) if unbatched else out


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1) -> Tensor:
    """Transposed 1-D convolution (the input-gradient of ``conv1d``)."""
    return _conv_transpose_nd(1, input, weight, bias, stride, padding, output_padding, groups, dilation,
                              "conv_transpose1d")


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1) -> Tensor:
    """Transposed 2-D convolution: ``weight^T @ x`` then col2im (the input-gradient of ``conv2d``).

    ``weight`` has shape ``(C_in, C_out / groups, kH, kW)``, as in torch.
    """
    return _conv_transpose_nd(2, input, weight, bias, stride, padding, output_padding, groups, dilation,
                              "conv_transpose2d")


# -- unfold / fold (torch.nn.functional) ------------------------------------------------------------------
def unfold(input, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """Extract sliding blocks: ``(N, C, H, W) -> (N, C*kH*kW, L)`` (im2col as an op)."""
    x, unbatched = input, False
    if x.ndim == 3:
        x, unbatched = x.unsqueeze(0), True
    elif x.ndim != 4:
        raise RuntimeError(f"Input Error: Only 3D or 4D input Tensors are supported (got {input.ndim}D)")
    k = _pair(kernel_size, 2, "kernel_size", "im2col")
    d = _pair(dilation, 2, "dilation", "im2col")
    p = _pair(padding, 2, "padding", "im2col")
    s = _pair(stride, 2, "stride", "im2col")
    _check_window(k, d, p, s)
    h, w = x.shape[2:]
    oh, ow = _out_len(h, k[0], s[0], p[0], p[0], d[0]), _out_len(w, k[1], s[1], p[1], p[1], d[1])
    if oh < 1 or ow < 1:
        raise RuntimeError(f"Given input with spatial size ({h}, {w}), kernel_size=({k[0]}, {k[1]}), dilation="
                           f"({d[0]}, {d[1]}), padding=({p[0]}, {p[1]}), calculated shape of the array of sliding "
                           f"blocks as ({oh}, {ow}), but its components must be at least one.")
    out = im2col_raw(x, Geom(k[0], k[1], s[0], s[1], p[0], p[1], d[0], d[1], oh, ow))
    return out.squeeze(0) if unbatched else out


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """Combine sliding blocks back into an image, summing overlaps (col2im as an op)."""
    x, unbatched = input, False
    if x.ndim == 2:
        x, unbatched = x.unsqueeze(0), True
    elif x.ndim != 3:
        raise RuntimeError(f"Input Error: Only unbatched (2D) or batched (3D) input Tensors are supported "
                           f"(got {input.ndim}D)")
    osz = _pair(output_size, 2, "output_size", "col2im")
    k = _pair(kernel_size, 2, "kernel_size", "col2im")
    d = _pair(dilation, 2, "dilation", "col2im")
    p = _pair(padding, 2, "padding", "col2im")
    s = _pair(stride, 2, "stride", "col2im")
    _check_window(k, d, p, s)
    kk = k[0] * k[1]
    if x.shape[1] % kk:
        raise RuntimeError(f"Expected size of input's dimension 1 to be divisible by the product of kernel_size, "
                           f"but got input.size(1)={x.shape[1]} and kernel_size=({k[0]}, {k[1]}).")
    oh, ow = _out_len(osz[0], k[0], s[0], p[0], p[0], d[0]), _out_len(osz[1], k[1], s[1], p[1], p[1], d[1])
    if oh < 1 or ow < 1 or x.shape[2] != oh * ow:
        raise RuntimeError(f"Given output_size=({osz[0]}, {osz[1]}), kernel_size=({k[0]}, {k[1]}), dilation="
                           f"({d[0]}, {d[1]}), padding=({p[0]}, {p[1]}), stride=({s[0]}, {s[1]}), expected size "
                           f"of input's dimension 2 to match the calculated number of sliding blocks {oh} * {ow} = "
                           f"{oh * ow}, but got input.size(2)={x.shape[2]}.")
    out = col2im_raw(x, Geom(k[0], k[1], s[0], s[1], p[0], p[1], d[0], d[1], oh, ow), osz)
    return out.squeeze(0) if unbatched else out


def _check_window(k, d, p, s):
    if any(v <= 0 for v in k):
        raise RuntimeError(f"kernel size should be greater than zero, but got kernel_height: {k[0]} "
                           f"kernel_width: {k[1]}")
    if any(v <= 0 for v in s):
        raise RuntimeError(f"stride should be greater than zero, but got stride_height: {s[0]} stride_width: {s[1]}")
    if any(v <= 0 for v in d):
        raise RuntimeError(f"dilation should be greater than zero, but got dilation_height: {d[0]} "
                           f"dilation_width: {d[1]}")
    if any(v < 0 for v in p):
        raise RuntimeError(f"padding should be non-negative, but got pad_height: {p[0]} pad_width: {p[1]}")


from .pool_ops import (  # noqa: F401
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_max_pool1d,
    adaptive_max_pool2d,
    avg_pool1d,
    avg_pool2d,
    max_pool1d,
    max_pool1d_with_indices,
    max_pool2d,
    max_pool2d_with_indices,
    max_unpool2d,
)
from .resample_ops import interpolate as _interpolate
from .resample_ops import upsample, upsample_bilinear, upsample_nearest  # noqa: F401


def interpolate(input: Tensor, size=None, scale_factor=None, mode: str = "nearest", align_corners=None,
                recompute_scale_factor=None, antialias: bool = False) -> Tensor:
    """Resize ``(N, C, L)`` or ``(N, C, H, W)`` by ``size`` or ``scale_factor``, like torch (see
    ``resample_ops.interpolate``); under CUDA autocast in float32, as torch's upsample ops."""
    if _amp.active:
        input = cast_inputs("interpolate", input)
    return _interpolate(input, size, scale_factor, mode, align_corners, recompute_scale_factor, antialias)

# names for ``jitorch.nn.functional`` (and, where torch has them, ``jitorch.<name>``)
FUNCTIONAL = ("conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "unfold", "fold",
              "max_pool1d", "max_pool2d", "max_pool1d_with_indices", "max_pool2d_with_indices", "max_unpool2d",
              "avg_pool1d", "avg_pool2d", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool1d",
              "adaptive_max_pool2d", "interpolate", "upsample", "upsample_nearest", "upsample_bilinear")
# ``__all__`` holds only the names torch also has at top level (``torch.conv2d``...)
__all__ = [
    "adaptive_avg_pool1d",
    "avg_pool1d",
    "conv1d",
    "conv2d",
    "conv_transpose1d",
    "conv_transpose2d",
    "max_pool1d",
    "max_pool2d",
]
