"""jitorch.onnx.export: exported graphs pass the ONNX checker and match jitorch's eager outputs in onnxruntime."""
from __future__ import annotations

import io
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="ONNX export tests need the onnx extra: pip install jitorch[onnx]")
ort = pytest.importorskip("onnxruntime", reason="ONNX export tests run models in onnxruntime: pip install jitorch[onnx]")

import jitorch
import jitorch.nn.functional as F
from jitorch import nn
from jitorch.onnx import DynamicAxesError, TrainingMode, UnsupportedOperatorError

RTOL, ATOL = 1e-4, 1e-5


def _leaves(obj, out):
    if isinstance(obj, jitorch.Tensor):
        out.append(obj)
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            _leaves(o, out)
    return out


def export(model, args, **kw):
    """Export to bytes; returns (ModelProto, onnxruntime session)."""
    buf = io.BytesIO()
    proto = jitorch.onnx.export(model, args, buf, **kw)
    data = buf.getvalue()
    assert data == proto.SerializeToString()
    loaded = onnx.load_from_string(data)
    onnx.checker.check_model(loaded, full_check=True)
    return loaded, ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def check_run(session, model, args):
    """Run ``args`` through onnxruntime and through the eager model; outputs must agree."""
    args = args if isinstance(args, tuple) else (args,)
    feeds = {i.name: a.numpy() for i, a in zip(session.get_inputs(), _leaves(args, []))}
    got = session.run(None, feeds)
    with jitorch.no_grad():
        want = _leaves(model(*args), [])
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == tuple(w.shape)
        np.testing.assert_allclose(g, w.numpy(), rtol=RTOL, atol=ATOL)


def check_export(model, args, *more_args, **kw):
    """Export at ``args``, then compare with eager at ``args`` and at each of ``more_args``."""
    if hasattr(model, "eval"):
        model.eval()
    proto, session = export(model, args, **kw)
    for a in (args,) + more_args:
        check_run(session, model, a)
    return proto, session


def op_types(proto) -> set:
    return {n.op_type for n in proto.graph.node}


# -- models ------------------------------------------------------------------------------------------------
def test_mlp_matches_eager_and_names_initializers_by_state_dict():
    jitorch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    proto, _ = check_export(mlp, (jitorch.randn(2, 4),))
    assert [i.name for i in proto.graph.initializer] == list(mlp.state_dict())
    assert [i.name for i in proto.graph.input] == ["input"]


def test_cnn_exports_conv_batchnorm_pool_flatten_linear():
    jitorch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(4 * 4 * 4, 5))
    with jitorch.no_grad():
        cnn[1].running_mean.normal_()
        cnn[1].running_var.uniform_(0.5, 2.0)
    proto, _ = check_export(cnn, (jitorch.randn(2, 3, 8, 8),), (jitorch.randn(5, 3, 8, 8),),
                            dynamic_axes={"input": {0: "batch"}})
    assert {"Conv", "MaxPool"} <= op_types(proto)
    names = {i.name for i in proto.graph.initializer}
    assert "1.running_mean" in names and "1.num_batches_tracked" not in names  # unused buffers are left out


@pytest.mark.parametrize("conv, shape", [
    (lambda: nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2, dilation=1), (2, 4, 9, 9)),
    (lambda: nn.Conv2d(4, 6, 3, padding=2, dilation=2, bias=False), (2, 4, 7, 7)),
    (lambda: nn.Conv2d(4, 6, 3, padding="same"), (2, 4, 6, 6)),
    (lambda: nn.Conv2d(4, 6, 1), (2, 4, 5, 5)),
    (lambda: nn.Conv1d(4, 6, 3, padding=2, dilation=2, groups=2), (2, 4, 10)),
    (lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1), (2, 4, 5, 5)),
    (lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2), (2, 4, 5, 5)),
], ids=["groups-stride", "dilation", "same", "1x1", "conv1d", "transpose", "transpose-groups"])
def test_convolutions(conv, shape):
    jitorch.manual_seed(1)
    bigger = (shape[0] + 3,) + shape[1:]
    proto, _ = check_export(conv(), (jitorch.randn(*shape),), (jitorch.randn(*bigger),),
                            dynamic_axes={"input": {0: "N"}})
    assert op_types(proto) & {"Conv", "ConvTranspose"}


