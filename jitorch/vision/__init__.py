"""Vision helpers in the style of torchvision: datasets and transforms.

``from jitorch.vision import datasets, transforms`` stands in for
``from torchvision import datasets, transforms``.
"""
from . import datasets, transforms

__all__ = ["datasets", "transforms"]
