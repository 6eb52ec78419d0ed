"""Checks of the monitoring artifacts in ``deploy/monitoring``.

* ``promtool``: ``promtool check rules`` on every rules file (``*rules*.yaml``), then
  ``promtool test rules`` on every unit-test file (``*.test.yaml``): the alerts parse,
  and fire (only) on the synthetic series the tests feed them.
* ``grafana-dashboard``: the dashboard is JSON, has the panels an ML service needs, every
  panel queries something, and every query is PromQL that promtool parses.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from mlgen import Check, CheckResult
from mlgen.checks import ToolMissing, find_tool, first_lines, run_tool

MONITORING_DIR = Path("deploy/monitoring")
DASHBOARD = MONITORING_DIR / "grafana-dashboard.json"
PROMTOOL_HINT = "apt-get install prometheus"
_TEST_SUFFIXES = (".test.yaml", ".test.yml")
_RULES_FOUND = re.compile(r"SUCCESS: (\d+) rules found")
_NUMBER = re.compile(r"(?<![\w.])\d*\.\d+")
# Grafana's range variables, replaced by a literal range so promtool can parse the query.
_GRAFANA_RANGES = re.compile(r"\$\{?__(rate_interval|interval|range)\}?")
_LEFTOVERS = ("{selector}", "{window}", "{quantile}", "{%", "{#", "{{")
_LATENCY_QUANTILES = {0.5, 0.95, 0.99}


def _title(panel: Mapping[str, Any]) -> str:
    return str(panel.get("title", "")).lower()


def _exprs(panel: Mapping[str, Any]) -> list[str]:
    return [str(target.get("expr", "")) for target in panel.get("targets") or []]


def _quantiles(panel: Mapping[str, Any]) -> set[float]:
    return {float(number) for expr in _exprs(panel) for number in _NUMBER.findall(expr)}


REQUIRED_PANELS: tuple[tuple[str, Any], ...] = (
    (
        "latency p50/p95/p99",
        lambda p: "latency" in _title(p) and _quantiles(p) >= _LATENCY_QUANTILES,
    ),
    (
        "requests per second",
        lambda p: (
            "request" in _title(p) and re.search(r"per second|/s\b|rate|throughput", _title(p))
        ),
    ),
    ("error rate", lambda p: "error" in _title(p)),
    (
        "prediction distribution",
        lambda p: any("model_prediction_probability_bucket" in e for e in _exprs(p)),
    ),
    ("feature drift", lambda p: any("model_feature_psi" in e for e in _exprs(p))),
)
"""(what, predicate on a panel): one panel must match each."""


# ------------------------------------------------------------------ promtool
def rule_files(repo: Path) -> list[Path]:
    """Prometheus rules files: ``*rules*.yaml`` in deploy/monitoring, tests excluded."""
    return sorted(
        path
        for pattern in ("*rules*.yaml", "*rules*.yml")
        for path in (repo / MONITORING_DIR).glob(pattern)
        if not path.name.endswith(_TEST_SUFFIXES)
    )


def rule_test_files(repo: Path) -> list[Path]:
    """promtool unit-test files: ``*.test.yaml`` in deploy/monitoring."""
    return sorted(
        path for suffix in _TEST_SUFFIXES for path in (repo / MONITORING_DIR).glob(f"*{suffix}")
    )


def _promtool(repo: Path) -> CheckResult:
    files = rule_files(repo)
    if not files:
        return CheckResult(False, f"no Prometheus rules file (*rules*.yaml) in {MONITORING_DIR}/")
    promtool = find_tool("promtool", PROMTOOL_HINT)
    relative = [str(path.relative_to(repo)) for path in files]
    result = run_tool([promtool, "check", "rules", *relative], cwd=repo, timeout=60)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        failed = output[output.find("FAILED") :] if "FAILED" in output else output
        return CheckResult(False, f"check rules: {first_lines(failed, 4)}")
    rules = sum(int(count) for count in _RULES_FOUND.findall(output))
    tests = rule_test_files(repo)
    for test in tests:
        result = run_tool([promtool, "test", "rules", test.name], cwd=test.parent, timeout=60)
        if result.returncode != 0:
            output = result.stdout + result.stderr
            failed = output[output.find("FAILED") :] if "FAILED" in output else output
            return CheckResult(False, f"test rules {test.name}: {first_lines(failed, 6)}")
    tested = f"; unit tests {', '.join(test.name for test in tests)} pass" if tests else ""
    return CheckResult(True, f"{rules} rules in {', '.join(relative)} valid{tested}")


# ------------------------------------------------------------------ dashboard
def _panels(panels: Any) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels included (rows themselves left out)."""
    for panel in panels or []:
        if not isinstance(panel, dict):
            continue
        if panel.get("type") == "row":
            yield from _panels(panel.get("panels"))
        else:
            yield panel


