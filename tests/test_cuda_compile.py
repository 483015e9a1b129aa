"""jitorch.compile on CUDA tensors: the fused groups become numba.cuda kernels.

Runs on Numba's CUDA simulator (tests/conftest.py) with tensors of a few dozen
elements: compiled results equal eager CUDA (and CPU) results, kernel counts
match the CPU compiler's, the generated source has the expected structure
(grid-stride loops, block-per-row reductions), guards include the device, and
a second process reuses the generated kernel source from the disk cache.
``test_generated_kernels_compile_to_ptx`` (slow) compiles the GPU variant of
each generated kernel with the real numba.cuda compiler where NVVM is present.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from _cuda_kernel_helpers import fast_sim_threads  # noqa: F401 - autouse fixture

import jitorch as J
import jitorch.nn.functional as F
from jitorch import nn

pytestmark = pytest.mark.skipif(not J.cuda.is_available(), reason="numba.cuda (or its simulator) is missing")

CUDA = "cuda"


def _close(got, want, rtol=1e-5, atol=1e-6):
    assert got.device == want.device, (got.device, want.device)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    np.testing.assert_allclose(got.detach().cpu().numpy().astype(np.float64),
                               want.detach().cpu().numpy().astype(np.float64), rtol=rtol, atol=atol)


def _entry(cf):
    cf = getattr(cf, "_compiled", cf)
    assert len(cf.entries) == 1
    return next(iter(cf.entries.values()))


def _cuda_kernels(ex):
    from jitorch.compiler.executor_cuda import CudaFusedRunner
    return [r for r in ex._run if isinstance(r, CudaFusedRunner)]


def _run_twice(cf, *args):
    """The first call returns the capture's eager result; the second runs the compiled graph."""
    cf(*args)
    return cf(*args)


def gelu_chain(x, w, b):
    v = x * w + b
    return 0.5 * v * (1 + J.tanh(0.79788456 * (v + 0.044715 * v ** 3)))


def test_elementwise_chain_is_one_grid_stride_kernel():
    x, w, b = J.randn(4, 6, device=CUDA), J.randn(6, device=CUDA), J.randn(4, 1, device=CUDA)
    cf = J.compile(gelu_chain)
    got = _run_twice(cf, x, w, b)
    _close(got, gelu_chain(x, w, b))
    _close(got.cpu(), gelu_chain(x.cpu(), w.cpu(), b.cpu()), rtol=1e-5, atol=1e-6)
    e = _entry(cf)
    assert e.forward.n_kernels == 1
    (k,) = _cuda_kernels(e.forward)
    assert "@cuda.jit" in k.info.source and "cuda.grid(1)" in k.info.source and "tanh" in k.info.source
    # the bias broadcasts along rows, the row scale along columns: indexed without strides
    assert "i % m1" in k.info.source and "i // d2" in k.info.source
    calls = k.info.calls
    cf(x, w, b)
    assert k.info.calls == calls + 1  # one launch per call
    assert len(k.plans) == 1 and len(k.launchers) == 1  # contiguous inputs use the kernel rendered at compile time


def test_softmax_and_layer_norm_are_one_kernel_each():
    x = J.randn(5, 7, device=CUDA)
    sm = J.compile(lambda t: J.softmax(t, dim=-1))
    _close(_run_twice(sm, x), J.softmax(x, dim=-1))
    assert _entry(sm).forward.n_kernels == 1
    (k,) = _cuda_kernels(_entry(sm).forward)
    src = k.info.source
    assert "cuda.shared.array" in src and "cuda.syncthreads()" in src and "cuda.blockIdx.x" in src

    w, b = J.randn(7, device=CUDA), J.randn(7, device=CUDA)
    ln = J.compile(lambda t, w, b: F.layer_norm(t, (7,), w, b))
    _close(_run_twice(ln, x, w, b), F.layer_norm(x, (7,), w, b), rtol=1e-5, atol=1e-5)
    assert _entry(ln).forward.n_kernels == 1
    _close(ln(x, w, b).cpu(), F.layer_norm(x.cpu(), (7,), w.cpu(), b.cpu()), rtol=1e-5, atol=1e-5)


def test_log_softmax_mean_var_and_cross_entropy():
    x = J.randn(3, 2, 5, device=CUDA)
    y = J.tensor([1, 0, 4], device=CUDA)

    def f(t, target):
        return (F.log_softmax(t, -1), t.mean(-1), t.var(-1), t.amax((-2, -1)),
                F.cross_entropy(t[:, 0], target))

    cf = J.compile(f)
    for got, want in zip(_run_twice(cf, x, y), f(x, y)):
        _close(got, want, rtol=1e-5, atol=1e-5)


