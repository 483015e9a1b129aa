"""Shared machinery of the indexing ops.

- ``IndexPlan``: a parsed ``x[key]`` (a basic, view-making part, then integer
  arrays on some dims of that view), usable on NumPy arrays and, with
  autograd, on tensors;
- the advanced-index primitives ``index`` (gather by integer arrays),
  ``index_backward`` (accumulate into zeros) and ``index_put`` (write by plan);
- ``assign``: ``t[plan] = value`` in place with torch's autograd semantics,
  including writes through a view of a tensor in the graph (torch's
  ``CopySlices``);
- ``inplace``: turns an out-of-place op into its in-place form;
- small validators shared by the indexing modules.

Index values live where their tensor lives: a CUDA index tensor's values stay on the
device (the CUDA kernels take device index arrays) and are never read here: the
kernel that uses them wraps negatives where the op allows them and checks their
bounds on the device, and the error surfaces at the next host synchronization
(``runtime/cuda/device_checks.py``), as torch's device-side asserts do.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _dispatch
from .. import _dtype as D
from .._dispatch import _record, _snapshot, _state, _type_word, apply
from .._tensor import Tensor, wrap
from ..runtime import index_kernels as K
from .registry import impl, kernel_op
from .views import basic_index, reshape

I64 = np.dtype(np.int64)
_INT_DTYPES = (D.int8, D.int16, D.int32, D.int64, D.uint8)


# -- plans -----------------------------------------------------------------------------------------------
class IndexPlan:
    """``x[basic][adv]``: ``basic`` is a NumPy basic index (ints, slices, None) or None
    for "all of x"; ``idx`` are non-negative int64 arrays (broadcast to one shape) for
    the dims ``dims`` of the basic result.  ``flat`` indexes ``x.reshape(-1)`` instead
    of applying ``basic`` (positions in a root tensor, for writes through views)."""

    __slots__ = ("basic", "dims", "flat", "idx")

    def __init__(self, basic: tuple | None = None, dims: tuple = (), idx: tuple = (), flat: bool = False):
        self.basic = basic
        self.dims = dims
        self.idx = idx
        self.flat = flat

    @classmethod
    def positions(cls, pos: np.ndarray) -> IndexPlan:
        return cls(None, (0,), (pos,), True)

    @property
    def is_full(self) -> bool:
        return self.basic is None and not self.dims and not self.flat

    def __repr__(self) -> str:
        return f"IndexPlan(basic={self.basic}, dims={self.dims}, flat={self.flat})"

    # NumPy side
    def region(self, arr: np.ndarray) -> np.ndarray:
        if self.flat:
            if not arr.flags.c_contiguous:  # reshape would copy and the write would be lost
                raise AssertionError("a positions plan needs a contiguous array")
            return arr.reshape(-1)
        return arr[self.basic] if self.basic is not None else arr

    def adv_key(self, ndim: int) -> tuple:
        key = [slice(None)] * ndim
        for d, a in zip(self.dims, self.idx):
            key[d] = a
        return tuple(key)

    def get_np(self, arr: np.ndarray) -> np.ndarray:
        r = self.region(arr)
        return r[self.adv_key(r.ndim)] if self.dims else r

    def set_np(self, arr: np.ndarray, value) -> None:
        r = self.region(arr)
        if self.dims:
            r[self.adv_key(r.ndim)] = value
        else:
            r[...] = value

    def result_shape(self, shape: tuple) -> tuple:
        dummy = np.broadcast_to(np.zeros((), np.bool_), shape)
        base = self.region(dummy).shape if not self.flat else (math.prod(shape),)
        if not self.dims:
            return base
        return adv_result_shape(base, self.dims, self.idx[0].shape)

    # tensor side (differentiable)
    def get(self, t: Tensor) -> Tensor:
        if self.flat:
            y = reshape(t, (-1,))
        elif self.basic is not None:
            y = basic_index(t, self.basic)
        else:
            y = t
        if self.dims:
            y = apply(INDEX, [y], {"dims": self.dims, "idx": self.idx})
        return y


FULL = IndexPlan()


def adv_result_shape(shape: tuple, dims: tuple, bshape: tuple) -> tuple:
    """Shape of ``x[...arrays on dims...]``: NumPy's rule, arrays on adjacent dims stay in place."""
    rest = [s for d, s in enumerate(shape) if d not in dims]
    if _adjacent(dims):
        return tuple(shape[:dims[0]]) + tuple(bshape) + tuple(shape[dims[-1] + 1:])
    return tuple(bshape) + tuple(rest)


