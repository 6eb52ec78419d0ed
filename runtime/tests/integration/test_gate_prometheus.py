"""The canary gate against a real Prometheus server answering real PromQL.

The canaries' histories are written as OpenMetrics with explicit timestamps, turned
into TSDB blocks by ``promtool tsdb create-blocks-from openmetrics`` (Prometheus's own
backfill) and served by a ``prometheus`` process on a loopback port, so the numbers the
gate sees are computed by Prometheus's ``rate`` and ``histogram_quantile`` over a full
30-minute window, with no waiting for scrapes. The history runs from 40 minutes ago to
10 minutes ahead, so the window is covered whenever the test queries.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from mlgen_runtime import gate
from mlgen_runtime.prometheus import running_prometheus

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None or shutil.which("promtool") is None,
    reason="needs the prometheus and promtool binaries (scripts/system-tools installs them)",
)

STEP = 15  # seconds between samples, Prometheus's default scrape interval
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
SELECTOR = 'namespace="ml", app="{app}", track="canary"'
# The fastapi backend's MetricQueries (plugins/mlgen_fastapi), over its serving metrics.
QUERIES = gate.Queries(
    request_rate='sum(rate(model_requests_total{{selector}, endpoint="/predict"}[{window}]))',
    error_rate=(
        'sum(rate(model_requests_total{{selector}, endpoint="/predict", status=~"5.."}[{window}]))'
    ),
    latency_quantile=(
        "histogram_quantile({quantile}, sum by (le) (rate(model_request_duration_seconds_"
        'bucket{{selector}, endpoint="/predict"}[{window}])))'
    ),
)
LIMITS = gate.Thresholds(latency_p95_ms=300.0, error_rate=0.001, min_requests=100)


@dataclass(frozen=True)
class Canary:
    """Traffic per sample step: requests, how many of them failed, and their latency."""

    app: str
    requests: int
    failures: int
    latency_bucket: float  # every request's latency falls just below this bucket bound
    every: int = 1  # steps between batches of requests (an idle canary serves rarely)


CANARIES = (
    Canary("healthy", requests=150, failures=0, latency_bucket=0.05),  # 10 req/s
    Canary("slow", requests=150, failures=0, latency_bucket=1.0),
    Canary("failing", requests=200, failures=10, latency_bucket=0.05),  # 5 % errors
    Canary("idle", requests=1, failures=0, latency_bucket=0.05, every=20),  # 1 per 5 min
)


def _labels(canary: Canary, **extra: str) -> str:
    labels = {"namespace": "ml", "app": canary.app, "track": "canary", "endpoint": "/predict"}
    return ",".join(f'{key}="{value}"' for key, value in {**labels, **extra}.items())


def _openmetrics(now: int) -> str:
    """Every canary's counters and latency histogram, one point per :data:`STEP`."""
    times = range(now - 40 * 60, now + 10 * 60, STEP)
    lines = ["# TYPE model_requests counter"]
    for canary in CANARIES:
        for status, per_step in (
            ("200", canary.requests - canary.failures),
            ("500", canary.failures),
        ):
            if per_step:
                for index, at in enumerate(times):
                    total = per_step * (index // canary.every)
                    lines.append(
                        f"model_requests_total{{{_labels(canary, status=status)}}} {total} {at}"
                    )
    lines.append("# TYPE model_request_duration_seconds histogram")
    for canary in CANARIES:
        for index, at in enumerate(times):
            count = canary.requests * (index // canary.every)
            for bound in (*BUCKETS, float("inf")):
                le = "+Inf" if bound == float("inf") else repr(bound)
                value = count if bound >= canary.latency_bucket else 0
                lines.append(
                    f"model_request_duration_seconds_bucket{{{_labels(canary, le=le)}}} "
                    f"{value} {at}"
                )
            lines.append(f"model_request_duration_seconds_count{{{_labels(canary)}}} {count} {at}")
            lines.append(
                f"model_request_duration_seconds_sum{{{_labels(canary)}}} "
                f"{count * canary.latency_bucket * 0.9} {at}"
            )
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus serving the backfilled canaries; yields its base URL."""
    root = tmp_path_factory.mktemp("prometheus")
    (root / "history.om").write_text(_openmetrics(int(time.time())), encoding="utf-8")
    subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", "history.om", "data"],
        cwd=root,
        check=True,
        capture_output=True,
        timeout=120,
    )
    with running_prometheus(root, "global:\n  scrape_interval: 15s\n") as url:
        yield url


def _config(app: str) -> gate.GateConfig:
    return gate.GateConfig(LIMITS, QUERIES, SELECTOR.format(app=app), "30m")


def test_a_healthy_canary_is_measured_exactly_and_promoted(prometheus: str) -> None:
    measurement = gate.measure(prometheus, _config("healthy"))
    assert measurement.requests == pytest.approx(150 / STEP * 1800)
    assert measurement.error_rate == 0.0  # no 5xx series at all
    # every request below 50 ms, none below 25 ms: the 95th percentile interpolates to
    # 25 + 0.95 * 25 ms inside that bucket
    assert measurement.p95_ms == pytest.approx(48.75)
    assert gate.decide(measurement, LIMITS).promote


@pytest.mark.parametrize(
    ("app", "blamed"),
    [
        ("slow", "p95 latency"),
        ("failing", "error rate"),
        ("idle", "requests"),
        ("silent", "requests"),
    ],
)
def test_an_unhealthy_canary_is_rolled_back(prometheus: str, app: str, blamed: str) -> None:
    measurement = gate.measure(prometheus, _config(app))
    decision = gate.decide(measurement, LIMITS)
    assert not decision.promote
    assert any(reason.startswith(blamed) for reason in decision.reasons), decision.reasons


def test_measured_values_of_the_unhealthy_canaries(prometheus: str) -> None:
    assert gate.measure(prometheus, _config("slow")).p95_ms == pytest.approx(975.0)
    assert gate.measure(prometheus, _config("failing")).error_rate == pytest.approx(0.05)
    idle = gate.measure(prometheus, _config("idle"))
    assert 0 < idle.requests < LIMITS.min_requests
    assert idle.p95_ms < LIMITS.latency_p95_ms and idle.error_rate == 0.0  # only idle
    silent = gate.measure(prometheus, _config("silent"))
    assert silent.requests == 0.0 and silent.p95_ms != silent.p95_ms  # nan: no samples


def test_prometheus_refusals_are_gate_errors(prometheus: str) -> None:
    with pytest.raises(gate.GateError, match="parse error"):
        gate.query_scalar(prometheus, "sum(rate(model_requests_total[30m])")
    with pytest.raises(gate.GateError, match="series, expected one"):
        gate.query_scalar(prometheus, 'model_requests_total{app="failing"}')  # 200 and 500


def test_command_line_against_prometheus(
    prometheus: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "canary-gate.toml"
    queries = "\n".join(f"{name} = {json.dumps(value)}" for name, value in asdict(QUERIES).items())
    config.write_text(
        "[thresholds]\nlatency_p95_ms = 300.0\nerror_rate = 0.001\nmin_requests = 100\n\n"
        f"[prometheus]\nselector = {json.dumps(SELECTOR.format(app='healthy'))}\n"
        f'window = "30m"\n\n[queries]\n{queries}\n',
        encoding="utf-8",
    )
    arguments = ["gate", "--config", str(config), "--prometheus-url", prometheus]
    assert gate.main(arguments) == gate.PROMOTE
    report = json.loads(capsys.readouterr().out)
    assert report["decision"] == "promote" and report["measurement"]["requests"] > 100
    idle = [*arguments, "--selector", SELECTOR.format(app="idle")]
    assert gate.main(idle) == gate.ROLLBACK
    assert gate.main([*arguments, "--window", "20m"]) == gate.PROMOTE
