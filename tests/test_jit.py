"""jitorch.jit: trace, run at the traced and other batch sizes, save, load in a fresh process."""
import io
import json
import os
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

import jitorch as J
from jitorch import nn

REPO = Path(__file__).resolve().parents[1]


def _np(t):
    return t.detach().numpy()


def _close(a, b, rtol=1e-5, atol=1e-5):
    np.testing.assert_allclose(_np(a), _np(b), rtol=rtol, atol=atol)


def _line_of(marker: str) -> int:
    """The line number in this file of the line ending with ``# <marker>``."""
    for k, line in enumerate(Path(__file__).read_text().splitlines(), 1):
        if line.rstrip().endswith(f"# {marker}"):
            return k
    raise AssertionError(marker)


# -- models ------------------------------------------------------------------------------------------------------
class SmallCNN(nn.Module):
    """Defined only here: the fresh process that loads its trace never imports this file."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(6 * 4 * 4, 5)

    def forward(self, x):
        x = self.pool(J.relu(self.bn(self.conv(x))))
        return self.fc(x.flatten(1))


def _mlp():
    J.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).eval()


def _cnn():
    J.manual_seed(1)
    m = SmallCNN()
    with J.no_grad():  # non-trivial running statistics, so eval-mode BatchNorm does something
        m.bn.running_mean.copy_(J.randn(6) * 0.1)
        m.bn.running_var.copy_(J.rand(6) + 0.5)
    return m.eval()


def _transformer():
    J.manual_seed(2)
    return nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=64, batch_first=True).eval()


MODELS = {
    "mlp": (_mlp, (2, 8), (5, 8)),
    "cnn": (_cnn, (2, 3, 8, 8), (3, 3, 8, 8)),
    "transformer": (_transformer, (2, 5, 32), (3, 5, 32)),
}

# Loads every (model, inputs, outputs) triple of paths in argv with nothing but jitorch imported.
_CHILD = """
import sys
import jitorch
assert not any(name.startswith("test_") for name in sys.modules), "the child must not see the test module"
for k in range(1, len(sys.argv), 3):
    model = jitorch.jit.load(sys.argv[k], map_location="cpu")
    inputs = jitorch.load(sys.argv[k + 1])
    with jitorch.no_grad():
        jitorch.save([model(x) for x in inputs], sys.argv[k + 2])
