"""Tensor creation: from data, filled, ranges and random draws.

With ``device='cuda'``, filled tensors are allocated and filled on the device;
tensors from data, ranges and ``eye`` are built on the host and copied over;
random draws come from the CUDA Philox generator when the CUDA backend has one
(else they are drawn on the host, see ``runtime/cuda/ops_creation.py``).
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import _dtype as D
from .._dispatch import replayable_random
from .._tensor import Tensor, wrap
from ..runtime.device import CPU, canonical
from .random import default_generator, host_rng


def _dt(dtype, default=None):
    if dtype is None:
        return default
    return D.to_dtype(dtype)


def _finish(arr, dtype, device, requires_grad):
    """The tensor for host array ``arr`` on ``device`` (copied there unless it is the CPU)."""
    dev = canonical(device)
    if dev is not CPU and arr.__class__ is np.ndarray:
        from ..runtime.cuda import array
        arr = array.from_host(arr)
    t = wrap(arr, dtype, dev)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _store(arr, dt: D.dtype) -> np.ndarray:
    """Host values ``arr`` as ``dt``'s storage: NumPy has no bfloat16, so those are rounded to bit patterns."""
    if dt is D.bfloat16:
        return D.to_storage(arr, dt)
    return arr.astype(dt.numpy_dtype, copy=False)


def _copy_as(src: np.ndarray, dt: D.dtype) -> np.ndarray:
    """A new array holding host storage array ``src`` converted to ``dt`` (either may be bfloat16)."""
    if src.dtype == dt.numpy_dtype:
        return np.array(src, copy=True)
    if dt is D.bfloat16 or D.is_bf16(src.dtype):
        return _store(D.host_values(src), dt).copy()  # (a copy even when the conversion was a no-op)
    return np.array(src, dtype=dt.numpy_dtype, copy=True)


def _shape(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    out = []
    for s in size:
        if isinstance(s, Tensor):
            s = s.item()
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool):
            raise TypeError(f"expected a sequence of integers for the size, but got element of type {type(s).__name__}")
        if s < 0:
            raise RuntimeError(f"Trying to create tensor with negative dimension {s}: {list(size)}")
        out.append(int(s))
    return tuple(out)


def _infer_dtype(data) -> D.dtype:
    """torch.tensor's inference: Python bool/int/float are bool/int64/default float, NumPy scalars,
    arrays and tensors keep their dtype, and all of them promote together."""
    found = set()

    def walk(x):
        if isinstance(x, Tensor):
            found.add(x.dtype)
        elif isinstance(x, (np.ndarray, np.generic)):
            found.add(D.from_numpy(x.dtype))
        elif isinstance(x, (list, tuple)):
            for e in x:
                walk(e)
        elif isinstance(x, bool):
            found.add(D.bool_)
        elif isinstance(x, numbers.Integral):
            found.add(D.int64)
        elif isinstance(x, numbers.Real):
            found.add(D.get_default_dtype())
        elif isinstance(x, numbers.Complex):
            raise TypeError("complex tensors are not supported by jitorch")
        else:
            raise TypeError(f"Could not infer dtype of {type(x).__name__}")

    walk(data)
    if not found:
        return D.get_default_dtype()
    dts = sorted(found, key=lambda d: d.name)  # promotion is order-free; sorted for determinism
    dt = dts[0]
    for d in dts[1:]:
        dt = D.promote_types(dt, d)
    return dt


def _to_numpy_nested(data):
    if isinstance(data, Tensor):
        return D.host_values(data._host())
    if isinstance(data, (list, tuple)):
        items = [_to_numpy_nested(x) for x in data]
        if not items:
            return np.array([], dtype=np.float64)
        try:
            return np.stack([np.asarray(x) for x in items])
        except ValueError:
            raise ValueError(f"expected sequence of length {len(np.asarray(items[0]))} at dim 1 (got "
                             f"{[len(np.asarray(x)) if np.asarray(x).ndim else 0 for x in items]})") from None
    return data


