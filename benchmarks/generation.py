"""Generation: ``mlgen new`` vs plain ``copier copy --trust --defaults``.

Same template source, same answers, same destination layout. Two template sources: a
git repository with tags (what a platform team publishes; copier clones it) and a plain
folder (how the mlgen wheel ships the template). Each is measured

* as subprocesses (``mlgen new ...`` vs ``copier copy ...``): interpreter start-up and
  imports count for both, as a user sees it;
* in-process (``check_answers`` + ``generate`` vs ``copier.run_copy``), after a warm-up:
  the render alone.

Target: mlgen <= 1.15x copier. Run: ``python benchmarks/generation.py``.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from _common import (
    base_parser,
    compare,
    environment_info,
    interleaved,
    scratch_dir,
    timed,
    timed_command,
    tool,
    tree_differences,
    write_result,
)
from _fixtures import ANSWERS, data_flags, plain_template, versioned_template

TARGET = 1.15
NAME = "generation"


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=int, default=1, help="dropped rounds (default 1)")
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 7)
    warmup = 0 if args.quick else args.warmup
    started = time.time()
    environment = environment_info()
    with scratch_dir("generation", keep=args.keep) as scratch:
        sources = {
            "git template": versioned_template(scratch / "git"),
            "folder template": plain_template(scratch),
        }
        import copier

        from mlgen.generate import check_answers, generate

        counter = iter(range(1_000_000))

        def destination() -> Path:
            path = scratch / "out" / f"repo-{next(counter)}"
            path.parent.mkdir(exist_ok=True)
            return path

        outputs: dict[str, Path] = {}

        def keep_first(label: str, path: Path) -> None:
            if label not in outputs:
                outputs[label] = path
            else:
                shutil.rmtree(path)

        def mlgen_cli(source: Path, label: str) -> Callable[[], tuple[float, float]]:
            def case() -> tuple[float, float]:
                dest = destination()
                command = [
                    tool("mlgen"),
                    "new",
                    str(dest),
                    "--template",
                    str(source),
                    "--defaults",
                    *data_flags(ANSWERS),
                ]
                seconds = timed_command(command)
                keep_first(label, dest)
                return seconds

            return case

        def copier_cli(source: Path, label: str) -> Callable[[], tuple[float, float]]:
            def case() -> tuple[float, float]:
                dest = destination()
                command = [
                    tool("copier"),
                    "copy",
                    "--trust",
                    "--defaults",
                    "--quiet",
                    *data_flags(ANSWERS),
                    str(source),
                    str(dest),
                ]
                seconds = timed_command(command)
                keep_first(label, dest)
                return seconds

            return case

        def mlgen_api(source: Path, label: str) -> Callable[[], tuple[float, float]]:
            def case() -> tuple[float, float]:
                dest = destination()
                seconds = timed(
                    lambda: (
                        check_answers(ANSWERS, source),
                        generate(dest, source, ANSWERS, defaults=True),
                    )
                )
                keep_first(label, dest)
                return seconds

            return case

        def copier_api(source: Path, label: str) -> Callable[[], tuple[float, float]]:
            def case() -> tuple[float, float]:
                dest = destination()
                seconds = timed(
                    lambda: copier.run_copy(
                        str(source), dest, dict(ANSWERS), defaults=True, unsafe=True, quiet=True
                    )
                )
                keep_first(label, dest)
                return seconds

            return case

        measurements = {}
        comparisons = []
        checks: dict[str, object] = {}
        for source_label, source in sources.items():
            for mode, (figure_case, baseline_case) in {
                "subprocess": (mlgen_cli, copier_cli),
                "in-process": (mlgen_api, copier_api),
            }.items():
                figure = f"mlgen new ({mode}, {source_label})"
                baseline = f"copier copy ({mode}, {source_label})"
                print(f"{figure} vs {baseline}", file=sys.stderr)
                measured = interleaved(
                    {
                        figure: figure_case(source, figure),
                        baseline: baseline_case(source, baseline),
                    },
                    repeats,
                    warmup=warmup,
                )
                measurements.update(measured)
                comparisons += compare(
                    f"generation, {mode}, {source_label}",
                    measured,
                    figure,
                    baseline,
                    target=TARGET,
                    higher_is_better=False,
                )
                differences = tree_differences(outputs[figure], outputs[baseline])
                checks[f"identical output ({mode}, {source_label})"] = (
                    "yes" if not differences else f"NO: {differences}"
                )
        write_result(
            NAME,
            args,
            started,
            environment,
            {
                "repeats": repeats,
                "warmup_rounds": warmup,
                "answers": ANSWERS,
                "template_sources": {k: str(v) for k, v in sources.items()},
            },
            measurements,
            comparisons,
            checks,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
