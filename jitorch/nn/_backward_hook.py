"""Module full backward hooks, built from identity autograd Functions around forward.

An identity Function on the module's outputs sees ``grad_output`` (and runs the
backward pre-hooks); another on its tensor inputs sees ``grad_input`` and runs
the backward hooks.  When no input needs a gradient the hooks run from the output
side with ``grad_input`` all None, as torch does.
"""
from __future__ import annotations

from .._tensor import Tensor
from ..autograd.function import Function


class _InputIdentity(Function):
    @staticmethod
    def forward(ctx, state, *tensors):
        ctx.state = state
        return tensors

    @staticmethod
    def backward(ctx, *grads):
        return (None,) + tuple(ctx.state.on_input_grads(grads))


class _OutputIdentity(Function):
    @staticmethod
    def forward(ctx, state, *tensors):
        ctx.state = state
        return tensors

    @staticmethod
    def backward(ctx, *grads):
        return (None,) + tuple(ctx.state.on_output_grads(grads))


class BackwardHook:
    """Per-call state shared by the input and output identity Functions."""

    def __init__(self, module):
        self.module = module
        self.grad_outputs = None
        self.n_inputs = 0
        self.input_slots: list[int] = []  # positions (among tensor inputs) that require grad

    def setup_input_hook(self, args: tuple) -> tuple:
        tensor_pos = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        self.n_inputs = len(tensor_pos)
        live = [i for i in tensor_pos if args[i].requires_grad]
        self.input_slots = [tensor_pos.index(i) for i in live]
        if not live or not self.module._backward_hooks:
            return args
        outs = _InputIdentity.apply(self, *[args[i] for i in live])
        new = list(args)
        for i, t in zip(live, outs):
            new[i] = t
        return tuple(new)

    def setup_output_hook(self, result):
        if isinstance(result, Tensor):
            if not result.requires_grad:
                return result
            return _OutputIdentity.apply(self, result)[0]
        if isinstance(result, (tuple, list)):
            pos = [i for i, r in enumerate(result) if isinstance(r, Tensor) and r.requires_grad]
            if not pos:
                return result
            outs = _OutputIdentity.apply(self, *[result[i] for i in pos])
            new = list(result)
            for i, t in zip(pos, outs):
                new[i] = t
            return type(result)(new) if isinstance(result, list) else tuple(new)
        return result

    def on_output_grads(self, grads):
        grads = tuple(grads)
        for hook in self.module._backward_pre_hooks.values():
            r = hook(self.module, grads)
            if r is not None:
                grads = tuple(r) if isinstance(r, (tuple, list)) else (r,)
        self.grad_outputs = grads
        if not self.input_slots and self.module._backward_hooks:
            self._run_hooks((None,) * self.n_inputs)
        return grads

    def on_input_grads(self, grads):
        full = [None] * self.n_inputs
        for slot, g in zip(self.input_slots, grads):
            full[slot] = g
        res = self._run_hooks(tuple(full))
        return [res[slot] for slot in self.input_slots]

    def _run_hooks(self, grad_input: tuple) -> tuple:
        for hook in self.module._backward_hooks.values():
            r = hook(self.module, grad_input, self.grad_outputs)
            if r is None:
                continue
            r = tuple(r) if isinstance(r, (tuple, list)) else (r,)
            if len(r) != len(grad_input):
                raise RuntimeError(f"Backward hook returned an invalid number of grad_input, got {len(r)}, but "
                                   f"expected {len(grad_input)}")
            grad_input = r
        return grad_input
