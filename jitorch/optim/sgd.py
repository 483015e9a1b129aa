"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""
from __future__ import annotations

from typing import Any

import jitorch

from . import _cuda, _fused
from .optimizer import Optimizer, ParamsT, _value

__all__ = ["SGD"]


class SGD(Optimizer):
    """``torch.optim.SGD``: ``p -= lr * g`` where ``g`` may pass through L2 decay and momentum.

    The momentum buffer starts as the first (decayed) gradient and is then
    updated as ``buf = momentum * buf + (1 - dampening) * g``, as in torch.

    >>> import jitorch
    >>> w = jitorch.ones(2, requires_grad=True)
    >>> opt = jitorch.optim.SGD([w], lr=0.5, momentum=0.9)
    >>> w.grad = jitorch.ones(2); opt.step()
    >>> w
    tensor([0.5000, 0.5000], requires_grad=True)
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False,
                 foreach: bool | None = None, differentiable: bool = False, fused: bool | None = None) -> None:
        if isinstance(lr, jitorch.Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening, "weight_decay": weight_decay,
                    "nesterov": nesterov, "maximize": maximize, "foreach": foreach,
                    "differentiable": differentiable, "fused": fused}
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        self._check_options(foreach, fused, differentiable)
        super().__init__(params, defaults)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("nesterov", False)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("differentiable", False)
            group.setdefault("fused", False)

    def _update_group(self, group: dict[str, Any]) -> None:
        lr = _value(group["lr"])
        wd = _value(group["weight_decay"])
        momentum = group["momentum"]
        keep = 1 - group["dampening"]
        nesterov = bool(group["nesterov"])
        maximize = bool(group["maximize"])
        use_momentum = bool(momentum != 0)
        use_wd = bool(wd != 0)
        state, cache, launch = self.state, self._views, _fused.sgd
        pending: list = []
        for p in group["params"]:
            g = p._grad
            if g is None:
                continue
            first = False
            buf_t = None
            if use_momentum:
                st = state[p]
                buf_t = st.get("momentum_buffer")
                if buf_t is None:
                    # torch seeds the buffer with the gradient itself; the kernel writes it
                    buf_t = st["momentum_buffer"] = jitorch.zeros_like(p)
                    first = True
            if _cuda.is_cuda(p):
                _cuda.step("sgd", p, g, {"buf": buf_t},
                           {"neg_lr": -lr, "weight_decay": wd, "momentum": momentum, "keep": keep},
                           {"use_wd": use_wd, "use_momentum": use_momentum, "first": first, "nesterov": nesterov,
                            "maximize": maximize})
                p._version[0] += 1
                continue
            if use_momentum:
                flats, dt = cache.views(id(p), (p._data, buf_t._data), pending)
                buf = flats[1]
            else:
                flats, dt = cache.views(id(p), (p._data,), pending)
                buf = _fused.empty(dt)
            launch(flats[0], cache.grad(id(p), g._data, flats[0]), buf, -lr, wd, momentum, keep, use_wd, use_momentum,
                   first, nesterov, maximize)
            if pending:
                _fused.write_back(pending)
            p._version[0] += 1
