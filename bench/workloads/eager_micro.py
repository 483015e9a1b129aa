"""Eager-core micro benchmarks: dispatch overhead, memory bandwidth, an
elementwise chain, and cold start.

Libraries are imported inside the variant factories so that a missing or
half-finished library only takes out its own rows.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from typing import Any, Callable, Mapping

from bench.harness import (REPO_ROOT, Timed, Unavailable, WorkloadResult, build_variants,
                           summary, workload)

F32 = 4  # bytes per float32 element
N_SMALL = 3
N_BIG = 16 * 1024 * 1024
N_GELU = 4 * 1024 * 1024

GROUP = "eager-micro"
COLD_GROUP = "cold-start"


# --------------------------------------------------------------------------
# (a) per-call overhead: adding two 3-element tensors
# --------------------------------------------------------------------------


def _small_add(lib_name: str, grad: bool) -> Callable[[], Timed]:
    def factory() -> Timed:
        lib = __import__(lib_name)
        a = lib.randn(N_SMALL)
        b = lib.randn(N_SMALL)
        if grad:
            a.requires_grad_()
        a + b  # fail here, at setup, if the op is missing
        return lambda: a + b

    return factory


@workload("add.3", GROUP, description="a + b, 3 float32 elements (per-call overhead)")
def add_small() -> Mapping[str, Any]:
    return build_variants({"jitorch": _small_add("jitorch", False),
                           "torch": _small_add("torch", False)})


@workload("add.3.grad", GROUP,
          description="a + b, 3 elements, a.requires_grad (graph-recording overhead)")
def add_small_grad() -> Mapping[str, Any]:
    return build_variants({"jitorch": _small_add("jitorch", True),
                           "torch": _small_add("torch", True)})


# --------------------------------------------------------------------------
# (b) bandwidth: 16M-element add and the copy reference
# --------------------------------------------------------------------------


def _tensor_pair(lib_name: str, n: int) -> tuple[Any, Any]:
    if lib_name == "numpy":
        import numpy as np

        rng = np.random.default_rng(0)
        return (rng.standard_normal(n, dtype=np.float32),
                rng.standard_normal(n, dtype=np.float32))
    lib = __import__(lib_name)
    return lib.randn(n), lib.randn(n)


def _big_add(lib_name: str) -> Callable[[], Timed]:
    def factory() -> Timed:
        a, b = _tensor_pair(lib_name, N_BIG)
        return lambda: a + b

    return factory


@workload("add.16M", GROUP, bytes_moved=3 * F32 * N_BIG,
          description="a + b, 16M float32 (read 2, write 1)")
def add_big() -> Mapping[str, Any]:
    return build_variants({name: _big_add(name) for name in ("jitorch", "torch", "numpy")})


def _copy(lib_name: str) -> Callable[[], Timed]:
    def factory() -> Timed:
        dst, src = _tensor_pair(lib_name, N_BIG)
        if lib_name == "numpy":
            import numpy as np

            return lambda: np.copyto(dst, src)
        if not hasattr(dst, "copy_"):
            raise Unavailable(f"{lib_name} tensors have no copy_()")
        return lambda: dst.copy_(src)

    return factory


@workload("copy.16M", GROUP, bytes_moved=2 * F32 * N_BIG, baseline="numpy",
          description="copy 16M float32 into an existing buffer (bandwidth reference)")
def copy_big() -> Mapping[str, Any]:
    return build_variants({name: _copy(name) for name in ("numpy", "jitorch", "torch")})


def _gbps(res: WorkloadResult | None, variant: str) -> float | None:
    if res is None or variant not in res.variants:
        return None
    return res.variants[variant].gbps if res.variants[variant].status == "ok" else None


def _copy_label(variant: str) -> str:
    return "numpy.copyto" if variant == "numpy" else f"{variant} copy_"


@summary
def add_vs_copy_bandwidth(results: Mapping[str, WorkloadResult]) -> list[str]:
    """State each add.16M variant's bandwidth as a share of measured copy bandwidth.

    Both the numpy.copyto figure (single-threaded, the plain reference) and
    the best copy any variant reached (closer to what the machine can do) are
    used, since multi-threaded copies may beat numpy by a wide margin.
    """
    add, copy = results.get("add.16M"), results.get("copy.16M")
    if add is None or copy is None:
        return []
    copies = {v: g for v in copy.variants if (g := _gbps(copy, v))}
    if not copies:
        return ["add.16M vs copy: no copy bandwidth measured"]
    refs = {}
    if "numpy" in copies:
        refs["numpy.copyto"] = copies["numpy"]
    best = max(copies, key=copies.__getitem__)
    refs.setdefault(_copy_label(best), copies[best])
    lines = ["add.16M as a share of copy bandwidth ("
             + ", ".join(f"{k} {g:.1f} GB/s" for k, g in refs.items()) + "):"]
    for variant in add.variants:
        gbps = _gbps(add, variant)
        if gbps is None:
            lines.append(f"  {variant}: not measured")
            continue
        shares = ", ".join(f"{100 * gbps / g:.0f}% of {k}" for k, g in refs.items())
        lines.append(f"  {variant}: {gbps:.1f} GB/s = {shares}")
    return lines


# --------------------------------------------------------------------------
# (c) elementwise chain: GELU(tanh approximation) of x*w+b
# --------------------------------------------------------------------------


def _gelu_chain(tanh: Callable[[Any], Any], x: Any, w: Any, b: Any) -> Any:
    v = x * w + b
    return 0.5 * v * (1 + tanh(0.79788456 * (v + 0.044715 * v**3)))


def _gelu(lib_name: str) -> Callable[[], Timed]:
    def factory() -> Timed:
        if lib_name == "numpy":
            import numpy as np

            rng = np.random.default_rng(0)
            x, w, b = (rng.standard_normal(N_GELU, dtype=np.float32) for _ in range(3))
            tanh = np.tanh
        else:
            lib = __import__(lib_name)
            x, w, b = lib.randn(N_GELU), lib.randn(N_GELU), lib.randn(N_GELU)
            tanh = lib.tanh
        return lambda: _gelu_chain(tanh, x, w, b)

    return factory


# 11 nominal flops per element (tanh counted as one); bytes are the minimum a
# fused kernel needs (read x, w, b; write the result), so eager engines that
# materialise every intermediate will show a low "effective" GB/s.
@workload("gelu.4M", GROUP, bytes_moved=4 * F32 * N_GELU, flops=11 * N_GELU,
          description="0.5*v*(1+tanh(0.79788456*(v+0.044715*v**3))), v=x*w+b, 4M float32")
def gelu_chain() -> Mapping[str, Any]:
    return build_variants({name: _gelu(name) for name in ("jitorch", "torch", "numpy")})


# --------------------------------------------------------------------------
# (d) cold start in fresh interpreters
# --------------------------------------------------------------------------

# Timings are taken inside the child so the interpreter's own start-up is not
# counted. The runner's throw-away first call fills jitorch's on-disk kernel
# cache, so the measured "first call" is a cached (not compiling) one.
_IMPORT_SCRIPT = """
import json, time
t0 = time.perf_counter()
import {lib}
print(json.dumps({{"import_s": time.perf_counter() - t0}}))
"""

_FIRST_ADD_SCRIPT = """
import json, time
import {lib} as lib
a = lib.tensor([1.0, 2.0, 3.0])
b = lib.tensor([4.0, 5.0, 6.0])
t0 = time.perf_counter()
c = a + b
print(json.dumps({{"first_call_s": time.perf_counter() - t0}}))
"""


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    return env


def run_cold_child(script: str) -> dict[str, float]:
    """Run ``script`` in a fresh interpreter; it prints its timings as JSON."""
    proc = subprocess.run([sys.executable, "-c", script],
                          cwd=REPO_ROOT, env=_child_env(), capture_output=True, text=True,
                          timeout=300)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["exit code %d" % proc.returncode])[-1]
        raise RuntimeError(f"child process failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _cold(lib_name: str, template: str, key: str) -> Callable[[], Timed]:
    def factory() -> Timed:
        if importlib.util.find_spec(lib_name) is None:
            raise ImportError(f"No module named {lib_name!r}")
        script = template.format(lib=lib_name)
        return lambda: run_cold_child(script)[key]

    return factory


@workload("cold.import", COLD_GROUP, self_timed=True, max_samples=7,
          description="`import <lib>` in a fresh interpreter")
def cold_import() -> Mapping[str, Any]:
    return build_variants({name: _cold(name, _IMPORT_SCRIPT, "import_s")
                           for name in ("jitorch", "torch")})


@workload("cold.first_add", COLD_GROUP, self_timed=True, max_samples=7,
          description="first a + b in a fresh interpreter, kernel cache already warm")
def cold_first_add() -> Mapping[str, Any]:
    return build_variants({name: _cold(name, _FIRST_ADD_SCRIPT, "first_call_s")
                           for name in ("jitorch", "torch")})
