"""``jitorch.jit.trace``: record a module's or function's forward as a graph, like ``torch.jit.trace``.

Steps: bind the example inputs (and, for a module, every parameter and buffer)
as graph inputs and run the code once under the tracer; then, to learn which
sizes follow the batch size, run it at two more batch sizes and fit the graphs
(``_shapes``; module state and the random generator are restored afterwards);
finally, as torch does with ``check_trace``, run the compiled trace and compare
it with the Python results.
"""
from __future__ import annotations

import inspect
import warnings

import numpy as np

from .._tensor import Tensor, wrap
from ..nn.module import Module
from . import _shapes
from ._capture import TracerWarning, capture, flatten, flatten_example, rebuild
from ._modules import TracedFunction, TracedModule, Weight
from ._program import Program, Signature


class TracingCheckError(Exception):
    """``check_trace`` found that the trace cannot be run on the example inputs."""

    def __init__(self, graph_diff_error=None, tensor_compare_error=None, extra_msg=None):
        self.message = "Tracing failed sanity checks!\n"
        if extra_msg is not None:
            self.message += extra_msg + "\n"
        for err in (graph_diff_error, tensor_compare_error):
            if err is not None:
                self.message += err + "\n"
        super().__init__(self.message)


def trace(func, example_inputs=None, optimize=None, check_trace: bool = True, check_inputs=None,
          check_tolerance: float = 1e-5, strict: bool = True, _force_outplace: bool = False, _module_class=None,
          _compilation_unit=None, example_kwarg_inputs=None, _store_inputs: bool = True, *,
          dynamic_batch: bool = True):
    """Trace ``func`` (an ``nn.Module`` or a function) on example inputs; see ``docs/deployment.md``.

    Returns a :class:`TracedModule` (modules) or :class:`TracedFunction`. ``dynamic_batch``
    (jitorch only) traces at two more batch sizes so the result also runs when dim 0 of the
    inputs changes; with ``False``, or when the graph depends on the batch size in a way
    that cannot be described, other shapes raise ``RuntimeError``.

    >>> import jitorch as torch
    >>> f = torch.jit.trace(lambda x: x.relu() * 2, torch.randn(3))
    >>> f(torch.tensor([-1.0, 2.0, 3.0])).tolist()
    [0.0, 4.0, 6.0]
    """
    if isinstance(func, (TracedModule, TracedFunction)):
        warnings.warn("The input to trace is already a traced module, tracing it is a no-op. Returning the object "
                      "as is.", stacklevel=2)
        return func
    module = None
    if isinstance(func, Module):
        module, fn = func, func.forward
    elif inspect.ismethod(func) and isinstance(func.__self__, Module) and func.__name__ == "forward":
        module, fn = func.__self__, func
    elif callable(func):
        fn = func
    else:
        raise TypeError(f"jitorch.jit.trace expects an nn.Module or a function, got {type(func).__name__}")
    args, kwargs = _example_args(example_inputs, example_kwarg_inputs, module is not None)
    flatten_example(kwargs if kwargs else args)  # torch's error for non-tensor inputs, naming the whole type
    signature = _signature(fn, args, kwargs, "forward" if module is not None else getattr(fn, "__name__", "fn"))
    user_leaves = signature.bind(args, kwargs)
    args, kwargs = _unalias(args, kwargs, user_leaves)
    user_leaves = signature.bind(args, kwargs)
    weights = _module_weights(module) if module is not None else []
    graph_weights = [(w.names[0], w.tensor) for w in weights]

    cap = capture(fn, args, kwargs, user_leaves, signature.leaf_names(), graph_weights, strict=strict, warn=True)
    template = cap.graph
    traced_batch, batch_inputs = _batch_inputs(user_leaves)
    static_reason = None
    if traced_batch is None:
        static_reason = "no input has a batch dimension"
    elif not dynamic_batch:
        static_reason = "it was traced with dynamic_batch=False"
    else:
        template, static_reason = _fit_batch(fn, signature, args, kwargs, user_leaves, batch_inputs, traced_batch,
                                             graph_weights, template, strict)
    program = Program(template, signature, cap.out_spec, len(user_leaves), batch_inputs, traced_batch, static_reason)
    if module is not None:
        names = {n: type(m).__name__ for n, m in module.named_modules()}
        training = {n: m.training for n, m in module.named_modules()}
        traced = TracedModule(program, weights, names, training)
    else:
        traced = TracedFunction(program, getattr(fn, "__name__", "fn"))
    if check_trace:
        _check_trace(traced, fn, signature, args, kwargs, cap, check_inputs, check_tolerance, template)
    return traced


