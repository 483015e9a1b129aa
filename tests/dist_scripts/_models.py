"""Models and data shared by the distributed scripts and the single-process references in the tests."""
from __future__ import annotations

import numpy as np

import jitorch
from jitorch import nn

GLOBAL_BATCH = 16
STEPS = 4


def make_mlp(seed: int) -> nn.Module:
    jitorch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3))


def batch(step: int):
    """The global batch of step ``step`` as (inputs, targets) NumPy arrays."""
    rng = np.random.default_rng(100 + step)
    return (rng.standard_normal((GLOBAL_BATCH, 6)).astype(np.float32),
            rng.standard_normal((GLOBAL_BATCH, 3)).astype(np.float32))


def shard(arr: np.ndarray, rank: int, parts: int) -> np.ndarray:
    n = arr.shape[0] // parts
    return arr[rank * n:(rank + 1) * n]


class TwoHeads(nn.Module):
    """A trunk, a head always used, a head used only when asked, and a layer never used."""

    def __init__(self, seed: int):
        super().__init__()
        jitorch.manual_seed(seed)
        self.trunk = nn.Linear(6, 8)
        self.head_a = nn.Linear(8, 3)
        self.head_b = nn.Linear(8, 3)
        self.never = nn.Linear(8, 3)

    def forward(self, x, use_b: bool):
        h = self.trunk(x).tanh()
        out = self.head_a(h)
        if use_b:
            out = out + self.head_b(h)
        return out


class Deep(nn.Module):
    """Blocks of two Linear layers, for FSDP's nested wrapping."""

    def __init__(self, seed: int, width: int = 10, blocks: int = 3):
        super().__init__()
        jitorch.manual_seed(seed)
        self.inp = nn.Linear(6, width)
        self.blocks = nn.ModuleList([Block(width) for _ in range(blocks)])
        self.out = nn.Linear(width, 3)

    def forward(self, x):
        h = self.inp(x).tanh()
        for b in self.blocks:
            h = b(h)
        return self.out(h)


class Block(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, x):
        return x + self.fc2(self.fc1(x).tanh())


def mse(out, target):
    return ((out - target) ** 2).mean()
