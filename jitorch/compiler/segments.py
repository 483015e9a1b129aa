"""Graph breaks that resume: the graph before a break runs compiled, and so does the rest.

A function whose capture read a traced value from Python (``.item()``, an
``if`` on a tensor, ``tolist()``, ``numpy()``) cannot be replaced by one graph:
the Python code between the ops must run on every call.  So later calls run the
Python function again under a :class:`Replay`, which *defers* every op instead
of executing it: each call is checked against the next node of the captured
graph and answered with a tensor whose storage is a :class:`Deferred`
placeholder (shape and dtype known, values not yet computed).  When Python
needs values (a break, or the function returns), the nodes deferred since the
last break are compiled into one graph and run at once; the placeholders of
the tensors still alive become real arrays.  So a function with one break runs
as two compiled graphs, and the Python code in between sees real values.

If the code takes another path than the captured one (an op that does not match
the next node, e.g. the other side of a data-dependent ``if``), the pending
nodes are run, the replay stops, and the rest of that call runs eagerly: the
results are always those of eager execution.

A break can also be a call that must run eagerly between graphs: ``backward()``
or an optimizer's ``step()``, so a whole training step compiles as the graphs
around them.  A range whose outputs need gradients is compiled as a function of
tensors (:mod:`.interpret` turns its nodes back into eager ops, and
``jitorch.compile`` derives and compiles its backward), and the placeholders it
fills get that graph's autograd history, so ``backward()`` runs compiled kernels.

Random draws run for real when the call reaches them (so they consume the
generator in eager order and give eager's numbers), and in-place updates of
inputs and buffers (BatchNorm's running statistics) land in the same storage
as in eager mode when their range runs.  Not resumable (such functions run
eagerly, as before): in-place writes into views.
"""
from __future__ import annotations

import weakref

import numpy as np

from .. import _dispatch
from .._tensor import Tensor, wrap, wrap_view
from ..autograd import grad_mode
from . import interpret, logs
from .executor import Executor
from .ir import Graph, Value
from .passes import run_pipeline

RESUMABLE = frozenset((".item()", "data-dependent branch", "conversion to Python/NumPy",
                       "backward or optimizer call"))


class _Flags:
    writeable = True
    aligned = True

    def __init__(self, c_contiguous, f_contiguous):
        self.c_contiguous = c_contiguous
        self.f_contiguous = f_contiguous


class Deferred:
    """The storage of a tensor whose value a :class:`Replay` has not computed yet."""

    __slots__ = ("value", "replay", "shape", "dtype", "layout")

    def __init__(self, value: Value, replay: "Replay"):
        self.value = value
        self.replay = replay
        self.shape = tuple(value.shape)
        self.dtype = value.dtype.numpy_dtype
        # the layout the capture saw: code that branches on it (reshape: view or copy?) takes the
        # captured path; anything that needs the real strides computes the value first
        self.layout = replay.program.layouts.get(value.id)

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def itemsize(self):
        return self.dtype.itemsize

    @property
    def nbytes(self):
        return self.size * self.dtype.itemsize

    @property
    def flags(self):
        if self.layout is None:
            return self._real().flags
        return _Flags(self.layout[0], self.layout[1])

    @property
    def strides(self):
        if self.layout is None:
            return self._real().strides
        return self.layout[2]

    def view_if_possible(self, shape):
        """Whether the captured layout allows a view of ``shape`` (answered on a stand-in, no values)."""
        if self.layout is None:
            v = self._real().view()
        else:
            v = np.lib.stride_tricks.as_strided(np.zeros(1, self.dtype), self.shape, self.layout[2])
        try:
            v.shape = shape
        except AttributeError:
            return None
        return True

    def _real(self) -> np.ndarray:
        return self.replay.array_for(self.value)

    # anything else wants the values: compute them now
    def __getattr__(self, name):
        return getattr(self._real(), name)

    def __array__(self, dtype=None, copy=None):
        a = self._real()
        return a if dtype is None else a.astype(dtype)

    def __getitem__(self, index):
        return self._real()[index]

    def _no_scalar(self, *_):
        # a kernel launcher that did not recognise this as an array would treat it as a scalar
        raise TypeError("jitorch internal error: a deferred tensor value reached a kernel as a scalar")

    __float__ = __int__ = __index__ = __bool__ = __complex__ = _no_scalar


