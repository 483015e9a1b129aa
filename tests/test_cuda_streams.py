"""CUDA streams, events, the per-stream caching allocator, pinned host memory and non_blocking copies.

Under Numba's simulator every operation completes when it is issued, so these
tests check the bookkeeping that makes the GPU schedule correct: which stream
is current (per thread), which stream launches, copies and cuBLAS use, when
the allocator may reuse a block, when a pinned block may be reused, what
counts as a host synchronization, and that values come out right.
"""
from __future__ import annotations

import inspect
import threading

import numpy as np
import pytest

import jitorch
from jitorch.runtime.cuda import array as A
from jitorch.runtime.cuda import (
    backend,
    device_checks,
    dispatch_cache,
    memory,
    pinned,
    streams,
    typed_kernels,
)
from jitorch.runtime.cuda import copy as C

pytestmark = pytest.mark.skipif(not jitorch.cuda.is_available(), reason="numba.cuda (or its simulator) is missing")
cuda = jitorch.cuda


@pytest.fixture(autouse=True)
def _loaded_and_clean():
    backend.load()
    yield
    assert cuda.current_stream() == cuda.default_stream()  # no test leaves a stream current


# -- the current stream ---------------------------------------------------------------------------------------
def test_current_stream_follows_with_blocks_and_set_stream():
    s, t = cuda.Stream(), cuda.Stream(priority=-1)
    d = cuda.default_stream()
    assert d.cuda_stream == 0 and cuda.current_stream() == d
    assert s != d and s.cuda_stream != 0 and hash(s) != hash(d)
    with cuda.stream(s):
        assert cuda.current_stream() is s
        with t:
            assert cuda.current_stream() is t
        assert cuda.current_stream() is s
        with cuda.stream(None):  # None changes nothing, as in torch
            assert cuda.current_stream() is s
    assert cuda.current_stream() == d
    cuda.set_stream(s)
    try:
        assert cuda.current_stream() is s
    finally:
        cuda.set_stream(d)
    lo, hi = cuda.Stream.priority_range()
    assert hi <= t.priority <= lo and s.priority == 0


def test_current_stream_is_per_thread():
    s = cuda.Stream()
    seen = []
    with cuda.stream(s):
        th = threading.Thread(target=lambda: seen.append(cuda.current_stream()))
        th.start()
        th.join()
        assert cuda.current_stream() is s
    assert seen == [cuda.default_stream()]


def test_streams_come_from_a_round_robin_pool():
    handles = {cuda.Stream().cuda_stream for _ in range(streams.POOL_SIZE + 3)}
    assert len(handles) == streams.POOL_SIZE  # never more streams than the pool holds: none is destroyed


def test_external_stream_wraps_a_handle():
    s = cuda.ExternalStream(0x1234)
    assert s.cuda_stream == 0x1234 and s == cuda.ExternalStream(0x1234)


def test_launches_copies_and_cublas_use_the_current_stream(monkeypatch):
    s = cuda.Stream()
    fake_core = object()
    monkeypatch.setattr(s, "core", fake_core)
    assert typed_kernels._core_stream() is streams.default().core
    with cuda.stream(s):
        assert typed_kernels._core_stream() is fake_core
        assert streams.current_handle() == s.cuda_stream
    # a compiled launcher (dispatch_cache) launches on the stream current at each call
    launched = []
    lc = object.__new__(dispatch_cache.GpuLauncher)
    lc.convert, lc.launches, lc.direct, lc.fn, lc.stream = (), 0, True, "fn", None
    lc.configs = {(1, 8): "cfg"}
    lc.launch_fn = lambda stream, cfg, fn, *args: launched.append(stream)
    lc(1, 8)
    with cuda.stream(s):
        lc(1, 8)
    assert launched == [streams.default().core, fake_core]
    # cuBLAS gets the current stream's handle unless the caller names one
    from jitorch.runtime.cuda import cublas
    assert inspect.signature(cublas.run).parameters["stream_handle"].default is None


