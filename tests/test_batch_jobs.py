"""The production profile's batch jobs (deploy/k8s/jobs) and their workflows: CronJobs for
materialization, the new-data trigger and training carry the answers, build and validate
like the overlays (strict schemas, checkov), and ``retrain_on_cluster`` makes the Retrain
workflow start the in-cluster Job instead of training on the runner."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlgen_checks.kubernetes import build_overlays, run_checkov

from mlgen.check_runner import run_checks
from tests.rendering import render

ANSWERS = {
    "serving_backend": "fastapi",
    "model_name": "fraud-score",
    "materialize_schedule": "*/20 * * * *",
    "retrain_schedule": "15 2 * * 3",
    "retrain_min_new_rows": 1234,
    "training_cpu": "3",
    "training_memory": "6Gi",
    "retrain_on_cluster": True,
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, template_root: Path) -> Path:
    return render(template_root, tmp_path_factory.mktemp("jobs") / "repo", **ANSWERS)


def _cronjobs(repo: Path) -> dict[str, Any]:
    objects = build_overlays(repo)["jobs"]
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == "CronJob"}


def test_the_cronjobs_carry_the_answers(repo: Path) -> None:
    cronjobs = _cronjobs(repo)
    assert sorted(cronjobs) == [
        "fraud-score-materialize",
        "fraud-score-new-data",
        "fraud-score-train",
    ]
    schedules = {name: job["spec"]["schedule"] for name, job in cronjobs.items()}
    assert schedules == {
        "fraud-score-materialize": "*/20 * * * *",
        "fraud-score-new-data": "*/20 * * * *",
        "fraud-score-train": "15 2 * * 3",
    }
    for name, job in cronjobs.items():
        pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["image"].endswith("@sha256:" + "0" * 64)  # pinned by the kustomization
        environment = {item["name"]: item.get("value") for item in container["env"]}
        assert environment["MLGEN_PROFILE"] == "production"
        assert pod["volumes"][0]["secret"]["secretName"] == "fraud-score-production"
        if not name.endswith("materialize"):
            assert container["resources"]["limits"] == {"cpu": "3", "memory": "6Gi"}
    command = cronjobs["fraud-score-new-data"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert command["containers"][0]["command"] == [
        "python",
        "-m",
        "fraud_score.new_data",
        "--retrain",
    ]
    new_data = (repo / "src" / "fraud_score" / "new_data.py").read_text(encoding="utf-8")
    assert "MIN_NEW_ROWS = 1234" in new_data


def test_the_jobs_build_and_validate_strictly(repo: Path) -> None:
    results = {c.name: r for c, r in run_checks(repo, only=("kustomize", "kubernetes-validate"))}
    assert all(result.ok for result in results.values()), results
    assert "jobs (5 objects)" in results["kustomize"].detail


@pytest.mark.slow
def test_the_jobs_pass_checkov_and_a_root_pod_does_not(repo: Path, tmp_path: Path) -> None:
    (result,) = [r for _, r in run_checks(repo, only=("checkov-kubernetes",))]
    assert result.ok, result.detail
    broken = tmp_path / "broken"
    shutil.copytree(repo, broken)
    jobs = broken / "deploy" / "k8s" / "jobs" / "cronjobs.yaml"
    jobs.write_text(
        jobs.read_text(encoding="utf-8").replace(
            "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true"
        ),
        encoding="utf-8",
    )
    (result,) = [r for _, r in run_checks(broken, only=("checkov-kubernetes",))]
    assert not result.ok and "CKV_K8S_20" in result.detail


def _job_from_cronjob(cronjob: dict[str, Any], name: str) -> dict[str, Any]:
    """The Job ``kubectl create job NAME --from=cronjob/...`` creates (kubectl's
    ``create_job.go``: the CronJob's jobTemplate, its labels and annotations, plus the
    manual-instantiation annotation)."""
    template = cronjob["spec"]["jobTemplate"]
    metadata = template.get("metadata", {})
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": cronjob["metadata"]["namespace"],
            "labels": metadata.get("labels", {}),
            "annotations": {
                **metadata.get("annotations", {}),
                "cronjob.kubernetes.io/instantiate": "manual",
            },
        },
        "spec": template["spec"],
    }


@pytest.mark.slow
def test_the_one_off_training_job_validates(repo: Path, tmp_path: Path) -> None:
    """The Retrain workflow's in-cluster run is a Job made from CronJob <model>-train (one
    pod spec for both, and no Job in the applied overlay: a Job's pod template is
    immutable, so re-applying a changed one would fail). That Job is itself valid."""
    from kubernetes_validate import utils

    job = _job_from_cronjob(_cronjobs(repo)["fraud-score-train"], "fraud-score-train-manual")
    utils.validate(job, utils.latest_version(), strict=True)
    # Scanned beside the jobs' NetworkPolicy, which selects it as it selects the CronJobs'.
    policies = [o for o in build_overlays(repo)["jobs"] if o["kind"] == "NetworkPolicy"]
    (tmp_path / "job.yaml").write_text(yaml.safe_dump_all([job, *policies]), encoding="utf-8")
    result = run_checkov(tmp_path, "kubernetes", ["-f", "job.yaml"])
    assert result.ok, result.detail
    assert job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {
        "cpu": "3",
        "memory": "6Gi",
    }


def _steps(workflow: dict[str, Any]) -> dict[str, Any]:
    return {
        step.get("name", ""): step for job in workflow["jobs"].values() for step in job["steps"]
    }


def test_retrain_on_cluster_starts_the_job(repo: Path, template_root: Path, tmp_path: Path) -> None:
    workflows = repo / ".github" / "workflows"
    retrain = yaml.safe_load((workflows / "retrain.yml").read_text(encoding="utf-8"))
    steps = _steps(retrain)
    cluster = steps["Train, evaluate, compare to the champion and register, in the cluster"]
    assert 'kubectl create job "${job}" --from="cronjob/${MODEL_NAME}-train"' in cluster["run"]
    assert "fetch-latest --out artifacts" in steps["Fetch the version the Job registered"]["run"]
    assert retrain["jobs"]["train"]["environment"]["name"] == "training"
    assert not any('python -m "${PACKAGE}.train"' in s.get("run", "") for s in steps.values())

    on_runner = render(template_root, tmp_path / "runner", serving_backend="fastapi")
    text = (on_runner / ".github" / "workflows" / "retrain.yml").read_text(encoding="utf-8")
    assert (
        'python -m "${PACKAGE}.train" --out artifacts' in text and "kubectl create job" not in text
    )


def test_the_drift_check_also_runs_the_new_data_trigger(repo: Path) -> None:
    path = repo / ".github" / "workflows" / "drift-check.yml"
    drift = yaml.safe_load(path.read_text(encoding="utf-8"))
    check = _steps(drift)["Run the new-data check"]
    assert 'python -m "${PACKAGE}.new_data"' in check["run"]
    assert check["env"]["MLGEN_PROFILE"] == "production"
    dispatch = drift["jobs"]["dispatch-retraining"]
    assert dispatch["needs"] == ["drift", "new-data"]
    assert "needs.new-data.outputs.due == 'true'" in dispatch["if"]
