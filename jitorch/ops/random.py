"""Random number generators: ``jitorch.Generator`` and the global default.

CPU draws come from NumPy's PCG64 bit generator, so a seed gives the same
numbers on every run and platform (they differ from torch's numbers); CUDA
draws come from the counter-based Philox generators of ``runtime/cuda/philox.py``
(``jitorch.manual_seed`` seeds both).
"""
from __future__ import annotations

import numpy as np

_DEFAULT_SEED = 67280421310721


class Generator:
    """A seeded source of random numbers (``jitorch.Generator().manual_seed(0)``).

    A CPU generator draws from NumPy's PCG64; ``Generator(device="cuda")`` holds a
    counter-based Philox generator (``_philox``) that the CUDA kernels draw from, and
    forwards the seed and state API to it.
    """

    def __init__(self, device="cpu"):
        from ..runtime.device import Device
        d = device if isinstance(device, Device) else Device(device)
        self.device = d
        self._philox = None
        if d.type == "cuda":
            from ..runtime.cuda import (
                philox,  # imports no numba.cuda: cheap without a GPU
            )
            self._philox = philox.PhiloxGenerator(d.index or 0)
            self._seed = self._philox.initial_seed()
            self._np = None
            return
        self._seed = _DEFAULT_SEED
        self._np = np.random.Generator(np.random.PCG64(self._seed))

    def manual_seed(self, seed) -> Generator:
        seed = int(seed)
        if seed < 0:
            seed &= 0xFFFFFFFFFFFFFFFF  # torch accepts negatives by wrapping to uint64
        self._seed = seed
        if self._philox is not None:
            self._philox.manual_seed(seed)
            return self
        self._np = np.random.Generator(np.random.PCG64(seed))
        return self

    def seed(self) -> int:
        s = int(np.random.SeedSequence().entropy) & 0xFFFFFFFFFFFFFFFF
        self.manual_seed(s)
        return s

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self):
        if self._philox is not None:
            return self._philox.get_state()
        import json

        import jitorch
        blob = json.dumps(self._np.bit_generator.state).encode()
        return jitorch.from_numpy(np.frombuffer(blob, dtype=np.uint8).copy())

    def set_state(self, state) -> Generator:
        if self._philox is not None:
            self._philox.set_state(state)
            self._seed = self._philox.initial_seed()
            return self
        import json
        self._np.bit_generator.state = json.loads(bytes(state.numpy()).decode())
        return self

    def get_offset(self) -> int:
        """The Philox offset of a CUDA generator's next draw (torch's ``Generator.get_offset``)."""
        if self._philox is None:
            raise RuntimeError("get_offset is only supported by CUDA generators")
        return self._philox.get_offset()

    def set_offset(self, offset: int) -> Generator:
        if self._philox is None:
            raise RuntimeError("set_offset is only supported by CUDA generators")
        self._philox.set_offset(offset)
        return self


def host_rng(generator) -> np.random.Generator:
    """The NumPy generator a CPU draw uses: ``generator``'s, or the default one's."""
    g = generator if generator is not None else default_generator
    if g._np is None:
        raise RuntimeError(f"Expected a 'cpu' device type for generator but found '{g.device.type}'")
    return g._np


default_generator = Generator()


def manual_seed(seed) -> Generator:
    """Seed the default generator and the CUDA generators, as torch does."""
    from ..runtime.cuda import philox  # imports no numba.cuda: cheap without a GPU
    philox.manual_seed(int(seed))
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
