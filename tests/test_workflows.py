"""The generated repository's GitHub Actions workflows pass actionlint (with shellcheck),
checkov, the pinning and the permission checks, and each check fails on a workflow
broken on purpose (a check that cannot fail proves nothing).

One repository is rendered per backend per module. A breaking test adds one workflow to
a copy of it and runs only the checks it targets through ``mlgen check``'s runner; the
unbroken scaffold passes every check, so the failure comes from the breakage alone.
checkov takes 5-10 s a run, so its tests are in the slow tier.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlgen import CheckResult
from mlgen.check_runner import run_checks
from mlgen.plugins import get_registry
from mlgen_runtime.gate import Queries, load_config
from tests.rendering import installed_backends, render

FAST_CHECKS = ("actionlint", "actions-pinned", "workflow-permissions")
CHECKOV = "checkov-github-actions"
WORKFLOWS = ("ci.yml", "drift-check.yml", "retrain.yml", "template-update.yml")
"""With delivery argo-rollouts (the default): the Rollout promotes in-cluster."""
KUSTOMIZE_WORKFLOWS = tuple(sorted((*WORKFLOWS, "promote.yml")))
"""With delivery kustomize: promote.yml judges the canary Deployment."""
DELIVERIES = {"argo-rollouts": WORKFLOWS, "kustomize": KUSTOMIZE_WORKFLOWS}
CHECKOUT = "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1"
GATE_TESTS = "tests/test_canary_gate.py"

# A small, valid workflow that passes every check; the tests break one thing in it.
SCAFFOLD = f"""\
name: Broken on purpose
on:
  issues:
    types: [opened]
permissions:
  contents: read
jobs:
  triage:
    runs-on: ubuntu-24.04
    timeout-minutes: 5
    steps:
      - uses: {CHECKOUT}
        with:
          persist-credentials: false
      - name: Greet
        env:
          TITLE: ${{{{ github.event.issue.title }}}}
        run: echo "New issue ${{TITLE}}"
"""


# ------------------------------------------------------------------ helpers
def run(repo: Path, *names: str) -> dict[str, CheckResult]:
    """Run the named checks on ``repo``; every one of them must be registered."""
    results = {check.name: result for check, result in run_checks(repo, only=names)}
    assert set(results) == set(names), f"not registered: {set(names) - set(results)}"
    return results


def failures(results: dict[str, CheckResult]) -> dict[str, str]:
    return {name: result.detail for name, result in results.items() if not result.ok}


def load(repo: Path, name: str) -> dict[Any, Any]:
    loaded = yaml.safe_load((repo / ".github" / "workflows" / name).read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as True
    assert isinstance(on, dict)
    return on


def steps(workflow: dict[Any, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for job_name, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield job_name, step


def break_scaffold(old: str, new: str) -> str:
    assert old in SCAFFOLD, old
    return SCAFFOLD.replace(old, new)


def injected() -> str:
    """The scaffold with the issue title interpolated straight into the script."""
    return break_scaffold(
        'run: echo "New issue ${TITLE}"', "run: echo ${{ github.event.issue.title }}"
    )


def with_job_permissions(permissions: str) -> str:
    return break_scaffold(
        "    timeout-minutes: 5\n", f"    timeout-minutes: 5\n    permissions: {permissions}\n"
    )


def with_top_permissions(permissions: str) -> str:
    return break_scaffold("permissions:\n  contents: read\n", permissions)


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory, template_root: Path) -> Callable[..., Path]:
    """The repository generated with default answers for a backend and a delivery
    (rendered once)."""
    repos: dict[tuple[str, str], Path] = {}

    def get(backend: str, delivery: str = "argo-rollouts") -> Path:
        if (backend, delivery) not in repos:
            target = tmp_path_factory.mktemp("workflows") / f"{backend}-{delivery}"
            repos[backend, delivery] = render(
                template_root, target, serving_backend=backend, delivery=delivery
            )
        return repos[backend, delivery]

    return get


def _backends_and_deliveries() -> list[Any]:
    """Every backend with the default delivery, and the first one with kustomize."""
    cases = [pytest.param(backend, "argo-rollouts", id=backend) for backend in installed_backends()]
    first = installed_backends()[0]
    return [*cases, pytest.param(first, "kustomize", id=f"{first}-kustomize")]


@pytest.fixture
def with_workflow(rendered: Callable[..., Path], tmp_path: Path) -> Callable[[str], Path]:
    """A copy of the first backend's repository with one more workflow, ``extra.yml``."""

    def make(text: str) -> Path:
        repo = Path(shutil.copytree(rendered(installed_backends()[0]), tmp_path / "repo"))
        (repo / ".github" / "workflows" / "extra.yml").write_text(text, encoding="utf-8")
        return repo

    return make