def _adjacent(dims: tuple) -> bool:
    return dims == tuple(range(dims[0], dims[0] + len(dims)))


# -- primitives --------------------------------------------------------------------------------------------
def _index_vjp(c, g):
    a = c.attrs
    return (apply(INDEX_BACKWARD, [g], {"shape": c.in_meta[0][0], "dims": a["dims"], "idx": a["idx"]}),)


def _index_backward_vjp(c, g):
    return (apply(INDEX, [g], {"dims": c.attrs["dims"], "idx": c.attrs["idx"]}),)


INDEX = kernel_op("index", vjp=_index_vjp, saves="none", node_name="IndexBackward0")
INDEX_BACKWARD = kernel_op("index_backward", vjp=_index_backward_vjp, saves="none")


@impl("index")
def _index_impl(x, dims, idx):
    key = [slice(None)] * x.ndim
    for d, a in zip(dims, idx):
        key[d] = a
    return x[tuple(key)]


@impl("index_backward")
def _index_backward_impl(g, shape, dims, idx):
    """Sum ``g`` into zeros of ``shape`` at ``x[...idx on dims...]`` (duplicates add up).

    Moves the indexed dims next to each other, so the work is one
    ``out[o, lin[j], i] += g[o, j, i]`` over a 3-D (outer, n, inner) view.
    """
    m = len(dims)
    nd = len(shape)
    if _adjacent(dims):
        order = list(range(nd))
        p = dims[0]
    else:
        order = list(dims) + [d for d in range(nd) if d not in dims]
        p = 0
    pshape = [shape[d] for d in order]
    sizes = [shape[d] for d in dims]
    lin = np.ravel_multi_index(idx, sizes) if m > 1 else idx[0]
    lin = np.ascontiguousarray(lin, dtype=I64).reshape(-1)
    outer, inner = math.prod(pshape[:p]), math.prod(pshape[p + m:])
    work, finish = _work_dtype(g.dtype)
    out = np.zeros((outer, math.prod(sizes), inner), dtype=work)
    if out.size and lin.size:
        g3 = np.ascontiguousarray(g, dtype=work).reshape(outer, lin.size, inner)
        K.index_reduce_3d(out, lin, g3, True)
    out = finish(out).reshape(pshape)
    return out.transpose(np.argsort(order)) if order != list(range(nd)) else out


def _index_put_vjp(c, g):
    a = c.attrs
    plan: IndexPlan = a["plan"]
    gx = gv = None
    if c.needs_input_grad[0] and not plan.is_full:
        gx = g if a["accumulate"] else apply(INDEX_PUT, [g, None], {"plan": plan, "value": 0, "accumulate": False})
    if len(c.needs_input_grad) > 1 and c.needs_input_grad[1]:
        shape, dt = c.in_meta[1]
        gv = reduce_to_shape(plan.get(g), shape)
        if gv.dtype is not dt:
            gv = gv.to(dt)
    return gx, gv


INDEX_PUT = kernel_op("index_put", nin=2, vjp=_index_put_vjp, saves="none", node_name="IndexPutBackward0")


@impl("index_put")
def _index_put_impl(x, v, plan, value, accumulate):
    out = np.array(x, order="C", copy=True)
    src = v if v is not None else value
    with np.errstate(invalid="ignore", over="ignore"):
        if accumulate:
            accumulate_np(out, plan, src)
        else:
            plan.set_np(out, src)
    return out


def _root_view_vjp(c, g):
    a = c.attrs
    flat = apply(INDEX_BACKWARD, [g], {"shape": (a["numel"],), "dims": (0,), "idx": (a["pos"],)})
    return (flat.reshape(a["shape"]),)


