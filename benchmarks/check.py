"""Check: ``mlgen check`` of a fresh FastAPI repository, cold, warm and after a one-file edit.

Figures (``mlgen check REPO`` as a subprocess, wall-clock and CPU):

* **cold**: an empty result cache (the repository's environment already built: that is
  ``mlgen demo``'s or the tests' job, measured by environment builds, not here);
* **warm**: nothing changed since the cold run;
* **one file changed**: the Dockerfile edited (a comment added) after a warm run, so the
  checks that read it (hadolint, checkov-dockerfile, container-probes, and secrets,
  which reads every file) run again and the others are reused.

Baselines, in the same run: each validator's own time, run alone the way a person would
run it (checkov once for all four frameworks, ``kubectl kustomize`` of every overlay,
hadolint, actionlint with shellcheck, ``promtool check rules`` + ``test rules``, and
``feast apply`` + ``materialize-incremental`` in the repository's environment), and
their sum (what running them one after another costs).

Targets: cold <= 20 s wall on 2 cores, warm <= 3 s, cold <= the validators' sum.
Run: ``python benchmarks/check.py`` (``--quick``: one repeat).
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from _common import (
    CPU_SUFFIX,
    Measurement,
    base_parser,
    comparison,
    environment_info,
    interleaved,
    run,
    scratch_dir,
    timed_command,
    tool,
    write_result,
)

NAME = "check"
COLD_TARGET_S = 20.0
WARM_TARGET_S = 3.0
CHECKOV_OPTIONS = [
    "--soft-fail",  # the raw (unbuilt) kustomize bases have findings the overlays fix
    "--skip-download",
    "--compact",
    "--quiet",
    "--enable-secret-scan-all-files",
    "--output",
    "json",
]
CHECKOV_ENV = {"CKV_SKIP_PACKAGE_UPDATE_CHECK": "1", "LOG_LEVEL": "ERROR"}


def validator_cases(
    repo: Path, environment: Path, scratch: Path
) -> dict[str, Callable[[], tuple[float, float]]]:
    """Each validator alone, on the same repository (its wall and CPU seconds)."""
    bin_dir = Path(sys.executable).parent
    checkov = tool("checkov")
    overlays = sorted(p for p in (repo / "deploy" / "k8s" / "overlays").iterdir() if p.is_dir())
    env = {**os.environ, **CHECKOV_ENV}
    package = next(p.name for p in (repo / "src").iterdir() if (p / "feature_store.py").is_file())

    def kustomize() -> tuple[float, float]:
        wall = cpu = 0.0
        for overlay in overlays:
            w, c = timed_command(["kubectl", "kustomize", str(overlay)])
            wall, cpu = wall + w, cpu + c
        return wall, cpu

    def feast() -> tuple[float, float]:
        copy = scratch / "feast" / "feature_repo"
        shutil.rmtree(copy.parent, ignore_errors=True)
        shutil.copytree(repo / "feature_repo", copy)
        run_env = {
            **os.environ,
            "FEATURE_REPO_DIR": str(copy),
            "PYTHONPATH": str(repo / "src"),
            "PATH": f"{environment / 'bin'}{os.pathsep}{os.environ['PATH']}",
        }
        end = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        python = str(environment / "bin" / "python")
        steps = [
            [python, "-m", f"{package}.feature_store", "write-source", "--rows", "500"],
            [str(environment / "bin" / "feast"), "-c", str(copy), "apply"],
            [str(environment / "bin" / "feast"), "-c", str(copy), "materialize-incremental", end],
        ]
        wall = cpu = 0.0
        for step in steps:
            w, c = timed_command(step, cwd=repo, env=run_env)
            wall, cpu = wall + w, cpu + c
        return wall, cpu

    frameworks = ["dockerfile", "kubernetes", "github_actions", "secrets"]
    workflows = sorted(
        str(p.relative_to(repo)) for p in (repo / ".github" / "workflows").glob("*.yml")
    )
    return {
        "checkov (4 frameworks, one run)": lambda: timed_command(
            [checkov, "-d", ".", "--framework", *frameworks, *CHECKOV_OPTIONS],
            cwd=repo,
            env=env,
        ),
        "kubectl kustomize (every overlay)": kustomize,
        "hadolint": lambda: timed_command([str(bin_dir / "hadolint"), "Dockerfile"], cwd=repo),
        "actionlint + shellcheck": lambda: timed_command(
            [str(bin_dir / "actionlint"), "-shellcheck", str(bin_dir / "shellcheck"), *workflows],
            cwd=repo,
        ),
        "promtool check + test rules": lambda: timed_command(
            ["sh", "-c", "promtool check rules *rules.yaml && promtool test rules *.test.yaml"],
            cwd=repo / "deploy" / "monitoring",
        ),
        "feast apply + materialize": feast,
    }


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0])
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)
    started = time.time()
    environment = environment_info()
    with scratch_dir("check", keep=args.keep) as scratch:
        from mlgen.environments import shared_environment

        repo = scratch / "bench-model"
        run([tool("mlgen"), "new", str(repo), "--backend", "fastapi", "--defaults"])
        print("building the repository's environment (untimed)", file=sys.stderr)
        env_dir = shared_environment(repo)
        counter = iter(range(1_000_000))
        mlgen = tool("mlgen")

        def mlgen_check(cache: Path) -> tuple[float, float]:
            # A failed check fails the benchmark (run() raises with mlgen's output).
            env = {**os.environ, "MLGEN_CHECK_CACHE": str(cache), "CI": "1"}
            return timed_command([mlgen, "check", str(repo)], env=env)

        def cold() -> tuple[float, float]:
            return mlgen_check(scratch / "caches" / f"cold-{next(counter)}")

        warm_cache = scratch / "caches" / "warm"

        def warm() -> tuple[float, float]:
            if not warm_cache.exists():
                mlgen_check(warm_cache)  # fills it, untimed
            return mlgen_check(warm_cache)

        def one_file_changed() -> tuple[float, float]:
            if not warm_cache.exists():
                mlgen_check(warm_cache)
            dockerfile = repo / "Dockerfile"
            dockerfile.write_text(
                dockerfile.read_text() + f"# benchmark edit {next(counter)}\n", encoding="utf-8"
            )
            return mlgen_check(warm_cache)

        figures = {
            "mlgen check (cold)": cold,
            "mlgen check (warm)": warm,
            "mlgen check (one file changed)": one_file_changed,
        }
        validators = validator_cases(repo, env_dir, scratch)
        measured = interleaved({**figures, **validators}, repeats)
        sum_runs = [
            sum(measured[name].runs[index] for name in validators) for index in range(repeats)
        ]
        sum_cpu = [
            sum(measured[name + CPU_SUFFIX].runs[index] for name in validators)
            for index in range(repeats)
        ]
        measured["validators one after another (sum)"] = Measurement(sum_runs)
        measured["validators one after another (sum)" + CPU_SUFFIX] = Measurement(sum_cpu)
        slowest = max(validators, key=lambda name: measured[name].median)
        cold_s = measured["mlgen check (cold)"].median
        warm_s = measured["mlgen check (warm)"].median
        changed_s = measured["mlgen check (one file changed)"].median
        comparisons = [
            comparison(
                "cold vs the validators one after another",
                "mlgen check (cold)",
                cold_s,
                "validators one after another (sum)",
                statistics.median(sum_runs),
                target=1.0,
                higher_is_better=False,
            ),
            comparison(
                "cold vs the validators one after another" + CPU_SUFFIX,
                "mlgen check (cold)" + CPU_SUFFIX,
                measured["mlgen check (cold)" + CPU_SUFFIX].median,
                "validators one after another (sum)" + CPU_SUFFIX,
                statistics.median(sum_cpu),
                target=1.0,
                higher_is_better=False,
            ),
            comparison(
                "cold vs the slowest validator alone",
                "mlgen check (cold)",
                cold_s,
                slowest,
                measured[slowest].median,
                target=1.5,
                higher_is_better=False,
            ),
            comparison(
                "cold wall time vs the 20 s target",
                "mlgen check (cold)",
                cold_s,
                "target",
                COLD_TARGET_S,
                target=1.0,
                higher_is_better=False,
            ),
            comparison(
                "warm wall time vs the 3 s target",
                "mlgen check (warm)",
                warm_s,
                "target",
                WARM_TARGET_S,
                target=1.0,
                higher_is_better=False,
            ),
            comparison(
                "one file changed vs cold",
                "mlgen check (one file changed)",
                changed_s,
                "mlgen check (cold)",
                cold_s,
                target=1.0,
                higher_is_better=False,
            ),
        ]
        write_result(
            NAME,
            args,
            started,
            environment,
            {"repeats": repeats, "backend": "fastapi", "edited_file": "Dockerfile"},
            measured,
            comparisons,
            {"every check passed": "yes (mlgen check exited 0 in every run)"},
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
