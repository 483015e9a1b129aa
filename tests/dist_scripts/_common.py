"""Shared by the scripts that tests/test_distributed.py starts under ``mpiexec``.

Each script takes its output folder as ``sys.argv[1]`` and writes one file
per rank there; the test reads them and compares with NumPy references.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def out_dir() -> Path:
    path = Path(sys.argv[1])
    path.mkdir(parents=True, exist_ok=True)
    return path


def mpi_rank() -> int:
    """This process's rank as mpiexec announced it (without initialising MPI)."""
    return int(os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0")))


def save_npz(name: str, rank: int, arrays: dict) -> None:
    np.savez(out_dir() / f"{name}_rank{rank}.npz", **arrays)


def save_json(name: str, rank: int, data: dict) -> None:
    (out_dir() / f"{name}_rank{rank}.json").write_text(json.dumps(data, indent=1))


def rank_values(rank: int, shape=(2, 3), dtype=np.float32, salt: float = 0.0) -> np.ndarray:
    """Deterministic, rank-dependent input values (small, so products and float16 stay exact)."""
    n = int(np.prod(shape)) if shape else 1
    vals = (np.arange(n) % 5) + 1 + 0.5 * rank + salt
    if np.dtype(dtype).kind in "iu":
        vals = np.arange(n) + 10 * rank + int(salt)
    return vals.astype(dtype).reshape(shape)


def params_dict(module) -> dict:
    """Parameter values by name, as float64 NumPy arrays."""
    return {name: p.detach().numpy().astype(np.float64) for name, p in module.named_parameters()}
