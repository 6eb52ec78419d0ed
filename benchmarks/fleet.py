"""Fleet update: 20 repos with one ``mlgen update`` call vs 20 sequential single-repo calls.

Twenty repositories (different model names) are rendered from template v1, committed,
edited locally and committed. Each timed run starts from a fresh copy of all of them
(copied untimed) and brings them to v2:

* figure: ``mlgen update --vcs-ref v2 FOLDER`` once: the fleet in parallel, one worker
  process per core (the command's default ``--jobs``);
* baseline: ``mlgen update --vcs-ref v2 REPO`` twenty times, one after the other.

In-process, ``update_fleet(repos, jobs=None)`` vs ``update_fleet(repos, jobs=1)`` shows
what the parallel workers alone bring (no interpreter start-ups on either side).

The result also records how many cores were really usable (``parallel_capacity``: the
same CPU loop alone and on every core at once), before and after: on a shared machine
the CPU-bound part of the work cannot go faster across cores than that.

Wall-clock time only: the CPU time of the parallel workers cannot be counted (they are
children of multiprocessing's fork server, which nobody waits for).

Target: the single call is >= 1.5x faster. Run: ``python benchmarks/fleet.py``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import (
    base_parser,
    comparison,
    environment_info,
    interleaved,
    parallel_capacity,
    run,
    timed,
    timed_command,
    tool,
    write_result,
)
from _fixtures import ANSWERS, check_updated, edited_repo, versioned_template

TARGET = 1.5
NAME = "fleet"


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=None, help="fleet size (default 20)")
    parser.add_argument(
        "--no-in-process", action="store_true", help="skip the in-process comparison"
    )
    args = parser.parse_args()
    size = args.repos or (2 if args.quick else 20)
    repeats = args.repeats or (1 if args.quick else 3)
    started = time.time()
    environment = environment_info()
    scratch = Path(tempfile.mkdtemp(prefix="mlgen-bench-fleet-"))
    try:
        from mlgen.fleet import UpdateOptions, update_fleet

        template = versioned_template(scratch / "template")
        pristine = scratch / "pristine"
        print(f"rendering {size} repositories at v1", file=sys.stderr)
        for index in range(size):
            name = f"model-{index:02d}"
            edited_repo(template, pristine / name, {**ANSWERS, "model_name": name})
        counter = iter(range(1_000_000))

        def fresh_fleet() -> list[Path]:
            folder = scratch / "runs" / f"run-{next(counter)}"
            shutil.copytree(pristine, folder, symlinks=True)
            return sorted(folder.iterdir())

        def finish(label: str, repos: list[Path]) -> None:
            for repo in repos:
                verdict = check_updated(repo)
                if verdict != "ok":
                    raise RuntimeError(f"{label} left {repo} wrong: {verdict}")
            shutil.rmtree(repos[0].parent)

        def one_call() -> float:
            repos = fresh_fleet()
            seconds, _ = timed_command(
                [tool("mlgen"), "update", "--vcs-ref", "v2", str(repos[0].parent)]
            )
            finish("one call", repos)
            return seconds

        def sequential_calls() -> float:
            repos = fresh_fleet()
            seconds, _ = timed(
                lambda: [
                    run([tool("mlgen"), "update", "--vcs-ref", "v2", str(repo)]) for repo in repos
                ]
            )
            finish("sequential calls", repos)
            return seconds

        def in_process(jobs: int | None) -> Callable[[], float]:
            def case() -> float:
                repos = fresh_fleet()
                outcomes = []
                seconds, _ = timed(
                    lambda: outcomes.extend(update_fleet(repos, UpdateOptions(vcs_ref="v2"), jobs))
                )
                bad = [o for o in outcomes if o.result != "updated"]
                if bad:
                    raise RuntimeError(f"in-process fleet update failed: {bad[0]}")
                finish(f"in-process jobs={jobs}", repos)
                return seconds

            return case

        capacity = [parallel_capacity()]
        print(f"usable cores right now: {capacity[0]} of {os.cpu_count()}", file=sys.stderr)
        figure = f"mlgen update, {size} repos in one call (parallel)"
        baseline = f"{size} sequential mlgen update calls"
        print(f"{figure} vs {baseline}", file=sys.stderr)
        measurements = interleaved({figure: one_call, baseline: sequential_calls}, repeats)
        comparisons = [
            comparison(
                f"fleet of {size}, subprocess",
                figure,
                measurements[figure].median,
                baseline,
                measurements[baseline].median,
                target=TARGET,
                higher_is_better=True,
                invert=True,
            )
        ]
        if not args.no_in_process:
            in_figure = f"update_fleet({size} repos, jobs=default) in-process"
            in_baseline = f"update_fleet({size} repos, jobs=1) in-process"
            print(f"{in_figure} vs {in_baseline}", file=sys.stderr)
            measured = interleaved(
                {in_figure: in_process(None), in_baseline: in_process(1)}, repeats
            )
            measurements.update(measured)
            comparisons.append(
                comparison(
                    f"fleet of {size}, in-process (parallelism alone)",
                    in_figure,
                    measured[in_figure].median,
                    in_baseline,
                    measured[in_baseline].median,
                    target=TARGET,
                    higher_is_better=True,
                    invert=True,
                )
            )
        capacity.append(parallel_capacity())
        write_result(
            NAME,
            args,
            started,
            environment,
            {
                "repos": size,
                "repeats": repeats,
                "jobs": os.cpu_count(),
                "usable_cores_measured_before_and_after": capacity,
                "from": "v1",
                "to": "v2",
            },
            measurements,
            comparisons,
            {
                "updated repos checked": "v2 applied and local edits kept in every repo of "
                "every run",
                "usable cores (before, after)": f"{capacity} of {os.cpu_count()} (a CPU-bound "
                "loop alone vs on every core; updates also wait on the disk, which "
                "workers overlap)",
            },
        )
    finally:
        if args.keep:
            print(f"scratch kept: {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
