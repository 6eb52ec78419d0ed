"""Container, Kubernetes and monitoring artifacts pass the real validators, and every
validator fails on an artifact broken on purpose (a check that cannot fail proves nothing).

One repository is rendered per backend per module; each breaking test edits a copy and
runs only the check it targets through ``mlgen check``'s runner. checkov takes 5-10 s a
run, so its tests are in the slow tier.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlgen_checks.kubernetes import build_overlays
from mlgen_checks.monitoring import PROMTOOL_HINT

from mlgen import CheckResult
from mlgen.check_runner import run_checks
from mlgen.checks import find_tool, run_tool
from mlgen.plugins import get_registry
from tests.fake_plugins import FakePlugin
from tests.rendering import installed_backends, render

FAST_CHECKS = (
    "kustomize",
    "kubernetes-validate",
    "custom-resources",
    "container-probes",
    "hadolint",
    "promtool",
    "grafana-dashboard",
)
CHECKOV_CHECKS = ("checkov-kubernetes", "checkov-dockerfile")

DEPLOYMENT = "deploy/k8s/base/deployment/deployment.yaml"
PRODUCTION = "deploy/k8s/overlays/production"
ROLLOUT = f"{PRODUCTION}/rollout.yaml"
ANALYSIS = f"{PRODUCTION}/analysis-template.yaml"
OPERATOR = "deploy/k8s/components/prometheus-operator"
RULES = "deploy/monitoring/prometheus-rules.yaml"
DASHBOARD = "deploy/monitoring/grafana-dashboard.json"


# ------------------------------------------------------------------ helpers
def run(repo: Path, *names: str) -> dict[str, CheckResult]:
    """Run the named checks on ``repo``; every one of them must be registered."""
    results = {check.name: result for check, result in run_checks(repo, only=names)}
    assert set(results) == set(names), f"not registered: {set(names) - set(results)}"
    return results


def failures(results: dict[str, CheckResult]) -> dict[str, str]:
    return {name: result.detail for name, result in results.items() if not result.ok}


def edit_text(path: Path, change: Callable[[str], str]) -> None:
    before = path.read_text(encoding="utf-8")
    after = change(before)
    assert after != before, f"the edit changed nothing in {path}"
    path.write_text(after, encoding="utf-8")


def edit_yaml(path: Path, change: Callable[[Any], None]) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def edit_json(path: Path, change: Callable[[Any], None]) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def dockerfile_instruction(keyword: str) -> re.Pattern[str]:
    """One Dockerfile instruction, continuation lines included."""
    return re.compile(rf"^{keyword}\b(?:[^\n]*\\\n)*[^\n]*$", re.MULTILINE)


def server(deployment: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def panel(dashboard: dict[str, Any], needle: str) -> dict[str, Any]:
    """The dashboard panel one of whose queries contains ``needle``."""
    return next(
        p
        for p in dashboard["panels"]
        if any(needle in target.get("expr", "") for target in p.get("targets", []))
    )


def rule(rules: dict[str, Any], alert: str) -> dict[str, Any]:
    return next(r for group in rules["groups"] for r in group["rules"] if r.get("alert") == alert)


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def rendered(
    tmp_path_factory: pytest.TempPathFactory, template_root: Path
) -> Callable[[str], Path]:
    """The repository generated with default answers for a backend (rendered once)."""
    repos: dict[str, Path] = {}

    def get(backend: str) -> Path:
        if backend not in repos:
            target = tmp_path_factory.mktemp("deploy") / backend
            repos[backend] = render(template_root, target, serving_backend=backend)
        return repos[backend]

    return get


@pytest.fixture
def copy_of(rendered: Callable[[str], Path], tmp_path: Path) -> Callable[[str], Path]:
    """A private copy of a backend's generated repository, to break."""

    def make(backend: str) -> Path:
        return Path(shutil.copytree(rendered(backend), tmp_path / "repo"))

    return make