def tensor(data, *, dtype=None, device=None, requires_grad=False, pin_memory=False) -> Tensor:
    """A new tensor holding a copy of ``data`` (nested lists, scalars, arrays, tensors)."""
    if isinstance(data, Tensor):
        dt = _dt(dtype, data.dtype)
        if device is None:
            device = data._device
        arr = _copy_as(data._host(), dt)
    elif isinstance(data, np.ndarray):
        dt = _dt(dtype, D.from_numpy(data.dtype))
        arr = _copy_as(data, dt)
    else:
        dt = _dt(dtype) or _infer_dtype(data)
        try:
            if dt is D.bfloat16:  # built in float32, then rounded (torch's double -> float -> bfloat16)
                with np.errstate(over="ignore"):
                    arr = _store(np.array(_to_numpy_nested(data), dtype=np.float32), dt)
            else:
                arr = np.array(_to_numpy_nested(data), dtype=dt.numpy_dtype)
        except OverflowError:
            raise RuntimeError(f"value cannot be converted to type {dt.name} without overflow") from None
        if arr.dtype == object:
            raise ValueError("too many dimensions or ragged nested sequence")
    if not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)
    return _finish(arr, dt, device, requires_grad)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """Share memory with ``data`` when possible (tensors, NumPy arrays)."""
    if isinstance(data, Tensor):
        if device is not None and canonical(device) is not data._device:
            data = data.to(device)
        return data if dtype is None or D.to_dtype(dtype) is data.dtype else data.to(dtype)
    if isinstance(data, np.ndarray) and (dtype is None or D.to_dtype(dtype).numpy_dtype == data.dtype):
        D.from_numpy(data.dtype)
        return _finish(data, D.from_numpy(data.dtype), device, False)
    return tensor(data, dtype=dtype, device=device)


asarray = as_tensor


