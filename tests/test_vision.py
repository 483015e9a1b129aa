"""jitorch.vision: IDX datasets, the scikit-learn digits, and transforms (checked against torch)."""
from __future__ import annotations

import gzip
import os
import struct
import sys
from enum import Enum

import numpy as np
import pytest

import jitorch
from jitorch.vision import datasets, transforms as T
from jitorch.vision.datasets import read_idx


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy()


def _tensor(arr: np.ndarray):
    return jitorch.from_numpy(np.array(arr, order="C", copy=True))


# ---------------------------------------------------------------------------
# IDX files
# ---------------------------------------------------------------------------

_IDX_CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype(">i2"): 0x0B,
              np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


def write_idx(path, arr: np.ndarray, compress: bool = False, magic: int | None = None) -> str:
    """Write ``arr`` as an IDX file (big-endian), optionally gzipped."""
    arr = np.asarray(arr)
    big = arr.dtype.newbyteorder(">") if arr.dtype.itemsize > 1 else arr.dtype
    if magic is None:
        magic = (_IDX_CODES[big] << 8) | arr.ndim
    payload = struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(big).tobytes()
    path = os.fspath(path)
    if compress:
        path += ".gz"
        payload = gzip.compress(payload)
    with open(path, "wb") as fh:
        fh.write(payload)
    return path


