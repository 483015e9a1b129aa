"""Workload registry and timing runner for the jitorch benchmarks.

A workload's setup function returns ``{variant name: zero-arg callable}``.
The runner warms each variant, picks an inner-loop count so one sample lasts
roughly ``target_sample_s``, then times the variants round-robin so that
machine noise (frequency changes, other processes) is shared between them.
"""

from __future__ import annotations

import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, TextIO

Timed = Callable[[], Any]
SetupFn = Callable[[], Mapping[str, Any]]
SummaryFn = Callable[[Mapping[str, "WorkloadResult"]], list[str]]

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"


# --------------------------------------------------------------------------
# Declaring workloads
# --------------------------------------------------------------------------


class Unavailable(Exception):
    """Raised by a variant factory when its library or feature is missing."""


@dataclass(frozen=True)
class Skip:
    """Placeholder a setup dict may hold instead of a callable."""

    status: str  # "unavailable" or "error"
    reason: str


@dataclass
class Workload:
    name: str
    group: str
    setup: SetupFn
    bytes_moved: float | None = None
    flops: float | None = None
    baseline: str = "torch"
    description: str = ""
    # Self-timed variants return the seconds they measured themselves (used
    # for subprocess cold-start timings, where wall time would include the
    # interpreter start-up).
    self_timed: bool = False
    max_samples: int | None = None


class Registry:
    def __init__(self) -> None:
        self.workloads: dict[str, Workload] = {}
        self.summaries: list[SummaryFn] = []

    def add(self, wl: Workload) -> Workload:
        if wl.name in self.workloads:
            raise ValueError(f"workload {wl.name!r} registered twice")
        self.workloads[wl.name] = wl
        return wl

    def register(self, name: str, group: str, setup: SetupFn, **opts: Any) -> Workload:
        return self.add(Workload(name=name, group=group, setup=setup, **opts))

    def workload(self, name: str, group: str, **opts: Any) -> Callable[[SetupFn], SetupFn]:
        """Decorator form of :meth:`register`."""

        def deco(setup: SetupFn) -> SetupFn:
            self.register(name, group, setup, **opts)
            return setup

        return deco

    def summary(self, fn: SummaryFn) -> SummaryFn:
        """Register a function that derives extra report lines from results."""
        self.summaries.append(fn)
        return fn

    def select(self, filter_: str | None = None, group: str | None = None) -> list[Workload]:
        out = []
        for wl in self.workloads.values():
            if group is not None and wl.group != group:
                continue
            if filter_ is not None and filter_ not in f"{wl.group}/{wl.name}":
                continue
            out.append(wl)
        return out


REGISTRY = Registry()
register = REGISTRY.register
workload = REGISTRY.workload
summary = REGISTRY.summary


def describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


def build_variants(factories: Mapping[str, Callable[[], Timed]]) -> dict[str, Timed | Skip]:
    """Call each factory; a missing library becomes a Skip, not a crash.

    Factories do their own imports and data preparation, so e.g. a broken
    jitorch only takes out the jitorch row of a workload.
    """
    out: dict[str, Timed | Skip] = {}
    for name, factory in factories.items():
        try:
            out[name] = factory()
        except (ImportError, Unavailable) as exc:
            out[name] = Skip("unavailable", describe_error(exc))
        except Exception as exc:  # noqa: BLE001 - any setup failure is reported
            out[name] = Skip("error", describe_error(exc))
    return out


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


@dataclass
class VariantResult:
    status: str = "ok"  # ok | unavailable | error
    error: str | None = None
    inner_loops: int = 0
    samples_s: list[float] = field(default_factory=list)
    median_s: float | None = None
    q1_s: float | None = None
    q3_s: float | None = None
    iqr_s: float | None = None
    min_s: float | None = None
    mean_s: float | None = None
    ratio_vs_baseline: float | None = None
    gbps: float | None = None
    gflops: float | None = None


