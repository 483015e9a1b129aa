"""Views, shape ops, reductions, matmul and indexing -> ONNX.

Sizes come from the shape table, not from the node attributes, so a reshape
or expand whose target includes a dynamic axis is written with ``-1`` or a
shape computed from the inputs at run time (see ``LoweringContext``).
"""
from __future__ import annotations

import numpy as np

from ..builder import np_dtype
from ..symbolic_shapes import is_static
from . import lowers

INT64_MAX = np.iinfo(np.int64).max


# -- views ---------------------------------------------------------------------------------------------
@lowers("reshape", dynamic_attrs=("shape",))
def lower_reshape(ctx, node):
    x, out = node.inputs[0], node.outputs[0]
    return ctx.reshape(ctx.name(x), ctx.shape(x), ctx.shape(out))


@lowers("permute")
def lower_permute(ctx, node):
    dims = [int(d) for d in node.attrs["dims"]]
    x = ctx.name(node.inputs[0])
    return x if dims == list(range(len(dims))) else ctx.b.op("Transpose", [x], perm=dims)


@lowers("expand", dynamic_attrs=("shape",))
def lower_expand(ctx, node):
    x, out = node.inputs[0], node.outputs[0]
    src, dst = ctx.shape(x), ctx.shape(out)
    if src == dst:
        return ctx.name(x)
    # Expand broadcasts both ways: a dim the input already has at full size can be given as 1,
    # so only the dims that really grow need their (possibly run-time) size
    lead = len(dst) - len(src)
    target = [d if k < lead or src[k - lead] != d else 1 for k, d in enumerate(dst)]
    return ctx.b.op("Expand", [ctx.name(x), ctx.shape_tensor(target)])


def _normalize_index(index, ndim: int) -> list:
    """A basic index as items ('new',) | ('int', i) | ('slice', s), with Ellipsis expanded."""
    index = index if isinstance(index, tuple) else (index,)
    consumed = sum(1 for i in index if i is not None and i is not Ellipsis)
    items = []
    for i in index:
        if i is Ellipsis:
            items += [("slice", slice(None))] * (ndim - consumed)
        elif i is None:
            items.append(("new",))
        elif isinstance(i, slice):
            items.append(("slice", i))
        else:
            items.append(("int", int(i)))
    used = sum(1 for it in items if it[0] != "new")
    items += [("slice", slice(None))] * (ndim - used)
    return items


def _bound(ctx, values, sizes, what):
    """One Slice start/end for the values seen at each capture: fixed, or counted from the end."""
    if all(v == values[0] for v in values):
        return values[0]
    back = [s - v for v, s in zip(values, sizes)]
    if all(b == back[0] for b in back) and back[0] > 0:
        return -back[0]
    raise ctx.dynamic_error(f"the slice {what} changes with the dynamic axes but is neither fixed nor a fixed "
                            "distance from the end")


@lowers("slice", dynamic_attrs=("index",))
def lower_slice(ctx, node):
    x = node.inputs[0]
    twins = ctx.table.variants(node)
    per_capture = [_normalize_index(n.attrs["index"], len(n.inputs[0].shape)) for n in twins]
    starts, ends, axes, steps, squeeze, new_axes = [], [], [], [], [], []
    axis = out_pos = 0
    for k, item in enumerate(per_capture[0]):
        if item[0] == "new":
            new_axes.append(out_pos)
            out_pos += 1
            continue
        sizes = [n.inputs[0].shape[axis] for n in twins]
        if item[0] == "int":
            idx = [(c[k][1] + s if c[k][1] < 0 else c[k][1]) for c, s in zip(per_capture, sizes)]
            start = _bound(ctx, idx, sizes, "index")
            starts.append(start)
            ends.append(INT64_MAX if start == -1 else start + 1)
            axes.append(axis)
            steps.append(1)
            squeeze.append(axis)
        else:
            resolved = [c[k][1].indices(s) for c, s in zip(per_capture, sizes)]
            step = resolved[0][2]
            if step <= 0 or any(r[2] != step for r in resolved):
                raise ctx.unsupported("Slices with a non-positive or changing step have no lowering")
            if not all(r[0] == 0 and r[1] >= s for r, s in zip(resolved, sizes)) or step != 1:
                start = _bound(ctx, [r[0] for r in resolved], sizes, "start")
                stops = [r[1] for r in resolved]
                end = INT64_MAX if all(e >= s for e, s in zip(stops, sizes)) else _bound(ctx, stops, sizes, "end")
                starts.append(start)
                ends.append(end)
                axes.append(axis)
                steps.append(step)
            out_pos += 1
        axis += 1
    y = ctx.name(x)
    if axes:
        y = ctx.b.op("Slice", [y, ctx.b.i64(starts), ctx.b.i64(ends), ctx.b.i64(axes), ctx.b.i64(steps)])
    if squeeze:
        y = ctx.b.squeeze(y, squeeze)
    if new_axes:
        y = ctx.b.unsqueeze(y, new_axes)
    if y == ctx.name(x):
        y = ctx.b.op("Identity", [y])
    return y