@pytest.mark.parametrize("layer, shape", [
    (lambda: nn.AvgPool2d(3, 2, 1), (2, 3, 9, 9)),
    (lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), (2, 3, 8, 8)),
    (lambda: nn.MaxPool2d(3, 2, 1, ceil_mode=True), (2, 3, 8, 8)),
    (lambda: nn.MaxPool1d(2), (2, 3, 8)),
    (lambda: nn.AdaptiveAvgPool2d((3, 2)), (2, 3, 7, 9)),
    (lambda: nn.AdaptiveAvgPool2d(1), (2, 3, 7, 9)),
    (lambda: nn.AdaptiveMaxPool2d(1), (2, 3, 7, 9)),
    (lambda: nn.Upsample(scale_factor=2), (2, 3, 4, 4)),
    (lambda: nn.Upsample(scale_factor=2, mode="bilinear"), (2, 3, 4, 5)),
    (lambda: nn.ZeroPad2d((1, 2, 0, 1)), (2, 3, 4, 4)),
    (lambda: nn.ReflectionPad2d(1), (2, 3, 4, 4)),
    (lambda: nn.Unfold(2, stride=2), (2, 3, 4, 4)),
], ids=["avg", "avg-ceil", "max-ceil", "max1d", "adaptive", "global-avg", "global-max", "nearest", "bilinear",
        "zero-pad", "reflect-pad", "unfold"])
def test_pooling_padding_resampling(layer, shape):
    jitorch.manual_seed(2)
    check_export(layer(), (jitorch.randn(*shape),))


def test_max_pool_indices():
    class PoolWithIndices(nn.Module):
        def forward(self, x):
            return F.max_pool2d(x, 2, return_indices=True)

    jitorch.manual_seed(2)
    check_export(PoolWithIndices(), (jitorch.randn(2, 3, 6, 6),))


ACTIVATIONS = [nn.ReLU(), nn.GELU(), nn.GELU("tanh"), nn.SiLU(), nn.Tanh(), nn.Sigmoid(), nn.LeakyReLU(0.1), nn.ELU(),
               nn.Softplus(), nn.Softplus(2.0, 5.0), nn.Mish(), nn.Hardswish(), nn.Hardsigmoid(), nn.ReLU6(),
               nn.Hardtanh(), nn.SELU(), nn.CELU(0.5), nn.Softsign(), nn.PReLU(), nn.LogSigmoid(), nn.Tanhshrink(),
               nn.Softshrink(), nn.Hardshrink(), nn.GLU(), nn.Softmax(-1), nn.LogSoftmax(1)]


@pytest.mark.parametrize("act", ACTIVATIONS, ids=[type(a).__name__ + str(k) for k, a in enumerate(ACTIVATIONS)])
def test_activations(act):
    jitorch.manual_seed(3)
    check_export(act, (jitorch.randn(3, 6) * 4,))


@pytest.mark.parametrize("opset", [13, 17, 20])
def test_gelu_and_layernorm_across_opsets(opset):
    jitorch.manual_seed(3)
    model = nn.Sequential(nn.Linear(6, 6), nn.GELU(), nn.LayerNorm(6), nn.GELU("tanh"))
    proto, _ = check_export(model, (jitorch.randn(2, 3, 6),), opset_version=opset)
    assert proto.opset_import[0].version == opset


def test_layernorm_with_dynamic_batch_and_sequence():
    jitorch.manual_seed(4)
    check_export(nn.LayerNorm(6), (jitorch.randn(2, 3, 6),), (jitorch.randn(4, 7, 6),),
                 dynamic_axes={"input": {0: "batch", 1: "seq"}})


def test_embedding():
    jitorch.manual_seed(5)
    check_export(nn.Embedding(10, 4), (jitorch.tensor([[1, 2], [3, 9]]),),
                 (jitorch.tensor([[1, 2, 3], [3, 9, 0], [0, 0, 1]]),), dynamic_axes={"input": {0: "b", 1: "s"}})