@dataclass
class WorkloadResult:
    name: str
    group: str
    baseline: str
    bytes_moved: float | None
    flops: float | None
    description: str = ""
    error: str | None = None
    variants: dict[str, VariantResult] = field(default_factory=dict)
    ratios: dict[str, float] = field(default_factory=dict)

    def median(self, variant: str) -> float | None:
        v = self.variants.get(variant)
        return v.median_s if v is not None and v.status == "ok" else None


@dataclass
class RunConfig:
    samples: int = 15
    target_sample_s: float = 0.02  # aim for ~20 ms per sample (10-50 ms band)
    min_sample_s: float = 0.01
    warmup_s: float = 0.05
    max_inner_loops: int = 1_000_000
    variants: tuple[str, ...] | None = None  # keep only these variants


# --------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------


def time_loop(fn: Timed, n: int) -> float:
    """Seconds for ``n`` back-to-back calls, with the cyclic GC paused."""
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return time.perf_counter() - t0
    finally:
        if gc_was_on:
            gc.enable()


def warm_up(fn: Timed, budget_s: float) -> None:
    """First call pays JIT compilation; then keep going until caches settle."""
    fn()
    deadline = time.perf_counter() + budget_s
    while time.perf_counter() < deadline:
        fn()


def calibrate(fn: Timed, cfg: RunConfig) -> int:
    """Smallest-ish inner-loop count whose sample lasts about target_sample_s."""
    n = 1
    while True:
        elapsed = time_loop(fn, n)
        if elapsed >= cfg.min_sample_s or n >= cfg.max_inner_loops:
            return n
        per_call = max(elapsed / n, 1e-9)
        n = min(cfg.max_inner_loops, max(2 * n, math.ceil(cfg.target_sample_s / per_call)))


def take_sample(fn: Timed, n: int, self_timed: bool) -> float:
    """Seconds per call for one sample."""
    if self_timed:
        return float(fn())
    return time_loop(fn, n) / n