def from_numpy(arr: np.ndarray) -> Tensor:
    """A tensor sharing memory with NumPy array ``arr``."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(arr).__name__})")
    dt = D.from_numpy(arr.dtype)
    if any(s < 0 for s in arr.strides):
        raise ValueError("At least one stride in the given numpy array is negative, and tensors with negative "
                         "strides are not currently supported. (You can probably work around this by making "
                         "a copy of your array  with array.copy().) ")
    if arr.dtype.byteorder not in "=|":
        raise ValueError("given numpy array has byte order different from the native byte order.")
    return wrap(arr, dt)


def _filled(size, value, dtype, device, requires_grad, default=None):
    shape = _shape(size)
    dt = _dt(dtype, default or D.get_default_dtype())
    return _filled_array(shape, value, dt, device, requires_grad)


def _filled_array(shape, value, dt, device, requires_grad):
    dev = canonical(device)
    if dev is not CPU:  # allocate and fill on the device: no host array, no transfer
        from ..runtime.cuda import ops_creation
        if value is None or dt is D.bfloat16:
            host_value = float(value) if value is not None else None  # copy.fill rounds it to bfloat16
        else:
            host_value = np.full((), value, dtype=dt.numpy_dtype)[()]
        return _finish(ops_creation.full(shape, dt.numpy_dtype, host_value), dt, dev, requires_grad)
    if value is None:
        arr = np.empty(shape, dt.numpy_dtype)
    elif dt is D.bfloat16:
        arr = np.full(shape, D.bf16_bits(value), dtype=np.uint16).view(D.BF16_STORAGE)
    else:
        arr = np.full(shape, value, dtype=dt.numpy_dtype)
    return _finish(arr, dt, dev, requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad=False, out=None, layout=None, pin_memory=False):
    return _filled(size, 0, dtype, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False, out=None, layout=None, pin_memory=False):
    return _filled(size, 1, dtype, device, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False, out=None, layout=None, pin_memory=False,
          memory_format=None):
    return _filled(size, None, dtype, device, requires_grad)


def full(size, fill_value, *, dtype=None, device=None, requires_grad=False, out=None, layout=None):
    if dtype is None:
        dt = D.scalar_dtype(fill_value.item() if isinstance(fill_value, Tensor) else fill_value)
    else:
        dt = D.to_dtype(dtype)
    if isinstance(fill_value, Tensor):
        fill_value = fill_value.item()
    return _filled((tuple(size) if not isinstance(size, int) else (size,),), fill_value, dt, device, requires_grad)


def _like(input, value, dtype, device, requires_grad):
    dt = _dt(dtype, input.dtype)
    return _filled_array(tuple(input.shape), value, dt, device if device is not None else input.device,
                         requires_grad)


def zeros_like(input, *, dtype=None, device=None, requires_grad=False, layout=None, memory_format=None):
    return _like(input, 0, dtype, device, requires_grad)


def ones_like(input, *, dtype=None, device=None, requires_grad=False, layout=None, memory_format=None):
    return _like(input, 1, dtype, device, requires_grad)


def empty_like(input, *, dtype=None, device=None, requires_grad=False, layout=None, memory_format=None):
    return _like(input, None, dtype, device, requires_grad)


def full_like(input, fill_value, *, dtype=None, device=None, requires_grad=False, layout=None,
              memory_format=None):
    return _like(input, fill_value, dtype, device, requires_grad)


def arange(start, end=None, step=1, *, dtype=None, device=None, requires_grad=False, out=None, layout=None):
    """Values from ``start`` to ``end`` (exclusive) by ``step``."""
    if end is None:
        start, end = 0, start
    vals = [v.item() if isinstance(v, Tensor) else v for v in (start, end, step)]
    start, end, step = vals
    if step == 0:
        raise RuntimeError("step must be nonzero")
    if (end - start) / step < 0:
        raise RuntimeError("upper bound and larger bound inconsistent with step sign")
    if dtype is None:
        dt = D.get_default_dtype() if any(isinstance(v, float) for v in vals) else D.int64
    else:
        dt = D.to_dtype(dtype)
    import math
    n = max(math.ceil((end - start) / step), 0)
    arr = (start + np.arange(n, dtype=np.float64) * step) if dt.is_floating_point or any(
        isinstance(v, float) for v in vals) else np.arange(start, end, step, dtype=np.int64)
    return _finish(_store(arr, dt), dt, device, requires_grad)


def range_(start, end, step=1, *, dtype=None, device=None, requires_grad=False):
    return arange(start, end + step / 2 if step > 0 else end - step / 2, step,
                  dtype=dtype or D.get_default_dtype(), device=device, requires_grad=requires_grad)


def linspace(start, end, steps, *, dtype=None, device=None, requires_grad=False, out=None):
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    dt = _dt(dtype, D.get_default_dtype())
    start = start.item() if isinstance(start, Tensor) else start
    end = end.item() if isinstance(end, Tensor) else end
    arr = np.linspace(start, end, steps, dtype=np.float64)
    return _finish(_store(arr, dt), dt, device, requires_grad)


def logspace(start, end, steps, base=10.0, *, dtype=None, device=None, requires_grad=False):
    dt = _dt(dtype, D.get_default_dtype())
    arr = np.power(base, np.linspace(start, end, steps, dtype=np.float64))
    return _finish(_store(arr, dt), dt, device, requires_grad)


def eye(n, m=None, *, dtype=None, device=None, requires_grad=False, out=None):
    if n < 0 or (m is not None and m < 0):
        raise RuntimeError(f"n must be greater or equal to 0, got {n}")
    dt = _dt(dtype, D.get_default_dtype())
    arr = _store(np.eye(n, m, dtype=np.float32), dt) if dt is D.bfloat16 else np.eye(n, m, dtype=dt.numpy_dtype)
    return _finish(arr, dt, device, requires_grad)


# -- random -------------------------------------------------------------------------------------
def _gen(generator):
    from .._dispatch import note_random_draw
    note_random_draw()
    return generator if generator is not None else default_generator


@replayable_random
def rand(*size, generator=None, dtype=None, device=None, requires_grad=False, out=None):
    """Uniform samples on [0, 1)."""
    dt = _dt(dtype, D.get_default_dtype())
    _float_only("check_uniform_bounds", dt)
    shape = _shape(size)
    g = _gen(generator)

    def host():
        arr = host_rng(g).random(shape, dtype=np.float64 if dt is D.float64 else np.float32)
        return _store(arr, dt)
    return _random(device, "uniform", host, dt, requires_grad, shape, generator)


@replayable_random
def randn(*size, generator=None, dtype=None, device=None, requires_grad=False, out=None):
    """Standard normal samples."""
    dt = _dt(dtype, D.get_default_dtype())
    _float_only("normal_kernel_cpu", dt)
    shape = _shape(size)
    g = _gen(generator)

    def host():
        arr = host_rng(g).standard_normal(shape, dtype=np.float64 if dt is D.float64 else np.float32)
        return _store(arr, dt)
    return _random(device, "normal", host, dt, requires_grad, shape, generator)


def _random(device, kind, host_draw, dt, requires_grad, shape, generator, **params):
    """A random tensor: ``host_draw()`` on the CPU; on CUDA the device generator's ``kind`` draw."""
    dev = canonical(device)
    if dev is CPU:
        return _finish(host_draw(), dt, dev, requires_grad)
    from ..runtime.cuda import ops_creation
    arr = ops_creation.random(kind, shape, dt.numpy_dtype, generator, host_draw, **params)
    return _finish(arr, dt, dev, requires_grad)


