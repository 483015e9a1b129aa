"""IR op -> ONNX nodes: the table of lowerings and the loop that applies it.

A lowering is ``fn(ctx, node) -> output name(s)``, registered for one or more
registry op names with :func:`lowers`.  ``dynamic_attrs`` lists the node
attributes the lowering can express at run time when they change with the
dynamic axes (a reshape's target shape, a slice's bounds); any other
attribute that changes makes the export fail with ``DynamicAxesError``
rather than bake in the example size.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...compiler.ir import Value
from .context import LoweringContext


@dataclass(frozen=True)
class Lowering:
    fn: object
    dynamic_attrs: frozenset
    min_opset: int


LOWERINGS: dict[str, Lowering] = {}

# why some ops have no lowering, shown in the UnsupportedOperatorError
HINTS = {
    "random_replay": "Random ops (dropout in training mode, randn inside forward) cannot be exported; "
                     "export in eval mode (training=TrainingMode.EVAL)",
    "index_put": "In-place indexed writes have no ONNX lowering yet",
    "nonzero": "Data-dependent output shapes have no ONNX lowering yet",
}


def lowers(*names: str, dynamic_attrs=(), min_opset: int = 13):
    def deco(fn):
        for n in names:
            if n in LOWERINGS:
                raise ValueError(f"ONNX lowering of {n} registered twice")
            LOWERINGS[n] = Lowering(fn, frozenset(dynamic_attrs), min_opset)
        return fn
    return deco


def lower_node(ctx: LoweringContext, node) -> None:
    low = LOWERINGS.get(node.name)
    ctx.node = node
    if low is None:
        raise ctx.unsupported(HINTS.get(node.name, "It has no ONNX lowering yet"))
    if ctx.opset < low.min_opset:
        raise ctx.unsupported(f"It needs opset {low.min_opset} or newer")
    if ctx.table.dynamic:
        changed = ctx.table.varying_attrs(node) - low.dynamic_attrs
        if changed:
            raise ctx.dynamic_error(f"its {', '.join(sorted(changed))} change with the dynamic axes")
    ctx.b.scope = f"/{node.name}_{node.outputs[0].id}" if node.outputs else f"/{node.name}"
    outs = low.fn(ctx, node)
    if isinstance(outs, str) or outs is None:
        outs = [outs]
    for v, name in zip(node.outputs, outs):
        if name is not None:
            ctx.bind(v, name)
    for v, name in zip(node.outputs, outs):
        if name is None and ctx.is_used(v):
            raise ctx.unsupported(f"Its output {node.outputs.index(v)} is used but has no lowering")


def _register_all() -> None:
    # importing the modules fills LOWERINGS
    from . import elementwise, nn, rnn, tensor_ops  # noqa: F401


_register_all()

__all__ = ["LOWERINGS", "LoweringContext", "Value", "lower_node", "lowers"]
