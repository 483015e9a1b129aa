"""The CUDA half of the executor: steps whose values live on a CUDA device.

- fused groups run one generated numba.cuda kernel (``codegen/cuda.py``), written
  to the same content-addressed disk cache as every other generated kernel
  (``runtime/kernel_cache.py``) and launched through ``dispatch_cache``'s
  launchers (compiled once for an explicit signature of pointers and int64s,
  then launched without numba's per-call type dispatch);
- extern steps call ``op.impl["cuda"]`` (or the visible host fallback, like eager);
- lone elementwise ops run the eager CUDA kernel, as the CPU executor does;
- views are ``CudaArray`` views.

A fused kernel's source depends on how its inputs are laid out (contiguous,
broadcast, strided: the ``Layout`` of ``codegen/cuda.py``).  The layout of
contiguous inputs is rendered when the executor is built (so ``explain()`` and
``JITORCH_LOGS=code`` show it); any other layout met at run time gets its own
variant, once, keyed by the inputs' strides.
"""
from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from . import executor, logs
from .codegen import cuda as cg
from .codegen.common import full_shape
from .ir import Value


def _rt():
    """The CUDA runtime modules (imported on first use: ``import jitorch`` never imports numba.cuda)."""
    from ..runtime.cuda import array, backend, dispatch_cache, driver, launch
    from ..runtime.cuda import elementwise as ew
    backend.load()
    return array, dispatch_cache, driver, launch, ew


def is_cuda(v: Value) -> bool:
    return getattr(v.device, "type", "cpu") == "cuda"


def to_device(a):
    """A host array that reached a CUDA step (a CPU constant, e.g. a 0-d tensor) as a device array."""
    from ..runtime.cuda.array import CudaArray, from_host
    return a if isinstance(a, CudaArray) else from_host(np.asarray(a))


def copy_into(dst, src) -> None:
    """``dst[...] = src`` for an in-place update of a graph input, on whichever device ``dst`` lives."""
    if isinstance(dst, np.ndarray):
        np.copyto(dst, src if isinstance(src, np.ndarray) else src.to_host())
        return
    from ..runtime.cuda.copy import copy_into as cuda_copy
    cuda_copy(dst, to_device(src))


def to_host(a) -> np.ndarray:
    return a if isinstance(a, np.ndarray) else a.to_host()


@dataclasses.dataclass(slots=True)
class _Plan:
    """Everything a call with one input layout needs: the launcher and the per-input extras."""

    launcher: object
    layout: object
    lead: list
    extras: list
    copy: tuple
    grid: tuple
    source: str


def _c_strides(shape) -> tuple:
    acc, out = 1, []
    for s in reversed(shape):
        out.append(acc)
        acc *= max(s, 1)
    return tuple(reversed(out))


def _bcast_strides(shape, strides, full) -> tuple:
    """Element strides of an array of ``shape``/``strides`` broadcast to ``full`` (0 along broadcast dims)."""
    lead = len(full) - len(shape)
    return (0,) * lead + tuple(0 if n == 1 and f != 1 else s for s, n, f in zip(strides, shape, full[lead:]))


