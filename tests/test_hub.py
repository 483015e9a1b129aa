"""jitorch.hub: local hubconf directories and file:// checkpoints."""
import hashlib
import os
import textwrap

import numpy as np
import pytest

import jitorch as J
from jitorch import hub

HUBCONF = '''
dependencies = ["numpy"]

from hub_demo_models import make_mlp   # a module next to hubconf.py: the directory is on sys.path while loading

SOME_CONSTANT = 3


def tiny_mlp(hidden=4, *, seed=0):
    """A two-layer MLP with `hidden` units."""
    return make_mlp(hidden, seed)


def echo(*args, **kwargs):
    """Returns its arguments."""
    return args, kwargs


def _private():
    return None
'''

HELPERS = '''
import jitorch


def make_mlp(hidden, seed):
    jitorch.manual_seed(seed)
    return jitorch.nn.Sequential(jitorch.nn.Linear(3, hidden), jitorch.nn.ReLU(), jitorch.nn.Linear(hidden, 2))
'''


@pytest.fixture
def repo(tmp_path):
    d = tmp_path / "repo"
    d.mkdir()
    (d / "hubconf.py").write_text(textwrap.dedent(HUBCONF))
    (d / "hub_demo_models.py").write_text(textwrap.dedent(HELPERS))
    return d


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(hub, "_hub_dir", None)
    hub.set_dir(tmp_path / "hubcache")
    return tmp_path / "hubcache"


def test_list_help_and_load_from_a_local_directory(repo):
    # like torch.hub.list: every public callable of hubconf, imported helpers included
    assert hub.list(str(repo)) == ["echo", "make_mlp", "tiny_mlp"]
    assert hub.help(str(repo), "tiny_mlp") == "A two-layer MLP with `hidden` units."
    model = hub.load(str(repo), "tiny_mlp", 6, seed=1)
    assert isinstance(model, J.nn.Sequential) and model[0].out_features == 6
    J.manual_seed(1)
    expected = J.nn.Sequential(J.nn.Linear(3, 6), J.nn.ReLU(), J.nn.Linear(6, 2))
    for a, b in zip(model.parameters(), expected.parameters()):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    assert hub.load(repo, "echo", 1, 2, source="local", trust_repo=True, a=3) == ((1, 2), {"a": 3})


def test_hub_load_agrees_with_torch_hub_on_a_local_directory(repo):
    torch = pytest.importorskip("torch")
    assert torch.hub.load(str(repo), "echo", 1, source="local", b=2) == hub.load(str(repo), "echo", 1, b=2)


def test_missing_dependencies_entrypoints_and_sources_raise_clear_errors(repo, tmp_path):
    with pytest.raises(RuntimeError, match="Cannot find callable nope in hubconf"):
        hub.load(str(repo), "nope")
    with pytest.raises(RuntimeError, match="Cannot find callable SOME_CONSTANT"):
        hub.load(str(repo), "SOME_CONSTANT")
    with pytest.raises(ValueError, match="model should be a string"):
        hub.load(str(repo), 3)
    with pytest.raises(RuntimeError, match="GitHub.*source='local'"):
        hub.load("pytorch/vision", "resnet18", source="github")
    with pytest.raises(ValueError, match='Unknown source: "ftp"'):
        hub.list(str(repo), source="ftp")
    with pytest.raises(FileNotFoundError, match="hubconf.py"):
        hub.list(str(tmp_path))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "hubconf.py").write_text("dependencies = ['numpy', 'no_such_package_for_jitorch_tests']\n"
                                       "def f():\n    return 1\n")
    with pytest.raises(RuntimeError, match="Missing dependencies: no_such_package_for_jitorch_tests"):
        hub.load(str(broken), "f")


def test_get_dir_defaults_and_set_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(hub, "_hub_dir", None)
    monkeypatch.setenv("JITORCH_HOME", str(tmp_path / "home"))
    assert hub.get_dir() == str(tmp_path / "home" / "hub")
    monkeypatch.delenv("JITORCH_HOME")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert hub.get_dir() == os.path.expanduser(os.path.join("~", ".cache", "jitorch", "hub"))
    hub.set_dir(tmp_path / "elsewhere")
    assert hub.get_dir() == str(tmp_path / "elsewhere")


def _checkpoint(tmp_path, name="weights.pt"):
    J.manual_seed(0)
    state = J.nn.Linear(3, 2).state_dict()
    src = tmp_path / name
    J.save(state, str(src))
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    return state, src, digest


def test_load_state_dict_from_file_url_caches_and_checks_the_hash(tmp_path, hub_dir):
    state, src, digest = _checkpoint(tmp_path)
    named = tmp_path / f"weights-{digest[:10]}.pt"
    src.rename(named)
    loaded = hub.load_state_dict_from_url(named.as_uri(), check_hash=True, progress=False)
    assert list(loaded) == list(state)
    for k in state:
        np.testing.assert_array_equal(loaded[k].numpy(), state[k].numpy())
    cached = hub_dir / "checkpoints" / named.name
    assert cached.read_bytes() == named.read_bytes()
    named.unlink()  # a second call is served from the cache
    again = hub.load_state_dict_from_url(f"file://{named}", progress=False)
    np.testing.assert_array_equal(again["weight"].numpy(), state["weight"].numpy())


def test_hash_mismatch_leaves_nothing_in_the_cache(tmp_path, hub_dir):
    _, src, digest = _checkpoint(tmp_path)
    wrong = "0" * 8 if not digest.startswith("0" * 8) else "1" * 8
    bad = tmp_path / f"weights-{wrong}.pt"
    src.rename(bad)
    with pytest.raises(RuntimeError, match=f'invalid hash value \\(expected "{wrong}", got "{digest}"\\)'):
        hub.load_state_dict_from_url(bad.as_uri(), check_hash=True, progress=False)
    assert not (hub_dir / "checkpoints" / bad.name).exists()
    assert os.listdir(hub_dir / "checkpoints") == []


def test_model_dir_file_name_and_unsupported_urls(tmp_path, hub_dir):
    state, src, _ = _checkpoint(tmp_path)
    out = hub.load_state_dict_from_url(src.as_uri(), model_dir=str(tmp_path / "md"), file_name="renamed.pt",
                                       map_location="cpu", progress=False)
    assert (tmp_path / "md" / "renamed.pt").exists() and list(out) == list(state)
    with pytest.raises(RuntimeError, match="only file:// URLs"):
        hub.load_state_dict_from_url("https://example.com/weights-abcdef12.pt", progress=False)
    with pytest.raises(FileNotFoundError):
        hub.load_state_dict_from_url((tmp_path / "missing.pt").as_uri(), progress=False)
    with pytest.raises(RuntimeError, match="name-<sha256 prefix>"):
        hub.load_state_dict_from_url((tmp_path / "nohash.pt").as_uri(), check_hash=True, progress=False)
    assert J.hub is hub
