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
* the repository passes ``mlgen check`` (every validator the installed plugins register,
  each given the answers when it asks for them; kustomize builds every overlay);
* the Kubernetes Deployment is the ``ContainerSpec``: its ports, its startup, readiness
  and liveness probes, environment variables, volumes and ``/tmp`` size;
* every kustomize patch the backend declares is a file it contributes, listed by the
  kustomization of its folder;
* the serving-image requirements are in the repository's dependencies;
* the model ``train`` exports loads in the backend's format;
* a prediction through the backend matches the in-process model. That is the backend's
  smoke test (``Backend.smoke_test``): mlgen runs the command and needs exit status 0;
  whether it starts a real server (where one runs on this machine) or the runtime's own
  loader is the smoke test's choice. Its output is captured and shown (the last 3,000
  characters of each stream) when it fails.

The environment is built once (cached by the hash of the repository's requirements) and
prepared by the plugins' ``mlgen_prepare_environment`` hook. The slow steps have time
limits the backend sets in ``Backend.contract_timeouts`` (:class:`mlgen.ContractTimeouts`:
``smoke_seconds`` for the smoke test, ``export_seconds`` for the export probe); a step
that runs longer is killed and fails.
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
from mlgen.environments import (
    REPO_PYTHON_ENV,
    declared_requirements,
    prepare_environment,
    python_in,
    run_in_repo,
    shared_environment,
)
from mlgen.generate import generate
from mlgen.plugins import PluginRegistry, RegisteredBackend, get_registry, load_plugins
from mlgen.template import default_template, recorded_answers

EXPORT_PROBE = """
import sys, tempfile
from pathlib import Path
import numpy as np
from {package} import modeling
from {package}.data import dataset
X, y = dataset(600, 3)
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
        environment = shared_environment(contract_repo)
        prepare_environment(environment, contract_repo)  # idempotent: a cached env too
        return environment

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
        assert backend.container.startup is None or backend.container.start_period_seconds() > 0

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

    def test_kustomize_patches_are_contributed_and_listed(
        self, contract_repo: Path, contract_registered: RegisteredBackend
    ) -> None:
        manifest = json.loads((contract_repo / ".mlgen" / "plugins.json").read_text())
        for patch in contract_registered.backend.kustomize_patches:
            assert patch in manifest["files"], f"{patch} is declared but not contributed"
            folder, _, name = patch.rpartition("/")
            kustomization = yaml.safe_load(
                (contract_repo / folder / "kustomization.yaml").read_text()
            )
            listed = [entry.get("path") for entry in kustomization.get("patches") or []]
            assert name in listed, f"{folder}/kustomization.yaml does not list {name}"

    def test_serving_requirements_are_repository_dependencies(
        self, contract_repo: Path, contract_registered: RegisteredBackend
    ) -> None:
        declared = declared_requirements(contract_repo, extras=())
        for requirement in contract_registered.backend.serving_dependencies:
            assert requirement in declared, requirement
        runtime = next(r for r in declared if r.startswith("mlgen-runtime["))
        extras = set(runtime.split("[", 1)[1].split("]", 1)[0].split(","))
        assert set(contract_registered.backend.serving_runtime_extras) <= extras

    def test_deployment_is_the_container_spec(
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
                answers = recorded_answers(contract_repo)
                model_name = str(answers["model_name"])
                assert ("startupProbe" in container) == (spec.startup is not None)
                for kind, probe_spec in spec.probes():
                    probe = container[f"{kind}Probe"]
                    path = probe_spec.path.replace("{model_name}", model_name)
                    assert probe["httpGet"]["path"] == path, kind
                    assert probe["httpGet"]["port"] == probe_spec.port, kind
                    assert probe["failureThreshold"] == probe_spec.failure_threshold, kind
                expected_env = {
                    variable.name: variable.value.replace("{model_name}", model_name).replace(
                        "{package_name}", str(answers["package_name"])
                    )
                    for variable in spec.env
                }
                env = {item["name"]: item.get("value") for item in container.get("env") or []}
                assert {name: env.get(name) for name in expected_env} == expected_env
                volumes = {
                    volume["name"]: volume
                    for volume in deployment["spec"]["template"]["spec"]["volumes"]
                }
                mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
                assert mounts["tmp"] == "/tmp"
                assert volumes["tmp"]["emptyDir"]["sizeLimit"] == spec.tmp_size_limit
                for volume in spec.volumes:
                    assert mounts[volume.name] == volume.mount_path, volume.name
                    empty_dir = volumes[volume.name]["emptyDir"]
                    assert empty_dir.get("medium", "") == volume.medium, volume.name
                    assert empty_dir.get("sizeLimit") == volume.size_limit, volume.name

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
            timeout=contract_registered.backend.contract_timeouts.export_seconds,
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
        timeout = contract_registered.backend.contract_timeouts.smoke_seconds
        result = run_in_repo(contract_repo, contract_environment, command, timeout=timeout)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
