"""The exported graph's interface: argument normalization, input/output names and dynamic axes."""
from __future__ import annotations

import inspect

from .._tensor import Tensor
from ..utils._tree import tensor_leaves
from .errors import warn
from .symbolic_shapes import Symbol


def split_args(args, kwargs) -> tuple:
    """torch.onnx's ``args``: a tensor, or a tuple whose last element may be a dict of keyword arguments."""
    if isinstance(args, Tensor):
        args = (args,)
    elif isinstance(args, list):
        args = tuple(args)
    elif not isinstance(args, tuple):
        args = (args,)
    kwargs = dict(kwargs or {})
    if args and isinstance(args[-1], dict):
        kwargs = {**args[-1], **kwargs}
        args = args[:-1]
    return args, kwargs


def default_input_names(model, args: tuple, kwargs: dict) -> list:
    """A name per input tensor: the forward's parameter name (``x``, or ``x_0``, ``x_1`` for nested ones)."""
    fn = getattr(model, "forward", model)
    try:
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    names = []
    groups = [(params[k].name if k < len(params) else f"input_{k}", a) for k, a in enumerate(args)]
    groups += list(kwargs.items())
    for base, obj in groups:
        n = len(tensor_leaves(obj, []))
        names += [base] if n == 1 else [f"{base}_{i}" for i in range(n)]
    return names


def resolve_names(given, defaults: list, what: str) -> list:
    """User names for the first entries (torch allows fewer than there are), defaults for the rest."""
    given = list(given or [])
    if len(given) > len(defaults):
        raise ValueError(f"jitorch.onnx.export: {len(given)} {what}_names given for {len(defaults)} {what}s")
    names = given + defaults[len(given):]
    if len(set(names)) != len(names):
        raise ValueError(f"jitorch.onnx.export: {what} names must be unique, got {names}")
    return names


def normalize_dynamic_axes(dynamic_axes, valid_names) -> dict:
    """``{name: {axis: dim_name}}``; a list of axes gets torch's generated names ``<name>_dynamic_axes_<k>``."""
    out = {}
    for key, value in (dynamic_axes or {}).items():
        if key not in valid_names:
            warn(f"Provided key {key} for dynamic axes is not a valid input/output name")
        if isinstance(value, dict):
            axes = {}
            for axis, dim in value.items():
                if not isinstance(axis, int):  # torch raises ValueError here too
                    raise ValueError("The type of axis index is expected to be an integer")  # noqa: TRY004
                axes[axis] = str(dim)
        else:
            axes = {}
            for i, axis in enumerate(value):
                if not isinstance(axis, int):  # torch raises ValueError here too
                    raise ValueError("The type of axis index is expected to be an integer")  # noqa: TRY004
                axes.setdefault(axis, f"{key}_dynamic_axes_{i + 1}")
        out[key] = axes
    return out


def input_symbols(dynamic_axes: dict, input_names: list, tensors: list) -> list:
    """One Symbol per (dim name, example size) over the graph inputs' dynamic axes."""
    groups: dict = {}
    for pos, (name, t) in enumerate(zip(input_names, tensors)):
        for axis, dim in dynamic_axes.get(name, {}).items():
            a = axis + t.ndim if axis < 0 else axis
            if not 0 <= a < t.ndim:
                raise ValueError(f"jitorch.onnx.export: dynamic axis {axis} of input {name!r} is out of range for "
                                 f"its {t.ndim}-d example")
            if t.shape[a] < 1:
                raise ValueError(f"jitorch.onnx.export: dynamic axis {axis} of input {name!r} has size 0 in the "
                                 "example; give an example of size 1 or more")
            groups.setdefault((dim, int(t.shape[a])), []).append((pos, a))
    return [Symbol(k, dim, size, tuple(src)) for k, ((dim, size), src) in enumerate(groups.items())]


def enlarged(args: tuple, kwargs: dict, symbols: list, factor: int):
    """Copies of the arguments with every axis of ``symbols`` repeated ``factor`` times."""
    from .. import cat
    axes: dict = {}
    for s in symbols:
        for pos, axis in s.sources:
            axes.setdefault(pos, []).append(axis)
    counter = iter(range(1 << 30))
    grown: dict = {}  # one tensor passed twice stays one tensor (modules may test `query is key`)

    def grow(obj):
        if isinstance(obj, Tensor):
            pos = next(counter)
            if id(obj) not in grown:
                t = obj
                for axis in axes.get(pos, ()):
                    t = cat([t] * factor, axis)
                grown[id(obj)] = t
            return grown[id(obj)]
        if isinstance(obj, tuple):
            return tuple(grow(o) for o in obj)
        if isinstance(obj, list):
            return [grow(o) for o in obj]
        if isinstance(obj, dict):
            return {k: grow(v) for k, v in obj.items()}
        return obj

    new_args = grow(args)
    return new_args, grow(kwargs)