def _forward_to_values(name):
    def method(self, *args):
        return getattr(self._real(), name)(*args)
    method.__name__ = name
    return method


# operators are looked up on the type, not through __getattr__: each computes the values first
# (without these, ``deferred != 0`` would compare identities and silently give True)
for _name in ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__add__", "__radd__", "__sub__",
              "__rsub__", "__mul__", "__rmul__", "__truediv__", "__rtruediv__", "__floordiv__", "__mod__",
              "__pow__", "__neg__", "__abs__", "__invert__", "__and__", "__or__", "__xor__", "__len__",
              "__iter__", "__contains__", "__setitem__", "__matmul__"):
    setattr(Deferred, _name, _forward_to_values(_name))
Deferred.__hash__ = None


def _same(a, b) -> bool:
    """Attribute equality that tolerates arrays and tensors inside tuples/dicts."""
    if a is b:
        return True
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype and \
            np.array_equal(a, b)
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return False
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # noqa: BLE001 - incomparable objects are different
        return False


def subgraph(graph: Graph, start: int, stop: int, outputs) -> tuple[Graph, list]:
    """Nodes ``[start, stop)`` of ``graph`` as a graph of their own.

    Values from outside the range become inputs (returned, in input order) or stay
    constants; ``outputs`` are the range's values the caller wants back.
    """
    sub = Graph()
    vmap: dict[int, Value] = {}
    ext: list = []

    def operand(v):
        nv = vmap.get(id(v))
        if nv is None:
            if v.kind == "const":
                nv = sub.add_constant(v.const)
            else:
                nv = sub.add_input(v.shape, v.dtype, v.device, name=v.name)
                ext.append(v)
            vmap[id(v)] = nv
        return nv

    for n in graph.nodes[start:stop]:
        if n.meta.get("random"):
            continue  # drawn when the call reaches it (in eager order): its value is an input here
        ins = [operand(i) if isinstance(i, Value) else i for i in n.inputs]
        node = sub.add_node(n.op, ins, dict(n.attrs), [(o.shape, o.dtype, o.device) for o in n.outputs],
                            meta=dict(n.meta))
        for o, no in zip(n.outputs, node.outputs):
            vmap[id(o)] = no
    sub.outputs = [vmap[id(v)] for v in outputs]
    return sub, ext


class Program:
    """A captured graph with resumable breaks, and the compiled graphs of its ranges."""

    def __init__(self, graph: Graph, fuse: bool = True, name: str = "", grad_values=frozenset(), layouts=None):
        self.graph = graph
        self.layouts = layouts or {}  # value id -> layout when captured (see Deferred)
        self.fuse = fuse
        self.name = name
        self.grad_values = grad_values  # ids of the values that required grad in the capture
        # (start, stop, output ids) -> (Executor or GradRange, external values)
        self.executors: dict = {}
        self.calls = 0
        self.divergences = 0

    def executor(self, start, stop, outputs):
        key = (start, stop, tuple(v.id for v in outputs))
        hit = self.executors.get(key)
        if hit is None:
            sub, ext = subgraph(self.graph, start, stop, outputs)
            grads = self.grad_values
            if grad_mode.is_grad_enabled() and any(v.id in grads for v in outputs) and \
                    any(v.id in grads for v in ext):
                hit = self.executors[key] = (GradRange(sub, self.fuse, self._sub_grad_ids(start, stop, sub, ext)), ext)
                logs.emit("graph", f"{self.name}: nodes {start}..{stop} compile with their backward as graph "
                                   f"{len(self.executors)}")
            else:
                ex = Executor(run_pipeline(sub), fuse=self.fuse)
                hit = self.executors[key] = (ex, ext)
                logs.emit("graph", f"{self.name}: nodes {start}..{stop} compiled as graph {len(self.executors)} "
                                   f"({ex.n_kernels} kernel(s))")
        return hit

    def _sub_grad_ids(self, start, stop, sub, ext) -> set:
        """Ids (in ``sub``) of the values that required grad in the capture."""
        grads = self.grad_values
        ids = {nv.id for v, nv in zip(ext, sub.inputs) if v.id in grads}
        ran = [n for n in self.graph.nodes[start:stop] if not n.meta.get("random")]
        for old, new in zip(ran, sub.nodes):
            ids.update(no.id for o, no in zip(old.outputs, new.outputs) if o.id in grads)
        return ids

    @property
    def n_graphs(self) -> int:
        return len(self.executors)

    def compile_segments(self, breaks) -> None:
        """Compile the graphs between the captured breaks now (what ``explain`` shows)."""
        cuts = sorted({b.at for b in breaks if 0 < b.at < len(self.graph.nodes)})
        bounds = [0] + cuts + [len(self.graph.nodes)]
        self.graph.rebuild_users()
        final = {id(v) for v in self.graph.outputs}
        index = {id(n): k for k, n in enumerate(self.graph.nodes)}
        for start, stop in zip(bounds, bounds[1:]):
            wanted = []
            for n in self.graph.nodes[start:stop]:
                for v in n.outputs:
                    later = any(index[id(u)] >= stop for u in v.users)
                    if later or id(v) in final or (stop in cuts and n is self.graph.nodes[stop - 1]):
                        wanted.append(v)
            if wanted:
                ex, ext = self.executor(start, stop, wanted)
                if isinstance(ex, GradRange) and not ex.fn.entries:
                    ex.prepare(ext, self.grad_values)

    def compiled_graphs(self):
        """(executor, graph text) of every graph compiled so far, in range order."""
        out = []
        for ex, _ in self.executors.values():
            out += ex.executors() if isinstance(ex, GradRange) else [(ex, str(ex.graph))]
        return out

    def run(self, fn, args, kwargs, inputs):
        self.calls += 1
        replay = Replay(self, inputs)
        prev = _dispatch.set_tracer(replay)
        try:
            out = fn(*args, **kwargs)
            replay.flush()
        finally:
            if replay.active:
                _dispatch.set_tracer(prev)
        return out


