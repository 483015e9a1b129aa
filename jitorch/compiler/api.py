"""``jitorch.compile``: capture, optimize, generate kernels, guard, run.

A call of a compiled function
1. computes its guard key: every tensor input's (shape, dtype, requires_grad),
   grad mode, the autocast state, the ``training`` flag and simple attributes of every submodule,
   the simple globals the function reads, and non-tensor arguments;
2. runs the cached entry for that key, or traces a new one (running the
   function eagerly once while recording a graph), compiles it, and runs it;
3. when inputs require grad, the entry holds a second graph for the
   backward (the derivative rules of the traced ops, traced the same way),
   so ``loss.backward()`` runs compiled kernels as well.
Functions whose capture met a graph break (a concrete value read by Python)
run eagerly, and ``explain()`` says where and why.
"""
from __future__ import annotations

import functools
import types
import warnings

from .. import _dispatch
from ..amp.autocast_mode import state as _amp
from .._tensor import Tensor, wrap
from ..autograd import grad_mode
from . import logs
from .executor import Executor
from .passes import run_pipeline
from . import dynamic, segments
from .remat import rematerialize
from .trace import Tracer, tracing

RECOMPILE_LIMIT = 8
_SIMPLE_TYPES = frozenset((bool, int, float, str, type(None)))
_MISSING = object()
_ALL_COMPILED: list = []


def _simple(v) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))


def _flatten(obj, leaves):
    """Flatten nested tuples/lists/dicts into leaves; returns a rebuild spec."""
    if isinstance(obj, Tensor):
        leaves.append(obj)
        return ("T",)
    if isinstance(obj, (tuple, list)):
        return (type(obj), [_flatten(o, leaves) for o in obj])
    if isinstance(obj, dict):
        return (dict, [(k, _flatten(v, leaves)) for k, v in obj.items()])
    return ("C", obj)


def _rebuild(spec, it):
    tag = spec[0]
    if tag == "T":
        return next(it)
    if tag == "C":
        return spec[1]
    if tag is dict:
        return {k: _rebuild(s, it) for k, s in spec[1]}
    items = [_rebuild(s, it) for s in spec[1]]
    return tag(items) if tag is list else (tuple(items) if tag is tuple else tag(*items))


def _leaves_and_spec(args, kwargs):
    """The tensor leaves of a call's arguments and the guard key of their structure."""
    if not kwargs and all(a.__class__ is Tensor for a in args):
        return list(args), len(args)  # the common case: tensors only, no nesting
    leaves = []
    return leaves, _spec_key(_flatten((args, kwargs), leaves))


def _spec_key(spec):
    tag = spec[0]
    if tag == "T":
        return "T"
    if tag == "C":
        v = spec[1]
        return ("C", v if _simple(v) else id(v))
    if tag is dict:
        return ("D", tuple((k, _spec_key(s)) for k, s in spec[1]))
    return (tag.__name__, tuple(_spec_key(s) for s in spec[1]))


class _Entry:
    def __init__(self):
        self.forward: Executor | None = None
        self.backward: Executor | None = None
        self.breaks = []
        self.out_spec = None
        self.n_user_outputs = 0
        self.diff_input_idx: list[int] = []
        self.out_requires_grad: list[bool] = []
        self.graph_str = ""
        self.backward_graph_str = ""
        self.guard_desc = {}
        self.first_result = None
        self.effects = []  # deferred prints replayed after each run
        self.autograd_fn = None  # the Function class bridging to the backward graph, built on first use
        self.n_effect_outputs = 0
        self.raw = None  # (forward, backward) graphs before optimization: samples for dynamic sizes
        self.instantiated = False  # built from a dynamic template, not traced
        self.program = None  # segments.Program replaying a capture with resumable graph breaks
        self.lifted = []  # tensors from outside the call (closures, globals) that are graph inputs
        self.const_guards = []  # (tensor, storage, version) of outside tensors baked in as constants


class _Family:
    """Entries whose guards differ only in tensor sizes: the samples a dynamic template is fitted on."""

    def __init__(self):
        self.samples: list = []  # (guard key, entry)
        self.template = None  # dynamic.Template once fitted; False when the sizes cannot be generalized
        self.positions = ()  # (input, dim) pairs that carry the size S
        self.base_shapes = None


