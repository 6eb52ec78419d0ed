"""``mlgen demo``: generate a model repository with the defaults and exercise it.

This is the first command a new user runs: it renders a repository, builds (or reuses)
an environment for it with uv, trains the model (features from the local Feast store,
the run and model version in the local SQLite MLflow registry), runs the backend's
smoke test (serve on loopback, predict once) and, optionally, the repository's own
test suite.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from mlgen.environments import run_in_repo, shared_environment
from mlgen.errors import MlgenError
from mlgen.generate import generate
from mlgen.plugins import get_registry
from mlgen.template import default_template, recorded_answers


def run_demo(
    destination: Path | None, backend_name: str, run_tests: bool, echo: Callable[[str], None]
) -> Path:
    """Generate, install and exercise a demo repository; return its path."""
    registered = get_registry().get_backend(backend_name)
    if destination is None:
        destination = Path(tempfile.mkdtemp(prefix="mlgen-demo-")) / "demo-model"
    repo = generate(
        destination, default_template(), {"serving_backend": backend_name}, defaults=True
    )
    echo(f"Generated {repo} (backend {backend_name})")
    echo("Preparing its Python environment with uv (cached after the first run)...")
    environment = shared_environment(repo)
    package = str(recorded_answers(repo)["package_name"])
    steps = [
        (
            "training (Feast point-in-time join, MLflow registry)",
            ["python", "-m", f"{package}.train"],
        ),
        ("smoke test", registered.backend.smoke_command(package)),
    ]
    if run_tests:
        steps.append(("test suite", ["python", "-m", "pytest", "-q"]))
    for label, command in steps:
        echo(f"Running its {label}: {' '.join(command)}")
        result = run_in_repo(repo, environment, command, capture=False)
        if result.returncode != 0:
            raise MlgenError(
                f"the demo repository's {label} failed (exit {result.returncode}); "
                f"see the output above, the repository is at {repo}"
            )
    echo(f"Demo repository ready at {repo}")
    return repo
