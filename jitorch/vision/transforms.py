"""Image transforms in the style of ``torchvision.transforms``.

Two kinds of image are accepted:

* jitorch tensors laid out ``(..., C, H, W)`` (any number of leading dims), and
* NumPy arrays laid out ``(H, W)`` or ``(H, W, C)`` -- the stand-in for the PIL
  images torchvision's datasets hand out (our datasets return uint8 arrays).

Geometric transforms return the same kind of image they were given.  The
pixel work is done in NumPy, so these transforms are for data pipelines and
are not differentiable (``Normalize`` excepted, which uses tensor ops).
Random choices come from ``jitorch.rand`` / ``jitorch.randint``, so
``jitorch.manual_seed`` makes them reproducible.
"""
from __future__ import annotations

import functools
import numbers
from enum import Enum
from typing import Any, Callable, Sequence, Union

import numpy as np

import jitorch

__all__ = [
    "Compose", "ToTensor", "Normalize", "Resize", "CenterCrop", "RandomCrop", "Pad",
    "RandomHorizontalFlip", "RandomVerticalFlip", "Lambda", "InterpolationMode",
    "to_tensor", "normalize", "resize", "pad", "crop", "center_crop", "hflip", "vflip", "get_dimensions",
]

Size = Union[int, Sequence[int]]


class InterpolationMode(Enum):
    """Resampling filters understood by :func:`resize` (a subset of torchvision's)."""

    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"


# ----------------------------------------------------------------------------
# image plumbing: every geometric op works on a NumPy (..., H, W) array
# ----------------------------------------------------------------------------

def _is_tensor(x: Any) -> bool:
    return isinstance(x, jitorch.Tensor)


def _as_ndarray(img: Any) -> np.ndarray | None:
    """The array behind a NumPy-style image (ndarray or anything exposing the array protocol)."""
    if isinstance(img, np.ndarray):
        return img
    if not _is_tensor(img) and (hasattr(img, "__array_interface__") or hasattr(img, "__array__")):
        return np.asarray(img)
    return None


class _Image:
    """An image viewed as a ``(..., H, W)`` array, able to rebuild the caller's kind."""

    def __init__(self, img: Any) -> None:
        if _is_tensor(img):
            if img.ndim < 2:
                raise TypeError(f"expected a tensor image of shape (..., H, W), got shape {tuple(img.shape)}")
            self.kind = "tensor"
            self.device = img.device
            self.array = img.detach().cpu().numpy()
            return
        arr = _as_ndarray(img)
        if arr is None:
            raise TypeError(f"img should be a jitorch Tensor or a NumPy array, got {type(img).__name__}")
        if arr.ndim == 2:
            self.kind, self.array = "hw", arr
        elif arr.ndim == 3:
            self.kind, self.array = "hwc", np.moveaxis(arr, -1, 0)  # channels first while we work
        else:
            raise ValueError(f"a NumPy image must be (H, W) or (H, W, C), got shape {arr.shape}")

    @property
    def height(self) -> int:
        return self.array.shape[-2]

    @property
    def width(self) -> int:
        return self.array.shape[-1]

    @property
    def channels(self) -> int:
        return 1 if self.array.ndim == 2 else self.array.shape[-3]

    def rebuild(self, out: np.ndarray) -> Any:
        if self.kind == "hwc":
            out = np.moveaxis(out, 0, -1)
        out = np.array(out, order="C", copy=True)  # own memory: never alias the input
        if self.kind != "tensor":
            return out
        t = jitorch.from_numpy(out)
        return t if str(self.device) == "cpu" else t.to(self.device)


def get_dimensions(img: Any) -> list[int]:
    """``[channels, height, width]`` of a tensor or NumPy image."""
    im = _Image(img)
    return [im.channels, im.height, im.width]


def _pair(size: Size, what: str = "size") -> tuple[int, int]:
    if isinstance(size, numbers.Integral):
        return int(size), int(size)
    if isinstance(size, Sequence) and len(size) == 1:
        return int(size[0]), int(size[0])
    if isinstance(size, Sequence) and len(size) == 2:
        return int(size[0]), int(size[1])
    raise ValueError(f"{what} should be an int or a sequence of one or two ints, got {size!r}")


# ----------------------------------------------------------------------------
# functional API
# ----------------------------------------------------------------------------

