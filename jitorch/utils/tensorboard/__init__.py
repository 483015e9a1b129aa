"""``jitorch.utils.tensorboard.SummaryWriter``: TensorBoard logging, as ``torch.utils.tensorboard``.

Needs the optional ``tensorboard`` package (``pip install jitorch[tensorboard]``); it is
imported when a ``SummaryWriter`` is created, so importing this module always works.
"""
from .writer import SummaryWriter

__all__ = ["SummaryWriter"]
