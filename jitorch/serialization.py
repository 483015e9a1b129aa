"""``jitorch.save`` / ``jitorch.load``: checkpoints without pickle.

A checkpoint is an uncompressed zip archive holding ``manifest.json`` (the
object tree, written as tagged JSON nodes) and one ``.npy`` file per tensor.
Loading only parses JSON and ``.npy`` headers, so a hostile file can at worst
make ``load`` raise.  The layout is specified in ``docs/serialization.md``;
bump :data:`FORMAT_VERSION` whenever it changes.

This is deliberately *not* PyTorch's pickle-based format: ``torch.load`` can't
read these files and ``jitorch.load`` can't read ``torch.save`` output.
"""
from __future__ import annotations

import base64
import binascii
import io
import json
import math
import os
import re
import struct
import zipfile
import zlib
from collections import OrderedDict
from typing import IO, Any, BinaryIO, Callable, Union

import numpy as np

__all__ = ["save", "load", "FORMAT_NAME", "FORMAT_VERSION"]

FORMAT_NAME = "jitorch.checkpoint"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"

# Containers nested deeper than this are refused on save and on load; real
# checkpoints are a handful of levels deep, and the bound keeps both the JSON
# codec and our own recursion far away from Python's recursion limit.
MAX_DEPTH = 100
# Upper bounds that only a crafted file would hit.
_MAX_MANIFEST_BYTES = 256 * 1024 * 1024
_MAX_NPY_HEADER = 10_000
_MAX_NDIM = 64
# Array data starts on this boundary inside the archive, so a future reader can
# memory-map it (numpy pads its own header to the same boundary).
_ALIGN = 64
_PAD_EXTRA_ID = 0x4A54  # "JT": an extra-field id that zip readers skip
_READ_CHUNK = 64 * 1024 * 1024
_TENSOR_FILE_RE = re.compile(r"data/(0|[1-9][0-9]*)\.npy")

# dtype name -> NumPy dtype of its .npy payload.  Names are jitorch's (and
# torch's) attribute names, e.g. ``jitorch.float32``.
_NUMPY_DTYPES: dict[str, np.dtype] = {
    name: np.dtype(name)
    for name in ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool",
                 "complex64", "complex128")
}
# NumPy has no bfloat16: its payload is the raw bit patterns as uint16 (the manifest's dtype says how to read them)
_NUMPY_DTYPES["bfloat16"] = np.dtype(np.uint16)

FileLike = Union[str, "os.PathLike[str]", BinaryIO, IO[bytes]]


class _FormatError(Exception):
    """The file is not a well-formed checkpoint; reported as RuntimeError by :func:`load`."""


# ----------------------------------------------------------------------------
# save
# ----------------------------------------------------------------------------

