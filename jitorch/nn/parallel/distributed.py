"""``DistributedDataParallel``: data parallelism over jitorch.distributed (MPI)."""
from __future__ import annotations

from contextlib import contextmanager

from ...autograd import grad_mode
from ..module import Module
from ._reducer import Reducer


def _unwrap_compiled(module):
    """(module whose parameters DDP manages, callable that runs the forward)."""
    if not isinstance(module, Module) and isinstance(getattr(module, "_orig_mod", None), Module):
        return module._orig_mod, module  # a jitorch.compile'd module: call it, manage its parameters
    if not isinstance(module, Module):
        raise TypeError(f"DistributedDataParallel expects an nn.Module, got {type(module).__name__}")
    return module, module


class DistributedDataParallel(Module):
    """Replicate ``module`` on every rank and average its gradients during backward.

    At construction rank 0's parameters and buffers are broadcast to all ranks.
    Each forward (with grad enabled and outside :meth:`no_sync`) broadcasts
    rank 0's buffers (``broadcast_buffers``) and arms the gradient reducer: in
    the following backward, gradient buckets are all-reduced (averaged) while
    backward still runs, so that ``.grad`` holds the mean over ranks when
    ``backward()`` returns. Use with a :class:`DistributedSampler` so that
    each rank sees a different share of the data.

    >>> model = DistributedDataParallel(Net())                    # doctest: +SKIP
    >>> loss_fn(model(x), y).backward(); optimizer.step()         # doctest: +SKIP
    """

    def __init__(self, module, device_ids=None, output_device=None, dim: int = 0, broadcast_buffers: bool = True,
                 init_sync: bool = True, process_group=None, bucket_cap_mb=None,
                 find_unused_parameters: bool = False, check_reduction: bool = False,
                 gradient_as_bucket_view: bool = False, static_graph: bool = False,
                 delay_all_reduce_named_params=None, param_to_hook_all_reduce=None, mixed_precision=None,
                 device_mesh=None, skip_all_reduce_unused_params: bool = False):
        super().__init__()
        from ...distributed import process_group as pgs
        from ...distributed.utils import sync_module_states, verify_same_parameters
        pg = pgs.resolve(process_group)
        if pg is None:
            raise RuntimeError("DistributedDataParallel: this rank is not a member of the process group")
        managed, runner = _unwrap_compiled(module)
        if device_ids not in (None, []) or output_device is not None:
            raise ValueError(
                "DistributedDataParallel device_ids and output_device arguments only work with single-device/"
                f"multiple-device GPU modules or CPU modules, but got device_ids {device_ids}, output_device "
                f"{output_device}, and module parameters on the CPU.")
        if mixed_precision is not None or device_mesh is not None or delay_all_reduce_named_params is not None:
            raise NotImplementedError("jitorch DDP does not implement mixed_precision, device_mesh or "
                                      "delay_all_reduce_named_params")
        named = [(n, p) for n, p in managed.named_parameters() if p.requires_grad]
        if not named:
            raise RuntimeError("DistributedDataParallel is not needed when a module doesn't have any parameter "
                               "that requires a gradient.")
        self._modules["module"] = managed   # parameters()/state_dict() see "module.<name>" as in torch
        object.__setattr__(self, "module", runner)
        self.process_group = pg
        self.dim = dim
        self.broadcast_buffers = broadcast_buffers
        self.find_unused_parameters = find_unused_parameters
        self.gradient_as_bucket_view = gradient_as_bucket_view
        self.static_graph = static_graph
        self.bucket_cap_mb = bucket_cap_mb
        self.require_backward_grad_sync = True
        self.require_forward_param_sync = True
        verify_same_parameters([p for _, p in named], pg)
        if init_sync:
            sync_module_states(managed, pg, src=0)
        self.reducer = Reducer([p for _, p in named], [n for n, _ in named], pg, bucket_cap_mb,
                               find_unused_parameters, gradient_as_bucket_view)

    def forward(self, *inputs, **kwargs):
        self.reducer.check_prior_reduction_finished()
        sync = grad_mode.is_grad_enabled() and self.require_backward_grad_sync
        self.require_forward_param_sync = sync
        if sync and self.broadcast_buffers:
            self._sync_buffers()
        out = self.module(*inputs, **kwargs)
        if sync:
            self.reducer.prepare_for_backward(out)
        else:
            self.reducer.skip_sync()
        return out

    def _sync_buffers(self) -> None:
        from ...distributed.utils import broadcast_coalesced
        buffers = list(self._modules["module"].buffers())
        if buffers:
            broadcast_coalesced(buffers, self.process_group, src=0, op="DDP broadcast_buffers")

    @contextmanager
    def no_sync(self):
        """Forwards inside this context skip gradient averaging: their gradients accumulate locally.

        The first forward-backward after the context averages the accumulated sum.
        """
        old = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = old

    def _set_static_graph(self) -> None:
        self.static_graph = True

    def register_comm_hook(self, state, hook):
        raise NotImplementedError("jitorch DDP always averages gradients with an all-reduce; communication "
                                  "hooks are not supported")

    def join(self, *args, **kwargs):
        raise NotImplementedError("jitorch DDP does not implement join() for uneven inputs")