# ------------------------------------------------------------------ everything passes
@pytest.mark.parametrize(("backend", "delivery"), _backends_and_deliveries())
def test_workflows_pass_actionlint_pinning_and_permissions(
    rendered: Callable[..., Path], backend: str, delivery: str
) -> None:
    repo = rendered(backend, delivery)
    workflows = sorted(p.name for p in (repo / ".github" / "workflows").iterdir())
    assert workflows == list(DELIVERIES[delivery])
    results = run(repo, *FAST_CHECKS)
    assert failures(results) == {}
    assert "shellchecked" in results["actionlint"].detail


@pytest.mark.slow
@pytest.mark.parametrize(("backend", "delivery"), _backends_and_deliveries())
def test_workflows_pass_checkov(rendered: Callable[..., Path], backend: str, delivery: str) -> None:
    result = run(rendered(backend, delivery), CHECKOV)[CHECKOV]
    assert result.ok, result.detail
    # every file scanned
    assert result.detail.startswith(f"{len(DELIVERIES[delivery])} workflows:")
    assert " 0 failed" in result.detail
    # the only checks waved through are the justified in-file CKV_GHA_7 skips
    assert "skipped in-file (CKV_GHA_7)" in result.detail


def test_the_scaffold_passes_every_fast_check(with_workflow: Callable[[str], Path]) -> None:
    assert failures(run(with_workflow(SCAFFOLD), *FAST_CHECKS)) == {}


# ------------------------------------------------------------------ each check can fail
def test_expression_injection_fails_actionlint(with_workflow: Callable[[str], Path]) -> None:
    repo = with_workflow(injected())
    detail = failures(run(repo, "actionlint"))["actionlint"]
    assert "extra.yml" in detail and "github.event.issue.title" in detail
    assert "potentially untrusted" in detail


def test_a_shellcheck_finding_fails_actionlint(with_workflow: Callable[[str], Path]) -> None:
    repo = with_workflow(break_scaffold('"New issue ${TITLE}"', "New issue $TITLE"))
    assert "SC2086" in failures(run(repo, "actionlint"))["actionlint"]


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param("    runs-on: [ubuntu-24.04\n", id="yaml-syntax"),
        pytest.param("    runs-onn: ubuntu-24.04\n", id="unknown-key"),
    ],
)
def test_syntax_errors_fail_actionlint(with_workflow: Callable[[str], Path], broken: str) -> None:
    repo = with_workflow(break_scaffold("    runs-on: ubuntu-24.04\n", broken))
    assert "extra.yml" in failures(run(repo, "actionlint"))["actionlint"]


def test_a_syntax_error_also_fails_the_pinning_check(with_workflow: Callable[[str], Path]) -> None:
    repo = with_workflow(break_scaffold("    runs-on: ubuntu-24.04\n", "    runs-on: [x\n"))
    assert "cannot be parsed" in failures(run(repo, "actions-pinned"))["actions-pinned"]


@pytest.mark.parametrize(
    ("reference", "problem"),
    [
        ("actions/checkout@v4", "not pinned to a full commit SHA"),
        ("actions/checkout@main", "not pinned to a full commit SHA"),
        ("actions/checkout@3d3c42e", "not pinned to a full commit SHA"),
        ("actions/checkout", "not pinned to a full commit SHA"),
        ("actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1", "'# vX.Y.Z' comment"),
        ("docker://alpine:3.20", "without @sha256:"),
    ],
)
def test_unpinned_actions_fail_actions_pinned(
    with_workflow: Callable[[str], Path], reference: str, problem: str
) -> None:
    repo = with_workflow(break_scaffold(CHECKOUT, reference))
    detail = failures(run(repo, "actions-pinned"))["actions-pinned"]
    assert f"extra.yml: {reference}: " in detail and problem in detail


def test_local_actions_and_docker_digests_are_allowed(
    with_workflow: Callable[[str], Path],
) -> None:
    digest = "docker://alpine@sha256:" + "a" * 64
    text = break_scaffold(f"      - uses: {CHECKOUT}\n", "      - uses: ./.github/actions/x\n")
    text = text.replace("        with:\n          persist-credentials: false\n", "")
    text += f"      - uses: {digest}\n"
    assert failures(run(with_workflow(text), "actions-pinned")) == {}