def save(obj: Any, f: FileLike, pickle_module: Any = None, pickle_protocol: Any = None,
         _use_new_zipfile_serialization: bool = True, _disable_byteorder_record: bool = False) -> None:
    """Write ``obj`` to ``f`` (a path or a writable binary file object).

    Supported: tensors and Parameters, ``None``, bool/int/float/str/bytes, and
    dict/OrderedDict/list/tuple containers of those, plus dtypes and devices.
    Anything else raises ``TypeError`` before ``f`` is touched.  The pickle and
    zipfile keyword arguments exist only for torch call-compatibility and are ignored.
    """
    encoder = _Encoder()
    manifest = encoder.manifest(obj)  # type errors surface before any file is opened
    payload = json.dumps(manifest, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()
    if isinstance(f, (str, os.PathLike)):
        with open(f, "wb") as fh:
            _write_archive(fh, payload, encoder.arrays)
    elif hasattr(f, "write"):
        _write_archive(f, payload, encoder.arrays)
    else:
        raise TypeError(f"save: f must be a path or a writable binary file object, got {type(f).__name__}")


def _type_name(obj: Any) -> str:
    cls = type(obj)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


class _Encoder:
    """Turns an object tree into manifest nodes, collecting tensors on the way."""

    def __init__(self) -> None:
        self.arrays: list[np.ndarray] = []
        self._entries: list[dict] = []
        self._index_of: dict[int, int] = {}  # id(tensor) -> index: same object => one entry
        self._keepalive: list[Any] = []      # ids are only unique while the objects live
        self._open: set[int] = set()         # containers on the current path, to catch cycles

    def manifest(self, obj: Any) -> dict:
        root = self.encode(obj, "obj", 0)
        return {"format": FORMAT_NAME, "version": FORMAT_VERSION, "tensors": self._entries, "root": root}

    def encode(self, obj: Any, where: str, depth: int) -> dict:
        if depth > MAX_DEPTH:
            raise ValueError(f"save: {where} is nested more than {MAX_DEPTH} containers deep")
        cls = type(obj)
        if obj is None:
            return {"type": "none"}
        if cls is bool:
            return {"type": "bool", "value": obj}
        if cls is int:
            return {"type": "int", "value": obj}
        if cls is float:
            return {"type": "float", "value": obj if math.isfinite(obj) else repr(obj)}
        if cls is str:
            return {"type": "str", "value": obj}
        if cls is bytes:
            return {"type": "bytes", "value": base64.b64encode(obj).decode("ascii")}
        if _is_tensor(obj):
            return {"type": "tensor", "index": self._tensor_index(obj)}
        if cls in (list, tuple, dict, OrderedDict) or _is_size(obj):
            return self._encode_container(obj, where, depth)
        if _is_dtype(obj):
            return {"type": "dtype", "name": _dtype_name(obj)}
        if _is_device(obj):
            return {"type": "device", "value": str(obj)}
        hint = "; save its state_dict() instead" if hasattr(obj, "state_dict") else ""
        raise TypeError(f"save: cannot serialize {where} of type {_type_name(obj)}{hint}")

    def _encode_container(self, obj: Any, where: str, depth: int) -> dict:
        if id(obj) in self._open:
            raise ValueError(f"save: {where} contains itself; cyclic containers are not supported")
        self._open.add(id(obj))
        try:
            if isinstance(obj, dict):
                items = [[self.encode(k, f"a key of {where}", depth + 1),
                          self.encode(v, f"{where}[{k!r}]", depth + 1)] for k, v in obj.items()]
                return {"type": "odict" if type(obj) is OrderedDict else "dict", "items": items}
            items = [self.encode(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(obj)]
            return {"type": "list" if type(obj) is list else "tuple", "items": items}
        finally:
            self._open.discard(id(obj))

    def _tensor_index(self, t: Any) -> int:
        key = id(t)
        if key in self._index_of:
            return self._index_of[key]
        name = _dtype_name(t.dtype)
        if name not in _NUMPY_DTYPES:
            raise TypeError(f"save: tensors of dtype {t.dtype} are not supported")
        # A compact copy of just the visible elements: views are saved on their own.
        host = t.detach().cpu()
        arr = _c_contiguous(host._data.view(np.uint16) if name == "bfloat16" else host.numpy())
        index = len(self.arrays)
        self.arrays.append(arr)
        self._entries.append({
            "file": f"data/{index}.npy",
            "dtype": name,
            "shape": list(arr.shape),
            "requires_grad": bool(t.requires_grad),
            "parameter": _is_parameter(t),
            "device": str(t.device),
        })
        self._index_of[key] = index
        self._keepalive.append(t)
        return index


def _write_archive(fh: IO[bytes], manifest: bytes, arrays: list[np.ndarray]) -> None:
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        zf.writestr(_zipinfo(MANIFEST_NAME), manifest)
        for index, arr in enumerate(arrays):
            _write_array(zf, f"data/{index}.npy", arr)


def _zipinfo(name: str) -> zipfile.ZipInfo:
    # A fixed timestamp makes saving the same object twice produce identical bytes.
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    return info


def _write_array(zf: zipfile.ZipFile, name: str, arr: np.ndarray) -> None:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(arr))
    size = header.tell() + arr.nbytes
    # zipfile's own rule for when a member needs zip64 headers (20 more bytes).
    zip64 = size * 1.05 > zipfile.ZIP64_LIMIT
    info = _zipinfo(name)
    info.file_size = size
    info.extra = _alignment_padding(zf.fp.tell() + 30 + len(name.encode()) + (20 if zip64 else 0))
    with zf.open(info, "w", force_zip64=zip64) as out:
        out.write(header.getvalue())
        if arr.nbytes:
            out.write(arr.reshape(-1).view(np.uint8))


def _alignment_padding(data_offset: int) -> bytes:
    """An extra field that shifts the member's data to an ``_ALIGN`` boundary."""
    pad = -data_offset % _ALIGN
    if pad == 0:
        return b""
    if pad < 4:  # an extra record needs 4 bytes of header
        pad += _ALIGN
    return struct.pack("<HH", _PAD_EXTRA_ID, pad - 4) + b"\0" * (pad - 4)


# ----------------------------------------------------------------------------
# load
# ----------------------------------------------------------------------------

MapLocation = Union[None, str, Any, dict, Callable[[Any, str], Any]]


def load(f: FileLike, map_location: MapLocation = None, pickle_module: Any = None, *,
         weights_only: bool | None = True, mmap: bool | None = None, **pickle_load_args: Any) -> Any:
    """Read an object written by :func:`save`.

    ``map_location`` works like torch's: ``None`` keeps each tensor's saved
    device; a string or device moves every tensor there; a dict maps saved
    device strings to new ones; a callable ``fn(tensor, saved_device)`` may
    return a replacement tensor (or ``None`` for the default).  No pickle is
    ever run, so ``weights_only`` makes no difference.  A malformed file raises
    ``RuntimeError`` and nothing is returned.
    """
    if mmap:
        raise NotImplementedError("jitorch.load(mmap=True) is not supported yet")
    _check_map_location(map_location)
    if isinstance(f, (str, os.PathLike)):
        with open(f, "rb") as fh:
            return _load_from(fh, repr(os.fspath(f)), map_location)
    if not hasattr(f, "read"):
        raise TypeError(f"load: f must be a path or a readable binary file object, got {type(f).__name__}")
    name = getattr(f, "name", None)
    return _load_from(f, repr(name) if isinstance(name, str) else f"the {type(f).__name__} stream", map_location)


def _load_from(fh: IO[bytes], name: str, map_location: MapLocation) -> Any:
    try:
        manifest, arrays = _read_archive(fh)
        decoder = _Decoder(manifest, arrays)
        decoder.check_tree()
    except _FormatError as e:
        raise RuntimeError(f"{name} is not a valid jitorch checkpoint: {e}") from None
    # Past this point the file is known to be well formed; errors now come from
    # map_location or the device and propagate unchanged.
    return decoder.build(map_location)


def _read_archive(fh: IO[bytes]) -> tuple[dict, list[np.ndarray]]:
    if not _seekable(fh):
        fh = io.BytesIO(fh.read())  # zipfile needs random access
    try:
        with zipfile.ZipFile(fh, "r") as zf:
            manifest = _read_manifest(zf)
            entries = _check_entries(manifest, zf)
            arrays = [_read_array(zf, zf.getinfo(e["file"]), e) for e in entries]
    except _FormatError:
        raise
    except zipfile.BadZipFile as e:
        hint = _sniff(fh)
        raise _FormatError(f"{e} ({hint})" if hint else str(e)) from None
    except (EOFError, OSError, ValueError, struct.error, zlib.error, KeyError, NotImplementedError,
            RecursionError, OverflowError) as e:
        raise _FormatError(f"{type(e).__name__}: {str(e) or 'unexpected end of data'}") from None
    return manifest, arrays


def _seekable(fh: Any) -> bool:
    try:
        return bool(fh.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _sniff(fh: IO[bytes]) -> str:
    """A hint about what a non-zip file actually is."""
    try:
        fh.seek(0)
        head = fh.read(8)
    except (OSError, ValueError):
        return ""
    if not head:
        return "the file is empty"
    if head.startswith(b"\x93NUMPY"):
        return "this is a NumPy .npy file; read it with numpy.load"
    if head[:1] == b"\x80":
        return "this looks like a legacy torch.save (pickle) file, which jitorch.load cannot read"
    return ""


def _read_manifest(zf: zipfile.ZipFile) -> dict:
    names = zf.namelist()
    if MANIFEST_NAME not in names:
        if any(n.endswith("data.pkl") for n in names):
            raise _FormatError("this is a torch.save (pickle) archive, which jitorch.load cannot read; "
                               "load it with torch and re-save the tensors with jitorch.save")
        raise _FormatError(f"the archive has no {MANIFEST_NAME}")
    info = zf.getinfo(MANIFEST_NAME)
    _check_stored(info)
    if info.file_size > _MAX_MANIFEST_BYTES:
        raise _FormatError(f"{MANIFEST_NAME} is implausibly large ({info.file_size} bytes)")
    try:
        manifest = json.loads(zf.read(info).decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _FormatError(f"{MANIFEST_NAME} is not valid JSON: {e}") from None
    _require(isinstance(manifest, dict), f"{MANIFEST_NAME} must hold a JSON object")
    _require(manifest.get("format") == FORMAT_NAME,
             f"{MANIFEST_NAME} declares format {manifest.get('format')!r}, expected {FORMAT_NAME!r}")
    version = manifest.get("version")
    _require(type(version) is int, "the format version is missing")
    _require(version <= FORMAT_VERSION,
             f"format version {version} is newer than this jitorch understands ({FORMAT_VERSION}); upgrade jitorch")
    _require(version >= 1, f"unknown format version {version}")
    _require(isinstance(manifest.get("tensors"), list), "the manifest has no 'tensors' list")
    _require("root" in manifest, "the manifest has no 'root' object")
    return manifest


def _reject_constant(name: str) -> Any:
    raise _FormatError(f"{MANIFEST_NAME} contains the non-JSON constant {name}")


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise _FormatError(message)


def _check_stored(info: zipfile.ZipInfo) -> None:
    # Only uncompressed members are accepted: no decompression bombs, and the
    # sizes in the directory are the bytes actually on disk.
    _require(info.compress_type == zipfile.ZIP_STORED and info.compress_size == info.file_size,
             f"member {info.filename!r} is compressed; checkpoints store members uncompressed")


def _check_entries(manifest: dict, zf: zipfile.ZipFile) -> list[dict]:
    entries = manifest["tensors"]
    seen: set[str] = set()
    for i, e in enumerate(entries):
        where = f"tensor entry {i}"
        _require(isinstance(e, dict), f"{where} is not an object")
        file = e.get("file")
        _require(isinstance(file, str) and _TENSOR_FILE_RE.fullmatch(file) is not None,
                 f"{where} names the invalid member {file!r} (expected 'data/<n>.npy')")
        _require(file not in seen, f"{where} reuses member {file!r}")
        seen.add(file)
        try:
            _check_stored(zf.getinfo(file))
        except KeyError:
            raise _FormatError(f"{where} refers to {file!r}, which is missing from the archive") from None
        _require(e.get("dtype") in _NUMPY_DTYPES, f"{where} has unsupported dtype {e.get('dtype')!r}")
        shape = e.get("shape")
        _require(isinstance(shape, list) and len(shape) <= _MAX_NDIM
                 and all(type(d) is int and d >= 0 for d in shape),
                 f"{where} has invalid shape {shape!r}")
        for key in ("requires_grad", "parameter"):
            _require(type(e.get(key)) is bool, f"{where} has a non-boolean {key!r}")
        _require(isinstance(e.get("device"), str), f"{where} has no device string")
        _require(not e["requires_grad"] or e["dtype"].startswith(("float", "bfloat", "complex")),
                 f"{where} requires grad but has dtype {e['dtype']}")
    return entries


def _read_array(zf: zipfile.ZipFile, info: zipfile.ZipInfo, entry: dict) -> np.ndarray:
    where = f"member {info.filename!r}"
    with zf.open(info) as fp:
        try:
            major, _ = np.lib.format.read_magic(fp)
            read_header = {1: np.lib.format.read_array_header_1_0, 2: np.lib.format.read_array_header_2_0}.get(major)
            _require(read_header is not None, f"{where} has unsupported .npy version {major}")
            shape, fortran, dtype = read_header(fp, max_header_size=_MAX_NPY_HEADER)
        except ValueError as e:
            raise _FormatError(f"{where} is not a valid .npy file: {e}") from None
        expected = _NUMPY_DTYPES[entry["dtype"]]
        _require(not dtype.hasobject and dtype.newbyteorder("=") == expected,
                 f"{where} holds {dtype} data but the manifest says {entry['dtype']}")
        _require(list(shape) == entry["shape"],
                 f"{where} has shape {list(shape)} but the manifest says {entry['shape']}")
        nbytes = math.prod(shape) * dtype.itemsize
        # Checked before allocating, so an absurd shape can't exhaust memory.
        _require(info.file_size - fp.tell() == nbytes,
                 f"{where} holds {info.file_size - fp.tell()} data bytes, but shape {list(shape)} needs {nbytes}")
        arr = np.empty(shape, dtype=dtype, order="F" if fortran else "C")
        if nbytes:
            _read_exact(fp, memoryview(arr.reshape(-1, order="A").view(np.uint8)), where)
    if arr.dtype != expected:  # a foreign writer's byte order
        arr = arr.astype(expected)
    return _c_contiguous(arr)


def _c_contiguous(arr: np.ndarray) -> np.ndarray:
    # Not np.ascontiguousarray: it turns 0-d arrays into 1-d ones.
    return arr if arr.flags.c_contiguous else arr.copy(order="C")


def _read_exact(fp: IO[bytes], buf: memoryview, where: str) -> None:
    pos = 0
    while pos < len(buf):
        chunk = fp.read(min(_READ_CHUNK, len(buf) - pos))
        _require(len(chunk) > 0, f"{where} is truncated")
        buf[pos:pos + len(chunk)] = chunk
        pos += len(chunk)


class _Decoder:
    """Validates the manifest's object tree, then rebuilds it with real tensors."""

    _TAGS = ("none", "bool", "int", "float", "str", "bytes", "list", "tuple", "dict", "odict",
             "tensor", "dtype", "device")

    def __init__(self, manifest: dict, arrays: list[np.ndarray]) -> None:
        self._entries = manifest["tensors"]
        self._arrays = arrays
        self._root = manifest["root"]
        self._tensors: list[Any] = []

    def check_tree(self) -> None:
        # A dry run: every structural problem is found before any tensor is made.
        self._walk(self._root, 0, dry=True)

    def build(self, map_location: MapLocation) -> Any:
        self._tensors = [_make_tensor(a, e, map_location) for a, e in zip(self._arrays, self._entries, strict=True)]
        return self._walk(self._root, 0, dry=False)

    def _walk(self, node: Any, depth: int, dry: bool) -> Any:
        _require(depth <= MAX_DEPTH, f"objects are nested more than {MAX_DEPTH} deep")
        _require(isinstance(node, dict) and isinstance(node.get("type"), str), f"malformed object node {_short(node)}")
        tag = node["type"]
        _require(tag in self._TAGS, f"unknown object type {tag!r}")
        if tag in ("list", "tuple", "dict", "odict"):
            items = node.get("items")
            _require(isinstance(items, list), f"{tag} node without an 'items' list")
            if tag in ("list", "tuple"):
                values = [self._walk(v, depth + 1, dry) for v in items]
                return values if tag == "list" else tuple(values)
            return self._walk_dict(items, tag, depth, dry)
        return self._leaf(tag, node, dry)

    def _walk_dict(self, items: list, tag: str, depth: int, dry: bool) -> Any:
        out: dict = OrderedDict() if tag == "odict" else {}
        for pair in items:
            _require(isinstance(pair, list) and len(pair) == 2, f"{tag} item {_short(pair)} is not a [key, value] pair")
            key = self._walk(pair[0], depth + 1, dry)
            value = self._walk(pair[1], depth + 1, dry)
            try:
                out[key] = value  # the dry run has the same key structure, so this fails there first
            except TypeError as e:
                raise _FormatError(f"unhashable {tag} key: {e}") from None
        return out

    def _leaf(self, tag: str, node: dict, dry: bool) -> Any:
        if tag == "none":
            return None
        if tag == "tensor":
            index = node.get("index")
            _require(type(index) is int and 0 <= index < len(self._entries),
                     f"tensor reference {index!r} is out of range")
            return None if dry else self._tensors[index]
        if tag == "dtype":
            name = node.get("name")
            _require(name in _NUMPY_DTYPES, f"unknown dtype {name!r}")
            return None if dry else _dtype_by_name(name)
        value = _scalar(tag, node.get("value"))
        return _device(value) if tag == "device" and not dry else value


def _scalar(tag: str, value: Any) -> Any:
    expected = {"bool": bool, "int": int, "str": str, "bytes": str, "device": str}
    if tag == "float":
        _require(type(value) in (int, float) or value in ("nan", "inf", "-inf"), f"invalid float value {_short(value)}")
        return float(value)
    _require(type(value) is expected[tag], f"invalid {tag} value {_short(value)}")
    if tag == "bytes":
        try:
            return base64.b64decode(value.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise _FormatError("invalid base64 in a bytes value") from None
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_map_location(map_location: MapLocation) -> None:
    if map_location is None or isinstance(map_location, (str, dict)) or _is_device(map_location):
        return
    if callable(map_location):
        return
    raise TypeError(f"load: unsupported map_location of type {_type_name(map_location)}")


def _target_device(map_location: MapLocation, tensor: Any, saved: str) -> Any:
    """The device a loaded tensor goes to, or a ready tensor from a callable."""
    if map_location is None:
        return saved
    if isinstance(map_location, str) or _is_device(map_location):
        return str(map_location)
    if isinstance(map_location, dict):
        return str(map_location.get(saved, saved))
    result = map_location(tensor, saved)
    return saved if result is None else result


def _make_tensor(arr: np.ndarray, entry: dict, map_location: MapLocation) -> Any:
    import jitorch

    if entry["dtype"] == "bfloat16":
        from jitorch._dtype import BF16_STORAGE
        from jitorch._tensor import wrap
        t = wrap(arr.view(BF16_STORAGE), jitorch.bfloat16)
    else:
        t = jitorch.from_numpy(arr)
    target = _target_device(map_location, t, entry["device"])
    if _is_tensor(target):
        t = target
    elif target != "cpu":
        if str(target).startswith("cuda") and not jitorch.cuda.is_available():
            raise RuntimeError(
                "Attempting to deserialize object on a CUDA device but jitorch.cuda.is_available() is False. "
                "If you are running on a CPU-only machine, please use jitorch.load with "
                "map_location=jitorch.device('cpu') to map your storages to the CPU.")
        t = t.to(target)
    if entry["parameter"]:
        from jitorch.nn import Parameter

        return Parameter(t, requires_grad=entry["requires_grad"])
    if entry["requires_grad"]:
        t.requires_grad_(True)
    return t


# ----------------------------------------------------------------------------
# Core-type probes, imported lazily so this module loads before the core does.
# ----------------------------------------------------------------------------

def _is_tensor(obj: Any) -> bool:
    import jitorch

    return isinstance(obj, jitorch.Tensor)


def _is_parameter(obj: Any) -> bool:
    try:
        from jitorch.nn import Parameter
    except ImportError:
        return False
    return isinstance(obj, Parameter)


def _is_size(obj: Any) -> bool:
    import jitorch

    size = getattr(jitorch, "Size", None)
    return isinstance(size, type) and type(obj) is size


def _is_dtype(obj: Any) -> bool:
    import jitorch

    cls = type(getattr(jitorch, "float32", None))
    return cls is not type(None) and isinstance(obj, cls)


def _is_device(obj: Any) -> bool:
    import jitorch

    cls = getattr(jitorch, "device", None)
    return isinstance(cls, type) and isinstance(obj, cls)


def _dtype_name(d: Any) -> str:
    name = getattr(d, "name", None)
    return name if isinstance(name, str) else str(d).rsplit(".", 1)[-1]


def _dtype_by_name(name: str) -> Any:
    import jitorch

    d = getattr(jitorch, name, None)
    if d is None or not _is_dtype(d):
        raise RuntimeError(f"this jitorch build has no dtype {name!r}")
    return d


def _device(text: str) -> Any:
    import jitorch

    return jitorch.device(text) if isinstance(getattr(jitorch, "device", None), type) else text