def test_reductions_over_leading_dims_and_whole_tensors():
    x = J.randn(6, 5, device=CUDA)

    def f(t):
        return (t * 2).sum(0), t.exp().mean(), t.amax(-1), t.abs().amin(), (t > 0).sum(0)

    cf = J.compile(f)
    for got, want in zip(_run_twice(cf, x), f(x)):
        _close(got, want, rtol=1e-5, atol=1e-5)
    for got, want in zip(cf(x), f(x.cpu())):
        _close(got.cpu(), want, rtol=1e-5, atol=1e-5)


def test_strided_and_broadcast_layouts_get_their_own_variant():
    def f(a, u):
        return J.sigmoid(a) * u + a.sum(-1, keepdim=True)

    cf = J.compile(f)
    a, u = J.randn(4, 6, device=CUDA), J.randn(6, 4, device=CUDA).t()
    _close(_run_twice(cf, a, u), f(a, u))
    for a2 in (J.randn(6, 4, device=CUDA).t(), J.randn(4, 6, device=CUDA).flip(1), J.randn(4, 12, device=CUDA)[:, ::2]):
        _close(cf(a2, u), f(a2, u))
    kinds = {layout.kinds for k in _cuda_kernels(_entry(cf).forward) for layout in k.launchers}
    assert any("s" in ks for ks in kinds)


def test_mixed_dtypes_bool_and_integer_outputs():
    x = J.randn(3, 4, device=CUDA)
    i = J.arange(4, device=CUDA)

    def f(t, idx):
        return ((t + idx) * 2 - (idx > 2).float() + t.double().sum(1).float().unsqueeze(1),
                (t.int() * 3 + 1), J.isnan(t) | (t > 0.5), (t > 0).sum(-1))

    cf = J.compile(f)
    for got, want in zip(_run_twice(cf, x, i), f(x, i)):
        _close(got, want)


def test_in_place_updates_of_cuda_inputs_are_written_back():
    def f(a, buf):
        buf.add_(a)
        return buf * 2

    x = J.randn(3, 4, device=CUDA)
    buf, ref = J.zeros(3, 4, device=CUDA), J.zeros(3, 4, device=CUDA)
    cf = J.compile(f)
    for _ in range(3):
        _close(cf(x, buf), f(x, ref))
        _close(buf, ref)
    assert not _entry(cf).breaks


def _mlp():
    J.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))


def test_mlp_forward_and_backward_graphs_run_on_cuda_with_eager_gradients():
    eager = _mlp().cuda()
    twin = _mlp().cuda()
    compiled = J.compile(twin)
    x, y = J.randn(5, 4, device=CUDA), J.tensor([0, 2, 1, 1, 0], device=CUDA)
    for _ in range(2):
        for m in (eager, compiled):
            m.zero_grad()
            F.cross_entropy(m(x), y).backward()
        for p, q in zip(eager.parameters(), twin.parameters()):
            assert q.grad.device == p.grad.device
            _close(q.grad, p.grad, rtol=1e-5, atol=1e-6)
    e = _entry(compiled)
    assert e.backward is not None and e.forward.on_cuda and e.backward.on_cuda
    assert _cuda_kernels(e.backward)  # the backward graph has fused CUDA kernels too


def test_compiled_model_trains_with_sgd_like_eager():
    eager, twin = _mlp().cuda(), _mlp().cuda()
    compiled = J.compile(twin)
    opts = [J.optim.SGD(m.parameters(), lr=0.1, momentum=0.9) for m in (eager, twin)]
    x, y = J.randn(6, 4, device=CUDA), J.tensor([0, 1, 2, 0, 1, 2], device=CUDA)
    for _ in range(3):
        losses = []
        for m, opt in zip((eager, compiled), opts):
            opt.zero_grad()
            loss = F.cross_entropy(m(x), y)
            loss.backward()
            opt.step()
            losses.append(loss)
        _close(losses[1], losses[0], rtol=1e-5, atol=1e-6)
    for p, q in zip(eager.parameters(), twin.parameters()):
        _close(q, p, rtol=1e-5, atol=1e-6)
    e = _entry(compiled)
    assert not e.breaks and e.backward is not None


