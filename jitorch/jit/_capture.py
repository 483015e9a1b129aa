"""Running a function once under the compiler's tracer, the way ``torch.jit.trace`` does.

The differences from ``jitorch.compile``'s capture: reading a traced tensor's
value from Python (``bool(t)``, ``t.item()``, ``int(t)``, ``t.tolist()``) is not a
graph break but a :class:`TracerWarning` naming the user's line; the value seen is
baked into the graph, exactly like torch. What the graph really cannot express
(an in-place write into a view, a random op with tensor arguments) is an error,
because there is no eager fallback in a saved trace.
"""
from __future__ import annotations

import os
import sys
import warnings

from .._tensor import Tensor
from ..compiler.trace import Tracer, tracing

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_tracing_depth = 0  # > 0 while jit.trace runs the user's code (see is_tracing)


class TracerWarning(Warning):
    """A trace may not generalize: Python read a traced tensor's value (as ``torch.jit.TracerWarning``)."""


_CONVERSIONS = {
    "bool": "Converting a tensor to a Python boolean",
    "item": "Converting a tensor to a Python number",
    "tolist": "Converting a tensor to a Python list",
    "numpy": "Converting a tensor to a NumPy array",
    "shape-dependent": "Using a tensor as a mask or index (the result's shape depends on its values)",
    "index": "Using a tensor's values as indices",
}


def _user_location():
    """(filename, line, globals) of the innermost frame outside the jitorch package."""
    f = sys._getframe(2)
    while f is not None:
        fn = f.f_code.co_filename
        if not os.path.abspath(fn).startswith(_PKG_DIR + os.sep):
            return fn, f.f_lineno, f.f_globals
        f = f.f_back
    return "<unknown>", 0, {}


class JitTracer(Tracer):
    """The compiler's tracer with ``torch.jit.trace``'s policy for concrete values."""

    def __init__(self, warn: bool = True):
        super().__init__()
        self.warn = warn

    def on_random(self, fn, args, kwargs, result, target) -> None:
        super().on_random(fn, args, kwargs, result, target)
        node = self.graph.nodes[-1]
        if node.attrs["fill"] and node.attrs["args"]:
            # a fill draws into a fresh target at run time (args[0] is unused): don't keep the traced tensor
            node.attrs["args"] = (None,) + tuple(node.attrs["args"][1:])

    def on_concrete(self, t: Tensor, what: str) -> None:
        if not self.has(t):
            return
        v = self.value_of(t)
        if v.kind == "const" or (v.kind == "input" and what == "shape"):
            return  # a constant stays constant: nothing to warn about
        if what == "numpy" and sys._getframe(1).f_code.co_name == "note_read":
            what = "index"
        if self.warn:
            filename, line, glb = _user_location()
            msg = (f"{_CONVERSIONS.get(what, 'Reading a tensor value')} might cause the trace to be incorrect. "
                   "We can't record the data flow of Python values, so this value will be treated as a "
                   "constant in the future. This means that the trace might not generalize to other inputs! "
                   f"(at {filename}:{line})")
            registry = glb.setdefault("__warningregistry__", {}) if glb else None
            warnings.warn_explicit(msg, TracerWarning, filename, line, module=glb.get("__name__"),
                                   registry=registry)


def describe_type(obj) -> str:
    """torch's spelling of a Python value's type: ``Tuple[Tensor, int]``."""
    if isinstance(obj, Tensor):
        return "Tensor"
    if isinstance(obj, tuple):
        return f"Tuple[{', '.join(describe_type(o) for o in obj)}]"
    if isinstance(obj, list):
        return f"List[{describe_type(obj[0]) if obj else 'Tensor'}]"
    if isinstance(obj, dict):
        k, v = next(iter(obj.items())) if obj else ("", None)
        return f"Dict[{type(k).__name__}, {describe_type(v) if obj else 'Tensor'}]"
    return type(obj).__name__


