"""Sorting, selection and set operations: sort, topk, max/min with a dim, median, unique, searchsorted...

Every value-selecting op is two steps: a non-differentiable index primitive
(a Numba kernel over the dim moved last, or over an ``(outer, n, inner)``
view) finds the indices, then ``shape_ops.gather_along`` picks the values.
So the gradient of the values flows to the selected elements (a scatter into
zeros) through one derivative rule, and double backward works.  Full
reductions that torch differentiates "evenly" (``median()``,
``nanmedian()``) are primitives of their own.

NaN is the largest value: ascending sorts put it last, max/argmax pick it.
"""
from __future__ import annotations

import collections
import math
import types

import numpy as np

from .. import _dtype as D
from .._dispatch import apply
from .._tensor import Tensor, wrap_dim
from ..runtime import sort_scan_kernels as K
from . import reductions as R
from . import views as V
from .registry import impl, kernel_op
from .shape_ops import gather_along, scatter_add_along

__all__ = [
    "aminmax",
    "argmax",
    "argmin",
    "argsort",
    "bucketize",
    "count_nonzero",
    "kthvalue",
    "max",
    "median",
    "min",
    "mode",
    "msort",
    "nanmedian",
    "return_types",
    "searchsorted",
    "sort",
    "topk",
    "unique",
    "unique_consecutive",
]
TENSOR_METHODS = ["sort", "argsort", "msort", "topk", "kthvalue", "median", "nanmedian", "mode", "unique",
                  "unique_consecutive", "max", "min", "argmax", "argmin", "count_nonzero", "aminmax"]


# -- torch.return_types: named tuples that also unpack ---------------------------------------------------
def _return_type(name: str, fields: tuple):
    base = collections.namedtuple(name, fields)

    def __repr__(self):
        body = ",\n".join(f"{f}={v!r}" for f, v in zip(fields, self))
        return f"jitorch.return_types.{name}(\n{body})"

    return type(name, (base,), {"__slots__": (), "__repr__": __repr__,
                                "__module__": "jitorch.return_types"})


_VI = ("values", "indices")
return_types = types.SimpleNamespace(**{n: _return_type(n, _VI) for n in (
    "sort", "topk", "kthvalue", "median", "nanmedian", "mode", "max", "min", "cummax", "cummin")})
return_types.aminmax = _return_type("aminmax", ("min", "max"))


# -- kernel-facing helpers -----------------------------------------------------------------------------
def _kernel_dtype(a: np.ndarray) -> np.ndarray:
    """Few kernel specializations: float32/float64 stay, other floats -> float32, ints/bool -> int64."""
    if a.dtype == np.float32 or a.dtype == np.float64:
        return a
    if a.dtype.kind == "f":
        return a.astype(np.float32)
    return a.astype(np.int64)


def _rows(x: np.ndarray, dim: int) -> np.ndarray:
    """``x`` with ``dim`` moved last, as a C-contiguous (rows, n) array in a kernel dtype."""
    y = np.moveaxis(x, dim, -1) if x.ndim else x.reshape(1)
    return np.ascontiguousarray(_kernel_dtype(y)).reshape(math.prod(y.shape[:-1]), y.shape[-1])


def _unrows(res: np.ndarray, x_shape: tuple, dim: int, last: int) -> np.ndarray:
    """Undo ``_rows`` for a result with ``last`` entries per row."""
    if len(x_shape) == 0:
        return res.reshape(())
    moved = tuple(s for i, s in enumerate(x_shape) if i != dim) + (last,)
    return np.ascontiguousarray(np.moveaxis(res.reshape(moved), -1, dim))


def _sorted_indices(x: np.ndarray, dim: int, descending: bool) -> np.ndarray:
    rows = _rows(x, dim)
    out = np.empty(rows.shape, dtype=np.int64)
    if rows.size:
        K.argsort_rows(rows, descending, out)
    return out


# -- index primitives (not differentiable) -------------------------------------------------------------------
ARGSORT = kernel_op("argsort", differentiable=False)
TOPK_INDICES = kernel_op("topk_indices", differentiable=False)
ARGEXT = kernel_op("argext", differentiable=False)
KTH_INDICES = kernel_op("kth_indices", differentiable=False)
MODE_INDICES = kernel_op("mode_indices", differentiable=False)
SEARCHSORTED = kernel_op("searchsorted", nin=2, differentiable=False)


