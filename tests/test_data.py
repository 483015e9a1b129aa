"""Tests for jitorch.utils.data (datasets, samplers, collation, DataLoader,
worker processes). PyTorch (CPU) is the oracle where results are
deterministic. Datasets used with workers live in tests/_data_helpers.py so
the (forkserver/spawn) worker processes can import them."""

import collections
import contextlib
import signal
import time
import warnings

import numpy as np
import pytest

import jitorch
from jitorch.utils import data as jdata
from jitorch.utils.data import (
    BatchSampler,
    ChainDataset,
    ConcatDataset,
    DataLoader,
    Dataset,
    RandomSampler,
    SequentialSampler,
    StackDataset,
    Subset,
    SubsetRandomSampler,
    TensorDataset,
    WeightedRandomSampler,
    default_collate,
    default_convert,
    get_worker_info,
    random_split,
)

import _data_helpers as H

torch = pytest.importorskip("torch")
tdata = torch.utils.data


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def to_py(x):
    """Normalise a (jitorch or torch) batch into comparable plain data:
    tensors become ('tensor', dtype str, shape, list)."""
    if isinstance(x, jitorch.Tensor):
        a = np.asarray(x.numpy())
        return ("tensor", str(a.dtype), a.shape, a.tolist())
    if isinstance(x, torch.Tensor):
        a = x.numpy()
        return ("tensor", str(a.dtype), a.shape, a.tolist())
    if isinstance(x, dict):
        return ("dict", {k: to_py(v) for k, v in x.items()})
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return ("namedtuple", type(x).__name__, [to_py(v) for v in x])
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, [to_py(v) for v in x])
    return x


def jt_tensor(a):
    return jitorch.from_numpy(np.ascontiguousarray(a))


