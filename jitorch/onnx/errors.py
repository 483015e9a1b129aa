"""Exceptions and warnings of the ONNX exporter (the names ``torch.onnx.errors`` uses)."""
from __future__ import annotations

import os
import sys
import warnings

__all__ = [
    "DynamicAxesError",
    "OnnxExporterError",
    "OnnxExporterWarning",
    "SymbolicValueError",
    "UnsupportedOperatorError",
]


class OnnxExporterWarning(UserWarning):
    """Warnings of the ONNX exporter (e.g. a Python read of a traced value baked into the graph)."""


class OnnxExporterError(RuntimeError):
    """Base class of every error the exporter raises."""


class UnsupportedOperatorError(OnnxExporterError):
    """A captured op has no ONNX lowering (or not at this opset).

    ``name`` is the jitorch primitive, ``where`` the user's source line that ran it.
    """

    def __init__(self, name: str, version: int, supported_version: int | None = None, *,
                 where: str | None = None, hint: str | None = None) -> None:
        self.op_name = name
        self.where = where
        if supported_version is not None:
            msg = (f"Exporting the operator 'jitorch::{name}' to ONNX opset version {version} is not supported. "
                   f"Support for this operator was added in version {supported_version}, try exporting with "
                   "this version")
        else:
            msg = f"Exporting the operator 'jitorch::{name}' to ONNX opset version {version} is not supported"
        if where:
            msg += f" (called at {where})"
        if hint:
            msg += f". {hint}"
        super().__init__(msg)


class DynamicAxesError(OnnxExporterError):
    """``dynamic_axes`` asked for a size the captured graph cannot express at run time.

    Raised instead of writing a model that would only be right at the example size.
    """


# torch's name for errors about one value of the graph; here it is the dynamic-shape error
SymbolicValueError = DynamicAxesError


_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def warn(message: str) -> None:
    """An OnnxExporterWarning attributed to the user's line that called into jitorch."""
    frame, level = sys._getframe(1), 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PKG_DIR):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, OnnxExporterWarning, stacklevel=level)
