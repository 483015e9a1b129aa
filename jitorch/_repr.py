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
    """Column width and notation shared by every element, chosen the way torch chooses them.

    Floating tensors look only at their finite non-zero values: all integral -> ``1.`` style,
    a spread over 1000x or values beyond 1e8 or below 1e-4 -> scientific, else fixed point.
    """

    def __init__(self, values: list, floating: bool):
        self.floating = floating
        self.int_mode = True
        self.sci = False
        self.width = 1
        prec = _PRINT["precision"]
        if not floating:
            self.width = max((len(str(v)) for v in values), default=1)
            return
        nz = [v for v in values if v != 0 and np.isfinite(v)]
        if not nz:
            return
        mags = [abs(v) for v in nz]
        lo, hi = min(mags), max(mags)
        self.int_mode = all(v == np.ceil(v) for v in nz)
        self.sci = hi / lo > 1000.0 or hi > 1.0e8 or lo < 1.0e-4
        if _PRINT["sci_mode"] is not None:
            self.sci = bool(_PRINT["sci_mode"])
        if self.sci:
            self.width = max(len(f"{v:.{prec}e}") for v in nz)
        elif self.int_mode:
            self.width = max(len(f"{v:.0f}") + 1 for v in nz)
        else:
            self.width = max(len(f"{v:.{prec}f}") for v in nz)

    def format(self, v) -> str:
        if not self.floating:
            text = str(v)
        elif self.sci:
            text = f"{v:.{_PRINT['precision']}e}"
        elif self.int_mode:
            text = f"{v:.0f}" + ("" if np.isinf(v) or np.isnan(v) else ".")
        else:
            text = f"{v:.{_PRINT['precision']}f}"
        return text.rjust(self.width)


def _edge_values(arr: np.ndarray, summarize: bool) -> list:
    """The elements that get printed: all of them, or only the edge items of every dim."""
    if not summarize or arr.ndim == 0:
        return arr.reshape(-1).tolist()
    edge = _PRINT["edgeitems"]
    n = arr.shape[0]
    rows = range(n) if n <= 2 * edge else list(range(edge)) + list(range(n - edge, n))
    if arr.ndim == 1:
        return [arr[i].item() for i in rows]
    out = []
    for i in rows:
        out.extend(_edge_values(arr[i], summarize))
    return out


def _fmt(arr, fmt, indent, summarize):
    edge = _PRINT["edgeitems"]
    if arr.ndim == 0:
        return fmt.format(arr.item())
    if arr.ndim == 1:
        vals = arr.tolist()
        if summarize and len(vals) > 2 * edge:
            items = [fmt.format(v) for v in vals[:edge]] + [" ..."] + [fmt.format(v) for v in vals[-edge:]]
        else:
            items = [fmt.format(v) for v in vals]
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
    arr = t._host()  # a CUDA tensor is printed from a host copy
    if arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    elif t.dtype is jitorch.bfloat16:  # its storage holds bit patterns: print their float32 values
        arr = jitorch._dtype.bf16_values(arr)
    summarize = arr.size > _PRINT["threshold"]
    if arr.size == 0:
        body = "[]"
    else:
        fmt = _Formatter(_edge_values(arr, summarize), t.dtype.is_floating_point)
        body = _fmt(arr, fmt, len("tensor("), summarize)
    suffix = []
    if t.device.type != "cpu":
        suffix.append(f"device='{t.device}'")
    default_dtypes = (jitorch.get_default_dtype(), jitorch.int64, jitorch.bool)
    if t.dtype not in default_dtypes or arr.size == 0 and t.dtype is not jitorch.get_default_dtype():
        suffix.append(f"dtype={t.dtype!r}")
    if arr.size == 0 and arr.ndim != 1:
        suffix.insert(1 if t.device.type != "cpu" else 0, f"size={tuple(arr.shape)}")  # after device, as torch
    if t.grad_fn is not None:
        suffix.append(f"grad_fn=<{t.grad_fn.name()}>")
    elif t.requires_grad:
        suffix.append("requires_grad=True")
    name = "Parameter containing:\ntensor(" if type(t).__name__ == "Parameter" else "tensor("
    return name + body + "".join(", " + s for s in suffix) + ")"
