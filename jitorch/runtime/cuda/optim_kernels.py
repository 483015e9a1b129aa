"""Fused optimizer steps on CUDA: one kernel launch updates a parameter and all its state.

The CUDA twins of ``optim/_fused.py``: the same algorithms with the same
arithmetic, operation by operation (``fma`` where the CPU kernels fuse,
``mul_rn`` where NVVM would otherwise fuse a product into the next add and the
CPU does not), so a CUDA step reproduces the CPU step to the last bit when
both run in float32 or float64.  float16 and bfloat16 parameters and state are
read as float32, updated in float32 and rounded on store (bfloat16 through the
bit helpers of ``bf16.py``), as the CPU path does through its float32 copies.

Conventions (as on the CPU): hyperparameters are kernel arguments typed like
the computation (one compiled kernel serves every learning rate); boolean
switches are int64 flags, uniform across the grid; a state buffer the options
do not use is given the parameter's pointer and never touched.  Every array is
C-contiguous with the parameter's element count (``step`` below ensures it).
"""
from __future__ import annotations

import numpy as np

from ..codegen_common import dtype_name, is_bf16, np_name
from . import array, codegen, dispatch_cache, launch
from .array import CudaArray

_F16 = np.dtype(np.float16)
_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)

# Each body runs once per element ``i``; ``C(...)`` converts to the compute type and
# ``P(...)`` to the storage type.  The statements mirror optim/_fused.py line for line.
# The gradient every algorithm but Adam steps with: negated to maximize, plus L2 weight decay.
_DECAYED_GRAD = """
g = C(grad[i])
if maximize:
    g = -g
if use_wd:
    g = fma(C(param[i]), weight_decay, g)"""
