"""Random fills on the GPU from the counter-based Philox generator (see ``philox``).

Each thread computes one Philox block (four 32-bit words) and writes the
elements that block feeds, so element ``e``'s value depends only on (seed,
offset, e): the grid size never changes the numbers.  One call consumes one
generator offset.  Continuous distributions are transforms of uniforms computed
in float32 for float16/float32 outputs (as torch's CUDA kernels do) and in
float64 for float64 outputs.

The entry points fill a ``CudaArray`` in place (a non-contiguous target is
filled through a contiguous temporary) and leave argument checking to the
front end (``jitorch.ops.random_fill``), which calls them for CUDA tensors.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32, float64, uint64

from . import philox
from .array import CudaArray, empty
from .copy import copy_into
from .typed_kernels import contiguous, flat, kernels

_MASK = 0xFFFFFFFF
UNIFORM, EXPONENTIAL, CAUCHY, GEOMETRIC, BERNOULLI, BERNOULLI_TENSOR = range(6)
NORMAL, LOG_NORMAL = range(2)


@cuda.jit(device=True, inline=True)
def _philox(block, c2, c3, k0, k1):
    """Philox4x32-10 of counter (block lo, block hi, c2, c3) under key (k0, k1); uint64 words of 32 bits."""
    m = uint64(_MASK)
    s = uint64(32)
    c0 = block & m
    c1 = block >> s
    for r in range(10):
        if r > 0:
            k0 = (k0 + uint64(0x9E3779B9)) & m
            k1 = (k1 + uint64(0xBB67AE85)) & m
        p0 = uint64(0xD2511F53) * c0
        p1 = uint64(0xCD9E8D57) * c2
        n0 = (p1 >> s) ^ c1 ^ k0
        n2 = (p0 >> s) ^ c3 ^ k1
        c1 = p1 & m
        c3 = p0 & m
        c0 = n0
        c2 = n2
    return c0, c1, c2, c3


@cuda.jit(device=True, inline=True)
def _words(t, k0, k1, c2, c3):
    """The four words of Philox block ``t`` of the call with key (k0, k1) and counter words (c2, c3)."""
    return _philox(uint64(t), uint64(c2), uint64(c3), uint64(k0), uint64(k1))


@cuda.jit(device=True, inline=True)
def _pick(j, w0, w1, w2, w3):
    if j == 0:
        return w0
    if j == 1:
        return w1
    if j == 2:
        return w2
    return w3


@cuda.jit(device=True, inline=True)
def _u24(w):
    return float32(w >> uint64(8)) * float32(5.9604644775390625e-08)  # [0, 1) from 24 bits


@cuda.jit(device=True, inline=True)
def _u53(hi, lo):
    return (float64(hi >> uint64(5)) * 67108864.0 + float64(lo >> uint64(6))) * 1.1102230246251565e-16


@cuda.jit(device=True, inline=True)
def _transform(u, mode, p1, p2, parr, e):
    """A uniform ``u`` in [0, 1) turned into one draw of distribution ``mode`` (float32 or float64 math)."""
    if mode == UNIFORM:
        return p1 + (p2 - p1) * u
    if mode == EXPONENTIAL:
        return -math.log1p(-u) / p1
    if mode == CAUCHY:
        return p1 + p2 * math.tan(3.141592653589793 * (u - 0.5))
    if mode == GEOMETRIC:
        return max(math.ceil(math.log(1.0 - u) / math.log1p(-p1)), 1.0)
    if mode == BERNOULLI:
        return 1.0 if u < p1 else 0.0
    return 1.0 if u < parr[e] else 0.0


def _fill32(out, n, k0, k1, c2, c3, mode, p1, p2, parr):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    nb = (n + 3) // 4
    a = float32(p1)
    b = float32(p2)
    while t < nb:
        w0, w1, w2, w3 = _words(t, k0, k1, c2, c3)
        for j in range(4):
            e = t * 4 + j
            if e < n:
                out[e] = _transform(_u24(_pick(j, w0, w1, w2, w3)), mode, a, b, parr, e)
                if mode == UNIFORM and out[e] >= b > a:  # rounding reached the open bound
                    out[e] = a
        t += step


def _fill64(out, n, k0, k1, c2, c3, mode, p1, p2, parr):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    nb = (n + 1) // 2
    while t < nb:
        w0, w1, w2, w3 = _words(t, k0, k1, c2, c3)
        e = t * 2
        out[e] = _transform(_u53(w0, w1), mode, p1, p2, parr, e)
        if e + 1 < n:
            out[e + 1] = _transform(_u53(w2, w3), mode, p1, p2, parr, e + 1)
        t += step


@cuda.jit(device=True, inline=True)
def _normal_out(z, mode, mean, std):
    v = mean + std * z
    if mode == LOG_NORMAL:
        return math.exp(v)
    return v


def _normal32(out, n, k0, k1, c2, c3, mode, p1, p2):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    nb = (n + 3) // 4
    mean = float32(p1)
    std = float32(p2)
    two_pi = float32(6.283185307179586)
    while t < nb:
        w0, w1, w2, w3 = _words(t, k0, k1, c2, c3)
        for half in range(2):
            wa = w0 if half == 0 else w2
            wb = w1 if half == 0 else w3
            u1 = float32((wa >> uint64(8)) + uint64(1)) * float32(5.9604644775390625e-08)
            u2 = _u24(wb)
            r = math.sqrt(float32(-2.0) * math.log(u1))
            e = t * 4 + half * 2
            if e < n:
                out[e] = _normal_out(r * math.cos(two_pi * u2), mode, mean, std)
            if e + 1 < n:
                out[e + 1] = _normal_out(r * math.sin(two_pi * u2), mode, mean, std)
        t += step


def _normal64(out, n, k0, k1, c2, c3, mode, p1, p2):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    nb = (n + 1) // 2
    while t < nb:
        w0, w1, w2, w3 = _words(t, k0, k1, c2, c3)
        u1 = 1.0 - _u53(w0, w1)
        u2 = _u53(w2, w3)
        r = math.sqrt(-2.0 * math.log(u1))
        e = t * 2
        out[e] = _normal_out(r * math.cos(6.283185307179586 * u2), mode, p1, p2)
        if e + 1 < n:
            out[e + 1] = _normal_out(r * math.sin(6.283185307179586 * u2), mode, p1, p2)
        t += step


def _integers(out, n, k0, k1, c2, c3, low, span_lo, span_hi):
    """Integers low + (x mod span); x is one word when span <= 2**32, else two words (64 bits)."""
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    span = (uint64(span_hi) << uint64(32)) | uint64(span_lo)
    wide = span_hi > 0 and not (span_hi == 1 and span_lo == 0)
    while t < n:
        w0, w1, _w2, _w3 = _words(t, k0, k1, c2, c3)
        if wide:
            x = ((w0 << uint64(32)) | w1) % span
        else:
            x = w0 % span
        out[t] = low + np.int64(x)
        t += step



_K_FILL32, _K_FILL64, _K_NORMAL32, _K_NORMAL64, _K_INTEGERS = kernels(_fill32, _fill64, _normal32, _normal64, _integers)


# -- running a fill into any target ---------------------------------------------------------------------------
def _target(out: CudaArray, work_dtype=None):
    """(contiguous array the kernel writes, function that stores it into ``out``)."""
    dt = np.dtype(work_dtype) if work_dtype is not None else out.dtype
    if out.flags.c_contiguous and out.dtype == dt:
        return out, lambda: None
    tmp = empty(out.shape, dt)
    return tmp, lambda: copy_into(out, tmp)


def _call(generator):
    seed, off = philox.generator_for(generator).next_call()
    return seed & _MASK, seed >> 32, off & _MASK, off >> 32


def _fill(kernel, out: CudaArray, work, per_thread: int, generator, *params) -> CudaArray:
    """Run fill ``kernel`` (a thread per ``per_thread`` elements) into ``out``, through a contiguous
    ``work``-dtype temporary where ``out`` is not one; one generator call."""
    tgt, store = _target(out, work)
    n = out.size
    k0, k1, c2, c3 = _call(generator)
    kernel.over((n + per_thread - 1) // per_thread, flat(tgt), n, k0, k1, c2, c3, *params)
    store()
    return out


def _uniform_family(out: CudaArray, mode: int, p1: float, p2: float, generator, parr=None) -> CudaArray:
    if out.size == 0:
        return out
    double = out.dtype == np.float64
    work = out.dtype if out.dtype in (np.float16, np.float32, np.float64) else (np.float64 if double else np.float32)
    if mode in (BERNOULLI, BERNOULLI_TENSOR, GEOMETRIC):
        # 0/1 and counts are exact in every dtype: write straight into the target's type (bfloat16's
        # storage holds bit patterns, so it goes through float32 like the other draws)
        work = out.dtype if out.dtype.names is None else np.float32
    if parr is None:
        parr = _dummy(np.float64 if double else np.float32)
    return _fill(_K_FILL64 if double else _K_FILL32, out, work, 2 if double else 4, generator, mode, float(p1),
                 float(p2), parr)


_DUMMIES: dict = {}


def _dummy(dtype) -> CudaArray:
    d = _DUMMIES.get(np.dtype(dtype))
    if d is None:
        d = _DUMMIES[np.dtype(dtype)] = empty((1,), dtype)
    return d


def uniform_(out: CudaArray, a: float = 0.0, b: float = 1.0, generator=None) -> CudaArray:
    """Fill with U(a, b) draws."""
    return _uniform_family(out, UNIFORM, a, b, generator)


def exponential_(out: CudaArray, lambd: float = 1.0, generator=None) -> CudaArray:
    return _uniform_family(out, EXPONENTIAL, lambd, 0.0, generator)


def cauchy_(out: CudaArray, median: float = 0.0, sigma: float = 1.0, generator=None) -> CudaArray:
    return _uniform_family(out, CAUCHY, median, sigma, generator)


def geometric_(out: CudaArray, p: float, generator=None) -> CudaArray:
    return _uniform_family(out, GEOMETRIC, p, 0.0, generator)


def bernoulli_(out: CudaArray, p=0.5, generator=None) -> CudaArray:
    """Fill with 1 where a uniform draw is below ``p`` (a float, or a CudaArray broadcast to ``out``)."""
    if isinstance(p, CudaArray):
        pdt = np.float64 if out.dtype == np.float64 else np.float32
        pfull = empty(out.shape, pdt)
        if out.size:
            from .copy import broadcast_to
            copy_into(pfull, broadcast_to(p, out.shape) if p.shape != out.shape else p)
        return _uniform_family(out, BERNOULLI_TENSOR, 0.0, 0.0, generator, flat(pfull) if out.size else None)
    return _uniform_family(out, BERNOULLI, float(p), 0.0, generator)


def _normal_family(out: CudaArray, mode: int, mean: float, std: float, generator) -> CudaArray:
    if out.size == 0:
        return out
    double = out.dtype == np.float64
    work = out.dtype if out.dtype in (np.float16, np.float32, np.float64) else np.float32
    return _fill(_K_NORMAL64 if double else _K_NORMAL32, out, work, 2 if double else 4, generator, mode,
                 float(mean), float(std))


def normal_(out: CudaArray, mean: float = 0.0, std: float = 1.0, generator=None) -> CudaArray:
    """Fill with N(mean, std**2) draws (Box-Muller)."""
    return _normal_family(out, NORMAL, mean, std, generator)


def log_normal_(out: CudaArray, mean: float = 1.0, std: float = 2.0, generator=None) -> CudaArray:
    return _normal_family(out, LOG_NORMAL, mean, std, generator)


def random_(out: CudaArray, low: int, high: int, generator=None) -> CudaArray:
    """Fill with integers uniform on [low, high) (stored in ``out``'s dtype, float or integer)."""
    if out.size == 0:
        return out
    span = int(high) - int(low)
    if span <= 0:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} >= to={high}")
    span = min(span, (1 << 64) - 1)
    work = np.int64 if out.dtype.kind in "iub" and out.dtype != np.int64 else out.dtype
    return _fill(_K_INTEGERS, out, work, 1, generator, int(low), span & _MASK, span >> 32)


def randperm(n: int, dtype=np.int64, generator=None) -> CudaArray:
    """A random permutation of 0..n-1: the stable argsort of random 64-bit keys."""
    from .ops_sort import argsort_rows
    keys = empty((1, n), np.int64)
    if n:
        random_(keys, -(1 << 62), 1 << 62, generator)
    perm = argsort_rows(keys, descending=False).reshape(n)
    return contiguous(perm, dtype)