@pytest.mark.parametrize("batch_first", [False, True])
def test_transformer_encoder_layer(batch_first):
    jitorch.manual_seed(6)
    layer = nn.TransformerEncoderLayer(8, 2, 16, batch_first=batch_first)
    example = jitorch.randn(2, 3, 8)
    check_export(layer, (example,), (jitorch.randn(5, 4, 8),), dynamic_axes={"src": {0: "a", 1: "b"}})


def test_transformer_encoder_with_padding_mask():
    jitorch.manual_seed(6)

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            layer = nn.TransformerEncoderLayer(8, 2, 16, batch_first=True)
            self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)

        def forward(self, x, mask):
            return self.enc(x, src_key_padding_mask=mask)

    mask = jitorch.tensor([[False] * 5, [False] * 3 + [True] * 2])
    mask2 = jitorch.tensor([[False] * 7, [False] * 4 + [True] * 3, [False] * 6 + [True]])
    check_export(Encoder(), (jitorch.randn(2, 5, 8), mask), (jitorch.randn(3, 7, 8), mask2),
                 dynamic_axes={"x": {0: "N", 1: "L"}, "mask": {0: "N", 1: "L"}})


def test_multihead_attention_returns_output_and_weights():
    jitorch.manual_seed(7)

    class CrossAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(8, 2)

        def forward(self, q, k, v):
            return self.attn(q, k, v)

    q, k, v = jitorch.randn(3, 2, 8), jitorch.randn(4, 2, 8), jitorch.randn(4, 2, 8)
    bigger = (jitorch.randn(5, 3, 8), jitorch.randn(2, 3, 8), jitorch.randn(2, 3, 8))
    _, session = check_export(CrossAttention(), (q, k, v), bigger,
                              dynamic_axes={"q": {0: "L", 1: "N"}, "k": {0: "S", 1: "N"}, "v": {0: "S", 1: "N"}})
    assert len(session.get_outputs()) == 2


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("layers, bidirectional", [(1, False), (2, False), (1, True), (2, True)])
def test_recurrent_layers(kind, layers, bidirectional):
    jitorch.manual_seed(8)
    rnn = getattr(nn, kind)(4, 5, num_layers=layers, bidirectional=bidirectional)
    proto, _ = check_export(rnn, (jitorch.randn(3, 2, 4),), (jitorch.randn(6, 5, 4),),
                            dynamic_axes={"input": {0: "T", 1: "N"}})
    assert kind in op_types(proto)


def test_recurrent_layers_batch_first_with_initial_state():
    jitorch.manual_seed(8)
    lstm = nn.LSTM(4, 5, batch_first=True)
    x, h0, c0 = jitorch.randn(2, 3, 4), jitorch.randn(1, 2, 5), jitorch.randn(1, 2, 5)
    check_export(lstm, (x, (h0, c0)))
    check_export(nn.RNN(4, 5, nonlinearity="relu"), (jitorch.randn(3, 2, 4),))


def test_recurrence_primitives_on_any_projection():
    """A recurrence whose input projection is not the nn layers' matmul still exports exactly."""
    from jitorch.ops import rnn_ops

    class Recurrences(nn.Module):
        def __init__(self):
            super().__init__()
            self.w_lstm = nn.Parameter(jitorch.randn(20, 5) * 0.3)
            self.w_gru = nn.Parameter(jitorch.randn(15, 5) * 0.3)
            self.b_gru = nn.Parameter(jitorch.randn(15) * 0.3)
            self.w_rnn = nn.Parameter(jitorch.randn(5, 5) * 0.3)

        def forward(self, gx4, gx3, gx1, h0):
            hs, cn = rnn_ops.lstm_sequence(gx4.tanh(), self.w_lstm, h0, h0 * 0.5, reverse=True)
            return (hs, cn, rnn_ops.gru_sequence(gx3 * 2, self.w_gru, self.b_gru, h0),
                    rnn_ops.rnn_sequence(gx1 - 1, self.w_rnn, h0, nonlinearity="relu"))

    jitorch.manual_seed(8)
    args = (jitorch.randn(3, 2, 20), jitorch.randn(3, 2, 15), jitorch.randn(3, 2, 5), jitorch.randn(2, 5))
    check_export(Recurrences(), args)


