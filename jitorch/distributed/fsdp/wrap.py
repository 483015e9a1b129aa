"""Auto-wrap policies: which submodules become their own FSDP unit (torch.distributed.fsdp.wrap)."""
from __future__ import annotations


class ModuleWrapPolicy:
    """Wrap every submodule whose class is one of ``module_classes``."""

    def __init__(self, module_classes):
        self._module_classes = tuple(set(module_classes))

    def __call__(self, module, recurse: bool, *args, **kwargs) -> bool:
        return True if recurse else isinstance(module, self._module_classes)

    def __repr__(self) -> str:
        return f"ModuleWrapPolicy({', '.join(c.__name__ for c in self._module_classes)})"


def always_wrap_policy(*args, **kwargs) -> bool:
    return True


def lambda_auto_wrap_policy(module, recurse: bool, nonwrapped_numel: int, lambda_fn) -> bool:
    return True if recurse else bool(lambda_fn(module))


def size_based_auto_wrap_policy(module, recurse: bool, nonwrapped_numel: int, min_num_params: int = int(1e8),
                                force_leaf_modules=None, exclude_wrap_modules=None) -> bool:
    """Wrap a module once its not-yet-wrapped parameters number ``min_num_params`` or more."""
    from ...nn import ModuleDict, ModuleList
    force_leaf = tuple(force_leaf_modules or ())
    exclude = tuple(exclude_wrap_modules) if exclude_wrap_modules is not None else (ModuleList, ModuleDict)
    large = nonwrapped_numel >= min_num_params
    if recurse:
        return large and not isinstance(module, force_leaf)
    return large and not isinstance(module, exclude)


def recursive_wrap(module, policy, wrapper_cls, only_wrap_children: bool = False, **kwargs):
    """Wrap (bottom-up) the submodules ``policy`` selects; returns (module, numel now wrapped)."""
    nonwrapped = sum(p.numel() for p in module.parameters() if not getattr(p, "_fsdp_flat", False))
    if not policy(module=module, recurse=True, nonwrapped_numel=nonwrapped):
        return module, 0
    wrapped_total = 0
    for name, child in list(module.named_children()):
        if isinstance(child, wrapper_cls):
            continue
        new_child, n = recursive_wrap(child, policy, wrapper_cls, **kwargs)
        if new_child is not child:
            setattr(module, name, new_child)
        wrapped_total += n
    remainder = nonwrapped - wrapped_total
    if not only_wrap_children and policy(module=module, recurse=False, nonwrapped_numel=remainder):
        return wrapper_cls(module, **kwargs), nonwrapped
    return module, wrapped_total

