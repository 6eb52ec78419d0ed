"""Update: ``mlgen update`` vs ``copier update --trust --defaults`` of a repo with local edits.

A versioned template (tags v1 and v2, built like ``tests/versioned.py``) renders one
repository at v1, which is committed, edited locally (edits that merge cleanly with the
v1 -> v2 change) and committed again. Every timed run starts from a fresh copy of that
repository (copied untimed), so mlgen and copier update identical repositories to v2.

Measured as subprocesses (``mlgen update --vcs-ref v2 REPO`` vs
``copier update --trust --defaults --vcs-ref v2 REPO``) and in-process
(``plan_update`` + ``apply_plan`` vs ``copier.run_update``), alternating.

Target: mlgen <= 1.5x copier. Run: ``python benchmarks/update.py``.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import (
    base_parser,
    compare,
    environment_info,
    interleaved,
    timed,
    timed_command,
    tool,
    tree_differences,
    write_result,
)
from _fixtures import (
    ANSWERS,
    check_updated,
    edited_repo,
    git,
    versioned_template,
)

TARGET = 1.5
NAME = "update"


def prepared_repo(scratch: Path) -> Path:
    """The repository every run starts from: v1, committed, with committed local edits."""
    template = versioned_template(scratch / "template")
    return edited_repo(template, scratch / "pristine" / "bench-model", ANSWERS)


def same_result(mlgen_repo: Path, copier_repo: Path) -> str:
    """Whether both updates left the same files, and if not, whose files differ.

    Plugin-contributed files can differ for one reason: a plugin changed between the
    generation at v1 and the update (say, someone edits the checkout's plugins while the
    benchmark runs). mlgen applies such a plugin upgrade; copier cannot (it re-renders
    the old template with the plugins installed now, copier issue #1170).
    """
    # The generation record: mlgen records the v2 generation it merged against; copier
    # (whose task only records on `copier copy`) keeps the v1 record. Not a user file.
    differences = [
        path
        for path in tree_differences(mlgen_repo, copier_repo)
        if path != ".mlgen/generated.json.gz"
    ]
    if not differences:
        return "yes"
    manifest = json.loads((mlgen_repo / ".mlgen" / "plugins.json").read_text())
    plugin_files = set(manifest.get("files", {})) | {".mlgen/plugins.json"}
    others = [path for path in differences if path not in plugin_files]
    if not others:
        return (
            f"template files identical; plugin files differ ({differences}): the plugin "
            "changed since v1 was generated; mlgen applied that, copier cannot (#1170)"
        )
    return f"NO: differs in {differences}"


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=int, default=1, help="dropped rounds (default 1)")
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 7)
    warmup = 0 if args.quick else args.warmup
    started = time.time()
    environment = environment_info()
    scratch = Path(tempfile.mkdtemp(prefix="mlgen-bench-update-"))
    try:
        import copier

        from mlgen.update import apply_plan, plan_update

        pristine = prepared_repo(scratch)
        counter = iter(range(1_000_000))
        outputs: dict[str, Path] = {}
        checks: dict[str, object] = {}

        def fresh_copy() -> Path:
            copy = scratch / "runs" / f"run-{next(counter)}" / "bench-model"
            shutil.copytree(pristine, copy, symlinks=True)
            return copy

        def finish(label: str, repo: Path) -> None:
            verdict = check_updated(repo)
            if verdict != "ok":
                raise RuntimeError(f"{label} left {repo} wrong: {verdict}")
            if label not in outputs:
                outputs[label] = repo
            else:
                shutil.rmtree(repo.parent)

        def mlgen_cli(label: str) -> Callable[[], tuple[float, float]]:
            def case() -> tuple[float, float]:
                repo = fresh_copy()
                seconds = timed_command([tool("mlgen"), "update", "--vcs-ref", "v2", str(repo)])
                finish(label, repo)
                return seconds

            return case

        def copier_cli(label: str) -> Callable[[], tuple[float, float]]:
            def case() -> tuple[float, float]:
                repo = fresh_copy()
                seconds = timed_command(
                    [
                        tool("copier"),
                        "update",
                        "--trust",
                        "--defaults",
                        "--quiet",
                        "--vcs-ref",
                        "v2",
                        str(repo),
                    ]
                )
                finish(label, repo)
                return seconds

            return case

        def mlgen_api(label: str) -> Callable[[], tuple[float, float]]:
            def case() -> tuple[float, float]:
                repo = fresh_copy()
                seconds = timed(lambda: apply_plan(plan_update(repo, vcs_ref="v2")))
                finish(label, repo)
                return seconds

            return case

        def copier_api(label: str) -> Callable[[], tuple[float, float]]:
            def case() -> tuple[float, float]:
                repo = fresh_copy()
                seconds = timed(
                    lambda: copier.run_update(
                        repo, vcs_ref="v2", defaults=True, overwrite=True, unsafe=True, quiet=True
                    )
                )
                finish(label, repo)
                return seconds

            return case

        measurements = {}
        comparisons = []
        for mode, (figure_case, baseline_case) in {
            "subprocess": (mlgen_cli, copier_cli),
            "in-process": (mlgen_api, copier_api),
        }.items():
            figure, baseline = f"mlgen update ({mode})", f"copier update ({mode})"
            print(f"{figure} vs {baseline}", file=sys.stderr)
            measured = interleaved(
                {figure: figure_case(figure), baseline: baseline_case(baseline)},
                repeats,
                warmup=warmup,
            )
            measurements.update(measured)
            comparisons += compare(
                f"update, {mode}",
                measured,
                figure,
                baseline,
                target=TARGET,
                higher_is_better=False,
            )
            checks[f"same result as copier ({mode})"] = same_result(
                outputs[figure], outputs[baseline]
            )
        checks["updated repos checked"] = "v2 applied and local edits kept in every run"
        checks["files changed by the update"] = git(
            outputs["mlgen update (subprocess)"], "status", "--porcelain"
        ).splitlines()
        write_result(
            NAME,
            args,
            started,
            environment,
            {
                "repeats": repeats,
                "warmup_rounds": warmup,
                "answers": ANSWERS,
                "from": "v1",
                "to": "v2",
                "local_edits": [
                    "README.md title",
                    ".gitignore top lines",
                    "src/<pkg>/drift.py DEFAULT_BINS",
                    "NOTES.md (new)",
                ],
            },
            measurements,
            comparisons,
            checks,
        )
    finally:
        if args.keep:
            print(f"scratch kept: {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