# the history of a view after a write through it re-made it: its elements are
# root.reshape(-1)[pos] (recorded only, never run forward)
ROOT_VIEW = kernel_op("root_view", vjp=_root_view_vjp, saves="none", node_name="AsStridedBackward0")


def reduce_to_shape(g: Tensor, shape: tuple) -> Tensor:
    """Sum a gradient of a broadcast value back to the value's ``shape`` (leading 1s allowed)."""
    if tuple(g.shape) == tuple(shape):
        return g
    s = tuple(shape)
    while len(s) > g.ndim and s[0] == 1:
        s = s[1:]
    return g.sum_to_size(s).reshape(shape)


# -- NumPy helpers ------------------------------------------------------------------------------------------
def _work_dtype(dt: np.dtype):
    """(dtype a kernel computes in, function turning its result back): Numba has no float16 and
    bool sums must saturate, so those two are widened."""
    if dt == np.float16:
        return np.dtype(np.float32), lambda a: a.astype(np.float16)
    if dt == np.bool_:
        return I64, lambda a: a != 0
    return dt, lambda a: a


def accumulate_np(arr: np.ndarray, plan: IndexPlan, src) -> None:
    """``arr[plan] += src`` with repeated positions adding up (``index_put_(accumulate=True)``)."""
    if plan.flat and arr.flags.c_contiguous:
        pos = plan.idx[0]
    else:
        pos = plan.get_np(np.arange(arr.size, dtype=I64).reshape(arr.shape))
    pos = np.ascontiguousarray(pos, dtype=I64)
    src = np.asarray(src)
    while src.ndim > pos.ndim and src.shape[0] == 1:
        src = src[0]
    vals = np.broadcast_to(src, pos.shape)
    work, finish = _work_dtype(arr.dtype)
    flat = np.array(arr, dtype=work, order="C").reshape(-1) if (work != arr.dtype or not arr.flags.c_contiguous) \
        else arr.reshape(-1)
    v3 = np.ascontiguousarray(vals, dtype=work).reshape(1, -1, 1)
    K.index_reduce_3d(flat.reshape(1, -1, 1), pos.reshape(-1), v3, True)
    if not np.shares_memory(flat, arr):
        arr[...] = finish(flat).reshape(arr.shape)


def write_on_device(arr, plan: IndexPlan, src, accumulate: bool) -> None:
    """``arr[plan] = src`` (``+=`` with ``accumulate``) in place for a device array ``arr``.

    Scatters straight into ``arr`` with the CUDA indexing kernels; dtypes whose atomics need a
    wider type (half and bool sums, narrow ints) and flat plans over non-contiguous arrays go
    through the out-of-place ``index_put`` kernel and one copy back.
    NOTE for the CUDA runtime owners: this reaches into ``ops_index``'s ``_AdvView``/``_values``;
    a public in-place entry (``index_put_into(arr, plan, src, accumulate)``) would replace it.
    """
    from ..runtime.cuda import ops_index as C
    from ..runtime.cuda.copy import copy_into
    if not arr.size:
        return
    narrow = accumulate and arr.dtype in C._NEEDS_ATOMIC_WIDEN
    if narrow or (plan.flat and not arr.flags.c_contiguous):
        out = C._index_put_cuda(arr, src if on_device(src) else None, plan, None if on_device(src) else src,
                                accumulate)
        copy_into(arr, out)
        return
    if src.__class__ is np.ndarray:
        src = _cuda_ops().from_host(src)
    view = C._AdvView(plan.region(arr), tuple(plan.dims), tuple(plan.idx))
    view.scatter(C._values(src, view.shape, arr.dtype), accumulate, C._scalar_for(arr.dtype, 1))


def writable(t: Tensor) -> np.ndarray:
    arr = t._data
    if not arr.flags.writeable:
        raise RuntimeError(
            "unsupported operation: more than one element of the written-to tensor refers to a single memory "
            "location. Please clone() the tensor before performing the operation.")
    return arr