class CompiledFunction:
    """The callable returned by ``jitorch.compile(fn)``."""

    def __init__(self, fn, module=None, *, fullgraph=False, dynamic=None, mode=None, backend="jitorch",
                 check=False):
        if backend not in ("jitorch", "eager"):
            raise ValueError(f"unknown backend {backend!r}: use 'jitorch' or 'eager'")
        self.fn = fn
        self.module = module
        self.fullgraph = fullgraph
        self.backend = backend
        self.mode = mode  # "reduce-overhead": CUDA graphs replay the launches of CUDA graphs
        self.check = check
        self.entries: dict = {}
        self.recompiles: list[str] = []
        self._warned_limit = False
        self._fallback = False
        self.dynamic = dynamic
        self.families: dict = {}
        self._gnames = self._global_names()
        functools.update_wrapper(self, fn)
        _ALL_COMPILED.append(self)

    # -- guards --------------------------------------------------------------------------------------
    def _module_state(self):
        """(parameters and buffers, guard state) of the compiled module, recomputed on every call."""
        if self.module is None:
            return (), ()
        tensors, state = _module_guard(self.module)
        return tensors, (state,)

    def _input_names(self):
        """Names of the module's parameters and buffers, in the order ``_module_state`` lists them."""
        names = []
        for mname, sub in _submodules(self.module, names=True):
            prefix = mname + "." if mname else ""
            names += [prefix + n for n, p in sub._parameters.items() if p is not None]
            names += [prefix + n for n, b in sub._buffers.items() if b is not None]
        return names

    def _global_names(self):
        """(names, globals dict, closure cells) the function's code can reach without arguments."""
        fn = self.fn
        code = getattr(fn, "__code__", None)
        if code is None:
            fwd = getattr(type(self.module), "forward", None) if self.module is not None else None
            code = getattr(fwd, "__code__", None)
            glb = getattr(fwd, "__globals__", {})
            cells = ()
        else:
            glb = fn.__globals__
            cells = tuple(zip(code.co_freevars, fn.__closure__ or ()))
        names = tuple(code.co_names) if code is not None else ()
        return names, glb, cells

    def _globals_state(self):
        """The simple globals the code names, and the state of every module it reaches.

        A module used through a global, a closure variable or ``self`` (of a method) is guarded
        like a compiled module: the training flags and simple attributes of its submodules, and
        which parameter and buffer tensors it holds (a buffer replaced by assignment retraces).
        """
        names, glb, cells = self._gnames
        state = []
        for n in names:
            v = glb.get(n, _MISSING)
            if _simple(v):
                state.append((n, v))
            elif _is_module(v):
                state.append((n, _module_key(v)))
        for n, cell in cells:
            try:
                v = cell.cell_contents
            except ValueError:  # not bound yet
                continue
            if _simple(v):
                state.append((n, v))
            elif _is_module(v):
                state.append((n, _module_key(v)))
        owner = getattr(self.fn, "__self__", None)
        if self.module is None and _is_module(owner):
            state.append(("self", _module_key(owner)))
        return tuple(state)

    def _key(self, leaves, spec_key, mod_state):
        tensor_part = tuple((t._data.shape, t._dtype, t._requires_grad, t._device) for t in leaves)
        modes = (grad_mode._state.grad_enabled, _autocast_key(), _alias_key(leaves))
        return (tensor_part, spec_key, modes, mod_state, self._globals_state())

    # -- calling -------------------------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        if self._fallback:
            return self.fn(*args, **kwargs)
        leaves, spec_key = _leaves_and_spec(args, kwargs)
        mod_tensors, mod_state = self._module_state()
        inputs = leaves + list(mod_tensors) if mod_tensors else leaves
        key = self._key(inputs, spec_key, mod_state)
        entry = self.entries.get(key)
        if entry is None:
            entry = self._instantiate(key) if self.dynamic is not False else None
            if entry is None:
                if sum(not e.instantiated for e in self.entries.values()) >= RECOMPILE_LIMIT:
                    self._hit_limit(key)
                    return self.fn(*args, **kwargs)
                self._log_recompile(key, args, kwargs)
                entry = self._capture(args, kwargs, inputs, len(leaves), key)
                self.entries[key] = entry
                if self.dynamic is not False:
                    self._note_sample(key, entry, args, kwargs, len(leaves), mod_tensors)
                # the capture ran the function eagerly: running the graph again would repeat
                # its side effects (in-place updates, random draws), so return that result
                out, entry.first_result = entry.first_result, None
                return out
            self.entries[key] = entry
        if entry.const_guards and _stale(entry.const_guards):
            return self._retrace_stale(key, args, kwargs, inputs, len(leaves))
        if entry.lifted:
            inputs = inputs + entry.lifted
        if entry.breaks:
            if entry.program is not None and all(b.category in segments.RESUMABLE for b in entry.breaks):
                return entry.program.run(self.fn, args, kwargs, inputs)
            return self.fn(*args, **kwargs)
        if self.check:
            self._check(entry, inputs)
        return self._run(entry, inputs)

    def _retrace_stale(self, key, args, kwargs, inputs, n_args):
        """A tensor the graph baked in as a constant was written since: capture again."""
        del self.entries[key]
        line = (f"recompiling {getattr(self.fn, '__qualname__', self.fn)}: a tensor from outside the function "
                "(closure, global or attribute) that the graph reads as a constant was modified")
        self.recompiles.append(line)
        logs.emit("recompiles", line)
        if sum(not e.instantiated for e in self.entries.values()) >= RECOMPILE_LIMIT:
            self._hit_limit(key)
            return self.fn(*args, **kwargs)
        entry = self.entries[key] = self._capture(args, kwargs, inputs, n_args, key)
        out, entry.first_result = entry.first_result, None
        return out

    # -- dynamic sizes -------------------------------------------------------------------------------
    @staticmethod
    def _family_key(key):
        tensor_part = tuple((len(shape), dt, rg, dev) for shape, dt, rg, dev in key[0])
        return (tensor_part,) + tuple(key[1:])

    def _instantiate(self, key):
        """The entry for ``key`` built from a fitted dynamic template, or None."""
        fam = self.families.get(self._family_key(key))
        if fam is None or not fam.template:
            return None
        shapes = [t[0] for t in key[0]]
        size = None
        for k, shape in enumerate(shapes):
            for d, n in enumerate(shape):
                if (k, d) in fam.positions:
                    if size is None:
                        size = n
                    elif n != size:
                        return None
                elif n != fam.base_shapes[k][d]:
                    return None
        fwd, bwd, extra = fam.template.at(size)
        entry = _Entry()
        entry.instantiated = True
        (entry.out_spec, entry.effects, entry.n_user_outputs, entry.out_dtypes, entry.n_effect_outputs,
         entry.diff_input_idx, entry.out_requires_grad) = extra
        self._build(entry, fwd, bwd)
        logs.emit("recompiles", f"{getattr(self.fn, '__qualname__', self.fn)}: size {size} built from the dynamic "
                                "template (no retrace)")
        return entry

    def _note_sample(self, key, entry, args, kwargs, n_leaves, mod_tensors) -> None:
        """Remember a traced entry; fit a dynamic template once three sizes have been seen."""
        if entry.breaks or entry.raw is None:
            return
        fam = self.families.setdefault(self._family_key(key), _Family())
        if fam.template is not None:
            return
        fam.samples.append((key, entry))
        if self.dynamic is True and len(fam.samples) == 1:
            self._trace_other_sizes(fam, entry, args, kwargs, mod_tensors)
        if len(fam.samples) >= 3:
            self._fit(fam)

    def _fit(self, fam) -> None:
        shapes = [[t[0] for t in k[0]] for k, _ in fam.samples]
        positions = [(i, d) for i, shape in enumerate(shapes[0]) for d in range(len(shape))
                     if len({s[i][d] for s in shapes}) > 1]
        sizes = []
        for s in shapes:
            vals = {s[i][d] for i, d in positions}
            if len(vals) != 1:
                fam.template = False  # more than one independent size: keep one graph per shape
                return
            sizes.append(vals.pop())
        fam.template = dynamic.Template.fit([(n,) for n in sizes], [e.raw for _, e in fam.samples]) or False
        name = getattr(self.fn, "__qualname__", self.fn)
        if not fam.template:
            logs.emit("recompiles", f"{name}: the traces at sizes {sizes} do not generalize; one graph per size")
            return
        fam.positions = frozenset(positions)
        fam.base_shapes = shapes[0]
        logs.emit("recompiles", f"{name}: sizes {sizes} generalized into one dynamic graph over "
                                f"{sorted(fam.positions)}")

    def _trace_other_sizes(self, fam, entry, args, kwargs, mod_tensors) -> None:
        """dynamic=True: trace two more batch sizes now (made by repeating rows of the inputs).

        Only for functions without side effects (in-place updates of inputs or buffers,
        prints, random draws): the extra traces run the function.
        """
        g = entry.raw.parts[0]
        if g.mutations or entry.effects or any(n.meta.get("random") for n in g.nodes):
            return
        from .. import arange, no_grad
        leaves = []
        spec = _flatten((args, kwargs), leaves)
        if not leaves or leaves[0].dim() == 0:
            return
        size = leaves[0].shape[0]
        if size == 0:
            return
        for grow in (1, 2):
            with no_grad():
                rows = arange(size + grow) % size
                new = [t.detach()[rows.to(t.device)].requires_grad_(t.requires_grad)
                       if t.dim() and t.shape[0] == size else t for t in leaves]
            nargs, nkwargs = _rebuild(spec, iter(new))
            mod_tensors2, mod_state = self._module_state()
            inputs = new + list(mod_tensors2)
            k2 = self._key(inputs, _leaves_and_spec(nargs, nkwargs)[1], mod_state)
            e2 = self._capture(nargs, nkwargs, inputs, len(new), k2)
            e2.first_result = None
            if e2.breaks:
                return
            e2.instantiated = True  # part of this compile, not a recompile
            self.entries.setdefault(k2, e2)
            fam.samples.append((k2, e2))

    def _check(self, entry, inputs) -> None:
        """check=True: compare the fused kernels with node-by-node eager execution."""
        from .executor import first_divergence
        found = first_divergence(entry.forward.graph, [t._data for t in inputs])
        if found is not None:
            node, err = found
            msg = (f"jitorch.compile(check=True): compiled and eager results diverge first at node "
                   f"{node.name} ({node.meta.get('where', '?')}), max abs error {err:.3g}")
            logs.emit("guards", msg)
            warnings.warn(msg, RuntimeWarning, stacklevel=3)

    def _hit_limit(self, key):
        if not self._warned_limit:
            self._warned_limit = True
            table = "\n".join(self.recompiles[-RECOMPILE_LIMIT:])
            warnings.warn(f"jitorch.compile: {getattr(self.fn, '__qualname__', self.fn)} hit the recompile limit "
                          f"({RECOMPILE_LIMIT}); running eagerly from now on. Guards that kept failing:\n{table}",
                          RuntimeWarning, stacklevel=3)

    def _log_recompile(self, key, args, kwargs):
        if not self.entries:
            return
        prev = next(reversed(self.entries))
        reasons = _diff_keys(prev, key, self._tensor_names(args, kwargs, len(key[0])), self._reachable_modules())
        line = (f"recompiling {getattr(self.fn, '__qualname__', self.fn)}: {'; '.join(reasons) or 'new guard set'} "
                f"(guards of {self._def_line()})")
        self.recompiles.append(line)
        logs.emit("recompiles", line)

    def _reachable_modules(self) -> dict:
        """name -> module for the modules the guards cover (for naming what changed)."""
        names, glb, cells = self._gnames
        found = {n: glb[n] for n in names if _is_module(glb.get(n))}
        for n, cell in cells:
            try:
                if _is_module(cell.cell_contents):
                    found[n] = cell.cell_contents
            except ValueError:
                pass
        owner = self.module if self.module is not None else getattr(self.fn, "__self__", None)
        if _is_module(owner):
            found["self"] = owner
        return found

    def _tensor_names(self, args, kwargs, n) -> list[str]:
        """What the user calls each guarded tensor: ``x``, ``batch[1]``, ``self.fc.weight``..."""
        import inspect
        fn = self.module.forward if self.module is not None else self.fn
        try:
            params = list(inspect.signature(fn).parameters)
        except (TypeError, ValueError):
            params = []
        names = []

        def walk(obj, name):
            if isinstance(obj, Tensor):
                names.append(name)
            elif isinstance(obj, (tuple, list)):
                for k, o in enumerate(obj):
                    walk(o, f"{name}[{k}]")
            elif isinstance(obj, dict):
                for k, o in obj.items():
                    walk(o, f"{name}[{k!r}]")

        for k, a in enumerate(args):
            walk(a, params[k] if k < len(params) else f"args[{k}]")
        for k, a in kwargs.items():
            walk(a, k)
        if self.module is not None:
            names += ["self." + n for n in self._input_names()]
        return names + [f"input {k}" for k in range(len(names), n)]

    def _def_line(self) -> str:
        fn = self.module.forward if self.module is not None else self.fn
        code = getattr(fn, "__code__", None)
        if code is None:
            return getattr(fn, "__qualname__", str(fn))
        import os
        return f"{getattr(fn, '__qualname__', fn)} at {os.path.relpath(code.co_filename)}:{code.co_firstlineno}"

    # -- capture and compile -------------------------------------------------------------------------
    def _capture(self, args, kwargs, inputs, n_args, key) -> _Entry:
        entry = _Entry()
        tracer = Tracer()
        names = self._input_names() if self.module is not None else ()
        for k, t in enumerate(inputs):
            tracer.bind_input(t, name=None if k < n_args else names[k - n_args])
        with tracing(tracer):
            out = self.fn(*args, **kwargs)
        leaves = []
        entry.out_spec = _flatten(out, leaves)
        graph = tracer.finish(leaves)  # may still find a break (writes the graph cannot see)
        # tensors from outside the call that need gradients or that the graph updates in place
        # (closures, globals, buffers) became inputs
        entry.lifted = list(tracer.lifted)
        inputs = inputs + entry.lifted
        entry.const_guards = tracer.constant_guards()
        entry.breaks = tracer.breaks
        entry.first_result = out  # the capture call's eager result is this call's answer
        if key[2][2] is not None and any(origin.kind == "input" for origin, _ in graph.mutations):
            # the graph reads each input as its own value: a write through one alias would be missed
            # by reads through the other
            tracer.record_break("an input updated in place shares memory with another input",
                                "unsupported mutation")
        if entry.breaks:
            for b in entry.breaks:
                logs.emit("breaks", str(b))
            if self.fullgraph:
                b = entry.breaks[0]
                raise RuntimeError(f"jitorch.compile(fullgraph=True): graph break at {b.where}: {b.category}: "
                                   f"{b.reason}. Hint: {b.hint}")
            entry.program = self._resumable(graph, inputs, tracer.grad_values, tracer.layouts)
            return entry
        entry.n_user_outputs = len(leaves)
        entry.out_dtypes = [t.dtype for t in leaves]
        diff_in = [k for k, t in enumerate(inputs) if t._requires_grad] if grad_mode.is_grad_enabled() else []
        diff_out = [o for o in leaves if o._requires_grad]
        entry.effects = [(spec, kw, len(vals)) for spec, kw, vals in tracer.effects]
        for _, _, vals in tracer.effects:
            graph.outputs.extend(vals)
        entry.n_effect_outputs = sum(len(v) for _, _, v in tracer.effects)
        bwd_graph = None
        if diff_in and diff_out:
            bwd_graph, saved_values = self._capture_backward(tracer, leaves, [inputs[k] for k in diff_in])
            saved_values = rematerialize(graph, bwd_graph, saved_values)
            entry.diff_input_idx = diff_in
            entry.out_requires_grad = [o._requires_grad for o in leaves]
            graph.outputs = graph.outputs + saved_values
        if logs.enabled("graph"):  # printing a graph is not free: only when asked for
            logs.emit("graph", f"captured {getattr(self.fn, '__qualname__', self.fn)}:\n{str(graph)}")
        if self.dynamic is not False:
            entry.raw = dynamic.Flat(graph, bwd_graph, _entry_extra(entry))
        self._build(entry, graph, bwd_graph)
        return entry

    def _build(self, entry, graph, bwd_graph) -> None:
        """Optimize the captured graphs and generate their kernels."""
        graph = run_pipeline(graph)
        entry.graph_str = str(graph)
        fuse = self.backend != "eager"
        graphs = self.mode == "reduce-overhead"
        entry.forward = Executor(graph, fuse=fuse, cuda_graphs=graphs)
        _log_fusion(entry.forward)
        if bwd_graph is not None:
            bwd_graph = run_pipeline(bwd_graph)
            entry.backward_graph_str = str(bwd_graph)
            entry.backward = Executor(bwd_graph, fuse=fuse, cuda_graphs=graphs)
            _log_fusion(entry.backward)

    def _resumable(self, graph, inputs, grad_values, layouts):
        """The segments.Program that replays a broken capture, or None when it must run eagerly."""
        return segments.Program(graph, fuse=self.backend != "eager",
                                name=getattr(self.fn, "__qualname__", str(self.fn)),
                                grad_values=frozenset(grad_values), layouts=layouts)

    def _capture_backward(self, fwd_tracer, outputs, diff_inputs):
        """Trace the derivative rules: a graph from (grad outputs, saved forward values) to input grads."""
        from .. import autograd, ones_like
        bt = _BackwardTracer(fwd_tracer)
        diff_out = [o for o in outputs if o._requires_grad]
        gouts = [ones_like(o) for o in diff_out]
        for g in gouts:
            bt.bind_input(g, name="grad_out")
        with tracing(bt):
            grads = autograd.grad(diff_out, diff_inputs, gouts, retain_graph=True, allow_unused=True)
        present = [g for g in grads if g is not None]
        bwd = bt.finish(present)
        bt.grad_present = [g is not None for g in grads]
        bwd.grad_present = bt.grad_present
        return bwd, bt.saved_from_forward

    # -- running -------------------------------------------------------------------------------------
    def _run(self, entry: _Entry, inputs):
        arrays = [t._data for t in inputs]
        if entry.backward is not None and grad_mode.is_grad_enabled():
            outs, effect_arrays = _CompiledAutograd.apply_entry(entry, inputs)
        else:
            res = entry.forward(arrays)
            n = entry.n_user_outputs
            devs = entry.forward.out_devices
            outs = [wrap(a, dt, dev) for a, dt, dev in zip(res, entry.out_dtypes, devs)]
            effect_arrays = res[n:n + entry.n_effect_outputs]
        if entry.effects:
            n = entry.n_user_outputs
            _replay_prints(entry.effects, effect_arrays, entry.forward.out_devices[n:])
        return _rebuild(entry.out_spec, iter(outs))


