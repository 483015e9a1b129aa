"""CUDA kernels of the ``nn.functional`` primitives of ``jitorch/nn/_ops.py``: embedding (+ backward),
the gather/scatter of ``nll_loss`` (what ``cross_entropy`` runs on), and padding.

Embedding rows and padding maps are advanced-indexing gathers (``ops_index``);
their adjoints accumulate with atomics (float16 in float32).  ``nll_gather``
and ``nll_scatter`` give one thread per (sample, position): each writes one
element, so the scatter needs no atomics.

Embedding indices and class targets on the device are checked on the device
(``device_checks``): an out-of-range one is skipped (its output is 0) and
reported, and the host raises at its next synchronization.
"""
from __future__ import annotations

import numpy as np
from numba import cuda

from ...nn import _ops as _nn_ops  # noqa: F401 - the ops must exist before their impls
from ...ops.registry import impl
from . import device_checks
from .array import empty
from .copy import copy_into
from .device_checks import report
from .ops_index import _AdvView, gather_rows
from .typed_kernels import (
    Kernel,
    contiguous,
    device,
    finish,
    flat,
    work_dtype,
    zeros,
)

I64 = np.dtype(np.int64)


# -- embedding --------------------------------------------------------------------------------------------------
device_checks.set_message("embedding", "index out of range in self (index {value}, num_embeddings {bound})")
device_checks.set_message("nll_loss", "Target {value} is out of bounds (classes: {bound}).")


@impl("embedding", "cuda")
def _embedding_cuda(weight, indices, padding_idx):
    return gather_rows(weight, (0,), (device(indices, I64),), "embedding", False)


def _embedding_backward(g, idx, dim, padding_idx, nrows, out, claim, rec, report_code, total):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < total:
        r = idx[t // dim]
        if r < 0 or r >= nrows:
            report(claim, rec, r, nrows, report_code)
        elif r != padding_idx:
            cuda.atomic.add(out, r * dim + t % dim, g[t])
        t += step


_K_EMBEDDING_BWD = Kernel(_embedding_backward)


@impl("embedding_backward", "cuda")
def _embedding_backward_cuda(grad, indices, num_weights, padding_idx):
    dim = grad.shape[-1]
    work = work_dtype(grad.dtype)
    out = zeros((num_weights, dim), work)
    g = contiguous(grad, work)
    if g.size:
        claim, rec = device_checks.buffers()
        _K_EMBEDDING_BWD.over(g.size, flat(g), flat(device(indices, I64)), dim,
                              -1 if padding_idx is None else padding_idx, int(num_weights), flat(out), claim, rec,
                              device_checks.code(device_checks.site("embedding")), g.size)
    return finish(out, grad.dtype)


# -- negative log likelihood ------------------------------------------------------------------------------------
def _nll_gather(x, target, weight, has_weight, C, K, ignore_index, out, claim, rec, report_code, total):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < total:
        k = t % K
        n = t // K
        c = target[t]
        if c == ignore_index:
            out[t] = 0
        elif c < 0 or c >= C:
            report(claim, rec, c, C, report_code)
            out[t] = 0
        else:
            v = x[(n * C + c) * K + k]
            out[t] = -(weight[c] * v) if has_weight else -v
        t += step


def _nll_scatter(g, target, weight, has_weight, C, K, ignore_index, out, claim, rec, report_code, total):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < total:
        c = target[t]
        if c != ignore_index:
            if c < 0 or c >= C:
                report(claim, rec, c, C, report_code)
            else:
                v = g[t]
                out[((t // K) * C + c) * K + t % K] = -(weight[c] * v) if has_weight else -v
        t += step


_K_NLL_GATHER = Kernel(_nll_gather)
_K_NLL_SCATTER = Kernel(_nll_scatter)


def _nll_run(kernel, src, target, weight, c: int, k: int, ignore_index, out, total: int):
    """``kernel`` over the ``total`` (sample, position) pairs, reading ``src`` and writing ``out``."""
    if total:
        w = empty((1,), src.dtype) if weight is None else contiguous(weight, src.dtype)
        claim, rec = device_checks.buffers()
        kernel.over(total, flat(contiguous(src)), flat(device(target, I64)), flat(w), weight is not None, c, k,
                    int(ignore_index), flat(out), claim, rec,
                    device_checks.code(device_checks.site("nll_loss")), total)
    return out


@impl("nll_gather", "cuda")
def _nll_gather_cuda(x, target, weight, ignore_index):
    n, c, k = x.shape
    return _nll_run(_K_NLL_GATHER, x, target, weight, c, k, ignore_index, empty((n, k), x.dtype), n * k)


@impl("nll_scatter", "cuda")
def _nll_scatter_cuda(g, target, weight, shape, ignore_index):
    _, c, k = shape
    return _nll_run(_K_NLL_SCATTER, g, target, weight, c, k, ignore_index, zeros(tuple(shape), g.dtype), g.size)


# -- padding ------------------------------------------------------------------------------------------------------
@impl("pad_constant", "cuda")
def _pad_constant_cuda(x, widths, value, region):
    shape = tuple(n + b + a for n, (b, a) in zip(x.shape, widths))
    out = empty(shape, x.dtype)
    if out.size:
        out.fill(value)
        if x.size:
            copy_into(out[tuple(region)], x)
    return out


@impl("pad_gather", "cuda")
def _pad_gather_cuda(x, maps):
    for d, idx in maps:
        x = gather_rows(x, (d,), (idx,), "pad")
    return contiguous(x)


@impl("pad_scatter", "cuda")
def _pad_scatter_cuda(g, maps, shape):
    work = work_dtype(g.dtype)
    cur = contiguous(g, work)
    sizes = list(g.shape)
    for d, idx in reversed(maps):
        sizes[d] = shape[d]
        out = zeros(tuple(sizes), work)
        _AdvView(out, (d,), (idx,)).scatter(cur, True)
        cur = out
    return finish(cur, g.dtype)
