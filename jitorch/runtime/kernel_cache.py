"""Compile generated kernel source once, keep it on disk, reuse it everywhere.

Numba cannot disk-cache functions created by ``exec`` (numba#3501), so each
generated kernel is written to ``<cache dir>/<sha256 of its source>.py`` and
imported from there; its ``@njit(cache=True)`` decorator then stores the
machine code beside it in ``__pycache__``.  The file name is the hash of the
source, so a changed generator produces a new file and a stale cache can
never be picked up.  Everything a kernel depends on must be spelled out in
its source text (constants, dtypes) or in modules whose version is part of
that text (see ``SOURCE_SALT``).
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import threading

import numba


_lock = threading.Lock()
_modules: dict[str, object] = {}


def cache_dir() -> str:
    """Where generated kernels live; ``JITORCH_CACHE_DIR`` overrides the default."""
    root = os.environ.get("JITORCH_CACHE_DIR")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "jitorch")
    path = os.path.join(root, f"numba-{numba.__version__}-py{sys.version_info[0]}{sys.version_info[1]}")
    os.makedirs(path, exist_ok=True)
    return path


def _vmath_version() -> str:
    from . import vmath
    with open(vmath.__file__, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


# Generated kernels import helpers from jitorch.runtime.vmath; its content hash
# is stamped into every source so that editing vmath invalidates their caches.
SOURCE_SALT = f"# vmath {_vmath_version()}\n"


def _write_once(path: str, text: str) -> bool:
    """Write ``text`` to ``path`` unless it is there; whether this call wrote it."""
    if os.path.exists(path):
        return False
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)  # atomic: readers see the whole file or none
    return True


def load_module(source: str):
    """Import (once per process) the module holding ``source``; returns it."""
    source = SOURCE_SALT + source
    digest = hashlib.sha256(source.encode()).hexdigest()[:32]
    mod = _modules.get(digest)
    if mod is not None:
        return mod
    with _lock:
        mod = _modules.get(digest)
        if mod is not None:
            return mod
        path = os.path.join(cache_dir(), f"k_{digest}.py")
        written = _write_once(path, source)
        name = f"jitorch_kernel_{digest}"
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
        mod.__jitorch_source__ = source
        mod.__jitorch_found_on_disk__ = not written  # another process (or an earlier run) wrote it
        _modules[digest] = mod
        return mod


def load_kernel(source: str, name: str):
    """The Numba dispatcher called ``name`` defined in ``source``."""
    return getattr(load_module(source), name)


def purge_numba_cache(dispatcher) -> None:
    """Drop a kernel's on-disk machine code (used when the cache file is corrupt)."""
    try:
        dispatcher._cache.flush()
    except Exception:
        pass


def first_call(dispatcher, args):
    """Call a dispatcher the first time for these argument types.

    The call may compile and write Numba's on-disk cache; processes that do
    this for the same function at once (pytest-xdist workers, DataLoader
    workers, MPI ranks) could interleave their index and data files, so the
    compile runs under a file lock per kernel module.  A truncated cache file
    makes Numba raise EOFError (numba#10434) or a pickle error: drop the cache
    and compile again instead of failing.
    """
    with _compile_lock(dispatcher):
        try:
            return dispatcher(*args)
        except (EOFError, ValueError, TypeError) as exc:
            if isinstance(exc, (ValueError, TypeError)) and "pickle" not in str(exc).lower():
                raise
            purge_numba_cache(dispatcher)
            return dispatcher(*args)


class _compile_lock:
    """An exclusive ``flock`` on ``<cache dir>/locks/<module>.lock`` (a no-op where flock is missing)."""

    def __init__(self, dispatcher):
        mod = getattr(getattr(dispatcher, "py_func", None), "__module__", None) or "unknown"
        self.path = os.path.join(cache_dir(), "locks", f"{mod}.lock")
        self.fd = None

    def __enter__(self):
        try:
            import fcntl
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except (ImportError, OSError):
            if self.fd is not None:
                os.close(self.fd)
            self.fd = None
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            import fcntl
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
        return False


def layout_key(args) -> tuple:
    """The parts of the arguments' Numba types that a dtype/ndim key misses.

    An entry point compiled for C-contiguous arrays ignores strides, so a
    strided array must never reach it: callers key entry points by this.
    """
    key = []
    for a in args:
        flags = getattr(a, "flags", None)
        if flags is None:
            key.append(type(a))
        else:
            key.append(1 if flags.c_contiguous else (2 if flags.f_contiguous else 3))
    return tuple(key)


def entry_point(dispatcher, args):
    """The compiled overload for these arguments, callable without type dispatch.

    Must be called after the dispatcher has been called once with such args.
    """
    sig = tuple(dispatcher.typeof_pyval(a) for a in args)
    return dispatcher.overloads[sig].entry_point


def warm_up() -> None:
    """Load Numba's CPU target once, at import.

    The first kernel call in a process otherwise pays ~0.5 s while Numba
    loads its lowering registries (even for a kernel already cached on disk).
    Paying it inside ``import jitorch`` keeps the first op call fast.
    """
    from numba.core.registry import cpu_target
    cpu_target.target_context.refresh()
