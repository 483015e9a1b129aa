"""Eager execution of registry ops on tensors, with autograd recording.

Every public op ends here: ``elementwise`` for scalar-template primitives,
``apply`` for kernel primitives.  Each runs the device kernel and, when grad
mode is on and an input requires grad, records one ``OpNode``.
"""
from __future__ import annotations

import numpy as np

from . import _dtype as D
from ._tensor import Tensor, wrap, wrap_view
from .autograd import grad_mode
from .autograd.graph import OpNode, SavedTensor, grad_accumulator
from .runtime import cpu
from .runtime.bf16 import run_via_float32
from .runtime.device import CPU as _CPU

_state = grad_mode._state
# the compiler's graph recorder while a function is being captured (see compiler/trace.py)
_tracer = None


def replayable_random(fn):
    """Mark a random op whose tensor arguments are only its target (fills) or none (creation).

    While a function is captured, calling it records a graph node that calls
    ``fn`` again with the same arguments at run time, so every compiled call
    draws fresh numbers from the same generator in the same order as eager.
    """
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        tracer = _tracer
        if tracer is None:
            return fn(*args, **kwargs)
        target = args[0] if args and isinstance(args[0], Tensor) else None
        others = list(args[1:] if target is not None else args) + list(kwargs.values())
        if any(isinstance(a, Tensor) for a in others):
            return fn(*args, **kwargs)  # tensor-valued parameters: note_random_draw breaks the graph
        set_tracer(None)
        try:
            result = fn(*args, **kwargs)
        finally:
            set_tracer(tracer)
        tracer.on_random(fn, args, kwargs, result, target)
        return result

    return wrapper


def note_random_draw() -> None:
    """Random ops call this: a capture cannot replay a draw it did not record."""
    if _tracer is not None:
        _tracer.record_break("random number draw", "random op")


def opaque_call(what: str, fn, *args, **kwargs):
    """Run ``fn`` (a backward pass, an optimizer step) outside any capture.

    A compiled function treats such a call as a break it resumes after: the graph
    captured so far runs first, the call runs eagerly, and capture continues.
    """
    tracer = _tracer
    if tracer is None:
        return fn(*args, **kwargs)
    return tracer.run_opaque(what, fn, args, kwargs)


def set_tracer(tracer):
    """Install (or, with None, remove) the recorder that sees every op; returns the previous one."""
    global _tracer
    from . import _tensor
    prev, _tracer = _tracer, tracer
    _tensor._tracer = tracer
    return prev
_result_type = D.result_type
_float = D.float32
_from_np = D.from_numpy
_BF16 = D.bfloat16


def _rule(op, dt):
    """(compute dtype, output dtype) of an elementwise op for promoted dtype ``dt``."""
    cache = op.__dict__.setdefault("_rule_cache", {})
    r = cache.get(dt)
    if r is None:
        rule = op.dtype_rule
        if rule == "promote":
            r = (dt, dt)
        elif rule == "float":
            f = dt if dt.is_floating_point else D.get_default_dtype()
            r = (f, f)
        elif rule == "bool":
            r = (dt, D.bool_)
        elif rule == "logical":
            r = (D.bool_, D.bool_)
        elif rule == "integral":
            if dt.is_floating_point:
                raise NotImplementedError(f"\"{op.name}_cpu\" not implemented for '{_type_word(dt)}'")
            r = (dt, dt)
        elif rule == "int_or_float":  # result keeps integer type; bool promoted to int64
            r = (D.int64, D.int64) if dt is D.bool_ else (dt, dt)
        else:
            raise AssertionError(rule)
        if rule != "float" or dt.is_floating_point:
            cache[dt] = r
    return r


def _type_word(dt) -> str:
    return D.type_word(dt)