# -- nested inputs and outputs --------------------------------------------------------------------------------
def flatten(obj, leaves: list, *, what: str = "input"):
    """``obj`` (tensors in tuples/lists/dicts) as a structure spec plus its tensors, appended to ``leaves``."""
    if isinstance(obj, Tensor):
        leaves.append(obj)
        return ("T",)
    if isinstance(obj, (tuple, list)) and (type(obj) in (tuple, list) or hasattr(obj, "_fields")):
        kind = "list" if isinstance(obj, list) else "tuple"
        return (kind, [flatten(o, leaves, what=what) for o in obj])
    if isinstance(obj, dict):
        return ("dict", [(k, flatten(v, leaves, what=what)) for k, v in obj.items()])
    raise TypeError(describe_type(obj))


def rebuild(spec, it):
    tag = spec[0]
    if tag == "T":
        return next(it)
    if tag == "dict":
        return {k: rebuild(s, it) for k, s in spec[1]}
    items = [rebuild(s, it) for s in spec[1]]
    return items if tag == "list" else tuple(items)


def flatten_example(example):
    leaves: list = []
    try:
        spec = flatten(example, leaves)
    except TypeError:
        raise RuntimeError(f"Type '{describe_type(example)}' cannot be traced. Only Tensors and (possibly nested) "
                           f"Lists, Dicts, and Tuples of Tensors can be traced") from None
    return spec, leaves


def flatten_output(out, strict: bool):
    leaves: list = []
    if strict:
        _check_strict(out)
    try:
        spec = flatten(out, leaves, what="output")
    except TypeError as e:
        raise RuntimeError("Only tensors, lists, tuples of tensors, or dictionary of tensors can be output from "
                           f"traced functions (got {e})") from None
    return spec, leaves


def _check_strict(out) -> None:
    if isinstance(out, (list, dict)):  # torch raises RuntimeError here, not TypeError
        kind = "list" if isinstance(out, list) else "dict"
        fix = "for `list`, use a `tuple` instead" if kind == "list" else "for `dict`, use a `NamedTuple` instead"
        msg = (f"Encountering a {kind} at the output of the tracer might cause the trace to be incorrect, this is "
               "only valid if the container structure does not change based on the module's inputs. Consider using "
               f"a constant container instead (e.g. {fix}). If you absolutely need this and know the side effects, "
               "pass strict=False to trace() to allow this behavior.")
        raise RuntimeError(msg)  # noqa: TRY004
    if isinstance(out, tuple):
        for o in out:
            _check_strict(o)


# -- one capture ----------------------------------------------------------------------------------------------
class Capture:
    """The graph of one run, its eager results and the structure of its inputs and outputs."""

    def __init__(self, graph, outputs, out_spec):
        self.graph = graph
        self.outputs = outputs
        self.out_spec = out_spec


def capture(fn, args: tuple, kwargs: dict, user_leaves, user_names, weights, *, strict: bool,
            warn: bool, tracer: JitTracer | None = None) -> Capture:
    """Run ``fn(*args, **kwargs)`` once, recording every op into a graph.

    ``user_leaves`` are the tensors inside ``args``/``kwargs`` (in flattening order) and
    ``weights`` the (name, tensor) pairs of the module's parameters and buffers; both
    become graph inputs, so the graph never bakes in a weight.
    """
    global _tracing_depth
    from ..autograd import no_grad
    tracer = JitTracer(warn=warn) if tracer is None else tracer
    for t, name in zip(user_leaves, user_names):
        tracer.bind_input(t, name=name)
    for name, t in weights:
        tracer.bind_input(t, name=name)
    _tracing_depth += 1
    try:
        with no_grad(), tracing(tracer):
            out = fn(*args, **kwargs)
    finally:
        _tracing_depth -= 1
    out_spec, out_leaves = flatten_output(out, strict)
    graph = tracer.finish(out_leaves)
    if tracer.breaks:
        lines = "\n".join(f"  {b.where}: {b.reason} ({b.category})" for b in tracer.breaks)
        raise RuntimeError("jitorch.jit.trace: the traced code does something a graph cannot record:\n"
                           f"{lines}\nRewrite that code out of place (e.g. clone() before writing into a view), "
                           "or keep it outside the traced function.")
    return Capture(graph, out_leaves, out_spec)