@impl("argsort")
def _argsort_cpu(x, dim, descending):
    return _unrows(_sorted_indices(x, dim, descending), x.shape, dim, x.shape[dim] if x.ndim else 1)


@impl("topk_indices")
def _topk_cpu(x, dim, k, largest):
    rows = _rows(x, dim)
    if 8 * k >= rows.shape[1]:  # a large share of the row: a full sort is as cheap
        return _unrows(_sorted_indices(x, dim, largest)[:, :k], x.shape, dim, k)
    out = np.empty((rows.shape[0], k), dtype=np.int64)
    if out.size:
        K.topk_rows(rows, k, largest, out)
    return _unrows(out, x.shape, dim, k)


@impl("argext")
def _argext_cpu(x, dim, want_max, keepdim):
    """First index of the max/min along ``dim`` (``dim`` None: of the flattened array)."""
    shape = x.shape
    if dim is None:
        x3 = np.ascontiguousarray(_kernel_dtype(x)).reshape(1, -1, 1)
    else:
        outer, n, inner = math.prod(shape[:dim]), shape[dim], math.prod(shape[dim + 1:])
        x3 = np.ascontiguousarray(_kernel_dtype(x)).reshape(outer, n, inner)
    out = np.zeros((x3.shape[0], x3.shape[2]), dtype=np.int64)
    if x3.size:
        K.argext_3d(x3, want_max, out)
    if dim is None:
        return out.reshape((1,) * len(shape) if keepdim else ())
    kept = tuple(1 if i == dim else s for i, s in enumerate(shape))
    return out.reshape(kept if keepdim else shape[:dim] + shape[dim + 1:])


@impl("kth_indices")
def _kth_cpu(x, dim, k, nan_rule):
    """Index of the k-th smallest (0-based) per row.

    ``nan_rule``: "none" (NaN sorts last), "propagate" (a row with NaN gives
    its first NaN: median), or "ignore" (the lower median of the non-NaN
    values, whatever ``k``: nanmedian).
    """
    rows = _rows(x, dim)
    order = np.empty(rows.shape, dtype=np.int64)
    if rows.size:
        K.argsort_rows(rows, False, order)
    n = rows.shape[1]
    if nan_rule == "none":
        pick = order[:, k]
    else:
        isnan = np.isnan(rows)
        nan_count = isnan.sum(axis=1)
        if nan_rule == "propagate":
            pick = np.where(nan_count > 0, isnan.argmax(axis=1), order[:, k])
        else:
            valid = n - nan_count
            pos = np.maximum((valid - 1) // 2, 0)
            pick = np.take_along_axis(order, pos[:, None], axis=1)[:, 0]
    return _unrows(pick, x.shape, dim, 1)


@impl("mode_indices")
def _mode_cpu(x, dim):
    rows = _rows(x, dim)
    out = np.empty(rows.shape[0], dtype=np.int64)
    K.mode_rows(rows, out)
    return _unrows(out, x.shape, dim, 1)


@impl("searchsorted")
def _searchsorted_cpu(seq, vals, sorter, right, int32):
    common = np.result_type(seq.dtype, vals.dtype)
    if sorter is not None:
        seq = np.take_along_axis(seq, sorter, axis=-1)
    s2 = _kernel_dtype(np.ascontiguousarray(seq, dtype=common)).reshape(-1, seq.shape[-1])
    v2 = _kernel_dtype(np.ascontiguousarray(vals, dtype=common))
    v2 = v2.reshape(s2.shape[0], -1) if v2.size else v2.reshape(1, 0)
    if s2.dtype != v2.dtype:  # int boundaries and float values: compare as float64
        s2, v2 = s2.astype(np.float64), v2.astype(np.float64)
    out = np.empty(v2.shape, dtype=np.int64)
    if out.size:
        K.searchsorted_rows(s2, v2, right, out)
    return out.reshape(vals.shape).astype(np.int32 if int32 else np.int64)


# -- shared front-end pieces -----------------------------------------------------------------------------
def _check_tensor(name: str, x) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}(): argument 'input' (position 1) must be Tensor, not {type(x).__name__}")