def broadcast_shapes(*shapes):
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        pass
    nd = max(len(s) for s in shapes)
    padded = [(1,) * (nd - len(s)) + tuple(s) for s in shapes]
    for i in range(nd):
        sizes = {p[i] for p in padded if p[i] != 1}
        if len(sizes) > 1:
            a, b = sorted(sizes)[:2]
            raise RuntimeError(
                f"The size of tensor a ({a}) must match the size of tensor b ({b}) at non-singleton "
                f"dimension {i}")
    raise RuntimeError(f"shapes {shapes} cannot be broadcast together")


def elementwise(op, *args, out=None, inplace=None, dtype=None):
    """Run an elementwise primitive on tensors and Python scalars.

    ``dtype`` overrides the promoted dtype (``where`` promotes only its values).
    """
    if _tracer is not None and _tracer.lazy:  # a resumed compiled graph defers the op
        r = _tracer.lazy_elementwise(op, args, out, inplace)
        if r is not NotImplemented:
            return r
    tensors = [a for a in args if isinstance(a, Tensor)]
    first = tensors[0]
    if dtype is not None:
        dt = dtype
    elif len(tensors) == len(args) and all(t._dtype is first._dtype for t in tensors):
        dt = first._dtype
    else:
        for a in args:
            if not isinstance(a, (Tensor, int, float, bool, np.generic)):
                raise TypeError(f"{op.name}(): unsupported operand type {type(a).__name__}")
        dt = _result_type(*args)
    compute, odt = _rule(op, dt)
    target = inplace if inplace is not None else out
    if len(tensors) == 1:
        shape = first._data.shape
    else:
        shape = tensors[0]._data.shape
        for t in tensors[1:]:
            if t._data.shape != shape:
                shape = broadcast_shapes(*[t._data.shape for t in tensors])
                break
    dev = first._device
    run = cpu.run_elementwise
    for t in tensors[1:]:
        if t._device is not dev:
            dev, args = _common_device(tensors, args, target)
            break
    if target is not None and target._device is not dev:
        raise _device_mismatch(dev, target._device)
    if dev is not _CPU:
        run = _device_runner(dev)
    if target is not None:
        if target._data.shape != shape:
            if inplace is not None:
                raise RuntimeError(
                    f"output with shape {list(target.shape)} doesn't match the broadcast shape {list(shape)}")
            target._data = _empty_on(dev, shape, target._dtype.numpy_dtype)
        if not D.can_cast(odt, target._dtype):
            raise RuntimeError(f"result type {_type_word(odt)} can't be cast to the desired output type "
                               f"{_type_word(target._dtype)}")
        odt = target._dtype
    operands = [a._data if isinstance(a, Tensor) else a for a in args]
    if dev is not _CPU:
        # a CPU 0-d tensor in a CUDA op is a scalar operand, as in torch (its dtype has been promoted already)
        operands = [D.host_values(o).item() if o.__class__ is np.ndarray else o for o in operands]
    needs_grad = _state.grad_enabled and op.differentiable and any(t._requires_grad for t in tensors)
    if target is not None and not target._data.flags.writeable:
        raise RuntimeError(
            "unsupported operation: more than one element of the written-to tensor refers to a single memory "
            "location. Please clone() the tensor before performing the operation.")
    if inplace is not None:
        if needs_grad or inplace._requires_grad:
            _check_inplace(inplace)
        if needs_grad:
            # the backward sees the pre-op tensor; when the rule reads its value, keep a copy of it
            old = _snapshot(inplace, copy=op.saves in ("inputs", "both", "cross"))
            args = tuple(old if a is inplace else a for a in args)
        if _tracer is not None:
            _tracer.on_elementwise(op, args, inplace, compute, mutates=inplace)
        run(op, operands, compute, odt.numpy_dtype, shape, out=inplace._data)
        inplace._version[0] += 1
        if needs_grad:
            _record(op, args, (inplace,), None, in_place=True)
        return inplace
    res = run(op, operands, compute, odt.numpy_dtype, shape, out=out._data if out is not None else None)
    if out is not None:
        out._version[0] += 1
        if _tracer is not None:
            _tracer.on_elementwise(op, args, out, compute, mutates=out)
        return out
    result = wrap(res, odt, dev)
    if args[0] is first and dev is _CPU:
        _remember_fast(op, args, compute, odt, res)
    if _tracer is not None:  # before _record: saved-output aliases must find the traced value
        _tracer.on_elementwise(op, args, result, compute)
    if needs_grad:
        _record(op, args, (result,), None)
    return result


