"""The plugin's checks: they pass on a generated repository and each one can fail.

One repository is rendered per session with the public ``mlgen new`` command; every
broken variant is a copy of its InferenceService manifest (and Dockerfile) with one
change, checked by calling the check functions the plugin registers.
"""

from __future__ import annotations

import copy
import importlib.metadata
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlgen
import pytest
import yaml

import mlgen_kserve
from mlgen_kserve import checks

MANIFEST = checks.INFERENCESERVICE
ANSWERS = {"model_name": "churn-score", "k8s_namespace": "ml-risk", "canary_weight_percent": 7}
CHECK_NAMES = [
    "kserve-inferenceservice",
    "kserve-inferenceservice-backend",
    "kserve-inferenceservice-answers",
]


def _mlgen() -> str:
    found = shutil.which("mlgen", path=str(Path(sys.executable).parent))
    assert found, "the mlgen command is installed next to this Python"
    return found


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository rendered with the kserve backend and non-default answers."""
    root = tmp_path_factory.mktemp("generated")
    # DESTINATION is only the folder: model_name is an answer like the others.
    command = [
        _mlgen(),
        "new",
        ANSWERS["model_name"],
        "-b",
        "kserve",
        "--defaults",
        "-d",
        f"model_name={ANSWERS['model_name']}",
        "-d",
        f"k8s_namespace={ANSWERS['k8s_namespace']}",
        "-d",
        f"canary_weight_percent={ANSWERS['canary_weight_percent']}",
    ]
    subprocess.run(command, cwd=root, check=True, capture_output=True, text=True, timeout=300)
    return root / ANSWERS["model_name"]


@pytest.fixture(scope="session")
def answers(generated: Path) -> dict[str, Any]:
    recorded = yaml.safe_load((generated / ".copier-answers.yml").read_text())
    assert {key: recorded[key] for key in ANSWERS} == ANSWERS
    return dict(recorded)


@pytest.fixture(scope="session")
def manifest(generated: Path) -> dict[str, Any]:
    return checks.load_manifest(generated)


def registered(repo: Path, answers: dict[str, Any]) -> dict[str, mlgen.Check]:
    found: list[mlgen.Check] = []
    mlgen_kserve.mlgen_register_checks(register=found.append, repo=repo, answers=answers)
    return {check.name: check for check in found}


def variant(
    tmp_path: Path,
    generated: Path,
    document: Any = None,
    text: str | None = None,
    dockerfile: Callable[[str], str] | None = None,
) -> Path:
    """A repository copy holding a changed manifest (and Dockerfile)."""
    repo = tmp_path / "repo"
    (repo / MANIFEST).parent.mkdir(parents=True)
    dockerfile_text = (generated / "Dockerfile").read_text()
    (repo / "Dockerfile").write_text(dockerfile(dockerfile_text) if dockerfile else dockerfile_text)
    if text is None:
        text = yaml.safe_dump(document, sort_keys=False)
    (repo / MANIFEST).write_text(text)
    return repo


def run(check: str, repo: Path, answers: dict[str, Any]) -> mlgen.CheckResult:
    result = registered(repo, answers)[check].run(repo)
    assert isinstance(result, mlgen.CheckResult)
    return result


# ------------------------------------------------------------------ the good case
def test_checks_are_registered_only_for_kserve_repositories(tmp_path: Path) -> None:
    assert list(registered(tmp_path, {"serving_backend": "kserve"})) == CHECK_NAMES
    assert registered(tmp_path, {"serving_backend": "fastapi"}) == {}
    for check in registered(tmp_path, {"serving_backend": "kserve"}).values():
        assert "kserve" in check.requires


def test_generated_repository_passes_every_check(generated: Path, answers: dict[str, Any]) -> None:
    for name in CHECK_NAMES:
        result = run(name, generated, answers)
        assert result.ok, f"{name}: {result.detail}"
    assert "kserve 0.21.0 types" in run(CHECK_NAMES[0], generated, answers).detail


def test_manifest_follows_the_backend_and_answers(manifest: dict[str, Any]) -> None:
    spec = mlgen_kserve.BACKEND.container
    predictor = manifest["spec"]["predictor"]
    (container,) = predictor["containers"]
    assert manifest["metadata"] == {
        **manifest["metadata"],
        "name": "churn-score",
        "namespace": "ml-risk",
    }
    assert predictor["canaryTrafficPercent"] == 7
    assert container["ports"] == [{"name": "http1", "containerPort": 8080, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": spec.readiness.path, "port": 8080}
    assert container["livenessProbe"]["httpGet"] == {"path": spec.liveness.path, "port": 8080}
    assert container["securityContext"]["runAsUser"] == 10001
    assert "/deploy/k8s/" not in f"/{MANIFEST}"  # kept out of the plain-Kubernetes tree


def test_quantities_may_be_numbers(manifest: dict[str, Any]) -> None:
    document = copy.deepcopy(manifest)
    document["spec"]["predictor"]["containers"][0]["resources"]["limits"]["cpu"] = 1
    assert checks.schema_problems(document)[0] == []


# ------------------------------------------------------------------ kserve-inferenceservice
def _set(document: dict[str, Any], path: str, value: Any) -> None:
    """Set ``a.b[0].c`` in ``document``; the value ``...`` deletes the key."""
    parts = path.replace("[", ".").replace("]", "").split(".")
    target: Any = document
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    last = parts[-1]
    if value is ...:
        del target[last]
    elif last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value


CONTAINER = "spec.predictor.containers[0]"


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        ("spec.predictor.canaryTrafficPercent", "5", "expected an integer, got str"),
        ("spec.predictor.canaryTrafficPercent", True, "expected an integer, got bool"),
        ("spec.predictor.minReplicas", 1.5, "expected an integer"),
        ("spec.predictor.canaryTraficPercent", 5, "did you mean 'canaryTrafficPercent'?"),
        ("spec.predicter", {}, "spec.predicter: unknown field of V1beta1InferenceServiceSpec"),
        ("spec.predictor.labels", ["app"], "expected a mapping"),
        ("spec.predictor.containers", {"name": "x"}, "expected a list"),
        (f"{CONTAINER}.imagePullPolice", "Always", "imagePullPolice: unknown field"),
        (
            f"{CONTAINER}.ports[0].containerPort",
            "8080",
            "ports[0].containerPort: Input should be a valid integer",
        ),
        (f"{CONTAINER}.readinessProbe.httpGet.pth", "/x", "httpGet.pth: unknown field"),
        (f"{CONTAINER}.securityContext.runAsNonRoot", "yes", "runAsNonRoot: Input should be"),
        (f"{CONTAINER}.name", ..., f"{CONTAINER}.name: Field required"),
        ("spec.predictor", ..., "`predictor`, must not be `None`"),
        ("metadata.name", 42, "metadata.name: Input should be a valid string"),
        ("metadata.labelz", {}, "metadata.labelz: unknown field"),
        (
            "apiVersion",
            "serving.kserve.io/v1alpha1",
            "apiVersion: expected serving.kserve.io/v1beta1",
        ),
        ("kind", "Deployment", "kind: expected InferenceService"),
        ("status", {"url": "http://x"}, "status: set by the KServe controller"),
        ("spec.predictor.containers", [], "neither a model nor containers"),
    ],
)
def test_schema_check_fails_on_a_broken_manifest(
    tmp_path: Path,
    generated: Path,
    answers: dict[str, Any],
    manifest: dict[str, Any],
    path: str,
    value: Any,
    problem: str,
) -> None:
    document = copy.deepcopy(manifest)
    _set(document, path, value)
    result = run("kserve-inferenceservice", variant(tmp_path, generated, document), answers)
    assert not result.ok
    assert problem in result.detail, result.detail


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("spec: [unclosed", "not valid YAML"),
        ("- a\n- b\n", "expected a mapping, found list"),
        ("kind: InferenceService\n---\nkind: InferenceService\n", "expected one YAML document"),
    ],
)
def test_schema_check_fails_on_unreadable_files(
    tmp_path: Path, generated: Path, answers: dict[str, Any], text: str, problem: str
) -> None:
    result = run("kserve-inferenceservice", variant(tmp_path, generated, text=text), answers)
    assert not result.ok and problem in result.detail


def test_every_check_fails_when_the_manifest_is_missing(
    tmp_path: Path, generated: Path, answers: dict[str, Any]
) -> None:
    repo = variant(tmp_path, generated, text="")
    (repo / MANIFEST).unlink()
    for name in CHECK_NAMES:
        result = run(name, repo, answers)
        assert not result.ok and "is missing" in result.detail


# ------------------------------------------------------------------ kserve-inferenceservice-backend
@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        (f"{CONTAINER}.ports[0].containerPort", 9000, "9000 is not a port of the backend"),
        (f"{CONTAINER}.ports[0].name", "http", "Knative names the backend's 'http' port 'http1'"),
        (
            f"{CONTAINER}.ports",
            [{"name": "h2c", "containerPort": 8081}],
            "serving port http (8080) is not declared",
        ),
        (
            f"{CONTAINER}.readinessProbe.httpGet.path",
            "/ready",
            "readinessProbe.httpGet.path: the backend's is /v2/health/ready",
        ),
        (
            f"{CONTAINER}.livenessProbe.httpGet.port",
            8081,
            "livenessProbe.httpGet.port: the backend's http port is 8080",
        ),
        (f"{CONTAINER}.livenessProbe", ..., "livenessProbe: missing"),
        (f"{CONTAINER}.resources.limits.memory", "2Gi", "limits.memory: the backend's is 1Gi"),
        ("spec.predictor.annotations.prometheus\\.io/port", "9090", "metrics port is 8080"),
        (f"{CONTAINER}.securityContext.runAsUser", 0, "runAsUser: restricted profile needs 10001"),
        (f"{CONTAINER}.securityContext.privileged", True, "privileged: must not be true"),
        (f"{CONTAINER}.securityContext.capabilities", ..., "capabilities.drop"),
        (f"{CONTAINER}.securityContext.readOnlyRootFilesystem", False, "readOnlyRootFilesystem"),
        (f"{CONTAINER}.name", "server", "custom predictor container is 'kserve-container'"),
    ],
)
def test_backend_check_fails_when_the_manifest_disagrees(
    tmp_path: Path,
    generated: Path,
    answers: dict[str, Any],
    manifest: dict[str, Any],
    path: str,
    value: Any,
    problem: str,
) -> None:
    document = copy.deepcopy(manifest)
    if "\\." in path:  # an annotation key with dots
        document["spec"]["predictor"]["annotations"]["prometheus.io/port"] = value
    else:
        _set(document, path, value)
    result = run("kserve-inferenceservice-backend", variant(tmp_path, generated, document), answers)
    assert not result.ok
    assert problem in result.detail, result.detail
    # The schema check has nothing against these: the backend check is what catches them.
    if value is not ... and path.endswith(("containerPort", ".path", "memory", "runAsUser")):
        assert run(
            "kserve-inferenceservice", variant(tmp_path / "s", generated, document), answers
        ).ok


def test_backend_check_fails_with_two_containers(
    tmp_path: Path, generated: Path, answers: dict[str, Any], manifest: dict[str, Any]
) -> None:
    document = copy.deepcopy(manifest)
    containers = document["spec"]["predictor"]["containers"]
    containers.append({**containers[0], "name": "sidecar"})
    result = run("kserve-inferenceservice-backend", variant(tmp_path, generated, document), answers)
    assert not result.ok and "exactly one container" in result.detail


def test_backend_check_follows_the_dockerfile_user(
    tmp_path: Path, generated: Path, answers: dict[str, Any], manifest: dict[str, Any]
) -> None:
    repo = variant(
        tmp_path,
        generated,
        manifest,
        dockerfile=lambda text: text.replace("USER 10001:10001", "USER 10002:10002"),
    )
    result = run("kserve-inferenceservice-backend", repo, answers)
    assert not result.ok and "runAsUser: restricted profile needs 10002" in result.detail


# ------------------------------------------------------------------ kserve-inferenceservice-answers
@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        ("metadata.namespace", "default", "the k8s_namespace answer is 'ml-risk'"),
        ("metadata.name", "other", "the model_name answer is 'churn-score'"),
        ("spec.predictor.canaryTrafficPercent", 5, "the canary_weight_percent answer is 7"),
        ("spec.predictor.canaryTrafficPercent", ..., "answer is 7, got None"),
    ],
)
def test_answers_check_fails_when_the_manifest_disagrees(
    tmp_path: Path,
    generated: Path,
    answers: dict[str, Any],
    manifest: dict[str, Any],
    path: str,
    value: Any,
    problem: str,
) -> None:
    document = copy.deepcopy(manifest)
    _set(document, path, value)
    result = run("kserve-inferenceservice-answers", variant(tmp_path, generated, document), answers)
    assert not result.ok
    assert problem in result.detail, result.detail


# ------------------------------------------------------------------ through `mlgen check`
def test_mlgen_check_reports_a_broken_manifest(
    tmp_path: Path, generated: Path, manifest: dict[str, Any]
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(generated, repo)
    document = copy.deepcopy(manifest)
    _set(document, f"{CONTAINER}.ports[0].containerPort", 9000)
    (repo / MANIFEST).write_text(yaml.safe_dump(document, sort_keys=False))
    command = [_mlgen(), "check", *(f"--only={name}" for name in CHECK_NAMES), str(repo)]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode != 0, finished.stdout
    lines = finished.stdout.splitlines()
    assert any(
        line.startswith("pass") and "kserve-inferenceservice " in line + " " for line in lines
    ), finished.stdout
    assert any(
        line.startswith("FAIL")
        and "kserve-inferenceservice-backend" in line
        and "9000 is not a port" in line
        for line in lines
    ), finished.stdout


# ------------------------------------------------------------------ the pinned server
def test_kserve_pin_is_the_installed_version() -> None:
    assert importlib.metadata.version("kserve") == mlgen_kserve.KSERVE_VERSION
    assert f"kserve=={mlgen_kserve.KSERVE_VERSION}" in mlgen_kserve.BACKEND.serving_dependencies


def test_metric_queries_use_metrics_the_kserve_server_exports() -> None:
    from kserve import metrics

    exported = {metrics.PRE_HIST_TIME._name, metrics.PREDICT_HIST_TIME._name}
    assert exported == {"request_preprocess_seconds", "request_predict_seconds"}
    queries = mlgen_kserve.BACKEND.metrics
    assert "request_preprocess_seconds_count{" in queries.request_rate
    assert "request_predict_seconds_bucket{" in queries.latency_quantile
    assert metrics.PROM_LABELS == ["model_name"]
