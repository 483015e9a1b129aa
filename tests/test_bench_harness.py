"""The benchmark harness on toy workloads: stats, ratios, failure reporting, output."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # make ``bench`` importable

from bench import harness  # noqa: E402
from bench.harness import Registry, RunConfig, Unavailable, build_variants  # noqa: E402

FAST = RunConfig(samples=3, target_sample_s=0.001, min_sample_s=0.0005, warmup_s=0.0)


def _busy(n: int):
    return lambda: sum(range(n))


def _missing_lib():
    raise ImportError("No module named 'nolib'")


def _missing_feature():
    raise Unavailable("no copy_()")


def _broken_setup():
    raise ValueError("bad shape")


def _fails_when_called():
    def fn():
        raise RuntimeError("kernel exploded")

    return fn


def _self_timed_then_fails():
    calls = iter([0.25, 0.5, 0.75])  # warm-up call, then two good samples

    def fn():
        value = next(calls, None)
        if value is None:
            raise RuntimeError("child died")
        return value

    return fn


@pytest.fixture(scope="module")
def run_doc(tmp_path_factory):
    reg = Registry()

    @reg.workload("toy.sum", "toy", bytes_moved=8e6, flops=2e6)
    def _toy():
        return build_variants({
            "jitorch": lambda: _busy(300),
            "torch": lambda: _busy(30),
            "numpy": lambda: _busy(60),
            "cupy": _missing_lib,
            "jitorch.compile": _missing_feature,
            "broken": _broken_setup,
            "explodes": _fails_when_called,
        })

    reg.register("toy.nolib", "toy", _missing_lib)
    reg.register("toy.cold", "toy", lambda: {"jitorch": _self_timed_then_fails()},
                 self_timed=True, max_samples=5)

    @reg.summary
    def _summ(results):
        return [f"summary saw {sorted(results)}"]

    out = io.StringIO()
    json_path = tmp_path_factory.mktemp("bench") / "res.json"
    doc = harness.run(reg.select(), FAST, reg.summaries, json_path, out=out)
    return doc, json.loads(json_path.read_text()), out.getvalue()


def _by_name(doc, name):
    return next(w for w in doc["workloads"] if w["name"] == name)


def test_json_file_matches_returned_doc(run_doc):
    doc, on_disk, _ = run_doc
    assert on_disk == json.loads(json.dumps(doc))
    assert on_disk["config"]["samples"] == 3
    assert on_disk["summary"] == ["summary saw ['toy.cold', 'toy.nolib', 'toy.sum']"]


def test_stats_and_ratios_follow_medians(run_doc):
    _, doc, _ = run_doc
    wl = _by_name(doc, "toy.sum")
    v = wl["variants"]
    for name in ("jitorch", "torch", "numpy"):
        r = v[name]
        assert r["status"] == "ok" and len(r["samples_s"]) == 3
        assert r["min_s"] <= r["q1_s"] <= r["median_s"] <= r["q3_s"]
        assert r["gbps"] == pytest.approx(8e6 / r["median_s"] / 1e9)
        assert r["gflops"] == pytest.approx(2e6 / r["median_s"] / 1e9)
        assert r["ratio_vs_baseline"] == pytest.approx(r["median_s"] / v["torch"]["median_s"])
    assert wl["ratios"] == pytest.approx({
        "jitorch/torch": v["jitorch"]["median_s"] / v["torch"]["median_s"],
        "jitorch/numpy": v["jitorch"]["median_s"] / v["numpy"]["median_s"],
    })


def test_unavailable_and_failing_variants_are_reported(run_doc):
    _, doc, table = run_doc
    v = _by_name(doc, "toy.sum")["variants"]
    assert v["cupy"]["status"] == "unavailable" and "nolib" in v["cupy"]["error"]
    assert v["jitorch.compile"]["status"] == "unavailable"
    assert v["broken"] == {**v["broken"], "status": "error", "error": "ValueError: bad shape"}
    assert v["explodes"]["status"] == "error" and "kernel exploded" in v["explodes"]["error"]
    assert v["explodes"]["median_s"] is None
    assert "UNAVAILABLE ImportError: No module named 'nolib'" in table
    assert "ERROR RuntimeError: kernel exploded" in table

    nolib = _by_name(doc, "toy.nolib")
    assert nolib["error"].startswith("unavailable: ImportError") and nolib["variants"] == {}


def test_self_timed_variant_error_mid_run_keeps_going(run_doc):
    _, doc, table = run_doc
    cold = _by_name(doc, "toy.cold")["variants"]["jitorch"]
    assert cold["samples_s"] == [0.5, 0.75]  # warm-up value discarded
    assert cold["status"] == "error" and "child died" in cold["error"]
    assert "summary saw" in table  # the run reached the end


def test_table_rows(run_doc):
    _, doc, table = run_doc
    lines = [line for line in table.splitlines() if not line.startswith("note:")]
    assert lines[0].split()[:3] == ["workload", "variant", "median"]
    torch_row = next(line for line in lines if line.split()[:2] == ["torch", "*"])
    assert "1.00x" in torch_row
    ratio = _by_name(doc, "toy.sum")["ratios"]["jitorch/torch"]
    assert f"jitorch/torch {ratio:.2f}x" in table


@pytest.mark.parametrize("seconds, text", [
    (2.5, "2.5 s"), (0.0123, "12.3 ms"), (4.56e-6, "4.56 µs"), (7e-8, "70 ns"), (None, "-"),
])
def test_fmt_time(seconds, text):
    assert harness.fmt_time(seconds) == text


def test_calibrate_aims_for_target_sample_length(monkeypatch):
    # a fake clock: every call "takes" 10 µs, so the choice is deterministic
    monkeypatch.setattr(harness, "time_loop", lambda fn, n: n * 1e-5)
    cfg = RunConfig(target_sample_s=0.004, min_sample_s=0.002)
    n = harness.calibrate(lambda: None, cfg)
    assert n * 1e-5 >= cfg.min_sample_s
    assert n * 1e-5 <= 2 * cfg.target_sample_s


def test_busy_machine_note():
    assert harness.busy_machine_note(0.2, 4) is None
    assert harness.busy_machine_note(None, 4) is None
    assert "load average is 3.0 on 2 CPUs" in harness.busy_machine_note(3.0, 2)