def _promql_problems(exprs: list[tuple[str, str]]) -> list[str]:
    """Parse each ``(panel, expr)`` with promtool, as recording rules. [] when all parse."""
    promtool = find_tool("promtool", PROMTOOL_HINT)
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mlgen-promql-") as scratch:
        for index, (panel, expr) in enumerate(exprs):
            rules = {
                "groups": [
                    {
                        "name": "dashboard",
                        "rules": [
                            {
                                "record": "mlgen:dashboard_query",
                                "expr": _GRAFANA_RANGES.sub("5m", expr),
                            }
                        ],
                    }
                ]
            }
            path = Path(scratch) / f"query{index}.yaml"
            path.write_text(yaml.safe_dump(rules), encoding="utf-8")
            result = run_tool(
                [promtool, "check", "rules", str(path)], cwd=Path(scratch), timeout=60
            )
            if result.returncode != 0:
                output = result.stdout + result.stderr
                error = output[output.find("FAILED") :] if "FAILED" in output else output
                detail = first_lines(error.replace(str(path), "query"), 3)
                problems.append(f"panel {panel!r}: not PromQL: {detail}")
    return problems


def _grafana_dashboard(repo: Path) -> CheckResult:
    path = repo / DASHBOARD
    try:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        return CheckResult(False, f"{DASHBOARD}: {error.strerror or error}")
    except json.JSONDecodeError as error:
        return CheckResult(
            False, f"{DASHBOARD}:{error.lineno}:{error.colno}: not JSON: {error.msg}"
        )
    if not isinstance(dashboard, dict) or not dashboard.get("title"):
        return CheckResult(False, f"{DASHBOARD}: not a Grafana dashboard (no title)")
    panels = list(_panels(dashboard.get("panels")))
    problems: list[str] = []
    ids = [panel.get("id") for panel in panels]
    if None in ids or len(set(ids)) != len(ids):
        problems.append("every panel needs a unique id")
    exprs: list[tuple[str, str]] = []
    for panel in panels:
        title = str(panel.get("title") or f"#{panel.get('id')}")
        targets = panel.get("targets") or []
        if not targets:
            problems.append(f"panel {title!r} has no targets")
        for target in targets:
            expr = target.get("expr") if isinstance(target, dict) else None
            if not isinstance(expr, str) or not expr.strip():
                problems.append(f"panel {title!r}: target {target.get('refId', '?')} has no expr")
                continue
            leftover = [marker for marker in _LEFTOVERS if marker in expr]
            if leftover:
                problems.append(f"panel {title!r}: unrendered {leftover[0]} in {expr!r}")
                continue
            exprs.append((title, expr))
    for what, matches in REQUIRED_PANELS:
        if not any(matches(panel) for panel in panels):
            problems.append(f"no {what} panel")
    parsed = ""
    if not problems:
        try:
            problems.extend(_promql_problems(exprs))
            parsed = ", each query parses as PromQL"
        except ToolMissing as missing:
            parsed = f" (queries not parsed: {missing})"
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        return CheckResult(False, f"{DASHBOARD}: " + " | ".join(problems[:3]) + more)
    return CheckResult(
        True,
        f"{len(panels)} panels, {len(exprs)} queries; latency p50/p95/p99, requests/s, "
        f"error rate, prediction distribution and drift present{parsed}",
    )


def checks(repo: Path, answers: Mapping[str, Any]) -> list[Check]:
    """The monitoring checks."""
    inputs = (f"{MONITORING_DIR.as_posix()}/",)
    return [
        Check(
            "promtool",
            _promtool,
            inputs=inputs,
            description="promtool checks the Prometheus rules and their unit tests pass.",
        ),
        Check(
            "grafana-dashboard",
            _grafana_dashboard,
            inputs=inputs,
            description="The Grafana dashboard has the panels an ML service needs, each "
            "querying PromQL that parses.",
        ),
    ]