def fake_mnist(folder, n_train: int = 7, n_test: int = 3, compress: bool = False, seed: int = 0):
    """Tiny but well-formed MNIST files; returns the arrays written."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        write_idx(os.path.join(folder, f"{split}-images-idx3-ubyte"), images, compress)
        write_idx(os.path.join(folder, f"{split}-labels-idx1-ubyte"), labels, compress)
        out[split] = (images, labels)
    return out


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("dtype", ["u1", "i1", ">i2", ">i4", ">f4", ">f8"])
def test_read_idx_roundtrip(tmp_path, dtype, compress):
    arr = np.arange(24).reshape(2, 3, 4)
    arr = arr.astype(dtype) if dtype == "u1" else (arr - 5).astype(dtype)
    path = write_idx(tmp_path / "x-idx3", arr, compress)
    out = read_idx(path)
    assert out.shape == (2, 3, 4) and out.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(out, arr)
    assert out.flags.writeable


def test_read_idx_rejects_bad_files(tmp_path):
    cases = {
        "short": b"\x00\x00",
        "magic": b"\x12\x34\x08\x01" + b"\x00" * 8,
        "type": b"\x00\x00\x07\x01\x00\x00\x00\x01\x00",
        "header": b"\x00\x00\x08\x03\x00\x00\x00\x02",
        "truncated": b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02",
        "trailing": b"\x00\x00\x08\x01\x00\x00\x00\x01\x01\x02",
        "badgz": b"\x1f\x8b\x08\x00garbage",
    }
    expected = {"short": "only 2 bytes", "magic": "bad magic number 0x12340801", "type": "bad magic",
                "header": "truncated", "truncated": "needs 5", "trailing": "needs 1", "badgz": "gzip"}
    for name, payload in cases.items():
        path = tmp_path / name
        path.write_bytes(payload)
        with pytest.raises(RuntimeError, match=expected[name]):
            read_idx(path)


@pytest.mark.parametrize("layout", ["MNIST/raw", "MNIST", "."])
@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_mnist_reads_torchvision_layouts(tmp_path, layout, compress):
    written = fake_mnist(tmp_path / layout, compress=compress)
    for train, split in ((True, "train"), (False, "t10k")):
        ds = datasets.MNIST(tmp_path, train=train)
        images, labels = written[split]
        assert len(ds) == len(labels)
        assert ds.data.dtype is jitorch.uint8 and tuple(ds.data.shape) == (len(labels), 28, 28)
        assert ds.targets.dtype is jitorch.int64
        np.testing.assert_array_equal(_np(ds.data), images)
        np.testing.assert_array_equal(_np(ds.targets), labels)
        image, target = ds[1]
        assert isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.shape == (28, 28)
        np.testing.assert_array_equal(image, images[1])
        assert type(target) is int and target == labels[1]
        assert ds[-1][1] == labels[-1]
    assert ds.classes[3] == "3 - three" and ds.class_to_idx["3 - three"] == 3


def test_mnist_accepts_pathlike_and_str_roots_and_dotted_names(tmp_path):
    folder = tmp_path / "MNIST" / "raw"
    written = fake_mnist(folder)
    for name in os.listdir(folder):
        os.rename(folder / name, folder / name.replace("-idx", ".idx"))
    ds = datasets.MNIST(str(tmp_path), train=False)
    np.testing.assert_array_equal(_np(ds.targets), written["t10k"][1])


def test_mnist_transforms_and_targets(tmp_path):
    written = fake_mnist(tmp_path / "MNIST" / "raw")
    ds = datasets.MNIST(tmp_path, transform=T.ToTensor(), target_transform=lambda y: y + 100)
    image, target = ds[0]
    assert tuple(image.shape) == (1, 28, 28) and image.dtype is jitorch.float32
    np.testing.assert_allclose(_np(image)[0], written["train"][0][0] / 255.0, rtol=1e-6)
    assert target == int(written["train"][1][0]) + 100
    assert "Number of datapoints: 7" in repr(ds) and "ToTensor" in repr(ds)


def test_mnist_items_are_copies_and_edits_to_data_are_honoured(tmp_path):
    written = fake_mnist(tmp_path)
    ds = datasets.MNIST(tmp_path)
    image, _ = ds[0]
    image[:] = 0
    np.testing.assert_array_equal(_np(ds.data)[0], written["train"][0][0])
    # The usual "keep a subset" idiom replaces .data and .targets.
    ds.data, ds.targets = _tensor(_np(ds.data)[:2]), _tensor(_np(ds.targets)[:2])
    assert len(ds) == 2
    with pytest.raises(IndexError):
        ds[2]


def test_fashion_mnist_has_its_own_folder_and_classes(tmp_path):
    fake_mnist(tmp_path / "MNIST" / "raw", seed=1)
    with pytest.raises(RuntimeError, match="FashionMNIST"):
        datasets.FashionMNIST(tmp_path)  # MNIST's files are not Fashion-MNIST's
    written = fake_mnist(tmp_path / "FashionMNIST" / "raw", compress=True, seed=2)
    ds = datasets.FashionMNIST(tmp_path, train=False)
    np.testing.assert_array_equal(_np(ds.data), written["t10k"][0])
    assert ds.classes[9] == "Ankle boot" and len(ds.classes) == 10


def test_missing_files_name_the_files_and_folders(tmp_path):
    with pytest.raises(RuntimeError) as info:
        datasets.MNIST(tmp_path, train=False)
    message = str(info.value)
    assert "not found" in message
    for expected in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", ".gz",
                     os.path.join(str(tmp_path), "MNIST", "raw"), os.path.join(str(tmp_path), "MNIST")):
        assert expected in message


def test_only_the_labels_missing(tmp_path):
    fake_mnist(tmp_path)
    os.remove(tmp_path / "train-labels-idx1-ubyte")
    with pytest.raises(RuntimeError, match="train-labels-idx1-ubyte"):
        datasets.MNIST(tmp_path)


def test_download_is_not_supported_but_harmless_when_files_exist(tmp_path):
    with pytest.raises(RuntimeError, match="download=True is not supported") as info:
        datasets.MNIST(tmp_path, download=True)
    assert os.path.join(str(tmp_path), "MNIST", "raw") in str(info.value)
    fake_mnist(tmp_path / "MNIST" / "raw")
    assert len(datasets.MNIST(tmp_path, download=True)) == 7  # torchvision scripts pass download=True


def test_mnist_magic_numbers_are_checked(tmp_path):
    fake_mnist(tmp_path)
    # a labels file where the images should be
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros(7, np.uint8))
    with pytest.raises(RuntimeError, match=r"not an MNIST images file: magic number 0x00000801, expected 0x00000803"):
        datasets.MNIST(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((7, 28, 28), np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(7, np.int32))
    with pytest.raises(RuntimeError, match="not an MNIST labels file"):
        datasets.MNIST(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"\x00")
    with pytest.raises(RuntimeError, match="too short"):
        datasets.MNIST(tmp_path)


def test_mnist_count_mismatch(tmp_path):
    fake_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(6, np.uint8))
    with pytest.raises(RuntimeError, match="7 images but .* 6 labels"):
        datasets.MNIST(tmp_path)


def test_mnist_works_with_the_dataloader(tmp_path):
    data = pytest.importorskip("jitorch.utils.data")
    if not hasattr(data, "DataLoader"):
        pytest.skip("jitorch.utils.data.DataLoader is not available yet")
    fake_mnist(tmp_path, n_train=10)
    ds = datasets.MNIST(tmp_path, transform=T.Compose([T.ToTensor(), T.Normalize((0.1307,), (0.3081,))]))
    assert isinstance(ds, data.Dataset)
    images, targets = next(iter(data.DataLoader(ds, batch_size=4)))
    assert tuple(images.shape) == (4, 1, 28, 28) and tuple(targets.shape) == (4,)
    assert targets.dtype is jitorch.int64


# ---------------------------------------------------------------------------
# Digits (scikit-learn)
# ---------------------------------------------------------------------------

def test_digits_without_sklearn_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    datasets._sklearn_digits.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"pip install jitorch\[digits\]"):
            datasets.Digits()
    finally:
        datasets._sklearn_digits.cache_clear()


@pytest.fixture(scope="module")
def sk_digits():
    sk = pytest.importorskip("sklearn.datasets", reason="scikit-learn is an optional extra (jitorch[digits])")
    return sk.load_digits()


def test_digits_shapes_values_and_split(sk_digits):
    train, test = datasets.Digits(train=True), datasets.Digits(train=False)
    assert len(train) + len(test) == len(sk_digits.target) == 1797
    assert abs(len(test) - 0.2 * 1797) < 10
    image, target = train[0]
    assert tuple(image.shape) == (1, 8, 8) and image.dtype is jitorch.float32
    assert type(target) is int and 0 <= target <= 9
    for ds in (train, test):
        data = _np(ds.data)
        assert data.shape == (len(ds), 1, 8, 8) and data.min() == 0.0 and data.max() == 1.0
        assert ds.targets.dtype is jitorch.int64
    # Together the two splits are exactly the dataset, each image once.
    both = np.concatenate([_np(train.data), _np(test.data)]).reshape(1797, 64)
    labels = np.concatenate([_np(train.targets), _np(test.targets)])
    reference = np.concatenate([sk_digits.data / 16.0, sk_digits.target[:, None]], axis=1)
    ours = np.concatenate([both, labels[:, None]], axis=1)
    np.testing.assert_allclose(ours[np.lexsort(ours.T)], reference[np.lexsort(reference.T)], rtol=1e-6)


def test_digits_split_is_stratified(sk_digits):
    test = datasets.Digits(train=False, test_fraction=0.25)
    counts = np.bincount(_np(test.targets), minlength=10)
    totals = np.bincount(sk_digits.target, minlength=10)
    assert np.all(np.abs(counts - 0.25 * totals) <= 1)


def test_digits_split_is_deterministic_and_seeded(sk_digits):
    a, b = datasets.Digits(train=False, seed=3), datasets.Digits(train=False, seed=3)
    np.testing.assert_array_equal(_np(a.data), _np(b.data))
    np.testing.assert_array_equal(_np(a.targets), _np(b.targets))
    c = datasets.Digits(train=False, seed=4)
    assert not np.array_equal(_np(a.data), _np(c.data))
    assert len(datasets.Digits(train=False, test_fraction=0.5)) > len(a)


def test_digits_transforms_and_item_independence(sk_digits):
    ds = datasets.Digits(transform=T.Normalize((0.5,), (0.5,), inplace=True), target_transform=str)
    image, target = ds[0]
    assert isinstance(target, str)
    np.testing.assert_allclose(_np(image), (_np(ds.data)[0] - 0.5) / 0.5, rtol=1e-6)  # data untouched
    with pytest.raises(ValueError, match="test_fraction"):
        datasets.Digits(test_fraction=1.0)


# ---------------------------------------------------------------------------
# transforms
# ---------------------------------------------------------------------------

@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def test_to_tensor_uint8_matches_torch(torch):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (5, 7), dtype=np.uint8)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    for arr in (gray, rgb):
        out = T.ToTensor()(arr)
        ref = torch.from_numpy(arr if arr.ndim == 3 else arr[:, :, None]).permute(2, 0, 1).float().div(255)
        assert out.dtype is jitorch.float32
        assert tuple(out.shape) == tuple(ref.shape)
        np.testing.assert_array_equal(_np(out), ref.numpy())  # bit-exact


def test_to_tensor_other_dtypes_keep_values():
    arr = np.linspace(0, 3, 24, dtype=np.float64).reshape(2, 4, 3)
    out = T.ToTensor()(arr)
    assert out.dtype is jitorch.float64 and tuple(out.shape) == (3, 2, 4)
    np.testing.assert_array_equal(_np(out), arr.transpose(2, 0, 1))
    out32 = T.to_tensor(arr.astype(np.float32)[:, :, 0])
    assert out32.dtype is jitorch.float32 and tuple(out32.shape) == (1, 2, 4)
    with pytest.raises(TypeError):
        T.ToTensor()(jitorch.tensor([[1.0]]))
    with pytest.raises(ValueError):
        T.ToTensor()(np.zeros((1, 2, 3, 4), np.uint8))


def test_normalize_matches_manual_reference():
    rng = np.random.default_rng(1)
    mean, std = (0.1, -0.2, 0.3), (0.5, 2.0, 0.25)
    for shape in ((3, 4, 5), (2, 3, 4, 5)):
        x = rng.standard_normal(shape).astype(np.float32)
        t = _tensor(x)
        out = T.Normalize(mean, std)(t)
        ref = (x - np.float32(mean).reshape(3, 1, 1)) / np.float32(std).reshape(3, 1, 1)
        np.testing.assert_allclose(_np(out), ref, rtol=1e-6)
        np.testing.assert_array_equal(_np(t), x)  # not in place by default


def test_normalize_inplace_and_errors():
    x = np.ones((1, 2, 2), np.float32)
    t = _tensor(x)
    out = T.Normalize([0.5], [0.25], inplace=True)(t)
    np.testing.assert_allclose(_np(t), np.full((1, 2, 2), 2.0))
    np.testing.assert_allclose(_np(out), np.full((1, 2, 2), 2.0))
    with pytest.raises(ValueError, match="zero"):
        T.Normalize([0.0], [0.0])(_tensor(x))
    with pytest.raises(TypeError, match="float"):
        T.Normalize([0.0], [1.0])(_tensor(np.ones((1, 2, 2), np.uint8)))
    with pytest.raises(ValueError):
        T.Normalize([0.0], [1.0])(_tensor(np.ones((2, 2), np.float32)))


RESIZE_CASES = [((7, 9), (14, 18)), ((8, 8), (3, 5)), ((10, 6), (7, 13)), ((5, 17), (11, 4)), ((9, 9), (9, 4)),
                ((1, 5), (3, 2)), ((6, 4), (6, 8)), ((32, 30), (5, 7))]


@pytest.mark.parametrize("antialias", [False, True])
@pytest.mark.parametrize("src, dst", RESIZE_CASES, ids=str)
def test_bilinear_resize_matches_torch_interpolate(torch, src, dst, antialias):
    rng = np.random.default_rng(hash((src, dst)) % 2**32)
    x = rng.standard_normal((2, 3) + src).astype(np.float32)
    ref = torch.nn.functional.interpolate(torch.from_numpy(x), size=dst, mode="bilinear",
                                          align_corners=False, antialias=antialias).numpy()
    out = T.Resize(dst, antialias=antialias)(_tensor(x))
    assert tuple(out.shape) == ref.shape and out.dtype is jitorch.float32
    np.testing.assert_allclose(_np(out), ref, rtol=2e-5, atol=2e-5)  # both sides round in float32
    # unbatched CxHxW and float64 too
    out3 = T.resize(_tensor(x[0].astype(np.float64)), list(dst), antialias=antialias)
    ref64 = torch.nn.functional.interpolate(torch.from_numpy(x[:1].astype(np.float64)), size=dst, mode="bilinear",
                                            align_corners=False, antialias=antialias).numpy()[0]
    assert out3.dtype is jitorch.float64
    np.testing.assert_allclose(_np(out3), ref64, rtol=1e-10, atol=1e-10)


def test_antialiased_resize_to_width_one(torch):
    # torch 2.13's CPU antialias kernel repeats the first row when the output
    # width is 1, so compare against the transposed problem, which it gets right.
    x = np.arange(40, dtype=np.float64).reshape(1, 10, 4)
    out = T.Resize((5, 1), antialias=True)(_tensor(x))
    ref = torch.nn.functional.interpolate(torch.from_numpy(x.transpose(0, 2, 1).copy())[None], size=(1, 5),
                                          mode="bilinear", antialias=True)[0].numpy().transpose(0, 2, 1)
    np.testing.assert_allclose(_np(out), ref, rtol=1e-12)
    assert len(np.unique(_np(out))) == 5


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
@pytest.mark.parametrize("src, dst", RESIZE_CASES + [((5, 7), (10, 14)), ((13, 29), (7, 3))], ids=str)
def test_nearest_resize_matches_torch_exactly(torch, src, dst, mode):
    x = np.arange(np.prod(src) * 2, dtype=np.float32).reshape((2,) + src)
    ref = torch.nn.functional.interpolate(torch.from_numpy(x)[None], size=dst, mode=mode).numpy()[0]
    out = T.Resize(dst, interpolation=mode)(_tensor(x))
    np.testing.assert_array_equal(_np(out), ref)
    u8 = T.Resize(dst, interpolation=T.InterpolationMode(mode))(_tensor(x.astype(np.uint8)))
    assert u8.dtype is jitorch.uint8
    np.testing.assert_array_equal(_np(u8), ref.astype(np.uint8))


def test_bilinear_uint8_is_rounded_float_math(torch):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (3, 11, 13), dtype=np.uint8)
    for antialias in (False, True):
        out = T.Resize((5, 20), antialias=antialias)(_tensor(x))
        ref = torch.nn.functional.interpolate(torch.from_numpy(x)[None].float(), size=(5, 20), mode="bilinear",
                                              align_corners=False, antialias=antialias)[0].round().clamp(0, 255)
        assert out.dtype is jitorch.uint8
        assert np.abs(_np(out).astype(int) - ref.numpy().astype(int)).max() <= 1


@pytest.mark.parametrize("shape, size, expected", [
    ((3, 20, 40), 10, (10, 20)), ((3, 40, 20), 10, (20, 10)), ((1, 30, 47), 16, (16, 25)),
    ((1, 30, 47), [16], (16, 25)), ((1, 30, 47), (8, 9), (8, 9)), ((2, 1, 12, 12), 6, (6, 6)),
])
def test_resize_size_semantics(shape, size, expected):
    out = T.Resize(size)(_tensor(np.zeros(shape, np.float32)))
    assert tuple(out.shape) == shape[:-2] + expected


def test_resize_max_size_and_bad_arguments():
    x = _tensor(np.zeros((1, 10, 40), np.float32))
    assert tuple(T.Resize(8, max_size=20)(x).shape) == (1, 5, 20)
    with pytest.raises(ValueError):
        T.Resize(8, max_size=8)(x)
    with pytest.raises(NotImplementedError):
        T.Resize(8, interpolation="bicubic")
    with pytest.raises(ValueError):
        T.Resize((1, 2, 3))


def test_resize_accepts_enum_members_from_elsewhere():
    class Mode(Enum):  # e.g. torchvision.transforms.InterpolationMode
        NEAREST = "nearest"

    out = T.Resize((4, 4), interpolation=Mode.NEAREST)(_tensor(np.arange(4, dtype=np.float32).reshape(1, 2, 2)))
    np.testing.assert_array_equal(_np(out)[0, ::2, ::2], [[0, 1], [2, 3]])


def test_resize_numpy_hwc_matches_tensor_path():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (12, 9, 3), dtype=np.uint8)
    out = T.Resize((6, 4))(img)
    assert isinstance(out, np.ndarray) and out.shape == (6, 4, 3) and out.dtype == np.uint8
    via_tensor = T.Resize((6, 4))(_tensor(img.transpose(2, 0, 1)))
    np.testing.assert_array_equal(out, _np(via_tensor).transpose(1, 2, 0))
    gray = T.Resize(3)(img[:, :, 0])
    assert gray.shape == (4, 3)  # width is the shorter edge: 9 -> 3, height 12 -> 4


def test_resize_to_same_size_returns_equal_copy():
    x = _tensor(np.arange(6, dtype=np.float32).reshape(1, 2, 3))
    out = T.Resize((2, 3))(x)
    np.testing.assert_array_equal(_np(out), _np(x))


def _center_reference(arr: np.ndarray, ch: int, cw: int) -> np.ndarray:
    h, w = arr.shape[-2:]
    pt, pl = max((ch - h) // 2, 0), max((cw - w) // 2, 0)
    pb, pr = max((ch - h + 1) // 2, 0), max((cw - w + 1) // 2, 0)
    arr = np.pad(arr, [(0, 0)] * (arr.ndim - 2) + [(pt, pb), (pl, pr)])
    h, w = arr.shape[-2:]
    top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
    return arr[..., top:top + ch, left:left + cw]


@pytest.mark.parametrize("size", [3, (2, 4), (5, 5), (6, 3), (9, 10), 1])
def test_center_crop(size):
    x = np.arange(2 * 5 * 6, dtype=np.float32).reshape(2, 5, 6) + 1
    ch, cw = (size, size) if isinstance(size, int) else size
    out = T.CenterCrop(size)(_tensor(x))
    np.testing.assert_array_equal(_np(out), _center_reference(x, ch, cw))
    hwc = T.CenterCrop(size)(np.ascontiguousarray(x.transpose(1, 2, 0)))
    np.testing.assert_array_equal(hwc, _center_reference(x, ch, cw).transpose(1, 2, 0))


def test_center_crop_known_values():
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    np.testing.assert_array_equal(_np(T.CenterCrop(2)(_tensor(x)))[0], [[5, 6], [9, 10]])
    padded = _np(T.CenterCrop(6)(_tensor(x)))[0]
    assert padded.shape == (6, 6) and padded[0].sum() == 0
    assert padded[1, 1:5].tolist() == [0, 1, 2, 3] and padded[2, 1:5].tolist() == [4, 5, 6, 7]


def test_pad_modes_match_numpy():
    x = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    for mode in ("constant", "edge", "reflect", "symmetric"):
        out = T.Pad((1, 2, 0, 1), padding_mode=mode)(_tensor(x))
        np.testing.assert_array_equal(_np(out), np.pad(x, [(0, 0), (2, 1), (1, 0)], mode=mode))
    filled = T.Pad(1, fill=7)(_tensor(x))
    assert _np(filled)[0, 0, 0] == 7 and _np(filled)[0, 1, 1] == 0
    rgb = T.Pad([2, 1], fill=(1, 2, 3))(np.zeros((2, 2, 3), np.uint8))
    assert rgb.shape == (4, 6, 3) and rgb[0, 0].tolist() == [1, 2, 3] and rgb[1, 2].tolist() == [0, 0, 0]


def _windows(arr: np.ndarray, h: int, w: int) -> dict:
    H, W = arr.shape[-2:]
    return {(i, j): arr[..., i:i + h, j:j + w] for i in range(H - h + 1) for j in range(W - w + 1)}


def test_random_crop_windows_cover_every_position_and_are_seeded():
    x = np.arange(2 * 5 * 6, dtype=np.float32).reshape(2, 5, 6)
    windows = _windows(x, 3, 4)
    crop = T.RandomCrop((3, 4))
    seen = set()
    jitorch.manual_seed(0)
    first = [_np(crop(_tensor(x))) for _ in range(5)]
    for _ in range(300):
        out = _np(crop(_tensor(x)))
        seen.add(next(pos for pos, win in windows.items() if np.array_equal(win, out)))
    assert seen == set(windows)
    jitorch.manual_seed(0)
    again = [_np(crop(_tensor(x))) for _ in range(5)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))


def test_random_crop_padding_and_pad_if_needed():
    x = np.arange(1, 17, dtype=np.float32).reshape(1, 4, 4)
    padded = np.pad(x, [(0, 0), (2, 2), (2, 2)])
    windows = _windows(padded, 4, 4)
    jitorch.manual_seed(1)
    for _ in range(20):
        out = _np(T.RandomCrop(4, padding=2)(_tensor(x)))
        assert any(np.array_equal(out, win) for win in windows.values())
    grown = T.RandomCrop((6, 7), pad_if_needed=True, fill=-1)(_tensor(x))
    assert tuple(grown.shape) == (1, 6, 7)
    assert (_np(grown) == -1).sum() == 6 * 7 - 16
    with pytest.raises(ValueError, match="larger than input image"):
        T.RandomCrop(5)(_tensor(x))
    same = T.RandomCrop(4)(_tensor(x))
    np.testing.assert_array_equal(_np(same), x)


def test_random_crop_numpy_mnist_style_pipeline():
    img = np.random.default_rng(4).integers(0, 256, (28, 28), dtype=np.uint8)
    pipeline = T.Compose([T.RandomCrop(28, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                          T.Normalize((0.1307,), (0.3081,))])
    jitorch.manual_seed(5)
    a = pipeline(img)
    jitorch.manual_seed(5)
    b = pipeline(img)
    assert tuple(a.shape) == (1, 28, 28) and a.dtype is jitorch.float32
    np.testing.assert_array_equal(_np(a), _np(b))
    assert "RandomCrop" in repr(pipeline)


def test_random_flips():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.testing.assert_array_equal(_np(T.RandomHorizontalFlip(p=1.0)(_tensor(x))), x[..., ::-1])
    np.testing.assert_array_equal(_np(T.RandomHorizontalFlip(p=0.0)(_tensor(x))), x)
    np.testing.assert_array_equal(_np(T.RandomVerticalFlip(p=1.0)(_tensor(x))), x[..., ::-1, :])
    hwc = np.ascontiguousarray(x.transpose(1, 2, 0))
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=1.0)(hwc), hwc[:, ::-1])
    flip = T.RandomHorizontalFlip()
    jitorch.manual_seed(7)
    pattern = [bool(np.array_equal(_np(flip(_tensor(x))), x[..., ::-1])) for _ in range(400)]
    assert 120 < sum(pattern) < 280
    jitorch.manual_seed(7)
    assert pattern == [bool(np.array_equal(_np(flip(_tensor(x))), x[..., ::-1])) for _ in range(400)]


def test_transforms_do_not_alias_their_input():
    x = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    t = _tensor(x)
    out = T.RandomHorizontalFlip(p=0.0)(t)
    cropped = T.CenterCrop((3, 4))(t)
    _np(cropped)[:] = -5
    np.testing.assert_array_equal(_np(t), x)
    assert out is t  # like torchvision, a no-op flip returns its input


def test_lambda_and_compose():
    pipeline = T.Compose([T.Lambda(lambda v: v + 1), T.Lambda(lambda v: v * 10)])
    assert pipeline(1) == 20
    with pytest.raises(TypeError):
        T.Lambda(3)


def test_bad_image_types():
    with pytest.raises(TypeError):
        T.RandomHorizontalFlip(p=1.0)("not an image")
    with pytest.raises(ValueError):
        T.CenterCrop(2)(np.zeros((2, 2, 2, 2)))
    with pytest.raises(TypeError):
        T.CenterCrop(1)(_tensor(np.zeros(3, np.float32)))
