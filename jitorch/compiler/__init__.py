"""The compiler: ``jitorch.compile`` traces a function into a graph, fuses it, and generates Numba kernels.

Layout: ``trace`` (capture) -> ``ir`` (Graph) -> ``passes`` -> ``schedule`` (fusion groups)
-> ``codegen`` (kernel source) -> ``executor`` (run); ``api`` holds compile(), guards and the
autograd bridge; ``logs`` the JITORCH_LOGS switches; ``explain`` the report.
"""
from .api import CompiledFunction, CompiledModule, compile, reset
from .explain import ExplainOutput, explain
from .logs import set_logs

__all__ = ["compile", "reset", "explain", "ExplainOutput", "set_logs", "CompiledFunction", "CompiledModule"]
