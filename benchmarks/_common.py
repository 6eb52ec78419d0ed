"""What every benchmark shares: timing with interleaved repeats, the result file, the table.

A benchmark measures a *figure* (what mlgen or the generated repository does) and a
*baseline* (what people would use instead) in the same run, alternating between them so
that the load of a shared machine falls on both alike, and compares their medians.

Result files (``benchmarks/results/<name>.json``) have this shape::

    {
      "benchmark": "generation",
      "command": "python benchmarks/generation.py",
      "quick": false,
      "started_at": "...", "duration_s": 12.3,
      "environment": {...},          # machine, load averages, versions
      "parameters": {...},           # sizes, repeats, ...
      "measurements": {"<label>": {"median": .., "min": .., "max": .., "runs": [...],
                                   "unit": "s"}, ...},
      "comparisons": [{"name": .., "figure": "<label>", "figure_value": ..,
                       "baseline": "<label>", "baseline_value": .., "ratio": ..,
                       "ratio_definition": "figure / baseline", "target": "<= 1.15",
                       "met": true}, ...],
      "checks": {...}                # correctness of what was timed (same output, ...)
    }
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
BIN = Path(sys.executable).parent
"""Where ``mlgen`` and ``copier`` of this interpreter's environment are."""

if str(REPO_ROOT) not in sys.path:  # for ``tests.versioned`` (the versioned template)
    sys.path.insert(1, str(REPO_ROOT))


def tool(name: str) -> str:
    """A console script of this environment (``mlgen``, ``copier``), else one on PATH."""
    candidate = BIN / name
    if candidate.is_file():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} is not installed; run: bash scripts/bootstrap")
    return found


