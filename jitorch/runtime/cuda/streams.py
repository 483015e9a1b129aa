"""CUDA streams and events: where kernels, copies and memsets are issued (``jitorch.cuda.Stream`` & co.).

Every kernel launch (``typed_kernels``, ``dispatch_cache``), copy and memset
(``copy``) and cuBLAS call goes to the calling thread's *current stream*: the
default stream (handle 0, the legacy default stream, as in torch) unless
``with jitorch.cuda.stream(s):`` or ``set_stream(s)`` chose another.  The
current stream is per thread, as in torch; reading it is one thread-local
attribute, so the default-stream path costs what it did before streams
existed.

``Stream()`` hands out streams from a pool per priority (32 each,
round-robin, created on first use and never destroyed, as torch does): a
handle is never reused while the caching allocator still has blocks tagged
with it.  Pool streams are non-blocking, so work on them is not ordered with
the default stream: ``wait_stream``/``wait_event``/``record_event`` order it,
and memory used across streams needs ``Tensor.record_stream`` (see
``memory``), exactly as in torch.

Every call here that blocks the host ends in ``device_checks.after_sync()``,
which counts the synchronization and raises what device-side checks found.

Under the simulator every operation completes when it is issued: streams are
bookkeeping (distinct handles, current-stream switching, the allocator's
per-stream free lists) and events record the host clock.  This module
imports no numba.cuda itself (``jitorch.cuda`` re-exports its classes).
"""
from __future__ import annotations

import threading
import time

from . import driver

POOL_SIZE = 32  # streams per priority, as torch's pool


class _Current(threading.local):
    stream = None  # the thread's current Stream; None means the default stream

    def __init__(self):
        self.stack = []  # streams to restore when `with stream:` blocks exit


_TLS = _Current()
_state: dict = {}
# how many threads have a stream other than the default current: while none has (the common case), the
# hot path reads this one global instead of the thread-local (changed under the lock: a lost update would
# send some thread's work to the default stream)
_side = [0]
_side_lock = threading.Lock()


# -- the current stream (hot path) ------------------------------------------------------------------------
def current() -> Stream:
    if _side[0]:
        s = _TLS.stream
        if s is not None:
            return s
    return default()


def current_handle() -> int:
    """The current stream's raw handle (0: the default stream): what copies and cuBLAS take."""
    if _side[0]:
        s = _TLS.stream
        if s is not None:
            return s.handle
    return 0


def current_core():
    """The current stream as a ``cuda.core`` Stream: what kernel launches take (GPU only)."""
    if _side[0]:
        s = _TLS.stream
        if s is not None:
            return s.core
    d = _state.get("default")
    return d.core if d is not None else default().core


def set_current(s: Stream | None) -> None:
    """Make ``s`` this thread's current stream (None or the default stream: back to the default)."""
    new = None if s is None or s.handle == 0 else s
    old = _TLS.stream
    if (old is None) != (new is None):
        with _side_lock:
            _side[0] += 1 if new is not None else -1
    _TLS.stream = new


def default() -> Stream:
    s = _state.get("default")
    if s is None:
        s = _state["default"] = Stream._make(0, _core_from_handle(0), 0)
    return s


# -- stream objects --------------------------------------------------------------------------------------
def _core_from_handle(handle: int):
    if driver.simulated():
        return None
    from cuda.core import Stream as CoreStream
    return CoreStream.from_handle(int(handle))


def _core_device():
    from cuda.core import Device
    dev = Device(driver.cuda_module().get_current_device().id)
    dev.set_current()
    return dev


def priority_range() -> tuple[int, int]:
    """(lowest, highest) stream priority, as ``torch.cuda.Stream.priority_range()`` (lower is more urgent)."""
    r = _state.get("priority_range")
    if r is None:
        if driver.simulated():
            r = (0, -1)
        else:
            from numba.cuda.cudadrv.driver import driver as drv
            least, greatest = drv.cuCtxGetStreamPriorityRange()
            r = (int(least), int(greatest))
        _state["priority_range"] = r
    return r