def test_reduce_overhead_runs_and_equals_eager():
    from jitorch.compiler import cudagraphs

    def f(t, w):
        return J.softmax(t * w, -1) + t.sum()

    x, w = J.randn(3, 5, device=CUDA), J.randn(5, device=CUDA)
    cf = J.compile(f, mode="reduce-overhead")
    for _ in range(3):
        _close(cf(x, w), f(x, w))
    rec = _entry(cf).forward.recorder
    assert rec is not None
    # the simulator has no CUDA graphs: the kernels run one by one, and the reason is noted once
    assert rec.reason and rec.graph is None
    assert rec.reason in cudagraphs.fallback_reasons()


class _StandInGraph:
    """Replays a recording by running the recorded executor's steps again on the recording's arrays."""

    def __init__(self, stream):
        self.stream = stream

    def launch(self, stream):
        rec = self.stream.recorder
        for step in rec.ex._run:
            step(rec._env)

    def close(self):
        pass


class _StandInStream:
    """Just enough of cuda.core's Stream/GraphBuilder for the recorder's bookkeeping (the simulator has no graphs)."""

    handle = 0

    def __init__(self):
        self.recorder = None
        self.modes = []

    def create_graph_builder(self):
        return self

    @property
    def stream(self):
        return self

    def begin_building(self, mode):
        self.modes.append(mode)

    def end_building(self):
        pass

    def complete(self):
        return _StandInGraph(self)

    def close(self):
        pass


def test_reduce_overhead_bookkeeping_with_a_stand_in_graph(monkeypatch):
    """Inputs that stay put are read in place, moving ones are copied in, in-place updates are written back,
    outputs are copies, and a moved in-place input records again (the GPU-only parts are stood in for)."""
    from jitorch.compiler import cudagraphs
    stream = _StandInStream()
    monkeypatch.setattr(cudagraphs, "unsupported_reason", lambda ex: None)
    monkeypatch.setattr(cudagraphs, "capture_stream", lambda: stream)

    def f(x, w, count):
        count.add_(1)
        return J.softmax(x * w, -1) + count

    w = J.randn(5, device=CUDA)
    count, ref_count = J.zeros(1, device=CUDA), J.zeros(1, device=CUDA)
    cf = J.compile(f, mode="reduce-overhead")
    outs = []
    for k in range(6):
        if k == 4:
            w = J.randn(5, device=CUDA)  # a new "parameter": what was read in place moved
        x = J.randn(3, 5, device=CUDA)
        got = cf(x, w, count)
        _close(got, f(x, w, ref_count))
        _close(count, ref_count)
        outs.append(got)
        if k == 0:
            stream.recorder = _entry(cf).forward.recorder
        if k == 2:
            assert stream.recorder._static == [False, True, True]  # x moves every call; w and count stay put
    rec = stream.recorder
    assert rec.reason is None and stream.modes == ["relaxed", "relaxed"]
    assert rec.recordings == 2 and rec.replays == 4  # every call from the third on launches the graph
    assert rec._static == [False, False, True]  # the moved w is copied in from then on
    graph_storages = {id(a.storage) for a in rec._env.values()}
    assert all(id(o._data.storage) not in graph_storages for o in outs)  # outputs are copies, not graph buffers
    rec.close()
    assert rec.graph is None and rec._pool is None


def test_device_is_part_of_the_guards():
    def f(t):
        return J.sigmoid(t) * t.sum(-1, keepdim=True)

    cf = J.compile(f)
    x = J.randn(3, 4)
    _close(_run_twice(cf, x), f(x))
    xg = x.cuda()
    got = _run_twice(cf, xg)
    assert got.device.type == "cuda"
    _close(got, f(xg))
    _close(cf(x), f(x))  # the CPU entry is still there and still right
    assert len(cf.entries) == 2
    assert any("device: cpu -> cuda" in line for line in cf.recompiles)


def test_a_graph_break_on_cuda_runs_eagerly():
    def f(t):
        return t * t.sum().item()

    x = J.randn(2, 3, device=CUDA)
    cf = J.compile(f)
    for _ in range(3):
        _close(cf(x), f(x))
    assert _entry(cf).breaks


