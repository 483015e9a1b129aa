"""``mode="reduce-overhead"``: replay a compiled CUDA graph's launches as one CUDA graph.

A compiled graph on CUDA is a fixed sequence of kernel launches over arrays
whose shapes never change (every new shape is another guard entry, with its own
executor).  Launching them one by one costs Python and driver time per kernel;
recorded once into a CUDA graph they replay with one ``cuGraphLaunch``, as
``torch.compile(mode="reduce-overhead")`` does.

How an executor's :class:`Recorder` runs it:

1. the first call runs the steps normally (kernels get compiled, cuBLAS and the
   caching allocator warm up: nothing may compile or synchronize during capture)
   and notes where each input lives;
2. the second call records: inputs that are still at the same address (a
   module's parameters and buffers, updated in place by optimizers) are read in
   place; every other input is copied into a graph-owned buffer first.  The
   steps run with every launch redirected to a capturing stream (cuda.core's
   ``GraphBuilder`` over a *blocking* stream, so any stray work on the legacy
   default stream, or a synchronizing call, makes the capture fail loudly instead
   of silently running outside the graph), then the graph is instantiated and
   launched;
3. later calls copy the moving inputs into their buffers, launch the graph,
   write back in-place updates of inputs, and return copies of the outputs (the
   graph's own output buffers are overwritten by the next replay).  A parameter
   that moved (replaced by the user) records again, at most ``MAX_RECORDINGS``
   times.

Memory the graph uses must never be handed to anyone else while the graph
exists: the arrays of the recorded run are kept, and blocks freed *during* the
capture go to a private list (:class:`_PrivatePool`) instead of the allocator's
free lists.

Whenever recording is impossible the executor runs its kernels one by one, and
says why once (``JITORCH_LOGS=perf``): under Numba's simulator (no CUDA graphs),
for graphs with random ops (a replay would draw the same numbers) or CPU steps,
or when the capture fails (an op that synchronizes or copies through the host).

Untested without a GPU: everything past the simulator check.  Written against
numba-cuda 0.30 / cuda.core 1.2 (``Stream.create_graph_builder``,
``GraphBuilder.begin_building/end_building/complete``, ``Graph.launch``).  The
launch redirection and the private pool reach into ``runtime/cuda`` module
state (see :func:`_launches_on`, :class:`_PrivatePool`): stopgaps until the
runtime offers a current-stream setting and a graph memory pool.
"""
from __future__ import annotations

import contextlib
import functools

from . import logs

MAX_RECORDINGS = 4
_noted: set = set()


def _note_once(reason: str) -> None:
    if reason not in _noted:
        _noted.add(reason)
        logs.emit("perf", f'mode="reduce-overhead": no CUDA graph: {reason}; running the kernels one by one')


def fallback_reasons() -> set:
    """Why CUDA graphs were not used in this process (for tests and debugging)."""
    return set(_noted)


def unsupported_reason(ex) -> str | None:
    """Why executor ``ex`` cannot be replayed as a CUDA graph, or None."""
    from ..runtime.cuda import driver
    if driver.simulated():
        return "Numba's CUDA simulator has no CUDA graphs"
    if any(n.meta.get("random") for n in ex.graph.nodes):
        return "the graph draws random numbers (a replay would repeat them)"
    if any(getattr(v.device, "type", "cpu") != "cuda" for v in list(ex.graph.inputs) + list(ex.graph.outputs)):
        return "the graph has CPU inputs or outputs"
    from .executor import _on_cuda
    if not all(_on_cuda(s) for s in ex.steps):
        return "the graph has CPU steps"
    try:
        from cuda.core import Device, StreamOptions  # noqa: F401
    except Exception as e:  # noqa: BLE001
        return f"cuda.core is unavailable ({type(e).__name__}: {e})"
    return None


