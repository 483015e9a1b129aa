"""``jitorch.onnx.export``: capture -> (dynamic-axes shape inference) -> lower -> check -> write.

The steps, in order:
1. capture the forward with the compiler's tracer (``capture``), in the
   training mode ``training`` asks for;
2. with ``dynamic_axes``, capture again at other sizes and fit how every size
   follows them (``symbolic_shapes``);
3. run the compiler's graph-cleaning passes (constant folding, CSE, DCE), but
   not the fusion schedule: ONNX gets one node (or a few) per primitive;
4. lower each node with the table in ``lowering``; parameters and buffers
   become initializers named by their ``state_dict`` names;
5. build the ModelProto, run ``onnx.checker.check_model(full_check=True)``
   and write it to ``f``.
"""
from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..compiler.passes import cse, dce, fold_constants
from ._state import TrainingMode, model_mode
from .builder import GraphBuilder, np_dtype, value_info
from ..utils._tree import tensor_leaves
from .capture import capture, describe_break, used_inputs
from .errors import OnnxExporterError, warn
from .io_spec import (
    default_input_names,
    enlarged,
    input_symbols,
    normalize_dynamic_axes,
    resolve_names,
    split_args,
)
from .lowering import LoweringContext, lower_node
from .symbolic_shapes import DOUBLE, TRIPLE, UnknownDim, infer, is_static, static_table

DEFAULT_OPSET = 17
MIN_OPSET = 13
# capture problems that make the graph wrong (not merely specialized to the example): refuse
_FATAL_BREAKS = ("unsupported mutation", "random op")


def export(model, args=(), f=None, export_params: bool = True, verbose: bool = False,
           training: TrainingMode = TrainingMode.EVAL, input_names=None, output_names=None,
           operator_export_type=None, opset_version: int | None = None, do_constant_folding: bool = True,
           dynamic_axes=None, keep_initializers_as_inputs: bool | None = None, custom_opsets=None,
           export_modules_as_functions=False, autograd_inlining: bool = True, *, kwargs=None,
           dynamo: bool = False, external_data: bool = False, dynamic_shapes=None, **_ignored):
    """Export ``model`` (an ``nn.Module`` or a function of tensors) to ONNX, like ``torch.onnx.export``.

    ``model`` runs once on ``args`` (a tensor, or a tuple that may end with a dict of keyword
    arguments) while every primitive is recorded; the graph is written to ``f`` (a path or a
    binary file object) and also returned as an ``onnx.ModelProto``.

    Differences from torch: graph inputs default to the forward's parameter names and outputs
    to ``output``/``output_<k>``; ``dynamic_axes`` are checked by capturing again at other
    sizes (see docs/onnx.md); ``dynamo``, ``operator_export_type``, ``custom_opsets`` and
    ``export_modules_as_functions`` are accepted and ignored.

    >>> jitorch.onnx.export(nn.Linear(4, 2), jitorch.randn(1, 4), "linear.onnx",
    ...                     dynamic_axes={"input": {0: "batch"}})  # doctest: +SKIP
    """
    if dynamic_shapes is not None:
        raise OnnxExporterError("dynamic_shapes belongs to torch's dynamo exporter; use dynamic_axes")
    opset = DEFAULT_OPSET if opset_version is None else int(opset_version)
    if not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise ValueError(f"jitorch.onnx.export supports opset versions {MIN_OPSET} to "
                         f"{onnx.defs.onnx_opset_version()}, got {opset}")
    model = getattr(model, "_orig_mod", model)  # a jitorch.compile'd module: export the module itself
    args, kwargs = split_args(args, kwargs)
    with model_mode(model, training):
        proto = _export_model(model, args, kwargs, opset, export_params, input_names, output_names,
                              do_constant_folding, dynamic_axes, bool(keep_initializers_as_inputs))
    if verbose:
        print(helper.printable_graph(proto.graph))
    if f is not None:
        _write(proto, f)
    return proto