def _device_mismatch(a, b) -> RuntimeError:
    return RuntimeError(
        f"Expected all tensors to be on the same device, but found at least two devices, {a} and {b}!")


def _common_device(tensors, args, target):
    """The device of an elementwise op whose tensors are not all on one device.

    As in torch, CPU 0-d tensors may join a CUDA op (as scalars); any other mix
    is an error.  A CPU 0-d operand that needs a gradient is moved to the device
    (a differentiable copy), so its gradient flows back to the CPU.
    """
    dev = None
    for t in tensors:
        if t._device is _CPU and t._data.ndim == 0:
            continue
        if dev is None:
            dev = t._device
        elif t._device is not dev:
            raise _device_mismatch(dev, t._device)
    if target is not None and target._device is not dev:
        raise _device_mismatch(dev, target._device)
    if _state.grad_enabled and any(t._device is _CPU and t._requires_grad for t in tensors):
        args = tuple(a.to(dev) if isinstance(a, Tensor) and a._device is _CPU and a._requires_grad else a
                     for a in args)
    return dev, args


_runners: dict = {}


def _device_runner(dev):
    """``run_elementwise`` of a non-CPU device's backend (imported on first use)."""
    run = _runners.get(dev.type)
    if run is None:
        if dev.type != "cuda":
            raise NotImplementedError(f"elementwise ops have no implementation for device '{dev.type}'")
        from .runtime.cuda import backend
        backend.load()
        from .runtime.cuda.elementwise import run_elementwise as run
        _runners[dev.type] = run
    return run


def _empty_on(dev, shape, np_dtype):
    if dev is _CPU:
        return np.empty(shape, dtype=np_dtype)
    from .runtime.cuda import array
    return array.empty(shape, np_dtype)


# -- fast paths ----------------------------------------------------------------------------------
# Small same-shape, same-dtype, contiguous operands skip promotion, broadcasting
# and kernel lookup: ``op.fast`` maps (dtype, ndim) to the compiled entry point,
# filled by the general path the first time it runs such a call.
_empty = np.empty
_SMALL = cpu.PARALLEL_THRESHOLD


def binary(op, a, b):
    """``a <op> b`` for a tensor ``a`` and a tensor or Python scalar ``b``."""
    if _tracer is not None:
        return elementwise(op, a, b)
    da = a._data
    if b.__class__ is Tensor or isinstance(b, Tensor):
        db = b._data
        if a._dtype is b._dtype and da.shape == db.shape and da.size < _SMALL:
            fast = op.fast.get((a._dtype, da.ndim))
            if fast is not None and da.flags.c_contiguous and db.flags.c_contiguous and a._device is b._device is _CPU:
                res = _empty(da.shape, fast[1])
                fast[0](da, db, res)
                t = wrap(res, fast[2], a._device)
                if _state.grad_enabled and (a._requires_grad or b._requires_grad) and op.differentiable:
                    if a._requires_grad:
                        _record_small(op, a, b, t)
                    else:
                        _record(op, (a, b), (t,), None)
                return t
    elif (b.__class__ is float or b.__class__ is int) and da.size < _SMALL:
        fast = op.fast_scalar.get((a._dtype, da.ndim, b.__class__))
        if fast is not None and da.flags.c_contiguous and a._device is _CPU:
            res = _empty(da.shape, fast[1])
            fast[0](da, fast[3](b), res)
            t = wrap(res, fast[2], a._device)
            if a._requires_grad and _state.grad_enabled and op.differentiable:
                _record_small(op, a, b, t)
            return t
    if a._device is not _CPU:
        return _device_binary(op, a, b)
    return elementwise(op, a, b)


