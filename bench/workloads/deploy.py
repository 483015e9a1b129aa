"""Deployment benchmarks: how long ``jit.trace`` takes, and how fast the traced model runs.

Variants per workload:
  jitorch.jit.trace          ``jitorch.jit.trace`` with its defaults (check_trace=True and the two
                             extra traces at other batch sizes that make the graph batch-generic)
  jitorch.jit.trace.static   ``dynamic_batch=False, check_trace=False``: one run under the tracer only
  torch.jit.trace            ``torch.jit.trace`` with its defaults (check_trace=True), the baseline

The model is ``TransformerEncoderLayer(d_model=256, nhead=8)`` in eval mode on a (32, 16, 256)
input (sequence-first, torch's default layout). Kernels come from jitorch's on-disk cache after the
harness's warm-up call, so the numbers are the steady state a deployment script sees, not the
first-ever compile.

ONNX export timing is not here: ``torch.onnx.export`` / ``jitorch.onnx.export`` rows live in their
own workload module (added with the ONNX exporter), in this same "deploy" group.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from bench.harness import Timed, build_variants, workload
from bench.workloads.training import _lib

GROUP = "deploy"
SHAPE = (32, 16, 256)


def _encoder(lib: Any) -> tuple[Any, Any]:
    lib.manual_seed(0)
    model = lib.nn.TransformerEncoderLayer(d_model=256, nhead=8).eval()
    return model, lib.randn(*SHAPE)


def _quiet(fn: Timed) -> Timed:
    def run() -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit.trace warns that it is deprecated, on every call
            return fn()
    return run


def _trace(variant: str) -> Timed:
    lib = _lib(variant.split(".")[0])
    if not hasattr(lib, "jit"):
        raise ImportError(f"{lib.__name__} has no jit")
    model, x = _encoder(lib)
    if variant == "jitorch.jit.trace.static":
        return _quiet(lambda: lib.jit.trace(model, x, check_trace=False, dynamic_batch=False))
    return _quiet(lambda: lib.jit.trace(model, x))


@workload("jit_trace.transformer_layer", GROUP, baseline="torch.jit.trace", max_samples=7,
          description="jit.trace of TransformerEncoderLayer(d_model=256, nhead=8).eval() on a (32, 16, 256) "
                      "input (target: under 2 s)")
def jit_trace_transformer() -> Mapping[str, Any]:
    return build_variants({v: (lambda v=v: _trace(v))
                           for v in ("jitorch.jit.trace", "jitorch.jit.trace.static", "torch.jit.trace")})


def _traced_forward(variant: str) -> Timed:
    lib = _lib(variant.split(".")[0])
    model, x = _encoder(lib)
    runner = model
    if variant.endswith(".traced"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            runner = lib.jit.trace(model, x)

    def step() -> Any:
        with lib.no_grad():
            return runner(x)
    return step


@workload("traced_forward.transformer_layer", GROUP, baseline="torch.traced",
          description="one inference call (no_grad) of the traced TransformerEncoderLayer(256, 8) on "
                      "(32, 16, 256), beside the eager model")
def traced_forward_transformer() -> Mapping[str, Any]:
    return build_variants({v: (lambda v=v: _traced_forward(v))
                           for v in ("jitorch.traced", "jitorch", "torch.traced", "torch")})
