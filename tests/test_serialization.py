"""jitorch.save / jitorch.load: round trips, the archive layout, and hostile files."""
from __future__ import annotations

import io
import json
import math
import pickle
import struct
import zipfile
from collections import OrderedDict, namedtuple

import numpy as np
import pytest

import jitorch
from jitorch.serialization import FORMAT_NAME, FORMAT_VERSION, MAX_DEPTH, load, save

DTYPES = ["float32", "float64", "float16", "int8", "int16", "int32", "int64", "uint8", "bool"]
SHAPES = [(), (0,), (5,), (2, 3), (2, 0, 4), (1, 2, 3, 2)]
INVALID = "is not a valid jitorch checkpoint"


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy()


def _sample(dtype: str, shape: tuple) -> np.ndarray:
    rng = np.random.default_rng(sum(shape) * 31 + len(dtype))
    if dtype == "bool":
        return np.asarray(rng.random(shape) < 0.5)
    if dtype.startswith("float"):
        return np.asarray(rng.standard_normal(shape) * 100, dtype=dtype)
    info = np.iinfo(dtype)
    return np.asarray(rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True))


def _roundtrip(obj, **load_kwargs):
    buf = io.BytesIO()
    save(obj, buf)
    buf.seek(0)
    return load(buf, **load_kwargs)


def _checkpoint_bytes(obj) -> bytes:
    buf = io.BytesIO()
    save(obj, buf)
    return buf.getvalue()


def _assert_same_tensor(a, b) -> None:
    assert a.dtype is b.dtype
    assert tuple(a.shape) == tuple(b.shape)
    x, y = _np(a), _np(b)
    # bit patterns, so NaNs and -0.0 count too
    assert x.tobytes() == np.ascontiguousarray(y).tobytes()


# ---------------------------------------------------------------------------
# tensors
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_tensor_roundtrip_every_dtype_and_shape(dtype, shape):
    t = jitorch.from_numpy(_sample(dtype, shape))
    out = _roundtrip(t)
    assert isinstance(out, jitorch.Tensor)
    assert out.dtype is getattr(jitorch, dtype)
    assert tuple(out.shape) == shape
    _assert_same_tensor(out, t)
    assert not out.requires_grad


def test_float_special_values_survive():
    arr = np.array([np.nan, np.inf, -np.inf, -0.0, 1e-45, np.finfo(np.float32).max], dtype=np.float32)
    out = _roundtrip(jitorch.from_numpy(arr))
    assert _np(out).tobytes() == arr.tobytes()
    half = np.array([65504, -65504, 6e-8, np.nan], dtype=np.float16)
    assert _np(_roundtrip(jitorch.from_numpy(half))).tobytes() == half.tobytes()


def test_loaded_tensor_owns_writable_memory():
    t = jitorch.tensor([1.0, 2.0, 3.0])
    out = _roundtrip(t)
    _np(out)[0] = 42.0
    assert _np(t)[0] == 1.0
    assert _np(out)[0] == 42.0


def test_requires_grad_flag_roundtrip():
    a = jitorch.tensor([1.0, 2.0], requires_grad=True) if _accepts_requires_grad() else \
        jitorch.tensor([1.0, 2.0]).requires_grad_(True)
    out = _roundtrip({"a": a, "b": jitorch.tensor([3.0])})
    assert out["a"].requires_grad is True
    assert out["b"].requires_grad is False


def _accepts_requires_grad() -> bool:
    try:
        jitorch.tensor([1.0], requires_grad=True)
    except TypeError:
        return False
    return True


