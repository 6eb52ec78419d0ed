"""Run every benchmark, one after the other, then print one table of all results.

Usage::

    python benchmarks/run_all.py                 # all of them (tens of minutes)
    python benchmarks/run_all.py --quick         # tiny sizes: checks that they run
    python benchmarks/run_all.py --only drift    # some of them

Each benchmark is ``benchmarks/<name>.py`` (files starting with ``_`` are helpers), run
as its own process with this interpreter; each writes ``benchmarks/results/<name>.json``.
A missed target is reported, not an error: the exit status is non-zero only when a
benchmark failed to run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from _common import BENCH_DIR, RESULTS_DIR, load_average

ORDER = ["generation", "update", "fleet", "drift"]
"""Run first, in this order; any other benchmark follows, by name."""


def discover() -> list[str]:
    names = [
        path.stem
        for path in BENCH_DIR.glob("*.py")
        if not path.name.startswith("_") and path.name != "run_all.py"
    ]
    return [n for n in ORDER if n in names] + sorted(n for n in names if n not in ORDER)


def main() -> int:
    parser = argparse.ArgumentParser(description="Run every benchmark and print one table.")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat each")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()
    available = discover()
    names = args.only or available
    unknown = [name for name in names if name not in available]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; available: {available}")
    extra = (["--quick"] if args.quick else []) + (
        ["--results-dir", str(args.results_dir)] if args.results_dir != RESULTS_DIR else []
    )
    failed, ran = [], []
    for name in names:
        print(f"\n##### {name} (load average {load_average()})", flush=True)
        start = time.perf_counter()
        status = subprocess.run([sys.executable, str(BENCH_DIR / f"{name}.py"), *extra]).returncode
        print(f"##### {name}: exit {status} after {time.perf_counter() - start:.0f} s", flush=True)
        (failed if status else ran).append(name)
    print_summary(ran, args.results_dir)
    if failed:
        print(f"\nFAILED to run: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def print_summary(names: list[str], results_dir: Path) -> None:
    rows = [["benchmark", "comparison", "figure", "baseline", "ratio", "target", "met"]]
    for name in names:
        path = results_dir / f"{name}.json"
        if not path.is_file():
            continue
        result = json.loads(path.read_text())
        for row in result.get("comparisons", []):
            rows.append(
                [
                    name,
                    row["name"],
                    f"{row['figure_value']:.4g}",
                    f"{row['baseline_value']:.4g}",
                    f"{row['ratio']:.2f}x",
                    row["target"],
                    "yes" if row["met"] else "NO",
                ]
            )
    if len(rows) == 1:
        return
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print(f"\n===== summary (load average now {load_average()})")
    for r in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(r, widths, strict=True)).rstrip())


if __name__ == "__main__":
    raise SystemExit(main())
