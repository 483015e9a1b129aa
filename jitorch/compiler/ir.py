"""The graph IR: a flat SSA list of nodes, one per primitive.

A :class:`Value` is a tensor-valued SSA name with its shape, dtype and device;
a :class:`Node` applies one registry op to values (and Python scalars) and
defines new values.  ``str(graph)`` prints readable pseudo-code::

    graph(%0: f32[8, 16], %1: f32[16]):
      %2 = add(%0, %1)              f32[8, 16]
      %3 = sum(%2) dims=(1,)        f32[8]
      return (%3,)
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any


class Value:
    """One tensor in the graph."""

    __slots__ = ("id", "shape", "dtype", "device", "producer", "kind", "const", "name", "users")

    def __init__(self, vid: int, shape, dtype, device, producer=None, kind: str = "node", const=None,
                 name: str | None = None):
        self.id = vid
        self.shape = tuple(shape)
        self.dtype = dtype
        self.device = device
        self.producer = producer  # the Node that defines it (None for inputs and constants)
        self.kind = kind  # 'input' | 'const' | 'node'
        self.const = const  # the tensor, for constants
        self.name = name
        self.users: list = []

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    def type_str(self) -> str:
        short = {"float32": "f32", "float64": "f64", "float16": "f16", "int64": "i64", "int32": "i32",
                 "int16": "i16", "int8": "i8", "uint8": "u8", "bool": "b8", "bfloat16": "bf16"}[self.dtype.name]
        return f"{short}[{', '.join(str(s) for s in self.shape)}]"

    def __repr__(self) -> str:
        return f"%{self.id}"


@dataclass(eq=False)
class Node:
    """``outputs = op(*inputs, **attrs)``; inputs are Values or Python scalars."""

    op: Any
    inputs: list
    attrs: dict
    outputs: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)  # e.g. compute dtype, source line

    @property
    def name(self) -> str:
        return self.op.name if hasattr(self.op, "name") else str(self.op)

    @property
    def kind(self) -> str:
        return getattr(self.op, "kind", "special")

    def __repr__(self) -> str:
        return f"Node({self.name})"


def _fmt_attr(v) -> str:
    if isinstance(v, tuple) and v and isinstance(v[0], slice):
        return "[" + ", ".join(_fmt_slice(s) for s in v) + "]"
    if hasattr(v, "name") and not isinstance(v, str):
        return str(v.name)
    return repr(v)


def _fmt_slice(s) -> str:
    if isinstance(s, slice):
        return f"{'' if s.start is None else s.start}:{'' if s.stop is None else s.stop}" + (
            f":{s.step}" if s.step not in (None, 1) else "")
    return repr(s)


class Graph:
    """A function as a list of nodes over values."""

    def __init__(self):
        self.inputs: list[Value] = []
        self.nodes: list[Node] = []
        self.outputs: list[Value] = []
        self.constants: list[Value] = []
        # (input value, final value): in-place updates of inputs to write back after running
        self.mutations: list[tuple[Value, Value]] = []
        self._ids = itertools.count()

    def new_value(self, shape, dtype, device, producer=None, kind="node", const=None, name=None) -> Value:
        return Value(next(self._ids), shape, dtype, device, producer, kind, const, name)

    def add_input(self, shape, dtype, device, name=None) -> Value:
        v = self.new_value(shape, dtype, device, kind="input", name=name)
        self.inputs.append(v)
        return v

    def add_constant(self, tensor) -> Value:
        v = self.new_value(tensor.shape, tensor.dtype, tensor.device, kind="const", const=tensor)
        self.constants.append(v)
        return v

    def add_node(self, op, inputs, attrs, out_specs, meta=None) -> Node:
        node = Node(op, list(inputs), dict(attrs or {}), meta=dict(meta or {}))
        for shape, dtype, device in out_specs:
            node.outputs.append(self.new_value(shape, dtype, device, producer=node))
        self.nodes.append(node)
        return node

    def rebuild_users(self) -> None:
        for v in itertools.chain(self.inputs, self.constants):
            v.users = []
        for n in self.nodes:
            for o in n.outputs:
                o.users = []
        for n in self.nodes:
            for i in n.inputs:
                if isinstance(i, Value):
                    i.users.append(n)

    def __str__(self) -> str:
        ins = ", ".join(f"{v!r}: {v.type_str()}" + (f" ({v.name})" if v.name else "") for v in self.inputs)
        lines = [f"graph({ins}):"]
        for c in self.constants:
            lines.append(f"  {c!r} = constant  {c.type_str()}")
        for n in self.nodes:
            args = ", ".join(repr(i) if isinstance(i, Value) else _fmt_attr(i) for i in n.inputs)
            attrs = " ".join(f"{k}={_fmt_attr(v)}" for k, v in n.attrs.items() if k != "out_dtype")
            outs = ", ".join(repr(o) for o in n.outputs)
            types = ", ".join(o.type_str() for o in n.outputs)
            lhs = f"{outs} = {n.name}({args})" + (f" {attrs}" if attrs else "")
            lines.append(f"  {lhs:<44} {types}")
        for src, dst in self.mutations:
            lines.append(f"  copy_({src!r}, {dst!r})")
        lines.append(f"  return ({', '.join(repr(o) for o in self.outputs)}{',' if len(self.outputs) == 1 else ''})")
        return "\n".join(lines)
