"""Device-side checks: a kernel reports a bad index instead of reading it; the host raises at its next sync.

Reading an index tensor's range back before every gather would stall the host
once per indexing op.  Instead, the kernels that read indices check each one
against its bound, skip the access when it is out of range (a gather writes
0, a scatter writes nothing: no data is returned from, and no memory written
outside, the indexed tensor) and record the first offence in a small error
record.  Every point where the host waits for the device anyway (a value
read, ``synchronize()``, ``Stream``/``Event.synchronize``) ends in
:func:`after_sync`, which raises the recorded error, like torch's
device-side asserts, which also surface at a later synchronization.

The record has two parts: a ``claim`` word in device memory that the first
reporting thread takes with an atomic compare-and-swap (device atomics only
work reliably on device memory), and the record itself, ``[set, value,
bound, code]``, in host memory mapped into the device's address space, so
the host checks ``set`` by reading its own memory, without a copy.  Where
mapped memory cannot be had, the record lives in device memory and each
check copies it back (one small copy per host synchronization).

``code`` identifies the op and the indexed dim (:func:`site`, :func:`code`);
the error raised is :class:`DeviceIndexError`, an ``IndexError`` and a
``RuntimeError`` at once (torch raises either for a bad index depending on
the op, and a ``RuntimeError`` for device-side asserts).
"""
from __future__ import annotations

import numpy as np
from numba import cuda

from . import driver

I64 = np.dtype(np.int64)
_MAX_DIMS = 64  # codes pack (site, dim) as site * _MAX_DIMS + dim


class DeviceAssertError(RuntimeError):
    """A check inside a CUDA kernel failed; raised at the first host synchronization after it."""


class DeviceIndexError(DeviceAssertError, IndexError):
    """An index read by a CUDA kernel was out of range (the kernel skipped it)."""


# -- sites: what a reported code means ----------------------------------------------------------------------
_SITES: list = []  # site id -> (op name, message template over {value}, {bound}, {dim})
_SITE_IDS: dict = {}
_DEFAULT_MESSAGE = "index {value} is out of bounds for dimension {dim} with size {bound}"
_OP_MESSAGES: dict = {}  # op -> its own message template (set_message)


def set_message(op: str, template: str) -> None:
    """Give ``op``'s reports their own message (e.g. torch's wording for it)."""
    _OP_MESSAGES[op] = template


def site(op: str, template: str | None = None) -> int:
    """The id of a reporting site (registered once per (op, template); no template: the op's own message, or
    the generic one)."""
    if template is None:
        template = _OP_MESSAGES.get(op, _DEFAULT_MESSAGE)
    key = (op, template)
    sid = _SITE_IDS.get(key)
    if sid is None:
        sid = _SITE_IDS[key] = len(_SITES)
        _SITES.append(key)
    return sid


def code(site_id: int, dim: int = 0) -> int:
    """The int a kernel reports for ``site_id`` and the indexed ``dim``."""
    return site_id * _MAX_DIMS + min(max(int(dim), 0), _MAX_DIMS - 1)


