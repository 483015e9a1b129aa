"""``jitorch.optim``: torch's optimizers and learning-rate schedulers.

Each optimizer's update is a single fused Numba kernel per parameter
(``_fused.py``) instead of a chain of eager ops, and follows the arithmetic
of torch's single-tensor implementation.
"""
from __future__ import annotations

from . import lr_scheduler
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .optimizer import (
           Optimizer,
           register_optimizer_step_post_hook,
           register_optimizer_step_pre_hook,
)
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = [
           "SGD",
           "Adagrad",
           "Adam",
           "AdamW",
           "Optimizer",
           "RMSprop",
           "lr_scheduler",
           "register_optimizer_step_post_hook",
           "register_optimizer_step_pre_hook",
]