def unary(op, a):
    if _tracer is not None:
        return elementwise(op, a)
    da = a._data
    if da.size < _SMALL:
        fast = op.fast.get((a._dtype, da.ndim))
        if fast is not None and da.flags.c_contiguous and a._device is _CPU:
            res = _empty(da.shape, fast[1])
            fast[0](da, res)
            t = wrap(res, fast[2], a._device)
            if a._requires_grad and _state.grad_enabled and op.differentiable:
                _record_small(op, a, _NO_OPERAND, t)
            return t
    if a._device is not _CPU:
        return _device_unary(op, a)
    return elementwise(op, a)


# Device tensors (CUDA): the same shortcut, minus the CPU kernel table: same-dtype, same-shape
# operands (or a Python scalar that does not change the dtype) skip promotion and broadcasting
# and go straight to the device's run_elementwise.
def _device_binary(op, a, b):
    da = a._data
    if b.__class__ is Tensor or isinstance(b, Tensor):
        if b._dtype is not a._dtype or b._device is not a._device or b._data.shape != da.shape:
            return elementwise(op, a, b)
        operand = b._data
        b_grad = b._requires_grad
    elif (b.__class__ is float and a._dtype.is_floating_point) or (b.__class__ is int and a._dtype is not D.bool_):
        operand = b
        b_grad = False
    else:
        return elementwise(op, a, b)
    compute, odt = _rule(op, a._dtype)
    res = _device_runner(a._device)(op, [da, operand], compute, odt.numpy_dtype, da.shape)
    t = wrap(res, odt, a._device)
    if (a._requires_grad or b_grad) and _state.grad_enabled and op.differentiable:
        if a._requires_grad:
            _record_small(op, a, b, t)
        else:
            _record(op, (a, b), (t,), None)
    return t


def _device_unary(op, a):
    da = a._data
    compute, odt = _rule(op, a._dtype)
    res = _device_runner(a._device)(op, [da], compute, odt.numpy_dtype, da.shape)
    t = wrap(res, odt, a._device)
    if a._requires_grad and _state.grad_enabled and op.differentiable:
        _record_small(op, a, _NO_OPERAND, t)
    return t


def _remember_fast(op, args, compute, odt, res_np):
    """After a general-path call, register the kernel for the fast path if it qualifies."""
    if len(args) > 2 or res_np.size >= _SMALL or odt is D.float16 or compute is D.float16:
        return
    a = args[0]
    if not isinstance(a, Tensor) or not a._data.flags.c_contiguous or a._data.shape != res_np.shape:
        return
    key_nd = res_np.ndim
    if len(args) == 1:
        ep = op.kernels.get(((a._data.dtype,), compute.numpy_dtype, odt.numpy_dtype, "flat", False, key_nd))
        if ep is not None:
            op.fast[(a._dtype, key_nd)] = (ep, odt.numpy_dtype, odt)
        return
    b = args[1]
    if isinstance(b, Tensor):
        if b._dtype is a._dtype and b._data.shape == res_np.shape and b._data.flags.c_contiguous:
            ep = op.kernels.get(((a._data.dtype, b._data.dtype), compute.numpy_dtype, odt.numpy_dtype, "flat", False,
                                 key_nd))
            if ep is not None:
                op.fast[(a._dtype, key_nd)] = (ep, odt.numpy_dtype, odt)
    elif b.__class__ in (float, int) and a._dtype is not D.bool_ and (
            a._dtype.is_floating_point or b.__class__ is int):
        ep = op.kernels.get(((a._data.dtype, None), compute.numpy_dtype, odt.numpy_dtype, "flat", False, key_nd))
        if ep is not None and compute is a._dtype:
            cnp = compute.numpy_dtype
            # integer operands wrap like torch's (uint8 + -1 == 255); numpy's constructor would raise
            convert = cnp.type if cnp.kind == "f" else (lambda v, c=cnp: cpu._scalar(v, c))
            op.fast_scalar[(a._dtype, key_nd, b.__class__)] = (ep, odt.numpy_dtype, odt, convert)