def _is_module(v) -> bool:
    return hasattr(v, "_parameters") and hasattr(v, "named_modules")


def _submodules(m, names: bool = False) -> list:
    """``m`` and its submodules in ``named_modules()`` order (preorder, each once); with
    ``names``, ``(dotted name, module)`` pairs.  Runs on every call: no name strings unless asked."""
    if not names:
        out = []
        seen = set()
        stack = [m]
        while stack:
            sub = stack.pop()
            if id(sub) not in seen:
                seen.add(id(sub))
                out.append(sub)
                children = sub.__dict__["_modules"]
                if children:
                    stack.extend(reversed([c for c in children.values() if c is not None]))
        return out
    out = []
    seen = set()
    stack = [("", m)]
    while stack:
        name, sub = stack.pop()
        if id(sub) not in seen:
            seen.add(id(sub))
            out.append((name, sub))
            children = sub.__dict__["_modules"]
            if children:
                stack.extend(reversed([(f"{name}.{k}" if name else k, c) for k, c in children.items() if c is not None]))
    return out


def _module_guard(m):
    """(parameters and buffers, state) of module ``m``: per submodule, its public attributes of
    simple types (``training`` among them), so changing any of them retraces."""
    tensors = []
    state = []
    simple = _SIMPLE_TYPES
    for sub in _submodules(m):
        d = sub.__dict__
        state.append(tuple([(k, v) for k, v in d.items() if type(v) in simple and k[0] != "_"]))
        for p in d["_parameters"].values():
            if p is not None:
                tensors.append(p)
        for b in d["_buffers"].values():
            if b is not None:
                tensors.append(b)
    return tensors, tuple(state)