def summarize(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    if len(ordered) >= 2:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1 = q3 = ordered[0]
    return {
        "median_s": statistics.median(ordered),
        "q1_s": q1,
        "q3_s": q3,
        "iqr_s": q3 - q1,
        "min_s": ordered[0],
        "mean_s": statistics.fmean(ordered),
    }


# --------------------------------------------------------------------------
# Running one workload
# --------------------------------------------------------------------------


def _call_setup(wl: Workload, res: WorkloadResult) -> dict[str, Any]:
    try:
        made = dict(wl.setup())
    except (ImportError, Unavailable) as exc:
        res.error = "unavailable: " + describe_error(exc)
        return {}
    except Exception as exc:  # noqa: BLE001
        res.error = describe_error(exc)
        return {}
    return made


def _prepare(wl: Workload, made: Mapping[str, Any], res: WorkloadResult,
             cfg: RunConfig) -> dict[str, tuple[Timed, int]]:
    """Warm up and calibrate every usable variant; record the unusable ones."""
    live: dict[str, tuple[Timed, int]] = {}
    for name, fn in made.items():
        if cfg.variants is not None and name not in cfg.variants:
            continue
        vr = res.variants.setdefault(name, VariantResult())
        if isinstance(fn, Skip):
            vr.status, vr.error = fn.status, fn.reason
            continue
        if not callable(fn):
            vr.status, vr.error = "error", f"setup gave a non-callable {type(fn).__name__}"
            continue
        try:
            if wl.self_timed:
                fn()  # one throw-away run (fills on-disk caches)
                n = 1
            else:
                warm_up(fn, cfg.warmup_s)
                n = calibrate(fn, cfg)
        except Exception as exc:  # noqa: BLE001
            vr.status, vr.error = "error", describe_error(exc)
            continue
        vr.inner_loops = n
        live[name] = (fn, n)
    return live


def _sample_round_robin(wl: Workload, live: dict[str, tuple[Timed, int]],
                        res: WorkloadResult, samples: int) -> None:
    names = list(live)
    for round_ in range(samples):
        # Rotate the start so no variant always runs right after the same one.
        k = round_ % len(names) if names else 0
        for name in names[k:] + names[:k]:
            vr = res.variants[name]
            if vr.status != "ok":
                continue
            fn, n = live[name]
            try:
                vr.samples_s.append(take_sample(fn, n, wl.self_timed))
            except Exception as exc:  # noqa: BLE001
                vr.status, vr.error = "error", describe_error(exc)


def _fill_stats(res: WorkloadResult) -> None:
    for vr in res.variants.values():
        if vr.status != "ok" or not vr.samples_s:
            continue
        for key, value in summarize(vr.samples_s).items():
            setattr(vr, key, value)
        if res.bytes_moved:
            vr.gbps = res.bytes_moved / vr.median_s / 1e9
        if res.flops:
            vr.gflops = res.flops / vr.median_s / 1e9
    base = res.median(res.baseline)
    for vr in res.variants.values():
        if base and vr.median_s is not None:
            vr.ratio_vs_baseline = vr.median_s / base
    res.ratios = jitorch_ratios(res)


def is_jitorch(variant: str) -> bool:
    return variant == "jitorch" or variant.startswith("jitorch.")


def jitorch_ratios(res: WorkloadResult) -> dict[str, float]:
    """Time ratios ``jitorch-variant / peer`` (below 1 means jitorch is faster)."""
    out: dict[str, float] = {}
    for mine in res.variants:
        t_mine = res.median(mine)
        if not is_jitorch(mine) or t_mine is None:
            continue
        for peer in res.variants:
            t_peer = res.median(peer)
            if is_jitorch(peer) or not t_peer:
                continue
            out[f"{mine}/{peer}"] = t_mine / t_peer
    return out


def run_workload(wl: Workload, cfg: RunConfig) -> WorkloadResult:
    res = WorkloadResult(name=wl.name, group=wl.group, baseline=wl.baseline,
                         bytes_moved=wl.bytes_moved, flops=wl.flops,
                         description=wl.description)
    made = _call_setup(wl, res)
    live = _prepare(wl, made, res, cfg)
    samples = cfg.samples if wl.max_samples is None else min(cfg.samples, wl.max_samples)
    _sample_round_robin(wl, live, res, max(1, samples))
    _fill_stats(res)
    return res


# --------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def fmt_num(value: float | None, spec: str = ".3g") -> str:
    return "-" if value is None else format(value, spec)


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


COLUMNS = (("workload", 22), ("variant", 16), ("median", 10), ("IQR", 10),
           ("min", 10), ("x base", 8), ("GB/s", 7), ("GFLOP/s", 8))
ERROR_WIDTH = 100


def _line(cells: Iterable[str]) -> str:
    parts = []
    for (title, width), cell in zip(COLUMNS, cells):
        parts.append(cell.ljust(width) if title in ("workload", "variant") else cell.rjust(width))
    return "  ".join(parts).rstrip()


def table_header() -> str:
    head = _line(title for title, _ in COLUMNS)
    return head + "\n" + "-" * len(head)


def format_workload(res: WorkloadResult) -> str:
    lines = []
    if res.error:
        lines.append(_message_line(res.name, "(setup)", "ERROR " + res.error))
    first = True
    for name, vr in res.variants.items():
        label = res.name if first else ""
        first = False
        marker = name + (" *" if name == res.baseline else "")
        if vr.status != "ok":
            lines.append(_message_line(label, marker, f"{vr.status.upper()} {vr.error}"))
            continue
        lines.append(_line([label, marker, fmt_time(vr.median_s), fmt_time(vr.iqr_s),
                            fmt_time(vr.min_s), fmt_ratio(vr.ratio_vs_baseline),
                            fmt_num(vr.gbps), fmt_num(vr.gflops)]))
    if res.ratios:
        shown = ", ".join(f"{k} {v:.2f}x" for k, v in res.ratios.items())
        lines.append(" " * (COLUMNS[0][1] + 2) + "time ratio: " + shown)
    return "\n".join(lines)


def _message_line(label: str, variant: str, message: str) -> str:
    """A row whose numeric columns are replaced by an error/unavailable note."""
    (_, w_label), (_, w_variant) = COLUMNS[:2]
    return f"{label.ljust(w_label)}  {variant.ljust(w_variant)}  {_clip(message)}"


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= ERROR_WIDTH else text[: ERROR_WIDTH - 3] + "..."


def run_summaries(summaries: Iterable[SummaryFn],
                  results: Mapping[str, WorkloadResult]) -> list[str]:
    lines: list[str] = []
    for fn in summaries:
        try:
            lines.extend(fn(results))
        except Exception as exc:  # noqa: BLE001 - a summary must not sink the run
            lines.append(f"summary {getattr(fn, '__name__', fn)} failed: {describe_error(exc)}")
    return lines


# --------------------------------------------------------------------------
# Whole run + JSON
# --------------------------------------------------------------------------


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None  # e.g. a repository without commits yet
    return out.stdout.strip() or None


def _library_versions() -> dict[str, Any]:
    """Versions/threads of libraries the variants actually imported."""
    info: dict[str, Any] = {}
    for mod in ("numpy", "numba", "llvmlite", "torch", "jitorch"):
        m = sys.modules.get(mod)
        if m is not None:
            info[mod] = getattr(m, "__version__", "?")
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "get_num_threads"):
        info["torch_threads"] = torch.get_num_threads()
    numba = sys.modules.get("numba")
    if numba is not None:
        info["numba_threads"] = getattr(numba.config, "NUMBA_NUM_THREADS", None)
    return info


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every platform
        return None


