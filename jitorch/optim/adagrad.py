"""Adagrad: per-coordinate learning rates from the sum of squared gradients."""
from __future__ import annotations

from typing import Any

import jitorch

from . import _cuda, _fused
from .optimizer import Optimizer, ParamsT, _scalar_dtype, _value

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    """``torch.optim.Adagrad``.

    ``sum += g * g;  p -= lr / (1 + (t - 1) * lr_decay) * g / (sqrt(sum) + eps)``.
    As in torch, state (``step`` and ``sum`` filled with
    ``initial_accumulator_value``) is created for every parameter up front.

    >>> import jitorch
    >>> w = jitorch.zeros(1, requires_grad=True)
    >>> opt = jitorch.optim.Adagrad([w], lr=0.5)
    >>> w.grad = jitorch.tensor([3.0]); opt.step()
    >>> w
    tensor([-0.5000], requires_grad=True)
    """

    def __init__(self, params: ParamsT, lr: float = 1e-2, lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10, foreach: bool | None = None, *,
                 maximize: bool = False, differentiable: bool = False, fused: bool | None = None) -> None:
        if isinstance(lr, jitorch.Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= lr_decay:
            raise ValueError(f"Invalid lr_decay value: {lr_decay}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= initial_accumulator_value:
            raise ValueError(f"Invalid initial_accumulator_value value: {initial_accumulator_value}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        defaults = {"lr": lr, "lr_decay": lr_decay, "eps": eps, "weight_decay": weight_decay,
                    "initial_accumulator_value": initial_accumulator_value, "foreach": foreach,
                    "maximize": maximize, "differentiable": differentiable, "fused": fused}
        self._check_options(foreach, fused, differentiable)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, group, initial_accumulator_value)

    def _init_state(self, p, group, init_value) -> dict[str, Any]:
        st = self.state[p]
        st["step"] = jitorch.tensor(0.0, dtype=_scalar_dtype(group["fused"]))
        st["sum"] = jitorch.full_like(p, init_value)
        return st

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("foreach", None)
            group.setdefault("maximize", False)
            group.setdefault("differentiable", False)
            fused = group.setdefault("fused", None)
            for p in group["params"]:
                st = self.state.get(p)
                if st and not isinstance(st.get("step"), jitorch.Tensor):
                    st["step"] = jitorch.tensor(float(st["step"]), dtype=_scalar_dtype(fused))

    def share_memory(self) -> None:
        """No-op: jitorch tensors live in ordinary process memory."""

    def _update_group(self, group: dict[str, Any]) -> None:
        lr = _value(group["lr"])
        lr_decay = group["lr_decay"]
        eps = group["eps"]
        wd = group["weight_decay"]
        maximize = bool(group["maximize"])
        use_wd = bool(wd != 0)
        state, cache, launch = self.state, self._views, _fused.adagrad
        pending: list = []
        for p in group["params"]:
            g = p._grad
            if g is None:
                continue
            st = state[p]
            if not st:  # a parameter added after construction (torch reads the default here too)
                st = self._init_state(p, group, self.defaults["initial_accumulator_value"])
            step = self._bump_step(st["step"])
            clr = lr / (1 + (step - 1) * lr_decay)
            if _cuda.is_cuda(p):
                _cuda.step("adagrad", p, g, {"state_sum": st["sum"]},
                           {"neg_clr": -clr, "weight_decay": wd, "eps": eps},
                           {"use_wd": use_wd, "maximize": maximize})
                p._version[0] += 1
                continue
            flats, _dt = cache.views(id(p), (p._data, st["sum"]._data), pending)
            launch(flats[0], cache.grad(id(p), g._data, flats[0]), flats[1], -clr, wd, eps, use_wd, maximize)
            if pending:
                _fused.write_back(pending)
            p._version[0] += 1