class _ModuleKey(tuple):
    """The guard state of a module the function reaches (see ``_globals_state``)."""


def _module_key(m):
    """``_module_guard``'s state plus which tensors the module holds, with their metadata."""
    state = []
    held = []
    simple = _SIMPLE_TYPES
    for sub in _submodules(m):
        d = sub.__dict__
        state.append(tuple([(k, v) for k, v in d.items() if type(v) in simple and k[0] != "_"]))
        for group in (d["_parameters"], d["_buffers"]):
            for t in group.values():
                if t is not None:
                    held.append((id(t), t._data.shape, t._dtype, t._device, t._requires_grad))
    return _ModuleKey((id(m), tuple(state), tuple(held)))


def _storage_of(d):
    s = getattr(d, "storage", None)  # a CUDA array's pooled block
    if s is not None:
        return s
    b = d.base
    return d if b is None else b


def _alias_key(tensors):
    """None when no two input tensors share memory, else which share with which (first index)."""
    if len(tensors) < 2:
        return None
    roots = [id(_storage_of(t._data)) for t in tensors]
    if len(set(roots)) == len(roots):
        return None
    first: dict = {}
    return tuple(first.setdefault(r, k) for k, r in enumerate(roots))


def _stale(guards) -> bool:
    for t, data, version in guards:
        if t._version[0] != version or t._data is not data:
            return True
    return False


