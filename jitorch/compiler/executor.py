"""Run a scheduled graph: fused kernels, extern primitives and views over device arrays.

Everything that can be decided once (kernel entry points, array shapes,
how each argument is laid out) is decided when the executor is built, so a
call is a short loop over prepared steps.  Each step runs on the device of the
values it produces: NumPy arrays and Numba CPU kernels here, CudaArrays and
numba.cuda kernels in ``executor_cuda.py``.
"""
from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from ..runtime import cpu, kernel_cache
from . import logs
from .codegen.cpu import render_group
from .ir import Graph, Value
from .schedule import VIEW_OPS, ExternStep, FusedGroup, ViewStep, schedule


@dataclasses.dataclass(eq=False, repr=False)
class KernelInfo:
    """What ``explain()`` and ``JITORCH_LOGS=code,perf`` report about one generated kernel."""

    name: str
    source: str
    group: object
    compile_s: float
    cache_hit: bool | None
    calls: int = 0
    total_s: float = 0.0
    source_file: str | None = None  # where the generated source lives in the kernel cache (CUDA kernels)


def _input_prep(cls, mode, full_shape, R, K):
    """How an input array becomes its kernel argument (a 1-D or (R, K) view; a copy only when the
    array's layout cannot be viewed that way)."""
    if mode == "flat":
        return lambda a: a.reshape(-1) if a.shape == full_shape else np.broadcast_to(a, full_shape).reshape(-1)
    if cls == "one":
        return lambda a: a.reshape(1)
    if cls == "row":
        return lambda a: a.reshape(R)
    if cls == "col":
        return lambda a: a.reshape(K)

    def full(a):
        if a.shape != full_shape:
            a = np.broadcast_to(a, full_shape)
        return a.reshape(R, K)
    return full


def _output_shape(cls, mode, R, K):
    """The shape a kernel takes an argument of class ``cls`` in."""
    if cls == "one":
        return (1,)
    if mode == "flat":
        return (R * K,)
    return {"row": (R,), "col": (K,)}.get(cls, (R, K))


# the eager kernels' threshold: on a quiet machine a 32x128x128 softmax ran 1.9x faster on 2
# threads, but with the cores shared (load 6-8 on 2 CPUs) a transformer step with every kernel
# above 256K elements parallel took twice as long, spinning threads waiting for a descheduled one
FUSED_PARALLEL_THRESHOLD = cpu.PARALLEL_THRESHOLD


class _Kernel:
    """A generated kernel's dispatcher with its entry points, one per argument layout."""

    def __init__(self, source: str, fn_name: str, info: KernelInfo):
        self.disp = kernel_cache.load_kernel(source, fn_name)
        self.entries = {}  # argument layouts -> compiled entry point
        self.c_entry = None  # the entry point for all-contiguous arguments (the usual case)
        self.info = info

    def __call__(self, args) -> None:
        key = kernel_cache.layout_key(args)
        entry = self.entries.get(key)
        if entry is not None:
            entry(*args)
            return
        info = self.info
        t0 = time.perf_counter()
        before = sum(self.disp.stats.cache_misses.values())
        kernel_cache.first_call(self.disp, args)  # compiles (or loads) this layout's machine code
        self.entries[key] = entry = kernel_cache.entry_point(self.disp, args)
        if all(k == 1 for k in key if isinstance(k, int)):
            self.c_entry = entry
        misses = sum(self.disp.stats.cache_misses.values()) - before
        info.cache_hit = misses == 0 if info.cache_hit is None else info.cache_hit and misses == 0
        info.compile_s += time.perf_counter() - t0
        logs.perf_compile(info)
        logs.progress.kernel(info.name, misses != 0)