def _values_at(x: Tensor, idx: Tensor, d: int, keepdim: bool) -> Tensor:
    """Values of ``x`` at ``idx`` (one index per reduced row, keepdim layout) along ``d``."""
    if x.ndim == 0:
        return gather_along(V.reshape(x, (1,)), V.reshape(idx, (1,)), 0).reshape(())
    v = gather_along(x, idx, d)
    return v if keepdim else V.squeeze(v, d)


def _select(kind: str, x: Tensor, idx: Tensor, d: int, keepdim: bool):
    """(values, indices) return type for one index per row along ``d`` (``idx`` in keepdim layout)."""
    vals = _values_at(x, idx, d, keepdim)
    if not keepdim and x.ndim:
        idx = V.squeeze(idx, d)
    return getattr(return_types, kind)(vals, idx)


def _nonempty_dim(name: str, x: Tensor, d: int) -> None:
    if x.ndim and x.shape[d] == 0:
        raise IndexError(f"{name}(): Expected reduction dim {d} to have non-zero size.")


# -- sort / argsort / topk / kthvalue -------------------------------------------------------------------
def sort(input: Tensor, dim: int = -1, descending: bool = False, *, stable: bool = False, out=None):
    """Sorted values and their indices along ``dim`` (always stable; NaN sorts as the largest).

    >>> jitorch.sort(jitorch.tensor([3., 1., 2.])).indices
    tensor([1, 2, 0])
    """
    _check_tensor("sort", input)
    d = wrap_dim(dim, input.ndim)
    idx = apply(ARGSORT, [input], {"dim": d, "descending": bool(descending)})
    if input.ndim == 0:
        return return_types.sort(_values_at(input, idx, 0, False), idx)
    return return_types.sort(gather_along(input, idx, d), idx)


def argsort(input: Tensor, dim: int = -1, descending: bool = False, *, stable: bool = False) -> Tensor:
    """Indices that sort ``input`` along ``dim``."""
    _check_tensor("argsort", input)
    return apply(ARGSORT, [input], {"dim": wrap_dim(dim, input.ndim), "descending": bool(descending)})


def msort(input: Tensor) -> Tensor:
    """Values sorted along dim 0."""
    return sort(input, 0).values


def topk(input: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True, *, out=None):
    """The ``k`` largest (or smallest) values along ``dim`` and their indices, in sorted order."""
    _check_tensor("topk", input)
    d = wrap_dim(dim, input.ndim)
    n = input.shape[d] if input.ndim else 1
    if not 0 <= k <= n:
        raise RuntimeError("selected index k out of range")
    if input.dtype is D.bool_:
        raise RuntimeError("topk does not support bool dtypes on CPU")
    if input.ndim == 0:
        idx = apply(TOPK_INDICES, [input], {"dim": 0, "k": 1, "largest": bool(largest)})
        return return_types.topk(_values_at(input, idx, 0, False), idx)
    idx = apply(TOPK_INDICES, [input], {"dim": d, "k": int(k), "largest": bool(largest)})
    return return_types.topk(gather_along(input, idx, d), idx)


def kthvalue(input: Tensor, k: int, dim: int = -1, keepdim: bool = False, *, out=None):
    """The ``k``-th smallest value (1-based) along ``dim`` and its index."""
    _check_tensor("kthvalue", input)
    d = wrap_dim(dim, input.ndim)
    n = input.shape[d] if input.ndim else 1
    if not 1 <= k <= n:
        raise RuntimeError(f"kthvalue(): selected number k out of range for dimension {d}")
    idx = apply(KTH_INDICES, [input], {"dim": d, "k": int(k) - 1, "nan_rule": "none"})
    return _select("kthvalue", input, idx, d, keepdim)


# -- median / nanmedian / mode -----------------------------------------------------------------------------
def _evenly_vjp(c, g):
    # torch's evenly_distribute_backward: ties (or all NaNs for a NaN result) share the gradient
    import jitorch
    x, out = c.inputs[0], c.out
    mask = jitorch.where(jitorch.isnan(out), jitorch.isnan(x), jitorch.eq(x, out)).to(g.dtype)
    return (mask * (g / R.sum(mask)),)


