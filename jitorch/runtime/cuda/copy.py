"""Device copies (any layout to any layout, with dtype casts), fills and host transfers.

Copies between arbitrary strided layouts use one kernel per rank that walks the
destination's flat index, unravels it with the shape and applies each side's
element strides to the flat storage buffers, so any view, transposed or
broadcast, is read and written in place without extra staging.  Two
contiguous arrays of the same shape take the rank-1 kernel (no index math).

The kernels launch through ``typed_kernels.Kernel`` (compiled once per
argument types, launched without numba's per-call type resolution) and read
every array through ``typed_kernels.span`` (a 1-D buffer over the elements a
view can reach, an element offset and element strides).

Casts are the kernel's assignment ``dst[d] = src[s]``: numba converts like C
(float to int truncates toward zero, anything to bool is ``!= 0``, NaN to bool
is True), which is what torch does for values in range.  bfloat16 arrays are
read and written as uint16 bits and converted through float32 in the kernel
(``cuda/bf16.py``), as torch's casts to and from bfloat16 go through float.

Copies and memsets are issued on the current stream (``streams``), like the
kernels.  A host read (:func:`to_host`) is a synchronization: it ends in
``device_checks.after_sync()``.  ``non_blocking`` transfers (``pinned``) are
asynchronous only with page-locked host memory, as in torch.
"""
from __future__ import annotations

import numpy as np

from ..._dtype import bf16_bits, is_bf16
from . import device_checks, driver, launch, pinned, streams
from .array import CudaArray, empty

_U16 = np.dtype(np.uint16)

_KERNELS: dict = {}  # (kind, ndim) -> typed_kernels.Kernel


def _kernel_source(kind: str, ndim: int) -> str:
    # the loop nest is unrolled per rank by generating the source, so no tuple indexing
    # by a runtime value (which numba.cuda lowers poorly) is needed
    # float -> integer goes through int64, so out-of-range values wrap as in torch (300. -> uint8 44)
    bodies = {"copy": "dst[d] = src[s]", "copy_via_int64": "dst[d] = int64(src[s])",
              "from_bf16": "dst[d] = bf16_to_f32(src[s])", "from_bf16_via_int64": "dst[d] = int64(bf16_to_f32(src[s]))",
              "to_bf16": "dst[d] = f32_to_bf16(float32(src[s]))", "fill": "dst[d] = value"}
    for k in _WRAPPED:  # simulator only: see sim_narrow
        bodies[k + "_wrap"] = bodies[k].replace("dst[d] = ", "dst[d] = sim_narrow(") + ", dst)"
    if kind == "fill":
        head = "def kernel(dst, dst_off, dst_st, value, shape, n):"
    else:
        head = "def kernel(dst, dst_off, dst_st, src, src_off, src_st, shape, n):"
    body = "        " + bodies[kind]
    lines = ["from numba import cuda",
             "from numpy import int64"]
    if "bf16" in kind:
        from . import bf16
        lines += ["from numpy import float32",
                  f"from jitorch.runtime.cuda.bf16 import bf16_to_f32, f32_to_bf16  # bf16 {bf16.source_version()}"]
    if kind.endswith("_wrap"):
        lines.append("from jitorch.runtime.cuda.copy import sim_narrow")
    lines += ["",
              "",
              head,
              "    i = cuda.grid(1)",
              "    step = cuda.gridsize(1)",
              "    while i < n:",
              "        rem = i",
              "        d = dst_off"]
    if kind != "fill":
        lines.append("        s = src_off")
    for k in reversed(range(ndim)):
        lines += [f"        c = rem % shape[{k}]", f"        rem = rem // shape[{k}]",
                  f"        d += c * dst_st[{k}]"]
        if kind != "fill":
            lines.append(f"        s += c * src_st[{k}]")
    lines += [body, "        i += step"]
    return "\n".join(lines)


def _kernel(kind: str, ndim: int):
    k = _KERNELS.get((kind, ndim))
    if k is None:
        from ..kernel_cache import load_kernel
        from .typed_kernels import Kernel
        # loaded from a content-addressed file, so numba can cache the compiled kernel on disk
        k = _KERNELS[(kind, ndim)] = Kernel(load_kernel(_kernel_source(kind, ndim), "kernel"), f"{kind}_nd{ndim}")
    return k


