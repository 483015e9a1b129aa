"""The CUDA random number generator: counter-based Philox4x32-10 (Salmon et al., SC'11).

Philox is a keyed bijection of a 128-bit counter: ``philox(counter, key)``
gives four 32-bit words, and different counters give independent words.  So a
kernel needs no per-thread state: element ``e`` of a call's output is a pure
function of (seed, the call's offset, ``e``), whatever the grid and block
sizes, which makes results reproducible across launch configurations and
devices.  The counter of a draw is (block index lo, block index hi, offset lo,
offset hi) and the key is the 64-bit seed; every call takes the next offset,
like torch's Philox offset, so successive calls never reuse a counter.

This module holds the generator objects (seed, offset, torch's state API) and
a vectorized NumPy Philox used as the host reference; it imports no numba, so
``jitorch.manual_seed`` can seed it cheaply.  The device kernels are in
``ops_random``.  Which words make which element (all mappings are per element,
see ``ops_random``):

- 32-bit uniforms (float16/float32 outputs): element e uses word ``e % 4`` of
  block ``e // 4``; ``u = (w >> 8) * 2**-24`` in [0, 1);
- 64-bit uniforms (float64): element e uses words ``2*(e%2)``, ``2*(e%2)+1`` of
  block ``e // 2``: 53 bits as ``((w0 >> 5) * 2**26 + (w1 >> 6)) * 2**-53``;
- normals (Box-Muller): elements ``2p`` and ``2p+1`` share one pair of uniforms
  (cos and sin branch);
- integers: element e uses words 0 and 1 of block e.
"""
from __future__ import annotations

import numpy as np

M0, M1 = 0xD2511F53, 0xCD9E8D57  # round multipliers
W0, W1 = 0x9E3779B9, 0xBB67AE85  # key schedule (golden ratio, sqrt(3) - 1)
ROUNDS = 10
MASK32 = 0xFFFFFFFF
_DEFAULT_SEED = 67280421310721  # torch's default CUDA seed


# -- the reference bijection (vectorized over counters) --------------------------------------------------------
def philox4x32(c0, c1, c2, c3, k0, k1, rounds: int = ROUNDS):
    """Philox4x32-``rounds`` on uint64 arrays (holding 32-bit values); returns four uint64 arrays."""
    u = np.uint64
    c0, c1, c2, c3 = (np.asarray(c, dtype=u) for c in (c0, c1, c2, c3))
    k0, k1 = u(k0), u(k1)
    m32 = u(MASK32)
    for r in range(rounds):
        if r:
            k0 = (k0 + u(W0)) & m32
            k1 = (k1 + u(W1)) & m32
        p0 = u(M0) * c0
        p1 = u(M1) * c2
        c0, c1, c2, c3 = (p1 >> u(32)) ^ c1 ^ k0, p1 & m32, (p0 >> u(32)) ^ c3 ^ k1, p0 & m32
    return c0, c1, c2, c3


def words(seed: int, offset: int, blocks: np.ndarray):
    """The four words of each Philox block index in ``blocks`` for a call at ``offset``."""
    b = np.asarray(blocks, dtype=np.uint64)
    return philox4x32(b & np.uint64(MASK32), b >> np.uint64(32),
                      np.full(b.shape, offset & MASK32, np.uint64), np.full(b.shape, (offset >> 32) & MASK32,
                                                                          np.uint64),
                      seed & MASK32, (seed >> 32) & MASK32)


def uniform_reference(seed: int, offset: int, n: int, double: bool) -> np.ndarray:
    """The uniforms in [0, 1) that the kernels draw for elements 0..n-1 (float64 values)."""
    e = np.arange(n, dtype=np.uint64)
    if not double:
        w = words(seed, offset, e >> np.uint64(2))
        word = np.choose((e & np.uint64(3)).astype(np.intp), w)
        return (word >> np.uint64(8)).astype(np.float64) * 2.0 ** -24
    w = words(seed, offset, e >> np.uint64(1))
    odd = (e & np.uint64(1)).astype(bool)
    hi = np.where(odd, w[2], w[0])
    lo = np.where(odd, w[3], w[1])
    return ((hi >> np.uint64(5)).astype(np.float64) * 2.0 ** 26 + (lo >> np.uint64(6)).astype(np.float64)) * 2.0 ** -53


