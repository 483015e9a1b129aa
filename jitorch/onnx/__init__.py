"""``jitorch.onnx``: export models to ONNX, like ``torch.onnx``.

Importing this package needs only jitorch; ``export`` needs the ``onnx``
package (``pip install jitorch[onnx]``).  See docs/onnx.md.
"""
from __future__ import annotations

from . import errors
from ._state import TrainingMode, is_in_onnx_export
from .errors import (
    DynamicAxesError,
    OnnxExporterError,
    OnnxExporterWarning,
    SymbolicValueError,
    UnsupportedOperatorError,
)

producer_name = "jitorch"


def export(model, args=(), f=None, *positional, **options):
    """Export ``model`` to ONNX: ``export(model, args, f, export_params=True, verbose=False,
    training=TrainingMode.EVAL, input_names=None, output_names=None, operator_export_type=None,
    opset_version=None, do_constant_folding=True, dynamic_axes=None, keep_initializers_as_inputs=None, ...)``.

    Mirrors torch's TorchScript-based ``torch.onnx.export``: the model runs once on ``args``,
    every primitive it runs is recorded and lowered to ONNX operators; parameters and buffers
    become initializers under their ``state_dict`` names.  Writes to ``f`` (a path or a binary
    file object) and returns the ``onnx.ModelProto``.

    >>> model = jitorch.nn.Linear(4, 2)
    >>> jitorch.onnx.export(model, jitorch.randn(1, 4), "linear.onnx", input_names=["x"],
    ...                     dynamic_axes={"x": {0: "batch"}})  # doctest: +SKIP
    """
    try:
        import onnx  # noqa: F401
    except ImportError as exc:
        raise ImportError("jitorch.onnx.export needs the 'onnx' package: pip install jitorch[onnx]") from exc
    from .exporter import export as _export
    return _export(model, args, f, *positional, **options)


__all__ = [
    "DynamicAxesError",
    "OnnxExporterError",
    "OnnxExporterWarning",
    "SymbolicValueError",
    "TrainingMode",
    "UnsupportedOperatorError",
    "errors",
    "export",
    "is_in_onnx_export",
]