def _write(proto, f) -> None:
    data = proto.SerializeToString()
    if isinstance(f, (str, os.PathLike)):
        with open(f, "wb") as fh:
            fh.write(data)
    else:
        f.write(data)


def _export_model(model, args, kwargs, opset, export_params, input_names, output_names, do_constant_folding,
                  dynamic_axes, keep_initializers_as_inputs):
    user_tensors = tensor_leaves((args, kwargs), [])
    if len({id(t) for t in user_tensors}) != len(user_tensors):
        warn("the same tensor is passed as more than one input; the exported graph reads it through the last of "
             "those inputs only (pass distinct tensors to get distinct graph inputs)")
    base = capture(model, args, kwargs)
    _check_breaks(base.breaks)
    if base.graph.mutations:
        warn("the forward updates buffers in place (e.g. BatchNorm running statistics in training mode); ONNX "
             "graphs have no state, so those updates are not exported")
    in_names = resolve_names(input_names, default_input_names(model, args, kwargs), "input")
    n_out = len(base.graph.outputs)
    out_names = resolve_names(output_names, ["output"] if n_out == 1 else [f"output_{k}" for k in range(n_out)],
                              "output")
    axes = normalize_dynamic_axes(dynamic_axes, set(in_names) | set(out_names))
    symbols = input_symbols(axes, in_names, user_tensors)
    table = _shape_table(model, args, kwargs, base, symbols) if symbols else static_table()
    graph = base.graph
    if not table.dynamic:
        # with dynamic axes these passes could merge values that only agree at the example size
        # (two reshapes to (2, 4) may be (batch, 4) and (2, 2 * batch)); onnxruntime does its own
        graph = cse(fold_constants(graph) if do_constant_folding else graph)
    graph = dce(graph)
    sources = {s.key: (in_names[s.sources[0][0]], s.sources[0][1]) for s in symbols}
    onnx_graph = _lower(graph, base, table, sources, in_names, out_names, axes, opset, export_params,
                        keep_initializers_as_inputs)
    opset_id = helper.make_opsetid("", opset)
    from .. import __version__
    proto = helper.make_model(onnx_graph, opset_imports=[opset_id], producer_name="jitorch",
                              producer_version=__version__)
    proto.ir_version = helper.find_min_ir_version_for([opset_id])
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _lower(graph, base, table, sources, in_names, out_names, axes, opset, export_params,
           keep_initializers_as_inputs):
    """The ONNX GraphProto of the captured graph: inputs, initializers, lowered nodes, outputs."""
    b = GraphBuilder(opset)
    for name in list(in_names) + list(out_names) + [name for name, _, _ in base.params]:
        b.reserve(name)
    ctx = LoweringContext(b, table, sources)
    ctx.graph_outputs = {v.id for v in graph.outputs}
    graph_inputs = []
    for v, name in zip(base.inputs, in_names):
        ctx.bind(v, name)
        graph_inputs.append(value_info(name, v.dtype, _dims(table, v, name, axes)))
    used = used_inputs(graph)
    for name, v, t in base.params:
        if v.id not in used:
            continue  # e.g. num_batches_tracked in eval mode; torch leaves unused buffers out too
        ctx.bind(v, name)
        if export_params:
            b.initializer(name, np.asarray(t._data))
        if keep_initializers_as_inputs or not export_params:
            graph_inputs.append(value_info(name, v.dtype, list(v.shape)))
    for c in graph.constants:
        ctx.defer(c, lambda c=c: _constant(ctx, c))
    for node in graph.nodes:
        lower_node(ctx, node)
    graph_outputs = _outputs(ctx, graph, out_names, axes)
    b.prune(set(out_names))
    return helper.make_graph(b.nodes, "main_graph", graph_inputs, graph_outputs, initializer=b.initializers)


def _check_breaks(breaks) -> None:
    for b in breaks:
        if b.category in _FATAL_BREAKS:
            raise OnnxExporterError(f"jitorch.onnx.export: the forward cannot be captured as a graph: "
                                    f"{describe_break(b)}. Hint: {b.hint}")
    for b in breaks:
        warn(f"{describe_break(b)}: the value read here is exported as a constant, so the ONNX model may not "
             "generalize to other inputs")


