"""The SLO / canary gate: promote a canary only when Prometheus shows it meets its objectives.

A generated repository keeps its objectives and its backend's PromQL in a small TOML file
(``deploy/canary-gate.toml``); its promote workflow runs::

    python -m mlgen_runtime.gate gate --config deploy/canary-gate.toml \\
        --prometheus-url http://prometheus:9090 [--window 30m] [--selector '...']

The canary is promoted when, over the observation window, it served at least
``min_requests`` requests (an idle canary has shown nothing), its p95 latency is below
``latency_p95_ms`` and its error rate (the share of 5xx answers) is below ``error_rate``.
A value that is missing or not a number never passes: the canary is rolled back unless it
has shown that it is healthy.

Exit status of ``decide`` and ``gate``: 0 promote, 1 roll back, 2 usage error, unreadable
configuration or Prometheus could not be queried; ``measure`` exits 0 or 2. Each prints
one JSON object on stdout. ``PROMETHEUS_TOKEN``, when set, is sent as a bearer token.
Only the standard library is used, so the gate runs with the runtime's core install.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

PROMOTE, ROLLBACK, ERROR = 0, 1, 2
"""Exit statuses of ``decide`` and ``gate``."""

_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


class GateError(RuntimeError):
    """The gate cannot judge: bad configuration, or Prometheus could not be queried."""


@dataclass(frozen=True)
class Thresholds:
    """The objectives a canary must meet.

    Attributes:
        latency_p95_ms: the p95 latency must be below this many milliseconds.
        error_rate: the share of failed (5xx) requests must be below this fraction.
        min_requests: the canary must have served at least this many requests in the
            window; fewer (an idle canary) is a roll back, whatever the other numbers.
    """

    latency_p95_ms: float
    error_rate: float
    min_requests: float = 100.0


@dataclass(frozen=True)
class Queries:
    """PromQL templates over the serving backend's metrics (a backend's ``MetricQueries``).

    ``{selector}``, ``{window}`` and ``{quantile}`` are replaced by plain text
    replacement (PromQL's own braces stay as they are); ``latency_quantile`` gives seconds.
    """

    request_rate: str
    error_rate: str
    latency_quantile: str

    def render(self, selector: str, window: str, quantile: float = 0.95) -> dict[str, str]:
        """The three queries with their placeholders filled, by field name."""
        return {
            name: template.replace("{selector}", selector)
            .replace("{window}", window)
            .replace("{quantile}", f"{quantile:g}")
            for name, template in asdict(self).items()
        }


@dataclass(frozen=True)
class GateConfig:
    """One repository's gate: objectives, queries, and which series are the canary's."""

    thresholds: Thresholds
    queries: Queries
    selector: str
    window: str = "30m"


@dataclass(frozen=True)
class Measurement:
    """What the canary did during the window (``nan``: no samples)."""

    p95_ms: float
    error_rate: float
    requests: float


@dataclass(frozen=True)
class Decision:
    """Promote or not, and why (the failed objectives, or all passed ones)."""

    promote: bool
    reasons: tuple[str, ...]

    @property
    def action(self) -> str:
        """``"promote"`` or ``"rollback"``."""
        return "promote" if self.promote else "rollback"


def window_seconds(window: str) -> float:
    """Seconds in a PromQL duration such as ``30m`` or ``1h30m`` (``GateError`` if invalid)."""
    parts = _DURATION.findall(window)
    if not parts or "".join(number + unit for number, unit in parts) != window:
        raise GateError(f"not a PromQL duration: {window!r}")
    return float(sum(int(number) * _UNIT_SECONDS[unit] for number, unit in parts))


def load_config(path: Path | str) -> GateConfig:
    """Read a gate configuration file (see :func:`parse_config`)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise GateError(f"cannot read the gate configuration {path}: {error}") from error
    return parse_config(text, source=str(path))


def parse_config(text: str, source: str = "<gate configuration>") -> GateConfig:
    """Parse TOML with ``[thresholds]`` (:class:`Thresholds`' fields), ``[queries]``
    (:class:`Queries`' fields) and ``[prometheus]`` (``selector``, optional ``window``).

    Raises:
        GateError: the text is not TOML, a table or key is missing or unknown, the window
            is not a PromQL duration, or a query lacks ``{selector}``.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise GateError(f"cannot read the gate configuration {source}: {error}") from error
    try:
        prometheus = data.get("prometheus", {})
        config = GateConfig(
            thresholds=Thresholds(**data["thresholds"]),
            queries=Queries(**data["queries"]),
            selector=prometheus["selector"],
            window=prometheus.get("window", "30m"),
        )
    except (KeyError, TypeError) as error:
        raise GateError(f"{source}: incomplete gate configuration ({error})") from error
    window_seconds(config.window)
    for name, template in asdict(config.queries).items():
        if "{selector}" not in template:
            raise GateError(f"{source}: query {name} must contain {{selector}}")
    return config


def _usable(value: float) -> bool:
    return math.isfinite(value) and value >= 0


def _below(what: str, value: float, limit: float, shown: str, unit: str = "") -> tuple[bool, str]:
    """Whether ``value`` is known and below ``limit``, and the reason to report."""
    if not _usable(value):
        return False, f"{what} is unknown ({value})"
    if value < limit:
        return True, f"{what} {value:{shown}}{unit} < {limit:g}{unit}"
    return False, f"{what} {value:{shown}}{unit} is not below {limit:g}{unit}"


def decide(measurement: Measurement, thresholds: Thresholds) -> Decision:
    """Promote when the canary served enough requests and both objectives are met."""
    requests, minimum = measurement.requests, thresholds.min_requests
    busy = _usable(requests) and requests >= minimum
    relation = ">=" if busy else "are fewer than the minimum"
    checks = [
        (busy, f"requests {requests:.0f} {relation} {minimum:g}"),
        _below("p95 latency", measurement.p95_ms, thresholds.latency_p95_ms, ".1f", " ms"),
        _below("error rate", measurement.error_rate, thresholds.error_rate, ".5f"),
    ]
    failures = tuple(reason for passed, reason in checks if not passed)
    return Decision(not failures, failures or tuple(reason for _, reason in checks))


# ------------------------------------------------------------------ Prometheus
Fetch = Callable[[str, Mapping[str, str], float], Any]
"""``fetch(url, headers, timeout)`` returns the decoded JSON body."""


def _fetch_json(url: str, headers: Mapping[str, str], timeout: float) -> Any:
    request = urllib.request.Request(url, headers=dict(headers))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:  # Prometheus explains a 4xx/5xx in a JSON body
        try:
            return json.load(error)
        except ValueError:
            raise GateError(f"querying Prometheus failed: {error}") from error
    except (urllib.error.URLError, TimeoutError, ValueError) as error:
        raise GateError(f"querying Prometheus failed: {error}") from error


def query_scalar(
    base_url: str,
    promql: str,
    *,
    token: str | None = None,
    timeout: float = 30.0,
    fetch: Fetch = _fetch_json,
) -> float | None:
    """The value of an instant query (``/api/v1/query``) that gives at most one sample.

    Returns ``None`` when the answer is an empty vector (no such series). Raises
    :class:`GateError` when Prometheus refuses the query or returns several series.
    """
    url = f"{base_url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = fetch(url, headers, timeout)
    if not isinstance(body, dict) or body.get("status") != "success":
        error = body.get("error") if isinstance(body, dict) else body
        raise GateError(f"Prometheus refused {promql!r}: {error}")
    data = body.get("data") or {}
    result = data.get("result")
    if data.get("resultType") == "scalar" and isinstance(result, list):
        return float(result[1])
    if not isinstance(result, list):
        raise GateError(f"unexpected Prometheus answer to {promql!r}: {data}")
    if not result:
        return None
    if len(result) > 1:
        raise GateError(f"{promql!r} returned {len(result)} series, expected one")
    return float(result[0]["value"][1])


def measure(
    base_url: str,
    config: GateConfig,
    *,
    token: str | None = None,
    timeout: float = 30.0,
    fetch: Fetch = _fetch_json,
) -> Measurement:
    """Query Prometheus for the canary's request count, error rate and p95 latency."""
    queries = config.queries.render(config.selector, config.window)
    values = {
        name: query_scalar(base_url, promql, token=token, timeout=timeout, fetch=fetch)
        for name, promql in queries.items()
    }
    rate, errors, latency_s = (
        values["request_rate"],
        values["error_rate"],
        values["latency_quantile"],
    )
    if rate is None or not rate > 0:
        return Measurement(p95_ms=math.nan, error_rate=math.nan, requests=0.0)
    return Measurement(
        p95_ms=math.nan if latency_s is None else latency_s * 1000.0,
        error_rate=(errors or 0.0) / rate,  # no 5xx series at all: no errors
        requests=rate * window_seconds(config.window),  # rate x range = increase()
    )


# ------------------------------------------------------------------ command line
def _json(value: Any) -> str:
    """JSON text of ``value``; NaN and infinities (not JSON) become null."""

    def clean(item: Any) -> Any:
        if isinstance(item, float) and not math.isfinite(item):
            return None
        if isinstance(item, dict):
            return {key: clean(inner) for key, inner in item.items()}
        if isinstance(item, list | tuple):
            return [clean(inner) for inner in item]
        return item

    return json.dumps(clean(value), allow_nan=False)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mlgen_runtime.gate",
        description="Promote the canary only when it meets its latency and error-rate SLOs.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, required=True, help="the gate's TOML file")
    limits = argparse.ArgumentParser(add_help=False)
    limits.add_argument("--latency-slo-ms", type=float, help="override [thresholds]")
    limits.add_argument("--error-rate-slo", type=float, help="override [thresholds]")
    limits.add_argument("--min-requests", type=float, help="override [thresholds]")
    source = argparse.ArgumentParser(add_help=False)
    source.add_argument("--prometheus-url", required=True)
    source.add_argument("--selector", help="override [prometheus] selector")
    source.add_argument("--window", help="override [prometheus] window (a PromQL duration)")
    source.add_argument("--timeout", type=float, default=30.0)

    decide_command = commands.add_parser(
        "decide", parents=[common, limits], help="decide from measured values"
    )
    decide_command.add_argument("--p95-ms", type=float, required=True)
    decide_command.add_argument("--error-rate", type=float, required=True)
    decide_command.add_argument("--requests", type=float, required=True)
    commands.add_parser("measure", parents=[common, source], help="query Prometheus, print JSON")
    commands.add_parser("gate", parents=[common, source, limits], help="measure, then decide")
    return parser


def _configure(arguments: argparse.Namespace) -> GateConfig:
    config = load_config(arguments.config)
    overrides = {
        "latency_p95_ms": getattr(arguments, "latency_slo_ms", None),
        "error_rate": getattr(arguments, "error_rate_slo", None),
        "min_requests": getattr(arguments, "min_requests", None),
    }
    thresholds = replace(
        config.thresholds, **{key: value for key, value in overrides.items() if value is not None}
    )
    config = replace(config, thresholds=thresholds)
    if getattr(arguments, "selector", None):
        config = replace(config, selector=arguments.selector)
    if getattr(arguments, "window", None):
        window_seconds(arguments.window)
        config = replace(config, window=arguments.window)
    return config


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    arguments = _parser().parse_args(argv)
    try:
        config = _configure(arguments)
        if arguments.command == "decide":
            measurement = Measurement(arguments.p95_ms, arguments.error_rate, arguments.requests)
        else:
            token = os.environ.get("PROMETHEUS_TOKEN") or None
            measurement = measure(
                arguments.prometheus_url, config, token=token, timeout=arguments.timeout
            )
    except GateError as error:
        print(f"canary gate: error: {error}", file=sys.stderr)
        return ERROR
    if arguments.command == "measure":
        print(_json(asdict(measurement)))
        return PROMOTE
    decision = decide(measurement, config.thresholds)
    report = {
        "decision": decision.action,
        "reasons": list(decision.reasons),
        "measurement": asdict(measurement),
        "thresholds": asdict(config.thresholds),
        "window": config.window,
        "selector": config.selector,
    }
    print(_json(report))
    print(f"canary gate: {decision.action}: {'; '.join(decision.reasons)}", file=sys.stderr)
    return PROMOTE if decision.promote else ROLLBACK


if __name__ == "__main__":
    sys.exit(main())