def _pooled(priority: int) -> tuple:
    """(handle, cuda.core stream, priority) of the next pool stream of ``priority`` (clamped to the range)."""
    least, greatest = priority_range()
    priority = min(max(int(priority), greatest), least)
    pool = _state.setdefault(("pool", priority), [])
    turn = _state.get(("next", priority), 0)
    _state[("next", priority)] = turn + 1
    if len(pool) < POOL_SIZE:
        if driver.simulated():
            n = _state["sim_streams"] = _state.get("sim_streams", 0) + 1
            pool.append((0x5100 + n, None))  # a distinct fake handle per simulated stream
        else:
            from cuda.core import StreamOptions
            core = _core_device().create_stream(options=StreamOptions(nonblocking=True, priority=priority))
            pool.append((int(core.handle), core))
        handle, core = pool[-1]
    else:
        handle, core = pool[turn % POOL_SIZE]
    return handle, core, priority


class Stream:
    """A CUDA stream (``jitorch.cuda.Stream(device=None, priority=0)``).

    >>> import jitorch
    >>> if jitorch.cuda.is_available():
    ...     s = jitorch.cuda.Stream()
    ...     with jitorch.cuda.stream(s):
    ...         y = jitorch.ones(3, device="cuda") * 2
    ...     jitorch.cuda.current_stream().wait_stream(s)
    ...     assert y.tolist() == [2.0, 2.0, 2.0]
    """

    def __init__(self, device=None, priority: int = 0, **kwargs):
        _require(device)
        self._init(*_pooled(priority))

    @classmethod
    def _make(cls, handle: int, core, priority: int) -> Stream:
        s = object.__new__(cls)
        s._init(handle, core, priority)
        return s

    def _init(self, handle: int, core, priority: int) -> None:
        from ..device import Device
        self.handle = handle
        self.core = core
        self.priority = priority
        self.device = Device("cuda", 0)
        self.device_index = 0
        self.device_type = 1  # torch's DeviceType.CUDA

    @property
    def cuda_stream(self) -> int:
        """The raw ``cudaStream_t`` handle as an int (0 for the default stream)."""
        return self.handle

    @staticmethod
    def priority_range() -> tuple[int, int]:
        return priority_range()

    def synchronize(self) -> None:
        """Wait until all work issued to this stream has finished."""
        if self.core is not None:
            self.core.sync()
        from . import device_checks
        device_checks.after_sync()

    def query(self) -> bool:
        """True when all work issued to this stream has finished (does not wait)."""
        if self.core is None:
            done = True
        else:
            done = _stream_done(self.handle)
        if done:
            from . import device_checks
            device_checks.check()
        return done

    def wait_event(self, event: Event) -> None:
        """Make later work on this stream wait for ``event`` (does not block the host)."""
        event.wait(self)

    def wait_stream(self, stream: Stream) -> None:
        """Make later work on this stream wait for all work issued to ``stream`` so far."""
        if self.core is not None and stream.handle != self.handle:
            self.core.wait(stream.core)

    def record_event(self, event: Event | None = None) -> Event:
        event = event if event is not None else Event()
        event.record(self)
        return event

    def __enter__(self):
        _TLS.stack.append(_TLS.stream)
        set_current(self)
        return self

    def __exit__(self, *exc):
        set_current(_TLS.stack.pop())
        return False

    def __eq__(self, other) -> bool:
        return isinstance(other, Stream) and other.handle == self.handle

    def __hash__(self) -> int:
        return hash(("cuda stream", self.handle))

    def __repr__(self) -> str:
        return f"<jitorch.cuda.Stream device=cuda:0 cuda_stream={self.handle:#x}>"


class ExternalStream(Stream):
    """A stream created elsewhere (``stream_ptr``: its ``cudaStream_t`` as an int); jitorch never destroys it."""

    def __init__(self, stream_ptr: int, device=None):
        _require(device)
        handle = int(stream_ptr)
        self._init(handle, _core_from_handle(handle), 0)


def _require(device) -> None:
    driver.require()
    if device is not None:
        from ..device import Device, canonical
        d = canonical(Device(device) if not isinstance(device, int) else Device("cuda", device))
        if d.type != "cuda":
            raise ValueError(f"Expected a cuda device, but got: {d}")


