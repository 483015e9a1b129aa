"""Adam and AdamW (decoupled weight decay), with AMSGrad and maximize."""
from __future__ import annotations

from typing import Any

import jitorch

from . import _cuda, _fused
from .optimizer import Optimizer, ParamsT, _scalar_dtype, _value

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """``torch.optim.Adam``: bias-corrected first/second moment estimates.

    Per parameter, with ``t`` the parameter's own step count::

        m = lerp(m, g, 1 - beta1);  v = beta2 * v + (1 - beta2) * g * g
        p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    ``weight_decay`` adds ``wd * p`` to the gradient, or with
    ``decoupled_weight_decay=True`` (AdamW) shrinks ``p *= 1 - lr * wd`` first.
    ``amsgrad`` normalizes by the running maximum of ``v``.

    >>> import jitorch
    >>> w = jitorch.zeros(2, requires_grad=True)
    >>> opt = jitorch.optim.Adam([w], lr=0.1)
    >>> w.grad = jitorch.tensor([1.0, -1.0]); opt.step()
    >>> w
    tensor([-0.1000,  0.1000], requires_grad=True)
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, amsgrad: bool = False, *,
                 foreach: bool | None = None, maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False, fused: bool | None = None,
                 decoupled_weight_decay: bool = False) -> None:
        if isinstance(lr, jitorch.Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        both_float = isinstance(betas[0], float) and isinstance(betas[1], float)
        both_tensor = isinstance(betas[0], jitorch.Tensor) and isinstance(betas[1], jitorch.Tensor)
        if not (both_float or both_tensor):
            raise ValueError("betas must be either both floats or both Tensors")
        for k, b in enumerate(betas):
            if isinstance(b, jitorch.Tensor) and b.numel() != 1:
                raise ValueError(f"Tensor betas[{k}] must be 1-element")
        betas = tuple(b.reshape(()) if isinstance(b, jitorch.Tensor) else b for b in betas)
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay, "amsgrad": amsgrad,
                        "maximize": maximize, "foreach": foreach, "capturable": capturable,
                        "differentiable": differentiable, "fused": fused,
                        "decoupled_weight_decay": decoupled_weight_decay}
        self._check_options(foreach, fused, differentiable)
        super().__init__(params, defaults)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("amsgrad", False)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("capturable", False)
            group.setdefault("differentiable", False)
            group.setdefault("decoupled_weight_decay", False)
            fused = group.setdefault("fused", None)
            for p in group["params"]:
                st = self.state.get(p)
                # old checkpoints stored the step as a Python number
                if st and not isinstance(st.get("step"), jitorch.Tensor):
                    dt = _scalar_dtype(fused) if (group["capturable"] or fused) else _scalar_dtype()
                    st["step"] = jitorch.tensor(float(st["step"]), dtype=dt)

    def _init_state(self, p, group) -> dict[str, Any]:
        st = self.state[p]
        step_dt = _scalar_dtype(group["fused"]) if (group["capturable"] or group["fused"]) else _scalar_dtype()
        st["step"] = jitorch.tensor(0.0, dtype=step_dt)
        st["exp_avg"] = jitorch.zeros_like(p)
        st["exp_avg_sq"] = jitorch.zeros_like(p)
        if group["amsgrad"]:
            st["max_exp_avg_sq"] = jitorch.zeros_like(p)
        return st

    def _update_group(self, group: dict[str, Any]) -> None:
        lr = _value(group["lr"])
        beta1, beta2 = (_value(b) for b in group["betas"])
        eps = group["eps"]
        wd = group["weight_decay"]
        amsgrad = bool(group["amsgrad"])
        maximize = bool(group["maximize"])
        decoupled = bool(group.get("decoupled_weight_decay", False))
        use_wd = bool(wd != 0)
        w1 = 1 - beta1
        w1_small = bool(abs(w1) < 0.5)
        state, cache, launch, bump = self.state, self._views, _fused.adam, self._bump_step
        pending: list = []
        consts = None  # per-step scalars, shared by parameters at the same step and dtype
        for p in group["params"]:
            g = p._grad
            if g is None:
                continue
            st = state.get(p)
            if not st:
                st = self._init_state(p, group)
            step = bump(st["step"])
            if _cuda.is_cuda(p):
                dt = _fused.compute_dtype(p._data.dtype)
                if consts is None or consts[0] != step or consts[1] is not dt:
                    consts = _adam_consts(step, dt, lr, beta1, beta2, w1)
                _cuda.step("adam", p, g, {"exp_avg": st["exp_avg"], "exp_avg_sq": st["exp_avg_sq"],
                                          "max_exp_avg_sq": st.get("max_exp_avg_sq") if amsgrad else None},
                           {"w1": w1, "w1_minus_one": consts[4], "beta2": beta2, "one_minus_beta2": 1 - beta2,
                            "weight_decay": wd, "decay_keep": 1 - lr * wd, "bc2_sqrt": consts[3], "eps": eps,
                            "neg_step_size": consts[2]},
                           {"w1_small": w1_small, "use_wd": use_wd, "decoupled": decoupled, "amsgrad": amsgrad,
                            "maximize": maximize})
                p._version[0] += 1
                continue
            arrays = (p._data, st["exp_avg"]._data, st["exp_avg_sq"]._data)
            if amsgrad:
                arrays += (st["max_exp_avg_sq"]._data,)
            flats, dt = cache.views(id(p), arrays, pending)
            vmax = flats[3] if amsgrad else _fused.empty(dt)
            if consts is None or consts[0] != step or consts[1] is not dt:
                consts = _adam_consts(step, dt, lr, beta1, beta2, w1)
            launch(flats[0], cache.grad(id(p), g._data, flats[0]), flats[1], flats[2], vmax, w1, consts[4], w1_small,
                   beta2, 1 - beta2, wd, 1 - lr * wd, consts[3], eps, consts[2], use_wd, decoupled, amsgrad,
                   maximize)
            if pending:
                _fused.write_back(pending)
            p._version[0] += 1


def _adam_consts(step, dt, lr, beta1, beta2, w1) -> tuple:
    """Per-step scalars shared by parameters at the same step and compute dtype."""
    bc1 = 1 - beta1 ** step
    bc2 = 1 - beta2 ** step
    # torch's lerp forms weight - 1 in the tensor's own precision
    return (step, dt, -(lr / bc1), bc2 ** 0.5, float(dt.type(w1) - dt.type(1)))


class AdamW(Adam):
    """``torch.optim.AdamW``: Adam with decoupled weight decay (default ``weight_decay=1e-2``)."""

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False, foreach: bool | None = None, capturable: bool = False,
                 differentiable: bool = False, fused: bool | None = None) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True  # loading any state into AdamW keeps it AdamW