def normal_reference(seed: int, offset: int, n: int, double: bool) -> np.ndarray:
    """Standard normals for elements 0..n-1 (Box-Muller, float64 arithmetic)."""
    e = np.arange(n, dtype=np.uint64)
    pair = e >> np.uint64(1)
    if not double:
        w = words(seed, offset, pair >> np.uint64(1))
        second = (pair & np.uint64(1)).astype(bool)
        wa = np.where(second, w[2], w[0])
        wb = np.where(second, w[3], w[1])
        u1 = ((wa >> np.uint64(8)) + np.uint64(1)).astype(np.float64) * 2.0 ** -24
        u2 = (wb >> np.uint64(8)).astype(np.float64) * 2.0 ** -24
    else:
        w = words(seed, offset, pair)
        u1 = 1.0 - ((w[0] >> np.uint64(5)).astype(np.float64) * 2.0 ** 26
                    + (w[1] >> np.uint64(6)).astype(np.float64)) * 2.0 ** -53
        u2 = ((w[2] >> np.uint64(5)).astype(np.float64) * 2.0 ** 26 + (w[3] >> np.uint64(6)).astype(np.float64)) \
            * 2.0 ** -53
    r = np.sqrt(-2.0 * np.log(u1))
    t = 2.0 * np.pi * u2
    return np.where((e & np.uint64(1)).astype(bool), r * np.sin(t), r * np.cos(t))


def integer_reference(seed: int, offset: int, n: int, low: int, high: int) -> np.ndarray:
    """Integers uniform on [low, high) for elements 0..n-1 (as the kernels draw them)."""
    w = words(seed, offset, np.arange(n, dtype=np.uint64))
    span = high - low
    if span <= 1 << 32:
        x = w[0] % np.uint64(span)
    else:
        x = ((w[0] << np.uint64(32)) | w[1]) % np.uint64(span)
    return np.array([low + int(v) for v in x], dtype=object) if span > 1 << 62 else x.astype(np.int64) + low


# -- generators --------------------------------------------------------------------------------------------------
class PhiloxGenerator:
    """A CUDA generator: a 64-bit seed and the Philox offset of its next call (torch's CUDA generator API)."""

    def __init__(self, device_index: int = 0, seed: int = _DEFAULT_SEED):
        self.device_index = device_index
        self._seed = seed & 0xFFFFFFFFFFFFFFFF
        self._offset = 0

    @property
    def device(self):
        import jitorch
        return jitorch.device("cuda", self.device_index)

    def manual_seed(self, seed) -> PhiloxGenerator:
        seed = int(seed)
        self._seed = seed & 0xFFFFFFFFFFFFFFFF  # torch accepts negatives by wrapping to uint64
        self._offset = 0
        return self

    def seed(self) -> int:
        s = int(np.random.SeedSequence().entropy) & 0xFFFFFFFFFFFFFFFF
        self.manual_seed(s)
        return s

    def initial_seed(self) -> int:
        return self._seed

    def get_offset(self) -> int:
        return self._offset

    def set_offset(self, offset: int) -> None:
        self._offset = int(offset)

    def next_call(self) -> tuple[int, int]:
        """(seed, offset) for one kernel call, advancing the offset."""
        off = self._offset
        self._offset = (off + 1) & 0xFFFFFFFFFFFFFFFF
        return self._seed, off

    def get_state(self):
        """A uint8 CPU tensor of 16 bytes: the seed and the offset, little-endian (like torch's)."""
        import jitorch
        raw = np.array([self._seed, self._offset], dtype="<u8").view(np.uint8).copy()
        return jitorch.from_numpy(raw)

    def set_state(self, state) -> PhiloxGenerator:
        raw = np.asarray(state.numpy() if hasattr(state, "numpy") else state, dtype=np.uint8).reshape(-1)
        if raw.size != 16:
            raise RuntimeError(f"RNG state is wrong size: expected 16 bytes, got {raw.size}")
        self._seed, self._offset = (int(v) for v in raw.view("<u8"))
        return self

    def __repr__(self) -> str:
        return f"<jitorch CUDA Generator seed={self._seed} offset={self._offset}>"