def _stream_done(handle: int) -> bool:
    from cuda.bindings import driver as cu
    (err,) = cu.cuStreamQuery(handle)
    if err == cu.CUresult.CUDA_SUCCESS:
        return True
    if err == cu.CUresult.CUDA_ERROR_NOT_READY:
        return False
    raise RuntimeError(f"CUDA error: cuStreamQuery failed with {err.name}")


class stream:  # torch's name: a context manager spelled like a function
    """``with jitorch.cuda.stream(s):`` makes ``s`` the current stream (``None``: no change)."""

    def __init__(self, s: Stream | None):
        self.stream = s

    def __enter__(self):
        if self.stream is not None:
            self.stream.__enter__()
        return self.stream

    def __exit__(self, *exc):
        if self.stream is not None:
            self.stream.__exit__(*exc)
        return False


# -- events -----------------------------------------------------------------------------------------------
class Event:
    """A point in a stream: wait for it, order another stream after it, time the work between two.

    >>> import jitorch
    >>> if jitorch.cuda.is_available():
    ...     start = jitorch.cuda.Event(enable_timing=True)
    ...     end = jitorch.cuda.Event(enable_timing=True)
    ...     start.record(); y = jitorch.ones(4, device="cuda") * 2; end.record()
    ...     end.synchronize()
    ...     assert start.elapsed_time(end) >= 0
    """

    def __init__(self, enable_timing: bool = False, blocking: bool = False, interprocess: bool = False):
        driver.require()
        self.enable_timing = enable_timing
        self.blocking = blocking
        self.interprocess = interprocess
        self._ev = None  # the cuda.core Event (GPU), made by the first record
        self._time = None  # simulator: host clock at record; GPU: True once recorded

    def record(self, stream: Stream | None = None) -> None:
        """Mark the current point of ``stream`` (default: the current stream)."""
        s = stream if stream is not None else current()
        if s.core is None:
            self._time = time.perf_counter()
            return
        if self._ev is None:
            from cuda.core import EventOptions
            self._ev = s.core.record(options=EventOptions(timing_enabled=self.enable_timing,
                                                          blocking_sync=self.blocking))
        else:
            s.core.record(self._ev)
        self._time = True

    def wait(self, stream: Stream | None = None) -> None:
        """Make later work on ``stream`` (default: the current stream) wait for this event."""
        if self._ev is not None:
            (stream if stream is not None else current()).core.wait(self._ev)

    def query(self) -> bool:
        """True when the work before the recorded point has finished (or nothing was recorded)."""
        done = self._ev is None or bool(self._ev.is_done)
        if done and self._time is not None:
            from . import device_checks
            device_checks.check()
        return done

    def synchronize(self) -> None:
        """Wait until the work before the recorded point has finished."""
        if self._ev is not None:
            self._ev.sync()
        from . import device_checks
        device_checks.after_sync()

    def elapsed_time(self, end_event: Event) -> float:
        """Milliseconds between this event and ``end_event`` (both recorded, both with timing)."""
        if not (self.enable_timing and end_event.enable_timing):
            raise RuntimeError("Both events must be created with argument 'enable_timing=True'.")
        if self._time is None or end_event._time is None:
            raise RuntimeError("Both events must be recorded before calculating elapsed time.")
        if self._ev is None:
            return (end_event._time - self._time) * 1e3
        end_event.synchronize()
        return float(end_event._ev - self._ev)

    def __repr__(self) -> str:
        return f"<jitorch.cuda.Event enable_timing={self.enable_timing}>"


def synchronize() -> None:
    """Wait for all work on every stream of the device."""
    if not driver.simulated():
        driver.cuda_module().synchronize()
    from . import device_checks
    device_checks.after_sync()


# -- markers: "has the work issued so far on this stream finished?" (allocator and pinned-memory cache) ----
class _Done:
    __slots__ = ()

    def done(self) -> bool:
        return True

    def wait(self) -> None:
        pass


_DONE = _Done()


class _EventMarker:
    __slots__ = ("ev",)

    def __init__(self, ev):
        self.ev = ev

    def done(self) -> bool:
        return bool(self.ev.is_done)

    def wait(self) -> None:
        self.ev.sync()


def marker(s: Stream):
    """A marker at the current end of ``s``'s work (under the simulator: already done)."""
    if s.core is None:
        return _DONE
    return _EventMarker(s.core.record())