@pytest.mark.parametrize(
    ("workflow", "problem"),
    [
        pytest.param(
            with_job_permissions("write-all"),
            "job triage: permissions: write-all",
            id="job-write-all",
        ),
        pytest.param(
            with_top_permissions("permissions: write-all\n"),
            "top-level permissions: write-all",
            id="top-level-write-all",
        ),
        pytest.param(
            with_top_permissions("permissions:\n  contents: write\n"),
            "top-level write scopes contents",
            id="top-level-write-scope",
        ),
        pytest.param(with_top_permissions(""), "no top-level permissions", id="none"),
    ],
)
def test_broad_permissions_fail_workflow_permissions(
    with_workflow: Callable[[str], Path], workflow: str, problem: str
) -> None:
    repo = with_workflow(workflow)
    assert problem in failures(run(repo, "workflow-permissions"))["workflow-permissions"]


@pytest.mark.slow
def test_expression_injection_fails_checkov(with_workflow: Callable[[str], Path]) -> None:
    repo = with_workflow(injected())
    detail = failures(run(repo, CHECKOV))[CHECKOV]
    assert "CKV_GHA_2" in detail and "extra.yml" in detail


@pytest.mark.slow
def test_write_all_fails_checkov(with_workflow: Callable[[str], Path]) -> None:
    # top level: checkov's CKV2_GHA_1
    repo = with_workflow(with_top_permissions("permissions: write-all\n"))
    assert "CKV2_GHA_1" in failures(run(repo, CHECKOV))[CHECKOV]


@pytest.mark.slow
def test_a_workflow_checkov_cannot_read_fails_checkov(
    with_workflow: Callable[[str], Path],
) -> None:
    # A job with `permissions: write-all` breaks checkov's schema: checkov then skips the
    # whole file and reports no failure; the check notices the file was not scanned.
    detail = failures(run(with_workflow(with_job_permissions("write-all")), CHECKOV))[CHECKOV]
    assert "did not scan" in detail and "extra.yml" in detail


