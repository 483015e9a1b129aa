"""The Tensor object: storage, metadata and autograd bookkeeping.

On the CPU a tensor's elements live in a NumPy array (``_data``) that is a
view of its storage, so views (transpose, slicing, expand...) share memory
through NumPy's own strides, and ``numpy()``/``from_numpy`` share memory with
the caller.  Math is not defined here: op methods are attached by
``jitorch._methods`` from the functional ops, so each op exists once.
"""
from __future__ import annotations

import sys

import numpy as np

from . import _dtype as D
from .autograd import grad_mode
from .runtime.device import CPU, Device


class Size(tuple):
    """``tensor.shape``: a tuple of ints that prints like torch.Size."""

    def __repr__(self) -> str:
        return f"jitorch.Size([{', '.join(str(s) for s in self)}])"

    def numel(self) -> int:
        n = 1
        for s in self:
            n *= s
        return n


class Tensor:
    """A multi-dimensional array with autograd, like ``torch.Tensor``.

    >>> import jitorch
    >>> x = jitorch.tensor([1.0, 2.0], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad
    tensor([2., 4.])
    """

    __slots__ = ("_data", "_dtype", "_device", "_requires_grad", "_grad_fn", "_output_nr", "_grad",
                 "_version", "_base", "_hooks", "_grad_acc", "_retains_grad", "_post_acc_hooks",
                 "__weakref__", "__dict__")

    # -- construction -----------------------------------------------------
    def __new__(cls, *args, **kwargs):
        # torch.Tensor(2, 3) / torch.Tensor([1, 2]): legacy float constructors
        t = object.__new__(cls)
        if args or kwargs:
            from .ops.creation import _legacy_tensor_args
            arr = _legacy_tensor_args(args, kwargs)
        else:
            arr = np.empty((0,), dtype=np.float32)
        _init(t, arr, D.from_numpy(arr.dtype) if arr.dtype != np.float32 else D.float32)
        return t

    def __init__(self, *args, **kwargs):
        pass

    # -- metadata ------------------------------------------------------------
    @property
    def shape(self) -> Size:
        return Size(self._data.shape)

    def size(self, dim: int | None = None):
        """``x.size()`` is ``x.shape``; ``x.size(d)`` the length of dim ``d``."""
        if dim is None:
            return Size(self._data.shape)
        return self._data.shape[_wrap_dim(dim, self._data.ndim)]

    @property
    def dtype(self) -> D.dtype:
        return self._dtype

    @property
    def device(self) -> Device:
        return self._device

    @property
    def ndim(self) -> int:
        return self._data.ndim

    def dim(self) -> int:
        return self._data.ndim

    ndimension = dim

    def numel(self) -> int:
        return self._data.size

    nelement = numel

    def element_size(self) -> int:
        return self._dtype.itemsize

    @property
    def itemsize(self) -> int:
        return self._dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self._data.size * self._dtype.itemsize

    def stride(self, dim: int | None = None):
        st = tuple(s // self._dtype.itemsize for s in self._data.strides)
        if dim is None:
            return st
        return st[_wrap_dim(dim, self._data.ndim)]

    def storage_offset(self) -> int:
        base = self._data
        if base.__class__ is not np.ndarray:
            return base.offset // self._dtype.itemsize  # a device array: its offset into its storage
        # up to the array owning the memory (as_strided views hang off NumPy's DummyArray, not an ndarray)
        while hasattr(base.base, "__array_interface__"):
            base = base.base
        start = self._data.__array_interface__["data"][0]
        return (start - base.__array_interface__["data"][0]) // self._dtype.itemsize

    def data_ptr(self) -> int:
        d = self._data
        if d.__class__ is not np.ndarray:
            return d.data_ptr
        return d.__array_interface__["data"][0]

    def untyped_storage(self):
        base = self._data
        if base.__class__ is not np.ndarray:
            return base.storage
        while isinstance(base.base, np.ndarray):
            base = base.base
        return base

    def is_contiguous(self, memory_format=None) -> bool:
        return self._data.flags.c_contiguous

    @property
    def is_cuda(self) -> bool:
        return self._device.type == "cuda"

    @property
    def is_cpu(self) -> bool:
        return self._device.type == "cpu"

    def is_floating_point(self) -> bool:
        return self._dtype.is_floating_point

    def is_complex(self) -> bool:
        return False

    @property
    def is_sparse(self) -> bool:
        return False

    @property
    def layout(self):
        return "strided"

    @property
    def is_quantized(self) -> bool:
        return False

    @property
    def is_meta(self) -> bool:
        return False

    def get_device(self) -> int:
        return -1 if self._device.type == "cpu" else self._device.index

    def cuda(self, device=None, non_blocking: bool = False, memory_format=None) -> "Tensor":
        """A copy on a CUDA device (``self`` when it is already there).

        >>> import jitorch
        >>> if jitorch.cuda.is_available():
        ...     y = jitorch.tensor([1.0, 2.0]).cuda()
        ...     assert y.device == jitorch.device("cuda:0") and y.cpu().tolist() == [1.0, 2.0]
        """
        from .ops.conversion import to
        return to(self, "cuda" if device is None else (f"cuda:{device}" if isinstance(device, int) else device),
                  non_blocking=non_blocking)

    def is_pinned(self, device=None) -> bool:
        """Whether this CPU tensor lives in page-locked memory (``pin_memory()``): CUDA copies from and to it
        can be ``non_blocking``."""
        if self._device.type != "cpu":
            return False
        from .runtime.cuda import pinned
        return pinned.is_pinned(self._data)

    def pin_memory(self, device=None) -> "Tensor":
        """A copy in page-locked host memory (``self`` if it is pinned already), for asynchronous CUDA copies.

        >>> import jitorch
        >>> if jitorch.cuda.is_available():
        ...     x = jitorch.ones(4).pin_memory()
        ...     assert x.is_pinned() and x.to("cuda", non_blocking=True).sum().item() == 4.0
        """
        if self._device.type != "cpu":
            raise RuntimeError(f"cannot pin '{self._type_name()}' only dense CPU tensors can be pinned")
        from .runtime.cuda import driver, pinned
        if pinned.is_pinned(self._data):
            return self
        driver.require()
        return wrap(pinned.pin(self._data), self._dtype, self._device)

    def record_stream(self, stream) -> None:
        """Mark this CUDA tensor as used by work on ``stream``: its memory is not reused before that work has
        finished, even after the tensor is freed (see ``jitorch/runtime/cuda/memory.py``)."""
        if self._device.type != "cuda":
            raise RuntimeError("record_stream: expected a CUDA tensor")
        from .runtime.cuda import memory
        memory.record_stream(self._data, stream)

    def _type_name(self) -> str:
        names = {"float32": "FloatTensor", "float64": "DoubleTensor", "float16": "HalfTensor",
                 "bfloat16": "BFloat16Tensor", "int8": "CharTensor", "int16": "ShortTensor", "int32": "IntTensor",
                 "int64": "LongTensor", "uint8": "ByteTensor", "bool": "BoolTensor"}
        return names[self._dtype.name]

    def type(self, dtype=None):
        """``x.type()`` names the tensor type; ``x.type(jitorch.float64)`` converts."""
        if dtype is None:
            return ("jitorch.cuda." if self._device.type == "cuda" else "jitorch.") + self._type_name()
        if isinstance(dtype, str):
            rev = {"FloatTensor": D.float32, "DoubleTensor": D.float64, "HalfTensor": D.float16,
                   "BFloat16Tensor": D.bfloat16, "CharTensor": D.int8, "ShortTensor": D.int16, "IntTensor": D.int32,
                   "LongTensor": D.int64, "ByteTensor": D.uint8, "BoolTensor": D.bool_}
            parts = dtype.split(".")
            if parts[-1] not in rev:
                raise ValueError(f"invalid type: '{dtype}'")
            # 'torch.cuda.FloatTensor' names the device too; 'torch.FloatTensor' the CPU
            return self.to("cuda" if "cuda" in parts[:-1] else "cpu", rev[parts[-1]])
        return self.to(dtype)

    # -- autograd state ------------------------------------------------------
    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if self._grad_fn is not None:
            if not value:
                raise RuntimeError(
                    "you can only change requires_grad flags of leaf variables. If you want to use a "
                    "computed variable in a subgraph that doesn't require differentiation use "
                    "var_no_grad = var.detach()."
                )
            return
        if value and not self._dtype.is_floating_point:
            raise RuntimeError("only Tensors of floating point dtype can require gradients")
        self._requires_grad = bool(value)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        """Set ``requires_grad`` in place and return self."""
        self.requires_grad = requires_grad
        return self

    @property
    def is_leaf(self) -> bool:
        return self._grad_fn is None

    @property
    def grad_fn(self):
        return self._grad_fn

    @property
    def output_nr(self) -> int:
        return self._output_nr

    @property
    def grad(self):
        if self._grad_fn is not None and not self._retains_grad:
            from .autograd.engine import warn_nonleaf_grad
            warn_nonleaf_grad()
        return self._grad

    @grad.setter
    def grad(self, value) -> None:
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"assigned grad expected to be a Tensor or None but got grad of type {type(value).__name__}")
            if value._dtype is not self._dtype:
                raise RuntimeError(f"assigned grad has data of a different type: expected {self._dtype} but got {value._dtype}")
            if value._device.type != self._device.type:
                raise RuntimeError("assigned grad has data of a different type")
            if value._device is not self._device:
                raise RuntimeError("assigned grad has data located on a different device")
            if value.shape != self.shape:
                raise RuntimeError(f"assigned grad has data of a different size: expected {tuple(self.shape)} but got {tuple(value.shape)}")
        self._grad = value

    @property
    def retains_grad(self) -> bool:
        return self._retains_grad

    def retain_grad(self) -> None:
        """Keep ``.grad`` of a non-leaf tensor after backward."""
        if not self._requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self._grad_fn is None or self._retains_grad:
            return
        self._grad_fn._retain_output(self._output_nr, self)
        self._retains_grad = True

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed; it may return a new grad."""
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self._grad_fn is not None:
            return self._grad_fn._add_tensor_hook(self._output_nr, hook)
        from .autograd.graph import RemovableHandle
        if self._hooks is None:
            self._hooks = {}
        h = RemovableHandle(self._hooks)
        self._hooks[h.id] = hook
        return h

    def register_post_accumulate_grad_hook(self, hook):
        if self._grad_fn is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
        from .autograd.graph import RemovableHandle
        if self._post_acc_hooks is None:
            self._post_acc_hooks = {}
        h = RemovableHandle(self._post_acc_hooks)
        self._post_acc_hooks[h.id] = hook
        return h

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``."""
        from .autograd import backward
        backward(self, gradient, retain_graph, create_graph, inputs=inputs)

    def detach(self) -> "Tensor":
        """A tensor sharing storage (and version counter) with no history."""
        t = _alias(self)
        return t

    def detach_(self) -> "Tensor":
        if self._base is not None and self._base._requires_grad and grad_mode.is_grad_enabled():
            raise RuntimeError("Can't detach views in-place. Use detach() instead.")
        self._grad_fn = None
        self._requires_grad = False
        self._output_nr = 0
        return self

    @property
    def data(self) -> "Tensor":
        return _alias(self)

    @data.setter
    def data(self, value: "Tensor") -> None:
        self._data = value._data
        self._dtype = value._dtype
        self._device = value._device

    def _alias_without_history(self) -> "Tensor":
        return _alias(self)

    def _alias_with_history(self, node, output_nr: int) -> "Tensor":
        t = _alias(self)
        t._requires_grad = True
        t._grad_fn = node
        t._output_nr = output_nr
        return t

    def _is_fresh(self) -> bool:
        # a result nobody else references can become a leaf's .grad without a copy
        d = self._data
        if d.__class__ is not np.ndarray:  # a device array: fresh when it alone holds its storage
            return self._base is None and sys.getrefcount(d) <= 3 and sys.getrefcount(d.storage) <= 2
        return self._base is None and d.base is None and sys.getrefcount(d) <= 3

    def _bump_version(self) -> None:
        self._version[0] += 1

    @property
    def _version_counter(self) -> int:
        return self._version[0]

    # -- conversion -----------------------------------------------------------
    def numpy(self, *, force: bool = False) -> np.ndarray:
        """The NumPy array sharing this tensor's memory (CPU only)."""
        if self._requires_grad and not force:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        if _tracer is not None:
            _tracer.on_concrete(self, "numpy")
        if self._device.type != "cpu":
            raise _to_numpy_error(self)
        if self._dtype is D.bfloat16:
            raise _bf16_numpy_error()
        return self._data

    def __array__(self, dtype=None, copy=None):
        arr = self._data
        if arr.__class__ is not np.ndarray:
            raise _to_numpy_error(self)
        if self._dtype is D.bfloat16:
            raise _bf16_numpy_error()
        return arr.astype(dtype) if dtype is not None else arr

    def _host(self) -> np.ndarray:
        """The elements as a NumPy array: the CPU array itself, or a host copy of a device array."""
        d = self._data
        return d if d.__class__ is np.ndarray else d.to_host()

    def item(self):
        """The value of a one-element tensor as a Python number."""
        if _tracer is not None:
            _tracer.on_concrete(self, "item")
        if self._data.size != 1:
            raise RuntimeError(f"a Tensor with {self._data.size} elements cannot be converted to Scalar")
        return D.host_values(self._host()).reshape(()).item()

    def tolist(self):
        if _tracer is not None:
            _tracer.on_concrete(self, "tolist")
        return D.host_values(self._host()).tolist()

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return iter(self.unbind(0))

    def __bool__(self) -> bool:
        if _tracer is not None:
            _tracer.on_concrete(self, "bool")
        if self._data.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with more than one value is ambiguous")
        return bool(D.host_values(self._host()).reshape(()))

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self._dtype.is_floating_point or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __complex__(self):
        return complex(self.item())

    def __hash__(self) -> int:
        return id(self)

    def __reduce_ex__(self, protocol):
        # pickling (DataLoader workers, deepcopy): rebuild from a NumPy copy, on the same device
        if self._device is CPU:
            return (_rebuild, (np.array(self._data), self._dtype.name, self._requires_grad, type(self)))
        return (_rebuild, (self._host(), self._dtype.name, self._requires_grad, type(self), str(self._device)))

    def __deepcopy__(self, memo):
        if not self.is_leaf:
            raise RuntimeError("Only Tensors created explicitly by the user (graph leaves) support the deepcopy protocol at the moment.")
        if id(self) in memo:
            return memo[id(self)]
        if self._device is CPU:
            new = _rebuild(np.array(self._data, copy=True), self._dtype.name, self._requires_grad, type(self))
        else:
            new = _rebuild(self._data.copy(), self._dtype.name, self._requires_grad, type(self), self._device)
        if self._grad is not None:
            import copy
            new._grad = copy.deepcopy(self._grad, memo)
        new.__dict__.update(self.__dict__)
        memo[id(self)] = new
        return new

    def __repr__(self) -> str:
        from ._repr import tensor_repr
        return tensor_repr(self)

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        if self._data.ndim == 0:
            return self.item().__format__(spec)
        return object.__format__(self, spec)


