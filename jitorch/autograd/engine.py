"""The reverse pass: walk the recorded graph from the outputs to the leaves."""
from __future__ import annotations

import heapq
import threading
import warnings

from . import grad_mode
from .graph import AccumulateGrad, edge_of


def _make_grads(outputs, grad_outputs, create_graph):
    import jitorch

    grads = []
    for out, g in zip(outputs, grad_outputs):
        if g is None:
            if out.numel() != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            if not out.dtype.is_floating_point:
                raise RuntimeError(f"grad can be implicitly created only for real scalar outputs but got {out.dtype}")
            g = jitorch.ones_like(out)
        elif not isinstance(g, jitorch.Tensor):
            g = jitorch.tensor(g, dtype=out.dtype, device=out.device)
        elif tuple(g.shape) != tuple(out.shape):
            raise RuntimeError(
                f"Mismatch in shape: grad_output[0] has a shape of {tuple(g.shape)} and output[0] "
                f"has a shape of {tuple(out.shape)}."
            )
        if not create_graph:
            g = g.detach()
        grads.append(g)
    return grads


def _accumulate(buffers, key, g):
    cur = buffers.get(key)
    buffers[key] = g if cur is None else cur + g


def _call_tensor_hooks(node, nr, g):
    hooks = node._tensor_pre_hooks.get(nr) if node._tensor_pre_hooks else None
    if hooks:
        for fn in list(hooks.values()):
            r = fn(g)
            if r is not None:
                g = r
    return g


class _GraphTask:
    """What one ``run_backward`` call owns beyond its local state: the final callbacks queued while it runs."""

    __slots__ = ("callbacks", "can_checkpoint")

    def __init__(self, can_checkpoint: bool):
        self.callbacks: list = []
        self.can_checkpoint = can_checkpoint  # torch: False when only some inputs' gradients are wanted


# The graph tasks running on this thread, innermost last: a backward started from a hook (or from a
# checkpointed segment) nests inside the one that called it and keeps its own callbacks.
_local = threading.local()


def _running() -> list:
    tasks = getattr(_local, "tasks", None)
    if tasks is None:
        tasks = _local.tasks = []
    return tasks


def queue_callback(callback) -> None:
    """Run ``callback()`` once the backward pass now running has finished (torch's
    ``Variable._execution_engine.queue_callback``): after its last node, in queueing order, under the
    caller's grad mode. A callback may queue further callbacks; they run in the same pass."""
    tasks = _running()
    if not tasks:
        raise RuntimeError("Final callbacks can only be installed during backward pass.")
    tasks[-1].callbacks.append(callback)


def is_checkpoint_valid() -> bool:
    """False inside a backward that computes only some inputs' gradients (torch's rule for reentrant checkpoint)."""
    return all(t.can_checkpoint for t in _running())


def _run_final_callbacks(task: _GraphTask) -> None:
    callbacks = task.callbacks
    i = 0
    while i < len(callbacks):  # not a for loop over a copy: a callback may append more
        callbacks[i]()
        i += 1
    callbacks.clear()


def run_backward(outputs, grad_outputs, retain_graph=None, create_graph=False, inputs=None,
                 accumulate=True, allow_unused=False):
    """Shared core of ``Tensor.backward`` and ``autograd.grad``.

    With ``accumulate`` the leaves' ``.grad`` is updated (restricted to
    ``inputs`` when given); otherwise the gradients w.r.t. ``inputs`` are
    returned and no ``.grad`` is touched.
    """
    if retain_graph is None:
        retain_graph = create_graph
    outputs = list(outputs)
    for o in outputs:
        if not o._requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
    grads = _make_grads(outputs, grad_outputs, create_graph)

    # where the wanted gradients arrive: (node, output_nr) for each input
    targets = {}
    if inputs is not None:
        for i, t in enumerate(inputs):
            e = edge_of(t)
            if e is None:
                raise RuntimeError(f"One of the differentiated Tensors (input {i}) does not require grad")
            targets.setdefault((id(e[0]), e[1]), []).append(i)
    captured = [None] * (len(inputs) if inputs is not None else 0)

    # count dependencies of every node reachable from the outputs
    deps = {}
    nodes = {}
    stack = []
    for o in outputs:
        e = edge_of(o)
        if id(e[0]) not in nodes:
            nodes[id(e[0])] = e[0]
            stack.append(e[0])
    while stack:
        n = stack.pop()
        for nxt in n.next_functions:
            if nxt is None:
                continue
            fn = nxt[0]
            deps[id(fn)] = deps.get(id(fn), 0) + 1
            if id(fn) not in nodes:
                nodes[id(fn)] = fn
                stack.append(fn)

    buffers = {}
    for o, g in zip(outputs, grads):
        e = edge_of(o)
        _accumulate(buffers, (id(e[0]), e[1]), g)

    # ready nodes run newest first (the reverse of creation order)
    ready = []
    for o in outputs:
        fn = edge_of(o)[0]
        if deps.get(id(fn), 0) == 0 and all(r[2] is not fn for r in ready):
            heapq.heappush(ready, (-fn.seq, id(fn), fn))

    task = _GraphTask(can_checkpoint=inputs is None)
    tasks = _running()
    tasks.append(task)
    try:
        with grad_mode.set_grad_enabled(create_graph):
            _run_ready_loop(ready, buffers, deps, targets, captured, retain_graph, create_graph, inputs, accumulate)
        _run_final_callbacks(task)
    finally:
        tasks.pop()  # an error drops the queued callbacks, as torch drops a failed graph task's

    if inputs is not None and not accumulate:
        for i, c in enumerate(captured):
            if c is None and not allow_unused:
                raise RuntimeError(
                    "One of the differentiated Tensors appears to not have been used in the graph. "
                    "Set allow_unused=True if this is the desired behavior."
                )
        return tuple(captured)
    return None


