"""``torch.nn.modules`` import paths (``from torch.nn.modules.module import Module``...).

jitorch keeps one flat ``jitorch.nn`` package; this package maps torch's
``nn.modules.<file>`` names onto it so code importing private paths still runs.
"""
from __future__ import annotations

import importlib
import sys

# torch's file name under nn/modules -> jitorch.nn module holding it
_ALIASES = {
    "module": "module", "container": "containers", "linear": "linear", "activation": "activation",
    "loss": "loss", "batchnorm": "normalization", "instancenorm": "normalization", "normalization": "normalization",
    "dropout": "dropout", "sparse": "sparse", "flatten": "flatten", "conv": "conv", "pooling": "pooling",
    "rnn": "rnn", "transformer": "transformer", "upsampling": "upsampling", "fold": "fold",
    "padding": "padding", "pixelshuffle": "pixelshuffle", "distance": "distance", "channelshuffle": "pixelshuffle",
}

for _alias, _real in _ALIASES.items():
    try:
        _mod = importlib.import_module(f"jitorch.nn.{_real}")
    except ModuleNotFoundError as _exc:
        if _exc.name != f"jitorch.nn.{_real}":
            raise
        continue
    sys.modules[f"{__name__}.{_alias}"] = _mod
    globals()[_alias] = _mod

from jitorch.nn import *
from jitorch.nn import Module  # noqa: F401

from . import utils  # noqa: F401
