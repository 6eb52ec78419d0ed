"""Slow tier: a repository generated from the user's own table is green with no edit.

For each acceptance table of issue 12 (scikit-learn's breast cancer, palmerpenguins with
its strings and nulls, an events table with an entity id and an event timestamp):
``mlgen new DIR --data PATH --label COLUMN --defaults``, then the repository's own suite
(training through its gate, export, serving) and ``ruff check``/``ruff format --check``
pass without a file of it edited. The time from ``mlgen new`` to the green suite is
printed (``-s``) and recorded as a JUnit property.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from mlgen.environments import REPO_PYTHON_ENV, python_in, run_in_repo, shared_environment
from tests.conftest import BIN

pytestmark = pytest.mark.slow
pq = pytest.importorskip("pyarrow.parquet")


def _cancer(folder: Path) -> tuple[Path, list[str]]:
    from tests.tables import breast_cancer_csv

    return breast_cancer_csv(folder), ["--label", "target"]


def _penguins(folder: Path) -> tuple[Path, list[str]]:
    from tests.tables import PENGUINS_LABEL, penguins_csv

    return penguins_csv(folder), PENGUINS_LABEL


def _events(folder: Path) -> tuple[Path, list[str]]:
    from tests.tables import events

    path = folder / "events.parquet"
    pq.write_table(events(), path)
    options = ["--label", "churned", "--entity", "customer_id", "--timestamp", "event_timestamp"]
    return path, options


TABLES: dict[str, Callable[[Path], tuple[Path, list[str]]]] = {
    "breast-cancer": _cancer,
    "penguins": _penguins,
    "events": _events,
}
CASES = [
    pytest.param(table, backend, framework, id=f"{table}-{backend}-{framework}")
    for table, backend, framework in [
        ("breast-cancer", "fastapi", "sklearn"),
        ("penguins", "fastapi", "sklearn"),
        ("events", "fastapi", "sklearn"),
        ("breast-cancer", "fastapi", "lightgbm"),
        ("breast-cancer", "fastapi", "xgboost"),
        ("breast-cancer", "torchserve", "pytorch"),
        ("penguins", "torchserve", "pytorch"),
        ("breast-cancer", "tfserving", "tensorflow"),
        ("penguins", "tfserving", "tensorflow"),
        ("penguins", "rayserve", "sklearn"),
        ("breast-cancer", "triton", "sklearn"),
        ("penguins", "triton", "sklearn"),
    ]
]
"""(table, serving backend, model framework): every table on the default backend, breast
cancer on each framework and on the backends that serve the other exports, and the
strings and nulls of penguins through the SavedModel and TorchScript preprocessing, on
Ray Serve and as Triton's BYTES inputs."""


def _files(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and ".venv" not in path.parts
    }


@pytest.mark.parametrize(("table", "backend", "framework"), CASES)
def test_a_repository_for_your_own_table_is_green_with_no_edit(
    tmp_path: Path,
    table: str,
    backend: str,
    framework: str,
    record_property: Callable[[str, object], None],
) -> None:
    data, options = TABLES[table](tmp_path)
    options += ["--backend", backend, "-d", f"model_framework={framework}"]
    repo = tmp_path / "repo"
    started = time.monotonic()
    created = subprocess.run(
        [BIN / "mlgen", "new", str(repo), "--data", str(data), *options, "--defaults"],
        capture_output=True,
        text=True,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    assert "Inferred from" in created.stdout
    answers = yaml.safe_load((repo / ".copier-answers.yml").read_text())
    assert answers["data_source"] == str(data.resolve())
    assert answers["label_column"] == options[1]
    assert (answers["serving_backend"], answers["model_framework"]) == (backend, framework)
    generated = _files(repo)

    environment = shared_environment(repo)
    suite = run_in_repo(
        repo, environment, ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    )
    elapsed = time.monotonic() - started
    assert suite.returncode == 0, suite.stdout[-4000:] + suite.stderr[-2000:]
    summary = suite.stdout.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= 10, summary
    assert "failed" not in summary and "error" not in summary, summary
    for command in (["check", "."], ["format", "--check", "."]):  # the repository's CI lint
        linted = subprocess.run(
            [BIN / "ruff", *command, "--no-cache"], cwd=repo, capture_output=True, text=True
        )
        assert linted.returncode == 0, linted.stdout[-2000:] + linted.stderr[-1000:]

    checked = subprocess.run(  # every artifact through the tools its users run
        [BIN / "mlgen", "check", str(repo)],
        env={**os.environ, REPO_PYTHON_ENV: str(python_in(environment))},
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout[-4000:] + checked.stderr[-2000:]

    edited = [path for path, body in generated.items() if (repo / path).read_bytes() != body]
    record_property("seconds_from_new_to_green", round(elapsed, 1))
    record_property("files_edited", len(edited))
    case = f"{table} ({backend}, {framework})"
    print(f"\n{case}: mlgen new to a green suite in {elapsed:.0f} s, files edited: {len(edited)}")
    # The suite may write artifacts (models, stores); no generated file is changed by it.
    assert edited == [], edited
