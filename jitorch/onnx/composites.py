"""Convolutions captured as one graph node while exporting.

jitorch has no convolution primitive: ``conv2d`` runs ``im2col`` and one
matmul (a 1x1 convolution skips im2col), and ``conv_transpose2d`` a matmul
and ``col2im``.  An ONNX consumer wants a ``Conv``/``ConvTranspose`` node,
and recovering one from the reshapes around the matmul would be guesswork.
So during export the functional entry points are wrapped: the primitives they
record are replaced by a single composite node whose attributes are the
convolution's arguments.  The wrapped functions still run for real, so
shapes and results are exactly eager's.
"""
from __future__ import annotations

import contextlib

import numpy as np

from .. import _dispatch


class CompositeOp:
    """A registry-like op for a captured composite (``name``, ``kind``, a cpu ``impl``).

    The impl, which calls the original jitorch function, lets the compiler's
    constant folding evaluate the node when every input is a constant.
    """

    kind = "kernel"
    differentiable = False
    n_outputs = 1

    def __init__(self, name: str, run):
        self.name = name
        self.impl = {"cpu": run}

    def __repr__(self) -> str:
        return f"CompositeOp({self.name})"


def _ntuple(v, n: int) -> tuple:
    if isinstance(v, (int, np.integer)):
        return (int(v),) * n
    vals = tuple(int(x) for x in v)
    return vals * n if len(vals) == 1 else vals


def _conv_pads(nd, padding, kernel, dilation):
    """ONNX ``pads`` (all begins, then all ends) of a torch ``padding`` argument."""
    if isinstance(padding, str):
        if padding == "valid":
            return [0] * (2 * nd)
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]  # 'same': the extra pixel goes at the end
        return [t // 2 for t in total] + [t - t // 2 for t in total]
    p = _ntuple(padding, nd)
    return list(p) + list(p)


def _run_with(fn_1d: str, fn_2d: str):
    def run(x, w, b=None, **attrs):
        from .. import no_grad
        from .._dtype import from_numpy
        from .._tensor import wrap
        from ..ops import nn_ops
        fn = getattr(nn_ops, fn_1d if attrs["nd"] == 1 else fn_2d)
        t = [None if a is None else wrap(a, from_numpy(a.dtype)) for a in (x, w, b)]
        with no_grad():
            return fn(*t, **attrs["call"])._data
    return run


CONV = CompositeOp("convolution", _run_with("conv1d", "conv2d"))
CONV_TRANSPOSE = CompositeOp("conv_transpose", _run_with("conv_transpose1d", "conv_transpose2d"))


def _collapsing(tracer):
    return tracer if tracer is not None and hasattr(tracer, "collapse_since") else None


def _wrap_conv(orig):
    def conv_nd(nd, input, weight, bias, stride, padding, dilation, groups, name):
        tracer = _collapsing(_dispatch._tracer)
        mark = tracer.mark() if tracer is not None else 0
        out = orig(nd, input, weight, bias, stride, padding, dilation, groups, name)
        if tracer is not None:
            kernel = tuple(weight.shape[2:])
            dil = _ntuple(dilation, nd)
            attrs = {"nd": nd, "stride": _ntuple(stride, nd), "pads": _conv_pads(nd, padding, kernel, dil),
                     "dilation": dil, "groups": int(groups), "unbatched": input.ndim == nd + 1,
                     "call": {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}}
            tracer.collapse_since(mark, CONV, [input, weight, bias], attrs, out)
        return out
    return conv_nd


def _wrap_conv_transpose(orig):
    def conv_transpose_nd(nd, input, weight, bias, stride, padding, output_padding, groups, dilation, name):
        tracer = _collapsing(_dispatch._tracer)
        mark = tracer.mark() if tracer is not None else 0
        out = orig(nd, input, weight, bias, stride, padding, output_padding, groups, dilation, name)
        if tracer is not None:
            p = _ntuple(padding, nd)
            attrs = {"nd": nd, "stride": _ntuple(stride, nd), "pads": list(p) + list(p),
                     "output_padding": _ntuple(output_padding, nd), "dilation": _ntuple(dilation, nd),
                     "groups": int(groups), "unbatched": input.ndim == nd + 1,
                     "call": {"stride": stride, "padding": padding, "output_padding": output_padding,
                              "groups": groups, "dilation": dilation}}
            tracer.collapse_since(mark, CONV_TRANSPOSE, [input, weight, bias], attrs, out)
        return out
    return conv_transpose_nd


_WRAPPERS = (("_conv_nd", _wrap_conv), ("_conv_transpose_nd", _wrap_conv_transpose))


@contextlib.contextmanager
def composites_recorded():
    """Within the block, convolutions record one composite node each (for the export tracer only)."""
    from ..ops import nn_ops
    saved = []
    for attr, wrapper in _WRAPPERS:
        orig = getattr(nn_ops, attr, None)
        if orig is None:  # the convolution code moved: its primitives are lowered one by one instead
            continue
        saved.append((attr, orig))
        setattr(nn_ops, attr, wrapper(orig))
    try:
        yield
    finally:
        for attr, orig in saved:
            setattr(nn_ops, attr, orig)