def test_parameter_roundtrip_keeps_class_and_flag():
    Parameter = getattr(pytest.importorskip("jitorch.nn"), "Parameter", None)
    if Parameter is None:
        pytest.skip("jitorch.nn.Parameter is not available yet")
    p = Parameter(jitorch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    frozen = Parameter(jitorch.tensor([5.0]), requires_grad=False)
    out = _roundtrip({"w": p, "frozen": frozen})
    assert isinstance(out["w"], Parameter) and out["w"].requires_grad
    assert isinstance(out["frozen"], Parameter) and not out["frozen"].requires_grad
    _assert_same_tensor(out["w"], p)


def test_same_tensor_object_loads_as_one_object():
    t = jitorch.tensor([1.0, 2.0])
    out = _roundtrip({"a": t, "b": [t, (t,)], "c": jitorch.tensor([1.0, 2.0])})
    assert out["a"] is out["b"][0] is out["b"][1][0]
    assert out["c"] is not out["a"]  # equal values, different objects
    manifest = _manifest(_checkpoint_bytes({"a": t, "b": t}))
    assert len(manifest["tensors"]) == 1


def test_views_are_saved_compactly_and_independently():
    base = jitorch.from_numpy(np.arange(12, dtype=np.float32).reshape(3, 4))
    row = base[1]
    transposed = base.permute(1, 0)
    assert not transposed.is_contiguous()
    out = _roundtrip({"base": base, "row": row, "t": transposed})
    np.testing.assert_array_equal(_np(out["row"]), [4, 5, 6, 7])
    np.testing.assert_array_equal(_np(out["t"]), np.arange(12).reshape(3, 4).T)
    assert out["t"].is_contiguous()
    # Views don't share storage after loading (documented).
    _np(out["base"])[1, 0] = -1.0
    assert _np(out["row"])[0] == 4.0


def test_small_view_of_big_tensor_stores_only_the_view():
    big = jitorch.from_numpy(np.zeros((1000, 1000), dtype=np.float32))
    data = _checkpoint_bytes(big[3])
    assert len(data) < 10_000


# ---------------------------------------------------------------------------
# containers and scalars
# ---------------------------------------------------------------------------

def test_nested_containers_and_scalars_keep_their_types():
    obj = {
        "none": None, "t": True, "f": False, "int": -7, "big": 2**100, "float": 0.1, "negzero": -0.0,
        "inf": float("inf"), "ninf": float("-inf"), "str": "héllo ✓", "bytes": b"\x00\xffraw",
        "list": [1, [2, [3, []]], ()], "tuple": (1, (2.5, "x"), {}),
        "od": OrderedDict([("z", 1), ("a", 2)]),
        5: "int key", (1, "k"): "tuple key", None: "none key", 2.5: "float key", False: "bool key",
    }
    out = _roundtrip(obj)
    assert out == obj
    assert list(out) == list(obj)  # insertion order
    assert type(out["od"]) is OrderedDict and list(out["od"]) == ["z", "a"]
    assert type(out["tuple"]) is tuple and type(out["tuple"][1]) is tuple and type(out["list"]) is list
    assert type(out["t"]) is bool and type(out["int"]) is int
    assert math.copysign(1.0, out["negzero"]) == -1.0
    assert math.isnan(_roundtrip(float("nan")))


@pytest.mark.parametrize("obj", [None, 0, 1.5, "", b"", [], (), {}, OrderedDict()], ids=repr)
def test_top_level_scalars_and_empty_containers(obj):
    out = _roundtrip(obj)
    assert out == obj and type(out) is type(obj)


def test_dtype_and_device_objects_roundtrip():
    out = _roundtrip({"dtype": jitorch.float16, "dtypes": [jitorch.int64, jitorch.bool]})
    assert out["dtype"] is jitorch.float16
    assert out["dtypes"][0] is jitorch.int64 and out["dtypes"][1] is jitorch.bool
    if isinstance(getattr(jitorch, "device", None), type):
        dev = _roundtrip(jitorch.device("cpu"))
        assert isinstance(dev, jitorch.device) and str(dev) == "cpu"


def test_size_loads_as_tuple():
    shape = jitorch.zeros(2, 3).shape
    out = _roundtrip({"shape": shape})
    assert out["shape"] == (2, 3) and type(out["shape"]) is tuple


def test_optimizer_style_state_dict_roundtrip():
    state = {
        "state": {0: {"step": jitorch.tensor(3.0), "exp_avg": jitorch.tensor([0.1, 0.2]),
                      "exp_avg_sq": jitorch.tensor([0.01, 0.04])},
                  1: {"step": jitorch.tensor(3.0), "momentum_buffer": None}},
        "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0,
                          "amsgrad": False, "foreach": None, "params": [0, 1]}],
    }
    out = _roundtrip(state)
    assert list(out["state"]) == [0, 1]
    assert out["param_groups"] == state["param_groups"]
    _assert_same_tensor(out["state"][0]["step"], state["state"][0]["step"])
    assert out["state"][0]["step"].shape == ()
    _assert_same_tensor(out["state"][0]["exp_avg_sq"], state["state"][0]["exp_avg_sq"])