# ------------------------------------------------------------------ everything passes
@pytest.mark.parametrize("backend", installed_backends())
def test_deploy_artifacts_pass_the_validators(
    rendered: Callable[[str], Path], backend: str
) -> None:
    assert failures(run(rendered(backend), *FAST_CHECKS)) == {}


@pytest.mark.slow
@pytest.mark.parametrize("backend", installed_backends())
def test_deploy_artifacts_pass_checkov(rendered: Callable[[str], Path], backend: str) -> None:
    results = run(rendered(backend), *CHECKOV_CHECKS)
    assert failures(results) == {}
    for result in results.values():
        assert " 0 failed, 0 skipped" in result.detail  # nothing waved through


@pytest.mark.parametrize("backend", installed_backends())
def test_manifests_follow_the_backend_and_the_restricted_profile(
    rendered: Callable[[str], Path], backend: str
) -> None:
    container_spec = get_registry().get_backend(backend).backend.container
    built = build_overlays(rendered(backend))
    assert sorted(built) == ["jobs", "production", "staging"]  # delivery: argo-rollouts
    for objects in (built["production"], built["staging"]):  # jobs: tests/test_batch_jobs.py
        kinds = sorted(manifest["kind"] for manifest in objects)
        assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"} <= set(
            kinds
        )
        assert {"ServiceAccount", "NetworkPolicy"} <= set(kinds)
        assert {manifest["metadata"]["namespace"] for manifest in objects} == {"ml-serving"}
        for manifest in objects:
            if manifest["kind"] != "Deployment":
                continue
            pod = manifest["spec"]["template"]
            container = server(manifest)
            assert [p["containerPort"] for p in container["ports"]] == [
                p.container_port for p in container_spec.ports
            ]
            assert container["readinessProbe"]["httpGet"] == {
                "path": container_spec.readiness.path.replace("{model_name}", "demo-model"),
                "port": container_spec.readiness.port,
            }
            assert container["resources"]["limits"]["memory"] == (
                container_spec.resources.memory_limit
            )
            assert re.fullmatch(
                r"registry\.example\.com/demo-model@sha256:0{64}", container["image"]
            )
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["readOnlyRootFilesystem"] is True
            assert security["capabilities"] == {"drop": ["ALL"]}
            assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
            assert pod["spec"]["securityContext"]["runAsUser"] > 0
            assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
            assert pod["spec"]["automountServiceAccountToken"] is False
            if container_spec.metrics_port:
                port = container_spec.port(container_spec.metrics_port).container_port
                assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)


@pytest.mark.parametrize("weight", [1, 5, 33, 45, 50])
def test_canary_takes_its_weight_of_the_pods(
    template_root: Path, tmp_path: Path, weight: int
) -> None:
    repo = render(
        template_root, tmp_path / "repo", canary_weight_percent=weight, delivery="kustomize"
    )
    objects = build_overlays(repo)["canary"]
    by_name = {(m["kind"], m["metadata"]["name"]): m for m in objects}
    canary = by_name["Deployment", "demo-model-canary"]
    stable = by_name["Deployment", "demo-model"]
    service = by_name["Service", "demo-model"]
    canary_pods = canary["spec"]["replicas"]
    stable_pods = by_name["HorizontalPodAutoscaler", "demo-model"]["spec"]["minReplicas"]
    assert abs(100 * canary_pods / (canary_pods + stable_pods) - weight) <= 0.5
    assert stable_pods >= 3  # production's minimum
    selector = service["spec"]["selector"].items()
    for deployment in (canary, stable):  # one Service in front of both tracks
        assert selector <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert canary["spec"]["selector"]["matchLabels"]["track"] == "canary"
    assert stable["spec"]["selector"]["matchLabels"]["track"] == "stable"
    assert "replicas" not in stable["spec"]  # the HPA owns it


def _by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {manifest["kind"]: manifest for manifest in objects}