class CudaFusedRunner:
    """One fused group on CUDA: a generated kernel per input layout, launched cheaply."""

    def __init__(self, group, index: int):
        array, self._dc, driver, self._launch, _ = _rt()
        self._empty = array.empty
        self.group = group
        self.full_shape = full_shape(group)
        self.rows_mode = bool(group.cols)
        if self.rows_mode:
            self.R, self.K = math.prod(group.rows), math.prod(group.cols)
            self.n = self.R * self.K
        else:
            self.n = math.prod(self.full_shape)
            self.R, self.K = 1, self.n
        # nothing to launch for no rows; rows of zero columns still reduce to their initial values
        self.empty_domain = self.R == 0 if self.rows_mode else self.n == 0
        self.sim = driver.simulated()
        self.threads = cg.row_threads(self.K, self.sim) if self.rows_mode else 0
        self.fn_name = group.name
        self.name = f"{group.name}_{index}"
        self.in_values = list(group.inputs)
        self.in_ids = [v.id for v in group.inputs]
        self.outs = [(v.id, v.shape, v.dtype.numpy_dtype) for v in group.outputs]
        self.plans: dict = {}  # input strides -> _Plan
        self.launchers: dict = {}  # Layout -> launcher (several stride keys may share one)
        self.source_files: list = []
        self._hit = None
        t0 = time.perf_counter()
        # the layout of contiguous inputs, rendered now (the common one, and what explain() shows)
        descs = [(v.shape, _c_strides(v.shape), True, v.numel) for v in group.inputs]
        plan = self._make_plan(descs)
        self.info = executor.KernelInfo(self.name, plan.source, group, time.perf_counter() - t0, self._hit)
        self.info.source_file = self.source_files[0] if self.source_files else None
        # keyed like a call: by byte strides (the layout of arrays from ``array.empty``)
        self._static_key = tuple(tuple(s * v.dtype.numpy_dtype.itemsize for s in _c_strides(v.shape))
                                 for v in group.inputs)
        self.plans[self._static_key] = plan

    # -- planning ---------------------------------------------------------------------------------
    def _make_plan(self, descs) -> _Plan:
        """``descs``: per input (shape, element strides, C-contiguous, size)."""
        g = self.group
        F = self.full_shape
        kinds, copy = [], []
        fixed = []
        for v, (shape, st, contig, size) in zip(g.inputs, descs):
            needs_copy = any(s < 0 for s in st) or (self.rows_mode and g.shape_class(v) == "row" and not contig
                                                   and size != 1)
            if needs_copy:  # negative strides (pointers index forward only), or a strided row vector
                st, contig = _c_strides(shape), True
            copy.append(needs_copy)
            fixed.append((shape, st, contig, size))
            kinds.append(cg.classify(g, v, shape, st, contig, size))
        strided = [k for k, kind in enumerate(kinds) if kind == "s"]
        bst = {k: _bcast_strides(fixed[k][0], fixed[k][1], F) for k in strided}
        extras = []
        from ..runtime.cuda.elementwise import coalesce
        if self.rows_mode:
            nr = len(g.rows)
            rdims, rst = coalesce(g.rows, [bst[k][:nr] for k in strided]) if strided else ((), [])
            cdims, cst = coalesce(g.cols, [bst[k][nr:] for k in strided]) if strided else ((), [])
            nd = (len(rdims), len(cdims))
            lead = [self.R, self.K, *rdims, *cdims]
            row_of = dict(zip(strided, rst))
            col_of = dict(zip(strided, cst))
        else:
            dims, fst = coalesce(F, [bst[k] for k in strided]) if strided else ((), [])
            nd = (len(dims),)
            lead = [self.n, *dims]
            flat_of = dict(zip(strided, fst))
        for k, kind in enumerate(kinds):
            shape = fixed[k][0]
            if kind == "tail":
                extras.append((cg.tail_modulus(g, shape),))
            elif kind == "head":
                extras.append((cg.head_divisor(g, shape),))
            elif kind == "s":
                extras.append(tuple(row_of[k]) + tuple(col_of[k]) if self.rows_mode else tuple(flat_of[k]))
            else:
                extras.append(())
        layout = cg.Layout("rows" if self.rows_mode else "flat", tuple(kinds), nd, self.threads,
                           self.rows_mode and not self.sim)
        launcher, source = self._launcher(layout)
        if self.rows_mode:
            grid = (self._launch.config(max(self.R, 1) * self.threads, self.threads)[0], self.threads)
        else:
            grid = self._launch.config(self.n)
        return _Plan(launcher, layout, lead, extras, tuple(k for k, c in enumerate(copy) if c), grid, source)

    def _launcher(self, layout):
        hit = self.launchers.get(layout)
        if hit is not None:
            return hit
        from ..runtime import kernel_cache
        source, specs = cg.render(self.group, self.fn_name, layout)
        mod = kernel_cache.load_module(source)
        path = getattr(mod, "__file__", None)
        self._hit = bool(getattr(mod, "__jitorch_found_on_disk__", False))  # the source file was already there
        self.source_files.append(path)
        launcher = self._dc.make_launcher(getattr(mod, self.fn_name), specs, self.fn_name)
        if len(self.launchers) and logs.enabled("code"):
            logs.emit("code", f"kernel {self.name} (inputs laid out as {layout.kinds}):\n{source}")
        self.launchers[layout] = (launcher, source)
        return launcher, source

    # -- running ----------------------------------------------------------------------------------
    def __call__(self, env):
        arrs = [env[i] for i in self.in_ids]
        for k, a in enumerate(arrs):
            if isinstance(a, np.ndarray):
                arrs[k] = to_device(a)
        key = tuple([a.strides for a in arrs])
        plan = self.plans.get(key)
        if plan is None:
            plan = self._plan_for(arrs, key)
        for k in plan.copy:
            arrs[k] = arrs[k].copy()
        args = list(plan.lead)
        for a, ex in zip(arrs, plan.extras):
            args.append(a)
            if ex:
                args += ex
        empty = self._empty
        for vid, shape, dt in self.outs:
            o = empty(shape, dt)
            env[vid] = o
            args.append(o)
        if self.empty_domain:
            return
        self.info.calls += 1
        plan.launcher(plan.grid[0], plan.grid[1], *args)

    def _plan_for(self, arrs, key) -> _Plan:
        descs = []
        for a in arrs:
            isz = a.dtype.itemsize
            descs.append((a.shape, tuple(s // isz for s in a.strides), a.flags.c_contiguous, a.size))
        if len(self.plans) > 64:  # a caller cycling through layouts: keep the table bounded
            self.plans = {self._static_key: self.plans[self._static_key]}
        plan = self.plans[key] = self._make_plan(descs)
        return plan


def view_runner(node):
    """A view step over a CudaArray: metadata only (reshape copies when the layout requires, like NumPy)."""
    _rt()
    return executor.view_runner(node, "cuda")


def _host_scalar(a):
    """A 0-d host array operand of a CUDA elementwise op: its value (the eager kernels take Python scalars)."""
    return a[()] if isinstance(a, np.ndarray) and a.ndim == 0 else to_device(a)


def extern_runner(node):
    """A kernel op (or a lone elementwise op) on CUDA arrays, through the eager CUDA implementations."""
    _, _, _, _, ew = _rt()
    if node.kind == "elementwise":
        from ..runtime.cuda.array import CudaArray
        return executor.elementwise_runner(node, ew.run_elementwise, CudaArray, _host_scalar)
    return executor.impl_runner(node, _cuda_impl(node))


def _cuda_impl(node):
    """``op.impl["cuda"]``; a random replay runs its device-generic implementation; else the host fallback."""
    op = node.op
    fn = op.impl.get("cuda")
    if fn is not None:
        return fn
    if node.meta.get("random"):
        cpu_fn = op.impl["cpu"]  # re-runs the recorded jitorch call, which draws on the tensor's own device

        def replay(*arrays, **attrs):
            r = cpu_fn(*arrays, **attrs)
            return to_device(r) if isinstance(r, np.ndarray) else r
        return replay
    from .. import _dispatch
    return _dispatch._missing_impl(op, node.outputs[0].device, None)


def synchronize() -> None:
    """Wait for queued kernels (JITORCH_LOGS=perf timings; a no-op under the simulator)."""
    from ..runtime.cuda import driver
    if not driver.simulated():
        driver.cuda_module().synchronize()