class _FusedRunner:
    def __init__(self, group: FusedGroup, index: int):
        self.group = group
        full = group.rows + group.cols if group.cols else getattr(group, "_flat_shape", group.rows)
        self.full_shape = full
        if group.cols:
            self.R, self.K = math.prod(group.rows), math.prod(group.cols)
        elif full:
            self.R, self.K = math.prod(full[:-1]), full[-1]
        else:
            self.R, self.K = 1, 1
        parallel = self.R > 1 and self.R * self.K >= FUSED_PARALLEL_THRESHOLD
        # the function is named after what it fuses, not where it sits: identical groups (the
        # layers of a stack) render identical source and share one compiled kernel
        fn_name = group.name
        self.name = f"{fn_name}_{index}"
        t0 = time.perf_counter()
        src, self.plan, self.mode = render_group(group, fn_name, parallel)
        if self.mode == "flat" and parallel is False and self.R * self.K >= FUSED_PARALLEL_THRESHOLD:
            src, self.plan, self.mode = render_group(group, fn_name, True)  # a single row: flat is parallel
        self.source = src
        self.info = KernelInfo(self.name, src, group, 0.0, None)
        self.kernel = _Kernel(src, fn_name, self.info)
        self.info.compile_s = time.perf_counter() - t0
        R, K, mode = self.R, self.K, self.mode
        # (value id, the shape the kernel takes it in, how to get there from another shape)
        self.ins = [(v.id, _output_shape(cls, mode, R, K), _input_prep(cls, mode, full, R, K))
                    for kind, v, cls in self.plan if kind == "in"]
        self.outs = [(v.id, v.shape, v.dtype.numpy_dtype, _output_shape(cls, mode, R, K))
                     for kind, v, cls in self.plan if kind == "out"]

    def __call__(self, env):
        # a strided operand is copied by NumPy into the flat / row x column layout: measured
        # faster than a kernel indexing N-D strided arrays in place, which does not vectorize
        args = []
        for i, want, prep in self.ins:
            a = env[i]
            args.append(a if a.shape == want else prep(a))
        n_in = len(args)
        for vid, shape, dt, kshape in self.outs:
            a = np.empty(shape, dt)  # allocated in the value's own shape: a fresh array, not a view
            env[vid] = a
            args.append(a if shape == kshape else a.reshape(kshape))
        entry = self.kernel.c_entry
        if entry is not None:
            for k in range(n_in):  # outputs are fresh contiguous arrays
                if not args[k].flags.c_contiguous:
                    break
            else:
                entry(*args, self.R, self.K)
                return
        args.append(self.R)
        args.append(self.K)
        self.kernel(args)


def view_runner(node, device: str = "cpu"):
    """A view step: ``reshape`` straight through the array's own method, other views through the op's impl."""
    src = node.inputs[0].id
    out = node.outputs[0].id
    attrs = node.attrs
    if node.name == "reshape":
        shape = tuple(attrs["shape"])
        return lambda env: env.__setitem__(out, env[src].reshape(shape))
    if node.name == "permute" and device == "cpu":
        dims = tuple(attrs["dims"])
        return lambda env: env.__setitem__(out, env[src].transpose(dims))
    impl = node.op.impl[device]
    return lambda env: env.__setitem__(out, impl(env[src], **attrs))


def _same(a):
    return a


def elementwise_runner(node, run_elementwise, native=np.ndarray, foreign=_same):
    """A lone elementwise op through a device's eager ``run_elementwise``; operands whose class is not the
    device's ``native`` array class are converted by ``foreign`` first (host scalars reaching a CUDA step)."""
    compute = node.meta.get("compute") or node.outputs[0].dtype
    ins = [(True, i.id) if isinstance(i, Value) else (False, i) for i in node.inputs]
    o = node.outputs[0]
    op, out, out_dt, shape = node.op, o.id, o.dtype.numpy_dtype, o.shape

    def run_ew(env):
        ops = []
        for is_v, x in ins:
            if is_v:
                a = env[x]
                ops.append(a if a.__class__ is native else foreign(a))
            else:
                ops.append(x)
        env[out] = run_elementwise(op, ops, compute, out_dt, shape)
    return run_ew


