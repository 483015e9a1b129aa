"""``torch.nn.modules.utils``: ``_single``, ``_pair``, ``_triple``, ``_quadruple``."""
from __future__ import annotations

from .._ntuple import (  # noqa: F401
    _ntuple,
    _pair,
    _quadruple,
    _reverse_repeat_tuple,
    _single,
    _triple,
)
