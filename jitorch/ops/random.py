"""Random number generators: ``jitorch.Generator`` and the global default.

Draws come from NumPy's PCG64 bit generator, so a seed gives the same
numbers on every run and platform (they differ from torch's numbers).
"""
from __future__ import annotations

import numpy as np

_DEFAULT_SEED = 67280421310721


class Generator:
    """A seeded source of random numbers (``jitorch.Generator().manual_seed(0)``)."""

    def __init__(self, device="cpu"):
        self.device = device
        self._seed = _DEFAULT_SEED
        self._np = np.random.Generator(np.random.PCG64(self._seed))

    def manual_seed(self, seed) -> "Generator":
        seed = int(seed)
        if seed < 0:
            seed &= 0xFFFFFFFFFFFFFFFF  # torch accepts negatives by wrapping to uint64
        self._seed = seed
        self._np = np.random.Generator(np.random.PCG64(seed))
        return self

    def seed(self) -> int:
        s = int(np.random.SeedSequence().entropy) & 0xFFFFFFFFFFFFFFFF
        self.manual_seed(s)
        return s

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self):
        import jitorch
        import json
        blob = json.dumps(self._np.bit_generator.state).encode()
        return jitorch.from_numpy(np.frombuffer(blob, dtype=np.uint8).copy())

    def set_state(self, state) -> "Generator":
        import json
        self._np.bit_generator.state = json.loads(bytes(state.numpy()).decode())
        return self


default_generator = Generator()


def manual_seed(seed) -> Generator:
    """Seed the default generator (and the CUDA ones, once that backend exists)."""
    return default_generator.manual_seed(seed)


def seed() -> int:
    return default_generator.seed()


def initial_seed() -> int:
    return default_generator.initial_seed()


def get_rng_state():
    return default_generator.get_state()


def set_rng_state(state) -> None:
    default_generator.set_state(state)


def _random_replay_impl(fn, args, kwargs, shape, dtype, fill):
    """Run a random op again (at graph run time) and return the array it produced."""
    from .._tensor import wrap
    if fill:
        import numpy as np
        target = wrap(np.empty(shape, dtype.numpy_dtype), dtype)
        fn(target, *args[1:], **kwargs)
        return target._data
    return fn(*args, **kwargs)._data


def _register_replay():
    from .registry import kernel_op
    op = kernel_op("random_replay", differentiable=False)
    op.impl["cpu"] = _random_replay_impl
    return op


RANDOM_REPLAY = _register_replay()