def impl_runner(node, impl):
    """A kernel op step: ``impl`` (the op's implementation on the step's device) on the env's arrays."""
    outs = [o.id for o in node.outputs]
    ins = [i.id if isinstance(i, Value) else None for i in node.inputs]
    attrs = node.attrs

    def run(env):
        res = impl(*[env[i] if i is not None else None for i in ins], **attrs)
        if isinstance(res, tuple):
            for k, r in zip(outs, res):
                env[k] = r
        else:
            env[outs[0]] = res
    return run


def _extern_runner(node):
    if node.kind == "elementwise":
        return elementwise_runner(node, cpu.run_elementwise)
    return impl_runner(node, node.op.impl["cpu"])


class Executor:
    """A compiled graph: call with input arrays, get output arrays."""

    def __init__(self, graph: Graph, fuse: bool = True, cuda_graphs: bool = False):
        self.graph = graph
        # fuse=False interprets the graph node by node with the eager kernels (backend="eager", check=True)
        self.steps = schedule(graph) if fuse else [
            ViewStep(n) if n.name in VIEW_OPS else ExternStep(n) for n in graph.nodes]
        self.kernels: list[KernelInfo] = []
        self._run = []
        self.on_cuda = False
        fused_index = 0
        for s in self.steps:
            cuda = _on_cuda(s)
            self.on_cuda |= cuda
            if isinstance(s, FusedGroup) and len(s.nodes) == 1 and (cuda or _eager_is_as_good(s)):
                # a lone op the eager kernel runs as well (_eager_is_as_good): run that one (already
                # tuned, usually already compiled); CUDA always does
                self._run.append(_cuda().extern_runner(s.nodes[0]) if cuda else _extern_runner(s.nodes[0]))
            elif isinstance(s, FusedGroup):
                r = _cuda().CudaFusedRunner(s, fused_index) if cuda else _FusedRunner(s, fused_index)
                fused_index += 1
                self.kernels.append(r.info)
                logs.code(r.info)
                self._run.append(r)
            elif isinstance(s, ViewStep):
                self._run.append(_cuda().view_runner(s.node) if cuda else view_runner(s.node))
            else:
                self._run.append(_cuda().extern_runner(s.node) if cuda else _extern_runner(s.node))
        self.input_ids = [v.id for v in graph.inputs]
        self.const = [(c.id, c.const) for c in graph.constants]
        self.output_ids = [v.id for v in graph.outputs]
        self.out_devices = [v.device for v in graph.outputs]
        self.mutations = [(a.id, b.id) for a, b in graph.mutations]
        self.n_kernels = sum(1 for s in self.steps if not isinstance(s, ViewStep))
        self._ran = False
        # mode="reduce-overhead": replay the launches of a CUDA graph as one CUDA graph
        self.recorder = None
        if cuda_graphs and self.on_cuda:
            from .cudagraphs import Recorder
            self.recorder = Recorder(self)

    def __call__(self, arrays, env=None):
        """Run the graph on input arrays; returns the output arrays.

        With ``env`` (value id -> array, filled in as steps run) the steps always run
        directly, never through a CUDA graph replay.
        """
        if self.recorder is not None and env is None:
            return self.recorder(arrays)
        env = {} if env is None else env
        for vid, a in zip(self.input_ids, arrays):
            env[vid] = a
        for vid, t in self.const:
            env[vid] = t._data
        if not self._ran:
            self.run_steps(env)
        else:
            self._steps(env)
        for src, dst in self.mutations:
            a = env[src]
            if a.__class__ is np.ndarray:
                np.copyto(a, env[dst])
            else:
                _cuda().copy_into(a, env[dst])
        return [env[i] for i in self.output_ids]

    def bind(self, arrays, env) -> None:
        """Put the inputs and constants into ``env`` (value id -> array)."""
        for vid, a in zip(self.input_ids, arrays):
            env[vid] = a
        for vid, t in self.const:
            env[vid] = t._data

    def run_steps(self, env) -> None:
        """The steps alone (a CUDA graph capture records exactly these launches)."""
        if not self._ran:
            # the first run compiles the kernels (lazily, per argument layout)
            self._ran = True
            logs.progress.begin()
            try:
                self._steps(env)
            finally:
                logs.progress.end()
        else:
            self._steps(env)

    def _steps(self, env) -> None:
        if logs.enabled("perf"):
            _run_timed(self, env)
        else:
            for step in self._run:
                step(env)


