"""THE op registry: every primitive is declared here once.

A primitive carries
- ``kind``: ``elementwise`` (a scalar expression template, run by generated
  kernels), or ``kernel`` (a per-device implementation function: reductions,
  scans, indexing, extern BLAS calls, views);
- its dtype rule (elementwise: ``promote``/``float``/``bool``/``same``...);
- its derivative rule (``vjp``), written with jitorch ops so that it records a
  graph under ``create_graph`` and can be traced by the compiler.

Eager execution (``jitorch._dispatch``), autograd (``autograd.graph.OpNode``),
the compiler and every device backend all read this one table.
"""
from __future__ import annotations

from typing import Callable

OPS: dict[str, "Op"] = {}


def _camel(name: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in name.strip("_").split("_"))


class Ctx:
    """What a derivative rule sees: saved inputs/output, attributes, input metadata."""

    __slots__ = ("inputs", "out", "attrs", "in_meta", "needs_input_grad", "node")

    def __init__(self, inputs, out, attrs, in_meta, needs, node):
        self.inputs = inputs
        self.out = out
        self.attrs = attrs
        self.in_meta = in_meta
        self.needs_input_grad = needs
        self.node = node

    @property
    def a(self):
        return self.inputs[0]

    @property
    def b(self):
        return self.inputs[1]


class Op:
    """One primitive.  See the module docstring."""

    def __init__(self, name: str, kind: str, *, nin: int = 1, expr=None, dtype_rule: str = "promote",
                 vjp: Callable | None = None, saves: str = "inputs", impl=None, n_outputs: int = 1,
                 differentiable: bool = True, int_expr=None, node_name: str | None = None):
        self.name = name
        self.kind = kind
        self.nin = nin
        # ``expr`` is a str.format template over the operand names ({0}, {1}...)
        # or a callable(compute_dtype) -> template, for dtype-dependent code
        self.expr = expr
        self.int_expr = int_expr
        self.dtype_rule = dtype_rule
        self.vjp = vjp
        self.saves = saves
        self.impl = impl if impl is not None else {}
        self.n_outputs = n_outputs
        self.differentiable = differentiable and vjp is not None
        self.node_name = node_name or (_camel(name) + "Backward0")
        self.kernels = {}  # per-device kernel caches filled by the runtime
        self.fast = {}  # (dtype, ndim) -> (entry point, out np dtype, out dtype): eager fast path
        self.fast_scalar = {}  # (dtype, ndim, python scalar type) -> (..., scalar converter)

    def __repr__(self) -> str:
        return f"Op({self.name})"

    def template(self, compute_dtype) -> str:
        """The scalar expression for this compute dtype."""
        e = self.int_expr if (self.int_expr is not None and not compute_dtype.is_floating_point) else self.expr
        return e(compute_dtype) if callable(e) else e

    def backward(self, node, g):
        vals = node.saved_values()
        if self.saves == "out":
            inputs, out = [None] * len(node.in_meta), vals[0]
        elif self.saves == "both":
            inputs, out = vals[:-1], vals[-1]
        elif self.saves == "inputs" or self.saves == "cross":
            inputs, out = vals, None
        else:
            inputs, out = [None] * len(node.in_meta), None
        ctx = Ctx(inputs, out, node.attrs, node.in_meta, node.needs_input_grad, node)
        grads = self.vjp(ctx, g)
        if not isinstance(grads, (tuple, list)):
            grads = (grads,)
        if self.kind == "elementwise":
            grads = _reduce_broadcast(grads, node.in_meta)
        return grads


def _reduce_broadcast(grads, in_meta):
    # gradients of broadcast operands are summed back to the operand's shape
    out = []
    for g, meta in zip(grads, in_meta):
        if g is None or meta is None:
            out.append(None)
            continue
        shape, dt = meta
        if g._data.shape != shape:
            g = g.sum_to_size(shape)
        if g._dtype is not dt:
            g = g.to(dt)
        out.append(g)
    return out


def register(op: Op) -> Op:
    if op.name in OPS:
        raise ValueError(f"op {op.name} registered twice")
    OPS[op.name] = op
    return op


def elementwise(name: str, nin: int, expr, vjp=None, *, dtype_rule="promote", saves="inputs",
                int_expr=None, node_name=None) -> Op:
    return register(Op(name, "elementwise", nin=nin, expr=expr, dtype_rule=dtype_rule, vjp=vjp,
                       saves=saves, int_expr=int_expr, node_name=node_name))


def kernel_op(name: str, *, nin: int = 1, vjp=None, saves="inputs", n_outputs=1, node_name=None,
              differentiable=True) -> Op:
    """Declare a non-elementwise primitive; device implementations attach via ``impl``."""
    return register(Op(name, "kernel", nin=nin, vjp=vjp, saves=saves, n_outputs=n_outputs,
                       node_name=node_name, differentiable=differentiable))


def impl(op_name: str, device: str = "cpu"):
    """Decorator: the device implementation of a kernel op (arrays in, arrays out)."""
    def deco(fn):
        OPS[op_name].impl[device] = fn
        return fn
    return deco