_KERNELS = {
    "sgd": (["param", "grad", "buf"],
            ["neg_lr", "weight_decay", "momentum", "keep"],
            ["use_wd", "use_momentum", "first", "nesterov", "maximize"], _DECAYED_GRAD + """
if use_momentum:
    if first:
        b = g
    else:
        b = fma(g, keep, C(buf[i]) * momentum)
    buf[i] = P(b)
    if nesterov:
        g = fma(b, momentum, g)
    else:
        g = b
param[i] = P(fma(g, neg_lr, C(param[i])))
"""),
    "adam": (["param", "grad", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"],
             ["w1", "w1_minus_one", "beta2", "one_minus_beta2", "weight_decay", "decay_keep", "bc2_sqrt", "eps",
              "neg_step_size"],
             ["w1_small", "use_wd", "decoupled", "amsgrad", "maximize"], """
g = C(grad[i])
if maximize:
    g = -g
p = C(param[i])
if use_wd:
    if decoupled:
        p = p * decay_keep
    else:
        g = fma(p, weight_decay, g)
m = C(exp_avg[i])
if w1_small:
    m = fma(w1, g - m, m)
else:
    m = fma(w1_minus_one, g - m, g)
v = fma(one_minus_beta2 * g, g, C(exp_avg_sq[i]) * beta2)
exp_avg[i] = P(m)
exp_avg_sq[i] = P(v)
if amsgrad:
    vmax = C(max_exp_avg_sq[i])
    if v > vmax or v != v:  # torch.maximum propagates NaN
        vmax = v
    max_exp_avg_sq[i] = P(vmax)
    v = vmax
denom = math.sqrt(v) / bc2_sqrt + eps
param[i] = P(p + neg_step_size * m / denom)
"""),
    "rmsprop": (["param", "grad", "square_avg", "grad_avg", "buf"],
                ["alpha", "one_minus_alpha", "w_minus_one", "eps", "weight_decay", "momentum", "neg_lr"],
                ["lerp_small", "use_wd", "centered", "use_momentum", "maximize"], _DECAYED_GRAD + """
sa = fma(one_minus_alpha * g, g, C(square_avg[i]) * alpha)
square_avg[i] = P(sa)
if centered:
    ga = C(grad_avg[i])
    if lerp_small:
        ga = fma(one_minus_alpha, g - ga, ga)
    else:
        ga = fma(w_minus_one, g - ga, g)
    grad_avg[i] = P(ga)
    avg = math.sqrt(fma(-ga, ga, sa))
else:
    avg = math.sqrt(sa)
avg = avg + eps
if use_momentum:
    b = mul_rn(C(buf[i]), momentum) + g / avg
    buf[i] = P(b)
    param[i] = P(fma(b, neg_lr, C(param[i])))
else:
    param[i] = P(C(param[i]) + neg_lr * g / avg)
"""),
    "adagrad": (["param", "grad", "state_sum"],
                ["neg_clr", "weight_decay", "eps"],
                ["use_wd", "maximize"], _DECAYED_GRAD + """
s = fma(g, g, C(state_sum[i]))
state_sum[i] = P(s)
std = math.sqrt(s) + eps
param[i] = P(C(param[i]) + neg_clr * g / std)
"""),
}


def compute_dtype(dt) -> np.dtype:
    """The dtype a parameter is updated in: float16 and bfloat16 go through float32."""
    dt = np.dtype(dt)
    if dt in (_F32, _F64):
        return dt
    if dt == _F16 or is_bf16(dt):
        return _F32
    raise TypeError(f"jitorch.optim can only update floating point tensors, got {dt}")


def kernel_source(algo: str, dt) -> tuple[str, str, list]:
    """(source, function name, launch params) of ``algo``'s kernel for storage dtype ``dt``."""
    arrays, scalars, flags, body = _KERNELS[algo]
    dt = np.dtype(dt)
    cdt = compute_dtype(dt)
    name = f"cuda_{algo}_step_{dtype_name(dt)}"
    if is_bf16(dt):  # bit patterns: widened and rounded by the helpers (the arrays are uint16)
        body = body.replace("C(", "bf16_to_f32(").replace("P(", "f32_to_bf16(")
    else:
        body = body.replace("C(", f"{np_name(cdt)}(").replace("P(", f"{np_name(dt)}(")
    lines = [codegen.DECORATOR, f"def {name}(n, {', '.join(arrays + scalars + flags)}):",
             "    i = cuda.grid(1)",
             "    step = cuda.gridsize(1)",
             "    while i < n:"]
    lines += ["        " + ln for ln in body.strip("\n").splitlines()]
    lines.append("        i += step")
    mem = codegen.memory_dtype(dt)
    params = [("i64",)] + [("ptr", mem)] * len(arrays) + [("scalar", cdt)] * len(scalars) + [("i64",)] * len(flags)
    source = "\n".join(lines) + "\n"
    return codegen.header_for(source) + "\n\n" + source, name, params


def step(algo: str, param: CudaArray, grad: CudaArray, state: dict, scalars: dict, flags: dict) -> None:
    """One fused update of ``param`` (and the CudaArrays in ``state``, by buffer name) in place.

    ``state`` maps each of the algorithm's buffer names to a CudaArray or None
    (unused); ``scalars`` and ``flags`` map the kernel's scalar and flag names to
    Python values.  Non-contiguous arrays are updated through contiguous copies
    that are written back; a gradient of another dtype or layout is converted.
    """
    arrays, scalar_names, flag_names, _ = _KERNELS[algo]
    dt = param.dtype
    compute_dtype(dt)
    n = param.size
    if n == 0:
        return
    if grad.size != n:
        raise RuntimeError(f"gradient of shape {list(grad.shape)} does not match its parameter "
                           f"({n} elements)")
    pending = []
    p = _contiguous(param, dt, pending)
    ptrs = [p, _gradient(grad, dt, param.shape)]
    for name in arrays[2:]:
        buf = state.get(name)
        if buf is None:
            ptrs.append(p)
            continue
        if buf.size != n:
            raise RuntimeError(f"optimizer state of shape {list(buf.shape)} does not match its parameter of "
                               f"shape {list(param.shape)}")
        ptrs.append(_contiguous(buf, dt, pending))
    launcher = dispatch_cache.get(("optim", algo, dt), lambda: kernel_source(algo, dt))
    blocks, threads = launch.config(n)
    launcher(blocks, threads, n, *ptrs, *[scalars[k] for k in scalar_names], *[int(bool(flags[k])) for k in flag_names])
    if pending:
        from .copy import copy_into
        for target, tmp in pending:
            copy_into(target, tmp)


def _is_contiguous(a: CudaArray) -> bool:
    from .elementwise import contiguous_elem_strides
    return tuple(s // a.itemsize for s in a.strides) == contiguous_elem_strides(a.shape)


def _contiguous(a: CudaArray, dt, pending: list) -> CudaArray:
    """``a`` itself when the kernel can update it in place, else a contiguous copy to write back."""
    if a.dtype == dt and _is_contiguous(a):
        return a
    if not a.flags.writeable:
        raise RuntimeError("an optimizer cannot update a read-only (broadcast) tensor in place")
    tmp = array.empty(a.shape, dt)
    from .copy import copy_into
    copy_into(tmp, a)
    pending.append((a, tmp))
    return tmp


def _gradient(g: CudaArray, dt, shape) -> CudaArray:
    """The gradient as a contiguous ``dt`` array (itself when it already is one)."""
    if g.dtype == dt and _is_contiguous(g):
        return g
    from .copy import copy_into
    tmp = array.empty(g.shape, dt)
    copy_into(tmp, g)
    return tmp
