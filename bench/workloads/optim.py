"""Optimizer-step benchmarks: jitorch's fused per-parameter kernels against
torch's default (single-tensor on CPU) and ``fused=True`` implementations.

Gradients are set once; each timed call is one ``optimizer.step()``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bench.harness import Timed, build_variants, workload

GROUP = "optim"


def _step(lib_name: str, opt_name: str, n_params: int, size: int, **kw: Any) -> Callable[[], Timed]:
    def factory() -> Timed:
        lib = __import__(lib_name)
        params = [lib.randn(size, requires_grad=True) for _ in range(n_params)]
        for p in params:
            p.grad = lib.randn(size)
        opt = getattr(lib.optim, opt_name)(params, lr=1e-3, **kw)
        opt.step()  # state allocation and kernel compilation happen here
        return opt.step

    return factory


def _variants(opt_name: str, n_params: int, size: int, **kw: Any) -> Mapping[str, Any]:
    return build_variants({
        "jitorch": _step("jitorch", opt_name, n_params, size, **kw),
        "torch": _step("torch", opt_name, n_params, size, foreach=False, **kw),
        "torch.fused": _step("torch", opt_name, n_params, size, fused=True, **kw),
    })


@workload("adam.100x64", GROUP, description="Adam step, 100 params of 64 floats (per-parameter overhead)")
def adam_small() -> Mapping[str, Any]:
    return _variants("Adam", 100, 64)


@workload("adam.4x1M", GROUP, description="Adam step, 4 params of 1M floats (memory bandwidth)")
def adam_big() -> Mapping[str, Any]:
    return _variants("Adam", 4, 1 << 20)


@workload("sgd.momentum.100x64", GROUP, description="SGD(momentum=0.9) step, 100 params of 64 floats")
def sgd_small() -> Mapping[str, Any]:
    return _variants("SGD", 100, 64, momentum=0.9)