def busy_machine_note(load: float | None, cpus: int | None) -> str | None:
    """Other processes on the CPUs skew absolute numbers (ratios less so)."""
    if load is None or not cpus or load < 0.5 * cpus:
        return None
    return (f"note: 1-minute load average is {load:.1f} on {cpus} CPUs before the run; "
            "absolute timings may be noisy")


def run_metadata() -> dict[str, Any]:
    return {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "loadavg_start": load_average(),
        "git_commit": _git_commit(),
    }


def default_json_path() -> Path:
    return RESULTS_DIR / (time.strftime("%Y%m%d-%H%M%S") + ".json")


def to_json(results: list[WorkloadResult], cfg: RunConfig, meta: Mapping[str, Any],
            summary_lines: list[str]) -> dict[str, Any]:
    return {
        "meta": dict(meta),
        "config": asdict(cfg),
        "workloads": [asdict(r) for r in results],
        "summary": summary_lines,
    }


def run(workloads: list[Workload], cfg: RunConfig | None = None,
        summaries: Iterable[SummaryFn] = (), json_path: Path | str | None = None,
        out: TextIO = sys.stdout) -> dict[str, Any]:
    """Run workloads, print the table as it fills, optionally write JSON."""
    cfg = cfg or RunConfig()
    meta = run_metadata()
    note = busy_machine_note(meta["loadavg_start"], meta["cpu_count"])
    if note:
        print(note, file=out, flush=True)
    print(table_header(), file=out, flush=True)
    results: list[WorkloadResult] = []
    group = None
    for wl in workloads:
        if wl.group != group:
            group = wl.group
            print(f"[{group}]", file=out, flush=True)
        try:
            res = run_workload(wl, cfg)
        except Exception as exc:  # noqa: BLE001 - harness bug: keep the other workloads
            res = WorkloadResult(wl.name, wl.group, wl.baseline, wl.bytes_moved, wl.flops,
                                 error="harness: " + describe_error(exc))
            traceback.print_exc()
        results.append(res)
        print(format_workload(res), file=out, flush=True)
    summary_lines = run_summaries(summaries, {r.name: r for r in results})
    if summary_lines:
        print("\n" + "\n".join(summary_lines), file=out, flush=True)
    meta = {**meta, "loadavg_end": load_average(), **_library_versions()}
    doc = to_json(results, cfg, meta, summary_lines)
    if json_path is not None:
        path = Path(json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        print(f"\nwrote {path}", file=out, flush=True)
    return doc