class GradRange:
    """A range whose outputs need gradients: its nodes as a compiled function of tensors."""

    def __init__(self, sub: Graph, fuse: bool, grad_ids: set):
        from .api import CompiledFunction
        self.graph = sub
        self.fn = CompiledFunction(interpret.as_function(sub, grad_ids), backend="jitorch" if fuse else "eager")

    def __call__(self, tensors):
        return self.fn(*tensors)

    def prepare(self, ext, grad_values) -> None:
        """Compile now, on stand-in inputs (the range has no side effects): what ``explain`` shows."""
        from .. import ones, zeros
        stand_ins = []
        for v in ext:
            if v.dtype.is_floating_point:
                stand_ins.append(ones(v.shape, dtype=v.dtype, device=v.device).requires_grad_(v.id in grad_values))
            else:
                stand_ins.append(zeros(v.shape, dtype=v.dtype, device=v.device))
        prev = _dispatch.set_tracer(None)
        try:
            self.fn(*stand_ins)
        finally:
            _dispatch.set_tracer(prev)

    def executors(self):
        """(executor, graph text) of the forward and backward graphs compiled so far."""
        out = []
        for e in self.fn.entries.values():
            out.append((e.forward, e.graph_str))
            if e.backward is not None:
                out.append((e.backward, e.backward_graph_str))
        return out