# -- joining and splitting ---------------------------------------------------------------------------------
@lowers("cat")
def lower_cat(ctx, node):
    dt = node.outputs[0].dtype
    parts = [ctx.value(v, dt) for v in node.inputs if ctx.shape(v) != (0,) or len(node.inputs) == 1]
    return ctx.b.op("Concat", parts, axis=int(node.attrs["dim"]))


@lowers("stack")
def lower_stack(ctx, node):
    d = int(node.attrs["dim"])
    dt = node.outputs[0].dtype
    return ctx.b.op("Concat", [ctx.b.unsqueeze(ctx.value(v, dt), [d]) for v in node.inputs], axis=d)


@lowers("split_with_sizes")
def lower_split(ctx, node):
    sizes = [int(s) for s in node.attrs["sizes"]]
    outs = ctx.b.op("Split", [ctx.name(node.inputs[0]), ctx.b.i64(sizes)], n_out=len(sizes),
                    axis=int(node.attrs["dim"]))
    return outs if isinstance(outs, list) else [outs]


@lowers("unbind")
def lower_unbind(ctx, node):
    d = int(node.attrs["dim"])
    n = len(node.outputs)
    parts = ctx.b.op("Split", [ctx.name(node.inputs[0]), ctx.b.i64([1] * n)], n_out=n, axis=d)
    parts = parts if isinstance(parts, list) else [parts]
    return [ctx.b.squeeze(p, [d]) for p in parts]


@lowers("flip")
def lower_flip(ctx, node):
    dims = [int(d) for d in node.attrs["dims"]]
    if not dims:
        return ctx.b.op("Identity", [ctx.name(node.inputs[0])])
    n = len(dims)
    return ctx.b.op("Slice", [ctx.name(node.inputs[0]), ctx.b.i64([-1] * n), ctx.b.i64([np.iinfo(np.int64).min] * n),
                              ctx.b.i64(dims), ctx.b.i64([-1] * n)])


@lowers("roll")
def lower_roll(ctx, node):
    x = ctx.name(node.inputs[0])
    shape = ctx.static_shape(node.inputs[0], "roll")
    for shift, d in zip(node.attrs["shifts"], node.attrs["dims"]):
        size = shape[d]
        s = int(shift) % size if size else 0
        if s == 0:
            continue
        tail = ctx.b.op("Slice", [x, ctx.b.i64([size - s]), ctx.b.i64([size]), ctx.b.i64([d])])
        head = ctx.b.op("Slice", [x, ctx.b.i64([0]), ctx.b.i64([size - s]), ctx.b.i64([d])])
        x = ctx.b.op("Concat", [tail, head], axis=int(d))
    return x if x != ctx.name(node.inputs[0]) else ctx.b.op("Identity", [x])


# -- reductions --------------------------------------------------------------------------------------------
_REDUCE = {"sum": "ReduceSum", "prod": "ReduceProd", "amax": "ReduceMax", "amin": "ReduceMin"}


@lowers("sum", "prod", "amax", "amin")
def lower_reduce(ctx, node):
    x, out = node.inputs[0], node.outputs[0]
    dims, keep = list(node.attrs["dims"]), bool(node.attrs["keepdim"])
    work = out.dtype if np_dtype(out.dtype) != np.bool_ else np.int32  # ONNX reductions take no bool
    y = ctx.value(x, work)
    if dims:
        y = ctx.b.reduce(_REDUCE[node.name], y, dims, keep)
    else:
        y = ctx.b.op("Identity", [y])
    return ctx.b.cast(y, out.dtype) if np_dtype(work) != np_dtype(out.dtype) else y