def test_check_mode_and_prints_on_cuda(capsys):
    def f(t):
        u = t * 2
        print("u:", u)
        return J.softmax(u, -1)

    x = J.randn(2, 3, device=CUDA)
    cf = J.compile(f, check=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # check=True warns on a divergence
        _close(_run_twice(cf, x), f(x))
    assert "device='cuda:0'" in capsys.readouterr().out


_CACHE_SCRIPT = textwrap.dedent("""
    import json, os
    import jitorch as J
    cf = J.compile(lambda a, b: J.tanh(a * b) + 1)
    x = J.randn(8, device="cuda")
    cf(x, x); cf(x, x)
    k = next(iter(cf.entries.values())).forward.kernels[0]
    print(json.dumps({"file": k.source_file, "hit": k.cache_hit, "mtime": os.path.getmtime(k.source_file)}))
""")


def test_a_second_process_reuses_the_generated_kernel_source(tmp_path):
    # numba's simulator keeps no compiled code on disk, so what a second process can reuse is the
    # generated source file; on a GPU numba-cuda's cache=True adds the cubin beside it
    env = dict(os.environ, JITORCH_CACHE_DIR=str(tmp_path), NUMBA_ENABLE_CUDASIM="1", JITORCH_COMPILE_PROGRESS="0")
    runs = []
    for _ in range(2):
        res = subprocess.run([sys.executable, "-c", _CACHE_SCRIPT], capture_output=True, text=True, env=env,
                             timeout=300, check=False)
        assert res.returncode == 0, res.stderr[-3000:]
        runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
    first, second = runs
    assert first["file"] == second["file"] and first["file"].startswith(str(tmp_path))
    assert first["hit"] is False and second["hit"] is True
    assert first["mtime"] == second["mtime"]  # never rewritten


_PTX_SCRIPT = textwrap.dedent("""
    import importlib.util, json, sys
    import numpy as np
    from numba import cuda
    from numba.cuda import types
    from numba.cuda.np import numpy_support
    def probe(a):
        a[0] = 1.0
    try:
        cuda.compile_ptx(probe, (types.float32[::1],), cc=(9, 0))
    except Exception as e:
        print("no CUDA compiler:", type(e).__name__, str(e)[:300])
        sys.exit(77)
    fails = []
    for k, (src, name, params) in enumerate(json.load(open(sys.argv[1]))):
        # compile_ptx cannot type register_jitable helpers without a driver: check the kernel around them
        src = src.replace("exp32(", "math.exp(").replace("tanh32(", "math.tanh(").replace("sigmoid32(", "math.exp(")
        path = sys.argv[1] + f".{k}.py"
        open(path, "w").write(src)
        spec = importlib.util.spec_from_file_location(f"k{k}", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sig = tuple(types.int64 if p[0] == "i64" else types.CPointer(numpy_support.from_dtype(np.dtype(p[1])))
                    for p in params)
        try:
            cuda.compile_ptx(getattr(mod, name).py_func, sig, cc=(9, 0))
        except Exception as e:
            fails.append(f"{name}: {type(e).__name__}: {str(e)[-1500:]}")
    print("\\n".join(fails))
    sys.exit(1 if fails else 0)
""")


@pytest.mark.slow
def test_generated_kernels_compile_to_ptx(tmp_path):
    """The GPU variant (warp shuffles, 32-256 threads per row) of each generated kernel type-checks for sm_90."""
    from jitorch.compiler.codegen import cuda as cg
    x = J.randn(3, 5, device=CUDA, requires_grad=True)
    w = J.randn(5, device=CUDA, requires_grad=True)
    fns = [(lambda t: J.softmax(t, -1), (x,)), (lambda t, w: F.layer_norm(t, (5,), w, w), (x, w)),
           (lambda t: (t.var(-1), t.amax(-1), (t > 0).sum(-1), t.double().prod(-1)), (x,)),
           (lambda t, w: (gelu_chain(t, w, w), J.isnan(t) | (t > w), t.int() * 3), (x, w))]
    sources = []
    for f, args in fns:
        cf = J.compile(f)
        out = _run_twice(cf, *args)
        out = out[0] if isinstance(out, tuple) else out
        out.sum().backward()
        e = _entry(cf)
        for ex in (e.forward, e.backward):
            for k in _cuda_kernels(ex) if ex is not None else ():
                for lay in k.launchers:
                    gpu = cg.Layout(lay.mode, lay.kinds, lay.nd, cg.row_threads(k.K, False) if k.rows_mode else 0,
                                    k.rows_mode)
                    src, params = cg.render(k.group, k.fn_name, gpu)
                    sources.append((src, k.fn_name, [[str(p) for p in spec] for spec in params]))
    assert len(sources) >= 6
    path = tmp_path / "kernels.json"
    path.write_text(json.dumps(sources))
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    res = subprocess.run([sys.executable, "-c", _PTX_SCRIPT, str(path)], capture_output=True, text=True, env=env,
                         timeout=1800, check=False)
    if res.returncode == 77:
        pytest.skip("no CUDA compiler (NVVM/NVRTC) here: " + res.stdout.strip()[-300:])
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-3000:]