def _operand(a: CudaArray, flat: bool):
    """(buffer, element offset, element strides) of ``a`` for the kernels; ``flat``: as one run of elements."""
    from .typed_kernels import span
    if flat:
        return a.as_strided((a.size,), (a.itemsize,)), 0, (1,)
    if a.ndim == 0:
        return a.as_strided((1,), (a.itemsize,)), 0, (0,)
    return span(a)


def copy_into(dst: CudaArray, src: CudaArray) -> None:
    """``dst[...] = src`` for device arrays (src broadcasts to dst's shape; dtypes may differ)."""
    if src.shape != dst.shape:
        src = broadcast_to(src, dst.shape)
    n = dst.size
    if n == 0:
        return
    if dst.dtype == src.dtype and dst.flags.c_contiguous and src.flags.c_contiguous:
        _contiguous_copy(dst, src)
        return
    flat = dst.flags.c_contiguous and src.flags.c_contiguous
    shape = (n,) if flat else (dst.shape or (1,))
    kind = "copy_via_int64" if src.dtype.kind == "f" and dst.dtype.kind in "iu" else "copy"
    if dst.itemsize == 2 or src.itemsize == 2:  # the cheap test first: bfloat16 has itemsize 2
        kind, dst, src = _bf16_copy(kind, dst, src)
    if dst.itemsize < 8 and kind in _WRAPPED and dst.dtype != src.dtype and dst.dtype.kind in "iu" and \
            driver.simulated():
        kind += "_wrap"
    dbuf, doff, dst_st = _operand(dst, flat)
    sbuf, soff, src_st = _operand(src, flat)
    blocks, threads = launch.config(n)
    _kernel(kind, len(shape))(blocks, threads, dbuf, doff, dst_st, sbuf, soff, src_st, shape, n)


# kinds whose store may narrow an integer: a GPU keeps the low bits, as torch's casts do (int64 70000 ->
# int16 4464); NumPy refuses such a store with OverflowError, so under the simulator these kinds store
# through sim_narrow instead (compiled kernels never use it)
_WRAPPED = ("copy", "copy_via_int64", "from_bf16_via_int64")


def sim_narrow(value, dst):
    """``value`` (an integer) converted to ``dst``'s integer element type keeping its low bits, like a GPU's
    integer conversion; for simulated kernels only."""
    with np.errstate(over="ignore"):
        return np.asarray(value).astype(np.int64).astype(dst.dtype)[()]


def _bf16_copy(kind: str, dst: CudaArray, src: CudaArray):
    """(kernel kind, dst, src) for a copy involving bfloat16: its arrays as uint16 bits, converted in the kernel."""
    from_bf, to_bf = is_bf16(src.dtype), is_bf16(dst.dtype)
    if from_bf and to_bf:
        return "copy", dst.view(_U16), src.view(_U16)
    if from_bf:
        return ("from_bf16_via_int64" if dst.dtype.kind in "iu" else "from_bf16"), dst, src.view(_U16)
    if to_bf:
        return "to_bf16", dst.view(_U16), src
    return kind, dst, src


def _driver():
    """numba's CUDA driver API object (error-checked ``cuMemcpy*`` & co. taking integer pointers)."""
    from numba.cuda.cudadrv.driver import driver as drv
    return drv


def _contiguous_copy(dst: CudaArray, src: CudaArray) -> None:
    if driver.simulated():
        np.copyto(dst.dev._ary, src.dev._ary)
        return
    # on the current stream, like the kernel launches: ordered with them, no DeviceNDArray built
    _driver().cuMemcpyDtoDAsync(dst.data_ptr, src.data_ptr, dst.nbytes, streams.current_handle())


def cast(a: CudaArray, dtype) -> CudaArray:
    """A new contiguous array holding ``a``'s values converted to ``dtype``."""
    out = empty(a.shape, dtype)
    copy_into(out, a)
    return out


def broadcast_to(a: CudaArray, shape) -> CudaArray:
    shape = tuple(shape)
    g = np.broadcast_to(a._ghost(), shape)
    return a._from_ghost(g, writeable=False)