def _entry_extra(e: _Entry):
    """The entry fields a dynamic template rebuilds (they may hold sizes)."""
    return (e.out_spec, e.effects, e.n_user_outputs, e.out_dtypes, e.n_effect_outputs, e.diff_input_idx,
            e.out_requires_grad)


def _replay_prints(effects, arrays, devices) -> None:
    it = iter(zip(arrays, devices))
    for spec, kwargs, n in effects:
        tensors = [wrap(a, _dt(a), dev) for a, dev in [next(it) for _ in range(n)]]
        print(*_rebuild(spec, iter(tensors)), **kwargs)


def _dt(a):
    from .._dtype import from_numpy
    return from_numpy(a.dtype)


class _BackwardTracer(Tracer):
    """Records the backward; forward tensors it reads become inputs (saved values)."""

    lift_grad_tensors = False

    def __init__(self, fwd: Tracer):
        super().__init__()
        self.fwd = fwd
        self.saved_from_forward = []
        self._saved_inputs = {}  # forward value id -> backward input
        self.grad_present = []

    def value_of(self, t):
        entry = self._values.get(id(t))
        if entry is not None and entry[1] is t:
            return entry[0]
        fentry = self.fwd._values.get(id(t))
        if fentry is not None and fentry[1] is t:
            v = self._saved_inputs.get(fentry[0].id)
            if v is None:  # each forward value is saved once, however many aliases reach it
                v = self.graph.add_input(t.shape, t.dtype, t.device, name="saved")
                self._saved_inputs[fentry[0].id] = v
                self.saved_from_forward.append(fentry[0])
            self._values[id(t)] = (v, t)
            return v
        return super().value_of(t)

    def on_alias(self, src, alias):
        super().on_alias(src, alias)
        fentry = self.fwd._values.get(id(src))
        if fentry is not None and fentry[1] is src and id(alias) not in self._values:
            self.fwd._values[id(alias)] = (fentry[0], alias)


