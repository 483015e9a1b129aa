"""``jitorch.hub``: load models from a directory with a ``hubconf.py``, and checkpoints from ``file://`` URLs.

Mirrors ``torch.hub`` for what works without a network:

* ``load(dir, "entrypoint", *args, **kwargs)`` imports ``dir/hubconf.py``, checks its
  ``dependencies`` list, and returns ``entrypoint(*args, **kwargs)``; ``list`` and ``help``
  show the entrypoints and their docstrings.
* ``load_state_dict_from_url("file:///path/name-<sha256 prefix>.pt")`` copies the file into
  the cache (``get_dir()/checkpoints``), verifying the hash prefix in its name with
  ``check_hash=True``, then reads it with ``jitorch.load``.

``source="github"`` and ``http(s)://`` URLs raise: jitorch never downloads. Importing a
``hubconf.py`` runs its code, exactly as torch.hub does, so only load directories you trust.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import re
import shutil
import sys
import tempfile
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

ENV_JITORCH_HOME = "JITORCH_HOME"
ENV_XDG_CACHE_HOME = "XDG_CACHE_HOME"
DEFAULT_CACHE_DIR = "~/.cache"
VAR_DEPENDENCY = "dependencies"
MODULE_HUBCONF = "hubconf.py"
# torch's file-name convention: "name-<first hex digits of the sha256>.ext"
HASH_REGEX = re.compile(r"-([a-f0-9]*)\.")

_hub_dir: str | None = None

__all__ = ["download_url_to_file", "get_dir", "help", "list", "load", "load_state_dict_from_url", "set_dir"]


# -- the cache directory ------------------------------------------------------------------------------------------
def _get_jitorch_home() -> str:
    return os.path.expanduser(os.getenv(ENV_JITORCH_HOME, os.path.join(os.getenv(ENV_XDG_CACHE_HOME,
                                                                                 DEFAULT_CACHE_DIR), "jitorch")))


def get_dir() -> str:
    """The hub cache directory: ``set_dir``'s value, else ``$JITORCH_HOME/hub`` (default ``~/.cache/jitorch/hub``)."""
    if _hub_dir is not None:
        return _hub_dir
    return os.path.join(_get_jitorch_home(), "hub")


def set_dir(d) -> None:
    """Use ``d`` as the hub cache directory from now on."""
    global _hub_dir
    _hub_dir = os.path.expanduser(os.fspath(d))


# -- hubconf.py ---------------------------------------------------------------------------------------------------
def _resolve_dir(repo_or_dir, source: str) -> str:
    if not isinstance(source, str) or source.lower() not in ("github", "local"):
        raise ValueError(f'Unknown source: "{source}". Allowed values: "github" | "local".')
    if source.lower() == "github":
        raise RuntimeError(f"jitorch.hub cannot fetch {repo_or_dir!r} from GitHub: jitorch does no network access. "
                           "Clone or download the repository yourself and pass its directory with source='local'.")
    path = os.path.expanduser(os.fspath(repo_or_dir))
    if not os.path.isdir(path):
        raise FileNotFoundError(f"jitorch.hub: {path!r} is not a directory (source='local' expects the directory "
                                f"that holds {MODULE_HUBCONF})")
    if not os.path.isfile(os.path.join(path, MODULE_HUBCONF)):
        raise FileNotFoundError(f"jitorch.hub: {path!r} has no {MODULE_HUBCONF}")
    return path


@contextlib.contextmanager
def _on_sys_path(path: str):
    # hubconf.py usually imports helpers that live next to it
    sys.path.insert(0, path)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(path)


def _import_hubconf(path: str):
    spec = importlib.util.spec_from_file_location("hubconf", os.path.join(path, MODULE_HUBCONF))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_dependencies(module) -> None:
    deps = getattr(module, VAR_DEPENDENCY, None)
    if deps is None:
        return
    if isinstance(deps, str) or not all(isinstance(d, str) for d in deps):
        raise RuntimeError(f"{MODULE_HUBCONF}: '{VAR_DEPENDENCY}' must be a list of package names")
    missing = [d for d in deps if importlib.util.find_spec(d) is None]
    if missing:
        raise RuntimeError(f"Missing dependencies: {', '.join(missing)}")


def _entry(module, model: str):
    if not isinstance(model, str):
        raise ValueError("Invalid input: model should be a string of function name")  # noqa: TRY004 (as torch)
    _check_dependencies(module)
    fn = getattr(module, model, None) if model in dir(module) else None
    if fn is None or not callable(fn):
        raise RuntimeError(f"Cannot find callable {model} in hubconf")
    return fn


