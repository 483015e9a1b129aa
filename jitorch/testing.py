"""``jitorch.testing.assert_close``: compare tensors with torch's default tolerances."""
from __future__ import annotations

import numpy as np

from . import _dtype as D

_TOL = {"float16": (1e-3, 1e-5), "bfloat16": (1.6e-2, 1e-5), "float32": (1.3e-6, 1e-5), "float64": (1e-7, 1e-7)}


def assert_close(actual, expected, *, rtol=None, atol=None, equal_nan=False, check_dtype=True, msg=None) -> None:
    """Raise AssertionError naming the mismatch, like torch.testing.assert_close."""
    from ._tensor import Tensor
    from .ops.creation import tensor
    if isinstance(actual, (list, tuple)) and isinstance(expected, (list, tuple)):
        if len(actual) != len(expected):
            raise AssertionError(f"The length of the sequences mismatch: {len(actual)} != {len(expected)}")
        for a, e in zip(actual, expected):
            assert_close(a, e, rtol=rtol, atol=atol, equal_nan=equal_nan, check_dtype=check_dtype, msg=msg)
        return
    a = actual if isinstance(actual, Tensor) else tensor(actual)
    e = expected if isinstance(expected, Tensor) else tensor(expected)
    if tuple(a.shape) != tuple(e.shape):
        raise AssertionError(msg or f"The values for attribute 'shape' do not match: {a.shape} != {e.shape}.")
    if check_dtype and a.dtype is not e.dtype:
        raise AssertionError(msg or f"The values for attribute 'dtype' do not match: {a.dtype} != {e.dtype}.")
    default = _TOL.get(a.dtype.name, (0.0, 0.0))
    rt = default[0] if rtol is None else rtol
    at = default[1] if atol is None else atol
    # host values as float64 (bfloat16 bit patterns widened, device tensors copied)
    x = np.asarray(D.host_values(a.detach()._host()), dtype=np.float64)
    y = np.asarray(D.host_values(e.detach()._host()), dtype=np.float64)
    ok = np.isclose(x, y, rtol=rt, atol=at, equal_nan=equal_nan)
    if not ok.all():
        bad = int((~ok).sum())
        diff = np.abs(x - y)[~ok]
        raise AssertionError(msg or (f"Tensor-likes are not close!\n\nMismatched elements: {bad} / {x.size} "
                                     f"({100.0 * bad / max(x.size, 1):.1f}%)\nGreatest absolute difference: "
                                     f"{diff.max()} (up to {at} allowed)"))
