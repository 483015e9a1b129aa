"""jitorch.utils.tensorboard.SummaryWriter: event files read back with TensorBoard's EventAccumulator."""
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import jitorch as J
from jitorch.utils.tensorboard import SummaryWriter

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

REPO = Path(__file__).resolve().parents[1]
ALL = {"scalars": 0, "histograms": 0, "images": 0, "tensors": 0, "distributions": 0}


def _read(logdir):
    return EventAccumulator(str(logdir), size_guidance=ALL).Reload()


def _png_pixels(data: bytes) -> np.ndarray:
    Image = pytest.importorskip("PIL.Image")
    return np.asarray(Image.open(io.BytesIO(data)))


def test_scalars_with_steps_and_tensor_values(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.standard_normal(5)
    with SummaryWriter(tmp_path) as w:
        for step, v in enumerate(values):
            w.add_scalar("train/loss", float(v), global_step=step * 10)
        w.add_scalar("lr", J.tensor(0.25), global_step=3)
    ea = _read(tmp_path)
    got = ea.Scalars("train/loss")
    assert [e.step for e in got] == [0, 10, 20, 30, 40]
    np.testing.assert_allclose([e.value for e in got], values, rtol=1e-6)
    assert ea.Scalars("lr")[0].value == 0.25 and ea.Scalars("lr")[0].step == 3


def test_add_scalar_rejects_a_multi_element_tensor(tmp_path):
    with SummaryWriter(tmp_path) as w, pytest.raises(AssertionError, match="0D"):
        w.add_scalar("x", J.ones(3))


def test_add_scalars_writes_one_run_per_series(tmp_path):
    with SummaryWriter(tmp_path) as w:
        for step in range(3):
            w.add_scalars("loss", {"train": step * 1.5, "val": step * 2.5}, step)
    for name, scale in (("train", 1.5), ("val", 2.5)):
        ea = _read(tmp_path / f"loss_{name}")
        assert [(e.step, e.value) for e in ea.Scalars("loss")] == [(s, s * scale) for s in range(3)]


def test_histogram_matches_the_values_and_torch_writer(tmp_path):
    J.manual_seed(0)
    values = J.randn(2000)
    with SummaryWriter(tmp_path / "j") as w:
        w.add_histogram("weights", values, global_step=1)
        w.add_histogram("coarse", values, global_step=1, bins=20, max_bins=7)
    h = _read(tmp_path / "j").Histograms("weights")[0].histogram_value
    arr = values.numpy().astype(np.float64)
    assert h.num == arr.size and sum(h.bucket) == arr.size
    np.testing.assert_allclose([h.min, h.max, h.sum, h.sum_squares],
                               [arr.min(), arr.max(), arr.sum(), arr.dot(arr)], rtol=1e-9)
    coarse = _read(tmp_path / "j").Histograms("coarse")[0].histogram_value
    assert len(coarse.bucket) <= 8 and sum(coarse.bucket) == arr.size
    torch = pytest.importorskip("torch")
    from torch.utils.tensorboard import SummaryWriter as TorchWriter
    with TorchWriter(str(tmp_path / "t")) as tw:
        tw.add_histogram("weights", torch.from_numpy(values.numpy().copy()), global_step=1)
    ref = _read(tmp_path / "t").Histograms("weights")[0].histogram_value
    np.testing.assert_allclose(h.bucket_limit, ref.bucket_limit)
    np.testing.assert_array_equal(h.bucket, ref.bucket)


@pytest.mark.parametrize("fmt", ["CHW", "HWC", "HW"])
def test_images_in_each_layout_decode_to_the_expected_pixels(tmp_path, fmt):
    J.manual_seed(1)
    chw = J.rand(3, 5, 7)
    img = {"CHW": chw, "HWC": chw.permute(1, 2, 0), "HW": chw[0]}[fmt]
    with SummaryWriter(tmp_path) as w:
        w.add_image("pic", img, global_step=2, dataformats=fmt)
    ev = _read(tmp_path).Images("pic")[0]
    assert (ev.width, ev.height, ev.step) == (7, 5, 2)
    # floats in [0, 1] scale to 0..255, truncated as torch.utils.tensorboard does
    expected = np.floor(chw.numpy() * np.float32(255)).clip(0, 255).astype(np.uint8).transpose(1, 2, 0)
    if fmt == "HW":
        expected = np.stack([expected[..., 0]] * 3, axis=2)
    np.testing.assert_array_equal(_png_pixels(ev.encoded_image_string), expected)


def test_image_pixels_equal_torch_writer_and_uint8_passes_through(tmp_path):
    rng = np.random.default_rng(2)
    u8 = rng.integers(0, 256, size=(4, 6, 3), dtype=np.uint8)
    floats = J.rand(3, 4, 6)
    with SummaryWriter(tmp_path / "j") as w:
        w.add_image("u8", J.from_numpy(u8), dataformats="HWC")
        w.add_image("f", floats)
        w.add_images("grid", J.rand(3, 1, 4, 4))
    ea = _read(tmp_path / "j")
    np.testing.assert_array_equal(_png_pixels(ea.Images("u8")[0].encoded_image_string), u8)
    grid = ea.Images("grid")[0]
    assert (grid.width, grid.height) == (12, 4)
    torch = pytest.importorskip("torch")
    from torch.utils.tensorboard import SummaryWriter as TorchWriter
    with TorchWriter(str(tmp_path / "t")) as tw:
        tw.add_image("f", torch.from_numpy(floats.numpy().copy()))
    mine = _png_pixels(ea.Images("f")[0].encoded_image_string)
    ref = _png_pixels(_read(tmp_path / "t").Images("f")[0].encoded_image_string)
    np.testing.assert_array_equal(mine, ref)


def test_bad_image_layouts_raise(tmp_path):
    with SummaryWriter(tmp_path) as w:
        with pytest.raises(ValueError, match="dataformats"):
            w.add_image("x", J.rand(3, 4, 4), dataformats="CWX")
        with pytest.raises(ValueError, match="3 dimensions"):
            w.add_image("x", J.rand(4, 4), dataformats="CHW")
        with pytest.raises(ValueError, match="channels"):
            w.add_image("x", J.rand(2, 4, 4))


def test_text(tmp_path):
    with SummaryWriter(tmp_path) as w:
        w.add_text("notes", "**hello** ünïcode", global_step=4)
    ev = _read(tmp_path).Tensors("notes/text_summary")[0]
    assert ev.step == 4 and ev.tensor_proto.string_val[0].decode() == "**hello** ünïcode"


class Net(J.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = J.nn.Linear(4, 8)
        self.act = J.nn.ReLU()
        self.fc2 = J.nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def test_graph_from_the_compiler_ir(tmp_path):
    model = Net()
    with SummaryWriter(tmp_path) as w:
        w.add_graph(model, J.randn(2, 4))
    ea = _read(tmp_path)
    assert ea.Tags()["graph"]
    nodes = {n.name: n for n in ea.Graph().node}
    for name in ("Net/Linear[fc1]/weight", "Net/Linear[fc2]/bias", "output/output.0"):
        assert name in nodes
    ops = [n for n in nodes.values() if n.op not in ("IO Node", "Parameter", "Constant")]
    assert {"matmul", "add", "relu"} <= {n.op for n in ops}
    assert any(n.name.startswith("Net/ReLU[act]/relu") for n in ops)
    for n in nodes.values():  # every edge points at a node of the graph
        assert all(i.split(":")[0] in nodes for i in n.input)
    out_shape = nodes[nodes["output/output.0"].input[0]].attr["_output_shapes"].list.shape[0]
    assert [d.size for d in out_shape.dim] == [2, 3]


def test_flush_makes_events_readable_and_close_is_final(tmp_path):
    w = SummaryWriter(tmp_path, purge_step=0)
    w.add_scalar("a", 1.0, 0)
    w.flush()
    assert [e.value for e in _read(tmp_path).Scalars("a")] == [1.0]
    w.close()
    w.close()
    with pytest.raises(RuntimeError, match="closed"):
        w.add_scalar("a", 2.0, 1)
    assert w.get_logdir() == str(tmp_path)


def test_missing_tensorboard_gives_an_install_hint():
    code = ("import sys; sys.modules['tensorboard'] = None\n"
            "from jitorch.utils.tensorboard import SummaryWriter\n"
            "try:\n    SummaryWriter('unused')\nexcept ImportError as e:\n    print('IMPORT-ERROR', e)\n")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "IMPORT-ERROR" in proc.stdout and "pip install jitorch[tensorboard]" in proc.stdout