# -- inputs ---------------------------------------------------------------------------------------------------
def _example_args(example_inputs, example_kwarg_inputs, is_module):
    if example_kwarg_inputs is not None:
        if not isinstance(example_kwarg_inputs, dict):
            raise RuntimeError("example_kwarg_inputs should be a dict")
        if example_inputs is not None:
            raise RuntimeError("pass either example_inputs or example_kwarg_inputs, not both")
        return (), dict(example_kwarg_inputs)
    if example_inputs is None:
        raise RuntimeError("jitorch.jit.trace needs example_inputs (or example_kwarg_inputs)")
    if isinstance(example_inputs, tuple):
        return example_inputs, {}
    if isinstance(example_inputs, (Tensor, dict)) or is_module:
        return (example_inputs,), {}
    return tuple(example_inputs), {}


def _signature(fn, args, kwargs, name) -> Signature:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        params = []
    names = []
    for k in range(len(args)):
        p = params[k] if k < len(params) else (params[-1] if params else None)
        if p is not None and p.kind == p.VAR_POSITIONAL:
            names.append(f"{p.name}_{k}")
        elif p is not None and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and k < len(params):
            names.append(p.name)
        else:
            names.append(f"input_{k}")
    specs = {}
    for n, a in list(zip(names, args)) + list(kwargs.items()):
        specs[n], _ = flatten_example(a)
    return Signature(name, names + list(kwargs), specs, len(args))


def _unalias(args, kwargs, leaves):
    """Give a tensor passed twice a second object, so that each argument is its own graph input."""
    seen, fresh = set(), []
    for t in leaves:
        if id(t) in seen:
            t = wrap(t._data, t._dtype, t._device)
        seen.add(id(t))
        fresh.append(t)
    if all(a is b for a, b in zip(fresh, leaves)):
        return args, kwargs
    it = iter(fresh)
    spec = flatten((args, kwargs), [])
    new_args, new_kwargs = rebuild(spec, it)
    return tuple(new_args), dict(new_kwargs)


def _module_weights(module) -> list:
    """Every distinct parameter and buffer, with all the names it is registered under."""
    by_id: dict = {}
    for name, p in module.named_parameters(remove_duplicate=False):
        by_id.setdefault(id(p), Weight([], p, True)).names.append(name)
    for mname, sub in module.named_modules(remove_duplicate=False):
        for bname, b in sub._buffers.items():
            if b is None:
                continue
            full = f"{mname}.{bname}" if mname else bname
            w = by_id.setdefault(id(b), Weight([], b, False, bname not in sub._non_persistent_buffers_set))
            if full not in w.names:
                w.names.append(full)
    return list(by_id.values())


def _batch_inputs(leaves):
    """(batch size, indices of the inputs that carry it): dim 0 of the first input with a dim 0."""
    first = next((t for t in leaves if t.ndim), None)
    if first is None or first.shape[0] == 0:
        return None, []
    n = first.shape[0]
    return n, [k for k, t in enumerate(leaves) if t.ndim and t.shape[0] == n]