# -- the compiler's tracer --------------------------------------------------------------------------------------
def note_read(t: Tensor, what: str = "numpy") -> None:
    """Index values read from a tensor become constants of the op: under ``jitorch.compile``
    that is a graph break when the tensor is traced."""
    tracer = _dispatch._tracer
    if tracer is not None:
        tracer.on_concrete(t, what)


def note_write() -> None:
    """Indexed writes bypass the recorded ops: a traced function that makes one runs eagerly."""
    tracer = _dispatch._tracer
    if tracer is not None:
        tracer.record_break("indexed in-place write", "unsupported mutation")


# -- autograd for writes --------------------------------------------------------------------------------------
def autograd_root(t: Tensor) -> Tensor:
    """The tensor whose history a write into ``t`` changes: its base when ``t`` is a view in the
    same graph state as the base, else ``t`` itself (a detached alias has its own history)."""
    b = t._base
    if b is None or b._requires_grad != t._requires_grad or b._dtype is not t._dtype:
        return t
    return b


def check_leaf(t: Tensor, root: Tensor, as_view: bool = False) -> None:
    """torch refuses in-place writes into a leaf that requires grad (or a view of one)."""
    if _state.grad_enabled and root._grad_fn is None and root._requires_grad:
        if root is t and not as_view:
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")
        raise RuntimeError("a view of a leaf Variable that requires grad is being used in an in-place operation.")


def _address(a) -> int:
    return a.__array_interface__["data"][0] if a.__class__ is np.ndarray else a.data_ptr


