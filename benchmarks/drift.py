"""Drift: the runtime's drift check vs scipy/numpy per column vs Evidently.

A repository is rendered from the checkout's template and its own environment built
(``mlgen.environments.shared_environment``, with uv on first use, then cached; the
runtime comes from a wheel built from ``runtime/``, as in every generated repository).
There, in one process and alternating (``benchmarks/_drift_body.py``):

* figure: ``mlgen_runtime.drift.detect_drift`` (what the repository's
  ``<package>.drift`` calls; KS + PSI over every feature) of a
  200,000 x 20 numeric window against a saved reference profile (built from a
  200,000 x 20 training matrix, saved as JSON and loaded back);
* baseline (a): scipy ``ks_2samp`` per column plus a per-column numpy PSI with 10
  quantile bins, from the raw training matrix, same thresholds (PSI > 0.2 or p < 0.05);
  the per-feature drift decisions of both are compared;
* then a 1,000,000 x 50 window: time and peak memory (RSS high-water mark and
  tracemalloc) of the same check.

Baseline (b), Evidently's ``DataDriftPreset`` on the same two matrices as DataFrames,
runs right after in its own cached environment (``benchmarks/requirements-evidently.txt``,
pinned versions; ``benchmarks/_evidently_body.py``).

Targets: >= 10x faster than (a), >= 50x faster than (b), the same per-feature
decisions as (a), and the 1,000,000 x 50 check's peak memory <= 3x the window's size.
Run: ``python benchmarks/drift.py`` (``--no-evidently`` skips (b)).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from _common import (
    BENCH_DIR,
    base_parser,
    benchmark_environment,
    comparison,
    environment_info,
    scratch_dir,
    write_result,
)
from _fixtures import plain_template

NAME = "drift"
ANSWERS = {"model_name": "bench-drift", "serving_backend": "fastapi"}
MB = 1024 * 1024


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--evidently",
        dest="evidently",
        action="store_true",
        default=None,
        help="run baseline (b), Evidently (default: yes, except with --quick)",
    )
    parser.add_argument("--no-evidently", dest="evidently", action="store_false")
    parser.add_argument("--evidently-repeats", type=int, default=3)
    args = parser.parse_args()
    with_evidently = (not args.quick) if args.evidently is None else args.evidently
    started = time.time()
    environment = environment_info()
    with scratch_dir("drift", keep=args.keep) as scratch:
        from mlgen.environments import python_in, run_in_repo, shared_environment
        from mlgen.generate import generate

        repo = generate(scratch / "bench-drift", plain_template(scratch), ANSWERS, defaults=True)
        print(
            "the generated repository's environment (built once with uv, then cached)",
            file=sys.stderr,
            flush=True,
        )
        repo_env = shared_environment(repo)
        sizes = (
            [
                "--rows",
                "2000",
                "--features",
                "5",
                "--reference-rows",
                "2000",
                "--repeats",
                "1",
                "--big-rows",
                "10000",
                "--big-features",
                "8",
                "--big-reference-rows",
                "2000",
                "--big-repeats",
                "1",
            ]
            if args.quick
            else (["--repeats", str(args.repeats)] if args.repeats else [])
        )
        body_out, data_dir = scratch / "body.json", scratch / "data"
        body = run_in_repo(
            repo,
            repo_env,
            [
                "python",
                str(BENCH_DIR / "_drift_body.py"),
                "--module",
                "mlgen_runtime.drift",
                "--data-dir",
                str(data_dir),
                "--out",
                str(body_out),
                *sizes,
            ],
            capture=False,
        )
        if body.returncode != 0:
            raise SystemExit(f"the drift body failed (exit {body.returncode})")
        measured = json.loads(body_out.read_text())
        evidently: dict[str, Any] | None = None
        if with_evidently:
            evidently_env = benchmark_environment(BENCH_DIR / "requirements-evidently.txt")
            evidently_out = scratch / "evidently.json"
            env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
            subprocess.run(
                [
                    str(python_in(evidently_env)),
                    str(BENCH_DIR / "_evidently_body.py"),
                    "--data-dir",
                    str(data_dir),
                    "--repeats",
                    str(args.evidently_repeats),
                    "--out",
                    str(evidently_out),
                ],
                check=True,
                env=env,
            )
            evidently = json.loads(evidently_out.read_text())
        result = summarize(measured, evidently)
        write_result(
            NAME,
            args,
            started,
            environment,
            {
                "window": {
                    k: measured["window"][k]
                    for k in (
                        "rows",
                        "features",
                        "reference_rows",
                        "dtype",
                        "window_bytes",
                        "profile_dtype",
                        "workers",
                        "profile_build_s",
                        "profile_file_bytes",
                    )
                },
                "big_window": {
                    k: measured["big_window"][k]
                    for k in (
                        "rows",
                        "features",
                        "reference_rows",
                        "dtype",
                        "window_bytes",
                        "profile_dtype",
                    )
                },
                "thresholds": {"psi": 0.2, "ks_pvalue": 0.05},
                "runtime_module": measured["module"],
                "mlgen_runtime": measured["mlgen_runtime"],
                "repo_environment": str(repo_env),
                "runtime_in_repo_environment": measured["runtime"],
                "evidently": evidently["versions"] if evidently else "not run",
            },
            result["measurements"],
            result["comparisons"],
            result["checks"],
        )
    return 0


def summarize(measured: dict[str, Any], evidently: dict[str, Any] | None) -> dict[str, Any]:
    """The measurements, comparison rows and checks of one drift run."""
    window, big = measured["window"], measured["big_window"]
    measurements: dict[str, Any] = dict(window["measurements"])
    size = f"{window['rows']:,} x {window['features']}"
    figure = "mlgen_runtime.drift: KS + PSI, saved profile loaded"
    with_load = "mlgen_runtime.drift: load profile file + KS + PSI"
    one_thread = "mlgen_runtime.drift: KS + PSI, 1 thread"
    base_a = "(a) scipy ks_2samp + numpy PSI per column"
    value = {label: m["median"] for label, m in measurements.items()}
    comparisons = [
        comparison(
            f"drift {size} vs (a)",
            figure,
            value[figure],
            base_a,
            value[base_a],
            target=10,
            higher_is_better=True,
            invert=True,
        ),
        comparison(
            f"drift {size} incl. profile load vs (a)",
            with_load,
            value[with_load],
            base_a,
            value[base_a],
            target=10,
            higher_is_better=True,
            invert=True,
        ),
        comparison(
            f"drift {size} 1 thread vs (a)",
            one_thread,
            value[one_thread],
            base_a,
            value[base_a],
            target=10,
            higher_is_better=True,
            invert=True,
        ),
    ]
    decisions = window["decisions"]
    comparisons.append(
        comparison(
            "same per-feature drift decisions as (a)",
            "features with the same decision",
            decisions["agree"],
            "features",
            decisions["of"],
            target=1,
            higher_is_better=True,
            ratio_definition="agreeing features / features",
            unit="features",
        )
    )
    checks: dict[str, Any] = {
        "decisions agree with (a)": f"{decisions['agree']}/{decisions['of']}"
        + (
            f" (differ: {decisions['disagreeing_features']})"
            if decisions["disagreeing_features"]
            else ""
        ),
        "KS decisions agree": f"{decisions['ks_decisions_agree']}/{decisions['of']}",
        "PSI decisions agree": f"{decisions['psi_decisions_agree']}/{decisions['of']}",
        "max |KS D - scipy's|": decisions["max_abs_diff_ks_statistic"],
        "max |p - scipy's|": decisions["max_abs_diff_p_value"],
        "max |PSI - numpy baseline's|": decisions["max_abs_diff_psi"],
        "features drifted (runtime / (a))": (
            f"{sum(decisions['runtime'])} / {sum(decisions['baseline_a'])} "
            f"of {decisions['of']}; injected: "
            f"{sum(kind != 'none' for kind in decisions['injected'])}"
        ),
    }
    if evidently is not None:
        label = "(b) Evidently DataDriftPreset"
        measurements[label] = evidently["measurements"][label]
        comparisons.append(
            comparison(
                f"drift {size} vs (b)",
                figure,
                value[figure],
                label,
                measurements[label]["median"],
                target=50,
                higher_is_better=True,
                invert=True,
            )
        )
        per_column = evidently["decisions"]
        features = decisions["features"]
        same = sum(
            per_column.get(name, {}).get("drifted") == ours
            for name, ours in zip(features, decisions["runtime"], strict=True)
        )
        methods = sorted({str(c.get("method")) for c in per_column.values()})
        checks["Evidently decisions (different tests, for information)"] = (
            f"{sum(c['drifted'] for c in per_column.values())} drifted; same as the runtime "
            f"on {same}/{len(features)}; methods {methods}"
        )
    big_label = next(iter(big["measurements"]))
    measurements[big_label] = big["measurements"][big_label]
    memory = big["memory"]
    extra = max(
        m
        for m in (memory.get("rss_peak_delta_bytes"), memory.get("tracemalloc_peak_bytes"))
        if m is not None
    )
    window_mb = big["window_bytes"] / MB
    peak_label = (
        f"peak memory of the {big['rows']:,} x {big['features']} check (window + the check's extra)"
    )
    measurements[peak_label] = {
        "median": window_mb + extra / MB,
        "min": window_mb + extra / MB,
        "max": window_mb + extra / MB,
        "runs": [window_mb + extra / MB],
        "unit": "MB",
    }
    measurements["extra memory of that check, RSS high-water mark"] = _mb(
        memory.get("rss_peak_delta_bytes")
    )
    measurements["extra memory of that check, tracemalloc peak"] = _mb(
        memory.get("tracemalloc_peak_bytes")
    )
    window_label = f"the {big['rows']:,} x {big['features']} window (float64)"
    measurements[window_label] = {
        "median": window_mb,
        "min": window_mb,
        "max": window_mb,
        "runs": [window_mb],
        "unit": "MB",
    }
    comparisons.append(
        comparison(
            "peak memory vs window size",
            peak_label,
            window_mb + extra / MB,
            window_label,
            window_mb,
            target=3,
            higher_is_better=False,
        )
    )
    if memory.get("rss_peak_bytes"):
        process_label = "process peak RSS during that check (interpreter and libraries too)"
        measurements[process_label] = _mb(memory["rss_peak_bytes"])
        comparisons.append(
            comparison(
                "process peak RSS vs window size",
                process_label,
                memory["rss_peak_bytes"] / MB,
                window_label,
                window_mb,
                target=3,
                higher_is_better=False,
            )
        )
    return {"measurements": measurements, "comparisons": comparisons, "checks": checks}


def _mb(value: float | None) -> dict[str, Any]:
    mb = -1.0 if value is None else value / MB
    return {"median": mb, "min": mb, "max": mb, "runs": [mb], "unit": "MB"}


if __name__ == "__main__":
    raise SystemExit(main())