class Recorder:
    """Runs one executor through a recorded CUDA graph when it can (see the module doc)."""

    def __init__(self, ex):
        self.ex = ex
        self.reason = None
        self.recordings = 0
        self.replays = 0
        self.warm = None  # input (address, strides) seen by the first call
        self.graph = None
        self.stream = None
        self._env = None
        self._bufs = None
        self._static = None
        self._where = None
        self._pool = None
        inputs = {v.id: k for k, v in enumerate(ex.graph.inputs)}
        self._mut = [(inputs[a], b) for a, b in ex.mutations]

    def __call__(self, arrays):
        if self.reason is None:
            self.reason = unsupported_reason(self.ex)
        if self.reason:
            _note_once(self.reason)
            return self.ex(arrays, {})
        where = [(a.data_ptr, a.strides) for a in arrays]
        if self.graph is not None and all(not s or w == c for s, w, c in zip(self._static, where, self._where)):
            return self._replay(arrays)
        if self.warm is None:
            self.warm = where
            return self.ex(arrays, {})
        if self.recordings >= MAX_RECORDINGS:
            self.reason = f"inputs read in place moved {MAX_RECORDINGS} times"
            self.close()
            return self(arrays)
        previous = self._where or self.warm
        static = [w == p for w, p in zip(where, previous)]
        try:
            self._record(arrays, static)
        except Exception as e:  # noqa: BLE001 - any capture failure means: run without a graph
            self.close()
            self.reason = f"capture failed ({type(e).__name__}: {e})"
            _note_once(self.reason)
            return self.ex(arrays, {})
        self._where = where
        return self._replay(arrays, copy_inputs=False)

    # -- recording --------------------------------------------------------------------------------
    def _record(self, arrays, static) -> None:
        from ..runtime.cuda import array
        from .executor_cuda import copy_into
        self.close()
        self.recordings += 1
        bufs = []
        for a, st in zip(arrays, static):
            if st:
                bufs.append(a)
            else:
                b = array.empty(a.shape, a.dtype)
                copy_into(b, a)
                bufs.append(b)
        if self.stream is None:
            self.stream = capture_stream()
        builder = self.stream.create_graph_builder()
        env: dict = {}
        pool = _PrivatePool()
        self._pool = pool
        try:
            with pool, _launches_on(builder.stream, self.ex):
                builder.begin_building("relaxed")
                try:
                    self.ex.bind(bufs, env)
                    for step in self.ex._run:  # not run_steps: its perf timing would synchronize
                        step(env)
                finally:
                    builder.end_building()
            self.graph = builder.complete()
        finally:
            builder.close()
        self._env, self._bufs, self._static = env, bufs, static
        logs.emit("perf", f"recorded a CUDA graph of {self.ex.n_kernels} step(s)")

    def _replay(self, arrays, copy_inputs: bool = True):
        from .executor_cuda import copy_into
        if copy_inputs:
            for a, b, st in zip(arrays, self._bufs, self._static):
                if not st:
                    copy_into(b, a)
        self.graph.launch(self.stream)
        self.replays += 1
        env = self._env
        for k, dst in self._mut:
            copy_into(arrays[k], env[dst])
        # the next replay overwrites the graph's buffers: hand out copies
        return [env[i].copy() for i in self.ex.output_ids]

    def close(self) -> None:
        """Drop the recorded graph and give its memory back to the allocator."""
        if self.graph is not None:
            with contextlib.suppress(Exception):  # at interpreter shutdown the driver may be gone
                self.graph.close()
        self.graph = None
        self._env = self._bufs = None
        if self._pool is not None:
            self._pool.release()
            self._pool = None

    def __del__(self):
        self.close()


def capture_stream():
    """A new stream to capture on and replay into (cuda.core)."""
    from cuda.core import Device, StreamOptions

    from ..runtime.cuda import driver
    dev = Device(driver.cuda_module().get_current_device().id)
    dev.set_current()
    # blocking: ordered with the legacy default stream every other launch uses, and any
    # legacy-stream work issued during the capture is an error instead of a silent escape
    return dev.create_stream(options=StreamOptions(nonblocking=False))


class _PrivatePool:
    """While active, blocks freed by the allocator are kept here instead of being reused.

    STOPGAP: it shadows ``memory.POOL.give_back``; the runtime should offer this
    as ``runtime.cuda.memory.private_pool()`` (see the change requests).
    """

    def __init__(self):
        self.kept: list = []
        self.pool = None

    def __enter__(self):
        from ..runtime.cuda import memory
        self.pool = memory.POOL
        self.pool.give_back = self._keep  # an instance attribute shadows the method
        return self

    def _keep(self, raw, size: int) -> None:
        self.pool.allocated -= size
        self.kept.append((raw, size))

    def __exit__(self, *exc):
        self.pool.__dict__.pop("give_back", None)
        return False

    def release(self) -> None:
        if self.pool is None:
            return
        for raw, size in self.kept:
            self.pool.free.setdefault(size, []).append(raw)
        self.kept = []


@contextlib.contextmanager
def _launches_on(stream, ex):
    """Send every launch of ``ex``'s steps to ``stream`` (a capturing cuda.core stream).

    STOPGAP: the runtime launches on the legacy default stream and has no
    current-stream setting yet, so this swaps the stream of every launcher it
    can reach (``dispatch_cache`` launchers, this executor's fused kernels,
    ``typed_kernels``) and the stream cuBLAS is given.  Anything it misses runs
    on the legacy stream, which makes the capture fail (the capturing stream is
    blocking), never silently escape it.
    """
    from ..runtime.cuda import cublas, dispatch_cache, typed_kernels
    launchers = list(dispatch_cache._TABLE.values())
    for r in ex._run:
        launchers += [entry[0] for entry in getattr(r, "launchers", {}).values()]
    saved = [(lc, lc.stream) for lc in launchers if hasattr(lc, "stream")]
    prev_tk = typed_kernels._state.get("stream")
    prev_run = cublas.run
    try:
        for lc, _ in saved:
            lc.stream = stream
        typed_kernels._state["stream"] = stream
        cublas.run = functools.partial(prev_run, stream_handle=int(stream.handle))
        yield
    finally:
        for lc, s in saved:
            lc.stream = s
        if prev_tk is None:
            typed_kernels._state.pop("stream", None)
        else:
            typed_kernels._state["stream"] = prev_tk
        cublas.run = prev_run
