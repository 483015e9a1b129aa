"""One-call op checks: forward against NumPy float64, against PyTorch (when importable), gradients.

    check_op(lambda a, b: a * b, np.multiply, arr(2, 3), arr(2, 3), dtypes=FLOATS)

``fn`` is called with jitorch tensors and, unless ``torch_fn`` is given, with torch tensors too
(so write it with operators and methods); a string names a function present in both modules.
Array inputs are cast to each dtype under test; ``keep(array)`` and bool arrays keep their dtype;
Python scalars pass through unchanged.  ``np_ref`` receives float64 arrays for floating dtypes and
arrays of the tested dtype otherwise (so integer semantics hold), or ``None`` to skip NumPy.
"""
from __future__ import annotations

import numpy as np

import jitorch

try:
    import torch
except ImportError:  # the NumPy and finite-difference checks still run
    torch = None

FLOATS = (jitorch.float32, jitorch.float64, jitorch.float16)
INTS = (jitorch.int8, jitorch.int16, jitorch.int32, jitorch.int64, jitorch.uint8)
ALL = FLOATS + INTS + (jitorch.bool,)
LAYOUTS = ("contiguous", "transposed", "sliced")

# (rtol, atol) per result dtype; integers and bools compare exactly
TOL = {"float16": (2e-3, 2e-3), "float32": (2e-5, 2e-6), "float64": (1e-9, 1e-12)}

requires_torch = __import__("pytest").mark.skipif(torch is None, reason="torch not installed")


class keep:
    """An array input that is passed with its own dtype (masks, integer exponents...)."""

    def __init__(self, array):
        self.array = np.asarray(array)


def arr(*shape, lo=-2.0, hi=2.0, seed=0):
    """Deterministic uniform float64 samples."""
    return np.random.default_rng(seed).uniform(lo, hi, shape)


def tdtype(dt):
    """The torch dtype with the same name as jitorch dtype ``dt``."""
    return getattr(torch, dt.name)


def make(lib, a, dt=None, layout="contiguous", requires_grad=False):
    """A ``lib`` tensor (lib is jitorch or torch) with ``a``'s values as dtype ``dt`` in ``layout``.

    'transposed' swaps the last two dims of the storage, 'sliced' takes every other element of a
    wider buffer: both are non-contiguous views with the same logical values.
    """
    v = np.asarray(a, dtype=None if dt is None else np.dtype(str(dt).split(".")[-1]))
    if layout == "transposed" and v.ndim >= 2:
        t = lib.from_numpy(np.ascontiguousarray(np.swapaxes(v, -1, -2))).transpose(-1, -2)
    elif layout == "sliced" and v.ndim >= 1:
        buf = np.zeros(v.shape[:-1] + (2 * v.shape[-1],), dtype=v.dtype)
        buf[..., ::2] = v
        t = lib.from_numpy(buf[..., ::2])  # a strided view of a wider buffer (no indexing op needed)
    else:
        t = lib.from_numpy(v.copy())
    if requires_grad:
        t.requires_grad_(True)
    return t


def np_of(t):
    """A float64/bool/int NumPy copy of a jitorch or torch tensor's values."""
    return np.array(t.detach().numpy())


def assert_close(actual, expected, dtype_name, rtol=None, atol=None, what=""):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}shape {actual.shape} != expected {expected.shape}"
    if dtype_name in TOL:
        r, a = TOL[dtype_name]
        np.testing.assert_allclose(actual.astype(np.float64), expected.astype(np.float64),
                                   rtol=rtol if rtol is not None else r, atol=atol if atol is not None else a,
                                   equal_nan=True, err_msg=what)
    else:
        np.testing.assert_array_equal(actual, expected, err_msg=what)


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _args(lib, inputs, dt, layout, requires_grad=False):
    out = []
    for x in inputs:
        if isinstance(x, keep):
            out.append(make(lib, x.array, None, layout))
        elif isinstance(x, np.ndarray):
            kept = x.dtype == np.bool_
            out.append(make(lib, x, None if kept else dt, layout, requires_grad and not kept))
        else:
            out.append(x)
    return out


def _np_args(inputs, dt):
    out = []
    for x in inputs:
        if isinstance(x, keep):
            out.append(x.array)
        elif isinstance(x, np.ndarray) and x.dtype != np.bool_:
            v = x.astype(dt.numpy_dtype)
            out.append(v.astype(np.float64) if dt.is_floating_point else v)
        else:
            out.append(x)
    return out