def _shape_table(model, args, kwargs, base, symbols):
    """Capture once per symbol with it doubled and once with all tripled, then fit every size."""
    from .. import no_grad
    buffers = [t for _, t in _named_buffers(model)]
    saved = [np.array(t._data, copy=True) for t in buffers]
    graphs, labels = [base.graph], ["example"]
    plans = [([s], DOUBLE, f"'{s.name}' goes from {s.size} to {DOUBLE * s.size}") for s in symbols]
    plans.append((symbols, TRIPLE, "all dynamic axes are tripled"))
    try:
        for syms, factor, label in plans:
            with no_grad():
                a, k = enlarged(args, kwargs, syms, factor)
            try:
                graphs.append(capture(model, a, k).graph)
            except OnnxExporterError:
                raise
            except Exception as exc:
                raise OnnxExporterError(f"jitorch.onnx.export: running the model when {label} failed "
                                        f"({type(exc).__name__}: {exc}); dynamic_axes needs the model to accept "
                                        "other sizes on those axes") from exc
            labels.append(label)
    finally:
        for t, s in zip(buffers, saved):  # the extra runs must not update running statistics
            t._data = s
    return infer(graphs, symbols, labels)


def _named_buffers(model):
    fn = getattr(model, "named_buffers", None)
    return list(fn()) if fn is not None else []


def _named_axis(axes, name, axis, rank):
    """The dim name ``dynamic_axes`` gives to ``axis`` of ``name`` (negative axes count from the end)."""
    for a, dim in axes.get(name, {}).items():
        if a % max(rank, 1) == axis:
            return dim
    return None


def _dims(table, v, name, axes) -> list:
    """A graph input/output's dims: ints, or dim_param names for what changes with the dynamic axes."""
    shape = table.shape(v)
    out = []
    for i, d in enumerate(shape):
        given = _named_axis(axes, name, i, len(shape))
        out.append(given if given is not None else (int(d) if is_static(d) else _dim_label(table, d, name, i)))
    return out


def _dim_label(table, dim, name, axis) -> str:
    if isinstance(dim, UnknownDim):
        return f"{name}_dim_{axis}"
    return table.dim_name(dim)


def _constant(ctx, v):
    """A tensor the forward made itself (zeros for an RNN state, a mask...) as an ONNX constant."""
    table = ctx.table
    if table.is_static_value(v):
        if table.constant_varies(v):
            raise ctx.dynamic_error("a tensor created inside forward has values that depend on the size of a "
                                    "dynamic axis")
        return ctx.b.const(np.asarray(v.const._data))
    fill = table.constant_fill(v)
    if fill is None:
        raise ctx.dynamic_error("a tensor created inside forward (like arange(n) or a mask) has a shape that follows "
                                "a dynamic axis and values that are not all equal")
    value = numpy_helper.from_array(np.asarray([fill], dtype=np_dtype(v.dtype)), "value")
    return ctx.b.op("ConstantOfShape", [ctx.shape_tensor(table.shape(v))], value=value)


def _outputs(ctx, graph, out_names, axes) -> list:
    """Name the graph outputs; an output that is an input, a constant or repeated gets an Identity."""
    b = ctx.b
    b.scope = ""
    produced = {o for n in b.nodes for o in n.output if n.op_type != "Constant"}
    renamed = set()
    infos = []
    for v, name in zip(graph.outputs, out_names):
        src = ctx.name(v)
        if src in produced and src not in renamed:
            b.rename_output(src, name)
            renamed.add(src)
            ctx.names = {k: (name if n == src else n) for k, n in ctx.names.items()}
        else:
            b.op("Identity", [src], out_names=[name])
        infos.append(value_info(name, v.dtype, _dims(ctx.table, v, name, axes)))
    return infos


__all__ = ["DEFAULT_OPSET", "export"]
