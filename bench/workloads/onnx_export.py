"""ONNX export time: ``jitorch.onnx.export`` against ``torch.onnx.export`` (TorchScript exporter, dynamo=False).

Each timed call exports a TransformerEncoderLayer(d_model=256, nhead=8) in eval
mode, input (seq 10, batch 4, 256), to an in-memory buffer: capture, lowering,
``onnx.checker`` (jitorch runs it with full_check) and serialization.  The
``.dynamic`` variants also declare the sequence and batch axes dynamic (jitorch
then captures the model three times to see how every size follows them).

Both libraries export a one-input wrapper around the layer: torch 2.13's
TorchScript exporter fills in the layer's default ``is_causal=False`` argument,
traces it as a tensor and fails inside scaled_dot_product_attention; the
wrapper's forward(src) avoids that.  Without onnx (or onnxruntime-free torch
export support) a row reads UNAVAILABLE with the reason.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from typing import Any

from bench.harness import Timed, Unavailable, build_variants, workload

GROUP = "deploy"
D_MODEL, NHEAD, SEQ, BATCH = 256, 8, 10, 4
DYNAMIC = {"src": {0: "seq", 1: "batch"}, "output": {0: "seq", 1: "batch"}}


def _export(lib_name: str, dynamic: bool) -> Callable[[], Timed]:
    def factory() -> Timed:
        lib = __import__(lib_name)
        try:
            import onnx  # noqa: F401
        except ImportError as exc:
            raise Unavailable(f"onnx is not installed ({exc})") from exc

        class OneInput(lib.nn.Module):
            def __init__(self, layer: Any) -> None:
                super().__init__()
                self.layer = layer

            def forward(self, src: Any) -> Any:
                return self.layer(src)

        lib.manual_seed(0)
        model = OneInput(lib.nn.TransformerEncoderLayer(D_MODEL, NHEAD)).eval()
        x = lib.randn(SEQ, BATCH, D_MODEL)
        kw: dict = {"input_names": ["src"], "output_names": ["output"]}
        if dynamic:
            kw["dynamic_axes"] = DYNAMIC
        if lib_name == "torch":
            kw["dynamo"] = False

        def run() -> Any:
            return lib.onnx.export(model, (x,), io.BytesIO(), **kw)

        try:
            run()  # imports and first-use costs happen here, outside the timing
        except Exception as exc:
            if lib_name == "torch":
                raise Unavailable(f"torch.onnx.export failed here: {type(exc).__name__}: {exc}") from exc
            raise
        return run

    return factory


@workload("onnx_export.transformer_encoder_layer", GROUP, baseline="torch.onnx",
          description="export TransformerEncoderLayer(d_model=256, nhead=8) to ONNX in memory "
                      "(torch: TorchScript exporter, dynamo=False; target for jitorch: under 2 s)")
def transformer_export() -> Mapping[str, Any]:
    return build_variants({
        "jitorch.onnx": _export("jitorch", dynamic=False),
        "torch.onnx": _export("torch", dynamic=False),
        "jitorch.onnx.dynamic": _export("jitorch", dynamic=True),
        "torch.onnx.dynamic": _export("torch", dynamic=True),
    })
