"""The canary analysis and the alerts, judged by a real Prometheus that scraped the real
generated FastAPI service under load.

For each case the service runs (``uvicorn``, as in production) with or without the
runtime's TEST-ONLY fault switch (``MLGEN_TEST_FAULTS``: injected 5xx answers or
latency), a ``prometheus`` process on loopback scrapes it every second with the labels a
canary pod's series carry in the cluster (``namespace``, ``app``, ``track``,
``rollouts_pod_template_hash``), and ``wrk`` loads it for :data:`LOAD_SECONDS` seconds.
Then, against what Prometheus scraped:

* every metric of the AnalysisTemplate in the built production overlay, its query
  exactly as shipped with the Rollout's arguments substituted, and its
  ``successCondition`` evaluated on the answer as Argo Rollouts would;
* the alert rules of ``deploy/monitoring/prometheus-rules.yaml``, loaded into that
  Prometheus with their ``for:`` durations dropped (the only change: a pending alert
  fires at once; how long each must hold is promtool's unit tests' business);
* the plain-kustomize canary gate (``mlgen_runtime.gate``) with
  ``deploy/canary-gate.toml`` as shipped.

A healthy canary passes everything; injected errors fail the error-rate condition and
fire the error alert; injected latency fails the latency condition; an idle canary
fails the minimum request count. The measured numbers are printed (``-s``).
"""

from __future__ import annotations

import ast
import math
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlgen_checks.kubernetes import build_overlays

from mlgen_runtime import gate
from mlgen_runtime.prometheus import api, query_vector, running_prometheus
from tests.conftest import BuiltRepos
from tests.test_serving_load import run_wrk, service, trained_service, wrk_script

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("prometheus") is None or shutil.which("wrk") is None,
        reason="needs prometheus and wrk (bash scripts/system-tools)",
    ),
]

LOAD_SECONDS = 10
CONNECTIONS = 4
CANARY_HASH = "6f9c7d5b8"
LABELS = {
    "namespace": "ml-serving",
    "app": "demo-model",
    "track": "canary",
    "rollouts_pod_template_hash": CANARY_HASH,
}
CASES = {
    # case: (MLGEN_TEST_FAULTS, load?, the analysis metrics that must fail, alerts that fire)
    "healthy": ("", True, set(), set()),
    "errors": ("error_rate=0.05", True, {"error-rate"}, {"ModelErrorRateHigh"}),
    "latency": ("latency_ms=200", True, {"p95-latency"}, {"ModelLatencyP95High"}),
    "idle": ("", False, {"requests", "error-rate", "p95-latency"}, set()),
}


# ------------------------------------------------------------------ Argo's conditions
_OPERATORS: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
}


def evaluate_condition(condition: str, result: list[float]) -> bool:
    """An Argo Rollouts ``successCondition`` (the expr language) on ``result``.

    Only what the generated AnalysisTemplate uses: ``&&``, ``||``, comparisons,
    ``result[i]``, ``len(result)``, ``isNaN(x)`` and numbers; anything else raises, as
    does ``result[0]`` on an empty result (Argo counts that as an erroneous measurement).
    Comparisons with NaN are false, as in Go.
    """
    text = condition.replace("&&", " and ").replace("||", " or ")

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.BoolOp):
            values = (value(item) for item in node.values)
            return all(values) if isinstance(node.op, ast.And) else any(values)
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            return _OPERATORS[type(node.ops[0])](value(node.left), value(node.comparators[0]))
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
            assert node.value.id == "result"
            return result[value(node.slice)]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and len(node.args) == 1:
            function = {"len": len, "isNaN": math.isnan}[node.func.id]
            return function(value(node.args[0]))
        if isinstance(node, ast.Name) and node.id == "result":
            return result
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        raise ValueError(f"not supported in {condition!r}: {ast.dump(node)}")

    return bool(value(ast.parse(text, mode="eval").body))


def test_condition_evaluator() -> None:
    condition = "len(result) == 1 && result[0] < 0.1"
    assert evaluate_condition(condition, [0.05])
    assert not evaluate_condition(condition, [0.2])
    assert not evaluate_condition(condition, [math.nan])
    assert not evaluate_condition(condition, [])
    with pytest.raises(IndexError):
        evaluate_condition("result[0] >= 100", [])


# ------------------------------------------------------------------ the real thing
def _substitute(text: str, arguments: dict[str, str]) -> str:
    for name, argument in arguments.items():
        text = text.replace(f"{{{{args.{name}}}}}", argument)
    assert "{{" not in text, text
    return text