def from_host(arr: np.ndarray, non_blocking: bool = False) -> CudaArray:
    """A new contiguous device array with the values of host array ``arr`` (any layout, 0-d too).

    The copy is issued on the current stream.  With ``non_blocking`` and a pinned ``arr`` it returns before
    the copy has finished (``arr`` must not change until then; its pinned block is not reused before).
    From pageable memory the driver stages the bytes before returning, so ``arr`` may change at once.
    """
    arr = np.asarray(arr)
    if not arr.flags.c_contiguous:
        arr = arr.copy()  # not np.ascontiguousarray: it turns 0-d arrays into 1-d ones
    out = empty(arr.shape, arr.dtype)
    if arr.size:
        if driver.simulated():
            np.copyto(out.dev._ary, arr)
        else:
            _driver().cuMemcpyHtoDAsync(out.data_ptr, arr.ctypes.data, arr.nbytes, streams.current_handle())
            if non_blocking and pinned.is_pinned(arr):
                pinned.record_use(arr, streams.current())
    return out


def to_host(a: CudaArray, non_blocking: bool = False) -> np.ndarray:
    """A host copy (C-contiguous) of any device array.

    Blocking (the default): the copy waits for the work before it on the current stream, and the host
    synchronization raises what device-side checks found (``device_checks``).  With ``non_blocking`` the
    result is a pinned array the copy fills in the background: read it after synchronizing (the current
    stream, an event recorded after it, or the device), as in torch.
    """
    if a.size == 0:
        return pinned.empty(a.shape, a.dtype) if non_blocking else np.empty(a.shape, a.dtype)
    if not a.flags.c_contiguous:
        a = a.copy()
    if non_blocking:
        out = pinned.empty(a.shape, a.dtype)
        if driver.simulated():
            np.copyto(out, a.dev._ary)
        else:
            _driver().cuMemcpyDtoHAsync(out.ctypes.data, a.data_ptr, a.nbytes, streams.current_handle())
            pinned.record_use(out, streams.current())
        return out
    if driver.simulated():
        out = np.array(a.dev._ary, copy=True)
    else:
        out = np.empty(a.shape, a.dtype)
        # into pageable memory even the async copy returns only once it has finished (CUDA's rule)
        _driver().cuMemcpyDtoHAsync(out.ctypes.data, a.data_ptr, a.nbytes, streams.current_handle())
    device_checks.after_sync()
    return out


def host_scalar(value, dtype) -> np.generic:
    """``value`` converted to ``dtype`` the way torch's fill does (integers wrap, floats truncate).

    For bfloat16 the result is its bit pattern, a ``np.uint16``.
    """
    dtype = np.dtype(dtype)
    if is_bf16(dtype):
        if isinstance(value, np.void):  # already a bfloat16 element (a 0-d storage array's item)
            return np.uint16(value[0])
        return bf16_bits(float(value))[()]
    if dtype.kind in "iu" and isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        bits = dtype.itemsize * 8
        value = int(value) & ((1 << bits) - 1)
        if dtype.kind == "i" and value >= 1 << (bits - 1):
            value -= 1 << bits
    elif dtype.kind in "iu" and isinstance(value, (float, np.floating)):
        value = int(value)  # toward zero, like a C cast
        return host_scalar(value, dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.array(value).astype(dtype)[()]


def fill(a: CudaArray, value) -> None:
    """Set every element of ``a`` (any layout) to the scalar ``value``."""
    if a.size == 0:
        return
    v = host_scalar(value, a.dtype)
    if is_bf16(a.dtype):
        a = a.view(_U16)
    if a.flags.c_contiguous:
        if driver.simulated():
            a.dev._ary[...] = v
            return
        if not v.any():  # all-zero bytes (zeros, False, 0.0): a memset, no kernel
            _driver().cuMemsetD8Async(a.data_ptr, 0, a.nbytes, streams.current_handle())
            return
    n = a.size
    flat = a.flags.c_contiguous
    shape = (n,) if flat else (a.shape or (1,))
    buf, off, st = _operand(a, flat)
    blocks, threads = launch.config(n)
    _kernel("fill", len(shape))(blocks, threads, buf, off, st, v.item(), shape, n)