def run(command: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a command, fail loudly (with its output) when it fails."""
    result = subprocess.run(list(command), capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, command))} exited {result.returncode}:\n"
            f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        )
    return result


CPU_SUFFIX = " [CPU time]"
"""Label suffix of a case's CPU time (user + system, this process and its children)."""


def cpu_seconds() -> float:
    """CPU time (user + system) so far of this process and of its waited-for children
    (subprocesses, their own children, worker pools): unlike wall-clock time it hardly
    grows when other work shares the cores."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def timed(function: Callable[[], Any]) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one call."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    function()
    return time.perf_counter() - wall, cpu_seconds() - cpu


def timed_command(command: Sequence[str], **kwargs: Any) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one successful run of ``command`` (start-up
    included)."""
    return timed(lambda: run(command, **kwargs))


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return []


def _version(command: Sequence[str]) -> str:
    try:
        return subprocess.run(list(command), capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


def environment_info() -> dict[str, Any]:
    """The machine and the versions that ran a benchmark."""
    from importlib import metadata

    def dist(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": load_average(),
        "git": _version(["git", "--version"]),
        "mlgen": dist("mlgen"),
        "copier": dist("copier"),
        "mlgen_commit": _version(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"]),
        "mlgen_worktree_dirty": bool(
            _version(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "src", "plugins"])
        ),
        "openblas_env": {
            key: os.environ[key]
            for key in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
            if key in os.environ
        },
    }


@dataclass
class Measurement:
    """Repeated measurements of one thing (seconds unless told)."""

    runs: list[float] = field(default_factory=list)
    unit: str = "s"

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "median": self.median,
            "min": min(self.runs),
            "max": max(self.runs),
            "runs": self.runs,
            "unit": self.unit,
        }


def interleaved(
    cases: Mapping[str, Callable[[], float | tuple[float, float]]],
    repeats: int,
    warmup: int = 0,
    progress: bool = True,
) -> dict[str, Measurement]:
    """Run every case ``repeats`` times, alternating, and collect what each returns.

    Each case does its own untimed preparation and returns the seconds of its timed
    part, or ``(wall, cpu)`` seconds (see :func:`timed`); CPU times are collected under
    ``name + CPU_SUFFIX``. The order is reversed every other round (A B, B A, A B, ...)
    so that neither case always runs right after the other. ``warmup`` rounds are run
    and dropped.
    """
    results: dict[str, Measurement] = {}
    names = list(cases)
    for round_index in range(warmup + repeats):
        order = names if round_index % 2 == 0 else names[::-1]
        for name in order:
            returned = cases[name]()
            wall, cpu = returned if isinstance(returned, tuple) else (returned, None)
            if round_index >= warmup:
                results.setdefault(name, Measurement()).runs.append(wall)
                if cpu is not None:
                    results.setdefault(name + CPU_SUFFIX, Measurement()).runs.append(cpu)
            if progress:
                tag = "warm-up" if round_index < warmup else f"run {round_index - warmup + 1}"
                extra = "" if cpu is None else f" (CPU {cpu:.3f} s)"
                print(f"  {tag:8} {name}: {wall:.3f} s{extra}", file=sys.stderr, flush=True)
    return {name: results[name] for name in sorted(results, key=_case_order(names))}


def _case_order(names: list[str]) -> Callable[[str], tuple[int, int]]:
    def key(label: str) -> tuple[int, int]:
        base = label.removesuffix(CPU_SUFFIX)
        return names.index(base), label.endswith(CPU_SUFFIX)

    return key


def compare(
    name: str,
    measured: Mapping[str, Measurement],
    figure: str,
    baseline: str,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """The comparison of two cases' medians: wall-clock time, and CPU time when measured."""
    rows = [
        comparison(
            name, figure, measured[figure].median, baseline, measured[baseline].median, **kwargs
        )
    ]
    if figure + CPU_SUFFIX in measured and baseline + CPU_SUFFIX in measured:
        rows.append(
            comparison(
                name + CPU_SUFFIX,
                figure + CPU_SUFFIX,
                measured[figure + CPU_SUFFIX].median,
                baseline + CPU_SUFFIX,
                measured[baseline + CPU_SUFFIX].median,
                **kwargs,
            )
        )
    return rows


def comparison(
    name: str,
    figure: str,
    figure_value: float,
    baseline: str,
    baseline_value: float,
    *,
    target: float,
    higher_is_better: bool,
    ratio_definition: str | None = None,
    invert: bool = False,
    unit: str | None = None,
) -> dict[str, Any]:
    """One row of the result table.

    The ratio is ``figure / baseline``, or ``baseline / figure`` with ``invert`` (a
    speed-up). ``higher_is_better`` decides whether the target is a floor or a ceiling.
    """
    if invert:
        ratio = baseline_value / figure_value if figure_value else float("inf")
        definition = ratio_definition or "baseline / figure (speed-up)"
    else:
        ratio = figure_value / baseline_value if baseline_value else float("inf")
        definition = ratio_definition or "figure / baseline"
    met = ratio >= target if higher_is_better else ratio <= target
    row = {
        "name": name,
        "figure": figure,
        "figure_value": figure_value,
        "baseline": baseline,
        "baseline_value": baseline_value,
        "ratio": ratio,
        "ratio_definition": definition,
        "target": f"{'>=' if higher_is_better else '<='} {target:g}",
        "met": bool(met),
    }
    if unit is not None:
        row["unit"] = unit
    return row


@contextmanager
def scratch_dir(name: str, *, keep: bool = False) -> Iterator[Path]:
    """A new scratch folder for benchmark ``name``, removed afterwards unless ``keep``
    (``--keep``: its path is printed, to look at what the run generated)."""
    scratch = Path(tempfile.mkdtemp(prefix=f"mlgen-bench-{name}-"))
    try:
        yield scratch
    finally:
        if keep:
            print(f"scratch kept: {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def base_parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes and one repeat: checks that the benchmark runs, measures nothing",
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed runs of each case (default: per benchmark)"
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=RESULTS_DIR,
        help="where <name>.json goes (default: %(default)s)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the scratch folder (its path is printed)"
    )
    return parser


def _format_value(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.3f} s" if value < 100 else f"{value:.1f} s"
    if unit == "MB":
        return f"{value:.1f} MB"
    if unit == "features":
        return f"{value:g}"
    return f"{value:g} {unit}".strip()


def print_table(result: Mapping[str, Any]) -> None:
    """The figures, baselines, ratios and targets of one result, as a plain table."""
    units = {label: m.get("unit", "s") for label, m in result["measurements"].items()}
    rows = [["comparison", "figure", "baseline", "ratio", "target", "met"]]
    for row in result["comparisons"]:
        unit = row.get("unit") or units.get(row["figure"], "s")
        base_unit = row.get("unit") or units.get(row["baseline"], unit)
        rows.append(
            [
                row["name"],
                f"{row['figure']}: {_format_value(row['figure_value'], unit)}",
                f"{row['baseline']}: {_format_value(row['baseline_value'], base_unit)}",
                f"{row['ratio']:.2f}x",
                row["target"],
                "yes" if row["met"] else "NO",
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    environment = result["environment"]
    print(
        f"\n== {result['benchmark']} (load average {environment.get('load_average_at_start')}"
        f" -> {environment.get('load_average_at_end')}, {environment.get('cpu_count')} cores)"
    )
    print("figures (median of runs):")
    for label, measured in result["measurements"].items():
        unit, runs = measured.get("unit", "s"), measured.get("runs", [])
        print(
            f"  {label}: {_format_value(measured['median'], unit)}"
            f"  ({len(runs)} runs, min {_format_value(measured['min'], unit)})"
        )
    for r in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(r, widths, strict=True)).rstrip())


def write_result(
    name: str,
    args: argparse.Namespace,
    started: float,
    environment: dict[str, Any],
    parameters: Mapping[str, Any],
    measurements: Mapping[str, Measurement | Mapping[str, Any]],
    comparisons: list[dict[str, Any]],
    checks: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``<results-dir>/<name>.json``, print the table, return the file."""
    environment = {**environment, "load_average_at_end": load_average()}
    result = {
        "benchmark": name,
        "command": " ".join(["python", f"benchmarks/{name}.py", *sys.argv[1:]]),
        "quick": bool(args.quick),
        "started_at": _dt.datetime.fromtimestamp(started, _dt.UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.time() - started, 1),
        "environment": environment,
        "parameters": dict(parameters),
        "measurements": {
            label: m.to_dict() if isinstance(m, Measurement) else dict(m)
            for label, m in measurements.items()
        },
        "comparisons": comparisons,
        "checks": dict(checks or {}),
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    path = args.results_dir / f"{name}.json"
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)
    print_table(result)
    for key, value in (checks or {}).items():
        print(f"  check {key}: {value}")
    print(f"  -> {path}")
    return path


def tree_digest(root: Path, ignore: Sequence[str] = (".git",)) -> dict[str, bytes]:
    """Every file below ``root`` by relative path (for "same output" checks)."""
    tree: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if relative.parts and relative.parts[0] in ignore:
            continue
        if path.is_file():
            tree[relative.as_posix()] = path.read_bytes()
    return tree


def tree_differences(a: Path, b: Path, ignore: Sequence[str] = (".git",)) -> list[str]:
    """Relative paths whose presence or content differs between two trees."""
    left, right = tree_digest(a, ignore), tree_digest(b, ignore)
    return sorted(path for path in set(left) | set(right) if left.get(path) != right.get(path))


def benchmark_environment(requirements: Path) -> Path:
    """A uv environment with ``requirements`` (a requirements file), built once.

    Cached like :func:`mlgen.environments.shared_environment`: in its cache folder,
    keyed by the hash of the file and the Python version, with a lock for concurrent
    runs and a completion marker (a half-built environment is rebuilt).
    """
    import fcntl
    import hashlib

    from mlgen.environments import cache_root, python_in, uv_binary

    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    digest = hashlib.sha256((python + "\n" + requirements.read_text()).encode()).hexdigest()
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    environment = root / f"bench-{requirements.stem}-{digest[:12]}"
    marker = environment / ".mlgen-complete"
    with (root / f"{environment.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.is_file():
            print(f"building {environment} from {requirements.name} (once)", file=sys.stderr)
            shutil.rmtree(environment, ignore_errors=True)
            uv = uv_binary()
            run([uv, "venv", "--quiet", "--python", python, str(environment)])
            run(
                [
                    uv,
                    "pip",
                    "install",
                    "--quiet",
                    "--python",
                    str(python_in(environment)),
                    "-r",
                    str(requirements),
                ]
            )
            marker.write_text(requirements.read_text())
    return environment


_SPIN = (
    "import time\n"
    "start = time.perf_counter()\n"
    "x = 0\n"
    "for i in range(6_000_000):\n"
    "    x += i\n"
    "print(time.perf_counter() - start)\n"
)


def parallel_capacity(workers: int | None = None) -> float:
    """How many cores this benchmark can really use right now, measured.

    The same CPU-bound loop runs in one process, then in ``workers`` processes at once
    (default: one per core): ``workers * alone / together``. About ``workers`` on an idle
    machine; near 1 when other work already takes the cores (the parallel speed-up any
    program can reach here is bounded by it).
    """
    workers = workers or os.cpu_count() or 1

    def spin(count: int) -> float:
        processes = [
            subprocess.Popen([sys.executable, "-c", _SPIN], stdout=subprocess.PIPE, text=True)
            for _ in range(count)
        ]
        return max(float(process.communicate()[0]) for process in processes)

    alone = statistics.median(spin(1) for _ in range(3))
    together = statistics.median(spin(workers) for _ in range(3))
    return round(workers * alone / together, 2)