"""


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    """Each model traced at one batch size and saved, then run by one fresh interpreter (a start costs seconds)."""
    tmp = tmp_path_factory.mktemp("jit")
    out, argv = {}, []
    for name, (make, shape, other) in MODELS.items():
        model = make()
        J.manual_seed(10)
        inputs = [J.randn(*shape), J.randn(*other)]
        traced = J.jit.trace(model, inputs[0])
        path = tmp / f"{name}.jt"
        traced.save(str(path))
        J.save(inputs, str(tmp / f"{name}_in.pt"))
        argv += [str(path), str(tmp / f"{name}_in.pt"), str(tmp / f"{name}_out.pt")]
        out[name] = {"model": model, "traced": traced, "path": path, "inputs": inputs}
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", _CHILD, *argv], check=False, cwd=str(tmp), env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name, d in out.items():
        d["child_outputs"] = J.load(str(tmp / f"{name}_out.pt"))
    return out


@pytest.mark.parametrize("name", list(MODELS))
def test_traced_model_matches_eager_at_traced_and_other_batch_size(saved_models, name):
    d = saved_models[name]
    with J.no_grad():
        for x in d["inputs"]:
            _close(d["traced"](x), d["model"](x))


@pytest.mark.parametrize("name", list(MODELS))
def test_saved_trace_runs_in_a_fresh_process_without_the_model_class(saved_models, name):
    d = saved_models[name]
    with J.no_grad():
        for got, x in zip(d["child_outputs"], d["inputs"]):
            _close(got, d["model"](x))
            np.testing.assert_array_equal(_np(got), _np(d["traced"](x)))  # same graph, same kernels


@pytest.mark.parametrize("name", list(MODELS))
def test_trace_agrees_with_torch_jit_trace(saved_models, name):
    torch = pytest.importorskip("torch")
    d = saved_models[name]
    make_torch = {
        "mlp": lambda: torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)),
        "cnn": lambda: _TorchCNN(torch),
        "transformer": lambda: torch.nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=64,
                                                                batch_first=True),
    }[name]
    ref = make_torch().eval()
    ref.load_state_dict({k: torch.from_numpy(_np(v).copy()) for k, v in d["model"].state_dict().items()})
    x0 = torch.from_numpy(_np(d["inputs"][0]).copy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_traced = torch.jit.trace(ref, x0, check_trace=False)
    with J.no_grad(), torch.no_grad():
        for x in d["inputs"]:
            want = ref_traced(torch.from_numpy(_np(x).copy())).numpy()
            np.testing.assert_allclose(_np(d["traced"](x)), want, rtol=1e-4, atol=1e-5)


def _TorchCNN(torch):
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 6, 3, padding=1)
            self.bn = torch.nn.BatchNorm2d(6)
            self.pool = torch.nn.MaxPool2d(2)
            self.fc = torch.nn.Linear(6 * 4 * 4, 5)

        def forward(self, x):
            return self.fc(self.pool(torch.relu(self.bn(self.conv(x)))).flatten(1))
    return Net()


def test_saved_file_is_a_checkpoint_plus_a_json_graph(saved_models):
    path = saved_models["mlp"]["path"]
    with zipfile.ZipFile(path) as zf:
        doc = json.loads(zf.read("graph.json"))
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
    assert doc["format"] == "jitorch.jit" and doc["version"] == J.jit.FORMAT_VERSION
    assert [n["op"] for n in doc["nodes"]] == [n.name for n in saved_models["mlp"]["traced"].graph.nodes]
    assert [w["name"] for w in doc["weights"]] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert doc["inputs"][0]["shape"][0] == {"$batch": [1, 0]}  # dim 0 follows the batch size
    # jitorch.load reads the weights part of the same file
    weights = J.load(str(path))["weights"]
    for k, v in saved_models["mlp"]["model"].state_dict().items():
        np.testing.assert_array_equal(_np(weights[k]), _np(v))


# -- the traced module object ------------------------------------------------------------------------------------
def test_traced_module_state_dict_parameters_and_weight_updates():
    model = _mlp()
    x = J.randn(3, 8)
    traced = J.jit.trace(model, x)
    assert list(traced.state_dict()) == list(model.state_dict())
    assert len(list(traced.parameters())) == len(list(model.parameters()))
    # the traced module shares the original's parameters (as torch's does)
    assert traced.state_dict()["0.weight"].data_ptr() == model.state_dict()["0.weight"].data_ptr()
    # weights are graph inputs, not constants: new weights change the output without a retrace
    J.manual_seed(5)
    other = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).eval()
    traced.load_state_dict(other.state_dict())
    with J.no_grad():
        _close(traced(x), other(x))
    assert "0.weight" in str(traced.graph) and "matmul" in str(traced.graph)
    assert "def fused_" in traced.code
    assert traced.training is False and traced.get_submodule("0").training is False
    traced.train()
    assert traced.training is True and traced.get_submodule("0").training is True


def test_loaded_module_weights_can_be_changed_and_saved_again(tmp_path):
    model = _mlp()
    x = J.randn(4, 8)
    J.jit.save(J.jit.trace(model, x), str(tmp_path / "a.jt"))
    loaded = J.jit.load(str(tmp_path / "a.jt"))
    assert isinstance(loaded, J.jit.TracedModule) and loaded.original_name == "Sequential"
    assert all(isinstance(p, nn.Parameter) for p in loaded.parameters())
    with J.no_grad():
        loaded.get_parameter("0.weight").mul_(2)
        model[0].weight.mul_(2)
        _close(loaded(x), model(x))
    buf = io.BytesIO()
    loaded.save(buf)
    again = J.jit.load(io.BytesIO(buf.getvalue()))
    with J.no_grad():
        _close(again(x), model(x))


def test_gradients_flow_through_a_traced_module():
    model = _mlp()
    x = J.randn(6, 8)
    traced = J.jit.trace(model, x)
    traced(x).pow(2).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]  # traced shares the parameters
    model.zero_grad()
    model(x).pow(2).sum().backward()
    for g, p in zip(grads, model.parameters()):
        _close(g, p.grad, rtol=1e-4, atol=1e-5)


def test_batchnorm_in_training_mode_updates_running_stats_like_eager():
    J.manual_seed(3)
    eager, traced_src = nn.BatchNorm1d(4), nn.BatchNorm1d(4)
    x = J.randn(8, 4)
    eager(x)
    traced = J.jit.trace(traced_src, x)  # tracing runs the forward once, as eager just did
    _close(traced_src.running_mean, eager.running_mean)
    with J.no_grad():
        _close(traced(x), eager(x))  # and each traced call updates the statistics again
    _close(traced_src.running_var, eager.running_var)
    assert int(traced_src.num_batches_tracked) == int(eager.num_batches_tracked) == 2


# -- traced functions -------------------------------------------------------------------------------------------
def _pair(x, y):
    z = x @ y.t()
    return z.softmax(-1), (x * 2 + 1).sum(-1)


def test_traced_function_with_several_inputs_and_outputs(tmp_path):
    x, y = J.randn(4, 6), J.randn(3, 6)
    f = J.jit.trace(_pair, (x, y))
    assert isinstance(f, J.jit.TracedFunction)
    assert "softmax" not in str(f.graph) and "matmul" in str(f.graph)  # recorded as primitives
    x2 = J.randn(7, 6)  # x's dim 0 is the batch; y keeps its traced shape
    for args in ((x, y), (x2, y)):
        for got, want in zip(f(*args), _pair(*args)):
            _close(got, want)
    f.save(str(tmp_path / "f.jt"))
    g = J.jit.load(str(tmp_path / "f.jt"))
    for got, want in zip(g(x2, y), _pair(x2, y)):
        _close(got, want)


def test_shape_arithmetic_follows_the_batch_size():
    def f(x):
        return x.reshape(x.shape[0], -1).sum(1) / x.shape[0] + x.new_zeros(x.shape[0], 1).sum(1)

    traced = J.jit.trace(f, J.randn(2, 3, 4))
    buf = io.BytesIO()
    traced.save(buf)
    loaded = J.jit.load(io.BytesIO(buf.getvalue()))
    for n in (1, 2, 5):
        x = J.randn(n, 3, 4)
        _close(traced(x), f(x))
        _close(loaded(x), f(x))


def test_trace_that_cannot_generalize_refuses_other_shapes_instead_of_a_wrong_answer():
    def per_row(x):
        return J.stack([x[i] * i for i in range(x.shape[0])])  # the loop unrolls to the traced batch

    traced = J.jit.trace(per_row, J.randn(3, 2))
    _close(traced(J.ones(3, 2)), per_row(J.ones(3, 2)))
    with pytest.raises(RuntimeError, match=r"recorded with shape \[3, 2\]"):
        traced(J.ones(4, 2))
    static = J.jit.trace(lambda x: x * 2, J.randn(3, 2), dynamic_batch=False)
    with pytest.raises(RuntimeError, match=r"input 'x' has shape \[5, 2\].*recorded with shape \[3, 2\]"):
        static(J.ones(5, 2))


def test_other_dims_and_dtypes_must_match_the_trace():
    traced = J.jit.trace(_mlp(), J.randn(2, 8))
    with pytest.raises(RuntimeError, match=r"has shape \[2, 9\], but the trace was recorded with shape \[2, 8\]"):
        traced(J.randn(2, 9))
    with pytest.raises(RuntimeError, match="dtype"):
        traced(J.randn(2, 8, dtype=J.float64))


# -- data-dependent Python: TracerWarning ---------------------------------------------------------------------------
def _bool_branch(x):
    if x.sum() > 0:  # WARN_BOOL
        return x * 2
    return x - 1


def _item_value(x):
    return x * x.max().item()  # WARN_ITEM


def _int_value(x):
    return x + int(x.argmax())  # WARN_INT


def _tolist_value(x):
    return x * len([v for v in x.tolist() if v > 0])  # WARN_TOLIST


@pytest.mark.parametrize("fn,marker,phrase", [
    (_bool_branch, "WARN_BOOL", "Python boolean"),
    (_item_value, "WARN_ITEM", "Python number"),
    (_int_value, "WARN_INT", "Python number"),
    (_tolist_value, "WARN_TOLIST", "Python list"),
])
def test_reading_a_traced_value_warns_with_the_user_line_and_bakes_the_value(fn, marker, phrase):
    x = J.tensor([1.0, 3.0, 2.0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        traced = J.jit.trace(fn, x)
    tracer_warnings = [w for w in caught if issubclass(w.category, J.jit.TracerWarning)]
    assert tracer_warnings, [str(w.message) for w in caught]
    w = tracer_warnings[0]
    line = _line_of(marker)
    assert issubclass(J.jit.TracerWarning, Warning)
    assert (Path(w.filename).resolve(), w.lineno) == (Path(__file__).resolve(), line)
    assert phrase in str(w.message) and f"{Path(__file__).name}:{line}" in str(w.message)
    # like torch, tracing keeps going with the value it saw: a new input reuses that value
    other = J.tensor([-5.0, -1.0, -4.0])
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = torch.jit.trace(_torch_twin(fn, torch), torch.tensor(_np(x).copy()))
    np.testing.assert_allclose(_np(traced(other)), ref(torch.tensor(_np(other).copy())).numpy())


def _torch_twin(fn, torch):
    """The same function for torch tensors (their methods have the same names)."""
    return lambda t: fn(t)


def test_is_tracing_is_true_only_inside_the_trace():
    seen = []

    def f(x):
        seen.append(J.jit.is_tracing())
        return x + 1

    J.jit.trace(f, J.ones(2), check_trace=False, dynamic_batch=False)
    assert seen == [True] and not J.jit.is_tracing() and not J.jit.is_scripting()


# -- errors --------------------------------------------------------------------------------------------------------
def test_wrong_number_of_inputs_raises_runtime_error_like_torch():
    traced = J.jit.trace(_mlp(), J.randn(2, 8))
    with pytest.raises(RuntimeError, match=r"forward\(\) expected at most 2 argument\(s\) but received 3"):
        traced(J.randn(2, 8), J.randn(2, 8))
    with pytest.raises(RuntimeError, match=r"forward\(\) is missing value for argument 'input'"):
        traced()
    with pytest.raises(RuntimeError, match="Expected a value of type 'Tensor'"):
        traced(3)
    f = J.jit.trace(_pair, (J.randn(4, 6), J.randn(3, 6)))
    with pytest.raises(RuntimeError, match=r"_pair\(\) expected at most 2 argument"):
        f(J.randn(4, 6), J.randn(3, 6), J.randn(1))


def test_non_tensor_example_inputs_and_list_outputs_are_rejected_like_torch():
    with pytest.raises(RuntimeError, match=r"Type 'Tuple\[Tensor, int\]' cannot be traced"):
        J.jit.trace(lambda x, n: x * n, (J.randn(2), 3))
    with pytest.raises(RuntimeError, match="Encountering a list at the output of the tracer"):
        J.jit.trace(lambda x: [x, x + 1], J.randn(2))
    f = J.jit.trace(lambda x: [x, x + 1], J.randn(2), strict=False)
    assert isinstance(f(J.ones(2)), list)


def test_an_attribute_the_format_cannot_encode_fails_save_with_a_clear_error(tmp_path):
    gen = J.Generator().manual_seed(0)
    f = J.jit.trace(lambda x: x + J.rand(x.shape, generator=gen), J.zeros(2, 3), check_trace=False)
    target = tmp_path / "f.jt"
    with pytest.raises(RuntimeError, match=r"cannot encode .*'generator'.*Generator"):
        f.save(str(target))
    assert not target.exists()


def test_code_the_graph_cannot_express_is_an_error():
    def writes_into_view(x):
        y = x * 1
        y[0] += 1  # an indexed in-place write: no graph node records it
        return y

    with pytest.raises(RuntimeError, match="cannot record"):
        J.jit.trace(writes_into_view, J.ones(3))


def _rewrite_graph(path, out, edit):
    with zipfile.ZipFile(path) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    doc = json.loads(members["graph.json"])
    edit(doc)
    members["graph.json"] = json.dumps(doc).encode()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def test_load_rejects_bad_files_with_runtime_error(tmp_path):
    model = _cnn()
    src = tmp_path / "m.jt"
    J.jit.trace(model, J.randn(2, 3, 8, 8)).save(str(src))

    def unknown_op(doc):
        doc["nodes"][0]["op"] = "no_such_op"

    def foreign_reference(doc):  # a namedtuple "class" outside jitorch must never be imported
        node = next(n for n in doc["nodes"] if n["op"] == "im2col")
        node["attrs"]["geom"]["$namedtuple"][0] = "os:system"

    def dangling_value(doc):
        doc["outputs"] = [10 ** 6]

    cases = [(unknown_op, "no_such_op"), (foreign_reference, "outside jitorch"), (dangling_value, "undefined")]
    for edit, message in cases:
        bad = tmp_path / f"{edit.__name__}.jt"
        _rewrite_graph(src, bad, edit)
        with pytest.raises(RuntimeError, match=message):
            J.jit.load(str(bad))
    J.save({"w": J.ones(2)}, str(tmp_path / "ckpt.pt"))
    with pytest.raises(RuntimeError, match="not a valid jitorch traced module.*jitorch.load"):
        J.jit.load(str(tmp_path / "ckpt.pt"))
    with pytest.raises(TypeError, match="traced module"):
        J.jit.save(model, str(tmp_path / "x.jt"))


def test_script_points_to_trace_and_helpers_are_transparent():
    with pytest.raises(NotImplementedError, match="jitorch.jit.trace"):
        J.jit.script(_mlp())

    @J.jit.ignore
    def helper(x):
        return x

    @J.jit.unused
    def spare(x):
        return x

    assert helper(3) == 3 and spare(4) == 4
    traced = J.jit.trace(_mlp(), J.randn(2, 8))
    assert J.jit.script(traced) is traced


def test_check_trace_runs_check_inputs_and_warns_on_nondeterminism():
    model = _mlp()
    traced = J.jit.trace(model, J.randn(2, 8), check_inputs=[(J.randn(5, 8),), J.randn(1, 8)])
    assert isinstance(traced, J.jit.TracedModule)

    def noisy(x):
        return J.nn.functional.dropout(x, 0.5, training=True)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        traced = J.jit.trace(noisy, J.ones(64, 16))
    messages = [str(w.message) for w in caught if issubclass(w.category, J.jit.TracerWarning)]
    assert any("nondeterministic" in m for m in messages)
    assert any(m.startswith("Output nr 1. of the traced function does not match") for m in messages)
    out = traced(J.ones(10, 16))  # dropout stays random in the graph: fresh draws, kept values scaled by 2
    assert set(np.unique(_np(out)).tolist()) <= {0.0, 2.0} and 0 < float(out.mean()) < 2


def test_index_values_read_from_an_input_warn_that_they_are_baked():
    x, idx = J.randn(5, 3), J.tensor([4, 0])
    with pytest.warns(J.jit.TracerWarning, match="values as indices"):
        traced = J.jit.trace(lambda t, i: t[i] * 2, (x, idx))
    _close(traced(x, idx), x[idx] * 2)