def test_work_on_a_side_stream_gives_the_right_values():
    s = cuda.Stream()
    x = jitorch.arange(6.0, device="cuda")
    s.wait_stream(cuda.current_stream())  # x was made on the default stream
    with cuda.stream(s):
        y = (x * 2).sum()
        done = s.record_event()
    cuda.current_stream().wait_event(done)
    assert y.item() == 30.0 and done.query() and s.query()


# -- events -------------------------------------------------------------------------------------------------
def test_events_record_on_a_given_stream_and_time():
    s = cuda.Stream()
    start, end = cuda.Event(enable_timing=True), cuda.Event(enable_timing=True)
    start.record(s)
    with cuda.stream(s):
        jitorch.ones(4, device="cuda").sum()
    end.record(s)
    end.synchronize()
    assert end.query() and start.elapsed_time(end) >= 0
    e = cuda.Event()
    assert e.query()  # never recorded: nothing to wait for
    e.wait(s)
    with pytest.raises(RuntimeError, match="enable_timing=True"):
        e.elapsed_time(end)


# -- host synchronizations ----------------------------------------------------------------------------------
def test_only_reads_and_synchronize_calls_count_as_host_syncs():
    x = jitorch.arange(4.0, device="cuda")
    before = cuda._host_syncs()
    y = (x * 3 + 1).sum()
    z = x.to("cuda").clone()
    s = cuda.Stream()
    ev = s.record_event()
    cuda.current_stream().wait_event(ev)
    C.to_host(z._data, non_blocking=True)  # an asynchronous copy is no synchronization
    assert cuda._host_syncs() == before
    y.item()
    z.cpu()
    cuda.synchronize()
    s.synchronize()
    ev.synchronize()
    assert cuda._host_syncs() == before + 5


# -- the caching allocator per stream -----------------------------------------------------------------------------
def _block(stream=None, nbytes=4096):
    with cuda.stream(stream):
        return A.empty((nbytes // 4,), np.float32)


def test_a_block_is_reused_only_on_the_stream_it_was_allocated_on():
    s = cuda.Stream()
    a = _block(s)
    ptr, st = a.data_ptr, a.storage.stream
    assert st == s.cuda_stream
    del a
    other = _block()  # the default stream must not get s's block: s may still be using it
    assert other.data_ptr != ptr
    again = _block(s)
    assert again.data_ptr == ptr  # on its own stream it is reused at once (stream order protects it)
    d = other.data_ptr
    del other
    assert _block().data_ptr == d


class _Marker:
    """A controllable stand-in for an event recorded on a stream."""

    def __init__(self):
        self.finished = False
        self.waited = False

    def done(self):
        return self.finished

    def wait(self):
        self.waited = self.finished = True


def test_record_stream_keeps_a_freed_block_until_the_other_stream_is_done(monkeypatch):
    s = cuda.Stream()
    markers = []
    monkeypatch.setattr(streams, "marker", lambda stream: markers.append((stream, _Marker())) or markers[-1][1])
    a = _block()
    ptr = a.data_ptr
    memory.record_stream(a, s)
    memory.record_stream(a, cuda.default_stream())  # its own stream: nothing to record
    allocated = cuda.memory_allocated()
    del a
    assert [m[0] for m in markers] == [s]  # an event on the other stream at free time
    assert cuda.memory_allocated() < allocated and cuda.memory_stats()["num_blocks_awaiting_other_streams"] == 1
    assert _block().data_ptr != ptr  # s's work may still read it
    markers[0][1].finished = True
    assert _block().data_ptr == ptr  # s is done: back on the default stream's free list
    assert cuda.memory_stats()["num_blocks_awaiting_other_streams"] == 0


def test_empty_cache_waits_for_blocks_in_use_on_other_streams(monkeypatch):
    s = cuda.Stream()
    m = _Marker()
    monkeypatch.setattr(streams, "marker", lambda stream: m)
    a = _block(s, 8192)
    memory.record_stream(a, cuda.default_stream())
    del a
    cuda.empty_cache()
    assert m.waited and cuda.memory_reserved() == cuda.memory_allocated()


def test_tensor_record_stream_hook():
    x = jitorch.ones(3, device="cuda")
    s = cuda.Stream()
    x.record_stream(s)
    assert s.cuda_stream in x._data.storage.uses


# -- pinned host memory and non_blocking copies -------------------------------------------------------------------
def test_pinned_arrays_views_and_copies():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    p = pinned.pin(a)
    np.testing.assert_array_equal(p, a)
    assert pinned.is_pinned(p) and pinned.is_pinned(p[1:, ::2]) and pinned.is_pinned(p.T)
    assert not pinned.is_pinned(a) and not pinned.is_pinned(p.copy()) and not pinned.is_pinned(np.array(p))
    e = pinned.empty((0, 2), np.int64)
    assert e.shape == (0, 2) and pinned.is_pinned(e)


def test_pinned_blocks_are_cached_and_wait_for_async_copies(monkeypatch):
    pinned.empty_cache()
    p = pinned.empty((100,), np.float64)  # 800 bytes -> one 1024-byte block
    addr = p.ctypes.data
    n = pinned.stats()["allocations"]
    del p
    q = pinned.empty((200,), np.float32)
    assert q.ctypes.data == addr and pinned.stats()["allocations"] == n  # reused, not allocated again
    m = _Marker()
    monkeypatch.setattr(streams, "marker", lambda stream: m)
    pinned.record_use(q, cuda.current_stream())  # an async copy still reads it
    del q
    assert pinned.empty((100,), np.float64).ctypes.data != addr
    m.finished = True
    assert pinned.empty((100,), np.float64).ctypes.data == addr


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.bool_, np.float16])
def test_non_blocking_transfers_of_pinned_memory(dtype):
    host = (np.arange(10) % 3).astype(dtype)
    src = pinned.pin(host)
    dev = C.from_host(src, non_blocking=True)
    back = C.to_host(dev, non_blocking=True)
    assert pinned.is_pinned(back)
    cuda.current_stream().synchronize()  # the values are there once the stream has been synchronized
    np.testing.assert_array_equal(back, host)
    np.testing.assert_array_equal(C.from_host(host, non_blocking=True).to_host(), host)  # pageable: a plain copy


