"""The drift benchmark's body: runs in a generated repository's environment.

``benchmarks/drift.py`` renders a repository, builds (or reuses) its environment and
runs this file there with the repository's ``src`` on the path. Everything timed here
runs in this one process, alternating: the runtime's drift check (``mlgen_runtime.drift``
as installed in the repository's environment, which its ``<package>.drift`` calls) and
baseline (a), scipy's ``ks_2samp`` per column plus a per-column numpy PSI.

It writes its measurements as JSON (``--out``) and the 200,000 x 20 data as ``.npy``
files (``--data-dir``) for the Evidently baseline, which runs in its own environment.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _common import Measurement, interleaved

PSI_BINS = 10
PSI_EPSILON = 1e-4  # proportions floored at this, as in mlgen_runtime.drift


# ---------------------------------------------------------------------------- data

# (distribution, drift injected into the window) for each feature, cycled for wider data.
# "strong": both tests see it; "subtle": a shift of 0.03 standard deviations, which KS
# sees at 200,000 rows (p << 0.05) and PSI does not (PSI ~ 0.001); "scale": 15 % wider.
FEATURE_PLAN: list[tuple[str, str]] = [
    ("normal", "strong"),
    ("lognormal", "strong"),
    ("exponential", "none"),
    ("uniform", "subtle"),
    ("poisson", "subtle"),
    ("gamma", "none"),
    ("rounded_normal", "scale"),
    ("beta", "none"),
    ("student_t", "subtle"),
    ("integers", "none"),
    ("normal", "none"),
    ("lognormal", "subtle"),
    ("exponential", "strong"),
    ("uniform", "none"),
    ("poisson", "none"),
    ("gamma", "scale"),
    ("rounded_normal", "none"),
    ("beta", "strong"),
    ("student_t", "none"),
    ("integers", "subtle"),
]


def _column(rng: np.random.Generator, kind: str, drift: str, n: int) -> np.ndarray:
    shift = {"strong": 0.5, "subtle": 0.03}.get(drift, 0.0)
    scale = 1.15 if drift == "scale" else 1.0
    if kind == "poisson":  # discrete (ties): drift the rate by `shift` standard deviations
        return rng.poisson((3.0 + shift * 3.0**0.5) * scale, n).astype(np.float64)
    if kind == "integers":  # discrete U{0..100} (sd ~29), shifted by whole numbers
        return (rng.integers(0, 101, n) + round(shift * 29)).astype(np.float64) * scale
    base = {
        "normal": lambda: rng.normal(0.0, 1.0, n),
        "lognormal": lambda: rng.lognormal(0.0, 0.5, n),
        "exponential": lambda: rng.exponential(1.0, n),
        "uniform": lambda: rng.uniform(0.0, 1.0, n),
        "gamma": lambda: rng.gamma(2.0, 2.0, n),
        "rounded_normal": lambda: np.round(rng.normal(50.0, 10.0, n), 2),
        "beta": lambda: rng.beta(2.0, 5.0, n),
        "student_t": lambda: rng.standard_t(5, n),
    }[kind]()
    if shift or scale != 1.0:
        sd = float(np.std(base))
        mean = float(np.mean(base))
        base = mean + (base - mean) * scale + shift * sd
    return base


def make_matrix(seed: int, rows: int, features: int, with_drift: bool) -> np.ndarray:
    """A ``rows x features`` float64 matrix, filled a column at a time (no big temporaries)."""
    rng = np.random.default_rng(seed)
    matrix = np.empty((rows, features), dtype=np.float64)
    for j in range(features):
        kind, drift = FEATURE_PLAN[j % len(FEATURE_PLAN)]
        matrix[:, j] = _column(rng, kind, drift if with_drift else "none", rows)
    return matrix


def injected_drift(features: int) -> list[str]:
    return [FEATURE_PLAN[j % len(FEATURE_PLAN)][1] for j in range(features)]


# ---------------------------------------------------------------------------- baseline (a)


def baseline_a(
    reference: np.ndarray,
    window: np.ndarray,
    psi_threshold: float,
    ks_threshold: float,
    parts: list[tuple[float, float]] | None = None,
) -> list[dict[str, Any]]:
    """scipy ``ks_2samp`` on each column, then a numpy PSI with 10 quantile bins each.

    PSI bins: the reference's deciles (numpy's default linear interpolation) as inner
    edges, equal edges merged, outer bins open; proportions floored at 1e-4.
    """
    from scipy.stats import ks_2samp

    features = reference.shape[1]
    start = time.perf_counter()
    ks = [ks_2samp(reference[:, j], window[:, j]) for j in range(features)]
    middle = time.perf_counter()
    psis = []
    inner = np.linspace(0.0, 1.0, PSI_BINS + 1)[1:-1]
    for j in range(features):
        ref, cur = reference[:, j], window[:, j]
        edges = np.concatenate(([-np.inf], np.unique(np.quantile(ref, inner)), [np.inf]))
        expected = np.histogram(ref, bins=edges)[0] / ref.size
        actual = np.histogram(cur, bins=edges)[0] / cur.size
        e, a = np.maximum(expected, PSI_EPSILON), np.maximum(actual, PSI_EPSILON)
        psis.append(float(np.sum((a - e) * np.log(a / e))))
    end = time.perf_counter()
    if parts is not None:
        parts.append((middle - start, end - middle))
    return [
        {
            "statistic": float(result.statistic),
            "p_value": float(result.pvalue),
            "psi": psi,
            "drifted": bool(psi > psi_threshold or result.pvalue < ks_threshold),
        }
        for result, psi in zip(ks, psis, strict=True)
    ]


# ---------------------------------------------------------------------------- helpers


def timed(function: Callable[[], Any]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def _status_kb(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else -1


def peak_memory(function: Callable[[], Any]) -> dict[str, Any]:
    """Extra memory ``function`` needs at its peak: RSS high-water mark above the RSS
    before (the mark reset through /proc/self/clear_refs), and tracemalloc's peak of
    allocations (NumPy reports its buffers to tracemalloc) in a second run."""
    result: dict[str, Any] = {}
    try:
        before = _status_kb("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")
        function()
        peak = _status_kb("VmHWM")
        result["rss_peak_delta_bytes"] = (peak - before) * 1024
        result["rss_before_bytes"] = before * 1024
        result["rss_peak_bytes"] = peak * 1024  # the whole process: interpreter, libraries,
        # the window and whatever the allocator kept from earlier runs
    except OSError as error:  # not Linux, or clear_refs not allowed
        result["rss_peak_delta_bytes"] = None
        result["rss_error"] = str(error)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        baseline = tracemalloc.get_traced_memory()[0]
        function()
        result["tracemalloc_peak_bytes"] = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    return result


def runtime_info() -> dict[str, Any]:
    """Which numpy/scipy build and how many BLAS threads ran this."""
    import scipy

    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "cpu_count": os.cpu_count(),
        "openblas_env": {
            key: os.environ[key]
            for key in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
            if key in os.environ
        },
    }
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        keys = ("name", "version", "openblas configuration")
        info["numpy_blas"] = {key: blas.get(key) for key in keys}
    except Exception as error:  # older numpy: no dicts mode
        info["numpy_blas"] = f"unknown ({error})"
    try:
        from threadpoolctl import threadpool_info

        info["threadpools"] = [
            {
                key: pool.get(key)
                for key in (
                    "user_api",
                    "internal_api",
                    "version",
                    "num_threads",
                    "architecture",
                    "prefix",
                )
            }
            for pool in threadpool_info()
        ]
    except ImportError:
        info["threadpools"] = "threadpoolctl not installed"
    return info


# ---------------------------------------------------------------------------- benchmark


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", default="mlgen_runtime.drift")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--reference-rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--big-rows", type=int, default=1_000_000)
    parser.add_argument("--big-features", type=int, default=50)
    parser.add_argument("--big-reference-rows", type=int, default=200_000)
    parser.add_argument("--big-repeats", type=int, default=3)
    parser.add_argument("--psi-threshold", type=float, default=0.2)
    parser.add_argument("--ks-threshold", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    drift = importlib.import_module(args.module)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"runtime": runtime_info(), "module": drift.__file__}
    try:
        from importlib.metadata import version

        out["mlgen_runtime"] = version("mlgen-runtime")
    except Exception as error:  # the module may come from a source tree instead
        out["mlgen_runtime"] = f"unknown ({error})"
    thresholds = {"psi_threshold": args.psi_threshold, "ks_pvalue_threshold": args.ks_threshold}

    out["window"] = window_benchmark(drift, args, thresholds)
    out["big_window"] = big_window_benchmark(drift, args, thresholds)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    return 0


def window_benchmark(drift: Any, args: argparse.Namespace, thresholds: dict[str, float]) -> Any:
    """The 200,000 x 20 window: the runtime vs baseline (a), timings and decisions."""
    rows, features = args.rows, args.features
    names = [f"f{j:02d}" for j in range(features)]
    print(
        f"data: reference {args.reference_rows} x {features}, window {rows} x {features}",
        file=sys.stderr,
        flush=True,
    )
    reference = make_matrix(args.seed, args.reference_rows, features, with_drift=False)
    window = make_matrix(args.seed + 1, rows, features, with_drift=True)
    np.save(args.data_dir / "reference.npy", reference)
    np.save(args.data_dir / "window.npy", window)
    (args.data_dir / "columns.json").write_text(json.dumps(names))

    start = time.perf_counter()
    profile = drift.build_profile(reference, names)
    build_seconds = time.perf_counter() - start
    profile_path = drift.save_profile(profile, args.data_dir / "reference_profile.json")
    loaded = drift.load_profile(profile_path)

    parts: list[tuple[float, float]] = []
    cases = {
        "mlgen_runtime.drift: KS + PSI, saved profile loaded": lambda: timed(
            lambda: drift.detect_drift(window, loaded, **thresholds)
        ),
        "mlgen_runtime.drift: load profile file + KS + PSI": lambda: timed(
            lambda: drift.detect_drift(window, drift.load_profile(profile_path), **thresholds)
        ),
        "mlgen_runtime.drift: KS + PSI, 1 thread": lambda: timed(
            lambda: drift.detect_drift(window, loaded, workers=1, **thresholds)
        ),
        "(a) scipy ks_2samp + numpy PSI per column": lambda: timed(
            lambda: baseline_a(reference, window, args.psi_threshold, args.ks_threshold, parts)
        ),
    }
    print("timing the window (alternating, 1 warm-up round)", file=sys.stderr, flush=True)
    measured = interleaved(cases, args.repeats, warmup=1)
    parts = parts[1:]  # drop the warm-up round
    measured["(a) of which ks_2samp loop"] = Measurement([p[0] for p in parts])
    measured["(a) of which numpy PSI loop"] = Measurement([p[1] for p in parts])

    report = drift.detect_drift(window, loaded, **thresholds)
    ours = [
        {"statistic": f.statistic, "p_value": f.p_value, "psi": f.psi, "drifted": f.drifted}
        for f in report.features
    ]
    theirs = baseline_a(reference, window, args.psi_threshold, args.ks_threshold)
    agree = [a["drifted"] == b["drifted"] for a, b in zip(ours, theirs, strict=True)]
    ks_agree = [
        (a["p_value"] < args.ks_threshold) == (b["p_value"] < args.ks_threshold)
        for a, b in zip(ours, theirs, strict=True)
    ]
    psi_agree = [
        (a["psi"] > args.psi_threshold) == (b["psi"] > args.psi_threshold)
        for a, b in zip(ours, theirs, strict=True)
    ]
    return {
        "rows": rows,
        "features": features,
        "reference_rows": args.reference_rows,
        "dtype": "float64",
        "window_bytes": window.nbytes,
        "profile_build_s": build_seconds,
        "profile_file_bytes": profile_path.stat().st_size,
        "profile_dtype": loaded.dtype,
        "workers": min(4, os.cpu_count() or 1, features)
        if rows * features >= drift.PARALLEL_MIN_VALUES
        else 1,
        "measurements": {label: m.to_dict() for label, m in measured.items()},
        "decisions": {
            "features": names,
            "injected": injected_drift(features),
            "runtime": [r["drifted"] for r in ours],
            "baseline_a": [r["drifted"] for r in theirs],
            "agree": sum(agree),
            "of": features,
            "disagreeing_features": [n for n, ok in zip(names, agree, strict=True) if not ok],
            "ks_decisions_agree": sum(ks_agree),
            "psi_decisions_agree": sum(psi_agree),
            "max_abs_diff_ks_statistic": max(
                abs(a["statistic"] - b["statistic"]) for a, b in zip(ours, theirs, strict=True)
            ),
            "max_abs_diff_p_value": max(
                abs(a["p_value"] - b["p_value"]) for a, b in zip(ours, theirs, strict=True)
            ),
            "max_abs_diff_psi": max(
                abs(a["psi"] - b["psi"]) for a, b in zip(ours, theirs, strict=True)
            ),
            "per_feature": {
                name: {"runtime": a, "baseline_a": b}
                for name, a, b in zip(names, ours, theirs, strict=True)
            },
        },
    }


def big_window_benchmark(drift: Any, args: argparse.Namespace, thresholds: dict[str, float]) -> Any:
    """The 1,000,000 x 50 window: time and peak memory of the runtime's check."""
    big_rows, big_features = args.big_rows, args.big_features
    big_names = [f"f{j:02d}" for j in range(big_features)]
    print(
        f"data: reference {args.big_reference_rows} x {big_features}, "
        f"window {big_rows} x {big_features}",
        file=sys.stderr,
        flush=True,
    )
    big_reference = make_matrix(args.seed + 2, args.big_reference_rows, big_features, False)
    big_profile = drift.build_profile(big_reference, big_names)
    del big_reference
    big_path = drift.save_profile(big_profile, args.data_dir / "big_reference_profile.json")
    big_profile = drift.load_profile(big_path)
    big_window = make_matrix(args.seed + 3, big_rows, big_features, with_drift=True)

    def big_check() -> Any:
        return drift.detect_drift(big_window, big_profile, **thresholds)

    print("timing the large window", file=sys.stderr, flush=True)
    big_label = f"mlgen_runtime.drift: KS + PSI, {big_rows:,} x {big_features}"
    big_measured = interleaved({big_label: lambda: timed(big_check)}, args.big_repeats, warmup=1)
    print("measuring the large window's peak memory", file=sys.stderr, flush=True)
    memory = peak_memory(big_check)
    big_report = big_check()
    return {
        "rows": big_rows,
        "features": big_features,
        "reference_rows": args.big_reference_rows,
        "dtype": "float64",
        "window_bytes": big_window.nbytes,
        "profile_dtype": big_profile.dtype,
        "measurements": {label: m.to_dict() for label, m in big_measured.items()},
        "memory": memory,
        "drifted_features": len(big_report.drifted_features),
    }


if __name__ == "__main__":
    raise SystemExit(main())
