"""The kernel runtime: on-disk cache reuse across processes, fast float32 math accuracy."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import jitorch
from jitorch.runtime import codegen_cpu, kernel_cache


def _run(code: str, cache_dir: str) -> str:
    env = dict(os.environ, JITORCH_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_second_process_loads_kernels_from_disk(tmp_path):
    code = """
        import jitorch as J
        from jitorch.ops import elementwise as E
        x = J.arange(10, dtype=J.float64)
        y = (x * 2 + 1).exp().sum()
        disp = [d for k, d in E.MUL.kernels.items() if k[0] == "ew"][0]
        print(disp.stats.cache_hits and sum(disp.stats.cache_hits.values()),
              sum(disp.stats.cache_misses.values()), float(y))
    """
    first = _run(code, str(tmp_path)).split()
    second = _run(code, str(tmp_path)).split()
    assert first[1] == "1"  # compiled in the first process
    assert second[1] == "0" and second[0] == "1"  # loaded from disk in the second
    assert first[2] == second[2]


def test_generated_source_is_content_addressed(tmp_path, monkeypatch):
    monkeypatch.setenv("JITORCH_CACHE_DIR", str(tmp_path))
    src = codegen_cpu.render_elementwise("k_test", [("a0", np.dtype("float64"), np.dtype("float64"))],
                                         [("out", np.dtype("float64"), np.dtype("float64"))],
                                         ["y0 = x0 * 3.0"], "flat", False)
    k = kernel_cache.load_kernel(src, "k_test")
    out = np.empty(4)
    k(np.arange(4.0), out)
    np.testing.assert_array_equal(out, np.arange(4.0) * 3)
    files = [f for f in os.listdir(kernel_cache.cache_dir()) if f.endswith(".py")]
    assert len(files) == 1 and files[0].startswith("k_")
    assert kernel_cache.load_kernel(src, "k_test") is k


def _ulp_error(got, ref):
    ref32 = ref.astype(np.float32)
    spacing = np.spacing(np.abs(ref32)).astype(np.float64)
    return np.abs(got.astype(np.float64) - ref) / spacing


@pytest.mark.parametrize("name,ref,lo,hi", [
    ("exp", np.exp, -87.0, 88.0),
    ("tanh", np.tanh, -20.0, 20.0),
    ("sigmoid", lambda x: 1 / (1 + np.exp(-x)), -80.0, 80.0),
])
def test_float32_fast_math_accuracy(name, ref, lo, hi):
    x = np.concatenate([np.linspace(lo, hi, 200001), np.linspace(-1, 1, 20001), [0.0, -0.0, 1e-30, -1e-30]])
    x32 = x.astype(np.float32)
    got = getattr(jitorch, name)(jitorch.from_numpy(x32)).numpy()
    expect = ref(x32.astype(np.float64))
    assert np.max(_ulp_error(got, expect)) <= 4


@pytest.mark.parametrize("name", ["exp", "tanh", "sigmoid"])
def test_float32_fast_math_special_values(name):
    x = np.array([np.inf, -np.inf, np.nan, 1000.0, -1000.0], dtype=np.float32)
    got = getattr(jitorch, name)(jitorch.from_numpy(x)).numpy()
    with np.errstate(over="ignore"):
        expect = {"exp": np.exp, "tanh": np.tanh, "sigmoid": lambda v: 1 / (1 + np.exp(-v))}[name](x.astype(np.float64))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expect))
    np.testing.assert_allclose(got[~np.isnan(got)], expect[~np.isnan(expect)].astype(np.float32), rtol=1e-6)


def test_large_elementwise_uses_parallel_kernel():
    from jitorch.ops import elementwise as E
    n = jitorch.runtime.cpu.PARALLEL_THRESHOLD + 1
    a = jitorch.ones(n)
    (a + a).sum()
    assert any(k[0] == "ew" and k[-1] for k in E.ADD.kernels if isinstance(k, tuple) and k[0] == "ew")