default_generator = PhiloxGenerator(0)
default_generators = (default_generator,)


def generator_for(generator) -> PhiloxGenerator:
    """The Philox generator a CUDA draw uses: ``generator`` if it is one, else the default."""
    if generator is None:
        return default_generator
    if isinstance(generator, PhiloxGenerator):
        return generator
    inner = getattr(generator, "_philox", None)  # a jitorch.Generator(device="cuda") wrapping one
    if isinstance(inner, PhiloxGenerator):
        return inner
    raise RuntimeError("Expected a 'cuda' device type for generator but found 'cpu'")


def manual_seed(seed) -> None:
    """Seed the CUDA default generator (``jitorch.cuda.manual_seed``)."""
    default_generator.manual_seed(seed)


manual_seed_all = manual_seed


def seed() -> int:
    return default_generator.seed()


def initial_seed() -> int:
    return default_generator.initial_seed()


def get_rng_state():
    return default_generator.get_state()


def set_rng_state(state) -> None:
    default_generator.set_state(state)


# -- draws for the front end (``runtime/cuda/ops_creation.random`` and the in-place fills) -----------------------
# These import the kernels lazily, so this module stays free of numba for seeding.
def uniform(shape, np_dtype, generator=None):
    """A new array of U[0, 1) draws (``jitorch.rand(..., device='cuda')``)."""
    return _new(shape, np_dtype, "uniform_", generator, 0.0, 1.0)


def normal(shape, np_dtype, generator=None):
    """A new array of N(0, 1) draws (``jitorch.randn``)."""
    return _new(shape, np_dtype, "normal_", generator, 0.0, 1.0)


def randint(shape, np_dtype, generator=None, low=0, high=2):
    """A new array of integers uniform on [low, high) (``jitorch.randint``)."""
    return _new(shape, np_dtype, "random_", generator, int(low), int(high))


def randperm(shape, np_dtype, generator=None):
    """A random permutation of ``0..shape[0]-1`` (``jitorch.randperm``)."""
    from . import ops_random
    return ops_random.randperm(int(shape[0]), np_dtype, generator)


FILLS = ("uniform_", "normal_", "bernoulli_", "random_", "exponential_", "geometric_", "log_normal_", "cauchy_")


def fill_(kind: str, out, *params, generator=None):
    """Fill the CudaArray ``out`` in place with draws of ``kind`` (a ``Tensor`` method name in FILLS):
    ``fill_("uniform_", arr, a, b)``, ``fill_("normal_", arr, mean, std)``, ``fill_("bernoulli_", arr, p)``
    (p a float or a CudaArray), ``fill_("random_", arr, low, high)``, ``fill_("exponential_", arr, lambd)``,
    ``fill_("geometric_", arr, p)``, ``fill_("log_normal_", arr, mean, std)``, ``fill_("cauchy_", arr, median, sigma)``."""
    if kind not in FILLS:
        raise ValueError(f"unknown random fill {kind!r}")
    from . import ops_random
    return getattr(ops_random, kind)(out, *params, generator=generator)


def _new(shape, np_dtype, kind, generator, *params):
    from .array import empty
    out = empty(tuple(shape), np_dtype)
    return fill_(kind, out, *params, generator=generator)