def test_module_and_optimizer_state_dicts_roundtrip():
    nn = pytest.importorskip("jitorch.nn")
    optim = pytest.importorskip("jitorch.optim")
    if not hasattr(nn, "Linear") or not hasattr(optim, "Adam"):
        pytest.skip("jitorch.nn.Linear / jitorch.optim.Adam are not available yet")
    jitorch.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = optim.Adam(model.parameters(), lr=0.01)
    model(jitorch.rand(4, 3)).sum().backward()
    opt.step()
    ckpt = _roundtrip({"model": model.state_dict(), "optim": opt.state_dict(), "epoch": 1})
    fresh = nn.Linear(3, 2)
    fresh.load_state_dict(ckpt["model"])
    for name, value in model.state_dict().items():
        _assert_same_tensor(fresh.state_dict()[name], value)
    opt2 = optim.Adam(fresh.parameters(), lr=0.5)
    opt2.load_state_dict(ckpt["optim"])
    assert opt2.param_groups[0]["lr"] == 0.01


# ---------------------------------------------------------------------------
# what can't be saved
# ---------------------------------------------------------------------------

Point = namedtuple("Point", "x y")


class Custom:
    pass


@pytest.mark.parametrize("obj, name", [
    (object(), "object"), ({1, 2}, "set"), (Custom(), "Custom"), (Point(1, 2), "Point"),
    (np.zeros(3), "ndarray"), (np.float64(1.0), "float64"), (1 + 2j, "complex"), (len, "builtin_function"),
    ({"ok": [1, {"bad": frozenset()}]}, "frozenset"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_unsupported_types_raise_type_error_naming_the_type(obj, name):
    with pytest.raises(TypeError, match=name):
        save(obj, io.BytesIO())


def test_unsupported_type_error_names_where_it_is():
    with pytest.raises(TypeError, match=r"obj\['ok'\]\[1\]\['bad'\]"):
        save({"ok": [1, {"bad": object()}]}, io.BytesIO())


def test_module_hint_suggests_state_dict():
    class FakeModule:
        def state_dict(self):
            return {}

    with pytest.raises(TypeError, match="state_dict"):
        save(FakeModule(), io.BytesIO())


def test_failed_save_leaves_existing_file_untouched(tmp_path):
    path = tmp_path / "ckpt.jt"
    save({"x": 1}, path)
    before = path.read_bytes()
    with pytest.raises(TypeError):
        save({"x": object()}, path)
    assert path.read_bytes() == before


def test_cyclic_containers_are_rejected():
    loop: list = [1]
    loop.append(loop)
    with pytest.raises(ValueError, match="itself"):
        save(loop, io.BytesIO())
    shared = [1, 2]
    assert _roundtrip([shared, shared]) == [[1, 2], [1, 2]]  # repeated, not cyclic: fine


def test_too_deep_nesting_is_rejected_on_save():
    obj: list = []
    for _ in range(MAX_DEPTH + 5):
        obj = [obj]
    with pytest.raises(ValueError, match="nested"):
        save(obj, io.BytesIO())


# ---------------------------------------------------------------------------
# files, paths, streams
# ---------------------------------------------------------------------------

def test_str_and_pathlike_paths(tmp_path):
    t = jitorch.tensor([1.0, 2.0])
    save({"t": t}, str(tmp_path / "a.pt"))
    save({"t": t}, tmp_path / "b.pt")
    _assert_same_tensor(load(str(tmp_path / "a.pt"))["t"], t)
    _assert_same_tensor(load(tmp_path / "b.pt")["t"], t)


def test_open_file_objects(tmp_path):
    path = tmp_path / "c.pt"
    with open(path, "wb") as fh:
        save([1, jitorch.tensor([7])], fh)
    with open(path, "rb") as fh:
        out = load(fh)
    assert out[0] == 1 and _np(out[1]).tolist() == [7]


def test_bytesio_and_non_seekable_streams():
    data = _checkpoint_bytes({"v": jitorch.tensor([1, 2, 3])})

    class Pipe(io.RawIOBase):  # readable, not seekable, like a socket or stdin
        def __init__(self, payload: bytes) -> None:
            self._src = io.BytesIO(payload)

        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:
            chunk = self._src.read(len(b))
            b[:len(chunk)] = chunk
            return len(chunk)

    assert _np(load(io.BytesIO(data))["v"]).tolist() == [1, 2, 3]
    assert _np(load(io.BufferedReader(Pipe(data)))["v"]).tolist() == [1, 2, 3]


def test_save_to_non_seekable_stream():
    class Sink(io.RawIOBase):
        def __init__(self) -> None:
            self.data = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, b) -> int:
            self.data += bytes(b)
            return len(b)

    sink = Sink()
    save({"v": jitorch.tensor([1.5, 2.5])}, sink)
    assert _np(load(io.BytesIO(bytes(sink.data)))["v"]).tolist() == [1.5, 2.5]


def test_missing_path_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nope.pt")


def test_bad_f_arguments():
    with pytest.raises(TypeError):
        save(1, 123)
    with pytest.raises(TypeError):
        load(123)


def test_saving_is_deterministic():
    obj = {"a": jitorch.tensor([1.0, 2.0]), "b": [1, "x"]}
    assert _checkpoint_bytes(obj) == _checkpoint_bytes(obj)


def test_weights_only_and_pickle_arguments_are_accepted():
    data = _checkpoint_bytes([1, 2])
    assert load(io.BytesIO(data), weights_only=False) == [1, 2]
    assert load(io.BytesIO(data), weights_only=True) == [1, 2]
    buf = io.BytesIO()
    save([1], buf, pickle_protocol=2, _use_new_zipfile_serialization=True)
    assert load(io.BytesIO(buf.getvalue())) == [1]


def test_load_never_unpickles(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("pickle was used")

    monkeypatch.setattr(pickle, "loads", boom)
    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(pickle, "Unpickler", boom)
    out = _roundtrip({"t": jitorch.tensor([1.0]), "n": [1, (2, None)]})
    assert out["n"] == [1, (2, None)]


# ---------------------------------------------------------------------------
# map_location
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("where", [None, "cpu", {"cpu": "cpu"}, {"cuda:0": "cpu"}, "device"])
def test_map_location_forms(where):
    if where == "device":
        if not isinstance(getattr(jitorch, "device", None), type):
            pytest.skip("jitorch.device is not available")
        where = jitorch.device("cpu")
    out = _roundtrip({"t": jitorch.tensor([1.0, 2.0])}, map_location=where)
    assert str(out["t"].device) == "cpu"
    assert _np(out["t"]).tolist() == [1.0, 2.0]


def test_map_location_callable_sees_tensor_and_saved_device():
    seen = []

    def hook(tensor, location):
        seen.append((tuple(tensor.shape), location))
        return tensor if location == "cpu" else None

    out = _roundtrip([jitorch.tensor([1.0]), jitorch.tensor([[2]])], map_location=hook)
    assert seen == [((1,), "cpu"), ((1, 1), "cpu")]
    assert _np(out[1]).tolist() == [[2]]
    # returning None means "the default place"
    out = _roundtrip([jitorch.tensor([3.0])], map_location=lambda storage, loc: None)
    assert _np(out[0]).tolist() == [3.0]


def test_map_location_dict_remaps_saved_device():
    data = _edit_manifest(_checkpoint_bytes([jitorch.tensor([1.0])]),
                          lambda m: m["tensors"][0].update(device="cuda:1"))
    out = load(io.BytesIO(data), map_location={"cuda:1": "cpu"})
    assert str(out[0].device) == "cpu" and _np(out[0]).tolist() == [1.0]
    out = load(io.BytesIO(data), map_location="cpu")
    assert str(out[0].device) == "cpu"


def test_bad_map_location_type():
    with pytest.raises(TypeError, match="map_location"):
        load(io.BytesIO(_checkpoint_bytes(1)), map_location=3.5)


# ---------------------------------------------------------------------------
# the archive layout (docs/serialization.md)
# ---------------------------------------------------------------------------

def _manifest(data: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return json.loads(zf.read("manifest.json"))


def test_archive_layout_matches_the_documentation():
    t = jitorch.tensor([[1.0, 2.0]])
    data = _checkpoint_bytes({"w": t, "n": 3})
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.namelist() == ["manifest.json", "data/0.npy"]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
        arr = np.lib.format.read_array(io.BytesIO(zf.read("data/0.npy")), allow_pickle=False)
    np.testing.assert_array_equal(arr, [[1.0, 2.0]])
    manifest = _manifest(data)
    assert manifest["format"] == FORMAT_NAME == "jitorch.checkpoint"
    assert manifest["version"] == FORMAT_VERSION == 1
    assert manifest["tensors"] == [{"file": "data/0.npy", "dtype": "float32", "shape": [1, 2],
                                    "requires_grad": False, "parameter": False, "device": "cpu"}]
    assert manifest["root"] == {"type": "dict", "items": [
        [{"type": "str", "value": "w"}, {"type": "tensor", "index": 0}],
        [{"type": "str", "value": "n"}, {"type": "int", "value": 3}],
    ]}


def test_array_data_is_64_byte_aligned():
    tensors = [jitorch.from_numpy(_sample(d, (3, 5))) for d in DTYPES]
    data = _checkpoint_bytes(tensors)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                continue
            name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
            start = info.header_offset + 30 + name_len + extra_len
            with zf.open(info) as fp:
                np.lib.format.read_magic(fp)
                np.lib.format.read_array_header_1_0(fp)
                array_start = start + fp.tell()
            assert start % 64 == 0 and array_start % 64 == 0, info.filename


def test_torch_cannot_read_jitorch_checkpoints_and_vice_versa(tmp_path):
    torch = pytest.importorskip("torch")
    save({"t": jitorch.tensor([1.0])}, tmp_path / "ours.pt")
    with pytest.raises(Exception):  # noqa: B017 - whatever torch raises, it must not load
        torch.load(tmp_path / "ours.pt", weights_only=True)
    torch.save({"t": torch.tensor([1.0])}, tmp_path / "theirs.pt")
    with pytest.raises(RuntimeError, match="torch.save"):
        load(tmp_path / "theirs.pt")


# ---------------------------------------------------------------------------
# damaged and hostile files
# ---------------------------------------------------------------------------

def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
    return buf.getvalue()


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=True)
    return buf.getvalue()


def _edit_manifest(data: bytes, edit) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    manifest = json.loads(members["manifest.json"])
    edit(manifest)
    members["manifest.json"] = json.dumps(manifest).encode()
    return _zip(members)


def _load_bytes(data: bytes):
    return load(io.BytesIO(data))


def _one_tensor_manifest(**entry) -> dict:
    base = {"file": "data/0.npy", "dtype": "float32", "shape": [2], "requires_grad": False,
            "parameter": False, "device": "cpu"}
    base.update(entry)
    return {"format": FORMAT_NAME, "version": 1, "tensors": [base], "root": {"type": "tensor", "index": 0}}


@pytest.mark.parametrize("payload, hint", [
    (b"", "empty"),
    (b"this is definitely not a checkpoint" * 10, ""),
    (b"\x80\x02}q\x00.", "pickle"),
    (_npy(np.zeros(3)), "numpy.load"),
])
def test_non_zip_files(payload, hint):
    with pytest.raises(RuntimeError, match=INVALID) as info:
        _load_bytes(payload)
    assert hint in str(info.value)


def test_error_message_names_the_path(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"junk")
    with pytest.raises(RuntimeError, match=r"junk\.pt' is not a valid jitorch checkpoint"):
        load(path)


def test_every_truncation_is_a_clear_error():
    data = _checkpoint_bytes({"a": jitorch.tensor([1.0, 2.0, 3.0]), "b": [1, "x"]})
    for cut in range(len(data)):
        with pytest.raises(RuntimeError, match=INVALID):
            _load_bytes(data[:cut])


def test_corrupted_bytes_never_escape_as_other_errors():
    obj = {"a": jitorch.tensor([1.0, 2.0, 3.0]), "b": [1, "x"], "c": jitorch.tensor([True])}
    data = _checkpoint_bytes(obj)
    for pos in range(len(data)):
        damaged = bytearray(data)
        damaged[pos] ^= 0xFF
        try:
            _load_bytes(bytes(damaged))
        except RuntimeError as e:
            assert INVALID in str(e), (pos, e)
        # loading successfully is fine too: e.g. a flipped timestamp is harmless


def test_corrupted_array_data_fails_the_crc():
    data = bytearray(_checkpoint_bytes(jitorch.from_numpy(np.arange(100, dtype=np.int64))))
    data[data.index(np.int64(50).tobytes())] ^= 1
    with pytest.raises(RuntimeError, match="CRC"):
        _load_bytes(bytes(data))


def test_zip_without_manifest():
    with pytest.raises(RuntimeError, match="no manifest.json"):
        _load_bytes(_zip({"data/0.npy": _npy(np.zeros(2, np.float32))}))


def test_torch_style_zip_gets_a_specific_hint():
    with pytest.raises(RuntimeError, match="torch.save"):
        _load_bytes(_zip({"archive/data.pkl": b"\x80\x02.", "archive/version": b"3"}))


def test_compressed_members_are_rejected():
    good = _checkpoint_bytes([1])
    with zipfile.ZipFile(io.BytesIO(good)) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    with pytest.raises(RuntimeError, match="compressed"):
        _load_bytes(_zip(members, compression=zipfile.ZIP_DEFLATED))


@pytest.mark.parametrize("manifest, match", [
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    (b"[1, 2]", "JSON object"),
    (json.dumps({"format": "other", "version": 1, "tensors": [], "root": {"type": "none"}}).encode(), "format"),
    (json.dumps({"format": FORMAT_NAME, "version": 99, "tensors": [], "root": {"type": "none"}}).encode(), "newer"),
    (json.dumps({"format": FORMAT_NAME, "version": "1", "tensors": [], "root": {"type": "none"}}).encode(), "version"),
    (json.dumps({"format": FORMAT_NAME, "version": 1, "root": {"type": "none"}}).encode(), "tensors"),
    (json.dumps({"format": FORMAT_NAME, "version": 1, "tensors": []}).encode(), "root"),
    (b'{"format": "jitorch.checkpoint", "version": 1, "tensors": [], "root": {"type": "float", "value": NaN}}',
     "NaN"),
    (b"[" * 100_000 + b"]" * 100_000, "Recursion|JSON object|nested"),
])
def test_malformed_manifest_headers(manifest, match):
    with pytest.raises(RuntimeError, match=INVALID) as info:
        _load_bytes(_zip({"manifest.json": manifest}))
    assert __import__("re").search(match, str(info.value)), str(info.value)


def _hostile(root=None, **entry) -> bytes:
    manifest = _one_tensor_manifest(**entry)
    if root is not None:
        manifest["root"] = root
    return _zip({"manifest.json": json.dumps(manifest).encode(), "data/0.npy": _npy(np.zeros(2, np.float32))})


@pytest.mark.parametrize("entry, match", [
    ({"file": "../../etc/passwd"}, "invalid member"),
    ({"file": "/etc/passwd"}, "invalid member"),
    ({"file": "data/../manifest.json"}, "invalid member"),
    ({"file": "data/7.npy"}, "missing"),
    ({"file": None}, "invalid member"),
    ({"shape": [10**12, 10**12]}, "shape"),
    ({"shape": [-1]}, "invalid shape"),
    ({"shape": [2.0]}, "invalid shape"),
    ({"shape": "2"}, "invalid shape"),
    ({"shape": [1] * 65}, "invalid shape"),
    ({"shape": [3]}, "shape"),
    ({"dtype": "object"}, "unsupported dtype"),
    ({"dtype": "int32"}, "manifest says int32"),
    ({"dtype": None}, "unsupported dtype"),
    ({"requires_grad": "yes"}, "requires_grad"),
    ({"parameter": 1}, "parameter"),
    ({"device": 0}, "device"),
])
def test_hostile_tensor_entries(entry, match):
    with pytest.raises(RuntimeError, match=INVALID) as info:
        _load_bytes(_hostile(**entry))
    assert match in str(info.value), str(info.value)


@pytest.mark.parametrize("root, match", [
    ({"type": "os.system", "value": "rm -rf /"}, "unknown object type"),
    ({"type": "pickle"}, "unknown object type"),
    ({"value": 1}, "malformed"),
    ("just a string", "malformed"),
    ({"type": "tensor", "index": 5}, "out of range"),
    ({"type": "tensor", "index": -1}, "out of range"),
    ({"type": "tensor", "index": True}, "out of range"),
    ({"type": "int", "value": "12"}, "invalid int"),
    ({"type": "bool", "value": 1}, "invalid bool"),
    ({"type": "float", "value": "1e5"}, "invalid float"),
    ({"type": "bytes", "value": "***"}, "base64"),
    ({"type": "dtype", "name": "__class__"}, "unknown dtype"),
    ({"type": "list"}, "items"),
    ({"type": "dict", "items": [[{"type": "none"}]]}, "pair"),
    ({"type": "dict", "items": [[{"type": "list", "items": []}, {"type": "none"}]]}, "unhashable"),
    ({"type": "dict", "items": [[{"type": "tuple", "items": [{"type": "dict", "items": []}]},
                                 {"type": "none"}]]}, "unhashable"),
])
def test_hostile_object_trees(root, match):
    with pytest.raises(RuntimeError, match=INVALID) as info:
        _load_bytes(_hostile(root=root))
    assert match in str(info.value), str(info.value)


def test_deep_object_tree_is_rejected():
    root: dict = {"type": "none"}
    for _ in range(MAX_DEPTH + 10):
        root = {"type": "list", "items": [root]}
    with pytest.raises(RuntimeError, match="nested"):
        _load_bytes(_hostile(root=root))


def test_object_dtype_npy_is_refused_without_unpickling(monkeypatch):
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("unpickled"))
    payload = _npy(np.array([{"evil": 1}, None], dtype=object))
    data = _zip({"manifest.json": json.dumps(_one_tensor_manifest()).encode(), "data/0.npy": payload})
    with pytest.raises(RuntimeError, match="object|manifest says"):
        _load_bytes(data)


def test_npy_with_lying_size_is_refused_before_allocating():
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10**15,)})
    manifest = _one_tensor_manifest(shape=[10**15])
    data = _zip({"manifest.json": json.dumps(manifest).encode(), "data/0.npy": header.getvalue() + b"\0" * 8})
    with pytest.raises(RuntimeError, match="data bytes"):
        _load_bytes(data)


def test_npy_header_garbage():
    manifest = json.dumps(_one_tensor_manifest()).encode()
    payloads = (b"", b"\x93NUMPY", b"\x93NUMPY\x09\x00" + b"x" * 20, b"\x93NUMPY\x01\x00\x10\x00{'descr': 1}    \n")
    for payload in payloads:
        with pytest.raises(RuntimeError, match=INVALID):
            _load_bytes(_zip({"manifest.json": manifest, "data/0.npy": payload}))


def test_big_endian_npy_from_another_writer_is_accepted():
    arr = np.array([1.5, -2.0], dtype=">f4")
    data = _zip({"manifest.json": json.dumps(_one_tensor_manifest()).encode(), "data/0.npy": _npy(arr)})
    out = _load_bytes(data)
    assert out.dtype is jitorch.float32 and _np(out).tolist() == [1.5, -2.0]


def test_fortran_order_npy_is_accepted():
    arr = np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    manifest = _one_tensor_manifest(shape=[2, 3])
    out = _load_bytes(_zip({"manifest.json": json.dumps(manifest).encode(), "data/0.npy": _npy(arr)}))
    np.testing.assert_array_equal(_np(out), arr)
