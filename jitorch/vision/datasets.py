"""Small image datasets in the style of ``torchvision.datasets``.

* :class:`Digits` -- scikit-learn's bundled 8x8 handwritten digits (no download).
* :class:`MNIST` / :class:`FashionMNIST` -- read the standard IDX files from disk.

Nothing is downloaded: place the files yourself (see :class:`MNIST`).  Where
torchvision hands a PIL image to ``transform``, these datasets hand a uint8
NumPy array, which :class:`jitorch.vision.transforms.ToTensor` understands.
"""
from __future__ import annotations

import functools
import gzip
import math
import operator
import os
import struct
import zlib
from typing import Any, Callable, Optional

import numpy as np

import jitorch

try:  # the data utilities are part of the core; fall back so this module imports on its own
    from jitorch.utils.data import Dataset
except ImportError:  # pragma: no cover
    Dataset = object  # type: ignore[assignment,misc]

__all__ = ["Digits", "MNIST", "FashionMNIST", "read_idx"]

Transform = Optional[Callable[[Any], Any]]


def _np(t: Any) -> np.ndarray:
    return t.detach().cpu().numpy()


class _VisionDataset(Dataset):
    """Shared plumbing: ``data``/``targets`` tensors, transforms, repr."""

    classes: list[str] = []

    def __init__(self, root: Any, transform: Transform, target_transform: Transform) -> None:
        self.root = os.path.expanduser(os.fspath(root)) if root is not None else None
        self.transform = transform
        self.target_transform = target_transform
        self.data: Any = None
        self.targets: Any = None
        self.train = True

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.classes)}

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def _item(self, index: Any, image: Any) -> tuple[Any, Any]:
        # Read targets through the public tensor so edits to .targets are honoured.
        target = int(_np(self.targets)[index])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def __repr__(self) -> str:
        lines = [f"Dataset {type(self).__name__}", f"    Number of datapoints: {len(self)}"]
        if self.root is not None:
            lines.append(f"    Root location: {self.root}")
        lines.append(f"    Split: {'Train' if self.train else 'Test'}")
        if self.transform is not None:
            lines.append(f"    Transform: {self.transform!r}".replace("\n", "\n    "))
        if self.target_transform is not None:
            lines.append(f"    Target transform: {self.target_transform!r}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------
# Digits
# ----------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise ImportError("jitorch.vision.datasets.Digits reads the 8x8 digits bundled with scikit-learn, "
                          "which is not installed: pip install jitorch[digits]") from e
    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float64)
    labels = np.asarray(bunch.target, dtype=np.int64)
    images.flags.writeable = labels.flags.writeable = False  # cached and shared
    return images, labels


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, test) indices holding out ``test_fraction`` of every class.

    Each class with at least two samples keeps at least one on each side, and
    the same ``seed`` always gives the same split.
    """
    rng = np.random.default_rng(seed)
    train, test = [], []
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        n_test = int(round(test_fraction * len(members)))
        if len(members) >= 2:
            n_test = min(max(n_test, 1), len(members) - 1)
        test.append(members[:n_test])
        train.append(members[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


class Digits(_VisionDataset):
    """scikit-learn's 1797 8x8 handwritten digits as a train or test split.

    Items are ``(image, target)``: ``image`` a ``1x8x8`` float32 tensor with the
    original 0..16 intensities scaled to [0, 1], ``target`` an int in 0..9.
    The split is stratified by class and fixed by ``seed``; ``test_fraction`` of
    each class goes to the test split.  ``root`` is accepted for symmetry with
    the other datasets and ignored.  Needs ``pip install jitorch[digits]``.
    """

    classes = [str(d) for d in range(10)]

    def __init__(self, root: Any = None, train: bool = True, transform: Transform = None,
                 target_transform: Transform = None, test_fraction: float = 0.2, seed: int = 0) -> None:
        super().__init__(root, transform, target_transform)
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be strictly between 0 and 1, got {test_fraction}")
        images, labels = _sklearn_digits()
        train_idx, test_idx = stratified_split(labels, test_fraction, seed)
        idx = train_idx if train else test_idx
        self.train = train
        self.test_fraction, self.seed = test_fraction, seed
        self.data = jitorch.from_numpy((images[idx] / 16.0).astype(np.float32)[:, None])
        self.targets = jitorch.from_numpy(labels[idx].copy())

    def __getitem__(self, index: Any) -> tuple[Any, Any]:
        index = operator.index(index)
        # A fresh tensor per item, so an in-place transform can't alter the dataset.
        image = jitorch.from_numpy(_np(self.data)[index].copy())
        return self._item(index, image)


# ----------------------------------------------------------------------------
# IDX files (MNIST and friends)
# ----------------------------------------------------------------------------

# IDX type byte -> big-endian element type
_IDX_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _read_file_bytes(path: str) -> bytes:
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] != b"\x1f\x8b":  # gzip magic, whatever the file is called
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise RuntimeError(f"{path} looks gzip-compressed but can't be decompressed: {e}") from None


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into a native-endian array.

    Layout: two zero bytes, a type byte, a dimension count, one big-endian
    uint32 per dimension, then the elements in C order.
    """
    path = os.fspath(path)
    return _parse_idx(_read_file_bytes(path), path)