def _graph_function(entry: _Entry):
    """The autograd Function running ``entry``'s forward graph, its backward the compiled backward graph.

    Built once per entry; the first argument of ``apply`` is a per-call list that
    receives the arrays of deferred prints.
    """
    from ..autograd.function import Function

    class CompiledGraphFunction(Function):
        @staticmethod
        def forward(ctx, effects, *ins):
            res = entry.forward([t._data for t in ins])
            n, m = entry.n_user_outputs, entry.n_effect_outputs
            ctx.saved_arrays = res[n + m:]
            effects.extend(res[n:n + m])
            return tuple(wrap(a, _dt(a), dev) for a, dev in zip(res[:n], entry.forward.out_devices))

        @staticmethod
        def backward(ctx, *grads):
            diff_grads = [g for g, req in zip(grads, entry.out_requires_grad) if req]
            res = entry.backward([g._data for g in diff_grads] + list(ctx.saved_arrays))
            it = iter(zip(res, entry.backward.out_devices))
            out = [None] * (len(ctx.needs_input_grad) - 1)
            for k, present in zip(entry.diff_input_idx, entry.backward.graph.grad_present):
                if present:
                    a, dev = next(it)
                    out[k] = wrap(a, _dt(a), dev)
            return (None, *out)

    return CompiledGraphFunction