MEDIAN_ALL = kernel_op("median_all", vjp=_evenly_vjp, saves="both", node_name="MedianBackward0")
NANMEDIAN_ALL = kernel_op("nanmedian_all", vjp=_evenly_vjp, saves="both", node_name="NanmedianBackward0")


def _lower_median(flat: np.ndarray, ignore_nan: bool):
    vals = flat[~np.isnan(flat)] if ignore_nan else flat
    if vals.size == 0 or (not ignore_nan and vals.dtype.kind == "f" and np.isnan(vals).any()):
        return np.nan
    return np.partition(vals, (vals.size - 1) // 2)[(vals.size - 1) // 2]


@impl("median_all")
def _median_all_cpu(x):
    return np.asarray(_lower_median(x.reshape(-1), False), dtype=x.dtype)


@impl("nanmedian_all")
def _nanmedian_all_cpu(x):
    return np.asarray(_lower_median(x.reshape(-1), True), dtype=x.dtype)


def _median(name: str, input: Tensor, dim, keepdim: bool, ignore_nan: bool):
    _check_tensor(name, input)
    if dim is None:
        if input.numel() == 0 and not input.dtype.is_floating_point:
            raise RuntimeError(f"{name}() input tensor cannot be empty")
        return apply(NANMEDIAN_ALL if ignore_nan else MEDIAN_ALL, [input])
    d = wrap_dim(dim, input.ndim)
    _nonempty_dim(name, input, d)
    n = input.shape[d] if input.ndim else 1
    rule = "ignore" if ignore_nan else "propagate"
    idx = apply(KTH_INDICES, [input], {"dim": d, "k": (n - 1) // 2, "nan_rule": rule})
    return _select(name, input, idx, d, keepdim)


def median(input: Tensor, dim: int | None = None, keepdim: bool = False, *, out=None):
    """Lower median of all elements (a tensor), or along ``dim`` (values, indices); NaN propagates."""
    return _median("median", input, dim, keepdim, ignore_nan=False)


def nanmedian(input: Tensor, dim: int | None = None, keepdim: bool = False, *, out=None):
    """``median`` that ignores NaNs (NaN only when everything is NaN)."""
    return _median("nanmedian", input, dim, keepdim, ignore_nan=True)


def mode(input: Tensor, dim: int = -1, keepdim: bool = False, *, out=None):
    """Most frequent value along ``dim`` (the smallest on ties) and the index of its last occurrence."""
    _check_tensor("mode", input)
    d = wrap_dim(dim, input.ndim)
    _nonempty_dim("mode", input, d)
    idx = apply(MODE_INDICES, [input], {"dim": d})
    return _select("mode", input, idx, d, keepdim)


# -- max / min / argmax / argmin / aminmax / count_nonzero ------------------------------------------------------
def _extreme(name: str, want_max: bool, input: Tensor, dim, keepdim: bool, other):
    _check_tensor(name, input)
    if isinstance(dim, Tensor):  # max(a, b) is maximum(a, b)
        other, dim = dim, None
    if other is not None:
        import jitorch
        return jitorch.maximum(input, other) if want_max else jitorch.minimum(input, other)
    if dim is None:
        if input.numel() == 0:
            raise RuntimeError(f"{name}(): Expected reduction dim to be specified for input.numel() == 0. "
                               "Specify the reduction dim with the 'dim' argument.")
        return R.amax(input) if want_max else R.amin(input)
    d = wrap_dim(dim, input.ndim)
    _nonempty_dim(name, input, d)
    idx = apply(ARGEXT, [input], {"dim": d if input.ndim else None, "want_max": want_max, "keepdim": True})
    return _select(name, input, idx, d, keepdim)


def max(input: Tensor, dim=None, keepdim: bool = False, *, other: Tensor | None = None, out=None):
    """``max(x)``: the largest element; ``max(x, dim)``: (values, indices); ``max(x, y)``: ``maximum``."""
    return _extreme("max", True, input, dim, keepdim, other)


def min(input: Tensor, dim=None, keepdim: bool = False, *, other: Tensor | None = None, out=None):
    """``min(x)``: the smallest element; ``min(x, dim)``: (values, indices); ``min(x, y)``: ``minimum``."""
    return _extreme("min", False, input, dim, keepdim, other)


def _argext(name: str, want_max: bool, input: Tensor, dim, keepdim: bool) -> Tensor:
    _check_tensor(name, input)
    if input.dtype is D.bool_:
        raise RuntimeError(f"{name}(): does not support bool input")
    if dim is None:
        if input.numel() == 0:
            raise IndexError(f"{name}(): Expected reduction dim to be specified for input.numel() == 0.")
        return apply(ARGEXT, [input], {"dim": None, "want_max": want_max, "keepdim": bool(keepdim)})
    d = wrap_dim(dim, input.ndim)
    _nonempty_dim(name, input, d)
    if input.ndim == 0:
        return apply(ARGEXT, [input], {"dim": None, "want_max": want_max, "keepdim": False})
    return apply(ARGEXT, [input], {"dim": d, "want_max": want_max, "keepdim": bool(keepdim)})


def argmax(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """Index of the (first) largest value, flat when ``dim`` is None; NaN counts as the largest."""
    return _argext("argmax", True, input, dim, keepdim)


def argmin(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """Index of the (first) smallest value, flat when ``dim`` is None; NaN wins here too, like torch."""
    return _argext("argmin", False, input, dim, keepdim)


def aminmax(input: Tensor, *, dim: int | None = None, keepdim: bool = False):
    """(min, max) over ``dim`` or all elements, as ``return_types.aminmax``."""
    _check_tensor("aminmax", input)
    if input.numel() == 0 and (dim is None or input.ndim == 0 or input.shape[wrap_dim(dim, input.ndim)] == 0):
        raise RuntimeError("aminmax(): cannot compute aminmax over an empty dimension as the operation has no "
                           "identity.")
    dims = () if dim is None else dim
    return return_types.aminmax(R.amin(input, dims, keepdim), R.amax(input, dims, keepdim))


def count_nonzero(input: Tensor, dim=None) -> Tensor:
    """Number of non-zero elements over ``dim`` (int or tuple; all when None), as int64."""
    _check_tensor("count_nonzero", input)
    import jitorch
    return R.sum(jitorch.ne(input, 0), dim)


# -- unique / unique_consecutive -------------------------------------------------------------------------------
def _from_np(arr: np.ndarray, dtype) -> Tensor:
    from .creation import from_numpy
    t = from_numpy(arr if arr.flags.c_contiguous else np.ascontiguousarray(arr))  # keeps 0-d arrays 0-d
    return t if dtype is None or t.dtype is dtype else t.to(dtype)


def _unique_result(values, inverse, counts, dtype, return_inverse, return_counts):
    res = [_from_np(values, dtype)]
    if return_inverse:
        res.append(_from_np(inverse.astype(np.int64), D.int64))
    if return_counts:
        res.append(_from_np(counts.astype(np.int64), D.int64))
    return res[0] if len(res) == 1 else tuple(res)


# unique on a device: the same results from tensor ops (sort, compare, cumsum, nonzero, scatter), so the work
# stays on the device and only the number of distinct values is read back (one sync, as in torch).
def _run_starts(change: Tensor):
    """Run ids (``cumsum(change) - 1``) and run starts (``nonzero(change)``: reads the run count) of a flag vector."""
    import jitorch
    group = jitorch.cumsum(change, 0) - 1
    starts = jitorch.nonzero(change).reshape(-1)
    return group, starts


def _changes(keys: Tensor) -> Tensor:
    """Along dim 0: True where an entry (a row, for 2-D keys) differs from the previous one; entry 0 is True.
    NaN differs from everything, itself included, so NaNs are never merged."""
    import jitorch
    n = keys.shape[0]
    change = jitorch.ones(n, dtype=D.bool_, device=keys.device)
    if n > 1:
        diff = jitorch.ne(keys[1:], keys[:-1])
        change[1:] = R.any(diff, 1) if keys.ndim == 2 else diff  # rows of no elements are all equal
    return change


def _dense_ranks(keys: Tensor) -> Tensor:
    """Each column's dense ranks along dim 0 (equal values share one, order kept): one sort for all columns."""
    import jitorch
    vals, order = sort(keys, 0)
    n = keys.shape[0]
    change = jitorch.ones(tuple(keys.shape), dtype=D.bool_, device=keys.device)
    if n > 1:
        change[1:] = jitorch.ne(vals[1:], vals[:-1])
    ranks = jitorch.cumsum(change, 0) - 1
    return scatter_add_along(ranks, order, 0, ranks.shape)  # a permutation: adding into zeros places


def _row_keys(rows: Tensor) -> Tensor:
    """One int64 key per row that orders rows lexicographically (equal rows, equal keys).

    Columns are replaced by their dense ranks (< n), then neighbouring columns are merged pairwise
    (``r0 * n + r1`` keeps the order and fits int64 for any n below 3e9) and re-ranked: log2(columns)
    rounds of one batched sort each, rather than one sort per column.
    """
    import jitorch
    n = rows.shape[0]
    keys = _dense_ranks(rows)
    while keys.shape[1] > 1:
        merged = keys[:, 0::2][:, :keys.shape[1] // 2] * n + keys[:, 1::2]
        if keys.shape[1] % 2:
            merged = jitorch.cat([merged, keys[:, -1:]], 1)
        keys = _dense_ranks(merged)
    return keys[:, 0]


def _unique_on_device(input: Tensor, d, return_inverse: bool, return_counts: bool, consecutive: bool):
    """``unique``/``unique_consecutive`` for a tensor off the CPU (``d``: the wrapped dim or None)."""
    import jitorch

    from ..autograd import grad_mode
    x = input.detach()
    dev = x.device
    with grad_mode.no_grad():
        if d is None:
            rows = x.reshape(-1)
            inv_shape = tuple(x.shape)
        else:
            moved = V.movedim(x, d, 0)
            rows = moved.reshape(moved.shape[0], math.prod(moved.shape[1:]))
            inv_shape = (rows.shape[0],)
        n = rows.shape[0]
        if n == 0:
            empty_i64 = jitorch.zeros(0, dtype=D.int64, device=dev)
            return _pack(x.reshape(0) if d is None else x, empty_i64.reshape(inv_shape), empty_i64,
                         return_inverse, return_counts)
        if consecutive:
            order = None
            change = _changes(rows)
        else:
            keys = rows if d is None else (_row_keys(rows) if rows.shape[1] else
                                           jitorch.zeros(n, dtype=D.int64, device=dev))
            sorted_keys, order = sort(keys)
            change = _changes(sorted_keys)
        group, starts = _run_starts(change)
        # the input position of each run's first element (gathers that trust their indices: no bounds read)
        firsts = starts if order is None else gather_along(order, starts, 0)
        if d is None:
            values = gather_along(rows, firsts, 0)
        else:
            k, m = firsts.shape[0], rows.shape[1]
            picked = gather_along(rows, V.expand(V.reshape(firsts, (k, 1)), (k, m)), 0) if m else rows[:k]
            values = V.movedim(V.reshape(picked, (k,) + tuple(moved.shape[1:])), 0, d)
        inverse = group if order is None else scatter_add_along(group, order, 0, (n,))
        ends = jitorch.cat([starts[1:], jitorch.full((1,), n, dtype=D.int64, device=dev)])
        return _pack(values.contiguous(), inverse.reshape(inv_shape), ends - starts, return_inverse,
                     return_counts)


def _pack(values, inverse, counts, return_inverse, return_counts):
    res = [values]
    if return_inverse:
        res.append(inverse)
    if return_counts:
        res.append(counts)
    return res[0] if len(res) == 1 else tuple(res)


def _check_unique_dim(name: str, input: Tensor, dim):
    if dim is None:
        return None
    if input.ndim == 0:
        raise IndexError(f"{name}(): dimension specified as {dim} but tensor has no dimensions")
    return wrap_dim(dim, input.ndim)


def unique(input: Tensor, sorted: bool = True, return_inverse: bool = False, return_counts: bool = False,
           dim: int | None = None):
    """Distinct elements (or distinct slices along ``dim``), sorted; NaNs are never merged, like torch."""
    _check_tensor("unique", input)
    d = _check_unique_dim("unique", input, dim)
    if input._data.__class__ is not np.ndarray:
        return _unique_on_device(input, d, return_inverse, return_counts, consecutive=False)
    x = input._data
    if d is None:
        flat = x.reshape(-1)
        vals, inv, counts = np.unique(flat, return_inverse=True, return_counts=True, equal_nan=False)
        return _unique_result(vals, inv.reshape(x.shape), counts, input.dtype, return_inverse, return_counts)
    vals, inv, counts = np.unique(x, return_inverse=True, return_counts=True, axis=d)
    return _unique_result(vals, inv.reshape(-1), counts, input.dtype, return_inverse, return_counts)


def unique_consecutive(input: Tensor, return_inverse: bool = False, return_counts: bool = False,
                       dim: int | None = None):
    """Collapse runs of equal consecutive elements (or slices along ``dim``)."""
    _check_tensor("unique_consecutive", input)
    d = _check_unique_dim("unique_consecutive", input, dim)
    if input._data.__class__ is not np.ndarray:
        return _unique_on_device(input, d, return_inverse, return_counts, consecutive=True)
    x = input._data
    if d is None:
        rows = x.reshape(-1, 1)
        inv_shape = x.shape
    else:
        moved = np.moveaxis(x, d, 0)
        rows = moved.reshape(x.shape[d], math.prod(moved.shape[1:]))
        inv_shape = (rows.shape[0],)
    n = rows.shape[0]
    if n == 0:
        change = np.zeros(0, dtype=bool)
    else:
        change = np.concatenate([[True], (rows[1:] != rows[:-1]).any(axis=1)])
    starts = np.flatnonzero(change)
    inverse = np.cumsum(change) - 1
    counts = np.diff(np.append(starts, n))
    if d is None:
        vals = x.reshape(-1)[starts]
    else:
        vals = np.take(x, starts, axis=d)
    return _unique_result(vals, inverse.reshape(inv_shape), counts, input.dtype, return_inverse, return_counts)


# -- searchsorted / bucketize ------------------------------------------------------------------------------------
def _as_tensor(x) -> Tensor:
    if isinstance(x, Tensor):
        return x
    from .creation import tensor
    return tensor(x)


def searchsorted(sorted_sequence: Tensor, input, *, out_int32: bool = False, right: bool = False,
                 side: str | None = None, sorter: Tensor | None = None, out=None) -> Tensor:
    """Insertion indices of ``input`` into the innermost dim of ``sorted_sequence``."""
    if side is not None:
        if side not in ("left", "right"):
            raise RuntimeError(f"torch.searchsorted(): side can only be 'left' or 'right' but got {side}")
        if right and side == "left":
            raise RuntimeError("torch.searchsorted(): side and right can't be set to opposites, got side of left "
                               "while right was True")
        right = side == "right"
    seq = sorted_sequence
    scalar = not isinstance(input, Tensor)
    vals = _as_tensor(input)
    if seq.ndim == 0:
        raise RuntimeError("torch.searchsorted(): boundaries tensor should have positive dimension, but got 0 "
                           "dimension")
    if seq.ndim > 1 and (vals.ndim != seq.ndim or tuple(vals.shape[:-1]) != tuple(seq.shape[:-1])):
        raise RuntimeError("torch.searchsorted(): boundaries tensor should be 1 dimension or the first N-1 "
                           "dimensions of boundaries tensor and input value tensor must match, but we got "
                           f"boundaries tensor {list(seq.shape)} and input value tensor {list(vals.shape)}")
    if sorter is not None and tuple(sorter.shape) != tuple(seq.shape):
        raise RuntimeError("torch.searchsorted(): boundary and sorter must have the same size, but got boundary "
                           f"tensor {list(seq.shape)}and got sorter tensor {list(sorter.shape)}")
    r = apply(SEARCHSORTED, [seq, vals, sorter], {"right": bool(right), "int32": bool(out_int32)})
    return r.reshape(()) if scalar else r


def bucketize(input, boundaries: Tensor, *, out_int32: bool = False, right: bool = False, out=None) -> Tensor:
    """Bucket index of each element of ``input`` given 1-D ``boundaries`` (searchsorted with the roles swapped)."""
    if boundaries.ndim != 1:
        raise RuntimeError(f"boundaries tensor must be 1 dimension, but got dim({boundaries.ndim})")
    return searchsorted(boundaries, input, out_int32=out_int32, right=right)