def _check_inplace(t: Tensor) -> None:
    if t._grad_fn is None and t._requires_grad and _state.grad_enabled:
        raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")
    base = t._base
    if base is not None and base._requires_grad and base._grad_fn is None and _state.grad_enabled:
        raise RuntimeError(
            "a view of a leaf Variable that requires grad is being used in an in-place operation.")


def _snapshot(t: Tensor, copy: bool = False) -> Tensor:
    """The pre-op identity of ``t`` (its history) for an in-place op's backward.

    With ``copy`` it also keeps the pre-op values (in its own storage and
    version counter), for derivative rules that read them.
    """
    from ._tensor import _alias
    if copy:
        old = wrap(t._data.copy(), t._dtype, t._device)
    else:
        old = _alias(t)
    old._requires_grad = t._requires_grad
    old._grad_fn = t._grad_fn
    old._output_nr = t._output_nr
    return old


def _edge(x):
    fn = x._grad_fn
    return (fn, x._output_nr) if fn is not None else (grad_accumulator(x), 0)


def _record_small(op, a, b, out):
    """``_record`` for the fast path: one output, operands ``a`` (tensor) and ``b`` (tensor, scalar or absent)."""
    ra = a._requires_grad
    ea = _edge(a) if ra else None
    if b is _NO_OPERAND:
        node = OpNode(op, (ea,), (ra,), None, ((a._data.shape, a._dtype),))
    elif b.__class__ is Tensor or isinstance(b, Tensor):
        rb = b._requires_grad
        node = OpNode(op, (ea, _edge(b) if rb else None), (ra, rb), None,
                      ((a._data.shape, a._dtype), (b._data.shape, b._dtype)))
    else:
        node = OpNode(op, (ea, None), (ra, False), None, ((a._data.shape, a._dtype), None))
    saves = op.saves
    if saves == "cross":
        # mul-like rules: d/da needs b and d/db needs a, so keep a only if b needs a gradient
        bt = b.__class__ is Tensor or isinstance(b, Tensor)
        node.saved = (SavedTensor(a) if bt and b._requires_grad else _Const(None),
                      (SavedTensor(b) if ra else _Const(None)) if bt else _Const(b))
    elif saves != "none":
        saved = ()
        if saves != "out":
            if b is _NO_OPERAND:
                saved = (SavedTensor(a),)
            else:
                saved = (SavedTensor(a), SavedTensor(b) if isinstance(b, Tensor) else _Const(b))
        if saves != "inputs":
            saved = saved + (SavedTensor(out, True),)
        node.saved = saved
    if out._dtype.is_floating_point:
        out._grad_fn = node
        out._requires_grad = True
    return node


_NO_OPERAND = object()


def _record(op, inputs, outputs, attrs, in_place=False):
    """Attach an OpNode as ``grad_fn`` of ``outputs``."""
    needs = []
    nexts = []
    in_meta = []
    for x in inputs:
        if x.__class__ is Tensor or isinstance(x, Tensor):
            rg = x._requires_grad
            needs.append(rg)
            if rg:
                fn = x._grad_fn
                nexts.append((fn, x._output_nr) if fn is not None else (grad_accumulator(x), 0))
            else:
                nexts.append(None)
            in_meta.append((x._data.shape, x._dtype))
        else:
            needs.append(False)
            nexts.append(None)
            in_meta.append(None)
    node = OpNode(op, tuple(nexts), tuple(needs), attrs, tuple(in_meta))
    saves = op.saves
    if saves == "cross":
        node.saved = [(SavedTensor(x) if any(n for j, n in enumerate(needs) if j != k) else _Const(None))
                      if isinstance(x, Tensor) else _Const(x) for k, x in enumerate(inputs)]
    elif saves != "none":
        saved = []
        if saves == "inputs" or saves == "both":
            for x in inputs:
                saved.append(SavedTensor(x) if isinstance(x, Tensor) else _Const(x))
        if saves == "out" or saves == "both":
            saved.append(SavedTensor(outputs[0], is_output=not in_place, output_nr=0))
        node.saved = saved
    if len(outputs) == 1:
        o = outputs[0]
        if o._dtype.is_floating_point:
            o._grad_fn = node
            o._requires_grad = True
            o._output_nr = 0
        return node
    node.n_outputs = len(outputs)
    node.out_meta = tuple((o._data.shape, o._dtype) for o in outputs)
    for k, o in enumerate(outputs):
        if o._dtype.is_floating_point:
            o._grad_fn = node
            o._requires_grad = True
            o._output_nr = k
    return node