class _CompiledAutograd:
    """Runs an entry's forward graph as one autograd node whose backward is the compiled backward graph."""

    @staticmethod
    def apply_entry(entry: _Entry, inputs):
        if entry.autograd_fn is None:
            entry.autograd_fn = _graph_function(entry)
        effects = []
        outs = entry.autograd_fn.apply(effects, *inputs)
        outs = outs if isinstance(outs, tuple) else (outs,)
        for o, req in zip(outs, entry.out_requires_grad):
            if not req:
                o._requires_grad = False
                o._grad_fn = None
        return list(outs), effects


def _log_fusion(ex: Executor):
    if logs.enabled("fusion"):
        for s in ex.steps:
            if s.kind == "fused":
                logs.emit("fusion", f"{s.name}: {[n.name for n in s.nodes]} rows={s.rows} cols={s.cols}")
        logs.emit("fusion", f"{ex.n_kernels} kernel(s)")


def _autocast_key():
    """The autocast state a captured graph depends on: its casts are recorded ops, so a function traced
    inside an autocast region must not be replayed outside it (or under another dtype)."""
    if not _amp.active:
        return None
    return tuple((dev, _amp.dtype[dev]) for dev, on in _amp.enabled.items() if on)


def _describe_autocast(k) -> str:
    return "off" if not k else ", ".join(f"{dev} {dt.name}" for dev, dt in k)