def test_dropout_is_absent_in_eval_mode():
    jitorch.manual_seed(9)
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    proto, _ = check_export(model, (jitorch.randn(3, 4),))
    assert "Dropout" not in op_types(proto) and not any("Random" in t for t in op_types(proto))


class ManyOps(nn.Module):
    def forward(self, x, y):
        joined = jitorch.cat([x, y], 1)
        left, right = joined.split([2, 6], 1)
        stacked = jitorch.stack([x, y], 0).sum(0)
        picked = jitorch.where(x > 0, x, y).amax(1) + x.amin(1) + x.prod(1) + x.mean(1)
        as_int = (x * 10).to(jitorch.int64)
        logic = ((x >= 0) & (y < 0)) | (x == y)
        return (left, right, stacked, picked, (x.int() * 3).float() / 2, logic, x.argmax(1),
                x.abs().sqrt().log1p().expm1(), jitorch.clamp(x, -0.5, 0.5), x // 0.3, x % 0.7, as_int // 3,
                as_int % 3, x[:, -1], x[:, 1:-1].flip(1), x.unsqueeze(1).expand(-1, 3, -1), x.t() @ y,
                x.cumsum(1), logic.any(1), logic.all(1), x.norm(dim=1), x.unbind(1)[2])


def test_elementwise_reductions_and_shape_ops_with_dynamic_batch():
    jitorch.manual_seed(10)
    check_export(ManyOps(), (jitorch.randn(3, 4), jitorch.randn(3, 4)), (jitorch.randn(6, 4), jitorch.randn(6, 4)),
                 dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})


# -- dynamic axes ---------------------------------------------------------------------------------------------
def test_dynamic_batch_axis_export_at_2_run_at_5():
    jitorch.manual_seed(11)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).eval()
    proto, session = export(model, (jitorch.randn(2, 4),), input_names=["features"], output_names=["scores"],
                            dynamic_axes={"features": {0: "batch"}, "scores": {0: "batch"}})
    x5 = jitorch.randn(5, 4)
    check_run(session, model, (x5,))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and dims[1].dim_value == 4
    assert proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_static_export_keeps_example_shapes():
    model = nn.Linear(4, 2).eval()
    proto, session = export(model, (jitorch.randn(2, 4),))
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [2, 4]
    from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument
    with pytest.raises(InvalidArgument):  # onnxruntime rejects another batch size when it was not made dynamic
        session.run(None, {"input": np.zeros((5, 4), np.float32)})


def test_dynamic_axes_as_list_get_generated_names():
    model = nn.Linear(4, 2).eval()
    proto, _ = export(model, (jitorch.randn(2, 4),), dynamic_axes={"input": [0]})
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "input_dynamic_axes_1"


def test_sizes_computed_from_dynamic_axes():
    class UsesSizes(nn.Module):
        def forward(self, x):
            state = jitorch.zeros(x.shape[0], 3)  # a zero tensor whose shape follows the batch
            flat = x.view(x.size(0), -1)
            return flat[:, :3] + state + x.mean(1).sum(1, keepdim=True), x[:, -1], x[:, 1:-1].sum(1)

    check_export(UsesSizes(), (jitorch.randn(2, 5, 3),), (jitorch.randn(4, 9, 3),),
                 dynamic_axes={"x": {0: "N", 1: "L"}})


def test_dynamic_axes_refuse_what_cannot_generalize():
    class Positions(nn.Module):
        def forward(self, x):
            return x + jitorch.arange(x.shape[1])

    class Branches(nn.Module):
        def forward(self, x):
            return x * 2 if x.shape[0] < 3 else x - 1

    with pytest.raises(DynamicAxesError, match="arange"):
        jitorch.onnx.export(Positions(), (jitorch.randn(2, 5),), io.BytesIO(), dynamic_axes={"x": {1: "L"}})
    check_export(Positions(), (jitorch.randn(2, 5),))  # fine with fixed shapes
    with pytest.raises(DynamicAxesError):
        jitorch.onnx.export(Branches(), (jitorch.randn(2, 5),), io.BytesIO(), dynamic_axes={"x": {0: "N"}})


