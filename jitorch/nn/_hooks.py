"""Module hooks: removable handles, process-wide forward hooks, and calling a module with its hooks."""
from __future__ import annotations

import itertools
import weakref
from collections import OrderedDict
from collections.abc import Callable

from ..autograd import grad_mode

__all__ = ["RemovableHandle", "register_module_forward_hook", "register_module_forward_pre_hook"]


class RemovableHandle:
    """Returned by the ``register_*_hook`` methods; ``remove()`` takes the hook out again."""

    _ids = itertools.count()

    def __init__(self, hooks_dict: OrderedDict, *, extra_dict=None):
        self.hooks_dict_ref = weakref.ref(hooks_dict)
        self.id = next(RemovableHandle._ids)
        extras = extra_dict if isinstance(extra_dict, (list, tuple)) else ([extra_dict] if extra_dict is not None else [])
        self.extra_dict_ref = tuple(weakref.ref(d) for d in extras)

    def remove(self) -> None:
        for ref in (self.hooks_dict_ref,) + self.extra_dict_ref:
            d = ref()
            if d is not None:
                d.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


# process-wide hooks (torch.nn.modules.module.register_module_forward_*_hook)
_global_forward_pre_hooks: OrderedDict = OrderedDict()
_global_forward_hooks: OrderedDict = OrderedDict()

def register_module_forward_pre_hook(hook: Callable) -> RemovableHandle:
    """A forward pre-hook for every module."""
    h = RemovableHandle(_global_forward_pre_hooks)
    _global_forward_pre_hooks[h.id] = hook
    return h


def register_module_forward_hook(hook: Callable) -> RemovableHandle:
    """A forward hook for every module."""
    h = RemovableHandle(_global_forward_hooks)
    _global_forward_hooks[h.id] = hook
    return h


def _call_with_hooks(module, args: tuple, kwargs: dict):
    """``module(*args, **kwargs)`` with forward pre/post hooks and backward hooks."""
    for hook_id, hook in itertools.chain(_global_forward_pre_hooks.items(), module._forward_pre_hooks.items()):
        if hook_id in module._forward_pre_hooks_with_kwargs:
            r = hook(module, args, kwargs)
            if r is not None:
                if not (isinstance(r, tuple) and len(r) == 2):
                    raise RuntimeError("forward pre-hook must return None or a tuple of (new_args, new_kwargs), "
                                       f"but got {r}.")
                args, kwargs = r
        else:
            r = hook(module, args)
            if r is not None:
                args = r if isinstance(r, tuple) else (r,)
    bw = None
    if (module._backward_hooks or module._backward_pre_hooks) and grad_mode.is_grad_enabled():
        from ._backward_hook import BackwardHook
        bw = BackwardHook(module)
        args = bw.setup_input_hook(args)
    try:
        result = module.forward(*args, **kwargs)
    except Exception:
        # hooks registered with always_call=True still see the call (their output is ignored)
        for hook_id, hook in module._forward_hooks.items():
            if hook_id in module._forward_hooks_always_called:
                try:
                    if hook_id in module._forward_hooks_with_kwargs:
                        hook(module, args, kwargs, None)
                    else:
                        hook(module, args, None)
                except Exception:  # noqa: BLE001,S110  (the forward error is the one to report)
                    pass
        raise
    for hook_id, hook in itertools.chain(_global_forward_hooks.items(), module._forward_hooks.items()):
        if hook_id in module._forward_hooks_with_kwargs:
            r = hook(module, args, kwargs, result)
        else:
            r = hook(module, args, result)
        if r is not None:
            result = r
    if bw is not None:
        result = bw.setup_output_hook(result)
    return result
