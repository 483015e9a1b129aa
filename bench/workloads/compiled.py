"""``jitorch.compile`` vs jitorch eager vs PyTorch eager vs ``torch.compile``.

Four variants per workload where they make sense:
  jitorch.compile  the function / model wrapped with ``jitorch.compile``
  jitorch          the same code run eagerly
  torch            PyTorch eager (the baseline)
  torch.compile    the same code under ``torch.compile`` (Inductor; needs a C++ compiler)

``torch.compile`` can take tens of seconds on its first call, so its factory makes that call
during setup; if it raises there (no compiler, unsupported platform) the row reads UNAVAILABLE
instead of sinking the run. The compile-latency workload times fresh interpreters.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

from bench.harness import REPO_ROOT, Timed, Unavailable, build_variants, workload
from bench.workloads.training import _lib, mlp_step

GROUP = "compile"
F32 = 4
N_GELU = 4 * 1024 * 1024
LN_ROWS, LN_COLS = 2048, 1024


def _compiler(variant: str, lib: Any) -> Callable[[Any], Any] | None:
    """The wrapper a variant applies to a function or model (None: run eagerly)."""
    if not variant.endswith(".compile"):
        return None
    if not hasattr(lib, "compile"):
        raise Unavailable(f"{lib.__name__} has no compile()")
    return lib.compile


def _first_call(variant: str, fn: Timed) -> Timed:
    """Run the first (compiling) call now; a compiler that fails here is 'unavailable'."""
    try:
        fn()
    except Exception as exc:  # e.g. Inductor without a working C++ toolchain
        if variant == "torch.compile":
            raise Unavailable(f"torch.compile failed here: {type(exc).__name__}: "
                              f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}")
        raise
    return fn


def _variants(make: Callable[[str], Timed]) -> Mapping[str, Any]:
    def factory_for(variant: str) -> Callable[[], Timed]:
        return lambda: _first_call(variant, make(variant))
    return build_variants({v: factory_for(v)
                           for v in ("jitorch.compile", "jitorch", "torch", "torch.compile")})


# --------------------------------------------------------------------------
# Elementwise chain and a normalisation + softmax pair
# --------------------------------------------------------------------------


def gelu_chain(x: Any, w: Any, b: Any) -> Any:
    v = x * w + b
    return 0.5 * v * (1 + (0.79788456 * (v + 0.044715 * v**3)).tanh())


def _gelu(variant: str) -> Timed:
    lib = _lib(variant.split(".")[0])
    lib.manual_seed(0)
    x, w, b = lib.randn(N_GELU), lib.randn(N_GELU), lib.randn(N_GELU)
    wrap = _compiler(variant, lib)
    fn = wrap(gelu_chain) if wrap else gelu_chain
    return lambda: fn(x, w, b)


# Bytes: the minimum a fused kernel moves (read x, w, b; write the result).
@workload("gelu_chain.4M", GROUP, bytes_moved=4 * F32 * N_GELU, flops=11 * N_GELU,
          description="0.5*v*(1+tanh(0.79788456*(v+0.044715*v**3))), v=x*w+b on 4M float32")
def gelu_4m() -> Mapping[str, Any]:
    return _variants(_gelu)


def _ln_softmax(variant: str) -> Timed:
    lib = _lib(variant.split(".")[0])
    F = lib.nn.functional
    lib.manual_seed(0)
    x = lib.randn(LN_ROWS, LN_COLS)
    w, b = lib.randn(LN_COLS), lib.randn(LN_COLS)

    def ln_softmax(x: Any, w: Any, b: Any) -> Any:
        return F.softmax(F.layer_norm(x, (LN_COLS,), w, b), dim=-1)

    wrap = _compiler(variant, lib)
    fn = wrap(ln_softmax) if wrap else ln_softmax
    return lambda: fn(x, w, b)


@workload("layer_norm_softmax.2048x1024", GROUP, bytes_moved=2 * F32 * LN_ROWS * LN_COLS,
          description="softmax(layer_norm(x, w, b), -1) on 2048x1024 float32 (bytes: read x, "
                      "write the result)")
def ln_softmax_2048() -> Mapping[str, Any]:
    return _variants(_ln_softmax)


# --------------------------------------------------------------------------
# Training steps with the model compiled (the optimizer step stays eager)
# --------------------------------------------------------------------------


def _mlp(variant: str) -> Timed:
    lib_name = variant.split(".")[0]
    return mlp_step(lib_name, _compiler(variant, _lib(lib_name)))


@workload("compiled.mlp.sgd_step", GROUP,
          description="MLP 784-128-64-10, batch 64, SGD(momentum) step with the model compiled")
def mlp_compiled() -> Mapping[str, Any]:
    return _variants(_mlp)


def _transformer(variant: str) -> Timed:
    lib_name = variant.split(".")[0]
    lib = _lib(lib_name)
    lib.manual_seed(0)
    # dropout 0: random draws break jitorch.compile's graph (the step would just run eagerly)
    model = lib.nn.TransformerEncoderLayer(d_model=256, nhead=4, dim_feedforward=1024,
                                           dropout=0.0, batch_first=True)
    wrap = _compiler(variant, lib)
    net = wrap(model) if wrap else model
    opt = lib.optim.Adam(model.parameters(), lr=1e-4)
    x, target = lib.randn(8, 128, 256), lib.randn(8, 128, 256)
    criterion = lib.nn.MSELoss()

    def step() -> None:
        opt.zero_grad()
        criterion(net(x), target).backward()
        opt.step()

    return step


@workload("compiled.transformer_layer.adam_step", GROUP,
          description="TransformerEncoderLayer(256, 4, 1024, dropout=0), batch 8 x seq 128, "
                      "Adam step with the layer compiled")
def transformer_compiled() -> Mapping[str, Any]:
    return _variants(_transformer)


# --------------------------------------------------------------------------
# Compile latency in fresh interpreters
# --------------------------------------------------------------------------

# The child builds the MLP training step, then times the first two steps: the first call of a
# compiled function captures (and, for torch, compiles) the graph; jitorch's kernels are
# generated then and Numba compiles them on their first run, the second call. Both together
# are the wait before training runs compiled code. Imports and model set-up are not timed.
_LATENCY_SCRIPT = """
import json, sys, time
sys.path.insert(0, {repo!r})
from bench.workloads.training import mlp_step
import {lib}
step = mlp_step({lib!r}, {lib}.compile)
t0 = time.perf_counter()
step()
step()
print(json.dumps({{"first_two_s": time.perf_counter() - t0}}))
"""

# Environment variable naming each library's on-disk compile cache.
_CACHE_ENV = {"jitorch": "JITORCH_CACHE_DIR", "torch": "TORCHINDUCTOR_CACHE_DIR"}


def _run_child(lib: str, cache_dir: str) -> float:
    env = dict(os.environ)
    env[_CACHE_ENV[lib]] = cache_dir
    proc = subprocess.run([sys.executable, "-c", _LATENCY_SCRIPT.format(repo=str(REPO_ROOT), lib=lib)],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        if lib == "torch":
            raise Unavailable(f"torch.compile failed here: {tail}")
        raise RuntimeError(f"child process failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["first_two_s"]


def _latency(lib: str, warm: bool) -> Callable[[], Timed]:
    def factory() -> Timed:
        __import__(lib)  # ImportError -> unavailable row
        if warm:
            # one cache directory for every sample: the harness's throw-away first call fills it
            shared = tempfile.mkdtemp(prefix=f"bench-{lib}-warm-")
            atexit.register(shutil.rmtree, shared, ignore_errors=True)
            return lambda: _run_child(lib, shared)

        def cold() -> float:
            fresh = tempfile.mkdtemp(prefix=f"bench-{lib}-cold-")
            try:
                return _run_child(lib, fresh)
            finally:
                shutil.rmtree(fresh, ignore_errors=True)
        return cold

    return factory


@workload("compile_latency.mlp_step", GROUP, self_timed=True, max_samples=3,
          baseline="torch.compile.cold",
          description="first two calls of a compiled MLP training step in a fresh interpreter, "
                      "with an empty (cold) or filled (warm) compile cache")
def compile_latency() -> Mapping[str, Any]:
    return build_variants({
        "jitorch.compile.cold": _latency("jitorch", warm=False),
        "jitorch.compile.warm": _latency("jitorch", warm=True),
        "torch.compile.cold": _latency("torch", warm=False),
        "torch.compile.warm": _latency("torch", warm=True),
    })
