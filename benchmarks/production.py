"""Production profile: online lookups from Redis vs SQLite; train + register on
PostgreSQL-backed MLflow vs SQLite.

In the runtime's environment with every extra (the one ``tests/test_runtime.py`` builds),
with a real PostgreSQL and Redis on loopback (``mlgen_runtime.servers``), in one process
and alternating (``benchmarks/_production_body.py``):

* Feast ``get_online_features`` of 6 features for 1 entity and for a batch of 64 random
  entities out of 10,000, from the Redis online store (production) and from SQLite
  (local): p50 and p95 latency;
* train (a logistic regression on 20,000 rows) + log + register in MLflow
  (``mlgen_runtime.registry.log_and_register``) on PostgreSQL and on SQLite.

The ratios are reported, not asserted (no target: the figures describe the cost of the
production stores on this machine, where both run locally). Run:
``python benchmarks/production.py``.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from typing import Any

from _common import (
    BENCH_DIR,
    REPO_ROOT,
    Measurement,
    base_parser,
    comparison,
    environment_info,
    scratch_dir,
    write_result,
)

NAME = "production"
EXTRAS = ("serving", "onnx", "stats", "registry", "feast", "production", "triton", "test")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> int:
    args = base_parser(__doc__.splitlines()[0]).parse_args()
    started = time.time()
    environment = environment_info()
    sizes = ["--entities", "500", "--lookups", "10", "--registrations", "1"] if args.quick else []
    if args.repeats and not args.quick:
        sizes = ["--registrations", str(args.repeats)]
    with scratch_dir(NAME, keep=args.keep) as scratch:
        from mlgen.environments import run_in_repo, shared_environment

        print("the runtime's environment (built once with uv, then cached)", file=sys.stderr)
        runtime = REPO_ROOT / "runtime"
        env = shared_environment(runtime, extras=EXTRAS)
        out = scratch / "body.json"
        body = [str(BENCH_DIR / "_production_body.py"), "--scratch", str(scratch / "work")]
        result = run_in_repo(
            runtime,
            env,
            ["python", *body, "--out", str(out), *sizes],
            extra_env={"PYTHONPATH": str(runtime / "src")},
            capture=False,
        )
        if result.returncode != 0:
            raise SystemExit(f"the production body failed (exit {result.returncode})")
        timings: dict[str, list[float]] = json.loads(out.read_text())["timings"]
    measurements: dict[str, Any] = {}
    comparisons = []
    for batch in (1, 64):
        for stat, fraction in (("p50", 0.5), ("p95", 0.95)):
            values = {
                kind: percentile(timings[f"{kind} batch {batch}"], fraction)
                for kind in ("redis", "sqlite")
            }
            for kind, value in values.items():
                measurements[f"online {kind} batch {batch} {stat}"] = {
                    "median": value,
                    "min": min(timings[f"{kind} batch {batch}"]),
                    "max": max(timings[f"{kind} batch {batch}"]),
                    "runs": timings[f"{kind} batch {batch}"],
                    "unit": "ms",
                }
            comparisons.append(
                comparison(
                    f"online lookup, batch {batch}, {stat}",
                    f"online redis batch {batch} {stat}",
                    values["redis"],
                    f"online sqlite batch {batch} {stat}",
                    values["sqlite"],
                    target=float("inf"),
                    higher_is_better=False,
                    ratio_definition="Redis / SQLite latency (reported, not a target)",
                    unit="ms",
                )
            )
    for kind in ("postgresql", "sqlite"):
        measurements[f"train+register {kind}"] = Measurement(timings[f"train+register {kind}"])
    comparisons.append(
        comparison(
            "train + register",
            "train+register postgresql",
            statistics.median(timings["train+register postgresql"]),
            "train+register sqlite",
            statistics.median(timings["train+register sqlite"]),
            target=float("inf"),
            higher_is_better=False,
            ratio_definition="PostgreSQL / SQLite time (reported, not a target)",
        )
    )
    write_result(
        NAME,
        args,
        started,
        environment,
        {"features": 6, "lookups_per_case": len(timings["redis batch 1"])},
        measurements,
        comparisons,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
