"""What a lowering function sees: ONNX names of IR values, casts, constants and run-time sizes."""
from __future__ import annotations

import math

import numpy as np

from ...compiler.ir import Value
from ..builder import GraphBuilder, np_dtype
from ..errors import DynamicAxesError, UnsupportedOperatorError
from ..symbolic_shapes import ShapeTable, Sym, UnknownDim, is_static


class LoweringContext:
    """Per-export state shared by the lowerings.

    ``names`` maps IR value ids to ONNX tensor names; ``dtypes`` remembers the
    dtype of each so operands can be cast where an op needs another one.
    """

    def __init__(self, builder: GraphBuilder, table: ShapeTable, symbol_sources: dict):
        self.b = builder
        self.table = table
        self.names: dict[int, str] = {}
        self.dtypes: dict[int, object] = {}
        self.node = None  # the IR node being lowered (for error messages)
        self.graph_outputs: set = set()
        self._symbol_sources = symbol_sources  # symbol key -> (ONNX input name, axis)
        self._dim_cache: dict = {}
        self._deferred: dict = {}  # value id -> function emitting it (constants appear at first use)

    @property
    def opset(self) -> int:
        return self.b.opset

    # -- values --------------------------------------------------------------------------------------
    def bind(self, v: Value, name: str) -> None:
        self.names[v.id] = name
        self.dtypes[v.id] = v.dtype

    def defer(self, v: Value, make) -> None:
        """Emit ``v`` (a constant) only if and when a lowering reads it."""
        self._deferred[v.id] = make

    def name(self, v: Value) -> str:
        n = self.names.get(v.id)
        if n is None:
            make = self._deferred.pop(v.id)
            scope, self.b.scope = self.b.scope, ""
            try:
                n = make()
            finally:
                self.b.scope = scope
            self.bind(v, n)
        return n

    def value(self, v: Value, dtype=None) -> str:
        """The ONNX name of ``v``, cast to ``dtype`` when given and different."""
        n = self.name(v)
        if dtype is not None and np_dtype(v.dtype) != np_dtype(dtype):
            n = self.b.cast(n, dtype)
        return n

    def is_used(self, v: Value) -> bool:
        return bool(v.users) or v.id in self.graph_outputs

    def shape(self, v: Value) -> tuple:
        return self.table.shape(v)

    def static_shape(self, v: Value, what: str) -> tuple:
        """The shape of ``v`` when it is the same at every size of the dynamic axes; else a clear error."""
        s = self.shape(v)
        if all(is_static(d) for d in s):
            return tuple(int(d) for d in s)
        raise self.dynamic_error(f"{what} needs a fixed shape, but it is "
                                 f"[{', '.join(self.table.dim_name(d) for d in s)}]")

    def scalar(self, node, pos: int, dtype) -> str:
        """Input ``pos`` of ``node`` as an ONNX tensor of ``dtype``: a Value cast, or a 0-d constant."""
        x = node.inputs[pos]
        if isinstance(x, Value):
            return self.value(x, dtype)
        x = self.table.scalar(node, pos)
        if isinstance(x, UnknownDim):
            raise self.dynamic_error(f"the Python number passed as its argument {pos} changes with the dynamic "
                                     f"axes ({x.what}) and is not a product of their sizes plus a constant")
        if isinstance(x, Sym):
            return self.b.cast(self.b.squeeze(self.dim_tensor(x), [0]), dtype)
        return self.b.const(np.asarray(x).astype(np_dtype(dtype)))

    def static_scalar(self, node, pos: int):
        """A Python scalar input that lowerings bake into attributes (must not vary with dynamic axes)."""
        x = self.table.scalar(node, pos)
        if isinstance(x, (Sym, UnknownDim)):
            raise self.dynamic_error(f"argument {pos} of {node.name} changes with the dynamic axes")
        return x

    # -- run-time sizes --------------------------------------------------------------------------------
    def dim_tensor(self, dim) -> str:
        """A 1-element int64 tensor holding ``dim`` at run time."""
        if is_static(dim):
            return self.b.i64([int(dim)])
        if isinstance(dim, UnknownDim):
            raise self.dynamic_error("a size that changes with the dynamic axes, but not as a product of "
                                     "them plus a constant, is needed at run time")
        hit = self._dim_cache.get(dim)
        if hit is not None:
            return hit
        pieces = [self._symbol_size(k) for k, p in enumerate(dim.powers) for _ in range(p)]
        out = pieces[0]
        for p in pieces[1:]:
            out = self.b.op("Mul", [out, p])
        if dim.coef != 1:
            out = self.b.op("Mul", [out, self.b.i64([dim.coef])])
        if dim.offset:
            out = self.b.op("Add", [out, self.b.i64([dim.offset])])
        self._dim_cache[dim] = out
        return out

    def _symbol_size(self, key: int) -> str:
        hit = self._dim_cache.get(("symbol", key))
        if hit is None:
            src, axis = self._symbol_sources[key]
            if self.opset >= 15:
                hit = self.b.op("Shape", [src], start=axis, end=axis + 1)
            else:
                hit = self.b.op("Gather", [self.b.op("Shape", [src]), self.b.i64([axis])], axis=0)
            self._dim_cache[("symbol", key)] = hit
        return hit

    def shape_tensor(self, dims) -> str:
        """A 1-D int64 tensor of ``dims``; static runs are constants, dynamic dims computed from inputs."""
        if all(is_static(d) for d in dims):
            return self.b.i64([int(d) for d in dims])
        key = ("shape", tuple(dims))
        if key in self._dim_cache:
            return self._dim_cache[key]
        parts, run = [], []
        for d in dims:
            if is_static(d):
                run.append(int(d))
                continue
            if run:
                parts.append(self.b.i64(run))
                run = []
            parts.append(self.dim_tensor(d))
        if run:
            parts.append(self.b.i64(run))
        out = parts[0] if len(parts) == 1 else self.b.op("Concat", parts, axis=0)
        self._dim_cache[key] = out
        return out

    def reshape(self, name: str, in_shape, out_shape) -> str:
        """Reshape to ``out_shape`` (symbolic); one dynamic dim becomes -1, several are computed."""
        if tuple(in_shape) == tuple(out_shape):
            return name
        dynamic = [i for i, d in enumerate(out_shape) if not is_static(d)]
        has_zero = any(is_static(d) and int(d) == 0 for d in out_shape)
        if len(dynamic) <= 1 and not (has_zero and dynamic):
            shape = self.b.i64([-1 if i in dynamic else int(d) for i, d in enumerate(out_shape)])
        else:
            shape = self.shape_tensor(out_shape)
        # a literal 0 in the shape means "copy the input's dim" unless allowzero is set
        return self.b.op("Reshape", [name, shape], allowzero=1 if has_zero and self.opset >= 14 else None)

    # -- errors ----------------------------------------------------------------------------------------
    def where(self) -> str | None:
        return self.node.meta.get("where") if self.node is not None else None

    def unsupported(self, hint: str | None = None, name: str | None = None) -> UnsupportedOperatorError:
        return UnsupportedOperatorError(name or (self.node.name if self.node is not None else "?"), self.opset,
                                        where=self.where(), hint=hint)

    def dynamic_error(self, msg: str) -> DynamicAxesError:
        op = self.node.name if self.node is not None else "?"
        return DynamicAxesError(f"cannot export '{op}' (called at {self.where() or '?'}) with the requested "
                                f"dynamic_axes: {msg}. Export without that dynamic axis, or keep the size fixed")


def prod(xs) -> int:
    return int(math.prod(xs))
