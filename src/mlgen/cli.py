"""The ``mlgen`` command line: a thin layer over the modules that do the work.

Errors from those modules (:class:`mlgen.errors.MlgenError`) become one
``Error: ...`` line and exit status 1; ``--traceback`` shows the full traceback.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from mlgen import __version__
from mlgen.errors import MlgenError
from mlgen.plugins import PluginLoadWarning, get_registry

if TYPE_CHECKING:
    from mlgen.schema_infer import Inferred

_F = TypeVar("_F", bound=Callable[..., Any])


class _ErrorReportingGroup(click.Group):
    """Turns domain errors into ``Error: ...`` lines unless ``--traceback`` was given."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MlgenError as error:
            if ctx.find_root().params.get("traceback"):
                raise
            raise click.ClickException(str(error)) from error


@click.group(cls=_ErrorReportingGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="mlgen")
@click.option("--traceback", is_flag=True, help="Show the Python traceback of an error.")
def cli(traceback: bool) -> None:
    """Give every ML model its own production-ready repository."""
    original = warnings.showwarning

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:
        if issubclass(category, PluginLoadWarning):  # one readable line, no source location
            click.echo(f"Warning: {message}", err=True)
        else:
            original(message, category, filename, lineno, file, line)

    warnings.showwarning = show


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def backends(as_json: bool) -> None:
    """List the installed serving backends."""
    from mlgen.frameworks import frameworks_for

    registry = get_registry()
    rows = [
        {
            "name": registered.backend.name,
            "description": registered.backend.description,
            "format": registered.backend.export_format,
            "formats": list(registered.backend.served_formats()),
            "frameworks": frameworks_for(registered.backend),
            "distribution": registered.plugin.distribution,
            "version": registered.plugin.version,
            "api_version": registered.plugin.api_version,
        }
        for registered in (registry.backends[name] for name in registry.backend_names())
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("No serving backends are installed.")
        return
    headers = ["name", "format", "distribution", "version", "api", "frameworks", "description"]
    keys = ("name", "formats", "distribution", "version", "api_version", "frameworks")
    table = [[_cell(row[key]) for key in keys] + [str(row["description"])] for row in rows]
    for line in _format_table(headers, table):
        click.echo(line)


def _cell(value: object) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def _format_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """Left-aligned columns; the last column is not padded."""
    widths = [max(len(cells[i]) for cells in [headers, *rows]) for i in range(len(headers))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()
        for cells in [headers, *rows]
    ]


def _answer_option(help_text: str) -> Callable[[_F], _F]:
    return click.option(
        "--answer",
        "-d",
        "answers",
        multiple=True,
        metavar="KEY=VALUE",
        help=help_text,
    )


_TABLE_OPTIONS = (
    ("--label", "COLUMN", "The label column (binary classification)."),
    (
        "--positive-class",
        "VALUE",
        "The label value that is class 1 (default: 1/True, else the rarer one).",
    ),
    ("--entity", "COLUMN", "Entity key column (default: the row number)."),
    ("--timestamp", "COLUMN", "Event timestamp column (default: one fixed time)."),
)


def _table_options(function: _F) -> _F:
    """The options that say how to read the user's table (``new --data``, ``schema infer``)."""
    function = click.option(
        "--exclude",
        multiple=True,
        metavar="COLUMN",
        help="A column that is not a model input; repeatable.",
    )(function)
    for name, metavar, help_text in reversed(_TABLE_OPTIONS):
        function = click.option(name, metavar=metavar, help=help_text)(function)
    return function


def _infer(source: str, table: dict[str, Any], repo: Path | None = None) -> Inferred:
    """Infer the schema answers from the table at ``source`` (``table``: the options of
    :func:`_table_options`)."""
    from mlgen.schema_infer import infer_answers

    if not table["label"]:
        raise click.UsageError("--label COLUMN is required with a table: the column to predict")
    return infer_answers(source, repo=repo, **table)


def _show(inferred: Inferred) -> None:
    """Print what was inferred: a dataset line and a table of the features."""
    from mlgen.schema_infer import summary

    head, headers, rows = summary(inferred)
    click.echo(head)
    for line in _format_table(headers, rows):
        click.echo(f"  {line}")


@cli.command()
@click.argument("destination", type=click.Path(path_type=Path, file_okay=False))
@click.option("--backend", "-b", help="Serving backend (see `mlgen backends`).")
@click.option(
    "--data",
    "data_path",
    metavar="PATH",
    help="Your table (Parquet or CSV, a path or URL): the schema is inferred from it "
    "(default: the demo table).",
)
@_table_options
@_answer_option("Answer a template question; repeatable.")
@click.option(
    "--defaults", is_flag=True, help="Use the default for every question not answered (no prompts)."
)
@click.option(
    "--template",
    "template",
    metavar="SRC",
    help="Template path or git URL (default: the template shipped with mlgen).",
)
@click.option("--vcs-ref", metavar="REF", help="Template git ref (tag, branch or commit).")
def new(
    destination: Path,
    backend: str | None,
    data_path: str | None,
    answers: tuple[str, ...],
    defaults: bool,
    template: str | None,
    vcs_ref: str | None,
    **table: Any,
) -> None:
    """Generate a model repository in DESTINATION (a new or empty folder).

    With --data PATH --label COLUMN the feature schema is inferred from your table and
    printed; without --data the repository trains on the demo table.

    \b
    Examples:
      mlgen new churn --defaults
      mlgen new fraud --backend fastapi -d model_name=fraud-score --defaults
      mlgen new cancer --data breast_cancer.csv --label target --defaults
      mlgen new events --data s3://bucket/events.parquet --label churned \\
        --entity customer_id --timestamp event_timestamp --defaults
    """
    from mlgen.generate import (
        SCHEMA_ANSWERS,
        check_answers,
        generate,
        parse_answers,
        with_inferred,
    )
    from mlgen.template import default_template

    chosen: dict[str, Any] = parse_answers(answers)
    inferred = None
    if data_path is not None:
        with_inferred(chosen, dict.fromkeys(SCHEMA_ANSWERS))  # refuses -d KEY for them
        inferred = _infer(data_path, table)
        chosen = with_inferred(chosen, inferred.answers)
    elif any(table.values()):
        raise click.UsageError(
            "--label, --positive-class, --entity, --timestamp and --exclude need --data PATH"
        )
    if backend is not None:
        chosen["serving_backend"] = backend
    source: Path | str = template if template else default_template()
    check_answers(chosen, Path(source) if Path(str(source)).is_dir() else default_template())
    if inferred is not None:
        _show(inferred)
    created = generate(destination, source, chosen, defaults=defaults, vcs_ref=vcs_ref)
    click.echo(f"Created {created}")
    if inferred is None and not chosen.get("data_source"):
        click.echo(
            "Data: the synthetic churn demo table; for your own: mlgen new DIR --data PATH "
            "--label COLUMN (or mlgen schema infer PATH --label COLUMN in the repository)"
        )


@cli.group()
def schema() -> None:
    """The feature schema of a repository (src/<package>/features.yaml)."""


@schema.command("infer")
@click.argument("source", metavar="PATH")
@_table_options
@click.option(
    "--repo",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=".",
    show_default=True,
    help="The repository whose schema is rewritten.",
)
def schema_infer(source: str, repo: Path, **table: Any) -> None:
    """Infer the schema from the table at PATH and rewrite the repository's.

    Rewrites src/<package>/features.yaml and the schema answers in .copier-answers.yml
    (and every file rendered from them), as `mlgen update -d ...` with the inferred
    answers would: the tree must be clean, and on any error nothing is written.

    \b
    Example:
      mlgen schema infer data/penguins.csv --label adelie --exclude species
    """
    from mlgen.schema_infer import rewrite_schema

    inferred = _infer(source, table, repo.resolve())
    changes = rewrite_schema(repo, inferred.answers)
    _show(inferred)
    for action, path in changes:
        click.echo(f"{action:13} {path}")


@cli.command()
@click.argument(
    "path",
    required=False,
    default=".",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
)
@click.option("--only", multiple=True, metavar="NAME", help="Run only this check; repeatable.")
@click.option("--skip", multiple=True, metavar="NAME", help="Do not run this check; repeatable.")
@click.option(
    "--format",
    "report_format",
    type=click.Choice(["text", "json", "junit", "sarif"]),
    default="text",
    show_default=True,
    help="Report format: text lines, JSON, JUnit XML or SARIF 2.1.0.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the report to this file (default: standard output).",
)
@click.option(
    "--python",
    "python",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Interpreter with the repository's dependencies, for checks that run its "
    "code (default: its .venv, else a shared environment built with uv).",
)
@click.option("--jobs", "-j", type=click.IntRange(1, 64), help="Checks in parallel.")
@click.option(
    "--no-cache", is_flag=True, help="Run every check, even those whose inputs did not change."
)
@click.option("--list", "list_only", is_flag=True, help="List the checks and what they read.")
def check(
    path: Path,
    only: tuple[str, ...],
    skip: tuple[str, ...],
    report_format: str,
    output: Path | None,
    python: Path | None,
    jobs: int | None,
    no_cache: bool,
    list_only: bool,
) -> None:
    """Validate a generated repository (default: the current folder) with real tools.

    Checks run in parallel; one whose inputs did not change since it last passed is
    not run again (its line says cached). Exits 1 when any check fails.

    \b
    Examples:
      mlgen check --skip feast-apply
      mlgen check --format sarif --output mlgen-check.sarif
    """
    import os
    import sys

    from mlgen import live_status
    from mlgen.check_cache import CheckCache
    from mlgen.check_reports import render, summary_line, text_line
    from mlgen.check_runner import (
        CheckOutcome,
        UnknownCheck,
        collect_checks,
        execute,
        validate_names,
    )
    from mlgen.checks import Check
    from mlgen.environments import REPO_PYTHON_ENV

    if python is not None:
        os.environ[REPO_PYTHON_ENV] = str(python.absolute())
    repo = path.resolve()
    checks = collect_checks(repo)
    try:
        validate_names(checks, only, skip)
    except UnknownCheck as error:
        raise click.UsageError(str(error)) from error
    if list_only:
        for found in checks:
            reads = ", ".join(found.inputs) if found.inputs else "every file"
            click.echo(f"{found.name}  {found.description or '-'}  (reads: {reads})")
        return
    # The text report is the live output itself; other formats keep stdout for the report.
    lines_to_stdout = report_format == "text" and output is None
    status = live_status.use(
        live_status.LiveStatus(
            out=sys.stdout if lines_to_stdout else sys.stderr,
            err=sys.stderr,
        )
    )
    color = status.interactive

    class Listener:
        def started(self, found: Check) -> None:
            status.begin(found.name, found.name)

        def finished(self, outcome: CheckOutcome) -> None:
            status.end(outcome.check.name, text_line(outcome, color=color))

    outcomes = execute(
        repo,
        checks,
        only=only,
        skip=skip,
        jobs=jobs,
        cache=None if no_cache else CheckCache(),
        listener=Listener(),
    )
    if all(outcome.status == "skipped" for outcome in outcomes):
        raise MlgenError("no checks ran (every check was skipped)" if checks else "no checks ran")
    status.note(summary_line(outcomes))
    if output is not None:
        output.write_text(render(report_format, outcomes, repo), encoding="utf-8")
    elif report_format != "text":
        click.echo(render(report_format, outcomes, repo), nl=False)
    if any(outcome.status == "fail" for outcome in outcomes):
        raise SystemExit(1)


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--from-file",
    "listing",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="A file listing repositories, one path per line.",
)
@click.option("--vcs-ref", metavar="REF", help="Template version (default: newest tag).")
@click.option("--template", metavar="SRC", help="Template source (default: as recorded).")
@_answer_option("Change an answer, e.g. -d serving_backend=triton; repeatable.")
@click.option(
    "--conflict",
    "conflict_mode",
    type=click.Choice(["inline", "rej"]),
    default="inline",
    show_default=True,
    help="Conflict markers in the file, or the file kept and a .rej beside it.",
)
@click.option("--dry-run", is_flag=True, help="Print what would change; write nothing.")
@click.option("--jobs", "-j", type=click.IntRange(1, 64), help="Repositories in parallel.")
@click.option(
    "--branch",
    metavar="NAME",
    help="Commit each clean update on a new branch NAME (the checkout stays where it was); "
    "a repository with conflicts is left alone.",
)
@click.option("--push", is_flag=True, help="With --branch: push the branch to origin.")
@click.option("--message", "-m", metavar="TEXT", help="With --branch: the commit message.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
def update(
    paths: tuple[Path, ...],
    listing: Path | None,
    vcs_ref: str | None,
    template: str | None,
    answers: tuple[str, ...],
    conflict_mode: str,
    dry_run: bool,
    jobs: int | None,
    branch: str | None,
    push: bool,
    message: str | None,
    as_json: bool,
) -> None:
    """Bring generated repositories to a new template, plugin and runtime version.

    PATHS are repositories (default: the current folder) or folders of them. A
    three-way merge against the recorded last generation keeps every local edit;
    overlapping or touching edits become conflicts (exit 1). Ctrl-C stops cleanly: every
    repository is left untouched or fully updated (exit 130).
    Undo an update with: git checkout -- . && git clean -fd

    \b
    Examples:
      mlgen update                       # the repository in the current folder
      mlgen update --dry-run repos/      # every repository below repos/
      mlgen update -d serving_backend=triton
      mlgen update --branch tpl-v2 --push repos/
    """
    from mlgen import live_status
    from mlgen.fleet import (
        RepoOutcome,
        expand_targets,
        file_lines,
        options_from,
        progress_line,
        summary_rows,
        update_fleet,
    )
    from mlgen.generate import parse_answers
    from mlgen.interrupt import EXIT_INTERRUPTED

    if (push or message) and not branch:
        raise click.UsageError("--push and --message need --branch NAME")
    repos = expand_targets(list(paths) or ([] if listing else [Path(".")]), listing)
    options = options_from(
        parse_answers(answers),
        template=template,
        vcs_ref=vcs_ref,
        conflict_mode=conflict_mode,
        dry_run=dry_run,
        branch=branch,
        push=push,
        message=message,
    )
    # Progress on stderr: live lines on a terminal; in a CI log one line per repository
    # of a fleet (a single repository's table follows at once, so it needs none).
    status = live_status.current()
    fleet_log = len(repos) > 1 or status.interactive

    def started(repo: Path) -> None:
        status.begin(str(repo), f"updating {repo}")

    def finished(outcome: RepoOutcome) -> None:
        status.end(outcome.repo, progress_line(outcome) if len(repos) > 1 else None)

    outcomes = update_fleet(
        repos,
        options,
        jobs,
        on_done=finished if fleet_log else None,
        on_start=started if fleet_log else None,
    )
    if as_json:
        click.echo(json.dumps([outcome.as_json() for outcome in outcomes], indent=2))
    else:
        if len(outcomes) == 1:
            for action, path in outcomes[0].changes:
                click.echo(f"{action:13} {path}")
        rows = summary_rows(outcomes)
        for line in [*_format_table(rows[0], rows[1:]), *file_lines(outcomes)]:
            click.echo(line)
    if any(outcome.interrupted for outcome in outcomes):
        click.echo("Interrupted: the repositories above are untouched or fully updated.", err=True)
        # Every worker has reported and every repository is settled: leave now rather
        # than after the interpreter's teardown, which a loaded machine makes slow.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)
    if any(outcome.needs_attention for outcome in outcomes):
        raise SystemExit(1)


@cli.command()
@click.argument("destination", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--backend",
    "-b",
    default="fastapi",
    show_default=True,
    help="Serving backend of the demo repository.",
)
@click.option(
    "--run-tests/--no-run-tests",
    default=True,
    show_default=True,
    help="Also run the generated repository's own test suite.",
)
def demo(destination: Path | None, backend: str, run_tests: bool) -> None:
    """Generate a demo model repository and exercise it (train, export, serve, predict).

    DESTINATION defaults to a new temporary folder. Uses local defaults only.
    """
    from mlgen.demo import run_demo

    run_demo(destination, backend, run_tests, click.echo)


@cli.group()
def plugin() -> None:
    """Tools for plugin authors."""


@plugin.command("new")
@click.argument("name")
@click.argument("destination", required=False, type=click.Path(path_type=Path, file_okay=False))
@_answer_option("Answer a scaffold question (description, distribution_name, module_name, author).")
def plugin_new(name: str, destination: Path | None, answers: tuple[str, ...]) -> None:
    """Scaffold an installable backend plugin package for backend NAME.

    DESTINATION defaults to ./mlgen-NAME. The package starts as a small, complete ONNX
    backend of its own (FastAPI + ONNX Runtime) and carries the contract suite in its tests.
    """
    from mlgen.generate import parse_answers
    from mlgen.plugin_scaffold import scaffold_plugin

    created = scaffold_plugin(name, destination, dict(parse_answers(answers)))
    click.echo(f"Created {created}")
    click.echo(f"Next: cd {created} && pip install -e '.[test]' && pytest")


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="mlgen")


if __name__ == "__main__":  # pragma: no cover
    main()
