"""Export-wide state: the training-mode enum and the "export in progress" flag."""
from __future__ import annotations

import contextlib
import enum


class TrainingMode(enum.IntEnum):
    """How ``export`` treats ``model.training`` (same members and values as ``torch.onnx.TrainingMode``).

    EVAL: export in eval mode (dropout off, batch norm uses running statistics), then restore.
    PRESERVE: export in whatever mode the model is in.
    TRAINING: export in training mode, then restore.
    """

    EVAL = 0
    PRESERVE = 1
    TRAINING = 2


_in_export = False


def is_in_onnx_export() -> bool:
    """True while ``jitorch.onnx.export`` runs the model (a forward can branch on it, as in torch)."""
    return _in_export


@contextlib.contextmanager
def exporting():
    global _in_export
    prev, _in_export = _in_export, True
    try:
        yield
    finally:
        _in_export = prev


@contextlib.contextmanager
def model_mode(model, mode: TrainingMode):
    """Put ``model`` in the mode ``mode`` asks for while exporting, and restore it afterwards."""
    if not isinstance(mode, TrainingMode):
        try:
            mode = TrainingMode(int(mode))
        except (TypeError, ValueError):
            raise TypeError(f"'training' should be a jitorch.onnx.TrainingMode, got {mode!r}") from None
    was_training = getattr(model, "training", None)
    if was_training is None or mode == TrainingMode.PRESERVE:
        yield
        return
    model.train(mode == TrainingMode.TRAINING)
    try:
        yield
    finally:
        model.train(was_training)
