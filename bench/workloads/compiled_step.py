"""Whole training steps under ``compile``: forward, loss, ``backward()`` and ``optimizer.step()``.

The step function itself is compiled (not only the model), as a user who writes
``step = jitorch.compile(train_step)`` would.  jitorch runs the backward and the
optimizer between its compiled graphs; ``torch.compile`` breaks the graph at
``backward()`` and compiles the optimizer step as its own graph.  Variants as in
the ``compile`` group: both compilers, both eager runs, torch eager the baseline.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench.harness import Timed, workload
from bench.workloads.compiled import GROUP, _compiler, _variants
from bench.workloads.training import _lib, _seeded, encoder_layer, mlp


def _whole_step(lib: Any, model: Any, opt: Any, loss_fn: Any, x: Any, y: Any, variant: str) -> Timed:
    def step() -> None:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    wrap = _compiler(variant, lib)
    return wrap(step) if wrap else step


def _mlp(variant: str) -> Timed:
    lib = _lib(variant.split(".")[0])
    _seeded(lib)
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = lib.randn(64, 1, 28, 28), lib.randint(0, 10, (64,))
    return _whole_step(lib, model, opt, lib.nn.CrossEntropyLoss(), x, y, variant)


@workload("compiled_step.mlp.sgd", GROUP,
          description="MLP 784-128-64-10, batch 64: the whole SGD(momentum) step function compiled")
def mlp_whole_step() -> Mapping[str, Any]:
    return _variants(_mlp)


def _transformer(variant: str) -> Timed:
    lib = _lib(variant.split(".")[0])
    _seeded(lib)
    model = encoder_layer(lib)
    opt = lib.optim.Adam(model.parameters(), lr=1e-4)
    x, target = lib.randn(8, 128, 256), lib.randn(8, 128, 256)
    return _whole_step(lib, model, opt, lib.nn.MSELoss(), x, target, variant)


@workload("compiled_step.transformer_layer.adam", GROUP,
          description="TransformerEncoderLayer(256, 4, 1024) with dropout 0.1, batch 8 x seq 128: the whole Adam "
                      "step function compiled")
def transformer_whole_step() -> Mapping[str, Any]:
    return _variants(_transformer)
