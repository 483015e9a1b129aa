"""Small helpers shared by the data-loading modules.

The jitorch core is imported lazily (inside functions) so that this package
can be imported while ``jitorch`` itself is still being initialised.
"""

import numpy as np

_INT63 = 2 ** 63 - 1


def _jt():
    import jitorch
    return jitorch


def is_tensor(obj):
    try:
        return isinstance(obj, _jt().Tensor)
    except Exception:  # pragma: no cover - core not importable
        return False


def draw_seed(generator=None):
    """Draw a non-negative 63-bit integer from ``generator`` (or the default
    generator), the way torch draws a base seed with ``random_()``."""
    jt = _jt()
    gen = generator if generator is not None else getattr(jt, "default_generator", None)
    rng = getattr(gen, "_np", None)
    if rng is not None:
        return int(rng.integers(0, _INT63))
    # Fall back on the public tensor API when the generator has no numpy RNG.
    return int(jt.empty((), dtype=jt.int64).random_(generator=generator).item())


def np_rng(generator):
    """The numpy random Generator behind a jitorch CPU Generator (or the default); a CUDA generator is refused
    with torch's device-mismatch error."""
    from ...ops.random import host_rng
    return host_rng(generator)


def randperm_list(n, generator=None):
    """A random permutation of ``range(n)`` as a Python list of ints."""
    jt = _jt()
    fn = getattr(jt, "randperm", None)
    if fn is not None:
        return fn(n, generator=generator).tolist()
    return np_rng(generator).permutation(n).tolist()


def randint_list(high, size, generator=None):
    """``size`` integers drawn uniformly from ``[0, high)`` as a list."""
    if size == 0:
        return []
    jt = _jt()
    fn = getattr(jt, "randint", None)
    if fn is not None:
        try:
            return fn(0, high, (size,), dtype=jt.int64, generator=generator).tolist()
        except TypeError:
            pass
    return np_rng(generator).integers(0, high, size=size).tolist()


def tensor_to_numpy(t):
    """A numpy view (or copy) of a tensor's data, detached from autograd."""
    if getattr(t, "requires_grad", False):
        t = t.detach()
    return t.numpy()


def is_int_like(x):
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))
