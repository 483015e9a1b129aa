"""Recompute cheap values in the backward instead of saving them from the forward.

The backward graph reads forward values ("saved" inputs), which the forward
graph must then write out and keep alive until the backward runs.  A saved
value made by an elementwise op from values the backward has anyway (forward
inputs such as parameters and the batch, or other saved values) costs less to
recompute inside the backward's fused kernels than to store: the forward
writes one tensor fewer, and the memory held between forward and backward
shrinks.  This pass replaces such saved values by their recomputation, chains
included, until none is left.  It never adds a saved value that was not
already kept alive, so it only ever removes memory traffic.
"""
from __future__ import annotations

from .ir import Graph, Node, Value


def rematerialize(fwd: Graph, bwd: Graph, saved: list) -> list:
    """Rewrite ``bwd`` (whose trailing inputs are the forward values ``saved``); return the new saved list."""
    n_grad = len(bwd.inputs) - len(saved)
    grad_inputs = bwd.inputs[:n_grad]
    avail: dict[int, Value] = {v.id: b for v, b in zip(saved, bwd.inputs[n_grad:])}  # fwd id -> bwd value
    saved = list(saved)
    fwd_inputs = {v.id for v in fwd.inputs}
    recomputed: list[Node] = []
    changed = True
    while changed:
        changed = False
        for v in list(saved):
            node = v.producer
            if node is None or node.kind != "elementwise" or len(node.outputs) != 1 or node.meta.get("random"):
                continue
            srcs = [i for i in node.inputs if isinstance(i, Value)]
            if not all(s.id in avail or s.id in fwd_inputs or s.kind == "const" for s in srcs):
                continue
            ins = []
            for i in node.inputs:
                if not isinstance(i, Value):
                    ins.append(i)
                    continue
                b = avail.get(i.id)
                if b is None:
                    if i.kind == "const":
                        b = bwd.add_constant(i.const)
                    else:  # a forward input: free to keep, the caller holds it anyway
                        b = bwd.add_input(i.shape, i.dtype, i.device, name="saved")
                        saved.append(i)
                    avail[i.id] = b
                ins.append(b)
            old = avail[v.id]
            new = Node(node.op, ins, dict(node.attrs), meta=dict(node.meta))
            new.outputs.append(bwd.new_value(v.shape, v.dtype, v.device, producer=new))
            recomputed.append(new)
            _replace_uses(bwd, old, new.outputs[0], recomputed)
            bwd.inputs.remove(old)
            saved.remove(v)
            avail[v.id] = new.outputs[0]
            changed = True
    if recomputed:
        bwd.nodes = _place_before_first_use(_dependency_order(recomputed), bwd.nodes)
        bwd.inputs = grad_inputs + [avail[v.id] for v in saved]
    return saved


def _place_before_first_use(recomputed: list, nodes: list) -> list:
    """``nodes`` with each recomputed node inserted just before the first node that reads it.

    Next to its reader a recomputation fuses into the reader's kernel; at the top of the
    graph it would be a kernel of its own whose result is stored and read back.
    (``recomputed`` is in dependency order.)
    """
    pending = {id(n.outputs[0]): n for n in recomputed}
    out: list = []

    def emit(node):
        for i in node.inputs:
            dep = pending.pop(id(i), None) if isinstance(i, Value) else None
            if dep is not None:
                emit(dep)
        out.append(node)

    for node in nodes:
        emit(node)
    for node in recomputed:  # read by no node (only a graph output): keep them, at the end
        if pending.pop(id(node.outputs[0]), None) is not None:
            emit(node)
    return out


def _dependency_order(nodes: list) -> list:
    """``nodes`` ordered so each comes after the nodes among them whose outputs it reads.

    A recomputation may read a value that was itself recomputed later in the loop (it
    was a saved input when the reader was made), so creation order is not enough.
    """
    made = {id(o): n for n in nodes for o in n.outputs}
    done: set = set()
    out: list = []

    def visit(n):
        if id(n) in done:
            return
        done.add(id(n))
        for i in n.inputs:
            dep = made.get(id(i))
            if dep is not None:
                visit(dep)
        out.append(n)

    for n in nodes:
        visit(n)
    return out


def _replace_uses(graph: Graph, old: Value, new: Value, extra_nodes=()) -> None:
    for n in list(graph.nodes) + list(extra_nodes):
        if any(i is old for i in n.inputs):
            n.inputs = [new if i is old else i for i in n.inputs]
    graph.outputs = [new if o is old else o for o in graph.outputs]
    graph.mutations = [(new if a is old else a, new if b is old else b) for a, b in graph.mutations]