# -- interface ------------------------------------------------------------------------------------------------
def test_input_and_output_names():
    class TwoInTwoOut(nn.Module):
        def forward(self, a, b):
            return a + b, a * b

    _, session = export(TwoInTwoOut(), (jitorch.randn(3), jitorch.randn(3)), input_names=["left", "right"],
                        output_names=["total", "product"])
    assert [i.name for i in session.get_inputs()] == ["left", "right"]
    assert [o.name for o in session.get_outputs()] == ["total", "product"]
    proto, _ = export(TwoInTwoOut(), (jitorch.randn(3), jitorch.randn(3)))
    assert [i.name for i in proto.graph.input] == ["a", "b"]
    assert [o.name for o in proto.graph.output] == ["output_0", "output_1"]


def test_output_that_is_an_input_or_repeated():
    class Passthrough(nn.Module):
        def forward(self, x):
            y = x * 2
            return x, y, y

    check_export(Passthrough(), (jitorch.randn(3),))


def test_unsupported_op_names_the_op_and_the_source_line():
    class Cumprod(nn.Module):
        def forward(self, x):
            return x.cumprod(1)

    with pytest.raises(UnsupportedOperatorError) as info:
        jitorch.onnx.export(Cumprod(), (jitorch.randn(2, 3),), io.BytesIO())
    assert isinstance(info.value, RuntimeError)
    assert "cumprod" in str(info.value) and "test_onnx.py" in str(info.value)
    assert jitorch.onnx.errors.UnsupportedOperatorError is UnsupportedOperatorError


def test_training_mode_dropout_is_refused_and_mode_is_restored():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5)).train()
    with pytest.raises(UnsupportedOperatorError, match="random"):
        jitorch.onnx.export(model, (jitorch.randn(3, 4),), io.BytesIO(), training=TrainingMode.TRAINING)
    assert model.training
    jitorch.onnx.export(model, (jitorch.randn(3, 4),), io.BytesIO())  # EVAL (the default) drops dropout
    assert model.training


def test_is_in_onnx_export():
    class Flagged(nn.Module):
        def forward(self, x):
            return x + (1.0 if jitorch.onnx.is_in_onnx_export() else 0.0)

    _, session = export(Flagged(), (jitorch.zeros(2),))
    np.testing.assert_array_equal(session.run(None, {"x": np.zeros(2, np.float32)})[0], np.ones(2, np.float32))
    assert not jitorch.onnx.is_in_onnx_export()


def test_export_to_path_and_bytesio(tmp_path):
    model = nn.Linear(3, 2).eval()
    x = jitorch.randn(1, 3)
    path = tmp_path / "linear.onnx"
    jitorch.onnx.export(model, x, str(path))
    buf = io.BytesIO()
    jitorch.onnx.export(model, x, buf)
    assert onnx.load(str(path)).SerializeToString() == buf.getvalue()
    check_run(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]), model, (x,))


@pytest.mark.parametrize("options, inputs, initializers", [
    ({"export_params": False}, ["input", "weight", "bias"], []),
    ({"keep_initializers_as_inputs": True}, ["input", "weight", "bias"], ["weight", "bias"]),
])
def test_parameters_as_inputs(options, inputs, initializers):
    proto, _ = export(nn.Linear(4, 2), (jitorch.randn(1, 4),), **options)
    assert [i.name for i in proto.graph.input] == inputs
    assert [i.name for i in proto.graph.initializer] == initializers


def test_import_works_without_onnx_and_export_explains(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # what `import onnx` sees when it is not installed
    with pytest.raises(ImportError, match=r"pip install jitorch\[onnx\]"):
        jitorch.onnx.export(nn.Linear(2, 2), (jitorch.randn(1, 2),), io.BytesIO())
