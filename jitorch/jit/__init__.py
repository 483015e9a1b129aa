"""``jitorch.jit``: record a model as a graph, save it, load it without its Python code.

>>> import jitorch as torch
>>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU()).eval()
>>> traced = torch.jit.trace(model, torch.randn(2, 4))
>>> traced(torch.randn(5, 4)).shape   # other batch sizes work when the graph allows it
jitorch.Size([5, 8])

``trace`` (``_trace``) captures with the compiler's tracer (``_capture``), makes the
graph batch-generic (``_shapes``) and wraps it in a ``TracedModule`` or
``TracedFunction`` (``_modules``) that runs it compiled (``_program``); ``save`` and
``load`` (``_format``, ``_codec``) write and read it without pickle. See
``docs/deployment.md``.
"""
from ._capture import TracerWarning
from ._format import FORMAT_VERSION, load, save
from ._modules import TracedFunction, TracedModule
from ._script import annotate, export, ignore, is_scripting, is_tracing, script, unused
from ._trace import TracingCheckError, trace

ScriptModule = TracedModule
ScriptFunction = TracedFunction
TopLevelTracedModule = TracedModule

__all__ = [
           "FORMAT_VERSION",
           "ScriptFunction",
           "ScriptModule",
           "TracedFunction",
           "TracedModule",
           "TracerWarning",
           "TracingCheckError",
           "annotate",
           "export",
           "ignore",
           "is_scripting",
           "is_tracing",
           "load",
           "save",
           "script",
           "trace",
           "unused",
]