def _parse_idx(raw: bytes, path: str) -> np.ndarray:
    if len(raw) < 4:
        raise RuntimeError(f"{path} is not an IDX file: only {len(raw)} bytes")
    magic = int.from_bytes(raw[:4], "big")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise RuntimeError(f"{path} is not an IDX file: bad magic number 0x{magic:08x}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise RuntimeError(f"{path} is truncated: the header declares {ndim} dimensions")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_TYPES[raw[2]]
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) - header != expected:
        raise RuntimeError(f"{path} holds {len(raw) - header} data bytes, but its header "
                           f"(shape {shape}, {dtype.name}) needs {expected}")
    arr = np.frombuffer(raw, dtype=dtype, count=math.prod(shape), offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))  # a writable, native-endian copy


class MNIST(_VisionDataset):
    """MNIST read from the four standard IDX files.

    The files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each raw or with a
    ``.gz`` suffix) are looked up in ``root/<ClassName>/raw`` (torchvision's
    layout), ``root/<ClassName>`` and ``root``.  Items are ``(image, target)``
    with ``image`` a 28x28 uint8 NumPy array (torchvision gives a PIL image) and
    ``target`` an int.  ``data`` (uint8, N x 28 x 28) and ``targets`` (int64)
    are tensors.  There is no downloading: ``download=True`` only raises, with
    the place to put the files, when they are missing.
    """

    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four",
               "5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine"]
    _IMAGE_MAGIC = 0x00000803  # uint8, 3 dims
    _LABEL_MAGIC = 0x00000801  # uint8, 1 dim

    def __init__(self, root: str | os.PathLike, train: bool = True, transform: Transform = None,
                 target_transform: Transform = None, download: bool = False) -> None:
        super().__init__(root, transform, target_transform)
        self.train = train
        split = "train" if train else "t10k"
        image_path = self._find(f"{split}-images-idx3-ubyte", download)
        label_path = self._find(f"{split}-labels-idx1-ubyte", download)
        images = self._read(image_path, self._IMAGE_MAGIC, "images")
        labels = self._read(label_path, self._LABEL_MAGIC, "labels")
        if len(images) != len(labels):
            raise RuntimeError(f"{image_path} has {len(images)} images but {label_path} has {len(labels)} labels")
        self.data = jitorch.from_numpy(images)
        self.targets = jitorch.from_numpy(labels.astype(np.int64))

    @property
    def raw_folder(self) -> str:
        return os.path.join(self.root, type(self).__name__, "raw")

    def _search_dirs(self) -> list[str]:
        return [self.raw_folder, os.path.join(self.root, type(self).__name__), self.root]

    def _find(self, name: str, download: bool) -> str:
        # Some mirrors spell the files 'train-images.idx3-ubyte'.
        spellings = [name, name.replace("-idx", ".idx")]
        for folder in self._search_dirs():
            for base in spellings:
                for candidate in (base, base + ".gz"):
                    path = os.path.join(folder, candidate)
                    if os.path.isfile(path):
                        return path
        raise RuntimeError(self._missing_message(name, download))

    def _missing_message(self, name: str, download: bool) -> str:
        split = "train" if self.train else "t10k"
        wanted = ", ".join(f"{split}-{kind}" for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"))
        where = ", ".join(self._search_dirs())
        lead = ("jitorch cannot download datasets (download=True is not supported)" if download
                else f"{type(self).__name__} dataset not found")
        return (f"{lead}: {name} (or {name}.gz) is missing. Expected the files {wanted} "
                f"(raw or .gz) in one of: {where}. Download them yourself and place them in {self.raw_folder}.")

    @staticmethod
    def _read(path: str, magic: int, what: str) -> np.ndarray:
        raw = _read_file_bytes(path)
        found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
        if found != magic:
            shown = "none (the file is too short)" if found is None else f"0x{found:08x}"
            raise RuntimeError(f"{path} is not an MNIST {what} file: magic number {shown}, expected 0x{magic:08x}")
        return _parse_idx(raw, path)

    def __getitem__(self, index: Any) -> tuple[Any, Any]:
        index = operator.index(index)
        # Read through the public tensor so edits to .data are honoured; copy so
        # a transform can't write into the dataset.
        image = _np(self.data)[index].copy()
        return self._item(index, image)


class FashionMNIST(MNIST):
    """Fashion-MNIST: same files and layout as :class:`MNIST`, under ``root/FashionMNIST/raw``."""

    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
