"""Binds ops from modules that land after the core (indexing, sorting, shape ops)."""
from __future__ import annotations

import importlib

import jitorch

# (module, names bound both as jitorch.<name> and Tensor.<name>)
_MODULES = ("jitorch.ops.shape_ops", "jitorch.ops.indexing", "jitorch.ops.sorting", "jitorch.ops.scan", "jitorch.ops.nn_ops",
            "jitorch.ops.einsum_op", "jitorch.ops.random_fill")

for _m in _MODULES:
    try:
        mod = importlib.import_module(_m)
    except ModuleNotFoundError as exc:
        if exc.name != _m:
            raise
        continue
    for _name in getattr(mod, "__all__", ()):
        setattr(jitorch, _name, getattr(mod, _name))
    for _name in getattr(mod, "TENSOR_METHODS", ()):
        setattr(jitorch.Tensor, _name, getattr(mod, _name))

# random draws made from a tensor of probabilities are methods too (torch.Tensor.bernoulli/multinomial)
from jitorch.ops import creation as _creation  # noqa: E402

for _name in ("bernoulli", "multinomial"):
    setattr(jitorch.Tensor, _name, getattr(_creation, _name))