@contextlib.contextmanager
def deadline(seconds):
    """Fail (instead of hanging the suite) if the block takes too long."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield  # signals only work in the main thread
        return

    def on_alarm(signum, frame):
        raise TimeoutError(f"test block exceeded {seconds}s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# --------------------------------------------------------------------------
# samplers
# --------------------------------------------------------------------------

def test_sequential_sampler():
    s = SequentialSampler(range(7))
    assert list(s) == list(range(7))
    assert len(s) == 7


def test_random_sampler_permutation_and_reproducible():
    g1 = jitorch.Generator()
    g1.manual_seed(3)
    g2 = jitorch.Generator()
    g2.manual_seed(3)
    a = list(RandomSampler(range(50), generator=g1))
    b = list(RandomSampler(range(50), generator=g2))
    assert sorted(a) == list(range(50))
    assert a == b
    assert a != list(range(50))
    # global seed drives the default (generator=None) case
    jitorch.manual_seed(11)
    c = list(RandomSampler(range(50)))
    jitorch.manual_seed(11)
    d = list(RandomSampler(range(50)))
    assert c == d and sorted(c) == list(range(50))


def test_random_sampler_num_samples_and_replacement():
    s = RandomSampler(range(10), num_samples=25)
    out = list(s)
    assert len(s) == 25 and len(out) == 25
    # without replacement: two full permutations, then a partial one
    assert sorted(out[:10]) == list(range(10)) and sorted(out[10:20]) == list(range(10))
    assert len(set(out[20:])) == 5
    r = RandomSampler(range(5), replacement=True, num_samples=100)
    out = list(r)
    assert len(out) == 100 and set(out) <= set(range(5))
    with pytest.raises(TypeError, match="replacement should be a boolean"):
        RandomSampler(range(3), replacement=1)
    with pytest.raises(ValueError, match="num_samples should be a positive integer"):
        RandomSampler(range(3), num_samples=0)
    with pytest.raises(ValueError, match="num_samples should be a positive integer"):
        RandomSampler([])


def test_subset_random_sampler():
    idx = [3, 8, 12, 40]
    g = jitorch.Generator()
    g.manual_seed(0)
    s = SubsetRandomSampler(idx, generator=g)
    out = list(s)
    assert sorted(out) == idx and len(s) == 4


def test_weighted_random_sampler():
    g = jitorch.Generator()
    g.manual_seed(0)
    w = [0.0, 1.0, 0.0, 3.0]
    s = WeightedRandomSampler(w, 400, generator=g)
    out = list(s)
    assert len(out) == 400 and len(s) == 400
    assert set(out) == {1, 3}
    assert 200 < out.count(3) < 380
    s2 = WeightedRandomSampler([1, 1, 1, 1, 0], 4, replacement=False, generator=g)
    assert sorted(s2) == [0, 1, 2, 3]
    with pytest.raises(RuntimeError):
        list(WeightedRandomSampler([1.0, 1.0], 3, replacement=False))
    with pytest.raises(ValueError, match="num_samples"):
        WeightedRandomSampler([1.0], 0)
    with pytest.raises(ValueError, match="replacement"):
        WeightedRandomSampler([1.0], 1, replacement=0)
    with pytest.raises(ValueError, match="1d sequence"):
        WeightedRandomSampler([[1.0, 2.0]], 1)
    # reproducible from a seeded generator
    ga, gb = jitorch.Generator(), jitorch.Generator()
    ga.manual_seed(5)
    gb.manual_seed(5)
    assert list(WeightedRandomSampler(w, 50, generator=ga)) == list(
        WeightedRandomSampler(w, 50, generator=gb))


@pytest.mark.parametrize("n", [0, 1, 9, 10, 11])
@pytest.mark.parametrize("bs", [1, 3, 10])
@pytest.mark.parametrize("drop_last", [False, True])
def test_batch_sampler_matches_torch(n, bs, drop_last):
    ours = BatchSampler(SequentialSampler(range(n)), bs, drop_last)
    ref = tdata.BatchSampler(tdata.SequentialSampler(range(n)), bs, drop_last)
    assert list(ours) == list(ref)
    assert len(ours) == len(ref)


def test_batch_sampler_errors():
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="batch_size should be a positive integer"):
            BatchSampler(range(3), bad, False)
    with pytest.raises(ValueError, match="drop_last should be a boolean"):
        BatchSampler(range(3), 2, 1)


# --------------------------------------------------------------------------
# datasets
# --------------------------------------------------------------------------

def test_tensor_dataset():
    x = jt_tensor(np.arange(12, dtype=np.float32).reshape(6, 2))
    y = jt_tensor(np.arange(6, dtype=np.int64))
    ds = TensorDataset(x, y)
    assert len(ds) == 6
    a, b = ds[4]
    assert a.numpy().tolist() == [8.0, 9.0] and int(b.item()) == 4
    with pytest.raises(AssertionError, match="Size mismatch"):
        TensorDataset(x, jt_tensor(np.arange(5)))


def test_concat_dataset():
    ds = ConcatDataset([list(range(3)), list(range(10, 14)), [99]])
    assert len(ds) == 8
    assert [ds[i] for i in range(8)] == [0, 1, 2, 10, 11, 12, 13, 99]
    assert ds[-1] == 99 and ds[-8] == 0
    assert ds.cumulative_sizes == [3, 7, 8]
    with pytest.raises(ValueError, match="absolute value of index"):
        ds[-9]
    with pytest.raises(AssertionError):
        ConcatDataset([])
    with pytest.raises(AssertionError):
        ConcatDataset([H.ShardedRange(0, 3)])
    both = H.SquareDataset(2) + H.SquareDataset(3)
    assert isinstance(both, ConcatDataset) and len(both) == 5


def test_chain_and_iterable_add():
    chained = H.ShardedRange(0, 3) + H.ShardedRange(10, 12)
    assert isinstance(chained, ChainDataset)
    assert list(chained) == [0, 1, 2, 10, 11]
    assert len(chained) == 5
    with pytest.raises(AssertionError):
        list(ChainDataset([[1, 2]]))


def test_subset_and_stack_dataset():
    base = list(range(100, 110))
    sub = Subset(base, [9, 0, 4])
    assert len(sub) == 3 and [sub[i] for i in range(3)] == [109, 100, 104]
    assert sub.__getitems__([2, 0]) == [104, 109]
    st = StackDataset(list("abc"), [1, 2, 3])
    assert st[1] == ("b", 2) and len(st) == 3
    assert st.__getitems__([0, 2]) == [("a", 1), ("c", 3)]
    sd = StackDataset(x=list("abc"), y=[1, 2, 3])
    assert sd[2] == {"x": "c", "y": 3}
    with pytest.raises(ValueError):
        StackDataset([1], [1, 2])


def test_base_dataset_errors():
    with pytest.raises(NotImplementedError):
        Dataset()[0]


@pytest.mark.parametrize("n,lengths", [
    (10, [3, 7]), (10, [0.3, 0.7]), (11, [0.5, 0.5]), (7, [0.2, 0.2, 0.6]),
    (100, [1 / 3, 1 / 3, 1 / 3]), (5, [0.1, 0.1, 0.8]), (13, [0.25] * 4), (1, [1.0]),
])
def test_random_split_lengths_match_torch(n, lengths):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = jitorch.Generator()
        g.manual_seed(0)
        ours = random_split(list(range(n)), lengths, generator=g)
        ref = tdata.random_split(list(range(n)), lengths, generator=torch.Generator().manual_seed(0))
    assert [len(s) for s in ours] == [len(s) for s in ref]
    everything = sorted(i for s in ours for i in s.indices)
    assert everything == list(range(n))


def test_random_split_reproducible_and_errors():
    def split(seed):
        g = jitorch.Generator()
        g.manual_seed(seed)
        return [s.indices for s in random_split(range(30), [10, 20], generator=g)]

    assert split(1) == split(1)
    assert split(1) != split(2)
    with pytest.raises(ValueError, match="Sum of input lengths"):
        random_split(range(10), [3, 3])
    with pytest.raises(ValueError, match="Fraction at index 0"):
        random_split(range(10), [-0.5, 1.5])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        random_split(range(2), [0.9, 0.05, 0.05])
    assert sorted(str(w.message)[:26] for w in caught) == [
        "Length of split at index 1", "Length of split at index 2"]
    jitorch.manual_seed(4)
    a = [s.indices for s in random_split(range(9), [4, 5])]
    jitorch.manual_seed(4)
    b = [s.indices for s in random_split(range(9), [4, 5])]
    assert a == b


# --------------------------------------------------------------------------
# collation
# --------------------------------------------------------------------------

Point = collections.namedtuple("Point", ["x", "y"])


def _collate_cases():
    return [
        [1, 2, 3],
        [1.5, 2.5],
        [True, False],
        [1, 2.5],
        ["a", "b"],
        [b"a", b"b"],
        [np.float32(1), np.float32(2)],
        [np.int32(1), np.int32(2)],
        [np.arange(3, dtype=np.float64), np.ones(3)],
        [np.zeros((2, 2), dtype=np.float16)] * 3,
        [{"a": 1, "b": (2.0, "s"), "c": [np.ones(2, dtype=np.int64)]}] * 2,
        [(1, 2.0), (3, 4.0)],
        [[1, 2], [3, 4]],
        [Point(1, 2.0), Point(3, 4.0)],
        [{"nested": {"deep": [1, (2, 3)]}}] * 3,
    ]


@pytest.mark.parametrize("case", range(len(_collate_cases())))
def test_default_collate_matches_torch(case):
    batch = _collate_cases()[case]
    assert to_py(default_collate(batch)) == to_py(tdata.default_collate(batch))


def test_default_collate_tensors():
    rows = [np.arange(4, dtype=np.float32) * i for i in range(5)]
    ours = default_collate([jt_tensor(r) for r in rows])
    ref = tdata.default_collate([torch.from_numpy(r) for r in rows])
    assert to_py(ours) == to_py(ref)
    mixed = [(jt_tensor(r), i) for i, r in enumerate(rows)]
    ref_mixed = [(torch.from_numpy(r), i) for i, r in enumerate(rows)]
    assert to_py(default_collate(mixed)) == to_py(tdata.default_collate(ref_mixed))
    with pytest.raises(RuntimeError, match="stack expects each tensor to be equal size"):
        default_collate([jt_tensor(np.zeros(3)), jt_tensor(np.zeros(2))])


def test_default_collate_errors():
    with pytest.raises(TypeError, match="found <class 'object'>"):
        default_collate([object(), object()])
    with pytest.raises(TypeError, match="found <U1"):
        default_collate([np.array(["a"]), np.array(["b"])])
    with pytest.raises(RuntimeError, match="each element in list of batch should be of equal size"):
        default_collate([[1, 2], [1]])


def test_default_convert_matches_torch():
    cases = [
        np.arange(3),
        np.float32(2.5),
        [np.zeros(2), (1, 2)],
        {"a": np.ones(1), "b": "s"},
        np.array(["x", "y"]),
        Point(np.ones(1), 3),
        "plain",
    ]
    for c in cases:
        ours, ref = default_convert(c), tdata.default_convert(c)
        if isinstance(ref, np.ndarray):
            assert isinstance(ours, np.ndarray)
            continue
        assert to_py(ours) == to_py(ref)
    t = jt_tensor(np.zeros(2))
    assert default_convert(t) is t


def test_collate_fn_map_extension():
    from jitorch.utils.data.collate import collate, default_collate_fn_map

    assert jitorch.Tensor in default_collate_fn_map

    def custom(batch, *, collate_fn_map):
        return "custom:" + ",".join(batch)

    m = dict(default_collate_fn_map)
    m[str] = custom
    assert collate([{"k": "a"}, {"k": "b"}], collate_fn_map=m) == {"k": "custom:a,b"}


# --------------------------------------------------------------------------
# DataLoader, single process
# --------------------------------------------------------------------------

def _batches(loader):
    return [to_py(b) for b in loader]


@pytest.mark.parametrize("bs,drop_last", [(1, False), (3, False), (3, True), (10, False), (11, True)])
def test_dataloader_matches_torch_sequential(bs, drop_last):
    ds = H.DictDataset(10)
    ours = DataLoader(ds, batch_size=bs, drop_last=drop_last)
    ref = tdata.DataLoader(ds, batch_size=bs, drop_last=drop_last)
    assert len(ours) == len(ref)
    assert _batches(ours) == _batches(ref)


def test_dataloader_tensor_dataset_matches_torch():
    x = np.random.RandomState(0).rand(23, 3, 2).astype(np.float32)
    y = np.arange(23)
    ours = DataLoader(TensorDataset(jt_tensor(x), jt_tensor(y)), batch_size=5)
    ref = tdata.DataLoader(tdata.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                           batch_size=5)
    assert _batches(ours) == _batches(ref)
    # the fast path through Subset gives the same as per-sample collation
    sub = Subset(TensorDataset(jt_tensor(x), jt_tensor(y)), [5, 0, 22, 7, 3, 3])
    fast = _batches(DataLoader(sub, batch_size=4))
    slow = _batches(DataLoader(sub, batch_size=4, collate_fn=lambda b: default_collate(b)))
    assert fast == slow


def test_dataloader_shuffle_epochs_and_generator():
    ds = list(range(20))
    g = jitorch.Generator()
    g.manual_seed(0)
    loader = DataLoader(ds, batch_size=4, shuffle=True, generator=g)
    e1 = [v for b in loader for v in b.tolist()]
    e2 = [v for b in loader for v in b.tolist()]
    assert sorted(e1) == ds and sorted(e2) == ds and e1 != e2
    g.manual_seed(0)
    assert [v for b in loader for v in b.tolist()] == e1


def test_dataloader_no_batching_and_custom_samplers():
    ds = H.DictDataset(4)
    ours = DataLoader(ds, batch_size=None)
    ref = tdata.DataLoader(ds, batch_size=None)
    assert len(ours) == 4
    assert _batches(ours) == _batches(ref)
    bsamp = [[3, 1], [0], [2, 2, 2]]
    ours = DataLoader(ds, batch_sampler=bsamp)
    ref = tdata.DataLoader(ds, batch_sampler=bsamp)
    assert len(ours) == 3 and _batches(ours) == _batches(ref)
    ours = DataLoader(ds, sampler=[3, 2, 1, 0], batch_size=3, collate_fn=H.list_collate)
    assert [[d["name"] for d in b] for b in ours] == [["s3", "s2", "s1"], ["s0"]]


def test_dataloader_argument_errors():
    ds = list(range(5))
    with pytest.raises(ValueError, match="num_workers option should be non-negative"):
        DataLoader(ds, num_workers=-1)
    with pytest.raises(ValueError, match="timeout option should be non-negative"):
        DataLoader(ds, timeout=-1)
    with pytest.raises(ValueError, match="prefetch_factor option could only be specified"):
        DataLoader(ds, prefetch_factor=2)
    with pytest.raises(ValueError, match="persistent_workers option needs num_workers > 0"):
        DataLoader(ds, persistent_workers=True)
    with pytest.raises(ValueError, match="sampler option is mutually exclusive with shuffle"):
        DataLoader(ds, sampler=[0], shuffle=True)
    with pytest.raises(ValueError, match="batch_sampler option is mutually exclusive"):
        DataLoader(ds, batch_sampler=[[0]], batch_size=2)
    with pytest.raises(ValueError, match="mutually exclusive with drop_last"):
        DataLoader(ds, batch_size=None, drop_last=True)
    with pytest.raises(ValueError, match="expected unspecified shuffle option"):
        DataLoader(H.ShardedRange(0, 3), shuffle=True)
    with pytest.raises(ValueError, match="expected unspecified sampler option"):
        DataLoader(H.ShardedRange(0, 3), sampler=[0])
    with pytest.raises(ValueError, match="multiprocessing_context can only be used"):
        DataLoader(ds, multiprocessing_context="spawn")
    loader = DataLoader(ds)
    with pytest.raises(ValueError, match="batch_size attribute should not be set"):
        loader.batch_size = 3


def test_dataloader_iterable_single_process():
    ds = H.ShardedRange(0, 10)
    loader = DataLoader(ds, batch_size=4)
    assert len(loader) == 3
    assert [b.tolist() for b in loader] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [b.tolist() for b in DataLoader(ds, batch_size=4, drop_last=True)] == [
        [0, 1, 2, 3], [4, 5, 6, 7]]
    # without batching, default_convert leaves Python ints alone (as torch)
    assert list(DataLoader(ds, batch_size=None)) == list(range(10))


def test_get_worker_info_in_main_process():
    assert get_worker_info() is None


def test_large_tensor_dataset_batches():
    # row i holds i + j/1000 (cheap to build, identifies the row)
    x = np.arange(60000, dtype=np.float32)[:, None] + np.arange(784, dtype=np.float32) / 1000
    y = np.arange(60000, dtype=np.int64) % 10
    ds = TensorDataset(jt_tensor(x), jt_tensor(y))
    n = 0
    last = None
    for xb, yb in DataLoader(ds, batch_size=64, shuffle=True):
        n += xb.shape[0]
        last = (xb, yb)
    assert n == 60000
    assert tuple(last[0].shape) == (60000 % 64, 784) and last[0].dtype == jitorch.float32
    assert last[1].dtype == jitorch.int64
    xb, yb = next(iter(DataLoader(ds, batch_size=64)))
    np.testing.assert_array_equal(xb.numpy(), x[:64])
    np.testing.assert_array_equal(yb.numpy(), y[:64])


# --------------------------------------------------------------------------
# DataLoader with worker processes
# --------------------------------------------------------------------------

def test_workers_same_batches_as_single_process():
    ds = H.SquareDataset(37)
    with deadline(60):
        for kwargs in ({"batch_size": 4}, {"batch_size": 5, "drop_last": True},
                       {"batch_size": None}):
            ref = _batches(DataLoader(ds, num_workers=0, **kwargs))
            got = _batches(DataLoader(ds, num_workers=2, **kwargs))
            assert got == ref
        g0, g2 = jitorch.Generator(), jitorch.Generator()
        g0.manual_seed(123)
        g2.manual_seed(123)
        ref = _batches(DataLoader(ds, batch_size=3, shuffle=True, generator=g0))
        got = _batches(DataLoader(ds, batch_size=3, shuffle=True, generator=g2, num_workers=2,
                                  prefetch_factor=3))
        assert got == ref


def test_workers_tensor_dataset_and_custom_collate():
    x = np.random.RandomState(1).rand(50, 3).astype(np.float32)
    ds = TensorDataset(jt_tensor(x), jt_tensor(np.arange(50)))
    with deadline(60):
        got = _batches(DataLoader(ds, batch_size=8, num_workers=2))
        assert got == _batches(DataLoader(ds, batch_size=8))
        sums = [int(b.item()) if b.numel() == 1 else None
                for b in DataLoader(list(range(10)), batch_size=3, num_workers=2,
                                    collate_fn=H.tensor_sum_collate)]
        assert sums == [3, 12, 21, 9]


def test_workers_large_tensor_dataset_via_shared_memory():
    # > 1 MiB tensors reach the workers through a memfd instead of a pipe
    x = np.random.RandomState(2).rand(1500, 300).astype(np.float32)
    ds = TensorDataset(jt_tensor(x), jt_tensor(np.arange(1500)))
    with deadline(60):
        got = _batches(DataLoader(ds, batch_size=256, num_workers=2))
    assert got == _batches(DataLoader(ds, batch_size=256))


def test_workers_in_order_false_yields_everything():
    ds = H.SquareDataset(20)
    with deadline(60):
        got = _batches(DataLoader(ds, batch_size=3, num_workers=2, in_order=False))
    ref = _batches(DataLoader(ds, batch_size=3))
    assert sorted(map(repr, got)) == sorted(map(repr, ref))


def test_worker_exception_names_worker():
    loader = DataLoader(H.RaisingDataset(10, bad=5), batch_size=2, num_workers=2)
    with deadline(60):
        it = iter(loader)
        assert next(it).tolist() == [0, 1]
        assert next(it).tolist() == [2, 3]
        with pytest.raises(ValueError) as info:
            next(it)
        msg = str(info.value)
        assert "DataLoader worker process 0" in msg
        assert "bad sample 5" in msg and "Traceback" in msg and "__getitem__" in msg
        # the iterator goes on after a failed batch, as torch's does
        assert next(it).tolist() == [6, 7]
        del it


def test_worker_init_fn_and_its_failure():
    with deadline(60):
        out = [v for b in DataLoader(H.InitCheckDataset(), batch_size=1, num_workers=2,
                                      worker_init_fn=H.record_worker_init) for v in b.tolist()]
        assert out == [0, 1, 0, 1]
        with pytest.raises(RuntimeError, match="init failed in 0"):
            list(DataLoader(H.InitCheckDataset(), num_workers=2,
                            worker_init_fn=H.failing_worker_init))


@pytest.mark.parametrize("how", ["exit", "kill"])
def test_worker_death_raises_not_hangs(how):
    loader = DataLoader(H.DyingDataset(20, bad=6, how=how), batch_size=2, num_workers=2)
    with deadline(30):
        t0 = time.monotonic()
        with pytest.raises(RuntimeError, match=r"DataLoader worker \(pid\(s\) \d+\) exited unexpectedly") as info:
            for _ in loader:
                pass
        assert time.monotonic() - t0 < 15
    if how == "exit":
        assert "exit code 7" in str(info.value)
    else:
        assert "SIGKILL" in str(info.value)


def test_timeout_raises():
    # the item takes 20 s: getting the error well before that shows the timeout fired (a wide
    # margin, since a loaded machine can delay the worker by seconds)
    loader = DataLoader(H.SlowDataset(4, delay=20.0), batch_size=1, num_workers=1, timeout=0.5)
    with deadline(60):
        it = iter(loader)
        t0 = time.monotonic()
        with pytest.raises(RuntimeError, match=r"DataLoader timed out after 0.5 seconds"):
            next(it)
        assert time.monotonic() - t0 < 15
        del it
    with pytest.raises(ValueError):
        iter(DataLoader([1, 2], timeout=1.0))


def test_persistent_workers():
    loader = DataLoader(H.PidDataset(12), batch_size=3, num_workers=2, persistent_workers=True)
    with deadline(60):
        pids = []
        for _ in range(3):
            batches = list(loader)
            assert [b[0].tolist() for b in batches] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]]
            pids.append({p for b in batches for p in b[1].tolist()})
        assert pids[0] == pids[1] == pids[2] and len(pids[0]) == 2
        # abandon an epoch half way: the next one still starts from the beginning
        it = iter(loader)
        next(it)
        assert [b[0].tolist() for b in loader][0] == [0, 1, 2]
        workers = list(loader._iterator._workers)
        assert all(w.is_alive() for w in workers)
        del loader, it, batches
        import gc
        gc.collect()
        for w in workers:
            w.join(5)
        assert not any(w.is_alive() for w in workers)


def test_non_persistent_workers_exit_after_epoch():
    loader = DataLoader(H.PidDataset(6), batch_size=2, num_workers=2)
    with deadline(60):
        it = iter(loader)
        list(it)
        assert not any(w.is_alive() for w in it._workers)
        # deleting an unfinished iterator also stops its workers
        it = iter(loader)
        next(it)
        workers = list(it._workers)
        del it
        import gc
        gc.collect()
        for w in workers:
            w.join(5)
        assert not any(w.is_alive() for w in workers)


def test_iterable_dataset_with_workers_sharding():
    with deadline(60):
        loader = DataLoader(H.ShardedRange(0, 23), batch_size=4, num_workers=2)
        got = [v for b in loader for v in b.tolist()]
        assert sorted(got) == list(range(23))
        # worker 0 owns 0..11, worker 1 owns 12..22; batches alternate between them
        first = [b.tolist() for b in DataLoader(H.ShardedRange(0, 23), batch_size=4,
                                                 num_workers=2)]
        assert first[0] == [0, 1, 2, 3] and first[1] == [12, 13, 14, 15]
        # unsharded: every worker yields a full replica
        items = [tuple(b) for b in DataLoader(H.UnshardedRange(5), batch_size=None,
                                              num_workers=2)]
        assert sorted(items) == sorted([(w, i) for w in (0, 1) for i in range(5)])
        # persistent workers restart the replicas every epoch
        loader = DataLoader(H.ShardedRange(0, 10), batch_size=3, num_workers=2,
                            persistent_workers=True)
        for _ in range(2):
            assert sorted(v for b in loader for v in b.tolist()) == list(range(10))


def test_worker_info_and_seeds():
    with deadline(60):
        g = jitorch.Generator()
        g.manual_seed(7)
        rows = [r for r in DataLoader(H.WorkerInfoDataset(8), batch_size=None, num_workers=2,
                                      generator=g)]
        by_worker = {}
        for r in rows:
            assert int(r["num_workers"]) == 2 and r["same_ds"]
            by_worker.setdefault(int(r["wid"]), []).append(r)
        assert set(by_worker) == {0, 1}
        seeds = {w: {int(r["seed"]) for r in rs} for w, rs in by_worker.items()}
        assert len(seeds[0]) == 1 and len(seeds[1]) == 1
        assert next(iter(seeds[1])) == next(iter(seeds[0])) + 1
        # python and numpy RNGs differ between workers
        assert float(by_worker[0][0]["py"]) != float(by_worker[1][0]["py"])
        assert float(by_worker[0][0]["np"]) != float(by_worker[1][0]["np"])
        # same generator seed -> same worker seeds and random streams
        g.manual_seed(7)
        again = [r for r in DataLoader(H.WorkerInfoDataset(8), batch_size=None, num_workers=2,
                                       generator=g)]
        assert [(float(a["py"]), float(a["np"]), int(a["seed"])) for a in rows] == [
            (float(b["py"]), float(b["np"]), int(b["seed"])) for b in again]


def test_numba_parallel_in_parent_then_workers():
    data = np.ones(1_000_000, dtype=np.float64)
    assert H.parallel_sum(data) == 500000.0  # parent runs a parallel region first
    with deadline(120):
        loader = DataLoader(H.ParallelKernelDataset(6), batch_size=2, num_workers=2)
        out = [v for b in loader for v in b.tolist()]
    assert out == [500000.0 + i for i in range(6)]
    assert H.parallel_sum(data) == 500000.0  # and the parent still can afterwards


def test_default_start_method_is_not_fork():
    from jitorch.utils.data.dataloader import _default_start_method, _get_context

    assert _default_start_method() in ("forkserver", "spawn")
    assert _get_context(None).get_start_method() in ("forkserver", "spawn")
    assert _get_context("spawn").get_start_method() == "spawn"


@pytest.mark.slow
def test_spawn_start_method():
    # a fresh interpreter per worker: seconds of jitorch import, hence slow
    loader = DataLoader(H.SquareDataset(5), batch_size=2, num_workers=2,
                        multiprocessing_context="spawn")
    with deadline(120):
        assert _batches(loader) == _batches(DataLoader(H.SquareDataset(5), batch_size=2))


def test_tensor_pickles_across_processes():
    from multiprocessing.reduction import ForkingPickler
    import pickle

    jdata.worker.register_tensor_pickling()
    t = jt_tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    back = pickle.loads(ForkingPickler.dumps({"t": t, "l": [t]}))
    assert isinstance(back["t"], jitorch.Tensor)
    assert back["t"].dtype == jitorch.float32
    np.testing.assert_array_equal(back["l"][0].numpy(), t.numpy())