def _diff_keys(old, new, names=(), modules=None):
    reasons = []
    (ot, os_, og, om, ogl), (nt, ns, ng, nm, ngl) = old, new
    if len(ot) == len(nt):
        for k, (a, b) in enumerate(zip(ot, nt)):
            name = names[k] if k < len(names) else f"input {k}"
            if a[0] != b[0]:
                dims = [d for d in range(len(a[0])) if a[0][d] != b[0][d]] if len(a[0]) == len(b[0]) else []
                if len(dims) == 1:
                    reasons.append(f"{name}.shape[{dims[0]}]: {a[0][dims[0]]} -> {b[0][dims[0]]}")
                else:
                    reasons.append(f"{name}.shape: {list(a[0])} -> {list(b[0])}")
            if a[1] is not b[1]:
                reasons.append(f"{name}.dtype: {a[1]} -> {b[1]}")
            if a[2] != b[2]:
                reasons.append(f"{name}.requires_grad: {a[2]} -> {b[2]}")
            if a[3] is not b[3]:
                reasons.append(f"{name}.device: {a[3]} -> {b[3]}")
    else:
        reasons.append(f"number of tensor inputs: {len(ot)} -> {len(nt)}")
    if og[0] != ng[0]:
        reasons.append(f"grad mode: {og[0]} -> {ng[0]}")
    if og[1] != ng[1]:
        reasons.append(f"autocast: {_describe_autocast(og[1])} -> {_describe_autocast(ng[1])}")
    if og[2] != ng[2]:
        shared = [f"{names[k] if k < len(names) else k} and {names[j] if j < len(names) else j}"
                  for k, j in enumerate(ng[2] or ()) if j != k]
        reasons.append("inputs sharing memory: " + (", ".join(shared) if shared else "none now"))
    if om != nm:
        reasons += _module_diff("self", om[0] if om else (), nm[0] if nm else (), (modules or {}).get("self"))
    if ogl != ngl:
        da, db = dict(ogl), dict(ngl)
        for k in sorted(set(da) | set(db)):
            a, b = da.get(k), db.get(k)
            if a == b:
                continue
            if isinstance(a, _ModuleKey) and isinstance(b, _ModuleKey):
                if a[0] != b[0]:
                    reasons.append(f"{k}: another module object")
                elif a[1] != b[1]:
                    reasons += _module_diff(k, a[1], b[1], (modules or {}).get(k))
                else:
                    reasons.append(f"{k}: a parameter or buffer was replaced, or changed shape, dtype, device "
                                   "or requires_grad")
            else:
                reasons.append(f"global {k}: {a!r} -> {b!r}")
    if os_ != ns:
        reasons.append("non-tensor arguments changed")
    return reasons


def _module_diff(prefix, old, new, module=None) -> list:
    """The attributes that differ between two module states, named ``prefix.sub.attr``."""
    names = [n for n, _ in _submodules(module, names=True)] if module is not None else []
    if len(names) != len(old):
        names = [f"<submodule {k}>" if k else "" for k in range(len(old))]
    reasons = []
    for name, at_a, at_b in zip(names, old, new):
        path = f"{prefix}.{name}" if name else prefix
        if at_a != at_b:
            da, db = dict(at_a), dict(at_b)
            for k in list(da) + [k for k in db if k not in da]:
                if da.get(k) != db.get(k):
                    reasons.append(f"{path}.{k}: {da.get(k)!r} -> {db.get(k)!r}")
    if len(old) != len(new):
        reasons.append(f"{prefix}: submodules added or removed")
    return reasons


def compile(model=None, *, fullgraph: bool = False, dynamic=None, mode=None, backend: str = "jitorch",
            options=None, disable: bool = False, check: bool = False):
    """Compile a function or module like ``torch.compile``; usable as a decorator."""
    if model is None:
        return lambda m: compile(m, fullgraph=fullgraph, dynamic=dynamic, mode=mode, backend=backend,
                                 options=options, disable=disable, check=check)
    if disable:
        return model
    if hasattr(model, "named_parameters") and hasattr(model, "forward"):
        return CompiledModule(model, fullgraph=fullgraph, dynamic=dynamic, mode=mode, backend=backend, check=check)
    if not callable(model):
        raise TypeError(f"jitorch.compile expects a callable or an nn.Module, got {type(model).__name__}")
    return CompiledFunction(model, fullgraph=fullgraph, dynamic=dynamic, mode=mode, backend=backend, check=check)


class CompiledModule:
    """Wraps a module: shares its parameters, buffers, state_dict and train/eval mode."""

    def __init__(self, module, **opts):
        object.__setattr__(self, "_orig_mod", module)
        object.__setattr__(self, "_compiled", CompiledFunction(module.forward, module, **opts))

    def __call__(self, *args, **kwargs):
        return self._compiled(*args, **kwargs)

    def forward(self, *args, **kwargs):
        return self._compiled(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._orig_mod, name)

    def __setattr__(self, name, value):
        setattr(self._orig_mod, name, value)

    def __repr__(self) -> str:
        return f"OptimizedModule(\n  (_orig_mod): {self._orig_mod!r}\n)"

    def train(self, mode: bool = True):
        self._orig_mod.train(mode)
        return self

    def eval(self):
        self._orig_mod.eval()
        return self


def reset() -> None:
    """Forget every compiled graph (kernels stay in the on-disk cache)."""
    for c in _ALL_COMPILED:
        c.entries.clear()
        c.recompiles.clear()
        c._warned_limit = False


__all__ = ["compile", "reset", "CompiledFunction", "CompiledModule", "types"]