def test_missing_tools_fail_with_the_install_hint(
    rendered: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # no actionlint beside this Python nor on PATH
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    detail = failures(run(rendered(installed_backends()[0]), "actionlint"))["actionlint"]
    assert "actionlint is not installed" in detail and "mlgen[check]" in detail


# ------------------------------------------------------------------ what the workflows do
@pytest.mark.parametrize("delivery", list(DELIVERIES))
def test_every_workflow_is_least_privilege_bounded_and_serialised(
    rendered: Callable[..., Path], delivery: str
) -> None:
    repo = rendered(installed_backends()[0], delivery)
    for name in DELIVERIES[delivery]:
        workflow = load(repo, name)
        assert workflow["permissions"] == {"contents": "read"}, name
        assert workflow["concurrency"]["group"], name
        for job_name, job in workflow["jobs"].items():
            assert 0 < job["timeout-minutes"] <= 180, f"{name}: {job_name}"
        for job_name, step in steps(workflow):
            # untrusted data and secrets reach scripts through env:, never interpolated
            assert "${{" not in step.get("run", ""), f"{name}: {job_name}: {step.get('name')}"
            # no job waits through the canary's observation window
            assert not re.search(r"\bsleep\b", step.get("run", "")), f"{name}: {job_name}"


def test_retrain_triggers_and_delivery_chain(rendered: Callable[..., Path]) -> None:
    repo = rendered(installed_backends()[0])
    retrain = load(repo, "retrain.yml")
    on = triggers(retrain)
    assert on["schedule"] == [{"cron": "0 3 * * 1"}]
    assert "reason" in on["workflow_dispatch"]["inputs"]
    assert sorted(on["repository_dispatch"]["types"]) == ["drift-detected", "performance-degraded"]
    jobs = retrain["jobs"]
    assert list(jobs) == ["train", "build", "deploy-staging", "release"]
    assert jobs["build"]["if"] == "needs.train.outputs.champion == 'true'"
    assert jobs["build"]["permissions"] == {
        "contents": "read",
        "packages": "write",
        "id-token": "write",
    }
    assert jobs["deploy-staging"]["needs"] == "build"
    assert jobs["deploy-staging"]["environment"]["name"] == "staging"
    assert "deploy-staging" in jobs["release"]["needs"]
    assert jobs["release"]["environment"]["name"] == "production"
    # the image by digest for the Rollout, applied; the controller does the rest
    release = jobs["release"]["steps"][-1]["run"]
    assert 'pin production "${MODEL_NAME}" "${IMAGE}"' in release
    assert "kubectl apply" in release and "rollout status" not in release
    train_env = next(s for _, s in steps(retrain) if s.get("name", "").startswith("Train,"))["env"]
    assert train_env["MLFLOW_TRACKING_URI"] == "${{ secrets.MLFLOW_TRACKING_URI }}"

    drift = load(repo, "drift-check.yml")
    assert "schedule" in triggers(drift) and "workflow_dispatch" in triggers(drift)
    dispatch = drift["jobs"]["dispatch-retraining"]
    assert dispatch["permissions"] == {"actions": "write"}
    assert "gh workflow run retrain.yml" in dispatch["steps"][0]["run"]


def test_kustomize_delivery_deploys_a_canary_that_promote_judges_later(
    rendered: Callable[..., Path],
) -> None:
    repo = rendered(installed_backends()[0], "kustomize")
    jobs = load(repo, "retrain.yml")["jobs"]
    assert list(jobs) == ["train", "build", "deploy-staging", "deploy-canary"]
    assert jobs["deploy-canary"]["environment"]["name"] == "canary"
    deploy = next(
        s["run"]
        for s in jobs["deploy-canary"]["steps"]
        if "apply_and_wait canary" in s.get("run", "")
    )
    assert "mlgen.io/canary-since" in deploy  # when the observation began
    promote = load(repo, "promote.yml")
    assert set(triggers(promote)) == {"schedule", "workflow_dispatch"}  # no workflow_run wait
    assert promote["env"]["OBSERVATION_MINUTES"] == "60"
    judge = next(s["run"] for s in promote["jobs"]["release"]["steps"] if s.get("id") == "release")
    assert "mlgen.io/canary-since" in judge and '-lt "${MINUTES}"' in judge


def test_answers_reach_the_workflows_and_the_gate(template_root: Path, tmp_path: Path) -> None:
    repo = render(
        template_root,
        tmp_path / "repo",
        model_name="fraud-score",
        k8s_namespace="risk",
        retrain_schedule="15 2 * * 3",
        python_version="3.12",
        latency_slo_p95_ms=250,
        error_rate_slo=0.01,
        delivery="kustomize",
        observation_window_minutes=45,
    )
    for name in KUSTOMIZE_WORKFLOWS:
        text = (repo / ".github" / "workflows" / name).read_text(encoding="utf-8")
        assert "${{ " in text, f"{name}: GitHub expressions did not survive Jinja"
        assert "{%" not in text and "{#" not in text, name
        assert load(repo, name)["env"]["PYTHON_VERSION"] == "3.12"
    retrain = load(repo, "retrain.yml")
    assert triggers(retrain)["schedule"] == [{"cron": "15 2 * * 3"}]
    assert retrain["env"]["MODEL_NAME"] == "fraud-score"
    assert retrain["env"]["K8S_NAMESPACE"] == "risk"
    assert retrain["env"]["PACKAGE"] == "fraud_score"
    gate = tomllib.loads((repo / "deploy" / "canary-gate.toml").read_text(encoding="utf-8"))
    assert gate["thresholds"]["latency_p95_ms"] == 250.0
    assert gate["thresholds"]["error_rate"] == 0.01
    assert gate["prometheus"]["selector"] == 'namespace="risk", app="fraud-score", track="canary"'
    assert gate["prometheus"]["window"] == "45m"
    promote = (repo / ".github" / "workflows" / "promote.yml").read_text(encoding="utf-8")
    assert "python -m mlgen_runtime.gate" in promote and "deploy/canary-gate.toml" in promote


@pytest.mark.parametrize("backend", installed_backends())
def test_the_gate_queries_are_the_backends_metric_queries(
    rendered: Callable[..., Path], backend: str
) -> None:
    config = load_config(rendered(backend) / "deploy" / "canary-gate.toml")
    metrics = get_registry().get_backend(backend).backend.metrics
    assert config.queries == Queries(
        metrics.request_rate, metrics.error_rate, metrics.latency_quantile
    )


def test_the_canary_gate_tests_pass_in_the_generated_repo(
    rendered: Callable[..., Path],
) -> None:
    # The gate's configuration needs only mlgen-runtime's core; the repository's conftest
    # (training fixtures) is not needed for its tests.
    repo = rendered(installed_backends()[0])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--noconftest",
            GATE_TESTS,
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
