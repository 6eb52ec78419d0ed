"""Helpers for a model repository's own test suite (extra ``test``).

* :func:`isolated_stores`: MLflow and the Feast repository in a temporary folder, so a
  suite never touches the repository's ``mlflow.db`` or ``feature_repo/data``;
* :class:`TrainedModel`: what a suite's session-wide ``trained`` fixture returns (the
  in-process model, its ``metrics.json`` record, the folder it was exported to);
* :func:`fuzz_app`: property-based fuzzing of an ASGI app from its own OpenAPI schema
  with schemathesis: every answer must be a non-5xx with a documented status code,
  content type and body schema. It returns a :class:`FuzzReport` of what was answered;
* :mod:`mlgen_runtime.testing.fixtures`: a pytest plugin with session fixtures
  ``postgres`` and ``redis`` (real servers on loopback, :mod:`mlgen_runtime.servers`);
* :mod:`mlgen_runtime.testing.production`: :class:`.production.ProductionSuite`,
  the production profile's integration tests, run on a repository's own package.

Usage, in a repository's ``tests/``::

    @pytest.fixture(scope="session", autouse=True)
    def stores(tmp_path_factory):
        with isolated_stores(tmp_path_factory.mktemp("stores"), feature_repo_dir()) as root:
            yield root

    def test_fuzz(trained):
        report = fuzz_app(create_app(trained.artifact), "negative")
        assert report.total and not report.server_errors
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["FuzzReport", "TrainedModel", "fuzz_app", "isolated_stores"]

_STORE_VARIABLES = (
    "MLFLOW_TRACKING_URI",
    "FEATURE_REPO_DIR",
    "MLFLOW_DISABLE_TELEMETRY",
    "MLGEN_PROFILE",
)


class TrainedModel(NamedTuple):
    """The outputs of one training run: ``(model, record, out_dir)``.

    ``model`` is the in-process model, ``record`` what the run wrote to ``metrics.json``
    (its ``artifact`` key names the exported file) and ``out_dir`` the folder it was
    exported to.
    """

    model: Any
    record: dict[str, Any]
    out_dir: Path

    @property
    def artifact(self) -> Path:
        """The exported model (a file or a folder, per export format)."""
        return self.out_dir / str(self.record["artifact"])


@contextmanager
def isolated_stores(root: Path, feature_repo: Path | None = None) -> Iterator[Path]:
    """Point MLflow and Feast at ``root`` until the block ends; yield ``root``.

    The profile is ``local``: MLflow's tracking store and registry become
    ``root/mlflow.db`` (telemetry off);
    ``feature_repo`` (the repository's Feast folder), when given, is copied to
    ``root/feature_repo`` without its ``data/`` and becomes ``$FEATURE_REPO_DIR``. The
    variables are restored afterwards.
    """
    root = Path(root)
    saved = {name: os.environ.get(name) for name in _STORE_VARIABLES}
    os.environ.pop("MLGEN_PROFILE", None)  # the local profile (mlgen_runtime.profile)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    if feature_repo is not None:
        copy = root / "feature_repo"
        ignore = shutil.ignore_patterns("data", "__pycache__")
        shutil.copytree(feature_repo, copy, ignore=ignore, dirs_exist_ok=True)
        os.environ["FEATURE_REPO_DIR"] = str(copy)
    try:
        yield root
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass
class FuzzReport:
    """What :func:`fuzz_app` sent, by operation and answer.

    Attributes:
        mode: ``"positive"`` (valid requests) or ``"negative"`` (invalid ones).
        answers: ``(operation, status) -> requests``, operations as ``"POST /predict"``.
    """

    mode: str
    answers: Counter[tuple[str, int]] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        """Requests sent."""
        return sum(self.answers.values())

    @property
    def operations(self) -> set[str]:
        """The operations that were sent requests."""
        return {operation for operation, _ in self.answers}

    @property
    def server_errors(self) -> int:
        """Answers with a 5xx status (:func:`fuzz_app` fails on the first one)."""
        return sum(count for (_, status), count in self.answers.items() if status >= 500)

    def __str__(self) -> str:
        statuses: Counter[int] = Counter()
        for (_, status), count in self.answers.items():
            statuses[status] += count
        details = ", ".join(f"{status}: {count}" for status, count in sorted(statuses.items()))
        return f"{self.mode} {self.total} ({details})"


def fuzz_app(
    app: Any, mode: str = "positive", *, max_examples: int = 100, schema_path: str = "/openapi.json"
) -> FuzzReport:
    """Fuzz every operation of the ASGI ``app`` from its OpenAPI schema; return the counts.

    Up to ``max_examples`` requests per operation, generated with schemathesis from the
    schema at ``schema_path`` in ``mode`` (``"positive"``: valid data, which must be
    accepted; ``"negative"``: wrong types, missing and extra fields, out-of-range values,
    which must be rejected). Hypothesis runs derandomized with no example database, so a
    run is repeatable. An operation with nothing to send wrong is skipped in negative mode.

    Raises:
        AssertionError: an answer was a 5xx; schemathesis' own failure when an answer does
            not conform to the schema (status, content type, headers, body).
    """
    import schemathesis
    from schemathesis import GenerationMode

    generation = GenerationMode(mode)
    report = FuzzReport(generation.value)
    schema = schemathesis.openapi.from_asgi(schema_path, app)
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an invalid schema raises here
        parts = (operation.body, operation.headers, operation.query, operation.path_parameters)
        if generation is GenerationMode.NEGATIVE and not any(
            len(part) for part in (*parts, operation.cookies)
        ):
            continue  # nothing to send wrong
        _fuzz_operation(operation, generation, max_examples, report)
    return report


def _fuzz_operation(operation: Any, generation: Any, max_examples: int, report: FuzzReport) -> None:
    from hypothesis import HealthCheck, given, settings

    label = f"{operation.method.upper()} {operation.path}"

    @settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=generation))
    def conforms(case: Any) -> None:
        response = case.call_and_validate()  # status, content type, headers, body schema
        report.answers[(label, response.status_code)] += 1
        assert response.status_code < 500, response.text

    conforms()