def _without_for(rules_file: Path, target: Path) -> None:
    rules = yaml.safe_load(rules_file.read_text(encoding="utf-8"))
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("for", None)
    target.write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")


def _config(target: str) -> str:
    return yaml.safe_dump(
        {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["rules.yaml"],
            "scrape_configs": [
                {
                    "job_name": "canary",
                    "metrics_path": "/metrics",
                    "static_configs": [{"targets": [target], "labels": LABELS}],
                }
            ],
        }
    )


def _wait(what: str, condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen in {timeout} s"
        time.sleep(0.25)


def _scraped_after(url: str, moment: float) -> Callable[[], bool]:
    """Prometheus scraped the target and evaluated its rules after ``moment``."""

    def check() -> bool:
        targets = api(url, "/api/v1/targets")["activeTargets"]
        groups = api(url, "/api/v1/rules")["groups"]
        scraped = bool(targets) and all(  # no targets yet: discovery has not run
            target["health"] == "up" and _timestamp(target["lastScrape"]) > moment
            for target in targets
        )
        evaluated = bool(groups) and all(
            _timestamp(group["lastEvaluation"]) > moment + 1 for group in groups
        )
        return scraped and evaluated

    return check


def _timestamp(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.fixture(scope="module")
def canary_repo(built_repos: BuiltRepos, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    repo, environment = built_repos.get("fastapi")
    folder = tmp_path_factory.mktemp("canary")
    package, artifacts, rows = trained_service(repo, environment, folder)
    yield repo, environment, package, artifacts, wrk_script(rows[:8], folder)


@pytest.mark.parametrize("case", list(CASES))
def test_the_analysis_and_the_alerts_judge_real_scraped_metrics(
    canary_repo: Any, tmp_path: Path, case: str
) -> None:
    repo, environment, package, artifacts, script = canary_repo
    faults, load, must_fail, must_fire = CASES[case]
    analysis = next(
        m for m in build_overlays(repo)["production"] if m["kind"] == "AnalysisTemplate"
    )
    env = {"MODEL_PATH": str(artifacts / "model.onnx"), "MLGEN_TEST_FAULTS": faults}
    root = tmp_path / "prometheus"
    root.mkdir()
    _without_for(repo / "deploy/monitoring/prometheus-rules.yaml", root / "rules.yaml")
    with service(repo, environment, package, env, tmp_path / "server.log") as (base, _):
        target = base.removeprefix("http://")
        with running_prometheus(root, _config(target)) as url:
            _wait("a first scrape", _scraped_after(url, time.time() - 3600))
            wrk = run_wrk(base + "/predict", script, LOAD_SECONDS, CONNECTIONS) if load else {}
            _wait("a scrape after the load", _scraped_after(url, time.time()))
            arguments = {"canary-hash": CANARY_HASH, "prometheus-address": url}
            measured: dict[str, list[float]] = {}
            failed: set[str] = set()
            for metric in analysis["spec"]["metrics"]:
                query = _substitute(metric["provider"]["prometheus"]["query"], arguments)
                assert _substitute(metric["provider"]["prometheus"]["address"], arguments) == url
                measured[metric["name"]] = result = query_vector(url, query)
                if not evaluate_condition(metric["successCondition"], result):
                    failed.add(metric["name"])
            alerts = api(url, "/api/v1/alerts")["alerts"]
            firing = {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}
            config = gate.load_config(repo / "deploy/canary-gate.toml")
            decision = gate.decide(gate.measure(url, config), config.thresholds)
    p95 = measured["p95-latency"]
    error = measured["error-rate"]
    print(
        f"\n{case}: wrk {wrk.get('requests', 0)} requests ({wrk.get('non2xx', 0)} non-2xx); "
        f"Prometheus: requests {measured['requests']}, "
        f"p95 {[round(1000 * v, 1) for v in p95]} ms, error rate {error}; "
        f"analysis failed {sorted(failed) or 'nothing'}; firing {sorted(firing) or 'nothing'}; "
        f"gate: {decision.action} ({'; '.join(decision.reasons)})"
    )
    assert failed == must_fail
    assert must_fire <= firing
    if case == "healthy":
        assert not firing & {"ModelErrorRateHigh", "ModelLatencyP95High"}
        assert wrk["non2xx"] == 0
    assert decision.promote is (case == "healthy")
    if case == "errors":
        assert error[0] == pytest.approx(0.05, abs=0.01)
        assert any(reason.startswith("error rate") for reason in decision.reasons)
    if case == "latency":
        assert p95[0] > 0.2  # every request waited 200 ms at least
        assert any(reason.startswith("p95 latency") for reason in decision.reasons)
