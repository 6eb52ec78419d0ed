"""Fleet update: the scaling curve (1, 5, 20, 50 repos) of one ``mlgen update`` call,
against sequential single-repo calls and against one ``copier update``.

One repository is rendered from template v1, committed, edited locally and committed, and
copied (untimed) into fleets; each timed run starts from fresh copies and brings them to v2:

* scaling: ``mlgen update --vcs-ref v2 FOLDER`` once per fleet size (``--sizes``, default
  1,5,20,50): total seconds and seconds per repository;
* one call vs sequential: for fleets of 20 and more (``--sequential-from``), the same
  fleet with ``mlgen update --vcs-ref v2 REPO`` once per repository, one after the other;
* per repository vs copier: a fleet's seconds per repository against one
  ``copier update --trust --defaults --vcs-ref v2 REPO`` of a single copy;
* in-process, ``update_fleet(repos, jobs=None)`` vs ``jobs=1`` at 20 repos (or the largest
  size) shows what the parallel workers alone bring (no interpreter start-ups).

The result also records how many cores were really usable (``parallel_capacity``: the
same CPU loop alone and on every core at once), before and after: on a shared machine
the CPU-bound part of the work cannot go faster across cores than that.

Wall-clock time only: the CPU time of the parallel workers cannot be counted (they are
children of multiprocessing's fork server, which nobody waits for).

Target: the single call is >= 1.5x faster than sequential calls. Run:
``python benchmarks/fleet.py`` (``--quick``: sizes 1,2, one repeat).
"""

from __future__ import annotations

import os
import shutil
import sys
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
    scratch_dir,
    timed,
    timed_command,
    tool,
    write_result,
)
from _fixtures import ANSWERS, check_updated, edited_repo, versioned_template

TARGET = 1.5
NAME = "fleet"


def _sizes(text: str) -> list[int]:
    sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    if not sizes or sizes[0] < 1:
        raise SystemExit(f"--sizes {text!r}: give positive whole numbers, e.g. 1,5,20,50")
    return sizes


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=None, help="fleet sizes (default 1,5,20,50)")
    parser.add_argument(
        "--sequential-from",
        type=int,
        default=None,
        help="compare with sequential calls from this size on (default 20; quick: 2)",
    )
    parser.add_argument(
        "--no-in-process", action="store_true", help="skip the in-process comparison"
    )
    args = parser.parse_args()
    sizes = _sizes(args.sizes or ("1,2" if args.quick else "1,5,20,50"))
    sequential_from = args.sequential_from or (2 if args.quick else 20)
    repeats = args.repeats or 1
    started = time.time()
    environment = environment_info()
    with scratch_dir("fleet", keep=args.keep) as scratch:
        from mlgen.fleet import UpdateOptions, update_fleet

        template = versioned_template(scratch / "template")
        print("rendering the repository at v1", file=sys.stderr)
        pristine = edited_repo(template, scratch / "pristine" / "model", ANSWERS)
        counter = iter(range(1_000_000))

        def fresh_fleet(size: int) -> list[Path]:
            folder = scratch / "runs" / f"run-{next(counter)}"
            for index in range(size):
                shutil.copytree(pristine, folder / f"model-{index:02d}", symlinks=True)
            return sorted(folder.iterdir())

        def finish(label: str, repos: list[Path]) -> None:
            for repo in repos:
                verdict = check_updated(repo)
                if verdict != "ok":
                    raise RuntimeError(f"{label} left {repo} wrong: {verdict}")
            shutil.rmtree(repos[0].parent)

        def one_call(size: int) -> Callable[[], float]:
            def case() -> float:
                repos = fresh_fleet(size)
                seconds, _ = timed_command(
                    [tool("mlgen"), "update", "--vcs-ref", "v2", str(repos[0].parent)]
                )
                finish("one call", repos)
                return seconds

            return case

        def sequential_calls(size: int) -> Callable[[], float]:
            def case() -> float:
                repos = fresh_fleet(size)
                seconds, _ = timed(
                    lambda: [
                        run([tool("mlgen"), "update", "--vcs-ref", "v2", str(repo)])
                        for repo in repos
                    ]
                )
                finish("sequential calls", repos)
                return seconds

            return case

        def copier_update() -> float:
            [repo] = fresh_fleet(1)
            command = [tool("copier"), "update", "--trust", "--defaults", "--quiet"]
            seconds, _ = timed_command([*command, "--vcs-ref", "v2", str(repo)])
            shutil.rmtree(repo.parent)
            return seconds

        def in_process(size: int, jobs: int | None) -> Callable[[], float]:
            def case() -> float:
                repos = fresh_fleet(size)
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
        copier_label = "copier update of one repo"
        cases: dict[str, Callable[[], float]] = {copier_label: copier_update}
        for size in sizes:
            cases[f"mlgen update, {size} repos in one call"] = one_call(size)
            if size >= sequential_from:
                cases[f"{size} sequential mlgen update calls"] = sequential_calls(size)
        measurements = interleaved(cases, repeats)
        copier_seconds = measurements[copier_label].median
        comparisons = []
        scaling = {}
        for size in sizes:
            figure = f"mlgen update, {size} repos in one call"
            total = measurements[figure].median
            scaling[str(size)] = {"seconds": total, "seconds_per_repo": total / size}
            comparisons.append(
                comparison(
                    f"fleet of {size}: per repo vs one copier update",
                    f"{figure}, per repo",
                    total / size,
                    copier_label,
                    copier_seconds,
                    target=1.5,
                    higher_is_better=False,
                    unit="s",
                )
            )
            baseline = f"{size} sequential mlgen update calls"
            if baseline in measurements:
                comparisons.append(
                    comparison(
                        f"fleet of {size}: one call vs sequential calls",
                        figure,
                        total,
                        baseline,
                        measurements[baseline].median,
                        target=TARGET,
                        higher_is_better=True,
                        invert=True,
                    )
                )
        if not args.no_in_process:
            size = 20 if 20 in sizes else sizes[-1]
            in_figure = f"update_fleet({size} repos, jobs=default) in-process"
            in_baseline = f"update_fleet({size} repos, jobs=1) in-process"
            print(f"{in_figure} vs {in_baseline}", file=sys.stderr)
            measured = interleaved(
                {in_figure: in_process(size, None), in_baseline: in_process(size, 1)}, repeats
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
        curve = ", ".join(
            f"{size}: {row['seconds']:.1f} s ({row['seconds_per_repo']:.2f} s/repo)"
            for size, row in scaling.items()
        )
        write_result(
            NAME,
            args,
            started,
            environment,
            {
                "sizes": sizes,
                "sequential_from": sequential_from,
                "repeats": repeats,
                "jobs": os.cpu_count(),
                "usable_cores_measured_before_and_after": capacity,
                "from": "v1",
                "to": "v2",
                "scaling": scaling,
            },
            measurements,
            comparisons,
            {
                "updated repos checked": "v2 applied and local edits kept in every repo of "
                "every run",
                "scaling curve (one call)": curve,
                "usable cores (before, after)": f"{capacity} of {os.cpu_count()} (a CPU-bound "
                "loop alone vs on every core; updates also wait on the disk, which "
                "workers overlap)",
            },
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