def _float_only(kernel, dt):
    # torch names the kernel that has no integer version
    if not dt.is_floating_point:
        raise NotImplementedError(f"\"{kernel}\" not implemented for '{D.type_word(dt)}'")


@replayable_random
def randint(low, high=None, size=None, *, generator=None, dtype=None, device=None, requires_grad=False):
    """Integers uniform on [low, high)."""
    if size is None and isinstance(high, (tuple, list)):  # randint(high, size)
        low, high, size = 0, low, high
    if high is None:
        low, high = 0, low
    if size is None:
        raise TypeError("randint() missing required argument 'size'")
    if high <= low:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} >= to={high}")
    dt = _dt(dtype, D.int64)
    shape = _shape((size,))
    g = _gen(generator)

    def host():
        return _store(host_rng(g).integers(low, high, size=shape, dtype=np.int64), dt)
    return _random(device, "randint", host, dt, requires_grad, shape, generator, low=low, high=high)


def randint_like(input, low=0, high=None, *, dtype=None, generator=None, device=None):
    if high is None:
        low, high = 0, low
    return randint(low, high, tuple(input.shape), dtype=dtype or input.dtype, generator=generator,
                   device=device if device is not None else input.device)


def rand_like(input, *, dtype=None, generator=None, device=None, requires_grad=False):
    return rand(*input.shape, dtype=dtype or input.dtype, generator=generator,
                device=device if device is not None else input.device, requires_grad=requires_grad)


def randn_like(input, *, dtype=None, generator=None, device=None, requires_grad=False):
    return randn(*input.shape, dtype=dtype or input.dtype, generator=generator,
                 device=device if device is not None else input.device, requires_grad=requires_grad)


@replayable_random
def randperm(n, *, generator=None, dtype=None, device=None, requires_grad=False):
    """A random permutation of 0..n-1."""
    if n < 0:
        raise RuntimeError(f"n must be non-negative, got{n}")
    dt = _dt(dtype, D.int64)
    g = _gen(generator)
    return _random(device, "randperm", lambda: _store(host_rng(g).permutation(n), dt), dt, requires_grad,
                   (n,), generator)


