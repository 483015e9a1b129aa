"""What ``jit.trace`` and ``jit.load`` return: ``TracedModule`` and ``TracedFunction``.

A ``TracedModule`` is an ``nn.Module`` whose submodule tree mirrors the traced
model's parameter and buffer names, so ``state_dict()``, ``load_state_dict()``,
``parameters()``, ``to()`` and ``train()/eval()`` behave as on the original. Its
``forward`` feeds the current weights to the traced graph as inputs: the
graph never holds a weight, so updating or loading weights needs no retrace.
"""
from __future__ import annotations

from ..nn.module import Module
from ._program import Program


class _TracedSubmodule(Module):
    """A node of the traced module's tree; it only holds parameters, buffers and children."""

    def __init__(self, original_name: str):
        super().__init__()
        object.__setattr__(self, "original_name", original_name)

    def _get_name(self) -> str:
        return self.original_name

    def forward(self, *args, **kwargs):
        raise RuntimeError(f"the submodule {self.original_name} of a traced module cannot be called on its own: "
                           "a trace records the whole forward as one graph")


class Weight:
    """One weight input of the graph: its names (the first is canonical), tensor and kind."""

    def __init__(self, names: list, tensor, is_param: bool, persistent: bool = True):
        self.names = names
        self.tensor = tensor
        self.is_param = is_param
        self.persistent = persistent


class _TracedProgram:
    """What ``TracedModule`` and ``TracedFunction`` share: torch.jit's introspection names and ``save``."""

    _program: Program

    @property
    def graph(self):
        """The recorded graph at the traced shapes (printable IR)."""
        return _graph(self._program)

    @property
    def inlined_graph(self):
        return self.graph

    @property
    def code(self) -> str:
        """The Python source of the generated kernels, with the schedule they run in."""
        return _code(self._program)

    def save(self, f, **kwargs) -> None:
        """Write graph and weights to ``f`` (see ``jitorch.jit.save``)."""
        from ._format import save
        save(self, f, **kwargs)


class TracedModule(_TracedProgram, Module):
    """A traced ``nn.Module``: callable like the original, saved with ``.save(path)``.

    >>> import jitorch as torch
    >>> m = torch.nn.Linear(4, 2)
    >>> tm = torch.jit.trace(m, torch.randn(3, 4))
    >>> sorted(tm.state_dict())
    ['bias', 'weight']
    """

    def __init__(self, program: Program, weights: list, original_names: dict, training: dict | None = None):
        super().__init__()
        object.__setattr__(self, "_program", program)
        object.__setattr__(self, "original_name", original_names.get("", "Module"))
        object.__setattr__(self, "_original_names", dict(original_names))
        for path in original_names:  # the whole tree, weightless layers (ReLU...) included, like torch
            if path:
                self._owner(path + ".x", original_names)
        slots = []
        for w in weights:
            for k, name in enumerate(w.names):
                owner, leaf = self._owner(name, original_names)
                if w.is_param:
                    owner.register_parameter(leaf, w.tensor)
                    d = owner._parameters
                else:
                    owner.register_buffer(leaf, w.tensor, persistent=w.persistent)
                    d = owner._buffers
                if k == 0:
                    slots.append((d, leaf, name))  # read at every call: later assignments are seen
        object.__setattr__(self, "_weight_slots", slots)
        for path, flag in (training or {}).items():
            sub = self if not path else self.get_submodule(path)
            object.__setattr__(sub, "training", flag)

    def _owner(self, name: str, original_names: dict):
        parts = name.split(".")
        owner, path = self, ""
        for p in parts[:-1]:
            path = f"{path}.{p}" if path else p
            child = owner._modules.get(p)
            if child is None:
                child = _TracedSubmodule(original_names.get(path, "Module"))
                owner.add_module(p, child)
            owner = child
        return owner, parts[-1]

    def _get_name(self) -> str:
        return self.original_name

    def extra_repr(self) -> str:
        return f"original_name={self.original_name}"

    def _current_weights(self) -> list:
        out = []
        for d, key, name in self._weight_slots:
            t = d.get(key)
            if t is None:
                raise RuntimeError(f"jitorch.jit: the traced graph reads '{name}', which is now None")
            out.append(t)
        return out

    def forward(self, *args, **kwargs):
        program = self._program
        return program(program.signature.bind(args, kwargs), self._current_weights())


class TracedFunction(_TracedProgram):
    """A traced function: callable with tensors shaped like the example inputs."""

    def __init__(self, program: Program, name: str):
        self._program = program
        self.__name__ = self.__qualname__ = name
        self.name = name

    def __call__(self, *args, **kwargs):
        program = self._program
        return program(program.signature.bind(args, kwargs), [])

    def __repr__(self) -> str:
        return f"<jitorch.jit.TracedFunction {self.name}>"


def _graph(program: Program):
    return program.graph_at(program.traced_batch if program.batch_generic else None)


def _code(program: Program) -> str:
    from ..compiler.schedule import FusedGroup, ViewStep
    ex = program.executor(program.traced_batch if program.batch_generic else None)
    lines = [f"# {program.signature.name}: {ex.n_kernels} kernel step(s)"]
    by_group = {id(info.group): info for info in ex.kernels}
    for k, step in enumerate(ex.steps):
        info = by_group.get(id(step)) if isinstance(step, FusedGroup) else None
        if isinstance(step, FusedGroup) and info is None:
            lines.append(f"# step {k}: call {step.nodes[0].name}")  # a lone op that runs its eager kernel
        elif info is not None:
            lines.append(f"# step {k}: fused kernel {info.name} ({', '.join(n.name for n in step.nodes)})")
            lines.append(info.source.rstrip())
        elif isinstance(step, ViewStep):
            lines.append(f"# step {k}: view {step.name}")
        else:
            lines.append(f"# step {k}: call {step.name}")
    return "\n".join(lines) + "\n"