def list(repo_or_dir, source: str = "local", force_reload: bool = False, skip_validation: bool = False,
         trust_repo=None, verbose: bool = True):
    """Names of the callable entrypoints in ``repo_or_dir/hubconf.py`` (those not starting with ``_``)."""
    path = _resolve_dir(repo_or_dir, source)
    with _on_sys_path(path):
        module = _import_hubconf(path)
    _check_dependencies(module)
    return [name for name in dir(module) if callable(getattr(module, name)) and not name.startswith("_")]


def help(repo_or_dir, model, source: str = "local", force_reload: bool = False, skip_validation: bool = False,
         trust_repo=None):
    """The docstring of entrypoint ``model``."""
    path = _resolve_dir(repo_or_dir, source)
    with _on_sys_path(path):
        module = _import_hubconf(path)
        return _entry(module, model).__doc__


def load(repo_or_dir, model, *args, source: str = "local", trust_repo=None, force_reload: bool = False,
         verbose: bool = True, skip_validation: bool = False, **kwargs):
    """``model(*args, **kwargs)`` from ``repo_or_dir/hubconf.py``.

    >>> import jitorch  # doctest: +SKIP
    >>> net = jitorch.hub.load("path/to/repo", "resnet18", pretrained=False)  # doctest: +SKIP
    """
    path = _resolve_dir(repo_or_dir, source)
    with _on_sys_path(path):
        module = _import_hubconf(path)
        return _entry(module, model)(*args, **kwargs)


# -- checkpoints by URL --------------------------------------------------------------------------------------------
def _local_path(url: str) -> str:
    parts = urlparse(url)
    if parts.scheme != "file":
        raise RuntimeError(f"jitorch.hub: cannot fetch {url!r}: only file:// URLs are supported (jitorch does no "
                           "network access); download the file yourself and pass file:///absolute/path")
    if parts.netloc not in ("", "localhost"):
        raise RuntimeError(f"jitorch.hub: file URL {url!r} names the host {parts.netloc!r}; use file:///path")
    return url2pathname(unquote(parts.path))


def download_url_to_file(url: str, dst: str, hash_prefix: str | None = None, progress: bool = True) -> None:
    """Copy the file a ``file://`` URL names to ``dst``, checking that its sha256 starts with ``hash_prefix``."""
    src = _local_path(url)
    if not os.path.isfile(src):
        raise FileNotFoundError(f"jitorch.hub: {url!r} does not name an existing file")
    dst = os.path.expanduser(dst)
    folder = os.path.dirname(os.path.abspath(dst))
    # copy to a temporary name next to dst, then rename: a failed check leaves no file behind
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".download-")
    try:
        sha = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
            while chunk := inp.read(1 << 20):
                sha.update(chunk)
                out.write(chunk)
        if hash_prefix is not None:
            digest = sha.hexdigest()
            if digest[:len(hash_prefix)] != hash_prefix:
                raise RuntimeError(f'invalid hash value (expected "{hash_prefix}", got "{digest}")')
        shutil.move(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_state_dict_from_url(url: str, model_dir: str | None = None, map_location=None, progress: bool = True,
                             check_hash: bool = False, file_name: str | None = None, weights_only: bool = False):
    """``jitorch.load`` of the checkpoint at a ``file://`` URL, cached in ``model_dir`` (default
    ``get_dir()/checkpoints``).

    With ``check_hash=True`` the file name must look like ``name-<sha256 prefix>.ext`` and
    the contents must match that prefix (checked when the file enters the cache).
    """
    _local_path(url)  # reject other schemes before touching the cache
    if model_dir is None:
        model_dir = os.path.join(get_dir(), "checkpoints")
    os.makedirs(model_dir, exist_ok=True)
    filename = file_name if file_name is not None else os.path.basename(urlparse(url).path)
    cached = os.path.join(model_dir, filename)
    if not os.path.exists(cached):
        if progress:
            sys.stderr.write(f'Downloading: "{url}" to {cached}\n')
        hash_prefix = None
        if check_hash:
            match = HASH_REGEX.search(filename)
            if match is None or not match.group(1):
                raise RuntimeError(f"check_hash=True needs a file name of the form 'name-<sha256 prefix>.ext', got "
                                   f"{filename!r}")
            hash_prefix = match.group(1)
        download_url_to_file(url, cached, hash_prefix, progress=progress)
    from .serialization import load as _load
    return _load(cached, map_location=map_location, weights_only=weights_only)


