"""A model's forward as a TensorBoard GraphDef, from the compiler's IR.

The model runs once under ``jitorch.jit``'s tracer (weights stay graph inputs); forward
hooks on every submodule stamp each recorded node with its module path, which becomes
the node's name scope (``Net/Linear[fc1]/matmul_7``), so TensorBoard's graph plugin can
fold the graph by layer the way it does for torch models.
"""
from __future__ import annotations

from ...compiler.ir import Graph, Value


class _ScopedGraph(Graph):
    """A Graph whose new nodes remember the module scope active when they were recorded."""

    def __init__(self, scopes: list):
        super().__init__()
        self._scopes = scopes

    def add_node(self, op, inputs, attrs, out_specs, meta=None):
        node = super().add_node(op, inputs, attrs, out_specs, meta)
        node.meta["scope"] = self._scopes[-1]
        return node


def trace_with_scopes(model, inputs):
    """(graph, {weight value id: scope path}) of one forward of ``model``."""
    from ..._tensor import Tensor
    from ...jit._capture import JitTracer, capture
    from ...jit._trace import _module_weights
    from ...nn.module import Module
    args = inputs if isinstance(inputs, tuple) else (() if inputs is None else (inputs,))
    leaves = list(args)
    if not all(isinstance(t, Tensor) for t in leaves):
        raise TypeError("add_graph: input_to_model must be a tensor or a tuple of tensors")
    root = type(model).__name__
    scope_of = {"": root}
    if isinstance(model, Module):
        for name, sub in model.named_modules():
            if name:
                parent = scope_of[name.rsplit(".", 1)[0] if "." in name else ""]
                scope_of[name] = f"{parent}/{type(sub).__name__}[{name.rsplit('.', 1)[-1]}]"
        fn, weights = model.forward, _module_weights(model)
    else:
        fn, weights = model, []
    scopes = [root]
    handles = []

    def enter(scope):
        def pre_hook(module, args):
            scopes.append(scope)  # returns None: a hook's return value would replace the inputs
        return pre_hook

    def leave(module, args, output):
        scopes.pop()

    if isinstance(model, Module):
        for name, sub in model.named_modules():
            if name:
                handles.append(sub.register_forward_pre_hook(enter(scope_of[name])))
                handles.append(sub.register_forward_hook(leave))
    tracer = JitTracer(warn=False)
    tracer.graph = _ScopedGraph(scopes)
    names = [f"input_{k}" for k in range(len(leaves))]
    wnames = [(w.names[0], w.tensor) for w in weights]
    try:
        cap = capture(fn, args, {}, leaves, names, wnames, strict=False, warn=False, tracer=tracer)
    finally:
        for h in handles:
            h.remove()
    weight_scopes = {}
    for v, (name, _) in zip(cap.graph.inputs[len(leaves):], wnames):
        mod = name.rsplit(".", 1)[0] if "." in name else ""
        weight_scopes[v.id] = f"{scope_of.get(mod, root)}/{name.rsplit('.', 1)[-1]}"
    return cap.graph, weight_scopes


def _shape_attr(values):
    from tensorboard.compat.proto.attr_value_pb2 import AttrValue
    from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
    shapes = [TensorShapeProto(dim=[TensorShapeProto.Dim(size=int(d)) for d in v.shape]) for v in values]
    return AttrValue(list=AttrValue.ListValue(shape=shapes))


def _str_attr(text: str):
    from tensorboard.compat.proto.attr_value_pb2 import AttrValue
    return AttrValue(s=text.encode("utf-8"))


def graph_def(graph: Graph, weight_scopes: dict):
    """The GraphDef: one NodeDef per input, weight, constant, op and output."""
    from tensorboard.compat.proto.graph_pb2 import GraphDef
    from tensorboard.compat.proto.node_def_pb2 import NodeDef
    from tensorboard.compat.proto.versions_pb2 import VersionDef
    nodes, name_of = [], {}
    device = "/device:CPU:0"

    def add(name, op, inputs, outputs, attr_text=""):
        nodes.append(NodeDef(name=name, op=op, input=inputs, device=device,
                             attr={"_output_shapes": _shape_attr(outputs), "attr": _str_attr(attr_text)}))

    for k, v in enumerate(graph.inputs):
        if v.id in weight_scopes:
            name, op = weight_scopes[v.id], "Parameter"
        else:
            name, op = f"input/{v.name or f'input_{k}'}", "IO Node"
        name_of[v.id] = name
        add(name, op, [], [v], f"{v.dtype.name}{list(v.shape)}")
    for c in graph.constants:
        name_of[c.id] = f"constant/const_{c.id}"
        add(name_of[c.id], "Constant", [], [c], f"{c.dtype.name}{list(c.shape)}")
    for node in graph.nodes:
        base = f"{node.meta.get('scope', 'model')}/{node.name}_{node.outputs[0].id}"
        for k, o in enumerate(node.outputs):
            name_of[o.id] = base if k == 0 else f"{base}:{k}"
        ins = [name_of[i.id] for i in node.inputs if isinstance(i, Value)]
        attrs = ", ".join(f"{k}={v!r}" for k, v in node.attrs.items() if k != "out_dtype")
        scalars = [repr(i) for i in node.inputs if not isinstance(i, Value)]
        text = "; ".join(t for t in (attrs, ("scalars: " + ", ".join(scalars)) if scalars else "",
                                     str(node.meta.get("where", ""))) if t)
        add(base, node.name, ins, node.outputs, text)
    for k, v in enumerate(graph.outputs):
        add(f"output/output.{k}", "IO Node", [name_of[v.id]], [v])
    return GraphDef(node=nodes, versions=VersionDef(producer=22))
