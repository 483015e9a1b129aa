"""``jitorch.compiler.explain(fn, *args)``: what the compiler did, as data and as text."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ExplainOutput:
    graphs: list = field(default_factory=list)  # forward (and backward) graph text
    graph_breaks: list = field(default_factory=list)  # GraphBreak records, deduplicated
    recompiles: list = field(default_factory=list)  # one line per recompile with the failed guard
    fusion_groups: list = field(default_factory=list)  # (kernel name, [op names])
    kernels: list = field(default_factory=list)  # (kernel name, source)
    graph_count: int = 0
    kernel_count: int = 0

    def __str__(self) -> str:
        out = [f"Graph count: {self.graph_count}", f"Kernel count: {self.kernel_count}",
               f"Graph breaks: {len(self.graph_breaks)}"]
        for b in self.graph_breaks:
            out.append(f"  - {b.where}: [{b.category}] {b.reason}. Hint: {b.hint}")
        if self.recompiles:
            out.append("Recompiles:")
            out += [f"  - {r}" for r in self.recompiles]
        for k, g in enumerate(self.graphs):
            out.append(f"Graph {k}:\n{g}")
        if self.fusion_groups:
            out.append("Fusion groups:")
            out += [f"  {name}: {ops}" for name, ops in self.fusion_groups]
        for name, src in self.kernels:
            out.append(f"Kernel {name}:\n{src}")
        return "\n".join(out)


def explain(fn, *args, **kwargs) -> ExplainOutput:
    """Compile ``fn`` (if it is not already), call it on ``args``, and report what happened."""
    from .api import CompiledFunction, CompiledModule, compile
    if isinstance(fn, CompiledModule):
        compiled = fn._compiled
    elif isinstance(fn, CompiledFunction):
        compiled = fn
    else:
        compiled = compile(fn)
        if isinstance(compiled, CompiledModule):
            compiled = compiled._compiled
    compiled(*args, **kwargs)
    rep = ExplainOutput(recompiles=list(compiled.recompiles))
    seen = set()
    for entry in compiled.entries.values():
        for b in entry.breaks:
            key = (b.where, b.category)
            if key not in seen:
                seen.add(key)
                rep.graph_breaks.append(b)
        pairs = [(entry.forward, entry.graph_str), (entry.backward, entry.backward_graph_str)]
        if entry.program is not None:
            # a resumable break: the graphs before and after each break
            if not entry.program.n_graphs:
                entry.program.compile_segments(entry.breaks)
            pairs = entry.program.compiled_graphs()
        for ex, text in pairs:
            if ex is None:
                continue
            rep.graphs.append(text)
            rep.graph_count += 1
            rep.kernel_count += ex.n_kernels
            for s in ex.steps:
                if s.kind == "fused":
                    rep.fusion_groups.append((s.name, [n.name for n in s.nodes]))
            for k in ex.kernels:
                rep.kernels.append((k.name, k.source))
    print(rep)
    return rep
