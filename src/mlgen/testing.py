"""The backend contract suite, for built-in and third-party backend plugins alike.

Use it from a test module of the plugin's package::

    import pytest
    from mlgen.testing import BackendContract

    @pytest.fixture(scope="session")
    def contract_backend() -> str:
        return "mybackend"          # the name your plugin registers

    class TestMyBackend(BackendContract):
        pass

Every test renders one repository with the backend (once per session), builds its
environment with uv (cached, shared) and checks what every backend must do:

* it is registered with a valid definition and contributes files; the repository has a
  modeling module (the template's for the backend's export format, or the backend's own);
* the repository passes ``mlgen check`` (every validator the installed plugins register);
* the Kubernetes probes point at ports the container exposes;
* the model ``train`` exports loads in the backend's format;
* a prediction through the backend (its smoke test: a real server where one runs here,
  the runtime's own loader otherwise) matches the in-process model.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlgen.backend import EXPORT_FORMAT_NAME
from mlgen.check_runner import run_checks
from mlgen.checks import find_tool
from mlgen.environments import REPO_PYTHON_ENV, python_in, run_in_repo, shared_environment
from mlgen.generate import generate
from mlgen.plugins import PluginRegistry, RegisteredBackend, get_registry, load_plugins
from mlgen.template import default_template, recorded_answers

EXPORT_PROBE = """
import sys, tempfile
from pathlib import Path
import numpy as np
from {package} import modeling
from {package}.data import make_dataset
X, y = make_dataset(600, 3)
model = modeling.fit(X, y, 3)
with tempfile.TemporaryDirectory() as out:
    artifact = modeling.export(model, Path(out))
    assert artifact.is_file() or artifact.is_dir(), artifact
    exported = modeling.load_exported(artifact)(X[:50])
expected = modeling.predict_proba(model, X[:50])
difference = float(np.max(np.abs(np.asarray(exported, dtype=np.float64) - expected)))
print(modeling.EXPORT_FORMAT, artifact.name, difference)
sys.exit(0 if difference <= 1e-4 else 1)
"""


def registry_with(*modules: object) -> PluginRegistry:
    """The installed plugins plus ``modules`` (each registered under its ``__name__``)."""
    return load_plugins(
        extra=[(str(getattr(module, "__name__", module)), module) for module in modules]
    )


def render_repository(destination: Path, backend: str, **answers: Any) -> Path:
    """Render the installed template with ``backend`` and default answers."""
    return generate(
        destination,
        default_template(),
        {"serving_backend": backend, **answers},
        defaults=True,
        vcs_ref="HEAD",
    )


class BackendContract:
    """What every serving backend must satisfy. Provide a ``contract_backend`` fixture."""

    @pytest.fixture(scope="class")
    @classmethod
    def contract_registered(cls, contract_backend: str) -> RegisteredBackend:
        return get_registry().get_backend(contract_backend)

    @pytest.fixture(scope="class")
    @classmethod
    def contract_repo(cls, contract_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
        root = tmp_path_factory.mktemp(f"contract-{contract_backend}")
        return render_repository(root / "repo", contract_backend)

    @pytest.fixture(scope="class")
    @classmethod
    def contract_environment(cls, contract_repo: Path) -> Path:
        return shared_environment(contract_repo)

    @pytest.fixture
    def repo_python(self, contract_environment: Path) -> Iterator[Path]:
        previous = os.environ.get(REPO_PYTHON_ENV)
        os.environ[REPO_PYTHON_ENV] = str(python_in(contract_environment))
        yield python_in(contract_environment)
        if previous is None:
            os.environ.pop(REPO_PYTHON_ENV, None)
        else:
            os.environ[REPO_PYTHON_ENV] = previous

    def test_backend_definition(self, contract_registered: RegisteredBackend) -> None:
        backend = contract_registered.backend
        assert EXPORT_FORMAT_NAME.match(backend.export_format)
        assert backend.description and "\n" not in backend.description
        assert backend.container.ports and backend.smoke_test

    def test_repository_contains_the_backend_files(
        self, contract_repo: Path, contract_backend: str
    ) -> None:
        manifest = json.loads((contract_repo / ".mlgen" / "plugins.json").read_text())
        assert manifest["backend"]["name"] == contract_backend
        package = recorded_answers(contract_repo)["package_name"]
        files = manifest["files"]
        assert files, "a backend contributes its serving files"
        assert (contract_repo / "src" / package / "modeling.py").is_file()
        for path in files:
            assert (contract_repo / path).is_file(), path

    def test_repository_passes_mlgen_check(self, contract_repo: Path, repo_python: Path) -> None:
        results = list(run_checks(contract_repo))
        failed = [f"{check.name}: {result.detail}" for check, result in results if not result.ok]
        assert results and failed == []

    def test_probes_target_ports_the_container_exposes(
        self, contract_repo: Path, contract_registered: RegisteredBackend
    ) -> None:
        built = subprocess.run(
            [
                find_tool("kubectl", "install kubectl"),
                "kustomize",
                str(contract_repo / "deploy" / "k8s" / "base"),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        deployments = [
            doc for doc in yaml.safe_load_all(built) if doc and doc.get("kind") == "Deployment"
        ]
        assert deployments
        spec = contract_registered.backend.container
        for deployment in deployments:
            for container in deployment["spec"]["template"]["spec"]["containers"]:
                ports = {port["name"]: port["containerPort"] for port in container["ports"]}
                assert ports == {port.name: port.container_port for port in spec.ports}
                for probe_name in ("readinessProbe", "livenessProbe"):
                    probe = container[probe_name]["httpGet"]
                    assert probe["port"] in ports, (probe_name, probe)
                model_name = str(recorded_answers(contract_repo)["model_name"])
                for probe_name, probe_spec in (
                    ("readinessProbe", spec.readiness),
                    ("livenessProbe", spec.liveness),
                ):
                    path = probe_spec.path.replace("{model_name}", model_name)
                    assert container[probe_name]["httpGet"]["path"] == path

    def test_exported_model_loads_in_the_backend_format(
        self,
        contract_repo: Path,
        contract_environment: Path,
        contract_registered: RegisteredBackend,
    ) -> None:
        package = str(recorded_answers(contract_repo)["package_name"])
        result = run_in_repo(
            contract_repo,
            contract_environment,
            ["python", "-c", EXPORT_PROBE.format(package=package)],
        )
        assert result.returncode == 0, result.stdout + result.stderr[-3000:]
        export_format = result.stdout.split()[0]
        assert export_format == contract_registered.backend.export_format

    def test_served_prediction_matches_the_in_process_model(
        self,
        contract_repo: Path,
        contract_environment: Path,
        contract_registered: RegisteredBackend,
    ) -> None:
        package = str(recorded_answers(contract_repo)["package_name"])
        command = contract_registered.backend.smoke_command(package)
        result = run_in_repo(contract_repo, contract_environment, command, timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
