"""A small ONNX graph builder over ``onnx.helper``: unique names, constants, nodes in order."""
from __future__ import annotations

import itertools

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

_NP = {"float32": np.float32, "float64": np.float64, "float16": np.float16, "int64": np.int64,
       "int32": np.int32, "int16": np.int16, "int8": np.int8, "uint8": np.uint8, "bool": np.bool_}


def np_dtype(dtype) -> np.dtype:
    """The NumPy dtype of a jitorch dtype (or of a NumPy dtype / type)."""
    name = getattr(dtype, "name", None)
    if name in _NP:
        return np.dtype(_NP[name])
    return np.dtype(dtype)


def onnx_dtype(dtype) -> int:
    """The ``TensorProto`` element type of a jitorch or NumPy dtype."""
    return helper.np_dtype_to_tensor_dtype(np_dtype(dtype))


class GraphBuilder:
    """Collects nodes and initializers; every name it hands out is unique in the graph."""

    def __init__(self, opset: int):
        self.opset = opset
        self.nodes: list = []
        self.initializers: list = []
        self.scope = ""  # prefix of the names made for the IR node being lowered, e.g. "/matmul_6"
        self._used: set = set()
        self._suffix = itertools.count()
        self._const_cache: dict = {}

    # -- names ---------------------------------------------------------------------------------------
    def unique(self, name: str) -> str:
        if name not in self._used:
            self._used.add(name)
            return name
        while True:
            cand = f"{name}.{next(self._suffix)}"
            if cand not in self._used:
                self._used.add(cand)
                return cand

    def reserve(self, name: str) -> None:
        if name in self._used:
            raise ValueError(f"jitorch.onnx.export: the name {name!r} is used twice")
        self._used.add(name)

    # -- nodes ---------------------------------------------------------------------------------------
    def op(self, op_type: str, inputs, *, n_out: int = 1, out_names=None, **attrs):
        """Append ``op_type(*inputs, **attrs)``; returns its output name (a list when ``n_out > 1``)."""
        base = f"{self.scope}/{op_type}"
        outs = list(out_names) if out_names is not None else [
            self.unique(f"{base}_output_{k}") for k in range(n_out)]
        ins = ["" if i is None else i for i in inputs]
        while ins and ins[-1] == "":  # trailing optional inputs are simply left out
            ins.pop()
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(helper.make_node(op_type, ins, outs, name=self.unique(base), **attrs))
        return outs if (n_out > 1 or (out_names is not None and len(outs) > 1)) else outs[0]

    def rename_output(self, old: str, new: str) -> bool:
        """Let the node that produces ``old`` write ``new`` instead (for the graph's output names)."""
        for n in self.nodes:
            for k, o in enumerate(n.output):
                if o == old:
                    n.output[k] = new
                    for m in self.nodes:
                        for j, i in enumerate(m.input):
                            if i == old:
                                m.input[j] = new
                    return True
        return False

    def prune(self, keep: set) -> None:
        """Drop nodes none of whose outputs reach ``keep`` (the graph outputs) — e.g. a projection
        that a recurrent op took over."""
        needed = set(keep)
        kept = []
        for n in reversed(self.nodes):
            if any(o in needed for o in n.output):
                kept.append(n)
                needed.update(i for i in n.input if i)
        self.nodes = kept[::-1]

    # -- constants -----------------------------------------------------------------------------------
    def const(self, value, dtype=None) -> str:
        """A ``Constant`` node holding ``value`` (small ones are shared)."""
        arr = np.asarray(value, dtype=np_dtype(dtype) if dtype is not None else None)
        if arr.dtype == np.float64 and dtype is None and not isinstance(value, np.ndarray):
            arr = arr.astype(np.float32)
        key = None
        if arr.size <= 64:
            key = (arr.dtype.str, arr.shape, arr.tobytes())
            hit = self._const_cache.get(key)
            if hit is not None:
                return hit
        name = self.unique(f"/Constant_{arr.dtype.name}" if key is not None else f"{self.scope}/Constant")
        self.nodes.append(helper.make_node("Constant", [], [name], name=self.unique(name),
                                           value=numpy_helper.from_array(np.ascontiguousarray(arr), name)))
        if key is not None:
            self._const_cache[key] = name
        return name

    def i64(self, values) -> str:
        """A 1-D int64 constant (shapes, axes, starts/ends)."""
        return self.const(np.asarray(list(values), dtype=np.int64).reshape(-1))

    def initializer(self, name: str, array: np.ndarray) -> None:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))

    # -- helpers used by many lowerings ------------------------------------------------------------------------
    def cast(self, name: str, to) -> str:
        return self.op("Cast", [name], to=onnx_dtype(to))

    def unsqueeze(self, name: str, axes) -> str:
        return self.op("Unsqueeze", [name, self.i64(axes)])

    def squeeze(self, name: str, axes) -> str:
        return self.op("Squeeze", [name, self.i64(axes)])

    def reduce(self, op_type: str, name: str, axes, keepdims: bool) -> str:
        """A Reduce* node; its axes are an input from opset 18 (ReduceSum: 13), an attribute before."""
        axes = list(axes)
        axes_as_input = op_type == "ReduceSum" or self.opset >= 18
        if axes_as_input:
            return self.op(op_type, [name, self.i64(axes)], keepdims=int(keepdims))
        return self.op(op_type, [name], axes=axes, keepdims=int(keepdims))


def value_info(name: str, dtype, dims) -> onnx.ValueInfoProto:
    """A graph input/output declaration; ``dims`` entries are ints or dim_param strings."""
    return helper.make_tensor_value_info(name, onnx_dtype(dtype), list(dims))


__all__ = ["GraphBuilder", "TensorProto", "np_dtype", "onnx_dtype", "value_info"]