@replayable_random
def normal(mean=0.0, std=1.0, size=None, *, generator=None, dtype=None, device=None, requires_grad=False):
    """Samples of N(mean, std**2): ``mean``/``std`` floats (with ``size``) or tensors (broadcast together)."""
    _gen(generator)
    if isinstance(mean, Tensor) or isinstance(std, Tensor):
        ref = mean if isinstance(mean, Tensor) else std
        dev = canonical(device if device is not None else ref.device)
        _check_std(std)
        if dev is not CPU and ref._data.__class__ is not np.ndarray:
            return _normal_from_tensors(mean, std, ref, generator, requires_grad)
        m = D.host_values(mean._host()) if isinstance(mean, Tensor) else mean
        s = D.host_values(std._host()) if isinstance(std, Tensor) else std
        shape = np.broadcast_shapes(np.shape(m), np.shape(s))
        arr = _store(m + s * host_rng(generator).standard_normal(shape), ref.dtype)
        return _finish(arr, ref.dtype, dev, requires_grad)
    _check_std(std)
    dt = _dt(dtype, D.get_default_dtype())
    shape = _shape((size,))
    dev = canonical(device)
    if dev is not CPU:
        return _finish(_device_fill(shape, dt, "normal_", float(mean), float(std), generator=generator), dt, dev,
                       requires_grad)
    arr = _store(mean + std * host_rng(generator).standard_normal(shape), dt)
    return _finish(arr, dt, dev, requires_grad)


def _check_std(std) -> None:
    """torch refuses a negative standard deviation (for a device tensor this reads one flag back, as torch does)."""
    if isinstance(std, Tensor):
        if std.numel() and bool((D.host_values(std._host()) < 0).any() if std._data.__class__ is np.ndarray else
                                (std < 0).any().item()):
            raise RuntimeError("normal expects all elements of std >= 0.0")
    elif std < 0:
        raise RuntimeError(f"normal expects std >= 0.0, but found std {std}")


def _device_fill(shape, dt, kind, *params, generator=None):
    """A new device array of ``shape`` filled by the CUDA generator's ``kind`` draw (see ``philox.fill_``)."""
    from ..runtime.cuda import array, philox
    out = array.empty(tuple(shape), dt.numpy_dtype)
    philox.fill_(kind, out, *params, generator=generator)
    return out


def _normal_from_tensors(mean, std, ref: Tensor, generator, requires_grad):
    """``mean + std * N(0, 1)`` on the device of ``ref`` (not differentiable, as the CPU path)."""
    from ..autograd import grad_mode
    shape = tuple(np.broadcast_shapes(tuple(getattr(mean, "shape", ())), tuple(getattr(std, "shape", ()))))
    dt = ref.dtype if ref.dtype.is_floating_point else D.get_default_dtype()
    z = wrap(_device_fill(shape, dt, "normal_", 0.0, 1.0, generator=generator), dt, ref._device)
    with grad_mode.no_grad():
        m = mean.detach() if isinstance(mean, Tensor) else mean
        s = std.detach() if isinstance(std, Tensor) else std
        out = (z * s + m).to(ref.dtype)
    if requires_grad:
        out.requires_grad_(True)
    return out


def bernoulli(input, p=None, *, generator=None):
    """Samples 1 with probability ``input`` (or ``p``), else 0."""
    if p is not None and not 0 <= p <= 1:
        raise RuntimeError(f"bernoulli_ expects p to be in [0, 1], but got p={p}")
    if input._data.__class__ is not np.ndarray:
        # the CUDA kernel reads the probabilities on the device; like torch's, it does not read them back to
        # validate the range (out-of-range p acts as clamped to [0, 1], NaN gives 0)
        _gen(generator)
        out = _device_fill(tuple(input.shape), input.dtype, "bernoulli_", input._data if p is None else float(p),
                           generator=generator)
        return _finish(out, input.dtype, input.device, False)
    probs = D.host_values(input._host()) if p is None else np.full(input.shape, p)
    if np.any((probs < 0) | (probs > 1)):
        raise RuntimeError("Expected p_in >= 0 && p_in <= 1 to be true, but got false.")
    draw = host_rng(_gen(generator)).random(input.shape) < probs
    return _finish(_store(draw, input.dtype), input.dtype, input.device, False)