def _run_ready_loop(ready, buffers, deps, targets, captured, retain_graph, create_graph, inputs, accumulate):
    """Run nodes as their gradients complete, newest first, until none is ready."""
    pop, push = heapq.heappop, heapq.heappush
    while ready:
        _, _, node = pop(ready)
        nid = id(node)
        if node.__class__ is AccumulateGrad:
            g = buffers.pop((nid, 0), None)
            if node._ext is not None or targets:
                g = _node_extras(node, nid, [g], 1, targets, captured, create_graph)[0]
            if accumulate and g is not None and (inputs is None or (nid, 0) in targets):
                _accumulate_into_leaf(node.variable, g, create_graph)
            continue
        n_out = getattr(node, "n_outputs", 1)
        if n_out == 1:
            g = buffers.pop((nid, 0), None)
            gouts = [g]
            missing = g is None
        else:
            gouts = [buffers.pop((nid, k), None) for k in range(n_out)]
            missing = all(g is None for g in gouts)
        if node._ext is not None or targets:
            gouts = _node_extras(node, nid, gouts, n_out, targets, captured, create_graph)
            missing = all(g is None for g in gouts)
        nexts = node.next_functions
        in_grads = [None] * len(nexts) if missing else node.apply(gouts)
        if node._ext is not None and node._hooks:
            for fn in list(node._hooks.values()):
                r = fn(tuple(in_grads), tuple(gouts))
                if r is not None:
                    in_grads = list(r)
        if not retain_graph:
            node.release()
        for nxt, g in zip(nexts, in_grads):
            if nxt is None:
                continue
            fn = nxt[0]
            fid = id(fn)
            if g is not None:
                key = (fid, nxt[1])
                cur = buffers.get(key)
                buffers[key] = g if cur is None else cur + g
            left = deps[fid] - 1
            deps[fid] = left
            if left == 0:
                push(ready, (-fn.seq, fid, fn))


def _node_extras(node, nid, gouts, n_out, targets, captured, create_graph):
    """Tensor hooks, retained grads, captured inputs and pre-hooks of a node about to run."""
    if node._ext is not None:
        for k in range(n_out):
            if gouts[k] is not None:
                gouts[k] = _call_tensor_hooks(node, k, gouts[k])
        if node._retain:
            for k, ref in node._retain.items():
                t = ref()
                if t is not None and gouts[k] is not None:
                    t._grad = gouts[k] if create_graph else gouts[k].detach()
    for k in range(n_out):
        hit = targets.get((nid, k))
        if hit is not None:
            for i in hit:
                captured[i] = gouts[k]
    if node._ext is not None and node._pre_hooks:
        for fn in list(node._pre_hooks.values()):
            r = fn(tuple(gouts))
            if r is not None:
                gouts = list(r)
    return gouts


def _accumulate_into_leaf(leaf, g, create_graph):
    hooks = leaf._hooks
    if hooks:
        for fn in list(hooks.values()):
            r = fn(g)
            if r is not None:
                g = r
    if g._data.shape != leaf._data.shape:
        g = g.sum_to_size(leaf.shape)
    if g._dtype is not leaf._dtype:
        g = g.to(leaf.dtype)
    if leaf._grad is None:
        if create_graph:
            leaf._grad = g
        else:
            # own the buffer: the incoming gradient may alias another tensor
            leaf._grad = g.detach() if g._is_fresh() else g.detach().clone()
    elif create_graph or leaf._grad._requires_grad:
        leaf._grad = leaf._grad + g
    else:
        with grad_mode.no_grad():
            leaf._grad.add_(g)
    for fn in (leaf._post_acc_hooks or {}).values():
        fn(leaf)


def warn_nonleaf_grad():
    warnings.warn(
        "The .grad attribute of a Tensor that is not a leaf Tensor is being accessed. Its .grad "
        "attribute won't be populated during autograd.backward(). If you indeed want the .grad "
        "field to be populated for a non-leaf Tensor, use .retain_grad() on the non-leaf Tensor.",
        UserWarning, stacklevel=3,
    )
