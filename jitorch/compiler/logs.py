"""``JITORCH_LOGS=graph,fusion,code,guards,recompiles,perf`` (or ``set_logs(...)`` in code)."""
from __future__ import annotations

import os
import sys

_ALL = ("graph", "fusion", "code", "guards", "recompiles", "perf", "breaks", "cuda_fallback", "cuda_launch")
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


class _Progress:
    """Long compiles show progress: after PROGRESS_AFTER_S of compiling kernels, one line per kernel.

    ``JITORCH_COMPILE_PROGRESS=0`` silences it; it goes to stderr so program output is untouched.
    """

    PROGRESS_AFTER_S = 2.0

    def __init__(self):
        self.started = None
        self.done = 0
        self.on = os.environ.get("JITORCH_COMPILE_PROGRESS", "1") != "0"

    def begin(self) -> None:
        import time
        self.started, self.done = time.perf_counter(), 0

    def kernel(self, name: str, compiled: bool) -> None:
        import time
        if self.started is None:
            return
        self.done += 1
        spent = time.perf_counter() - self.started
        if self.on and compiled and spent >= self.PROGRESS_AFTER_S:
            print(f"[jitorch] compiling: {self.done} kernel(s) ready after {spent:.1f} s (last: {name})",
                  file=sys.stderr, flush=True)

    def end(self) -> None:
        self.started = None


progress = _Progress()


def perf_compile(info) -> None:
    if "perf" in _enabled:
        how = "cache hit" if info.cache_hit else "compiled"
        emit("perf", f"{info.name}: {how} in {info.compile_s * 1e3:.1f} ms")
