"""``JITORCH_LOGS=graph,fusion,code,guards,recompiles,perf`` (or ``set_logs(...)`` in code)."""
from __future__ import annotations

import os
import sys

_ALL = ("graph", "fusion", "code", "guards", "recompiles", "perf", "breaks")
_enabled: set[str] = set()


def set_logs(*names: str) -> None:
    """Turn on the named log channels (``set_logs()`` turns all off)."""
    bad = [n for n in names if n not in _ALL and n != "all"]
    if bad:
        raise ValueError(f"unknown log channel(s) {bad}; choose from {', '.join(_ALL)}")
    _enabled.clear()
    _enabled.update(_ALL if "all" in names else names)


def _from_env() -> None:
    spec = os.environ.get("JITORCH_LOGS", "")
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if names:
        set_logs(*names)


_from_env()


def enabled(name: str) -> bool:
    return name in _enabled


def emit(channel: str, text: str) -> None:
    if channel in _enabled:
        print(f"[jitorch:{channel}] {text}", file=sys.stderr)


def code(info) -> None:
    if "code" in _enabled:
        emit("code", f"kernel {info.name}:\n{info.source}")


def perf_compile(info) -> None:
    if "perf" in _enabled:
        how = "cache hit" if info.cache_hit else "compiled"
        emit("perf", f"{info.name}: {how} in {info.compile_s * 1e3:.1f} ms")
