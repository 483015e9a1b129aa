"""jitorch: PyTorch's API, executed by Numba-compiled kernels.

``import jitorch as torch`` and write PyTorch code.
"""
from __future__ import annotations

__version__ = "0.1.0"

from . import _dtype
from ._dtype import (bool_ as bool, dtype, float16, float32, float64, get_default_dtype, int8, int16, int32,
                     int64, promote_types, result_type as _result_type, set_default_dtype, uint8, can_cast)
from ._tensor import Size, Tensor
from .runtime.device import Device as device
from . import autograd
from .autograd import enable_grad, inference_mode, is_grad_enabled, is_inference_mode_enabled, no_grad, set_grad_enabled
from .ops.random import (Generator, default_generator, get_rng_state, initial_seed, manual_seed, seed,
                         set_rng_state)
from .ops.creation import (arange, as_tensor, asarray, bernoulli, empty, empty_like, eye, from_numpy, full,
                           full_like, linspace, logspace, multinomial, normal, ones, ones_like, rand, rand_like,
                           randint, randint_like, randn, randn_like, randperm, tensor, zeros, zeros_like)
from .ops.pointwise_api import *  # noqa: F401,F403
from .ops.pointwise_api import abs, round, pow, clamp, where  # noqa: F401  (shadow builtins on purpose)
from .ops.reductions import (all, amax, amin, any, logsumexp, log_softmax, mean, norm, prod, softmax, std,
                             std_mean, sum, var, var_mean)
from .ops.views import (adjoint, as_strided, broadcast_to, contiguous, diagonal, expand, flatten, movedim, moveaxis,
                        narrow, permute, reshape, select, squeeze, swapaxes, swapdims, t, transpose, unflatten,
                        unsqueeze, view)
from .ops.linalg import (addbmm, addmm, addmv, baddbmm, bmm, dot, ger, inner, matmul, mm, mv, outer, vdot)
from .ops.conversion import clone
from ._repr import set_printoptions
from . import _methods  # noqa: F401  (binds Tensor methods)
from .ops import _extra_bindings  # noqa: F401

float = float32
double = float64
half = float16
long = int64
int = int32
short = int16
FloatTensor = DoubleTensor = LongTensor = IntTensor = BoolTensor = Tensor
float_ = float32


def is_tensor(obj) -> bool:
    return isinstance(obj, Tensor)


def is_floating_point(t) -> bool:
    return t.dtype.is_floating_point


def numel(t) -> int:
    return t.numel()


def is_nonzero(t) -> bool:
    return bool(t)


def typename(t) -> str:
    return t.type() if isinstance(t, Tensor) else type(t).__name__


def get_num_threads() -> int:
    import numba
    return numba.get_num_threads()


def set_num_threads(n) -> None:
    import numba
    numba.set_num_threads(n)


def __getattr__(name):
    # heavier subpackages load on first use to keep `import jitorch` fast
    import importlib
    if name in ("nn", "optim", "utils", "vision", "compiler", "jit", "onnx", "distributed", "hub", "cuda",
                "testing", "linalg", "special", "fft", "backends"):
        return importlib.import_module(f"jitorch.{name}")
    if name == "compile":
        from .compiler import compile
        return compile
    if name in ("save", "load"):
        from . import serialization
        return getattr(serialization, name)
    if name in ("amp", "bfloat16", "finfo", "iinfo") or "autocast" in name:  # mixed precision (jitorch/amp)
        return importlib.import_module("jitorch.amp")._export(name)
    if name == "OutOfMemoryError":
        from .runtime.cuda.memory import OutOfMemoryError
        return OutOfMemoryError
    raise AttributeError(f"module 'jitorch' has no attribute '{name}'")


from .runtime.kernel_cache import warm_up as _warm_up  # noqa: E402
from .runtime.host_memory import tune as _tune_malloc  # noqa: E402

_warm_up()
_tune_malloc()
