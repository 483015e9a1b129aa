"""``CudaArray``: the value a CUDA tensor keeps in ``_data``.

It is the subset of ``numpy.ndarray`` the front end reads (shape, strides in
bytes, dtype, flags, basic-indexing views, transpose/reshape views) over a
:class:`~jitorch.runtime.cuda.memory.Storage`, so views share memory and the
autograd/view machinery written for NumPy arrays works unchanged.  Kernels get
``arr.dev``: a numba device array over the same bytes.

View arithmetic is done by NumPy on a *ghost*: an array with the same shape and
strides over a one-element buffer.  Basic indexing, transposes and reshapes
of a ghost only compute new strides and a new data pointer, never touching
memory, and the pointer difference is the view's byte offset.
"""
from __future__ import annotations

import math

import numpy as np

from . import driver
from .memory import Storage


class _Flags:
    __slots__ = ("c_contiguous", "f_contiguous", "writeable")
    aligned = True  # allocator blocks are 512-byte aligned and views stay on element boundaries

    def __init__(self, c, f, w):
        self.c_contiguous = c
        self.f_contiguous = f
        self.writeable = w

    @property
    def contiguous(self):
        return self.c_contiguous


def _contiguous_strides(shape, itemsize) -> tuple:
    strides = []
    acc = itemsize
    for s in reversed(shape):
        strides.append(acc)
        acc *= max(s, 1)
    return tuple(reversed(strides))


def _is_contiguous(shape, strides, itemsize, order_c: bool) -> bool:
    """NumPy's rule: dims of length 1 may have any stride; an empty array is contiguous."""
    if 0 in shape:
        return True
    acc = itemsize
    pairs = zip(reversed(shape), reversed(strides)) if order_c else zip(shape, strides)
    for n, st in pairs:
        if n != 1:
            if st != acc:
                return False
            acc *= n
    return True


_GHOST_BASE = np.zeros(64, dtype=np.uint8)  # never read: only its address matters
_GHOST_PTR = _GHOST_BASE.ctypes.data


def _view(storage, shape: tuple, dtype: np.dtype, strides: tuple, offset: int, writeable: bool) -> CudaArray:
    """A CudaArray from already-normalized fields (the fast constructor every view uses)."""
    a = object.__new__(CudaArray)
    a.storage = storage
    a.shape = shape
    a.dtype = dtype
    a.strides = strides
    a.offset = offset
    a._writeable = writeable
    a._dev = None
    a._flags = None
    return a