# -- batch-generic graphs ----------------------------------------------------------------------------------------
def _fit_batch(fn, signature, args, kwargs, leaves, batch_inputs, n, weights, template, strict):
    """Trace at two more batch sizes and fit: (the template, the reason it stays shape-specific or None)."""
    from ..ops.random import default_generator
    sizes = [n, n + 1, n + 3]
    mutated = {a.id for a, _ in template.mutations}
    state = [(t._data, t._data.copy()) for (_, t), v in zip(weights, template.inputs[len(leaves):]) if v.id in mutated]
    rng = default_generator.get_state()
    graphs = [template]
    try:
        for size in sizes[1:]:
            probe = list(leaves)
            for k in batch_inputs:
                t = leaves[k]
                probe[k] = wrap(np.take(t._data, np.arange(size) % n, axis=0), t._dtype, t._device)
            p_args, p_kwargs = rebuild(flatten((args, kwargs), []), iter(probe))
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    cap = capture(fn, tuple(p_args), dict(p_kwargs), probe, signature.leaf_names(), weights,
                                  strict=strict, warn=False)
            except Exception as e:  # noqa: BLE001 - any failure just means "not batch-generic"
                return template, f"running it at batch size {size} failed ({type(e).__name__}: {e})"
            graphs.append(cap.graph)
    finally:
        for arr, saved in state:
            np.copyto(arr, saved)
        default_generator.set_state(rng)
    try:
        return _shapes.fit_graphs(graphs, sizes), None
    except _shapes.NotBatchGeneric as e:
        return template, str(e)


# -- check_trace ------------------------------------------------------------------------------------------------
_ATOL = {"float16": 1e-3, "float32": 1e-5, "float64": 1e-7}


def _compare(got, want, rtol) -> str | None:
    if tuple(got.shape) != tuple(want.shape) or got.dtype is not want.dtype:
        return f"got {got.dtype}{list(got.shape)}, expected {want.dtype}{list(want.shape)}"
    a, b = got._data, want._data
    if want.dtype.is_floating_point:
        atol = _ATOL.get(want.dtype.name, 1e-5)
        if np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True):
            return None
        err = np.abs(a.astype(np.float64) - b.astype(np.float64))
        return (f"Tensor-likes are not close! Greatest absolute difference: {np.nanmax(err):.6g} "
                f"(atol={atol}, rtol={rtol})")
    if np.array_equal(a, b):
        return None
    return f"{int(np.sum(a != b))} of {a.size} elements differ"


def _check_trace(traced, fn, signature, args, kwargs, cap, check_inputs, tol, template):
    """Run the compiled trace on the example (and any check) inputs and compare with Python's results."""
    from ..autograd import no_grad
    from ..ops.random import RANDOM_REPLAY
    mutated = {a.id for a, _ in template.mutations}
    state = [t._data for t, v in zip(list(signature.bind(args, kwargs)) + _weights_of(traced),
                                     template.inputs) if v.id in mutated]
    saved = [a.copy() for a in state]
    cases = [((args, kwargs), cap.outputs)]
    for ci in check_inputs or []:
        ci_args = ci if isinstance(ci, tuple) else (ci,)
        cases.append(((ci_args, {}), None))
    random = any(n.op is RANDOM_REPLAY for n in template.nodes)
    warned = False
    try:
        with no_grad():
            for (c_args, c_kwargs), expected in cases:
                try:
                    got = traced(*c_args, **c_kwargs)
                except Exception as e:
                    raise TracingCheckError(extra_msg="encountered an exception while running the trace with test "
                                                      f"inputs.\nException:\n\t{type(e).__name__}: {e}") from e
                if expected is None:
                    expected = []
                    flatten(fn(*c_args, **c_kwargs), expected)
                got_leaves = []
                flatten(got, got_leaves)
                for k, (g, w) in enumerate(zip(got_leaves, expected)):
                    err = _compare(g, w, tol)
                    if err is None:
                        continue
                    if random and not warned:
                        warned = True
                        warnings.warn("Trace had nondeterministic nodes. Did you forget call .eval() on your model? "
                                      "This may cause errors in trace checking. To disable trace checking, pass "
                                      "check_trace=False to jitorch.jit.trace()", TracerWarning, stacklevel=3)
                    warnings.warn(f"Output nr {k + 1}. of the traced function does not match the corresponding "
                                  f"output of the Python function. Detailed error:\n{err}", TracerWarning,
                                  stacklevel=3)
    finally:
        for arr, s in zip(state, saved):
            np.copyto(arr, s)


def _weights_of(traced) -> list:
    return traced._current_weights() if isinstance(traced, TracedModule) else []
