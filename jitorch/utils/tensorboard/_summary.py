"""Summary protos for scalars, histograms, images and text, built from NumPy values.

Only this module and ``_graph``/``writer`` touch the ``tensorboard`` package, and
only when called: importing ``jitorch.utils.tensorboard`` never needs it.
"""
from __future__ import annotations

import struct
import zlib

import numpy as np


def to_numpy(x, what: str) -> np.ndarray:
    """A tensor, NumPy array, list or number as an array (tensors are detached first)."""
    from ..._tensor import Tensor
    if isinstance(x, Tensor):
        return np.asarray(x.detach().numpy())
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (int, float, bool, np.number, list, tuple)):
        return np.asarray(x)
    raise TypeError(f"{what} must be a tensor, a NumPy array or a number, got {type(x).__name__}")


def scalar_value(x) -> float:
    arr = to_numpy(x, "scalar_value")
    if arr.size != 1:
        raise AssertionError(f"scalar should be 0D (got a value of shape {list(arr.shape)})")
    return float(arr.reshape(()))


def scalar(tag: str, value, new_style: bool = False, double_precision: bool = False):
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.compat.proto.tensor_pb2 import TensorProto
    from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
    v = scalar_value(value)
    if not new_style:
        return Summary(value=[Summary.Value(tag=tag, simple_value=v)])
    proto = TensorProto(double_val=[v], dtype="DT_DOUBLE", tensor_shape=TensorShapeProto()) if double_precision \
        else TensorProto(float_val=[v], dtype="DT_FLOAT", tensor_shape=TensorShapeProto())
    meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="scalars"))
    return Summary(value=[Summary.Value(tag=tag, tensor=proto, metadata=meta)])


def tensorflow_bins() -> list:
    """TensorFlow's default histogram edges: ±1e-12 growing by 10% up to 1e20, and 0."""
    v, pos = 1e-12, []
    while v < 1e20:
        pos.append(v)
        v *= 1.1
    return [-x for x in reversed(pos)] + [0.0] + pos


def histogram(tag: str, values, bins, max_bins=None):
    from tensorboard.compat.proto.summary_pb2 import HistogramProto, Summary
    arr = to_numpy(values, "values").astype(np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError("The input has no element.")
    counts, limits = np.histogram(arr, bins=bins)
    if max_bins is not None and len(counts) > max_bins:
        group = -(-len(counts) // max_bins)  # merge neighbouring bins so at most max_bins remain
        pad = -len(counts) % group
        counts = np.pad(counts, (0, pad)).reshape(-1, group).sum(axis=1)
        limits = np.append(limits[:-1:group], limits[-1])
    nonzero = np.nonzero(counts)[0]
    first, last = (int(nonzero[0]), int(nonzero[-1])) if nonzero.size else (0, len(counts) - 1)
    # TensorBoard stores right edges only: keep one empty bin left of the data so the left edge shows too
    if first > 0:
        counts, limits = counts[first - 1:last + 1], limits[first:last + 2]
    else:
        counts, limits = np.concatenate([[0], counts[:last + 1]]), limits[:last + 2]
    proto = HistogramProto(min=float(arr.min()), max=float(arr.max()), num=int(arr.size), sum=float(arr.sum()),
                           sum_squares=float(arr.dot(arr)), bucket_limit=limits.tolist(),
                           bucket=counts.astype(np.float64).tolist())
    return Summary(value=[Summary.Value(tag=tag, histo=proto)])


# -- images --------------------------------------------------------------------------------------------------
_FORMATS = ("CHW", "HWC", "HW", "WH", "NCHW", "NHWC")


def to_hwc(arr: np.ndarray, dataformats: str) -> np.ndarray:
    """An image in ``dataformats`` layout as height x width x 3 (or 4) channels, like torch's convert_to_HWC."""
    fmt = dataformats.upper()
    if fmt not in _FORMATS or len(set(fmt)) != len(fmt):
        raise ValueError(f"dataformats must be one of {', '.join(_FORMATS)}, got {dataformats!r}")
    if arr.ndim != len(fmt):
        raise ValueError(f"an image with dataformats={dataformats!r} needs {len(fmt)} dimensions, got shape "
                         f"{list(arr.shape)}")
    if len(fmt) == 4:
        arr = arr.transpose([fmt.index(c) for c in "NCHW"])
        return _grid(arr)
    if len(fmt) == 2:
        arr = arr.transpose([fmt.index(c) for c in "HW"])
        return np.stack([arr] * 3, axis=2)
    arr = arr.transpose([fmt.index(c) for c in "HWC"])
    if arr.shape[2] == 1:
        arr = np.concatenate([arr] * 3, axis=2)
    if arr.shape[2] not in (3, 4):
        raise ValueError(f"an image needs 1, 3 or 4 channels, got {arr.shape[2]}")
    return arr


def _grid(nchw: np.ndarray, ncols: int = 8) -> np.ndarray:
    """Several images tiled in rows of up to ``ncols`` (as torch's make_grid), as HWC."""
    if nchw.shape[1] == 1:
        nchw = np.concatenate([nchw] * 3, axis=1)
    n, c, h, w = nchw.shape
    cols = min(n, ncols)
    rows = -(-n // cols)
    canvas = np.zeros((c, rows * h, cols * w), dtype=nchw.dtype)
    for k in range(n):
        r, q = divmod(k, cols)
        canvas[:, r * h:(r + 1) * h, q * w:(q + 1) * w] = nchw[k]
    return canvas.transpose(1, 2, 0)


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """Floats are taken to be in [0, 1] and scaled by 255, integers used as they are; like torch, the
    float32 product is clipped and truncated, so the pixels equal torch's."""
    if arr.dtype == np.uint8:
        return arr
    scale = 255.0 if arr.dtype.kind == "f" else 1.0
    return np.clip(arr.astype(np.float32) * np.float32(scale), 0, 255).astype(np.uint8)


def encode_png(hwc: np.ndarray) -> bytes:
    """A minimal PNG encoder (8-bit RGB or RGBA, no filtering), so images need no imaging library."""
    h, w, c = hwc.shape
    color_type = {3: 2, 4: 6}[c]
    raw = b"".join(b"\x00" + np.ascontiguousarray(row).tobytes() for row in hwc)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def image(tag: str, img, dataformats: str):
    from tensorboard.compat.proto.summary_pb2 import Summary
    hwc = to_uint8(to_hwc(to_numpy(img, "img_tensor"), dataformats))
    h, w, c = hwc.shape
    proto = Summary.Image(height=h, width=w, colorspace=c, encoded_image_string=encode_png(hwc))
    return Summary(value=[Summary.Value(tag=tag, image=proto)])


def text(tag: str, text_string: str):
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.compat.proto.tensor_pb2 import TensorProto
    from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
    from tensorboard.plugins.text.plugin_data_pb2 import TextPluginData
    if not isinstance(text_string, str):
        raise TypeError(f"text_string must be a str, got {type(text_string).__name__}")
    meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(
        plugin_name="text", content=TextPluginData(version=0).SerializeToString()))
    proto = TensorProto(dtype="DT_STRING", string_val=[text_string.encode("utf-8")],
                        tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=1)]))
    return Summary(value=[Summary.Value(tag=tag + "/text_summary", metadata=meta, tensor=proto)])