def _fns(fn, torch_fn):
    if torch_fn is False:  # no torch comparison for this call
        return (getattr(jitorch, fn) if isinstance(fn, str) else fn), None
    if isinstance(fn, str):
        return getattr(jitorch, fn), torch_fn or (getattr(torch, fn) if torch is not None else None)
    return fn, torch_fn or fn


def check_op(fn, np_ref, *inputs, dtypes=(jitorch.float32,), grad=True, torch_fn=None,
             layouts=("contiguous",), out_dtype=None, rtol=None, atol=None):
    """Check ``fn(*inputs)`` for every dtype and layout; then its gradients in float64.

    ``out_dtype``: the expected result dtype, or a callable ``dtype -> dtype`` (used when torch
    is absent; with torch the dtype must equal torch's).  ``grad``: True checks every cast
    input, a tuple of indices checks those, False none.  ``torch_fn=False`` skips torch.
    """
    jfn, tfn = _fns(fn, torch_fn)
    for dt in dtypes:
        for layout in layouts:
            what = f"[{dt.name}, {layout}] "
            outs = _as_tuple(jfn(*_args(jitorch, inputs, dt, layout)))
            if np_ref is not None:
                refs = _as_tuple(np_ref(*_np_args(inputs, dt)))
                for o, r in zip(outs, refs):
                    assert_close(np_of(o), r, o.dtype.name, rtol, atol, what + "vs NumPy: ")
            if out_dtype is not None:
                want = out_dtype(dt) if callable(out_dtype) and not isinstance(out_dtype, jitorch.dtype) \
                    else out_dtype
                assert outs[0].dtype is want, f"{what}dtype {outs[0].dtype} != {want}"
            if torch is not None and tfn is not None:
                touts = _as_tuple(tfn(*_args(torch, inputs, tdtype(dt), layout)))
                for o, t in zip(outs, touts):
                    assert o.dtype.name == str(t.dtype).replace("torch.", ""), \
                        f"{what}dtype {o.dtype} != torch's {t.dtype}"
                    assert tuple(o.shape) == tuple(t.shape), f"{what}shape {tuple(o.shape)} != {tuple(t.shape)}"
                    assert_close(np_of(o), np_of(t), o.dtype.name, rtol, atol, what + "vs torch: ")
    if grad:
        check_grad(jfn, inputs, tfn, which=None if grad is True else grad)


def check_grad(jfn, inputs, tfn=None, which=None):
    """gradcheck in float64, then the same gradients as torch for a random output cotangent."""
    f64 = jitorch.float64
    args = _args(jitorch, inputs, f64, "contiguous", requires_grad=True)
    diff = [i for i, a in enumerate(args) if isinstance(a, jitorch.Tensor) and a.requires_grad]
    if which is not None:
        diff = [i for i in diff if i in which]
        for i, a in enumerate(args):
            if isinstance(a, jitorch.Tensor) and i not in diff:
                a.requires_grad_(False)
    assert diff, "no differentiable input"
    assert jitorch.autograd.gradcheck(jfn, tuple(args), eps=1e-6, atol=1e-5, rtol=1e-3)
    if torch is None or tfn is None:
        return
    targs = _args(torch, inputs, torch.float64, "contiguous", requires_grad=True)
    for i, a in enumerate(targs):
        if isinstance(a, torch.Tensor) and i not in diff:
            a.requires_grad_(False)
    jout, tout = _as_tuple(jfn(*args))[0], _as_tuple(tfn(*targs))[0]
    cot = np.random.default_rng(1).standard_normal(tuple(tout.shape))
    jg = jitorch.autograd.grad(jout, [args[i] for i in diff], jitorch.from_numpy(cot.copy()), allow_unused=True)
    tg = torch.autograd.grad(tout, [targs[i] for i in diff], torch.from_numpy(cot.copy()), allow_unused=True)
    for i, a, b in zip(diff, jg, tg):
        a = np.zeros(args[i].shape) if a is None else np_of(a)
        b = np.zeros(tuple(targs[i].shape)) if b is None else np_of(b)
        assert_close(a, b, "float64", 1e-7, 1e-9, f"grad of input {i} vs torch: ")