class CudaArray:
    __slots__ = ("_dev", "_flags", "_writeable", "dtype", "offset", "shape", "storage", "strides")

    __array_priority__ = -1
    is_cuda_array = True

    def __init__(self, storage: Storage, shape, dtype, strides=None, offset: int = 0, writeable: bool = True):
        self.storage = storage
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.strides = tuple(strides) if strides is not None else _contiguous_strides(self.shape, self.dtype.itemsize)
        self.offset = offset
        self._writeable = writeable
        self._dev = None
        self._flags = None

    # -- ndarray attributes -------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @property
    def flags(self) -> _Flags:
        f = self._flags
        if f is None:
            item = self.dtype.itemsize
            f = self._flags = _Flags(_is_contiguous(self.shape, self.strides, item, True),
                                     _is_contiguous(self.shape, self.strides, item, False), self._writeable)
        return f

    @property
    def data_ptr(self) -> int:
        return self.storage.pointer() + self.offset

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def __repr__(self) -> str:
        return f"CudaArray(shape={self.shape}, dtype={self.dtype}, strides={self.strides}, offset={self.offset})"

    # -- views ----------------------------------------------------------------------------------
    def _ghost(self) -> np.ndarray:
        """A NumPy array with this shape and these strides over a dummy buffer, for view arithmetic."""
        return np.lib.stride_tricks.as_strided(_GHOST_BASE.view(self.dtype) if self.dtype.itemsize <= 64
                                               else np.zeros(1, self.dtype), self.shape, self.strides)

    def _from_ghost(self, g: np.ndarray, writeable=None) -> CudaArray:
        base = _GHOST_PTR if self.dtype.itemsize <= 64 else None
        if base is None:
            raise NotImplementedError("views of dtypes wider than 64 bytes")
        delta = g.__array_interface__["data"][0] - base
        return _view(self.storage, g.shape, self.dtype, g.strides, self.offset + delta,
                     self._writeable if writeable is None else writeable)

    def __getitem__(self, index) -> CudaArray:
        """Basic indexing (ints, slices, None, Ellipsis): always a view, never a read."""
        if index.__class__ is not tuple:
            index = (index,)
        shape = self.shape
        strides = self.strides
        n_dims = 0
        ellipses = 0
        for k in index:
            if k is Ellipsis:
                ellipses += 1
            elif k is not None:
                if k.__class__ is bool or not isinstance(k, (int, np.integer, slice)):
                    raise TypeError("CudaArray supports basic indexing only; gathers run as kernels")
                n_dims += 1
        if ellipses > 1:
            raise IndexError("an index can only have a single ellipsis ('...')")
        if n_dims > len(shape):
            raise IndexError(f"too many indices for array: array is {len(shape)}-dimensional, but {n_dims} "
                             "were indexed")
        out_shape = []
        out_strides = []
        off = self.offset
        d = 0
        for k in index:
            if k is None:
                out_shape.append(1)
                out_strides.append(0)
            elif k is Ellipsis:
                for _ in range(len(shape) - n_dims):
                    out_shape.append(shape[d])
                    out_strides.append(strides[d])
                    d += 1
            elif k.__class__ is slice:
                r = range(*k.indices(shape[d]))
                if len(r):
                    off += r.start * strides[d]
                out_shape.append(len(r))
                out_strides.append(strides[d] * r.step)
                d += 1
            else:
                i = int(k)
                n = shape[d]
                if i < -n or i >= n:
                    raise IndexError(f"index {i} is out of bounds for axis {d} with size {n}")
                off += (i + n if i < 0 else i) * strides[d]
                d += 1
        return _view(self.storage, tuple(out_shape) + shape[d:], self.dtype, tuple(out_strides) + strides[d:],
                     off, self._writeable)

    def __setitem__(self, index, value) -> None:
        """``a[basic index] = value``: a scalar, a host array or a CudaArray (broadcast and cast)."""
        view = self[index]
        if not view._writeable:
            raise ValueError("assignment destination is read-only")
        if isinstance(value, CudaArray):
            from .copy import copy_into
            copy_into(view, value)
        elif isinstance(value, np.ndarray) and value.ndim > 0:
            from .copy import copy_into, from_host
            copy_into(view, from_host(value))
        else:
            view.fill(value)

    def transpose(self, *axes) -> CudaArray:
        if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list))):
            axes = axes[0]
        if not axes:
            axes = range(len(self.shape) - 1, -1, -1)
        shape, strides = self.shape, self.strides
        return _view(self.storage, tuple(shape[a] for a in axes), self.dtype, tuple(strides[a] for a in axes),
                     self.offset, self._writeable)

    @property
    def T(self) -> CudaArray:
        return self.transpose()

    def swapaxes(self, a: int, b: int) -> CudaArray:
        axes = list(range(len(self.shape)))
        axes[a], axes[b] = axes[b], axes[a]
        return self.transpose(axes)

    def as_strided(self, shape, strides, offset_bytes: int | None = None, writeable=None) -> CudaArray:
        """A view with explicit byte ``strides``; ``offset_bytes`` is from the storage start."""
        off = self.offset if offset_bytes is None else offset_bytes
        return _view(self.storage, tuple(int(s) for s in shape), self.dtype, tuple(int(s) for s in strides), off,
                     self._writeable if writeable is None else writeable)

    def view_if_possible(self, shape) -> CudaArray | None:
        """``reshape`` without a copy, or None when the layout does not allow one."""
        shape = tuple(int(s) for s in shape)
        if -1 in shape:
            known = math.prod(s for s in shape if s != -1)
            shape = tuple(self.size // known if s == -1 and known else s for s in shape)
        if math.prod(shape) != self.size:
            raise ValueError(f"cannot reshape array of size {self.size} into shape {shape}")
        if self.flags.c_contiguous:
            return _view(self.storage, shape, self.dtype, _contiguous_strides(shape, self.dtype.itemsize),
                         self.offset, self._writeable)
        try:
            g = np.reshape(self._ghost(), shape, copy=False)
        except (ValueError, AttributeError):
            return None
        return self._from_ghost(g)

    def reshape(self, *shape) -> CudaArray:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        v = self.view_if_possible(shape)
        if v is not None:
            return v
        return self.copy().reshape(shape)

    def ravel(self) -> CudaArray:
        return self.reshape(-1)

    def view(self, dtype) -> CudaArray:
        """Reinterpret the bytes (same itemsize only, like the uses in the front end)."""
        dtype = np.dtype(dtype)
        if dtype.itemsize != self.dtype.itemsize:
            raise NotImplementedError("CudaArray.view to a dtype of another size")
        return _view(self.storage, self.shape, dtype, self.strides, self.offset, self._writeable)

    # -- data -------------------------------------------------------------------------------------
    @property
    def dev(self):
        """A numba device array over the same bytes, for kernel arguments (cached)."""
        d = self._dev
        if d is None:
            d = self._dev = _device_view(self)
        return d

    def flat_buffer(self):
        """A 1-d numba device array of ``dtype`` over the whole storage (for strided kernels)."""
        st = self.storage
        n = st.size // self.dtype.itemsize if st.size else 0
        return _raw_view(st, (n,), (self.dtype.itemsize,), self.dtype, 0)

    def copy(self) -> CudaArray:
        from .copy import copy_into
        out = empty(self.shape, self.dtype)
        copy_into(out, self)
        return out

    def to_host(self, non_blocking: bool = False) -> np.ndarray:
        from .copy import to_host
        return to_host(self, non_blocking)

    def fill(self, value) -> None:
        from .copy import fill
        fill(self, value)


def _raw_view(storage, shape, strides, dtype, offset):
    cuda = driver.cuda_module()
    if driver.simulated():
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray
        arr = np.ndarray(shape, dtype=dtype, buffer=storage.raw, offset=offset, strides=strides)
        return FakeCUDAArray(arr)
    from numba.cuda.cudadrv.devicearray import DeviceNDArray
    if storage.raw is None:
        return DeviceNDArray(shape, strides, dtype)
    return DeviceNDArray(shape, strides, dtype, gpu_data=storage.raw.view(offset)) if cuda else None


def _device_view(a: CudaArray):
    if a.size == 0:
        return _raw_view(a.storage, a.shape, a.strides, a.dtype, 0) if driver.simulated() else \
            __import__("numba").cuda.device_array(a.shape, a.dtype)
    return _raw_view(a.storage, a.shape, a.strides, a.dtype, a.offset)


def empty(shape, dtype) -> CudaArray:
    """A fresh contiguous array from the caching allocator."""
    dtype = np.dtype(dtype)
    shape = tuple(int(s) for s in shape)
    a = _view(Storage(math.prod(shape) * dtype.itemsize), shape, dtype,
              _contiguous_strides(shape, dtype.itemsize), 0, True)
    a._flags = _Flags(True, len(shape) <= 1 or _is_contiguous(shape, a.strides, dtype.itemsize, False), True)
    return a


def from_host(arr: np.ndarray, non_blocking: bool = False) -> CudaArray:
    """Copy a host array to a fresh contiguous device array (``non_blocking``: see ``copy.from_host``)."""
    from .copy import from_host as _fh
    return _fh(arr, non_blocking)
