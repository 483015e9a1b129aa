"""Training-step benchmarks: jitorch eager vs PyTorch eager on the same models and data.

Every variant runs one complete step per call (zero_grad, forward, loss, backward, optimizer
step), the unit a training loop repeats. The model builders take the library module, so the
jitorch and torch rows run literally the same code; ``compiled.py`` reuses them for its
``jitorch.compile`` / ``torch.compile`` rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bench.harness import Timed, WorkloadResult, build_variants, summary, workload

GROUP = "training"
LIBS = ("jitorch", "torch")


def _lib(name: str) -> Any:
    lib = __import__(name)
    __import__(f"{name}.nn")
    __import__(f"{name}.optim")
    return lib


def _seeded(lib: Any) -> None:
    lib.manual_seed(0)


# --------------------------------------------------------------------------
# Model + data builders shared with compiled.py
# --------------------------------------------------------------------------


def mlp(lib: Any) -> Any:
    nn = lib.nn
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64),
                         nn.ReLU(), nn.Linear(64, 10))


def lenet_bn(lib: Any) -> Any:
    nn = lib.nn
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),  # 6x14x14
        nn.Conv2d(6, 16, 5), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),         # 16x5x5
        nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, 10))


def encoder_layer(lib: Any) -> Any:
    # Default dropout (0.1) stays on: it is part of what a real training step pays for.
    return lib.nn.TransformerEncoderLayer(d_model=256, nhead=4, dim_feedforward=1024,
                                          batch_first=True)


def classification_step(lib: Any, model: Any, opt: Any, x: Any, y: Any) -> Timed:
    criterion = lib.nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        opt.step()

    return step


def mlp_step(lib_name: str, wrap: Callable[[Any], Any] | None = None) -> Timed:
    """MLP 784-128-64-10, batch 64 of 1x28x28, CrossEntropy, SGD with momentum."""
    lib = _lib(lib_name)
    _seeded(lib)
    model = mlp(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = lib.randn(64, 1, 28, 28), lib.randint(0, 10, (64,))
    return classification_step(lib, wrap(model) if wrap else model, opt, x, y)


def transformer_step(lib_name: str, wrap: Callable[[Any], Any] | None = None) -> Timed:
    """TransformerEncoderLayer(256, 4, 1024) on 8 x 128 tokens, MSE to a target, Adam."""
    lib = _lib(lib_name)
    _seeded(lib)
    model = encoder_layer(lib)
    opt = lib.optim.Adam(model.parameters(), lr=1e-4)
    x, target = lib.randn(8, 128, 256), lib.randn(8, 128, 256)
    net = wrap(model) if wrap else model
    criterion = lib.nn.MSELoss()

    def step() -> None:
        opt.zero_grad()
        loss = criterion(net(x), target)
        loss.backward()
        opt.step()

    return step


# --------------------------------------------------------------------------
# Workloads
# --------------------------------------------------------------------------


def _factories(build: Callable[[str], Timed]) -> dict[str, Callable[[], Timed]]:
    def factory_for(name: str) -> Callable[[], Timed]:
        def factory() -> Timed:
            step = build(name)
            step()  # fail at setup, not while timing
            return step
        return factory
    return {name: factory_for(name) for name in LIBS}


# forward 2*64*(784*128 + 128*64 + 64*10) flops; backward about twice that
_MLP_FLOPS = 3 * 2 * 64 * (784 * 128 + 128 * 64 + 64 * 10)


@workload("mlp.sgd_step", GROUP, flops=_MLP_FLOPS,
          description="MLP 784-128-64-10, batch 64: zero_grad + forward + CE + backward + "
                      "SGD(momentum) step")
def mlp_sgd_step() -> Mapping[str, Any]:
    return build_variants(_factories(mlp_step))


def lenet_step(lib_name: str) -> Timed:
    lib = _lib(lib_name)
    _seeded(lib)
    model = lenet_bn(lib)
    opt = lib.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = lib.randn(64, 1, 28, 28), lib.randint(0, 10, (64,))
    return classification_step(lib, model, opt, x, y)


@workload("lenet_bn.sgd_step", GROUP,
          description="LeNet-5 with BatchNorm on 1x28x28, batch 64: full SGD(momentum) step")
def lenet_bn_step() -> Mapping[str, Any]:
    return build_variants(_factories(lenet_step))


def lstm_fwd_bwd(lib_name: str) -> Timed:
    lib = _lib(lib_name)
    _seeded(lib)
    lstm = lib.nn.LSTM(64, 128, batch_first=True)
    x = lib.randn(32, 32, 64)  # batch 32, seq 32

    def step() -> None:
        lstm.zero_grad()
        out, _ = lstm(x)
        out.pow(2).mean().backward()

    return step


@workload("lstm.fwd_bwd", GROUP,
          description="LSTM(64 -> 128), batch 32 x seq 32: forward + backward")
def lstm_step() -> Mapping[str, Any]:
    return build_variants(_factories(lstm_fwd_bwd))


@workload("transformer_layer.adam_step", GROUP,
          description="TransformerEncoderLayer(d=256, nhead=4, ff=1024), batch 8 x seq 128: "
                      "forward + MSE + backward + Adam step")
def transformer_layer_step() -> Mapping[str, Any]:
    return build_variants(_factories(transformer_step))


# --------------------------------------------------------------------------
# DataLoader throughput
# --------------------------------------------------------------------------


def dataloader_next(lib_name: str) -> Timed:
    """One batch of 64 from a shuffling DataLoader over a 60000x784 float32 TensorDataset."""
    lib = _lib(lib_name)
    data = __import__(f"{lib_name}.utils.data", fromlist=["DataLoader"])
    _seeded(lib)
    ds = data.TensorDataset(lib.randn(60000, 784), lib.randint(0, 10, (60000,)))
    loader = data.DataLoader(ds, batch_size=64, shuffle=True)
    state = {"it": iter(loader)}

    def next_batch() -> Any:
        try:
            return next(state["it"])
        except StopIteration:  # an epoch ended: start the next one, as a training loop would
            state["it"] = iter(loader)
            return next(state["it"])

    return next_batch


@workload("dataloader.60000x784.b64", GROUP,
          description="next(batch) of a shuffling DataLoader, batch 64, over a 60000x784 "
                      "float32 TensorDataset")
def dataloader_batch() -> Mapping[str, Any]:
    return build_variants({name: (lambda n=name: dataloader_next(n)) for name in LIBS})


@summary
def loader_vs_step(results: Mapping[str, WorkloadResult]) -> list[str]:
    """How much of an MNIST-sized MLP training loop the DataLoader would cost."""
    loader, step = results.get("dataloader.60000x784.b64"), results.get("mlp.sgd_step")
    if loader is None or step is None:
        return []
    lines = ["DataLoader batch (64 of 60000x784) vs one MLP SGD step:"]
    for lib in LIBS:
        t_batch, t_step = loader.median(lib), step.median(lib)
        if t_batch is None or t_step is None:
            lines.append(f"  {lib}: not measured")
            continue
        lines.append(f"  {lib}: {t_batch * 1e6:.0f} µs per batch = {t_batch / t_step:.3g}x "
                     f"the step ({t_step * 1e6:.0f} µs)")
    return lines