@lowers("all", "any")
def lower_all_any(ctx, node):
    x = node.inputs[0]
    dims, keep = list(node.attrs["dims"]), bool(node.attrs["keepdim"])
    as_int = ctx.b.cast(ctx.value(x, np.bool_), np.int32)
    if dims:
        as_int = ctx.b.reduce("ReduceMin" if node.name == "all" else "ReduceMax", as_int, dims, keep)
    return ctx.b.cast(as_int, np.bool_)


@lowers("norm2")
def lower_norm2(ctx, node):
    x, out = node.inputs[0], node.outputs[0]
    dims, keep = list(node.attrs["dims"]), bool(node.attrs["keepdim"])
    y = ctx.value(x, out.dtype)
    if not dims:
        return ctx.b.op("Abs", [y])
    return ctx.b.reduce("ReduceL2", y, dims, keep)


@lowers("argext")
def lower_argext(ctx, node):
    x = ctx.name(node.inputs[0])
    dim, keep = node.attrs["dim"], bool(node.attrs["keepdim"])
    op_type = "ArgMax" if node.attrs["want_max"] else "ArgMin"
    if dim is None:  # over the flattened tensor; keepdim gives all-ones dims
        flat = ctx.b.op("Reshape", [x, ctx.b.i64([-1])])
        idx = ctx.b.op(op_type, [flat], axis=0, keepdims=0)
        shape = node.outputs[0].shape
        return ctx.b.op("Reshape", [idx, ctx.b.i64(list(shape))]) if shape else idx
    return ctx.b.op(op_type, [x], axis=int(dim), keepdims=int(keep))


@lowers("cumsum")
def lower_cumsum(ctx, node):
    out = node.outputs[0]
    y = ctx.value(node.inputs[0], out.dtype)
    return ctx.b.op("CumSum", [y, ctx.b.const(np.asarray(int(node.attrs["dim"]), np.int64))],
                    reverse=int(bool(node.attrs.get("reverse", False))))


# -- matmul and indexing -------------------------------------------------------------------------------------
@lowers("matmul")
def lower_matmul(ctx, node):
    dt = node.outputs[0].dtype
    return ctx.b.op("MatMul", [ctx.value(node.inputs[0], dt), ctx.value(node.inputs[1], dt)])


@lowers("embedding")
def lower_embedding(ctx, node):
    weight, idx = node.inputs[0], node.inputs[1]
    return ctx.b.op("Gather", [ctx.name(weight), ctx.value(idx, np.int64)], axis=0)


@lowers("gather_along_dim")
def lower_gather_along_dim(ctx, node):
    x, idx = node.inputs
    return ctx.b.op("GatherElements", [ctx.name(x), ctx.value(idx, np.int64)], axis=int(node.attrs["dim"]))


@lowers("gather")
def lower_gather(ctx, node):
    index = np.asarray(node.attrs["index"], dtype=np.int64)
    return ctx.b.op("GatherElements", [ctx.name(node.inputs[0]), ctx.b.const(index)], axis=int(node.attrs["dim"]))


@lowers("index", "index_select")
def lower_index(ctx, node):
    """``x[..., idx arrays on dims, ...]`` with the indices fixed at capture time (NumPy's rules)."""
    x = node.inputs[0]
    dims = [int(d) for d in node.attrs["dims"]]
    shape = ctx.shape(x)
    idx = [np.asarray(a, dtype=np.int64) for a in node.attrs["idx"]]
    if len(dims) == 1:
        return ctx.b.op("Gather", [ctx.name(x), ctx.b.const(idx[0])], axis=dims[0])
    sizes = []
    for d in dims:
        if not is_static(shape[d]):
            raise ctx.dynamic_error("advanced indexing over a dynamic axis")
        sizes.append(int(shape[d]))
    idx = [np.where(a < 0, a + s, a) for a, s in zip(np.broadcast_arrays(*idx), sizes)]
    flat = np.ravel_multi_index(tuple(idx), tuple(sizes))
    y = ctx.name(x)
    adjacent = dims == list(range(dims[0], dims[0] + len(dims)))
    if not adjacent:  # NumPy puts the indexed dims first when they are not next to each other
        rest = [d for d in range(len(shape)) if d not in dims]
        y = ctx.b.op("Transpose", [y], perm=dims + rest)
        shape = tuple(shape[d] for d in dims + rest)
        dims = list(range(len(dims)))
    merged = shape[:dims[0]] + (int(np.prod(sizes)),) + shape[dims[-1] + 1:]
    y = ctx.reshape(y, shape, merged)
    return ctx.b.op("Gather", [y, ctx.b.const(flat)], axis=dims[0])