def test_tensor_pin_memory_and_non_blocking_to():
    x = jitorch.arange(8.0).reshape(2, 4)
    p = x.pin_memory()
    assert p.is_pinned() and not x.is_pinned() and p.pin_memory() is p and p[1].is_pinned()
    s = cuda.Stream()
    with cuda.stream(s):
        before = cuda._host_syncs()
        d = p.to("cuda", non_blocking=True)
        h = (d * 2).to("cpu", non_blocking=True)
        assert cuda._host_syncs() == before
    s.synchronize()
    assert h.is_pinned() and h.tolist() == (x * 2).tolist()
    assert p.cuda(non_blocking=True).cpu().tolist() == x.tolist()
    assert x.to("cuda", non_blocking=True).cpu().tolist() == x.tolist()  # pageable: behaves like a blocking copy
    with pytest.raises(RuntimeError, match="only dense CPU tensors can be pinned"):
        d.pin_memory()


def test_dataloader_pin_memory():
    from jitorch.utils.data import DataLoader, TensorDataset
    ds = TensorDataset(jitorch.arange(6.0).reshape(3, 2), jitorch.tensor([0, 1, 2]))
    batches = list(DataLoader(ds, batch_size=2, pin_memory=True))
    assert all(t.is_pinned() for b in batches for t in b)
    assert batches[0][0].to("cuda", non_blocking=True).cpu().tolist() == [[0.0, 1.0], [2.0, 3.0]]
    assert not any(t.is_pinned() for b in DataLoader(ds, batch_size=2) for t in b)


# -- errors found on the device surface at stream and event syncs as well ------------------------------------------
def test_device_errors_surface_at_stream_synchronize():
    s = cuda.Stream()
    from jitorch.ops.registry import OPS
    with cuda.stream(s):
        OPS["gather"].impl["cuda"](A.from_host(np.zeros((2, 2), np.float32)), 1, A.from_host(np.array([[0, 2]])))
    with pytest.raises(device_checks.DeviceIndexError, match="gather: index 2 is out of bounds for dimension 1"):
        s.synchronize()
    s.synchronize()