def to_tensor(pic: Any) -> Any:
    """NumPy ``(H, W)`` / ``(H, W, C)`` image -> ``(C, H, W)`` tensor.

    uint8 images are scaled to float32 in [0, 1]; other dtypes keep their
    values and dtype, exactly as torchvision's ``to_tensor`` treats ndarrays.
    """
    if _is_tensor(pic):
        raise TypeError("to_tensor expects a NumPy image; the input is already a tensor")
    arr = _as_ndarray(pic)
    if arr is None:
        raise TypeError(f"pic should be a NumPy array, got {type(pic).__name__}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ValueError(f"pic should be 2 or 3 dimensional, got {arr.ndim} dimensions")
    chw = np.array(arr.transpose(2, 0, 1), order="C", copy=True)
    if chw.dtype == np.uint8:
        chw = chw.astype(np.float32) / np.float32(255)  # float32 math, like torch's div(255)
    elif chw.dtype.byteorder not in "=|":
        chw = chw.astype(chw.dtype.newbyteorder("="))
    return jitorch.from_numpy(chw)


def normalize(tensor: Any, mean: Sequence[float], std: Sequence[float], inplace: bool = False) -> Any:
    """``(tensor - mean) / std`` per channel of a float ``(..., C, H, W)`` tensor."""
    if not _is_tensor(tensor):
        raise TypeError(f"normalize expects a tensor, got {type(tensor).__name__}")
    if not tensor.dtype.is_floating_point:
        raise TypeError(f"normalize expects a float tensor, got {tensor.dtype}")
    if tensor.ndim < 3:
        raise ValueError(f"expected a tensor image of shape (..., C, H, W), got shape {tuple(tensor.shape)}")
    np_dtype = tensor.dtype.numpy_dtype
    mean_arr = _channel_values(mean, np_dtype)
    std_arr = _channel_values(std, np_dtype)
    if (std_arr == 0).any():
        raise ValueError(f"std evaluated to zero after conversion to {tensor.dtype}, leading to division by zero")
    mean_t = _channel_tensor(mean_arr, tensor)
    std_t = _channel_tensor(std_arr, tensor)
    if inplace:
        return tensor.sub_(mean_t).div_(std_t)
    return (tensor - mean_t) / std_t


def _channel_values(values: Any, np_dtype: np.dtype) -> np.ndarray:
    if _is_tensor(values):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np_dtype).reshape(-1)


def _channel_tensor(values: np.ndarray, like: Any) -> Any:
    t = jitorch.from_numpy(np.array(values.reshape(-1, 1, 1)))
    return t if str(like.device) == "cpu" else t.to(like.device)


_PAD_MODES = {"constant": "constant", "edge": "edge", "reflect": "reflect", "symmetric": "symmetric"}


def _ltrb(padding: Size | Sequence[int]) -> tuple[int, int, int, int]:
    """torchvision's padding forms -> (left, top, right, bottom)."""
    if isinstance(padding, numbers.Integral):
        p = int(padding)
        return p, p, p, p
    if isinstance(padding, Sequence) and len(padding) in (1, 2, 4):
        if len(padding) == 1:
            return (int(padding[0]),) * 4  # type: ignore[return-value]
        if len(padding) == 2:
            return int(padding[0]), int(padding[1]), int(padding[0]), int(padding[1])
        return tuple(int(p) for p in padding)  # type: ignore[return-value]
    raise ValueError(f"padding must be an int or a sequence of 1, 2 or 4 ints, got {padding!r}")


def pad(img: Any, padding: Size | Sequence[int], fill: float | Sequence[float] = 0,
        padding_mode: str = "constant") -> Any:
    """Pad the H and W borders; ``padding`` is int, (lr, tb) or (l, t, r, b) like torchvision."""
    if padding_mode not in _PAD_MODES:
        raise ValueError(f"padding_mode must be one of {sorted(_PAD_MODES)}, got {padding_mode!r}")
    left, top, right, bottom = _ltrb(padding)
    if min(left, top, right, bottom) < 0:
        raise ValueError(f"padding must be non-negative, got {padding!r}")
    im = _Image(img)
    return im.rebuild(_pad_array(im.array, left, top, right, bottom, fill, padding_mode))