class Replay:
    """The dispatcher's tracer while a :class:`Program` replays a call (see the module docstring)."""

    lazy = True

    def __init__(self, program: Program, inputs):
        self.program = program
        self.nodes = program.graph.nodes
        self.cursor = 0  # next node to match
        self.start = 0  # first node not yet computed
        self.active = True
        self.env: dict[int, np.ndarray] = {}  # value id -> computed array
        self.holders: dict[int, list] = {}  # value id -> weak references to tensors deferred on it
        self.known: dict[int, tuple] = {}  # id(tensor) -> (value, weakref) for inputs and computed tensors
        self.inputs = list(zip(program.graph.inputs, inputs))
        self.tensors: dict[int, Tensor] = {}  # value id -> the tensor holding it (inputs of GradRanges)
        self.write_back: dict[int, np.ndarray] = {}  # value id -> storage an in-place op's result belongs in
        self.grad = grad_mode.is_grad_enabled()
        for v, t in self.inputs:
            self.env[v.id] = t._data
            self.known[id(t)] = (v, weakref.ref(t))
            self.tensors[v.id] = t

    # -- matching ---------------------------------------------------------------------------------
    def _value(self, t: Tensor, expected):
        d = t._data
        if d.__class__ is Deferred and d.replay is self:
            return d.value
        k = self.known.get(id(t))
        if k is not None and k[1]() is t:
            return k[0]
        # a tensor made outside the graph: it matches a captured constant with the same contents
        if isinstance(expected, Value) and expected.kind == "const":
            c = expected.const
            if c.dtype is t.dtype and c.shape == t.shape and np.array_equal(np.asarray(c._data), np.asarray(d)):
                return expected
        return None

    def _match(self, op, operands, attrs):
        """The next captured node if this call is the same op on the same values, else None."""
        if self.cursor >= len(self.nodes):
            return None
        node = self.nodes[self.cursor]
        if node.op is not op or len(node.inputs) != len(operands):
            return None
        for a, expected in zip(operands, node.inputs):
            if isinstance(a, Tensor):
                if self._value(a, expected) is not expected:
                    return None
            elif a is None or expected is None:
                if a is not expected:
                    return None
            elif isinstance(expected, Value) or not _same(a, expected):
                return None
        if attrs is not None and not _same(dict(attrs), node.attrs):
            return None
        return node

    def _defer(self, t: Tensor, value: Value) -> Tensor:
        t._data = Deferred(value, self)
        if self.grad and value.id in self.program.grad_values:
            t._requires_grad = True  # its autograd history arrives when the range runs
        self.holders.setdefault(value.id, []).append((weakref.ref(t), False))
        return t

    # -- pre-execution hooks (jitorch._dispatch) ---------------------------------------------------------
    def lazy_elementwise(self, op, args, out, inplace):
        node = self._match(op, args, None)
        if node is None:
            self.diverge(f"{op.name} does not match the captured {self._expected()}")
            return NotImplemented
        self.cursor += 1
        v = node.outputs[0]
        target = inplace if inplace is not None else out
        if target is not None:
            d = target._data
            if d.__class__ is Deferred:
                dest = self.write_back.pop(d.value.id, None)  # a later write to the same storage
            elif (d.__class__ is np.ndarray or getattr(d, "is_cuda_array", False)) and \
                    d.shape == tuple(v.shape) and d.dtype == v.dtype.numpy_dtype:
                dest = d  # a tensor Python already holds (a buffer, an input): its storage gets the result
            else:
                self.cursor -= 1
                self.diverge("in-place write that changes a tensor's shape or storage")
                return NotImplemented
            if dest is not None:
                self.write_back[v.id] = dest
            target._version[0] += 1
            return self._defer(target, v)
        return self._defer(wrap(None, v.dtype, v.device), v)

    def lazy_apply(self, op, inputs, attrs, view_of):
        node = self._match(op, inputs, attrs)
        if node is None:
            self.diverge(f"{op.name} does not match the captured {self._expected()}")
            return NotImplemented
        self.cursor += 1
        outs = []
        for v in node.outputs:
            t = wrap_view(None, view_of) if view_of is not None else wrap(None, v.dtype, v.device)
            t._dtype = v.dtype
            outs.append(self._defer(t, v))
        return tuple(outs) if len(outs) > 1 or op.n_outputs > 1 else outs[0]

    def _expected(self) -> str:
        return self.nodes[self.cursor].name if self.cursor < len(self.nodes) else "end of the graph"

    # -- post-execution hooks: an op ran for real (a path with no deferral) ------------------------------
    def on_elementwise(self, op, args, result, compute, mutates=None):
        self._ran(op, args, None, (result,))

    def on_apply(self, op, inputs, attrs, outs, view_of):
        self._ran(op, inputs, attrs, outs)

    def _ran(self, op, operands, attrs, outs):
        if not self.active:
            return
        node = self._match(op, operands, attrs)
        if node is None:
            self.diverge(f"{op.name} ran outside the captured graph")
            return
        self.flush()
        self.cursor += 1
        self.start = self.cursor
        for t, v in zip(outs, node.outputs):
            self.env[v.id] = t._data
            self.known[id(t)] = (v, weakref.ref(t))
            self.tensors[v.id] = t

    def on_copy(self, dst, src):
        self.diverge("copy_ during replay")

    def on_random(self, fn, args, kwargs, result, target):
        """A random op ran for real, in eager order (same draws as eager): bind its result."""
        if not self.active:
            return
        node = self.nodes[self.cursor] if self.cursor < len(self.nodes) else None
        a = node.attrs if node is not None and node.meta.get("random") else None
        fill = target is not None
        if a is None or a["fn"] is not fn or a["fill"] != fill or not _same(a["args"][fill:], args[fill:]) or \
                not _same(a["kwargs"], kwargs) or a["shape"] != tuple(result.shape) or a["dtype"] is not result.dtype:
            self.diverge(f"random draw {getattr(fn, '__name__', fn)} does not match the captured {self._expected()}")
            return
        self.cursor += 1
        v = node.outputs[0]
        self.env[v.id] = result._data
        self.known[id(result)] = (v, weakref.ref(result))
        self.tensors[v.id] = result

    def record_break(self, reason, category):
        self.diverge(reason)

    def on_concrete(self, t, what):
        d = t._data
        if d.__class__ is Deferred and d.replay is self:
            self.flush()

    def on_alias(self, src, alias):
        d = src._data
        if d.__class__ is Deferred and d.replay is self:
            self.holders.setdefault(d.value.id, []).append((weakref.ref(alias), True))

    def has(self, t) -> bool:
        d = t._data
        return d.__class__ is Deferred and d.replay is self

    def run_opaque(self, what, fn, args, kwargs):
        """``backward()``, ``optimizer.step()``: compute what is pending, then run the call eagerly."""
        self.flush()
        prev = _dispatch.set_tracer(None)
        try:
            return fn(*args, **kwargs)
        finally:
            if self.active:
                _dispatch.set_tracer(prev)
            for v, t in self.inputs:  # the call may have given an input new storage
                self.env[v.id] = t._data

    # -- computing -------------------------------------------------------------------------------------
    def array_for(self, value: Value) -> np.ndarray:
        a = self.env.get(value.id)
        if a is None:
            self.flush()
            a = self.env.get(value.id)
            if a is None:
                raise RuntimeError(f"jitorch.compile: the value {value!r} of a resumed graph was needed after "
                                   "it was released")
        return a

    def flush(self) -> None:
        """Run the nodes deferred since the last break; give their live tensors real arrays."""
        start, stop = self.start, self.cursor
        if start >= stop:
            return
        wanted = []
        for n in self.nodes[start:stop]:
            for v in n.outputs:
                refs = self.holders.get(v.id)
                if refs and any(r() is not None for r, _ in refs):
                    wanted.append(v)
        self.start = stop
        if not wanted:
            return
        ex, ext = self.program.executor(start, stop, wanted)
        arrays = []
        for v in ext:
            a = self.env.get(v.id)
            if a is None:
                raise RuntimeError(f"jitorch.compile: value {v!r} of a resumed graph was released before use")
            arrays.append(a)
        if isinstance(ex, GradRange):
            self._run_grad_range(ex, ext, arrays, wanted)
            return
        results = ex(arrays)
        for v, a in zip(wanted, results):
            self._fill(v, a, None)

    def _fill(self, v: Value, a, source: Tensor | None) -> None:
        """Give the placeholders of ``v`` their array (and ``source``'s autograd history)."""
        dest = self.write_back.pop(v.id, None)
        if dest is not None:  # an in-place update of a tensor that existed before: same storage as eager
            if dest.__class__ is np.ndarray:
                np.copyto(dest, a)
            else:
                from ..runtime.cuda import copy as cuda_copy
                cuda_copy.copy_into(dest, a)
            a = dest
        self.env[v.id] = a
        for r, is_alias in self.holders.pop(v.id, ()):
            t = r()
            if t is not None and t._data.__class__ is Deferred and t._data.value is v:
                t._data = a
                if source is not None and not is_alias and v.id in self.program.grad_values:
                    t._requires_grad = source._requires_grad
                    t._grad_fn = source._grad_fn
                    t._output_nr = source._output_nr
                    self.tensors[v.id] = t
                self.known[id(t)] = (v, r)

    def _run_grad_range(self, rng: GradRange, ext, arrays, wanted) -> None:
        tensors = []
        for v, a in zip(ext, arrays):
            t = self.tensors.get(v.id)
            tensors.append(t if t is not None and t._data is a else wrap(a, v.dtype, v.device))
        prev = _dispatch.set_tracer(None)
        try:
            outs = rng(tensors)
        finally:
            _dispatch.set_tracer(prev)
        for v, o in zip(wanted, outs):
            self._fill(v, o._data, o)

    def diverge(self, why: str) -> None:
        """The call left the captured path: compute what is pending and finish it eagerly."""
        if not self.active:
            return
        self.flush()
        self.program.divergences += 1
        logs.emit("breaks", f"{self.program.name}: replay left the captured graph at node {self.cursor} "
                            f"({why}); the rest of this call runs eagerly")
        self.active = False
        _dispatch.set_tracer(None)
