"""Devices: ``jitorch.device('cpu')``, ``'cuda:0'``.  Backends register here."""
from __future__ import annotations


class Device:
    """Where a tensor's memory lives.  ``jitorch.device('cuda', 0)`` or ``'cuda:0'``."""

    __slots__ = ("type", "index")

    def __new__(cls, type_or_str="cpu", index=None):
        if isinstance(type_or_str, Device):
            return type_or_str
        if isinstance(type_or_str, int):
            type_or_str, index = "cuda", type_or_str
        if not isinstance(type_or_str, str):
            raise TypeError(f"device() received an invalid combination of arguments: {type_or_str!r}")
        s = type_or_str.strip()
        if ":" in s:
            if index is not None:
                raise RuntimeError(f"type (string) must not include an index because index was passed explicitly: {s}")
            s, idx = s.split(":", 1)
            try:
                index = int(idx)
            except ValueError:
                raise RuntimeError(f"Invalid device string: '{type_or_str}'") from None
        if s not in ("cpu", "cuda", "meta"):
            raise RuntimeError(
                f"Expected one of cpu, cuda, meta device type at start of device string: {type_or_str}")
        if index is not None and index < 0:
            raise RuntimeError(f"Device index must not be negative, got {index}")
        key = (s, index)
        cached = _CACHE.get(key)
        if cached is not None:
            return cached
        d = object.__new__(cls)
        object.__setattr__(d, "type", s)
        object.__setattr__(d, "index", index)
        _CACHE[key] = d
        return d

    def __setattr__(self, k, v):
        raise AttributeError("jitorch.device is immutable")

    def __repr__(self) -> str:
        return f"device(type='{self.type}'" + (f", index={self.index})" if self.index is not None else ")")

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            try:
                other = Device(other)
            except RuntimeError:
                return False
        if not isinstance(other, Device):
            return NotImplemented
        return self.type == other.type and self.index == other.index

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __reduce__(self):
        return (Device, (str(self),))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_CACHE: dict = {}
CPU = Device("cpu")

# the CUDA device that a bare "cuda" means (torch.cuda.set_device changes it)
_current_cuda = [0]


def canonical(device) -> Device:
    """Normalize a user's device argument; ``None`` means the CPU.

    CUDA devices come back with an index (a bare ``"cuda"`` is the current
    device, as in torch, where tensors report ``cuda:0``), after checking that
    CUDA is usable and the index names a device; the first CUDA device loads
    the CUDA backend.
    """
    if device is None or device is CPU:
        return CPU
    d = device if device.__class__ is Device else Device(device)
    if d.type == "cuda":
        key = d if d.index is not None else _current_cuda[0]
        ok = _CUDA_OK.get(key)
        return ok if ok is not None else _cuda_device(d, key)
    return d


# validated CUDA devices: cuda Device -> itself; current index (for a bare "cuda") -> cuda:<index>
_CUDA_OK: dict = {}


def _cuda_device(d: Device, key) -> Device:
    from .cuda import driver
    driver.require(d.index)
    index = _current_cuda[0] if d.index is None else d.index
    if index != 0:
        # one allocator, one numba context: memory for cuda:1 would silently land on cuda:0
        raise NotImplementedError(
            f"jitorch's CUDA backend uses one GPU per process (cuda:0); to run on GPU {index}, set "
            f"CUDA_VISIBLE_DEVICES={index} so that it becomes cuda:0")
    from .cuda import backend
    backend.load()
    out = Device("cuda", index)
    _CUDA_OK[key] = out
    return out


def set_current_cuda(index: int) -> None:
    _current_cuda[0] = index


def current_cuda() -> int:
    return _current_cuda[0]