def _pad_array(arr: np.ndarray, left: int, top: int, right: int, bottom: int,
               fill: float | Sequence[float] = 0, mode: str = "constant") -> np.ndarray:
    widths = [(0, 0)] * (arr.ndim - 2) + [(top, bottom), (left, right)]
    if mode != "constant":
        return np.pad(arr, widths, mode=_PAD_MODES[mode])
    if isinstance(fill, numbers.Number):
        return np.pad(arr, widths, mode="constant", constant_values=np.asarray(fill).astype(arr.dtype))
    # A per-channel fill (as PIL allows): pad with zeros, then paint the border.
    out = np.pad(arr, widths, mode="constant")
    border = np.pad(np.zeros(arr.shape[-2:], dtype=bool), [(top, bottom), (left, right)], constant_values=True)
    colours = np.asarray(fill).astype(arr.dtype).reshape(-1, 1)
    if arr.ndim == 2:
        colours = colours.reshape(-1)[:1]
    out[..., border] = colours
    return out


def crop(img: Any, top: int, left: int, height: int, width: int) -> Any:
    """The ``height`` x ``width`` window at (top, left); outside the image reads as zeros."""
    im = _Image(img)
    return im.rebuild(_crop_array(im.array, top, left, height, width))


def _crop_array(arr: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    h, w = arr.shape[-2:]
    bottom, right = top + height, left + width
    if top < 0 or left < 0 or bottom > h or right > w:
        arr = _pad_array(arr, max(-left, 0), max(-top, 0), max(right - w, 0), max(bottom - h, 0))
        top, left = max(top, 0), max(left, 0)
    return arr[..., top:top + height, left:left + width]


def center_crop(img: Any, output_size: Size) -> Any:
    """Crop the centre, zero-padding first when the image is smaller (torchvision's rules)."""
    crop_h, crop_w = _pair(output_size, "output_size")
    im = _Image(img)
    arr = im.array
    h, w = arr.shape[-2:]
    if crop_w > w or crop_h > h:
        arr = _pad_array(arr,
                         (crop_w - w) // 2 if crop_w > w else 0, (crop_h - h) // 2 if crop_h > h else 0,
                         (crop_w - w + 1) // 2 if crop_w > w else 0, (crop_h - h + 1) // 2 if crop_h > h else 0)
        h, w = arr.shape[-2:]
    # Python's round (half to even) is what torchvision uses here.
    top, left = int(round((h - crop_h) / 2.0)), int(round((w - crop_w) / 2.0))
    return im.rebuild(arr[..., top:top + crop_h, left:left + crop_w])


def hflip(img: Any) -> Any:
    im = _Image(img)
    return im.rebuild(im.array[..., ::-1])


def vflip(img: Any) -> Any:
    im = _Image(img)
    return im.rebuild(im.array[..., ::-1, :])


def _output_size(h: int, w: int, size: Size, max_size: int | None) -> tuple[int, int]:
    """torchvision's rule: an int (or 1-sequence) sets the shorter edge, keeping the aspect ratio."""
    if isinstance(size, numbers.Integral) or (isinstance(size, Sequence) and len(size) == 1):
        requested = int(size if isinstance(size, numbers.Integral) else size[0])
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = requested, int(requested * long / short)
        if max_size is not None:
            if max_size <= requested:
                raise ValueError(f"max_size = {max_size} must be strictly greater than the requested "
                                 f"size for the smaller edge size = {size}")
            if new_long > max_size:
                new_short, new_long = int(max_size * new_short / new_long), max_size
        return (new_long, new_short) if w <= h else (new_short, new_long)
    if max_size is not None:
        raise ValueError("max_size is only supported when size is an int or a sequence of length 1")
    return _pair(size)


def _interpolation(mode: Any) -> InterpolationMode:
    if isinstance(mode, InterpolationMode):
        return mode
    name = getattr(mode, "value", mode)  # accepts torchvision's enum members too
    try:
        return InterpolationMode(name)
    except ValueError:
        raise NotImplementedError(f"interpolation {mode!r} is not supported; use one of "
                                  f"{[m.value for m in InterpolationMode]}") from None


def resize(img: Any, size: Size, interpolation: Any = InterpolationMode.BILINEAR,
           max_size: int | None = None, antialias: bool | None = True) -> Any:
    """Resize the last two dims.

    Bilinear matches ``torch.nn.functional.interpolate(mode='bilinear',
    align_corners=False, antialias=antialias)``; integer images are computed in
    float and rounded back.  Nearest modes match ``interpolate`` exactly.
    """
    mode = _interpolation(interpolation)
    im = _Image(img)
    h, w = im.height, im.width
    out_h, out_w = _output_size(h, w, size, max_size)
    if out_h <= 0 or out_w <= 0:
        raise ValueError(f"resize to {(out_h, out_w)} is not possible")
    if (out_h, out_w) == (h, w):
        return im.rebuild(im.array)
    if mode is InterpolationMode.BILINEAR:
        out = _resize_bilinear(im.array, out_h, out_w, bool(antialias))
    else:
        exact = mode is InterpolationMode.NEAREST_EXACT
        rows, cols = _nearest_indices(h, out_h, exact), _nearest_indices(w, out_w, exact)
        out = im.array[..., rows[:, None], cols]
    return im.rebuild(out)


def _resize_bilinear(arr: np.ndarray, out_h: int, out_w: int, antialias: bool) -> np.ndarray:
    h, w = arr.shape[-2:]
    work = np.float64 if arr.dtype == np.float64 else np.float32
    rows = _linear_weights(h, out_h, antialias).astype(work)
    cols = _linear_weights(w, out_w, antialias).astype(work)
    # Separable: (out_h, h) @ (..., h, w) @ (w, out_w).
    out = rows @ arr.astype(work) @ cols.T
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        return np.clip(np.round(out), info.min, info.max).astype(arr.dtype)
    if arr.dtype == np.bool_:
        raise TypeError("bilinear resize of bool images is not supported")
    return out.astype(arr.dtype)


@functools.lru_cache(maxsize=256)
def _linear_weights(in_size: int, out_size: int, antialias: bool) -> np.ndarray:
    """Row i holds the weights of input pixels for output pixel i (half-pixel centres).

    This is ATen's triangle-filter formulation: with ``antialias`` and
    downscaling, the filter is stretched by the scale so every input pixel
    contributes; otherwise it is plain bilinear interpolation with edge clamping.
    """
    scale = in_size / out_size
    stretch = scale if antialias and scale > 1.0 else 1.0
    weights = np.zeros((out_size, in_size), dtype=np.float64)
    for i in range(out_size):
        centre = scale * (i + 0.5)
        lo = max(int(centre - stretch + 0.5), 0)
        hi = min(int(centre + stretch + 0.5), in_size)
        taps = np.maximum(0.0, 1.0 - np.abs((np.arange(lo, hi) - centre + 0.5) / stretch))
        total = taps.sum()
        weights[i, lo:hi] = taps / total if total > 0 else taps
    weights.flags.writeable = False  # shared through the cache
    return weights


@functools.lru_cache(maxsize=256)
def _nearest_indices(in_size: int, out_size: int, exact: bool) -> np.ndarray:
    """Source index per output index, with ATen's float32 arithmetic for 'nearest'."""
    scale = np.float32(in_size) / np.float32(out_size)
    if exact:
        # ATen: floorf((i + 0.5) * scale), the product in double, then narrowed to float.
        src = np.floor(((np.arange(out_size) + 0.5) * np.float64(scale)).astype(np.float32))
    elif out_size == in_size:
        src = np.arange(out_size)
    elif out_size == 2 * in_size:
        src = np.arange(out_size) >> 1
    else:
        src = np.floor(np.arange(out_size, dtype=np.float32) * scale)  # float32 product, as ATen
    idx = np.minimum(src.astype(np.int64), in_size - 1)
    idx.flags.writeable = False
    return idx


# ----------------------------------------------------------------------------
# transform classes
# ----------------------------------------------------------------------------

class Compose:
    """Apply transforms one after another."""

    def __init__(self, transforms: Sequence[Callable[[Any], Any]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, img: Any) -> Any:
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self) -> str:
        lines = "".join(f"\n    {t}" for t in self.transforms)
        return f"{type(self).__name__}({lines}\n)"


class ToTensor:
    """NumPy ``(H, W[, C])`` image -> ``(C, H, W)`` tensor; uint8 is scaled to [0, 1]."""

    def __call__(self, pic: Any) -> Any:
        return to_tensor(pic)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Normalize:
    """Per-channel ``(x - mean) / std`` on float tensors."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], inplace: bool = False) -> None:
        self.mean, self.std, self.inplace = mean, std, inplace

    def __call__(self, tensor: Any) -> Any:
        return normalize(tensor, self.mean, self.std, self.inplace)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mean={self.mean}, std={self.std})"


class Resize:
    """Resize to ``size``: (h, w), or an int for the shorter edge (aspect ratio kept)."""

    def __init__(self, size: Size, interpolation: Any = InterpolationMode.BILINEAR,
                 max_size: int | None = None, antialias: bool | None = True) -> None:
        if not isinstance(size, numbers.Integral) and not (isinstance(size, Sequence) and len(size) in (1, 2)):
            raise ValueError(f"size should be an int or a sequence of one or two ints, got {size!r}")
        self.size, self.max_size, self.antialias = size, max_size, antialias
        self.interpolation = _interpolation(interpolation)

    def __call__(self, img: Any) -> Any:
        return resize(img, self.size, self.interpolation, self.max_size, self.antialias)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(size={self.size}, interpolation={self.interpolation.value}, "
                f"max_size={self.max_size}, antialias={self.antialias})")


class CenterCrop:
    """Crop the centre ``size`` window (zero-padded if the image is smaller)."""

    def __init__(self, size: Size) -> None:
        self.size = _pair(size)

    def __call__(self, img: Any) -> Any:
        return center_crop(img, self.size)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"


class Pad:
    """Pad the borders (see :func:`pad`)."""

    def __init__(self, padding: Size | Sequence[int], fill: float | Sequence[float] = 0,
                 padding_mode: str = "constant") -> None:
        _ltrb(padding)  # validate early
        self.padding, self.fill, self.padding_mode = padding, fill, padding_mode

    def __call__(self, img: Any) -> Any:
        return pad(img, self.padding, self.fill, self.padding_mode)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(padding={self.padding}, fill={self.fill}, padding_mode={self.padding_mode})"


def _randint(high: int) -> int:
    """A draw from [0, high) on jitorch's global generator."""
    return int(jitorch.randint(0, high, (1,)).item())


def _rand() -> float:
    return float(jitorch.rand(1).item())


class RandomCrop:
    """Crop a random ``size`` window, optionally padding first (torchvision's semantics)."""

    def __init__(self, size: Size, padding: Size | Sequence[int] | None = None, pad_if_needed: bool = False,
                 fill: float | Sequence[float] = 0, padding_mode: str = "constant") -> None:
        self.size = _pair(size)
        if padding is not None:
            _ltrb(padding)
        self.padding, self.pad_if_needed, self.fill, self.padding_mode = padding, pad_if_needed, fill, padding_mode

    @staticmethod
    def get_params(img: Any, output_size: tuple[int, int]) -> tuple[int, int, int, int]:
        """A random (top, left, height, width) window of ``output_size``."""
        _, h, w = get_dimensions(img)
        th, tw = output_size
        if h < th or w < tw:
            raise ValueError(f"Required crop size {(th, tw)} is larger than input image size {(h, w)}")
        if (h, w) == (th, tw):
            return 0, 0, h, w
        return _randint(h - th + 1), _randint(w - tw + 1), th, tw

    def __call__(self, img: Any) -> Any:
        if self.padding is not None:
            img = pad(img, self.padding, self.fill, self.padding_mode)
        _, h, w = get_dimensions(img)
        th, tw = self.size
        if self.pad_if_needed and w < tw:
            img = pad(img, [tw - w, 0], self.fill, self.padding_mode)
        if self.pad_if_needed and h < th:
            img = pad(img, [0, th - h], self.fill, self.padding_mode)
        top, left, ch, cw = self.get_params(img, self.size)
        return crop(img, top, left, ch, cw)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror left-right with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, img: Any) -> Any:
        return hflip(img) if _rand() < self.p else img

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p})"


class RandomVerticalFlip:
    """Mirror top-bottom with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, img: Any) -> Any:
        return vflip(img) if _rand() < self.p else img

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p})"


class Lambda:
    """Wrap a user function as a transform."""

    def __init__(self, lambd: Callable[[Any], Any]) -> None:
        if not callable(lambd):
            raise TypeError(f"Argument lambd should be callable, got {type(lambd).__name__!r}")
        self.lambd = lambd

    def __call__(self, img: Any) -> Any:
        return self.lambd(img)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
