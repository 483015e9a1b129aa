"""CUDA ops give the CPU's results even when fresh device memory holds garbage.

With the allocator's poisoning on (``jitorch.runtime.cuda.memory.set_poison``, the
``JITORCH_CUDA_POISON=1`` switch) every block handed out is filled with 0xFF bytes
(NaN floats, -1 integers), as are the simulator's shared and local arrays.  An op
that reads memory nothing wrote (an accumulator that was never zeroed, a count or
partial-sum slot no thread fills) then fails every time instead of only when the
caching allocator happens to hand back a block with unlucky old contents.

Also here: the simulator's shared-array allocation is thread-safe (``sim_fixes``),
and host index arrays with negative entries do not address memory before a view.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest
from _cuda_kernel_helpers import assert_same, fast_sim_threads  # noqa: F401 - autouse fixture

import jitorch
import jitorch.nn.functional as F
from jitorch import nn

pytestmark = pytest.mark.skipif(not jitorch.cuda.is_available(), reason="numba.cuda (or its simulator) is missing")

CUDA = "cuda"

if jitorch.cuda.is_available():
    from jitorch.runtime.cuda import array, driver, memory, sim_fixes


@pytest.fixture
def poisoned():
    """Poison every allocation for the duration of a test (the previous setting is restored)."""
    before = memory.set_poison(True)
    yield
    memory.set_poison(before)


def _np(t):
    return t.detach().cpu().numpy()


def _close(got, want, rtol=1e-5, atol=1e-6):
    assert got.device.type == "cuda"
    assert got.dtype == want.dtype and tuple(got.shape) == tuple(want.shape)
    np.testing.assert_allclose(_np(got).astype(np.float64), _np(want).astype(np.float64), rtol=rtol, atol=atol)


def _both(fn, *inputs, grad=True, rtol=1e-5, atol=1e-6):
    """``fn`` on CPU inputs and on CUDA copies: same results and, for float inputs, same gradients of the sum."""
    cpu = [x.detach().clone().requires_grad_(grad and x.is_floating_point()) for x in inputs]
    dev = [x.detach().to(CUDA).requires_grad_(grad and x.is_floating_point()) for x in inputs]
    want, got = fn(*cpu), fn(*dev)
    _close(got, want, rtol, atol)
    if grad and want.requires_grad:
        want.double().sum().backward()
        got.double().sum().backward()
        for c, d in zip(cpu, dev):
            if c.grad is not None:
                _close(d.grad, c.grad, rtol, atol)


def _randn(*shape, seed=0):
    return jitorch.from_numpy(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


# -- the switch itself ------------------------------------------------------------------------------------------
def test_poison_fills_new_and_reused_blocks(poisoned):
    f = array.empty((5,), np.float32)
    assert np.isnan(f.to_host()).all()
    f.fill(3.0)
    del f  # back to the free list, then handed out again: poisoned again
    g = array.empty((5,), np.float32)
    assert np.isnan(g.to_host()).all()
    assert (array.empty((3,), np.int64).to_host() == -1).all()
    assert (array.empty((4,), np.uint8).to_host() == 0xFF).all()


def test_poison_can_be_switched_at_run_time():
    before = memory.set_poison(True)
    try:
        assert memory.poison_enabled()
        assert memory.set_poison(False) is True
        assert not memory.poison_enabled()
        z = array.empty((4,), np.float32)
        z.fill(0)
        assert (z.to_host() == 0).all()
    finally:
        memory.set_poison(before)


@pytest.mark.skipif(not driver.simulated() if jitorch.cuda.is_available() else True, reason="simulator only")
def test_simulated_shared_and_local_arrays_are_poisoned(poisoned):
    from numba.cuda.simulator import kernelapi
    sim_fixes.install()
    sh = kernelapi.FakeCUDAShared(0).array(6, np.float64)
    loc = kernelapi.FakeCUDALocal().array(3, np.int32)
    assert np.isnan(sh).all() and (loc == -1).all()


# -- ops that accumulate, count or write only part of their output -------------------------------------------------
def test_nonzero_unique_and_masks(poisoned):
    x = jitorch.tensor([[0, 3, 3, 0], [1, 1, 0, 2], [2, 2, 2, 0]])
    for fn in (jitorch.nonzero, lambda t: t.nonzero(as_tuple=True)[1], lambda t: t[t > 1],
               lambda t: jitorch.unique(t, return_counts=True)[1],
               lambda t: jitorch.unique_consecutive(t.reshape(-1), return_inverse=True)[1],
               lambda t: jitorch.unique(t, dim=0, return_inverse=True)[1]):
        want, got = fn(x), fn(x.to(CUDA))
        assert got.device.type == "cuda"
        assert _np(got).tolist() == _np(want).tolist()


def test_scatter_index_and_embedding_gradients(poisoned):
    x, src = _randn(4, 5), _randn(4, 5, seed=1)
    cols = jitorch.tensor([[0, 4, 4, 1, 0], [2, 2, 2, 2, 2], [3, 1, 0, 4, 1], [0, 0, 1, 1, 2]])
    rows = jitorch.tensor([2, 0, 2, 3])
    _both(lambda a, s: a.scatter_add(1, cols.to(a.device), s), x, src)
    _both(lambda a, s: a.scatter_reduce(1, cols.to(a.device), s, "mean", include_self=False), x, src)
    _both(lambda a, s: a.index_add(0, rows.to(a.device), s, alpha=0.5), x, src)
    _both(lambda a: a[rows.to(a.device)] * 2, x)  # the gradient adds the repeated row twice
    _both(lambda w: F.embedding(jitorch.tensor([[1, 3], [3, 3]], device=w.device), w), _randn(5, 3))
    _both(lambda a: a.take(jitorch.tensor([[0, -1], [7, 7]], device=a.device)), x)


def test_reductions_scans_and_arg_extremes(poisoned):
    x = _randn(3, 37)
    for fn in (lambda t: t.sum(-1), lambda t: t.sum(0), lambda t: t.sum(), lambda t: t.mean((0, 1)),
               lambda t: t.amax(-1), lambda t: t.norm(dim=0), lambda t: t.cumsum(-1), lambda t: t.logsumexp(-1),
               lambda t: t.var(-1), lambda t: t.prod(0)):
        _both(fn, x, rtol=1e-4, atol=1e-5)
    for fn in (lambda t: t.argmax(-1), lambda t: t.argmin(0), lambda t: t.argmax(),
               lambda t: t.sort(-1, stable=True)[1], lambda t: t.cummax(-1)[1], lambda t: (t > 0).all(-1)):
        assert _np(fn(x.to(CUDA))).tolist() == _np(fn(x)).tolist()


@pytest.mark.parametrize("kind", ["GRU", "LSTM", "RNN"])
def test_recurrent_step_and_gradients(poisoned, kind):
    jitorch.manual_seed(0)
    layer = getattr(nn, kind)(3, 4, num_layers=1, bidirectional=True)
    twin = getattr(nn, kind)(3, 4, num_layers=1, bidirectional=True).to(CUDA)
    twin.load_state_dict({k: v.to(CUDA) for k, v in layer.state_dict().items()})
    x = _randn(3, 2, 3)
    want = layer(x)[0]
    got = twin(x.to(CUDA))[0]
    _close(got, want, 1e-4, 1e-5)
    want.square().sum().backward()
    got.square().sum().backward()
    for (name, p), q in zip(layer.named_parameters(), twin.parameters()):
        _close(q.grad, p.grad, 1e-4, 1e-5)


def test_compiled_softmax_layer_norm_and_mean(poisoned):
    x, w, b = _randn(4, 7), _randn(7, seed=1), _randn(7, seed=2)

    def fn(t, w, b):
        return jitorch.softmax(t, -1) + F.layer_norm(t, (7,), w, b) * t.mean(-1, keepdim=True)

    compiled = jitorch.compile(fn)
    got = compiled(x.to(CUDA), w.to(CUDA), b.to(CUDA))
    _close(got, fn(x, w, b), 1e-5, 1e-5)
    again = compiled(x.to(CUDA), w.to(CUDA), b.to(CUDA))
    _close(again, got, 0, 0)


def test_training_step_with_adam(poisoned):
    jitorch.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 6), nn.LayerNorm(6), nn.ReLU(), nn.Linear(6, 3))
    twin = nn.Sequential(nn.Linear(5, 6), nn.LayerNorm(6), nn.ReLU(), nn.Linear(6, 3)).to(CUDA)
    twin.load_state_dict({k: v.to(CUDA) for k, v in model.state_dict().items()})
    x, y = _randn(4, 5), jitorch.tensor([0, 2, 1, 2])
    for m, dev in ((model, "cpu"), (twin, CUDA)):
        opt = jitorch.optim.Adam(m.parameters(), lr=0.01)
        for _ in range(2):
            opt.zero_grad()
            F.cross_entropy(m(x.to(dev)), y.to(dev)).backward()
            opt.step()
    for p, q in zip(model.parameters(), twin.parameters()):
        _close(q, p, 1e-4, 1e-5)


# -- host index arrays with negative entries -------------------------------------------------------------------------
def test_host_negative_indices_count_from_the_end_of_their_dim():
    # a gradient formula may hand the CUDA kernels host indices that still hold negatives: they must address
    # the end of the indexed dim, never the element before the view (the previous row, or before the buffer)
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert_same("index_select", x, dims=(1,), idx=(np.array([-1, 2, -4]),), exact=True)
    assert_same("index", x, dims=(0,), idx=(np.array([-1, 0]),), exact=True)


# -- the simulator's shared arrays ------------------------------------------------------------------------------------
class _RendezvousDict(dict):
    """A dict whose lookups wait until every thread has looked (or 0.2 s have passed): a thread switch at the
    worst moment, made certain."""

    def __init__(self, parties):
        super().__init__()
        self.meet = threading.Barrier(parties, timeout=0.2)

    def get(self, key, default=None):
        found = super().get(key, default)
        try:
            self.meet.wait()
        except threading.BrokenBarrierError:  # a lock lets one thread in at a time: nobody else comes
            pass
        return found


@pytest.mark.skipif(not driver.simulated() if jitorch.cuda.is_available() else True, reason="simulator only")
def test_simulated_threads_of_a_block_share_one_shared_array():
    from numba.cuda.simulator import kernelapi
    sim_fixes.install()
    shared = kernelapi.FakeCUDAShared(0)
    shared._allocations = _RendezvousDict(4)
    got = []

    def thread():
        got.append(shared.array(8, np.float64))  # every thread allocates on this one line, like a kernel's

    threads = [threading.Thread(target=thread) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 4 and all(a is got[0] for a in got)
