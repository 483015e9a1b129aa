"""Fused optimizer kernels: one Numba loop updates a parameter and its state.

A textbook optimizer step is a chain of 5-12 elementwise ops per parameter
(``mul_``, ``addcmul_``, ``sqrt``, ``addcdiv_``...).  Launching each as an
eager op costs several microseconds of Python per op and streams the
parameter through memory once per op.  Here each algorithm is one static
``njit`` function that walks the flat parameter once and writes the parameter
and its state buffers in place.

Conventions shared by all kernels:

* arrays are 1-D, C-contiguous and all of one dtype (float32 or float64);
  float16 and bfloat16 tensors are updated through float32 copies by
  :func:`prepare` (rounded back by :func:`write_back`);
* hyperparameters are kernel *arguments* (one compiled kernel serves every
  learning rate); they arrive typed like the arrays, so float32 parameters
  are updated in float32 arithmetic;
* the arithmetic follows torch's single-tensor ("for-loop") implementation
  op by op, including which steps its vectorized CPU kernels fuse into one
  multiply-add (:func:`fma`), so trajectories agree with torch's to the last
  bit or within a rounding (torch's ``sqrt`` goes through MKL, which is not
  always correctly rounded);
* boolean switches (``maximize``, ``amsgrad``...) are loop invariant; LLVM
  still vectorizes every loop;
* state buffers an option does not use are passed as an empty array.

Kernels are launched through the compiled overload's ``entry_point``
(:class:`Launcher`), which skips Numba's argument type resolution; that is
safe because :func:`prepare` and :class:`ViewCache` hand them only 1-D,
C-contiguous, aligned arrays of the compute dtype.
"""
from __future__ import annotations

import math
from operator import is_

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

from .. import _dtype as D
from ..runtime import kernel_cache

_F16 = np.dtype(np.float16)
_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_NATIVE = (_F32, _F64)


# -- kernels -----------------------------------------------------------------------------------