def _eager_is_as_good(group: FusedGroup) -> bool:
    """Would the eager kernel run a lone op about as fast as a generated one?

    For an elementwise op over full-size operands it is the same flat loop.  A
    broadcast operand (a bias over rows) sends eager through its strided N-D
    kernel, ~3x slower than a generated row x column loop, and an eager reduction
    returns a view of its result, which a ``.grad`` then copies.  Those two get a
    generated kernel (measured: never slower than the eager one) once they are big
    enough to repay its compile (~0.5 s cold): on small tensors either way costs a
    few microseconds.
    """
    node = group.nodes[0]
    out = node.outputs[0]
    if max([out.numel] + [i.numel for i in node.inputs if isinstance(i, Value)]) < _LONE_KERNEL_MIN:
        return True
    return node.kind == "elementwise" and all(
        not isinstance(i, Value) or i.shape == out.shape for i in node.inputs)


_LONE_KERNEL_MIN = 1 << 16


def _cuda():
    from . import executor_cuda
    return executor_cuda


def _on_cuda(step) -> bool:
    """Does ``step`` produce CUDA values?  (Each step runs on the device of its outputs.)"""
    nodes = step.nodes if isinstance(step, FusedGroup) else [step.node]
    for n in nodes:
        for o in n.outputs:
            return getattr(o.device, "type", "cpu") == "cuda"
    return False


def _step_bytes(step, env) -> int:
    nodes = step.nodes if isinstance(step, FusedGroup) else [step.node]
    ids = {i.id for n in nodes for i in n.inputs if isinstance(i, Value)}
    ids.update(o.id for n in nodes for o in n.outputs)
    return sum(env[i].nbytes for i in ids if i in env and hasattr(env[i], "nbytes"))


def _describe(step) -> str:
    if isinstance(step, FusedGroup):
        shape = step.rows + step.cols if step.cols else getattr(step, "_flat_shape", step.rows)
        return f"{step.name} {list(shape)}"
    return f"{step.name} {[list(o.shape) for o in step.node.outputs]}"


def _run_timed(self, env) -> None:
    """JITORCH_LOGS=perf: time every kernel and report its bandwidth."""
    total = 0.0
    kernels = 0
    for step, run in zip(self.steps, self._run):
        t0 = time.perf_counter()
        run(env)
        if self.on_cuda:
            _cuda().synchronize()  # launches are asynchronous: time the kernel, not its launch
        dt = time.perf_counter() - t0
        if isinstance(step, ViewStep):
            continue
        kernels += 1
        total += dt
        gbs = _step_bytes(step, env) / dt / 1e9 if dt > 0 else 0.0
        logs.emit("perf", f"{_describe(step)}: {dt * 1e6:.1f} us, {gbs:.2f} GB/s")
    logs.emit("perf", f"graph: {kernels} kernel(s), {total * 1e3:.3f} ms")



def first_divergence(graph: Graph, arrays, rtol=1e-4, atol=1e-5):
    """Run fused and node-by-node; the first node whose stored result differs, or None."""
    import copy
    fused_env, ref_env = {}, {}
    # store every intermediate, so the report names the node and not just its group's output
    probe = copy.copy(graph)
    probe.outputs = list(graph.outputs) + [o for n in graph.nodes for o in n.outputs]
    Executor(probe)([a.copy() for a in arrays], fused_env)
    Executor(graph, fuse=False)([a.copy() for a in arrays], ref_env)
    host = _cuda().to_host if any(not isinstance(a, np.ndarray) for a in arrays) else np.asarray
    for node in graph.nodes:
        for o in node.outputs:
            if o.id in fused_env and o.id in ref_env:
                a, b = host(fused_env[o.id]), host(ref_env[o.id])
                if a.shape != b.shape or not np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True):
                    err = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.shape == b.shape \
                        else float("nan")
                    return node, err
    return None
