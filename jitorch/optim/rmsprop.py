"""RMSprop: divide the gradient by a running root-mean-square of recent gradients."""
from __future__ import annotations

from typing import Any

import jitorch

from . import _cuda, _fused
from .optimizer import Optimizer, ParamsT, _scalar_dtype, _value

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """``torch.optim.RMSprop``.

    ``v = alpha * v + (1 - alpha) * g * g``; with ``centered`` the running
    mean ``gm`` of ``g`` is subtracted (``sqrt(v - gm * gm)``); then either
    ``p -= lr * g / (sqrt(v) + eps)`` or, with momentum,
    ``buf = momentum * buf + g / (sqrt(v) + eps); p -= lr * buf``.

    >>> import jitorch
    >>> w = jitorch.zeros(1, requires_grad=True)
    >>> opt = jitorch.optim.RMSprop([w], lr=0.01, alpha=0.0)
    >>> w.grad = jitorch.tensor([2.0]); opt.step()
    >>> w
    tensor([-0.0100], requires_grad=True)
    """

    def __init__(self, params: ParamsT, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False, capturable: bool = False,
                 foreach: bool | None = None, maximize: bool = False, differentiable: bool = False) -> None:
        if isinstance(lr, jitorch.Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= alpha:
            raise ValueError(f"Invalid alpha value: {alpha}")
        defaults = {"lr": lr, "momentum": momentum, "alpha": alpha, "eps": eps, "centered": centered,
                    "weight_decay": weight_decay, "capturable": capturable, "foreach": foreach,
                    "maximize": maximize, "differentiable": differentiable}
        self._check_options(foreach, None, differentiable)
        super().__init__(params, defaults)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("momentum", 0)
            group.setdefault("centered", False)
            group.setdefault("foreach", None)
            group.setdefault("maximize", False)
            group.setdefault("differentiable", False)
            group.setdefault("capturable", False)
            for p in group["params"]:
                st = self.state.get(p)
                if st and not isinstance(st.get("step"), jitorch.Tensor):
                    st["step"] = jitorch.tensor(float(st["step"]), dtype=_scalar_dtype())

    def _update_group(self, group: dict[str, Any]) -> None:
        lr = _value(group["lr"])
        alpha = group["alpha"]
        eps = group["eps"]
        wd = group["weight_decay"]
        momentum = group["momentum"]
        centered = bool(group["centered"])
        maximize = bool(group["maximize"])
        use_momentum = bool(momentum > 0)
        use_wd = bool(wd != 0)
        w = 1 - alpha  # lerp weight of the centered gradient average
        lerp_small = bool(abs(w) < 0.5)
        state, cache, launch = self.state, self._views, _fused.rmsprop
        pending: list = []
        for p in group["params"]:
            g = p._grad
            if g is None:
                continue
            st = state[p]
            if not st:
                st["step"] = jitorch.zeros((), dtype=_scalar_dtype())
                st["square_avg"] = jitorch.zeros_like(p)
                if use_momentum:
                    st["momentum_buffer"] = jitorch.zeros_like(p)
                if centered:
                    st["grad_avg"] = jitorch.zeros_like(p)
            self._bump_step(st["step"])
            if _cuda.is_cuda(p):
                dt = _fused.compute_dtype(p._data.dtype)
                _cuda.step("rmsprop", p, g, {"square_avg": st["square_avg"],
                                             "grad_avg": st.get("grad_avg") if centered else None,
                                             "buf": st.get("momentum_buffer") if use_momentum else None},
                           {"alpha": alpha, "one_minus_alpha": w, "w_minus_one": float(dt.type(w) - dt.type(1)),
                            "eps": eps, "weight_decay": wd, "momentum": momentum, "neg_lr": -lr},
                           {"lerp_small": lerp_small, "use_wd": use_wd, "centered": centered,
                            "use_momentum": use_momentum, "maximize": maximize})
                p._version[0] += 1
                continue
            arrays = (p._data, st["square_avg"]._data)
            if use_momentum:
                arrays += (st["momentum_buffer"]._data,)
            if centered:
                arrays += (st["grad_avg"]._data,)
            flats, dt = cache.views(id(p), arrays, pending)
            empty = _fused.empty(dt)
            buf = flats[2] if use_momentum else empty
            gavg = flats[-1] if centered else empty
            w_minus_one = float(dt.type(w) - dt.type(1))  # torch's lerp forms weight - 1 in tensor precision
            launch(flats[0], cache.grad(id(p), g._data, flats[0]), flats[1], gavg, buf, alpha, w, lerp_small,
                   w_minus_one, eps, wd, momentum, -lr, use_wd, centered, use_momentum, maximize)
            if pending:
                _fused.write_back(pending)
            p._version[0] += 1