@intrinsic
def fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (LLVM's ``llvm.fma``; one instruction on FMA hardware).

    torch's vectorized CPU kernels evaluate ``add(alpha=)``, ``addcmul`` and
    ``lerp`` as fused multiply-adds; using the same here keeps float32
    trajectories identical to torch's instead of one rounding apart per op.
    """
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, sig, args):
        return builder.fma(*args)

    return a(a, b, c), codegen


# One plain loop per algorithm.  (A shared inlined element function plus
# serial and ``prange`` twins was tried: Numba's inlining stopped LLVM from
# vectorizing the loops, and threads gain little on a memory-bound update.)
_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}


@njit(**_JIT)
def sgd_kernel(param, grad, buf, neg_lr, weight_decay, momentum, keep, use_wd, use_momentum, first, nesterov,
               maximize):  # pragma: no cover - compiled
    """SGD with optional L2 decay, (Nesterov) momentum and dampening.

    ``keep`` is ``1 - dampening``; ``first`` marks a momentum buffer that is
    seeded with the gradient instead of being decayed.
    """
    for i in range(param.size):
        d = grad[i]
        if maximize:
            d = -d
        if use_wd:
            d = fma(param[i], weight_decay, d)
        if use_momentum:
            if first:
                b = d
            else:
                b = fma(d, keep, buf[i] * momentum)
            buf[i] = b
            if nesterov:
                d = fma(b, momentum, d)
            else:
                d = b
        param[i] = fma(d, neg_lr, param[i])


@njit(**_JIT)
def adam_kernel(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, w1, w1_minus_one, w1_small, beta2,
                one_minus_beta2, weight_decay, decay_keep, bc2_sqrt, eps, neg_step_size, use_wd, decoupled, amsgrad,
                maximize):  # pragma: no cover - compiled
    """Adam / AdamW.

    ``w1 = 1 - beta1`` is the lerp weight of the first moment (torch's
    ``lerp_`` anchors at the nearer end: the old value when the weight is
    below one half, the gradient otherwise); ``decay_keep = 1 - lr * wd`` is
    AdamW's decoupled shrink factor; ``neg_step_size = -lr / (1 - beta1**t)``.
    """
    for i in range(param.size):
        g = grad[i]
        if maximize:
            g = -g
        p = param[i]
        if use_wd:
            if decoupled:
                p = p * decay_keep
            else:
                g = fma(p, weight_decay, g)
        m = exp_avg[i]
        if w1_small:
            m = fma(w1, g - m, m)
        else:
            m = fma(w1_minus_one, g - m, g)
        v = fma(one_minus_beta2 * g, g, exp_avg_sq[i] * beta2)
        exp_avg[i] = m
        exp_avg_sq[i] = v
        if amsgrad:
            vmax = max_exp_avg_sq[i]
            if v > vmax or math.isnan(v):  # torch.maximum propagates NaN
                vmax = v
            max_exp_avg_sq[i] = vmax
            v = vmax
        denom = math.sqrt(v) / bc2_sqrt + eps
        param[i] = p + neg_step_size * m / denom


@njit(**_JIT)
def rmsprop_kernel(param, grad, square_avg, grad_avg, buf, alpha, one_minus_alpha, lerp_small, w_minus_one, eps,
                   weight_decay, momentum, neg_lr, use_wd, centered, use_momentum,
                   maximize):  # pragma: no cover - compiled
    """RMSprop, optionally centered and with momentum.

    ``one_minus_alpha`` doubles as the lerp weight of the centered gradient
    average (``w_minus_one`` is that weight minus one, for torch's lerp).
    """
    for i in range(param.size):
        g = grad[i]
        if maximize:
            g = -g
        if use_wd:
            g = fma(param[i], weight_decay, g)
        sa = fma(one_minus_alpha * g, g, square_avg[i] * alpha)
        square_avg[i] = sa
        if centered:
            ga = grad_avg[i]
            if lerp_small:
                ga = fma(one_minus_alpha, g - ga, ga)
            else:
                ga = fma(w_minus_one, g - ga, g)
            grad_avg[i] = ga
            avg = math.sqrt(fma(-ga, ga, sa))
        else:
            avg = math.sqrt(sa)
        avg = avg + eps
        if use_momentum:
            b = buf[i] * momentum + g / avg
            buf[i] = b
            param[i] = fma(b, neg_lr, param[i])
        else:
            param[i] = param[i] + neg_lr * g / avg


@njit(**_JIT)
def adagrad_kernel(param, grad, state_sum, neg_clr, weight_decay, eps, use_wd,
                   maximize):  # pragma: no cover - compiled
    """Adagrad; ``neg_clr = -lr / (1 + (t - 1) * lr_decay)``."""
    for i in range(param.size):
        g = grad[i]
        if maximize:
            g = -g
        if use_wd:
            g = fma(param[i], weight_decay, g)
        s = fma(g, g, state_sum[i])
        state_sum[i] = s
        std = math.sqrt(s) + eps
        param[i] = param[i] + neg_clr * g / std


# -- launching -----------------------------------------------------------------------------------

class Launcher:
    """Calls a kernel through the compiled overload's entry point, per dtype.

    The first call for a dtype goes through the Numba dispatcher with the
    scalar arguments converted to that dtype (so the kernel is compiled, or
    loaded from the disk cache, for float32 scalars when the arrays are
    float32); later calls pass plain Python numbers, which the entry point
    converts to the signature's types.
    """

    __slots__ = ("entries", "kernel")

    def __init__(self, kernel) -> None:
        self.kernel = kernel
        self.entries: dict = {}

    def __call__(self, *args) -> None:
        ep = self.entries.get(args[0].dtype)
        if ep is not None:
            ep(*args)
            return
        scalar = args[0].dtype.type
        typed = tuple(a if isinstance(a, (np.ndarray, bool)) else scalar(a) for a in args)
        kernel_cache.first_call(self.kernel, typed)
        self.entries[args[0].dtype] = kernel_cache.entry_point(self.kernel, typed)


sgd = Launcher(sgd_kernel)
adam = Launcher(adam_kernel)
rmsprop = Launcher(rmsprop_kernel)
adagrad = Launcher(adagrad_kernel)

_EMPTY = {_F32: np.empty(0, _F32), _F64: np.empty(0, _F64)}


def compute_dtype(np_dtype) -> np.dtype:
    """The dtype a parameter is updated in: float16 and bfloat16 go through float32."""
    if np_dtype in _NATIVE:
        return np_dtype
    if np_dtype == _F16 or np_dtype == D.BF16_STORAGE:
        return _F32
    raise TypeError(f"jitorch.optim can only update floating point tensors, got {np_dtype}")


def empty(dtype) -> np.ndarray:
    """A placeholder for a state buffer the chosen options do not use."""
    return _EMPTY[dtype]


def prepare(arr: np.ndarray, dtype, pending: list) -> np.ndarray:
    """A flat, contiguous, writable ``dtype`` array for ``arr``.

    Usually a view (no copy).  When ``arr`` is non-contiguous, read-only or of
    another dtype (float16), a copy is returned and ``(arr, copy)`` is
    appended to ``pending`` so that :func:`write_back` stores the result.
    """
    flags = arr.flags
    if arr.dtype == dtype and flags.c_contiguous and flags.writeable and flags.aligned:
        return arr.reshape(-1)
    flat = np.array(D.host_values(arr), dtype=dtype, order="C").reshape(-1)
    pending.append((arr, flat))
    return flat


def write_back(pending: list) -> None:
    """Copy updated temporaries back into the tensors' own arrays."""
    for target, flat in pending:
        if target.dtype == D.BF16_STORAGE:  # rounded to bfloat16 bit patterns (NumPy cannot cast to them)
            target.view(np.uint16)[...] = D.bf16_bits(flat).reshape(target.shape)
        else:
            target[...] = flat.reshape(target.shape)
    pending.clear()


class ViewCache:
    """Flat kernel views of each parameter's arrays, reused from step to step.

    For small parameters, making the views (``reshape``, layout checks) costs
    more Python time than the kernel launch.  An entry is reused while the
    parameter and state arrays are the very same objects (identity, not
    equality), so replacing a tensor's storage or loading a checkpoint simply
    misses.  Only plain views are cached, never copies: a view always sees
    in-place changes to its source, a copy would go stale.
    """

    __slots__ = ("entries", "grads")

    def __init__(self) -> None:
        self.entries: dict[int, tuple] = {}
        self.grads: dict[int, tuple] = {}

    def views(self, key: int, arrays: tuple, pending: list) -> tuple:
        """``(flat arrays, compute dtype)`` for ``arrays`` (the parameter's first)."""
        hit = self.entries.get(key)
        if hit is not None and len(hit[0]) == len(arrays) and all(map(is_, hit[0], arrays)):
            return hit[1], hit[2]
        n = arrays[0].size
        for a in arrays[1:]:  # kernels index every buffer by the parameter's flat index
            if a.size != n:
                raise RuntimeError(f"optimizer state of shape {list(a.shape)} does not match its parameter of "
                                   f"shape {list(arrays[0].shape)}")
        dt = compute_dtype(arrays[0].dtype)
        flats = tuple(prepare(a, dt, pending) for a in arrays)
        if not pending:
            self.entries[key] = (arrays, flats, dt)
        return flats, dt

    def grad(self, key: int, arr: np.ndarray, param: np.ndarray) -> np.ndarray:
        """A flat array with the gradient's values, typed like the flat ``param`` (a cached view when possible)."""
        hit = self.grads.get(key)
        if hit is not None and hit[0] is arr and hit[1].size == param.size:
            return hit[1]
        if arr.size != param.size:
            raise RuntimeError(f"gradient of shape {list(arr.shape)} does not match its parameter "
                               f"({param.size} elements)")
        dt = param.dtype
        if arr.dtype == dt and arr.flags.c_contiguous and arr.flags.aligned:
            flat = arr.reshape(-1)
            self.grads[key] = (arr, flat)
            return flat
        return np.array(D.host_values(arr), dtype=dt, order="C").reshape(-1)  # a fresh, aligned copy