class _Const:
    """A non-tensor operand kept for backward (a Python scalar, a shape)."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def unpack(self, node):
        return self.value


def apply(op, inputs, attrs=None, *, view_of=None):
    """Run a kernel primitive: ``op.impl[device](*arrays, **attrs)``.

    ``inputs`` are tensors (or ``None`` for absent optional tensors); the
    implementation returns one array or a tuple of arrays.  ``view_of``
    marks the result as a view of that input's storage.
    """
    if attrs is None:
        attrs = {}
    if _tracer is not None and _tracer.lazy:  # a resumed compiled graph defers the op
        r = _tracer.lazy_apply(op, inputs, attrs, view_of)
        if r is not NotImplemented:
            return r
    first = inputs[0]
    if first is None or len(inputs) > 1:
        first = next(t for t in inputs if t is not None)
        for t in inputs:
            if t is not None and t._device is not first._device:
                raise _device_mismatch(first._device, t._device)
    dev = first._device
    fn = op.impl.get(dev.type)
    if fn is None:
        fn = _missing_impl(op, dev, view_of)
    arrays = [t._data if t is not None else None for t in inputs]
    for t in inputs:  # a plain loop: cheaper than any() on the hot path
        if t is not None and t._dtype is _BF16:
            if view_of is None and not getattr(op, "bf16_native", False):
                res = run_via_float32(fn, arrays, attrs)  # the kernel cannot compute with bfloat16 bit patterns
                break
    else:
        res = fn(*arrays, **attrs)
    if res.__class__ is not np.ndarray and not isinstance(res, tuple) and not getattr(res, "is_cuda_array", False):
        res = np.asarray(res)  # a NumPy scalar would not be a view-able tensor
    multi = isinstance(res, tuple)
    arrs = res if multi else (res,)
    if view_of is not None:
        outs = tuple(wrap_view(a, view_of) for a in arrs)
    else:
        outs = tuple(wrap(a, _from_np(a.dtype), dev) for a in arrs)
    if _tracer is not None:
        _tracer.on_apply(op, inputs, attrs, outs, view_of)
    if _state.grad_enabled and op.differentiable and any(t is not None and t._requires_grad for t in inputs):
        _record(op, inputs, outs, attrs)
    return outs if multi else outs[0]


def _missing_impl(op, dev, view_of):
    """The implementation of ``op`` for a device that registered none: on CUDA, the host fallback."""
    if dev.type == "cuda":
        from .runtime.cuda import backend
        backend.load()  # the ops modules register on first CUDA use
        fn = op.impl.get("cuda")
        if fn is not None:
            return fn
        cpu_fn = op.impl.get("cpu")
        if view_of is None and cpu_fn is not None:
            from .runtime.cuda import fallback
            return lambda *arrays, **attrs: fallback.run(op, cpu_fn, arrays, attrs)
        if view_of is not None:
            raise NotImplementedError(
                f"the view op '{op.name}' has no CUDA implementation (views cannot run on host copies)")
    raise NotImplementedError(f"{op.name} has no implementation for device '{dev.type}'")
