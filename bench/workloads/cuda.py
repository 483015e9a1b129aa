"""GPU workloads: jitorch's CUDA backend beside PyTorch on the same GPU.

Every timed call ends with the library's ``cuda.synchronize()``, so a sample is
the time until the GPU has finished, not the time to queue the work.  Small-op
workloads time a batch of ``SMALL_OPS`` launches per sample and report the
cost of one (the per-op overhead the issue bounds by torch's).  Without a
usable CUDA device every row reads UNAVAILABLE; Numba's simulator does not
count (its timings mean nothing).

Run on a GPU machine: ``python -m bench --group cuda``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from bench.harness import Timed, Unavailable, build_variants, workload
from bench.workloads.compiled import gelu_chain
from bench.workloads.training import _lib, _seeded, classification_step, encoder_layer, lenet_bn, mlp

GROUP = "cuda"
N_GELU = 64 * 1024 * 1024
SMALL_OPS = 100
MM = 4096


def _cuda_lib(variant: str) -> Any:
    lib = _lib(variant.split(".")[0])
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0") and lib.__name__ == "jitorch":
        raise Unavailable("Numba's CUDA simulator is on: GPU timings would be meaningless")
    if not lib.cuda.is_available():
        raise Unavailable(f"{lib.__name__}.cuda.is_available() is False")
    return lib


def _synced(lib: Any, fn: Callable[[], Any]) -> Timed:
    sync = lib.cuda.synchronize

    def timed() -> None:
        fn()
        sync()

    timed()  # compile / warm up outside the timing
    return timed


def _variants(make: Callable[[str], Timed], names=("jitorch", "torch")) -> Mapping[str, Any]:
    return build_variants({v: (lambda v=v: make(v)) for v in names})


def _maybe_compile(variant: str, lib: Any, obj: Any) -> Any:
    return lib.compile(obj) if variant.endswith(".compile") else obj


# -- bandwidth-bound elementwise chain -------------------------------------------------------------
def _gelu(variant: str) -> Timed:
    lib = _cuda_lib(variant)
    lib.manual_seed(0)
    x, w, b = (lib.randn(N_GELU, device="cuda") for _ in range(3))
    fn = _maybe_compile(variant, lib, gelu_chain)
    return _synced(lib, lambda: fn(x, w, b))


@workload("gpu.gelu_chain.64M", GROUP, bytes_moved=4 * N_GELU * 4,
          description="GELU (tanh form) of x*w+b on 64M float32 on the GPU: 3 reads + 1 write")
def gelu_64m() -> Mapping[str, Any]:
    return _variants(_gelu, ("jitorch.compile", "jitorch", "torch", "torch.compile"))


def _copy(variant: str) -> Timed:
    lib = _cuda_lib(variant)
    src = lib.randn(N_GELU, device="cuda")
    dst = lib.empty(N_GELU, device="cuda")
    return _synced(lib, lambda: dst.copy_(src))


@workload("gpu.copy.64M", GROUP, bytes_moved=2 * N_GELU * 4,
          description="device copy_ of 64M float32: the bandwidth the GELU chain is measured against")
def copy_64m() -> Mapping[str, Any]:
    return _variants(_copy)


# -- per-op overhead ---------------------------------------------------------------------------------
def _small_add(requires_grad: bool) -> Callable[[str], Timed]:
    def make(variant: str) -> Timed:
        lib = _cuda_lib(variant)
        a = lib.randn(16, device="cuda", requires_grad=requires_grad)
        b = lib.randn(16, device="cuda", requires_grad=requires_grad)

        def run() -> None:
            for _ in range(SMALL_OPS):
                a + b
        return _synced(lib, run)
    return make


@workload("gpu.add16.x100", GROUP, description=f"{SMALL_OPS} adds of two 16-element tensors, then one sync")
def add16() -> Mapping[str, Any]:
    return _variants(_small_add(False))


@workload("gpu.add16.grad.x100", GROUP,
          description=f"{SMALL_OPS} adds of two 16-element tensors that require grad, then one sync")
def add16_grad() -> Mapping[str, Any]:
    return _variants(_small_add(True))


# -- GEMM ----------------------------------------------------------------------------------------------
def _matmul(variant: str) -> Timed:
    lib = _cuda_lib(variant)
    if lib.__name__ == "torch":
        lib.backends.cuda.matmul.allow_tf32 = False
    a, b = lib.randn(MM, MM, device="cuda"), lib.randn(MM, MM, device="cuda")
    return _synced(lib, lambda: a @ b)


@workload("gpu.matmul.4096", GROUP, flops=2 * MM ** 3, description="float32 4096x4096 @ 4096x4096, TF32 off")
def matmul_4096() -> Mapping[str, Any]:
    return _variants(_matmul)


# -- training steps -------------------------------------------------------------------------------------
def _classifier(build: Callable[[Any], Any], shape) -> Callable[[str], Timed]:
    def make(variant: str) -> Timed:
        lib = _cuda_lib(variant)
        _seeded(lib)
        model = build(lib).to("cuda")
        opt = lib.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x = lib.randn(*shape, device="cuda")
        y = lib.randint(0, 10, (shape[0],), device="cuda")
        return _synced(lib, classification_step(lib, _maybe_compile(variant, lib, model), opt, x, y))
    return make


def _transformer(variant: str) -> Timed:
    lib = _cuda_lib(variant)
    _seeded(lib)
    model = encoder_layer(lib).to("cuda")
    net = _maybe_compile(variant, lib, model)
    opt = lib.optim.Adam(model.parameters(), lr=1e-4)
    x, target = lib.randn(8, 128, 256, device="cuda"), lib.randn(8, 128, 256, device="cuda")
    criterion = lib.nn.MSELoss()

    def step() -> None:
        opt.zero_grad()
        criterion(net(x), target).backward()
        opt.step()
    return _synced(lib, step)


_ALL = ("jitorch", "torch", "jitorch.compile", "torch.compile")


@workload("gpu.mlp.sgd_step", GROUP, description="MLP 784-128-64-10, batch 64, SGD(momentum) step on the GPU")
def cuda_mlp() -> Mapping[str, Any]:
    return _variants(_classifier(mlp, (64, 1, 28, 28)), _ALL)


@workload("gpu.lenet_bn.sgd_step", GROUP, description="LeNet-5 with BatchNorm, batch 64, SGD step on the GPU")
def cuda_lenet() -> Mapping[str, Any]:
    return _variants(_classifier(lenet_bn, (64, 1, 28, 28)), _ALL)


@workload("gpu.transformer_layer.adam_step", GROUP,
          description="TransformerEncoderLayer(256, 4, 1024) on 8 x 128 tokens, Adam step on the GPU")
def cuda_transformer() -> Mapping[str, Any]:
    return _variants(_transformer, _ALL)
