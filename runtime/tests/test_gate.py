"""The canary gate's decision, configuration and command line (Prometheus itself is in
``integration/test_gate_prometheus.py``, against a real server)."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mlgen_runtime import gate

SLO_MS, ERROR_SLO, MIN_REQUESTS = 300.0, 0.001, 100.0
LIMITS = gate.Thresholds(SLO_MS, ERROR_SLO, MIN_REQUESTS)
CONFIG = """\
[thresholds]
latency_p95_ms = 300.0
error_rate = 0.001
min_requests = 100

[prometheus]
selector = 'app="churn", track="canary"'
window = "30m"

[queries]
request_rate = 'sum(rate(requests_total{{selector}}[{window}]))'
error_rate = 'sum(rate(requests_total{{selector}, status=~"5.."}[{window}]))'
latency_quantile = 'histogram_quantile({quantile}, sum by (le) (rate(b{{selector}}[{window}])))'
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "canary-gate.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def _decide(p95_ms: float, error_rate: float, requests: float = 1000.0) -> gate.Decision:
    return gate.decide(gate.Measurement(p95_ms, error_rate, requests), LIMITS)


# ------------------------------------------------------------------ decision
def test_promotes_a_busy_canary_below_both_objectives() -> None:
    decision = _decide(SLO_MS * 0.5, ERROR_SLO * 0.5)
    assert decision.promote and decision.action == "promote"
    assert len(decision.reasons) == 3


@pytest.mark.parametrize(
    ("p95_ms", "error_rate", "requests", "blamed"),
    [
        (SLO_MS, ERROR_SLO / 2, 1000, "p95 latency"),  # at the objective is not below it
        (SLO_MS * 1.5, ERROR_SLO / 2, 1000, "p95 latency"),
        (SLO_MS / 2, ERROR_SLO, 1000, "error rate"),
        (SLO_MS / 2, ERROR_SLO * 3, 1000, "error rate"),
        (math.nan, ERROR_SLO / 2, 1000, "p95 latency is unknown"),  # no samples
        (SLO_MS / 2, math.nan, 1000, "error rate is unknown"),
        (math.inf, 0.0, 1000, "p95 latency is unknown"),
        (-1.0, 0.0, 1000, "p95 latency is unknown"),
        (SLO_MS / 2, 0.0, MIN_REQUESTS - 1, "requests"),  # an idle canary showed nothing
        (SLO_MS / 2, 0.0, math.nan, "requests"),
    ],
)
def test_rolls_back_unless_every_objective_is_met(
    p95_ms: float, error_rate: float, requests: float, blamed: str
) -> None:
    decision = _decide(p95_ms, error_rate, requests)
    assert not decision.promote and decision.action == "rollback"
    assert any(reason.startswith(blamed) for reason in decision.reasons), decision.reasons


def test_every_failure_is_reported() -> None:
    assert len(_decide(SLO_MS * 2, ERROR_SLO * 2, 0).reasons) == 3


@pytest.mark.parametrize(
    ("window", "seconds"), [("30m", 1800), ("1h30m", 5400), ("90s", 90), ("500ms", 0.5)]
)
def test_window_seconds(window: str, seconds: float) -> None:
    assert gate.window_seconds(window) == seconds


@pytest.mark.parametrize("window", ["", "30", "m", "30 m", "1h-5m", "3x"])
def test_window_must_be_a_promql_duration(window: str) -> None:
    with pytest.raises(gate.GateError, match="not a PromQL duration"):
        gate.window_seconds(window)


def test_queries_are_filled_by_plain_replacement() -> None:
    config = gate.parse_config(CONFIG)
    rendered = config.queries.render('app="x"', "5m", 0.99)
    assert rendered["request_rate"] == 'sum(rate(requests_total{app="x"}[5m]))'
    assert rendered["latency_quantile"].startswith("histogram_quantile(0.99, ")


# ------------------------------------------------------------------ configuration
def test_load_config(config_file: Path) -> None:
    config = gate.load_config(config_file)
    assert config.thresholds == LIMITS
    assert config.window == "30m" and config.selector == 'app="churn", track="canary"'


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda text: text.replace("[queries]", "[other]"), "incomplete"),
        (lambda text: text.replace("error_rate = 0.001\n", ""), "incomplete"),
        (lambda text: text.replace("latency_p95_ms", "latency_ms"), "incomplete"),
        (lambda text: text.replace('"30m"', '"half an hour"'), "PromQL duration"),
        (lambda text: text.replace("{{selector}}[", "{}["), "must contain {selector}"),
        (lambda text: text + "[broken", "cannot read"),
    ],
)
def test_a_broken_config_is_refused(config_file: Path, edit: object, message: str) -> None:
    assert callable(edit)
    config_file.write_text(edit(CONFIG), encoding="utf-8")
    with pytest.raises(gate.GateError, match=message):
        gate.load_config(config_file)


# ------------------------------------------------------------------ command line
def _decide_args(config: Path, p95_ms: float, requests: float = 1000) -> list[str]:
    return [
        "decide",
        "--config",
        str(config),
        "--p95-ms",
        str(p95_ms),
        "--error-rate",
        "0",
        "--requests",
        str(requests),
    ]


def test_decide_exit_status_and_report(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert gate.main(_decide_args(config_file, SLO_MS / 2)) == gate.PROMOTE
    report = json.loads(capsys.readouterr().out)
    assert report["decision"] == "promote"
    assert report["thresholds"] == {
        "latency_p95_ms": SLO_MS,
        "error_rate": ERROR_SLO,
        "min_requests": MIN_REQUESTS,
    }
    assert gate.main(_decide_args(config_file, SLO_MS * 2)) == gate.ROLLBACK
    assert json.loads(capsys.readouterr().out)["decision"] == "rollback"
    assert gate.main(_decide_args(config_file, SLO_MS / 2, requests=5)) == gate.ROLLBACK


def test_thresholds_can_be_overridden(config_file: Path) -> None:
    slow = _decide_args(config_file, SLO_MS * 2)
    assert gate.main([*slow, "--latency-slo-ms", str(SLO_MS * 3)]) == gate.PROMOTE
    idle = _decide_args(config_file, SLO_MS / 2, requests=5)
    assert gate.main([*idle, "--min-requests", "1"]) == gate.PROMOTE


def test_nan_is_reported_as_json_null(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert gate.main(_decide_args(config_file, math.nan)) == gate.ROLLBACK
    assert json.loads(capsys.readouterr().out)["measurement"]["p95_ms"] is None


def test_unreadable_config_and_unreachable_prometheus_exit_2(
    config_file: Path, tmp_path: Path
) -> None:
    assert gate.main(_decide_args(tmp_path / "missing.toml", 1.0)) == gate.ERROR
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    url = f"http://127.0.0.1:{closed}"
    arguments = ["--config", str(config_file), "--prometheus-url", url, "--timeout", "5"]
    assert gate.main(["gate", *arguments]) == gate.ERROR
    assert gate.main(["measure", *arguments]) == gate.ERROR
    assert gate.main(["gate", *arguments, "--window", "soon"]) == gate.ERROR


def test_runs_as_a_module(config_file: Path) -> None:
    def run(*argv: str) -> int:
        command = [sys.executable, "-m", "mlgen_runtime.gate", *argv]
        return subprocess.run(command, capture_output=True, check=False).returncode

    assert run(*_decide_args(config_file, SLO_MS / 2)) == gate.PROMOTE
    assert run(*_decide_args(config_file, SLO_MS * 2)) == gate.ROLLBACK
    assert run("decide") == gate.ERROR  # usage error
