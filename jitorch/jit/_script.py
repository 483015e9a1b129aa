"""``torch.jit``'s scripting helpers. jitorch has no TorchScript compiler, so ``script`` says so.

``script`` never falls back to tracing: it gets no example inputs, and a trace
of code with data-dependent branches would silently keep one branch.
"""
from __future__ import annotations

from . import _capture


def script(obj, optimize=None, _frames_up=0, _rcb=None, example_inputs=None):
    """Not supported: raises ``NotImplementedError`` pointing to ``jitorch.jit.trace`` (traced objects pass through)."""
    from ._modules import TracedFunction, TracedModule
    if isinstance(obj, (TracedModule, TracedFunction)):
        return obj
    what = type(obj).__name__ if not callable(obj) or hasattr(obj, "forward") else getattr(obj, "__name__", "fn")
    raise NotImplementedError(
        f"jitorch.jit.script({what}): jitorch has no TorchScript compiler. Use jitorch.jit.trace(model, "
        "example_inputs) to record the forward as a graph you can save and load without the Python class "
        "(data-dependent branches are then fixed to the path the example takes), or jitorch.compile(model) to "
        "compile it in process.")


def ignore(drop=False, **kwargs):
    """Mark a function for the compiler to leave alone; usable as ``@ignore`` or ``@ignore(drop=True)``."""
    if callable(drop):
        drop._jitorch_jit_ignore = True
        return drop

    def deco(fn):
        fn._jitorch_jit_ignore = True
        return fn
    return deco


def unused(fn):
    """Mark a method as not needed by a compiled model; a no-op under tracing and eager execution."""
    if isinstance(fn, property):
        for f in (fn.fget, fn.fset):
            if f is not None:
                f._jitorch_jit_unused = True
        return fn
    fn._jitorch_jit_unused = True
    return fn


def export(fn):
    """Mark a method as a compiled entry point; a no-op here (tracing records ``forward`` only)."""
    fn._jitorch_jit_export = True
    return fn


def is_scripting() -> bool:
    """Always False: jitorch never runs code under a TorchScript compiler."""
    return False


def is_tracing() -> bool:
    """True while ``jitorch.jit.trace`` is running the traced code."""
    return _capture._tracing_depth > 0


def annotate(the_type, the_value):
    """torch.jit.annotate: a type hint for the script compiler; returns ``the_value``."""
    return the_value