def multinomial(input, num_samples, replacement=False, *, generator=None):
    """Draw category indices with probabilities proportional to the rows of ``input``."""
    g = _gen(generator)
    if input._data.__class__ is not np.ndarray:
        return _multinomial_on_device(input, int(num_samples), bool(replacement), generator)
    rng = host_rng(g)
    w = np.asarray(D.host_values(input._host()), dtype=np.float64)
    if np.any(w < 0) or not np.all(np.isfinite(w)):
        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
    rows = w.reshape(-1, w.shape[-1])
    out = np.empty((rows.shape[0], num_samples), dtype=np.int64)
    for i, r in enumerate(rows):
        s = r.sum()
        if s <= 0:
            raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")
        if not replacement and num_samples > np.count_nonzero(r):
            raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without replacement")
        out[i] = rng.choice(r.shape[0], size=num_samples, replace=replacement, p=r / s)
    return _finish(out.reshape(w.shape[:-1] + (num_samples,)), D.int64, input.device, False)


def _multinomial_on_device(input: Tensor, num_samples: int, replacement: bool, generator) -> Tensor:
    """``multinomial`` with every step on the tensor's device, as torch's CUDA path does.

    Without replacement (or for one sample): the ``num_samples`` largest of ``p / q`` with ``q ~ Exp(1)``
    (the exponential form of the Gumbel-max trick: a draw in proportion to ``p``, then among the rest);
    with replacement: inverse-CDF sampling, a binary search of ``u * total`` in each row's cumulative sum.
    The validity checks are combined into one small tensor read back once.
    """
    import jitorch

    from ..autograd import grad_mode
    from . import sorting
    if input.ndim not in (1, 2):
        raise RuntimeError(f"prob_dist must be 1 or 2 dim, got {input.ndim}")
    if num_samples <= 0:
        raise RuntimeError("cannot sample n_sample <= 0 samples")
    ncat = input.shape[-1]
    if not replacement and num_samples > ncat:
        raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without replacement")
    dev = input._device
    with grad_mode.no_grad():
        w = input.detach().reshape(-1, ncat).to(D.float64)
        nrows = w.shape[0]
        checks = [jitorch.logical_not(jitorch.logical_and(jitorch.isfinite(w), w >= 0)).any(),
                  (w.sum(-1) <= 0).any()]
        if not replacement:
            checks.append(((w > 0).sum(-1) < num_samples).any())
        flags = jitorch.stack(checks).cpu().numpy()
        if flags[0]:
            raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
        if flags[1]:
            raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")
        if not replacement and flags[2]:
            raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without replacement")
        if not replacement or num_samples == 1:
            q = wrap(_device_fill((nrows, ncat), D.float64, "exponential_", 1.0, generator=generator), D.float64,
                     dev)
            keys = jitorch.where(w > 0, w / q, jitorch.zeros((), dtype=D.float64, device=dev))
            idx = sorting.topk(keys, num_samples, -1).indices
        else:
            cdf = jitorch.cumsum(w, -1)
            u = wrap(_device_fill((nrows, num_samples), D.float64, "uniform_", 0.0, 1.0, generator=generator),
                     D.float64, dev)
            idx = sorting.searchsorted(cdf, u * cdf[:, -1:], right=True).clamp_(max=ncat - 1)
    return idx.reshape(tuple(input.shape[:-1]) + (num_samples,))


def _legacy_tensor_args(args, kwargs):
    """``Tensor(2, 3)`` (uninitialized float32) or ``Tensor([1, 2])`` (data)."""
    if len(args) == 1 and not isinstance(args[0], int):
        data = args[0]
        return np.array(_to_numpy_nested(data), dtype=np.float32)
    return np.empty(_shape(args), dtype=np.float32)