def positions_in_root(view: np.ndarray, root: np.ndarray) -> np.ndarray | None:
    """For each element of ``view``, its flat (C-order) position in ``root`` (which it aliases);
    None when the two do not line up element-wise."""
    item = root.itemsize
    delta = _address(view) - _address(root)
    if view.itemsize != item or delta % item or any(s % item for s in view.strides + root.strides):
        return None
    off = delta // item
    vs = [s // item for s in view.strides]
    if root.flags.c_contiguous:
        pos = np.full(view.shape, off, dtype=I64)
        for d, (n, s) in enumerate(zip(view.shape, vs)):
            shp = [1] * view.ndim
            shp[d] = n
            pos += (np.arange(n, dtype=I64) * s).reshape(shp)
        return pos
    # lay the root's C positions out in a buffer with the root's own strides, read it with the view's
    rs = [s // item for s in root.strides]
    lo = sum(min(0, (n - 1) * s) for n, s in zip(root.shape, rs))
    hi = sum(max(0, (n - 1) * s) for n, s in zip(root.shape, rs))
    buf = np.zeros(hi - lo + 1, dtype=I64)
    strided = np.lib.stride_tricks.as_strided
    strided(buf[-lo:], root.shape, [s * 8 for s in rs])[...] = np.arange(root.size, dtype=I64).reshape(root.shape)
    return strided(buf[off - lo:], view.shape, [s * 8 for s in vs]).copy()


def assign(t: Tensor, plan: IndexPlan, value, *, accumulate: bool = False, as_view: bool = True) -> None:
    """``t[plan] = value`` (``+=`` with ``accumulate``) in place, with autograd.

    The written tensor's root gets an ``index_put`` node (grad: zeros where written
    for the old value, the gathered grad for ``value``); when ``t`` is a view, its
    history is re-made from the root's (torch's CopySlices).  ``value`` is a tensor
    already broadcastable to the region or a Python scalar.
    """
    vt = value if isinstance(value, Tensor) else None
    root = autograd_root(t)
    check_leaf(t, root, as_view)
    note_write()
    record = (_state.grad_enabled and t._dtype.is_floating_point
              and (root._requires_grad or (vt is not None and vt._requires_grad)))
    pos = None
    if record and root is not t:
        pos = positions_in_root(t._data, root._data)
        if pos is None:  # cannot map the view onto its root: give the view its own history
            root = t
    old = _snapshot(root) if record else None
    arr = writable(t)
    src = vt._data if vt is not None else value
    if arr.__class__ is np.ndarray:
        with np.errstate(invalid="ignore", over="ignore"):
            if accumulate:
                accumulate_np(arr, plan, src)
            else:
                plan.set_np(arr, src)
    else:
        write_on_device(arr, plan, src, accumulate)
    t._version[0] += 1
    if not record:
        return
    if root is t:
        node_plan = plan
    else:  # the written positions, as positions in the root (worked out on the host)
        host_plan = IndexPlan(plan.basic, plan.dims, tuple(host_array(a) for a in plan.idx), plan.flat)
        node_plan = IndexPlan.positions(np.ascontiguousarray(host_plan.get_np(pos)))
    _record(INDEX_PUT, (old, vt), (root,), {"plan": node_plan, "value": None if vt is not None else value,
                                             "accumulate": accumulate}, in_place=True)
    if root is not t:
        _record(ROOT_VIEW, (root,), (t,), {"pos": pos, "numel": root._data.size, "shape": root._data.shape})


def _history_copy(t: Tensor) -> Tensor:
    """A copy of ``t``'s values that carries ``t``'s history: the input of an in-place op's
    out-of-place computation, safe from the write that follows."""
    d = t._data
    c = wrap(np.array(d, order="C", copy=True) if d.__class__ is np.ndarray else d.copy(), t._dtype, t._device)
    c._requires_grad = t._requires_grad
    c._grad_fn = t._grad_fn
    c._output_nr = t._output_nr
    return c


def inplace(self: Tensor, compute, *others) -> Tensor:
    """The in-place form of an op: ``compute(src)`` (out of place) written back into ``self``."""
    root = autograd_root(self)
    check_leaf(self, root)
    note_write()
    record = _state.grad_enabled and (self._requires_grad or any(
        isinstance(o, Tensor) and o._requires_grad for o in others))
    r = compute(_history_copy(self) if record else self)
    if tuple(r.shape) != tuple(self.shape):
        raise RuntimeError(f"output with shape {list(self.shape)} doesn't match the broadcast shape {list(r.shape)}")
    if record and r._requires_grad and root is not self:
        assign(self, FULL, r, as_view=False)
        return self
    writable(self)[...] = r._data
    self._version[0] += 1
    if record and r._requires_grad:
        self._grad_fn, self._output_nr, self._requires_grad = r._grad_fn, r._output_nr, True
    return self


# -- validation helpers --------------------------------------------------------------------------------------
def type_word(dt) -> str:
    return _type_word(dt)


def index_data(index: Tensor, allowed=(D.int64, D.int32)):
    """The index values as an int64 array on the index's device (a NumPy array or a device
    array), or None when the dtype is not allowed."""
    if not isinstance(index, Tensor):
        raise TypeError(f"expected Tensor as index, but got {type(index).__name__}")
    if index._dtype not in allowed:
        return None
    note_read(index)
    arr = index._data
    if arr.__class__ is np.ndarray:
        return np.asarray(arr, dtype=I64)
    return arr if arr.dtype == I64 else _cuda_ops().cast(arr, I64)


def check_index_device(x: Tensor, index: Tensor) -> None:
    """As in torch: a CUDA tensor takes CPU or same-device indices, a CPU tensor only CPU ones."""
    if index._device is not x._device and index._device.type != "cpu":
        raise RuntimeError(f"indices should be either on cpu or on the same device as the indexed tensor "
                           f"({x._device})")


def out_of_bounds(idx, size: int, allow_negative: bool):
    """The first offending value of a host ``idx`` for a dim of ``size``, or None.  A device ``idx``
    is not read (None): the CUDA kernel that uses it checks it on the device."""
    if idx.size == 0 or idx.__class__ is not np.ndarray:
        return None
    lo = -size if allow_negative else 0
    if idx.min() >= lo and idx.max() < size:
        return None
    bad = (idx < lo) | (idx >= size)
    return int(idx.reshape(-1)[np.argmax(bad.reshape(-1))])


def wrap_negative(idx, size: int):
    """``idx`` with negative entries counted from the end (a device ``idx``: by a kernel, no host sync;
    its out-of-range values stay out of range for the kernel that reads them to report)."""
    if idx.size == 0:
        return idx
    if idx.__class__ is np.ndarray:
        return np.where(idx < 0, idx + size, idx) if idx.min() < 0 else idx
    from ..runtime.cuda.ops_index import wrap_negative as wrap_on_device
    return wrap_on_device(idx, size)


def checked_index(idx, size: int, allow_negative: bool):
    """(first out-of-bounds value or None, ``idx`` with negatives wrapped).  A device ``idx`` comes
    back unread and unchanged: the CUDA kernel that reads it wraps negatives (the ops reached from
    here allow them) and checks its bounds on the device."""
    if idx.size == 0 or idx.__class__ is not np.ndarray:
        return None, idx
    bad = out_of_bounds(idx, size, allow_negative)
    return bad, (wrap_negative(idx, size) if bad is None else idx)


# -- index arrays on a device -----------------------------------------------------------------------------------
# Index tensors on a CUDA device keep their values there: the CUDA kernels take device
# index arrays directly, so only the bounds (two numbers) are read back.
def _cuda_ops():
    """The CUDA runtime's array helpers (imported on first use: CPU-only programs never load them)."""
    from ..runtime.cuda import copy
    return copy


def on_device(arr) -> bool:
    """Whether ``arr`` (an array or a scalar) is a device array."""
    return getattr(arr, "is_cuda_array", False)


def array_device(arr):
    """The ``jitorch.device`` an array of a tensor's ``_data`` lives on."""
    from ..runtime.device import CPU, canonical
    return CPU if arr.__class__ is np.ndarray else canonical("cuda")


def device_bounds(idx) -> tuple[int, int]:
    """(min, max) of a non-empty device integer array, read back together."""
    from ..runtime.cuda.array import empty
    from .registry import OPS
    dims = tuple(range(idx.ndim))
    both = empty((2,), I64)
    both[0] = OPS["amin"].impl["cuda"](idx, dims=dims, keepdim=False, out_dtype=I64)
    both[1] = OPS["amax"].impl["cuda"](idx, dims=dims, keepdim=False, out_dtype=I64)
    lo, hi = both.to_host().tolist()
    return lo, hi


def own_index(idx):
    """A C-contiguous int64 copy of index values, kept by an op (the caller may write into theirs)."""
    if idx.__class__ is np.ndarray:
        return np.array(idx, dtype=I64, order="C")
    return _cuda_ops().cast(idx, I64)


def index_as_bool(arr):
    """A mask array as bool (uint8 masks are accepted by indexing, as in torch)."""
    if arr.__class__ is np.ndarray:
        return arr.astype(np.bool_, copy=False)
    return arr if arr.dtype == np.bool_ else _cuda_ops().cast(arr, np.bool_)


def broadcast_array(arr, shape: tuple):
    """A read-only broadcast view of a NumPy or device array."""
    if tuple(arr.shape) == tuple(shape):
        return arr
    if arr.__class__ is np.ndarray:
        return np.broadcast_to(arr, shape)
    return _cuda_ops().broadcast_to(arr, shape)


def nonzero_columns(mask) -> tuple:
    """``np.nonzero(mask)`` for a NumPy or device mask: one int64 index array per dim (on the
    mask's device; a device mask costs one read of its count)."""
    if mask.__class__ is np.ndarray:
        return np.nonzero(mask)
    from .registry import OPS
    coords = OPS["nonzero"].impl["cuda"](mask)
    return tuple(coords[:, j] for j in range(mask.ndim))


def host_array(arr) -> np.ndarray:
    """The values of a NumPy or device array as a NumPy array (a read for a device array)."""
    return arr if arr.__class__ is np.ndarray else arr.to_host()


def as_tensor_arg(x) -> Tensor:
    if isinstance(x, Tensor):
        return x
    from .creation import tensor
    return tensor(x)


def is_scalar(v) -> bool:
    return isinstance(v, (bool, int, float, np.generic)) and not isinstance(v, np.ndarray)