def _rebuild(arr, dtype_name, requires_grad, cls=Tensor, device=None):
    """Unpickle (or deep-copy) a tensor; ``arr`` is a host array, or already on ``device``."""
    t = object.__new__(cls)
    dev = CPU
    if device is not None:
        from .runtime.device import canonical
        dev = canonical(device)
        if arr.__class__ is np.ndarray and dev is not CPU:
            from .runtime.cuda import array
            arr = array.from_host(arr)
    _init(t, arr, D._by_name(dtype_name), dev)
    t._requires_grad = requires_grad
    return t


def _to_numpy_error(t) -> TypeError:
    return TypeError(f"can't convert {t._device} device type tensor to numpy. "
                     "Use Tensor.cpu() to copy the tensor to host memory first.")


def _bf16_numpy_error() -> TypeError:
    # NumPy has no bfloat16: torch refuses too (convert with .float() first)
    return TypeError("Got unsupported ScalarType BFloat16")


def _init(t, arr, dtype, device=CPU):
    t._data = arr
    t._dtype = dtype
    t._device = device
    t._requires_grad = False
    t._grad_fn = None
    t._output_nr = 0
    t._grad = None
    t._version = [0]
    t._base = None
    t._hooks = None
    t._grad_acc = None
    t._retains_grad = False
    t._post_acc_hooks = None


