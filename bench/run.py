"""Command line for the benchmarks: ``python -m bench --help``."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import traceback
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script (python bench/run.py): make ``bench`` and ``jitorch`` importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness  # noqa: E402


def load_workloads() -> list[str]:
    """Import every module in bench/workloads/; return the ones that failed."""
    import bench.workloads as pkg

    failed = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        try:
            importlib.import_module(f"{pkg.__name__}.{info.name}")
        except Exception:  # noqa: BLE001 - one bad module must not hide the rest
            failed.append(info.name)
            print(f"could not load bench/workloads/{info.name}.py:", file=sys.stderr)
            traceback.print_exc()
    return failed


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--filter", metavar="SUBSTR",
                   help="only workloads whose 'group/name' contains SUBSTR")
    p.add_argument("--group", metavar="G", help="only workloads of this group")
    p.add_argument("--samples", type=int, default=harness.RunConfig.samples,
                   help="timing samples per variant (default %(default)s)")
    p.add_argument("--variants", metavar="A,B",
                   help="comma-separated variant names to keep (e.g. jitorch,torch)")
    p.add_argument("--json", metavar="PATH", type=Path,
                   help="where to write results (default bench/results/<timestamp>.json)")
    p.add_argument("--no-json", action="store_true", help="do not write a JSON file")
    p.add_argument("--list", action="store_true", help="list the workloads and exit")
    return p.parse_args(argv)


def list_workloads(workloads: list[harness.Workload]) -> None:
    for wl in workloads:
        extra = f"  - {wl.description}" if wl.description else ""
        print(f"{wl.group}/{wl.name}{extra}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    failed = load_workloads()
    selected = harness.REGISTRY.select(args.filter, args.group)
    if args.list:
        list_workloads(selected)
        return 1 if failed else 0
    if not selected:
        print("no workload matches", file=sys.stderr)
        return 2
    cfg = harness.RunConfig(samples=args.samples)
    if args.variants:
        cfg.variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    json_path = None if args.no_json else (args.json or harness.default_json_path())
    harness.run(selected, cfg, harness.REGISTRY.summaries, json_path)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