def describe(value: int, bound: int, report_code: int) -> str:
    op, template = _SITES[report_code // _MAX_DIMS]
    text = template.format(value=value, bound=bound, dim=report_code % _MAX_DIMS)
    return (f"{op}: {text} [CUDA device-side check: the kernel skipped the access; reported at the first host "
            "synchronization after the op]")


# -- the kernel side ------------------------------------------------------------------------------------------
@cuda.jit(device=True, inline=True)
def report(claim, rec, value, bound, report_code):
    """Record an out-of-range ``value`` (first report wins; later ones are dropped)."""
    if cuda.atomic.cas(claim, 0, 0, 1) == 0:
        rec[1] = value
        rec[2] = bound
        rec[3] = report_code
        cuda.threadfence_system()  # the fields before the flag the host looks at
        rec[0] = 1


class _FixedStorage:
    """A block outside the caching allocator (the error record lives as long as the process)."""

    __slots__ = ("host", "nbytes", "ptr", "raw", "size", "stream", "uses")

    def __init__(self, raw, nbytes: int, ptr: int, host=None):
        self.raw, self.size, self.nbytes, self.ptr, self.host = raw, nbytes, nbytes, ptr, host
        self.stream, self.uses = 0, None

    def pointer(self) -> int:
        return self.ptr


_state: dict = {}


def _make_buffers():
    from .array import _view
    if driver.simulated():
        claim_raw, rec_raw = np.zeros(8, np.uint8), np.zeros(32, np.uint8)
        claim = _FixedStorage(claim_raw, 8, claim_raw.ctypes.data)
        rec = _FixedStorage(rec_raw, 32, rec_raw.ctypes.data, rec_raw.view(I64))
    else:
        from numba.cuda.cudadrv.driver import driver as drv
        ctx = driver.cuda_module().current_context()
        claim_raw = ctx.memalloc(8)
        claim_ptr = int(claim_raw.device_pointer_value)
        drv.cuMemsetD8(claim_ptr, 0, 8)
        try:
            rec_raw = ctx.memhostalloc(32, mapped=True)
            host = np.ndarray((4,), I64, buffer=rec_raw)
            host[:] = 0
            rec = _FixedStorage(rec_raw, 32, int(rec_raw.device_pointer_value), host)
        except Exception:  # noqa: BLE001 - no mapped memory: keep the record on the device, copy it back
            rec_raw = ctx.memalloc(32)
            rec_ptr = int(rec_raw.device_pointer_value)
            drv.cuMemsetD8(rec_ptr, 0, 32)
            rec = _FixedStorage(rec_raw, 32, rec_ptr)
        claim = _FixedStorage(claim_raw, 8, claim_ptr)
    from .typed_kernels import Fixed
    _state["claim"] = _view(claim, (1,), I64, (8,), 0, True)
    _state["rec"] = _view(rec, (4,), I64, (8,), 0, True)
    _state["args"] = (Fixed(_state["claim"]), Fixed(_state["rec"]))  # marshalled once for every launch
    return _state["args"]


def buffers() -> tuple:
    """(claim, record): the two arguments every checking kernel takes, in this order."""
    a = _state.get("args")
    return a if a is not None else _make_buffers()


# -- the host side --------------------------------------------------------------------------------------------
_syncs = [0]


def host_syncs() -> int:
    """How many times the host has waited for the device (value reads and synchronize calls) so far."""
    return _syncs[0]


def _record_on_host():
    rec = _state.get("rec")
    if rec is None:
        return None
    host = rec.storage.host
    if host is not None:
        return host
    from numba.cuda.cudadrv.driver import driver as drv
    out = np.empty(4, I64)
    drv.cuMemcpyDtoH(out.ctypes.data, rec.data_ptr, 32)
    return out


def check() -> None:
    """Raise the error a kernel recorded (if any), and clear it."""
    rec = _record_on_host()
    if rec is None or not rec[0]:
        return
    value, bound, report_code = int(rec[1]), int(rec[2]), int(rec[3])
    _clear()
    raise DeviceIndexError(describe(value, bound, report_code))


def after_sync() -> None:
    """Called after every host synchronization: count it and raise what the device checks found."""
    _syncs[0] += 1
    if "rec" in _state:
        check()


def _clear() -> None:
    claim, rec = _state["claim"], _state["rec"]
    if driver.simulated():
        claim.storage.raw[:] = 0
        rec.storage.host[:] = 0
        return
    from numba.cuda.cudadrv.driver import driver as drv

    from . import streams
    # the claim is device memory: cleared in stream order, before any later kernel on this stream can report
    drv.cuMemsetD8Async(claim.data_ptr, 0, 8, streams.current_handle())
    if rec.storage.host is not None:
        rec.storage.host[:] = 0
    else:
        drv.cuMemsetD8Async(rec.data_ptr, 0, 32, streams.current_handle())


# -- a check-only kernel, for front ends that validate values they do not index with ------------------------
def _check_range(values, lo, hi, skip, has_skip, claim, rec, report_code, n):
    t = cuda.grid(1)
    step = cuda.gridsize(1)
    while t < n:
        v = values[t]
        if (v < lo or v >= hi) and not (has_skip and v == skip):
            report(claim, rec, v, hi, report_code)
        t += step


_KERNELS: dict = {}


def check_range(values, lo: int, hi: int, op: str, template: str | None = None, skip: int | None = None) -> None:
    """Report (asynchronously, see the module doc) any element of device int array ``values`` outside
    ``[lo, hi)`` (``skip``: a value that is always allowed, e.g. an ``ignore_index``).  No host sync."""
    if values.size == 0:
        return
    k = _KERNELS.get("range")
    if k is None:
        from .typed_kernels import Kernel
        k = _KERNELS["range"] = Kernel(_check_range)
    from .typed_kernels import contiguous, flat
    v = flat(contiguous(values, I64))
    sid = site(op, template)
    claim, rec = buffers()
    k.over(v.size, v, int(lo), int(hi), 0 if skip is None else int(skip), skip is not None, claim, rec,
           code(sid), v.size)