def wrap(arr, dtype, device=CPU) -> Tensor:
    """A new tensor around array ``arr`` (the hot path: no checks).

    It repeats ``_init``'s assignments inline on purpose: every op result is
    made here, and the extra call would add ~0.1 µs to each small op.
    """
    t = object.__new__(Tensor)
    t._data = arr
    t._dtype = dtype
    t._device = device
    t._requires_grad = False
    t._grad_fn = None
    t._output_nr = 0
    t._grad = None
    t._version = [0]
    t._base = None
    t._hooks = None
    t._grad_acc = None
    t._retains_grad = False
    t._post_acc_hooks = None
    return t


def wrap_view(arr, base: Tensor) -> Tensor:
    """A tensor viewing ``base``'s storage: shares its version counter."""
    t = wrap(arr, base._dtype, base._device)
    t._version = base._version
    t._base = base if base._base is None else base._base
    return t


def _alias(src: Tensor) -> Tensor:
    t = wrap(src._data, src._dtype, src._device)
    t._version = src._version
    t._base = src._base
    if _tracer is not None:
        _tracer.on_alias(src, t)
    return t


_tracer = None  # set with jitorch._dispatch.set_tracer


def _wrap_dim(dim: int, ndim: int) -> int:
    lo = -ndim if ndim > 0 else -1
    hi = ndim - 1 if ndim > 0 else 0
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        raise TypeError(f"dim must be an int, got {type(dim).__name__}")
    if dim < lo or dim > hi:
        raise IndexError(f"Dimension out of range (expected to be in range of [{lo}, {hi}], but got {dim})")
    return dim + ndim if dim < 0 else dim


wrap_dim = _wrap_dim
