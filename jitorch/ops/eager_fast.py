"""When an eager call may take a fused CPU primitive instead of its composite of smaller ops.

Some composites (``F.linear``, ``log_softmax``, ``batch_norm``, small convolutions) also
exist as one registry primitive with a hand-written CPU kernel and a derivative rule
written with other ops.  Eager calls take the primitive: one dispatch and one backward
node instead of a dozen.  A function being captured (``jitorch.compile``, ``jit.trace``,
ONNX export) records the composite instead, whose pieces every backend, the fusion
passes and the exporters already understand; so do CUDA tensors and the half types.
"""
from __future__ import annotations

from .. import _dispatch
from .. import _dtype as D
from ..runtime.device import CPU

_FLOATS = (D.float32, D.float64)


def cpu_float_eager(*tensors) -> bool:
    """True when no capture is running and every given tensor (None skipped) is a CPU
    float32/float64 tensor of one dtype."""
    if _dispatch._tracer is not None:
        return False
    dt = None
    for t in tensors:
        if t is None:
            continue
        if t._device is not CPU or t._dtype not in _FLOATS or (dt is not None and t._dtype is not dt):
            return False
        dt = t._dtype
    return True
