"""``repr(tensor)`` formatted like torch's (precision 4, shared column width, scientific when needed)."""
from __future__ import annotations

import numpy as np

_PRINT = {"precision": 4, "threshold": 1000, "edgeitems": 3, "linewidth": 80, "sci_mode": None}


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None, profile=None,
                     sci_mode=None) -> None:
    if profile == "default":
        _PRINT.update(precision=4, threshold=1000, edgeitems=3, linewidth=80)
    elif profile == "short":
        _PRINT.update(precision=2, threshold=1000, edgeitems=2, linewidth=80)
    elif profile == "full":
        _PRINT.update(precision=4, threshold=float("inf"), edgeitems=3, linewidth=80)
    for k, v in (("precision", precision), ("threshold", threshold), ("edgeitems", edgeitems),
                 ("linewidth", linewidth)):
        if v is not None:
            _PRINT[k] = v
    _PRINT["sci_mode"] = sci_mode


class _Formatter:
    def __init__(self, values: np.ndarray, floating: bool):
        self.floating = floating
        self.int_mode = True
        self.sci = False
        finite = values[np.isfinite(values)] if floating else values
        prec = _PRINT["precision"]
        if not floating:
            self.width = max((len(str(int(v))) for v in values.reshape(-1)), default=1)
            return
        nz = np.abs(finite[finite != 0]) if finite.size else finite
        if finite.size:
            self.int_mode = bool(np.all(np.ceil(finite) == finite))
        if self.int_mode:
            if nz.size and (nz.max() / nz.min() > 1000.0 or nz.max() > 1e8):
                self.int_mode = False
                self.sci = True
            else:
                self.width = max((len(f"{v:.0f}.") for v in finite.reshape(-1)), default=1)
        else:
            if nz.size and (nz.max() / nz.min() > 1000.0 or nz.max() > 1e8 or nz.min() < 1e-4):
                self.sci = True
            else:
                self.width = max((len(f"{v:.{prec}f}") for v in finite.reshape(-1)), default=1)
        if _PRINT["sci_mode"] is not None:
            self.sci = _PRINT["sci_mode"]
        if self.sci:
            self.width = max((len(f"{v:.{prec}e}") for v in finite.reshape(-1)), default=1)
        for v in values.reshape(-1):
            if not np.isfinite(v):
                self.width = max(self.width, len(self._raw(v)))

    def _raw(self, v) -> str:
        if not self.floating:
            return str(int(v)) if not isinstance(v, (bool, np.bool_)) else str(bool(v))
        if np.isnan(v):
            return "nan"
        if np.isinf(v):
            return "inf" if v > 0 else "-inf"
        prec = _PRINT["precision"]
        if self.sci:
            return f"{v:.{prec}e}"
        if self.int_mode:
            return f"{v:.0f}."
        return f"{v:.{prec}f}"

    def format(self, v) -> str:
        return self._raw(v).rjust(self.width)


def _summarize(arr):
    edge = _PRINT["edgeitems"]
    return arr.size > _PRINT["threshold"]


def _fmt(arr, fmt, indent, summarize):
    edge = _PRINT["edgeitems"]
    if arr.ndim == 0:
        return fmt.format(arr.item())
    if arr.ndim == 1:
        items = [fmt.format(v) for v in arr]
        if summarize and arr.shape[0] > 2 * edge:
            items = items[:edge] + ["..."] + items[-edge:]
        per_line = max(1, (_PRINT["linewidth"] - indent) // (fmt.width + 2))
        lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
        return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"
    rows = list(range(arr.shape[0]))
    if summarize and arr.shape[0] > 2 * edge:
        rows = rows[:edge] + [None] + rows[-edge:]
    parts = [(_fmt(arr[i], fmt, indent + 1, summarize) if i is not None else "...") for i in rows]
    sep = "," + "\n" * (arr.ndim - 1) + " " * (indent + 1)
    return "[" + sep.join(parts) + "]"


def tensor_repr(t) -> str:
    import jitorch
    arr = t._data
    if arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    floating = t.dtype.is_floating_point
    summarize = _summarize(arr)
    if arr.size == 0:
        body = "[]"
    else:
        if t.dtype is jitorch.bool:
            fmt = _BoolFormatter()
        else:
            sample = arr
            if summarize:
                edge = _PRINT["edgeitems"]
                sample = np.concatenate([arr.reshape(-1)[:edge], arr.reshape(-1)[-edge:]])
            fmt = _Formatter(np.asarray(sample, dtype=np.float64 if floating else np.int64), floating)
        body = _fmt(arr, fmt, len("tensor("), summarize)
    suffix = []
    if t.device.type != "cpu":
        suffix.append(f"device='{t.device}'")
    default_dtypes = (jitorch.get_default_dtype(), jitorch.int64, jitorch.bool)
    if t.dtype not in default_dtypes or arr.size == 0 and t.dtype is not jitorch.get_default_dtype():
        suffix.append(f"dtype={t.dtype!r}")
    if arr.size == 0 and arr.ndim != 1:
        suffix.insert(0, f"size={tuple(arr.shape)}")
    if t.grad_fn is not None:
        suffix.append(f"grad_fn=<{t.grad_fn.name()}>")
    elif t.requires_grad:
        suffix.append("requires_grad=True")
    name = "Parameter containing:\ntensor(" if type(t).__name__ == "Parameter" else "tensor("
    return name + body + "".join(", " + s for s in suffix) + ")"


class _BoolFormatter:
    width = 5

    def format(self, v) -> str:
        return str(bool(v)).rjust(5)