@pytest.mark.parametrize(
    ("weight", "window", "slo_ms", "error_slo", "pods", "count"),
    [(5, 60, 100, 0.001, 20, 12), (20, 30, 250, 0.01, 5, 6), (50, 7, 80, 0.05, 3, 1)],
)
def test_production_is_a_rollout_judged_on_the_answers(
    template_root: Path,
    tmp_path: Path,
    weight: int,
    window: int,
    slo_ms: float,
    error_slo: float,
    pods: int,
    count: int,
) -> None:
    answers = {
        "canary_weight_percent": weight,
        "observation_window_minutes": window,
        "latency_slo_p95_ms": slo_ms,
        "error_rate_slo": error_slo,
    }
    repo = render(template_root, tmp_path / "repo", **answers)
    production = _by_kind(build_overlays(repo)["production"])
    rollout, analysis = production["Rollout"], production["AnalysisTemplate"]
    assert rollout["spec"]["workloadRef"]["name"] == production["Deployment"]["metadata"]["name"]
    assert rollout["spec"]["strategy"]["canary"]["canaryMetadata"]["labels"] == {"track": "canary"}
    assert "track" not in rollout["spec"]["selector"]["matchLabels"]  # the Rollout labels it
    steps = rollout["spec"]["strategy"]["canary"]["steps"]
    assert steps[0] == {"setWeight": weight}
    assert steps[1]["analysis"]["templates"] == [{"templateName": "demo-model-slo"}]
    assert analysis["metadata"]["name"] == "demo-model-slo"
    metrics = {metric["name"]: metric for metric in analysis["spec"]["metrics"]}
    assert set(metrics) == {"requests", "error-rate", "p95-latency"}
    for metric in metrics.values():
        assert metric["interval"] == "5m" and metric["count"] == count
        assert metric["failureLimit"] == 0
        assert "{{args.canary-hash}}" in metric["provider"]["prometheus"]["query"]
    assert metrics["p95-latency"]["successCondition"].endswith(f"< {slo_ms / 1000}")
    assert metrics["error-rate"]["successCondition"].endswith(f"< {error_slo}")
    assert metrics["requests"]["successCondition"].endswith(">= 100")  # idle never passes
    hpa = production["HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "Rollout"
    assert hpa["spec"]["minReplicas"] == pods  # a replica-ratio canary needs 100/weight pods
    assert hpa["spec"]["maxReplicas"] > pods
    services = {
        m["metadata"]["name"] for m in build_overlays(repo)["production"] if m["kind"] == "Service"
    }
    canary = rollout["spec"]["strategy"]["canary"]
    assert {canary["stableService"], canary["canaryService"], "demo-model"} == services
    assert f"{weight} %" in (repo / "docs/delivery.md").read_text(encoding="utf-8")


def test_the_prometheus_rule_carries_the_plain_rules(rendered: Callable[[str], Path]) -> None:
    repo = rendered("fastapi")
    production = _by_kind(build_overlays(repo)["production"])
    plain = yaml.safe_load((repo / RULES).read_text(encoding="utf-8"))
    assert production["PrometheusRule"]["spec"] == plain
    monitor = production["ServiceMonitor"]["spec"]
    selected = [
        m["metadata"]["name"]
        for m in build_overlays(repo)["production"]
        if m["kind"] == "Service"
        and monitor["selector"]["matchLabels"].items() <= m["metadata"]["labels"].items()
    ]
    assert selected == ["demo-model"]  # each pod scraped once, not again per Rollout Service
    assert "rollouts-pod-template-hash" in monitor["podTargetLabels"]


@pytest.mark.parametrize("backend", installed_backends())
def test_the_test_only_fault_switch_is_never_set_for_a_deployment(
    rendered: Callable[[str], Path], backend: str
) -> None:
    # mlgen_runtime.serving.faults reads MLGEN_TEST_FAULTS at start-up only; nothing the
    # repository deploys (image, manifests, workflows) may set it
    repo = rendered(backend)
    deployed = [repo / "Dockerfile", *(repo / "deploy").rglob("*"), *(repo / ".github").rglob("*")]
    assert not [
        path
        for path in deployed
        if path.is_file() and "MLGEN_TEST_FAULTS" in path.read_text(encoding="utf-8")
    ]
    for objects in build_overlays(repo).values():
        assert "MLGEN_TEST_FAULTS" not in json.dumps(objects)


def test_kustomize_delivery_keeps_the_canary_deployment(
    template_root: Path, tmp_path: Path
) -> None:
    repo = render(template_root, tmp_path / "repo", delivery="kustomize")
    built = build_overlays(repo)
    assert sorted(built) == ["canary", "jobs", "production", "staging"]
    kinds = {m["kind"] for objects in built.values() for m in objects}
    assert "Rollout" not in kinds and "AnalysisTemplate" not in kinds
    assert (repo / "deploy/canary-gate.toml").is_file()
    assert failures(run(repo, *FAST_CHECKS)) == {}


# ------------------------------------------------------------------ each check can fail
def _break_kustomization(repo: Path) -> None:
    edit_text(
        repo / "deploy/k8s/base/kustomization.yaml",
        lambda text: text.replace("  - pdb.yaml\n", "  - pdb.yaml\n  - missing.yaml\n"),
    )


def _removed_api_version(repo: Path) -> None:
    edit_text(
        repo / DEPLOYMENT,
        lambda text: text.replace("apiVersion: apps/v1", "apiVersion: extensions/v1beta1"),
    )


def _unknown_field(repo: Path) -> None:
    edit_yaml(repo / DEPLOYMENT, lambda d: d["spec"].update(replica=2))


def _probe_on_missing_port(repo: Path) -> None:
    edit_yaml(
        repo / DEPLOYMENT,
        lambda d: server(d)["livenessProbe"]["httpGet"].update(port="nosuchport"),
    )


def _service_to_missing_port(repo: Path) -> None:
    edit_yaml(
        repo / "deploy/k8s/base/service.yaml",
        lambda d: d["spec"]["ports"][0].update(targetPort="nosuchport"),
    )


def _expose_other_port(repo: Path) -> None:
    edit_text(repo / "Dockerfile", lambda text: text + "EXPOSE 65000\n")


def _healthcheck_elsewhere(repo: Path) -> None:
    edit_text(
        repo / "Dockerfile",
        lambda text: dockerfile_instruction("HEALTHCHECK").sub(
            'HEALTHCHECK CMD ["wget", "-q", "-O-", "http://127.0.0.1:65000/nowhere"]', text
        ),
    )


def _other_image_user(repo: Path) -> None:
    edit_text(repo / "Dockerfile", lambda text: text + "USER 4242:4242\n")


def _shell_form_healthcheck(repo: Path) -> None:
    edit_text(
        repo / "Dockerfile",
        lambda text: dockerfile_instruction("HEALTHCHECK").sub(
            "HEALTHCHECK CMD wget -q -O- http://127.0.0.1:8080/health || exit 1", text
        ),
    )


def _root_user(repo: Path) -> None:
    edit_text(repo / "Dockerfile", lambda text: text + "USER root\n")


def _weight_as_text(repo: Path) -> None:
    edit_yaml(
        repo / ROLLOUT,
        lambda d: d["spec"]["strategy"]["canary"]["steps"][0].update(setWeight="5%"),
    )


def _analysis_without_provider(repo: Path) -> None:
    edit_yaml(repo / ANALYSIS, lambda d: d["spec"]["metrics"][0].pop("provider"))


def _monitor_without_endpoints(repo: Path) -> None:
    edit_yaml(repo / f"{OPERATOR}/servicemonitor.yaml", lambda d: d["spec"].update(endpoints="all"))


def _bad_promql(repo: Path) -> None:
    edit_yaml(
        repo / RULES,
        lambda d: rule(d, "ModelErrorRateHigh").update(
            expr=rule(d, "ModelErrorRateHigh")["expr"] + " +"
        ),
    )


def _drift_alert_too_slow(repo: Path) -> None:
    # Still valid PromQL: only the unit tests (promtool test rules) notice.
    edit_yaml(repo / RULES, lambda d: rule(d, "ModelFeatureDrift").update({"for": "1h"}))


def _dashboard_without_drift_panel(repo: Path) -> None:
    def change(dashboard: Any) -> None:
        dashboard["panels"].remove(panel(dashboard, "model_feature_psi"))

    edit_json(repo / DASHBOARD, change)


def _dashboard_not_json(repo: Path) -> None:
    edit_text(repo / DASHBOARD, lambda text: text.rstrip()[:-1] + ",\n")


def _panel_without_query(repo: Path) -> None:
    def change(dashboard: Any) -> None:
        panel(dashboard, "model_prediction_probability_bucket")["targets"][0]["expr"] = ""

    edit_json(repo / DASHBOARD, change)


def _panel_with_bad_promql(repo: Path) -> None:
    def change(dashboard: Any) -> None:
        panel(dashboard, "model_feature_psi")["targets"][0]["expr"] += ")"

    edit_json(repo / DASHBOARD, change)


BREAKAGES: list[tuple[str, Callable[[Path], None], str, str]] = [
    # (case, break the repository, the check that must fail, what its detail must say)
    ("missing-resource", _break_kustomization, "kustomize", "missing.yaml"),
    ("removed-api", _removed_api_version, "kubernetes-validate", "extensions/v1beta1 Deployment"),
    ("unknown-field", _unknown_field, "kubernetes-validate", "'replica' was unexpected"),
    ("probe-port", _probe_on_missing_port, "container-probes", "livenessProbe"),
    ("service-port", _service_to_missing_port, "container-probes", "targetPort 'nosuchport'"),
    ("expose", _expose_other_port, "container-probes", "EXPOSEs 65000"),
    ("healthcheck", _healthcheck_elsewhere, "container-probes", "HEALTHCHECK calls"),
    ("image-user", _other_image_user, "container-probes", "USER is 4242:4242"),
    ("shell-healthcheck", _shell_form_healthcheck, "hadolint", "DL3025"),
    ("root-user", _root_user, "hadolint", "DL3002"),
    ("rollout-weight", _weight_as_text, "custom-resources", "setWeight must be integer"),
    (
        "analysis",
        _analysis_without_provider,
        "custom-resources",
        "metrics/0 must have required property provider",
    ),
    ("monitor", _monitor_without_endpoints, "custom-resources", "endpoints must be array"),
    ("bad-promql", _bad_promql, "promtool", "check rules"),
    ("alert-test", _drift_alert_too_slow, "promtool", "ModelFeatureDrift"),
    ("no-drift-panel", _dashboard_without_drift_panel, "grafana-dashboard", "no feature drift"),
    ("not-json", _dashboard_not_json, "grafana-dashboard", "not JSON"),
    ("no-query", _panel_without_query, "grafana-dashboard", "has no expr"),
    ("panel-promql", _panel_with_bad_promql, "grafana-dashboard", "not PromQL"),
]


def _cases(
    breakages: list[tuple[str, Callable[[Path], None], str, str]],
) -> Iterator[Any]:
    for backend in installed_backends():
        for case, breaker, check, message in breakages:
            yield pytest.param(backend, breaker, check, message, id=f"{backend}-{check}-{case}")


@pytest.mark.parametrize(("backend", "breaker", "check", "message"), list(_cases(BREAKAGES)))
def test_check_fails_on_a_broken_artifact(
    copy_of: Callable[[str], Path],
    backend: str,
    breaker: Callable[[Path], None],
    check: str,
    message: str,
) -> None:
    repo = copy_of(backend)
    breaker(repo)
    result = run(repo, check)[check]
    assert not result.ok, f"{check} passed a broken artifact: {result.detail}"
    assert message in result.detail


def _root_pod(repo: Path) -> None:
    def change(deployment: Any) -> None:
        deployment["spec"]["template"]["spec"]["securityContext"].update(
            runAsNonRoot=False, runAsUser=0
        )
        server(deployment)["securityContext"].update(runAsNonRoot=False, runAsUser=0)

    edit_yaml(repo / DEPLOYMENT, change)


def _no_user_no_healthcheck(repo: Path) -> None:
    edit_text(repo / "Dockerfile", lambda text: dockerfile_instruction("USER").sub("", text))
    edit_text(repo / "Dockerfile", lambda text: dockerfile_instruction("HEALTHCHECK").sub("", text))


CHECKOV_BREAKAGES = [
    ("root-container", _root_pod, "checkov-kubernetes", "CKV_K8S_23"),
    ("no-user", _no_user_no_healthcheck, "checkov-dockerfile", "CKV_DOCKER_3"),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("backend", "breaker", "check", "message"), list(_cases(CHECKOV_BREAKAGES))
)
def test_checkov_fails_on_a_broken_artifact(
    copy_of: Callable[[str], Path],
    backend: str,
    breaker: Callable[[Path], None],
    check: str,
    message: str,
) -> None:
    repo = copy_of(backend)
    breaker(repo)
    result = run(repo, check)[check]
    assert not result.ok, f"{check} passed a broken artifact: {result.detail}"
    assert message in result.detail


# ------------------------------------------------------------------ the alerts fire
SERVING_ALERT_TESTS = """
rule_files: [prometheus-rules.yaml]
evaluation_interval: 1m
tests:
  - name: slow predictions page once p95 has been above the objective for 10 minutes
    interval: 1m
    input_series:
      # every request takes 0.1-0.25 s: p95 = 0.1 + 0.95 * 0.15 = 0.2425 s > 0.1 s
      - series: 'model_request_duration_seconds_bucket{{{sel}, track="stable", le="0.1"}}'
        values: '0x30'
      - series: 'model_request_duration_seconds_bucket{{{sel}, track="stable", le="0.25"}}'
        values: '0+100x30'
      - series: 'model_request_duration_seconds_bucket{{{sel}, track="stable", le="+Inf"}}'
        values: '0+100x30'
    alert_rule_test:
      - eval_time: 8m
        alertname: ModelLatencyP95High
        exp_alerts: []
      - eval_time: 20m
        alertname: ModelLatencyP95High
        exp_alerts:
          - exp_labels: {{severity: page, model: demo-model}}
            exp_annotations:
              summary: "demo-model: p95 latency above the 100 ms objective"
              description: "p95 latency over 5m is 242.5ms (objective 100 ms) for 10 minutes."
  - name: a failing canary pages, and drags the overall error rate over the objective
    interval: 1m
    input_series:
      - series: 'model_requests_total{{{sel}, track="stable", status="200"}}'
        values: '0+1000x30'
      - series: 'model_requests_total{{{sel}, track="canary", status="200"}}'
        values: '0+90x30'
      - series: 'model_requests_total{{{sel}, track="canary", status="500"}}'
        values: '0+10x30'
    alert_rule_test:
      - eval_time: 20m
        alertname: ModelErrorRateHigh
        exp_alerts:
          - exp_labels: {{severity: page, model: demo-model}}
            exp_annotations:
              summary: "demo-model: error rate above the 0.001 objective"
              description: "0.9091% of requests failed over 5m (objective 0.001)."
      - eval_time: 20m
        alertname: ModelCanaryErrorRateHigh
        exp_alerts:
          - exp_labels: {{severity: page, model: demo-model, track: canary}}
            exp_annotations:
              summary: "demo-model: the canary's error rate is above the 0.001 objective"
              description: "10% of the canary's requests failed over 5m: stop the rollout \\
                (kubectl argo rollouts abort demo-model)."
"""
THROUGHPUT_ALERT_TEST = """
rule_files: [prometheus-rules.yaml]
evaluation_interval: 10m  # eight days of series: evaluate every 10 minutes, not every one
tests:
  - name: throughput under 80% of the same hour a week earlier
    interval: 10m
    input_series:
      # 10 requests/s for eight days, then 1 request/s
      - series: 'model_requests_total{{{sel}, track="stable", status="200"}}'
        values: '0+6000x1152 6912600+600x30'
    alert_rule_test:
      - eval_time: 11520m
        alertname: ModelThroughputLow
        exp_alerts: []
      - eval_time: 11820m
        alertname: ModelThroughputLow
        exp_alerts:
          - exp_labels: {{severity: ticket, model: demo-model}}
            exp_annotations:
              summary: "demo-model: throughput below 80% of the same hour last week"
              description: "1 requests/s over the last hour, \\
                under 80% of the rate one week earlier."
"""


@pytest.mark.skipif("fastapi" not in installed_backends(), reason="FastAPI metric names")
def test_serving_alerts_fire_on_fastapi_metrics(
    copy_of: Callable[[str], Path],
) -> None:
    """The backend's PromQL, the SLO units (ms vs s) and the week-ago baseline, end to end."""
    repo = copy_of("fastapi")
    monitoring = repo / "deploy/monitoring"
    selector = 'namespace="ml-serving", app="demo-model", endpoint="/predict"'
    promtool = find_tool("promtool", PROMTOOL_HINT)
    for name, tests in (("serving", SERVING_ALERT_TESTS), ("throughput", THROUGHPUT_ALERT_TEST)):
        (monitoring / f"{name}.test.yaml").write_text(tests.format(sel=selector), encoding="utf-8")
        result = run_tool([promtool, "test", "rules", f"{name}.test.yaml"], cwd=monitoring)
        assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------ another backend
GPU_BACKEND = """
import mlgen

MLGEN_PLUGIN_API = 1

BACKEND = mlgen.Backend(
    name="gpuserve",
    description="A GPU backend with a separate metrics port",
    export_format="torchscript",
    templates_package=__name__,
    container=mlgen.ContainerSpec(
        base_image="nvcr.io/example/server:1.0",
        command=("serve",),
        ports=(mlgen.Port("http", 8000), mlgen.Port("metrics", 9100)),
        readiness=mlgen.Probe("/v2/health/ready", "http"),
        liveness=mlgen.Probe("/v2/health/live", "http"),
        resources=mlgen.Resources(cpu_limit="4", memory_limit="8Gi", gpus=1),
        metrics_port="metrics",
        metrics_path="/prom",
    ),
    smoke_test=("true",),
    metrics=mlgen.MetricQueries(
        request_rate='sum(rate(inference_count{{selector}}[{window}]))',
        error_rate='sum(rate(inference_fail{{selector}}[{window}]))',
        latency_quantile=(
            'histogram_quantile({quantile}, sum by (le) '
            '(rate(inference_seconds_bucket{{selector}}[{window}])))'
        ),
    ),
)


@mlgen.hookimpl
def mlgen_register_backends(register):
    register(BACKEND)
"""

GPU_DOCKERFILE = """FROM nvcr.io/example/server:1.0
USER 10001:10001
EXPOSE 8000 9100
HEALTHCHECK CMD ["curl", "-fsS", "http://localhost:8000/v2/health/live"]
CMD ["serve"]
"""


def test_manifests_follow_a_gpu_backend_with_a_metrics_port(
    template_root: Path, tmp_path: Path, plugin_site: Path
) -> None:
    FakePlugin(
        "mlgen-gpuserve",
        "mlgen_gpuserve_plugin",
        "gpuserve",
        GPU_BACKEND,
        files={"Dockerfile": GPU_DOCKERFILE},
    ).install(plugin_site)
    repo = render(template_root, tmp_path / "repo", serving_backend="gpuserve")
    checks = (
        "kustomize",
        "kubernetes-validate",
        "container-probes",
        "promtool",
        "grafana-dashboard",
    )
    assert failures(run(repo, *checks)) == {}

    production = {(m["kind"], m["metadata"]["name"]): m for m in build_overlays(repo)["production"]}
    deployment = production["Deployment", "demo-model"]
    pod = deployment["spec"]["template"]
    resources = server(deployment)["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"] == "1"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["spec"][
        "tolerations"
    ]
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "9100"
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == "/prom"
    policy = production["NetworkPolicy", "demo-model"]
    assert [p["port"] for p in policy["spec"]["ingress"][0]["ports"]] == ["http", "metrics"]
    rules = (repo / RULES).read_text(encoding="utf-8")
    assert 'inference_count{namespace="ml-serving", app="demo-model"}[1h] offset 1w' in rules
